//! Who may do what (SPEC §13): the roles of users and API keys, what each operation needs, and
//! the one rule that says whether a role has it. The service layer asks [`allows`] before every
//! operation; nothing else decides.

use super::validate::Choice;

/// A user's or an API key's role in its account. Keys are `admin` or `viewer`, never `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, users included (in the web page).
    Owner,
    /// Everything but users.
    Admin,
    /// Reads webhooks, logs, calls and numbers; no secrets, no changes.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Viewer];
    /// The roles an API key can have.
    pub const FOR_KEYS: [Role; 2] = [Role::Admin, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The word people read (`Owner`).
    pub fn label(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Viewer => "Viewer",
        }
    }
}

impl Choice for Role {
    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn choices() -> String {
        "owner, admin or viewer".into()
    }
}

/// Who acts: a person signed in to the web page, or a program with an API key. Users are
/// managed by owners in the web page and by admin keys through the API, so the same role
/// name does not always grant the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User,
    ApiKey,
}

/// What an operation needs. Each operation of the service layer names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read webhooks, the delivery log, calls, numbers, the trigger catalogue.
    Read,
    /// See a secret: a signing secret, custom header values, an alert secret, API keys.
    ReadSecrets,
    /// Read the audit log.
    ReadAudit,
    /// Change anything but users: webhooks, numbers, API keys, resends, replays, calls.
    Change,
    /// Invite, change, reset and remove users; make an admin API key (which manages users).
    ManageUsers,
}

impl Need {
    /// Whom this is for, as the refusal says it.
    pub fn who(self) -> &'static str {
        match self {
            Need::Read => "any role",
            Need::ReadSecrets | Need::ReadAudit | Need::Change => {
                "the admin or owner role (an admin API key, or an admin or owner user)"
            }
            Need::ManageUsers => "an owner (in the web page) or an admin API key",
        }
    }

    /// What is asked for, as the refusal says it.
    pub fn what(self) -> &'static str {
        match self {
            Need::Read => "reading",
            Need::ReadSecrets => "secrets are shown only to",
            Need::ReadAudit => "the audit log is open only to",
            Need::Change => "changes need",
            Need::ManageUsers => "managing users needs",
        }
    }
}

/// Whether a `principal` with `role` may do what `need` names. The whole of SPEC §13's rule:
///
/// | need           | owner user | admin user | viewer user | admin key | viewer key |
/// |----------------|------------|------------|-------------|-----------|------------|
/// | read           | yes        | yes        | yes         | yes       | yes        |
/// | read secrets   | yes        | yes        | no          | yes       | no         |
/// | read audit     | yes        | yes        | no          | yes       | no         |
/// | change         | yes        | yes        | no          | yes       | no         |
/// | manage users   | yes        | no         | no          | yes       | no         |
pub fn allows(principal: Principal, role: Role, need: Need) -> bool {
    match need {
        Need::Read => true,
        Need::ReadSecrets | Need::ReadAudit | Need::Change => {
            matches!(role, Role::Owner | Role::Admin)
        }
        Need::ManageUsers => matches!(
            (principal, role),
            (Principal::User, Role::Owner) | (Principal::ApiKey, Role::Admin)
        ),
    }
}

/// Why `principal` with `role` is refused `need`: what it needs, and what the caller is.
pub fn refusal(principal: Principal, role: Role, need: Need) -> String {
    let you = match principal {
        Principal::User => format!("you are signed in as {} {}", article(role), role.as_str()),
        Principal::ApiKey => format!("this API key has the {} role", role.as_str()),
    };
    format!("{} {}; {you}", need.what(), need.who())
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Owner | Role::Admin => "an",
        Role::Viewer => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_spec_13() {
        use Need::*;
        use Principal::*;
        let yes = |p, r, n| allows(p, r, n);
        for need in [Read, ReadSecrets, ReadAudit, Change, ManageUsers] {
            let got = [
                yes(User, Role::Owner, need),
                yes(User, Role::Admin, need),
                yes(User, Role::Viewer, need),
                yes(ApiKey, Role::Admin, need),
                yes(ApiKey, Role::Viewer, need),
            ];
            let want = match need {
                Read => [true, true, true, true, true],
                ReadSecrets | ReadAudit | Change => [true, true, false, true, false],
                ManageUsers => [true, false, false, true, false],
            };
            assert_eq!(got, want, "{need:?}");
        }
    }

    #[test]
    fn a_refusal_names_the_role_needed_and_the_callers() {
        assert_eq!(
            refusal(Principal::ApiKey, Role::Viewer, Need::Change),
            "changes need the admin or owner role (an admin API key, or an admin or owner user); \
             this API key has the viewer role"
        );
        assert_eq!(
            refusal(Principal::User, Role::Admin, Need::ManageUsers),
            "managing users needs an owner (in the web page) or an admin API key; \
             you are signed in as an admin"
        );
    }

    #[test]
    fn roles_read_as_written() {
        for r in Role::ALL {
            assert_eq!(<Role as Choice>::parse(r.as_str()), Some(r));
        }
        assert_eq!(<Role as Choice>::parse("Owner"), None);
    }
}
