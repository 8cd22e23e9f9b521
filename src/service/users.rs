//! The people who sign in to the web page (SPEC §13): their roles, invitations and resets by
//! one-time links, password changes, removal, and their sessions.
//!
//! Owners (in the web page) and admin API keys manage users. An invitation or a reset is a
//! one-time link (72 hours, usable once) that callhook shows to hand over, since it sends no
//! mail; the store keeps only its hash. Following it sets the password. A removed user, a
//! reset user, and every other session of a user who changed their password are signed out
//! at once; the account's last owner can be neither removed nor demoted.
//!
//! A session is a random 256-bit token the browser keeps in a cookie; the store keeps only
//! its SHA-256, so a copy of the database signs nobody in. Sessions slide: they last
//! [`SESSION_TTL`] from their last use, and never beyond [`SESSION_MAX`] from the sign-in, so
//! a stolen cookie kept busy does not live for ever. Each carries its own CSRF token.

use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::{Actor, Denied, Failure, IntoFailure, Need, Role, Who, invalid, operator_entry};
use crate::core::audit::{Action, Change};
use crate::core::credentials::{hash_password, hash_token, random_token, verify_password};
use crate::core::id::{AccountId, UserId};
use crate::core::validate::{FieldErrors, Fields};
use crate::store::{LinkPurpose, Page, PageRequest, Session, Store, StoreError, User, UserLink};

/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Length of a generated sign-in password (base64url: about 120 random bits).
const PASSWORD_LEN: usize = 20;
/// Shortest and longest password a person may choose.
pub const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 200;
/// How long a session lives after its last use.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
/// How long a session lives at most, however busy: then its admin signs in again.
pub const SESSION_MAX: SignedDuration = SignedDuration::from_hours(24);
/// A session's expiry is pushed forward at most this often, not on every request.
const EXTEND_EVERY: SignedDuration = SignedDuration::from_mins(5);
/// How long an invitation or reset link works.
pub const LINK_TTL: SignedDuration = SignedDuration::from_hours(72);

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The email is taken, or the change would leave the account without an owner.
    #[error("{0}")]
    Conflict(String),
    /// The link was used already, replaced by a newer one, or expired.
    #[error("this link has expired or was already used; ask an owner of the account for a new one")]
    LinkGone,
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    /// The password could not be hashed, or the check could not run.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => UserError::Conflict(m),
            e => UserError::Store(e),
        }
    }
}

impl IntoFailure for UserError {
    fn into_failure(self) -> Failure {
        match self {
            UserError::NotFound => Failure::NotFound("user"),
            UserError::Invalid(f) => Failure::Invalid(f),
            UserError::Conflict(m) => Failure::Conflict(m),
            e @ UserError::LinkGone => Failure::Conflict(e.to_string()),
            UserError::Denied(d) => d.into_failure(),
            UserError::Store(e) => e.into_failure(),
            UserError::Internal(m) => Failure::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// An email as kept and looked up at sign-in: trimmed and lower-case.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// An email, in lower case, if it looks like an address: one `@` with something before it, a
/// domain with a dot (`name@example.com`) or `localhost`, no spaces or control characters,
/// at most 254 characters. (What the API document's pattern says, too.)
pub fn check_email(raw: &str) -> Result<String, String> {
    let email = raw.to_ascii_lowercase();
    let ok = email.chars().count() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && (domain.contains('.') || domain == "localhost")
        });
    if ok {
        Ok(email)
    } else {
        Err(format!("{raw:?} is not an email address"))
    }
}

/// Whether a password a person chose is acceptable: else what is wrong with it.
pub fn check_password_rules(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!("must be at least {MIN_PASSWORD} characters"));
    }
    if n > MAX_PASSWORD {
        return Err(format!("must be at most {MAX_PASSWORD} characters"));
    }
    Ok(())
}

/// Argon2id, off the async workers (it is slow on purpose).
async fn hash(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UserError::Internal(format!("the password hashing failed: {e}")))?
        .map_err(UserError::Internal)
}

/// A user just made, with the generated password to hand over once.
#[derive(Debug)]
pub struct NewUser {
    pub user: User,
    pub password: String,
}

/// Makes a user of account `account_id` with `role` who signs in with `email` and a generated
/// password: the operator's way (the command line, the first start), which makes an account's
/// first owner. `how` names it in the audit log.
pub async fn create(
    store: &dyn Store,
    account_id: &AccountId,
    email: &str,
    role: Role,
    how: &str,
) -> Result<NewUser, UserError> {
    let email = check_email(email).map_err(|m| UserError::Invalid(invalid("email", m)))?;
    let password = random_token("")[..PASSWORD_LEN].to_owned();
    let user = User {
        id: UserId::new(),
        account_id: account_id.clone(),
        email,
        password_hash: hash(password.clone()).await?,
        role,
        created_at: Timestamp::now(),
    };
    let entry = operator_entry(
        account_id,
        how,
        Action::UserCreate,
        user.id.as_str(),
        made(&user),
    );
    store.insert_user(&user, None, &entry).await?;
    Ok(NewUser { user, password })
}

/// What the audit log says of a user made.
fn made(user: &User) -> Vec<Change> {
    vec![
        Change::set("email", json!(user.email)),
        Change::set("role", json!(user.role.as_str())),
    ]
}

/// An invitation or a reset just made: the user, and the token of their one-time link, which
/// exists only now (see [`link_path`]).
#[derive(Debug)]
pub struct NewLink {
    pub user: User,
    pub token: String,
    pub expires_at: Timestamp,
}

/// Where a link's token is followed, on callhook's own address.
pub fn link_path(token: &str) -> String {
    format!("/invite/{token}")
}

/// A fresh link for `user_id`: the token to hand over, and the row the store keeps.
fn new_link(user_id: &UserId, purpose: LinkPurpose) -> (String, UserLink) {
    let token = random_token("");
    let now = super::stored_now();
    let link = UserLink {
        hash: hash_token(&token),
        user_id: user_id.clone(),
        purpose,
        created_at: now,
        expires_at: now.saturating_add(LINK_TTL).unwrap_or(now),
    };
    (token, link)
}

/// The keys of a body inviting a user.
pub const INVITE_KEYS: &[&str] = &["email", "role"];
/// The keys of a body changing a user.
pub const USER_PATCH_KEYS: &[&str] = &["role"];

/// `{email, role}`: every problem found, or the email and role.
pub fn parse_invite(obj: &Map<String, Value>) -> Result<(String, Role), FieldErrors> {
    let mut f = Fields::new("", obj, INVITE_KEYS);
    let email = f
        .req_str("email")
        .and_then(|e| check_email(e).map_err(|m| f.error("email", m)).ok());
    let role = f.req_choice::<Role>("role");
    f.finish().into_result(())?;
    match (email, role) {
        (Some(email), Some(role)) => Ok((email, role)),
        _ => Err(invalid("email", "is required")),
    }
}

/// The account's users, oldest first, each with when its pending link expires.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<(User, Option<Timestamp>)>, UserError> {
    actor.may(Need::ManageUsers)?;
    Ok(store.list_users(actor.account(), page).await?)
}

async fn fetch(store: &dyn Store, actor: &Actor, id: &UserId) -> Result<User, UserError> {
    store
        .get_user(actor.account(), id)
        .await
        .map_err(|e| super::or_not_found(e, UserError::NotFound))
}

/// Invites a user from `{email, role}`: they exist at once, without a password, and the link
/// answered (72 hours, once) lets them choose one.
pub async fn invite(
    store: &dyn Store,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<NewLink, UserError> {
    actor.may(Need::ManageUsers)?;
    let (email, role) = parse_invite(obj).map_err(UserError::Invalid)?;
    let user = User {
        id: UserId::new(),
        account_id: actor.account().clone(),
        email,
        password_hash: String::new(),
        role,
        created_at: super::stored_now(),
    };
    let (token, link) = new_link(&user.id, LinkPurpose::Invite);
    let entry = actor.entry(Action::UserInvite, user.id.as_str(), made(&user));
    store.insert_user(&user, Some(&link), &entry).await?;
    Ok(NewLink {
        user,
        token,
        expires_at: link.expires_at,
    })
}

/// Changes a user's role from `{role}`; the account's last owner keeps theirs.
pub async fn update(
    store: &dyn Store,
    actor: &Actor,
    id: &UserId,
    obj: &Map<String, Value>,
) -> Result<User, UserError> {
    actor.may(Need::ManageUsers)?;
    let mut f = Fields::new("", obj, USER_PATCH_KEYS);
    let role = f.req_choice::<Role>("role");
    f.finish().into_result(()).map_err(UserError::Invalid)?;
    let mut user = fetch(store, actor, id).await?;
    let Some(role) = role else {
        return Err(UserError::Invalid(invalid("role", "is required")));
    };
    let entry = actor.entry(
        Action::UserRoleChange,
        id.as_str(),
        vec![Change::new(
            "role",
            json!(user.role.as_str()),
            json!(role.as_str()),
        )],
    );
    store
        .set_user_role(actor.account(), id, role, &entry)
        .await
        .map_err(|e| super::or_not_found(e, UserError::NotFound))?;
    user.role = role;
    Ok(user)
}

/// Removes a user: their sessions end at once. The account's last owner stays.
pub async fn remove(store: &dyn Store, actor: &Actor, id: &UserId) -> Result<(), UserError> {
    actor.may(Need::ManageUsers)?;
    let user = fetch(store, actor, id).await?;
    let entry = actor.entry(
        Action::UserRemove,
        id.as_str(),
        vec![
            Change::new("email", json!(user.email), Value::Null),
            Change::new("role", json!(user.role.as_str()), Value::Null),
        ],
    );
    store
        .delete_user(actor.account(), id, &entry)
        .await
        .map_err(|e| super::or_not_found(e, UserError::NotFound))
}

/// Resets a user's password: the old one stops working, their sessions end, and the link
/// answered (72 hours, once) lets them choose a new one. An earlier link stops working.
pub async fn reset(store: &dyn Store, actor: &Actor, id: &UserId) -> Result<NewLink, UserError> {
    actor.may(Need::ManageUsers)?;
    let mut user = fetch(store, actor, id).await?;
    // A user who never signed up gets a fresh invitation rather than a reset.
    let purpose = if user.has_password() {
        LinkPurpose::Reset
    } else {
        LinkPurpose::Invite
    };
    let (token, link) = new_link(&user.id, purpose);
    let entry = actor.entry(
        Action::UserReset,
        id.as_str(),
        vec![Change::secret("password", "reset")],
    );
    store
        .reset_user(actor.account(), id, &link, &entry)
        .await
        .map_err(|e| super::or_not_found(e, UserError::NotFound))?;
    user.password_hash.clear();
    Ok(NewLink {
        user,
        token,
        expires_at: link.expires_at,
    })
}

/// The link a token names, and its user, while it works.
pub async fn link(store: &dyn Store, token: &str) -> Result<(UserLink, User), UserError> {
    store
        .user_link(&hash_token(token), Timestamp::now())
        .await?
        .ok_or(UserError::LinkGone)
}

/// Follows a link, once: the user's password becomes `password` (twice the same, by the
/// rules), every session they had ends, and they are answered to be signed in.
pub async fn follow_link(
    store: &dyn Store,
    token: &str,
    password: &str,
    confirm: &str,
) -> Result<User, UserError> {
    let (link, user) = link(store, token).await?;
    let mut errors = FieldErrors::default();
    if let Err(m) = check_password_rules(password) {
        errors.push("password", m);
    } else if password != confirm {
        errors.push("confirm", "does not match the password");
    }
    errors.into_result(()).map_err(UserError::Invalid)?;
    let (action, change) = match link.purpose {
        LinkPurpose::Invite => (Action::UserSignUp, "set"),
        LinkPurpose::Reset => (Action::UserPasswordChange, "changed"),
    };
    let entry = actor(&user).entry(
        action,
        user.id.as_str(),
        vec![Change::secret("password", change)],
    );
    let hashed = hash(password.to_owned()).await?;
    store
        .use_user_link(&link.hash, &hashed, Timestamp::now(), &entry)
        .await
        .map_err(|e| super::or_not_found(e, UserError::LinkGone))
}

/// The signed-in user changes their own password (any role may): `current` must be right.
/// Every other session of theirs ends; `session` stays.
pub async fn change_password(
    store: &dyn Store,
    user: &User,
    session: &Session,
    current: String,
    new: &str,
    confirm: &str,
) -> Result<(), UserError> {
    let me = actor(user);
    me.may(Need::Read)?;
    let hash_now = user.password_hash.clone();
    let right = tokio::task::spawn_blocking(move || verify_password(&current, &hash_now))
        .await
        .map_err(|e| UserError::Internal(format!("the password check failed: {e}")))?;
    let mut errors = FieldErrors::default();
    if !right {
        errors.push("current", "is not your current password");
    }
    if let Err(m) = check_password_rules(new) {
        errors.push("password", m);
    } else if new != confirm {
        errors.push("confirm", "does not match the new password");
    }
    errors.into_result(()).map_err(UserError::Invalid)?;
    let entry = me.entry(
        Action::UserPasswordChange,
        user.id.as_str(),
        vec![Change::secret("password", "changed")],
    );
    let hashed = hash(new.to_owned()).await?;
    Ok(store
        .set_password(&user.id, &hashed, &session.id, &entry)
        .await?)
}

/// The user of this sign-in as an [`Actor`], with their role.
pub fn actor(user: &User) -> Actor {
    Actor {
        account_id: user.account_id.clone(),
        who: Who::User {
            id: user.id.clone(),
            email: user.email.clone(),
        },
        role: user.role,
    }
}

/// A password hash to check against when the email is unknown, so that an unknown email
/// takes as long to refuse as a wrong password and does not reveal who has an account.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// The user whose email and password these are, if any. Argon2 is deliberately slow, so the
/// check runs off the async workers; `permit` (the caller's admission to check at all) is
/// held until the check ends, even if the caller is dropped meanwhile.
pub async fn check_password(
    store: &dyn Store,
    email: &str,
    password: String,
    permit: impl Send + 'static,
) -> Result<Option<User>, UserError> {
    // A user without a password yet (invited, or reset) signs in no more than a stranger.
    let user = store
        .user_by_email(&normalize_email(email))
        .await?
        .filter(User::has_password);
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify_password(&password, &hash)
    })
    .await
    .map_err(|e| UserError::Internal(format!("the password check failed: {e}")))?;
    Ok(user.filter(|_| ok))
}

/// A session just begun: the row as stored and the token for the browser's cookie.
#[derive(Debug)]
pub struct NewSession {
    pub session: Session,
    pub token: String,
}

/// Signs `user` in: a new session (and, on the way, expired ones are swept).
pub async fn start_session(store: &dyn Store, user: &User) -> Result<NewSession, UserError> {
    let now = Timestamp::now();
    if let Err(e) = store.delete_expired_sessions(now).await {
        tracing::warn!(error = %e, "could not delete expired sessions");
    }
    let token = random_token("");
    let session = Session {
        id: hash_token(&token),
        user_id: user.id.clone(),
        csrf: random_token(""),
        created_at: now,
        expires_at: now.saturating_add(SESSION_TTL).unwrap_or(now),
    };
    store.insert_session(&session).await?;
    tracing::info!(user = %user.id, "signed in");
    Ok(NewSession { session, token })
}

/// The live session of a cookie's token and its user; its expiry slides forward with use.
pub async fn session(store: &dyn Store, token: &str) -> Result<Option<(Session, User)>, UserError> {
    let now = Timestamp::now();
    let Some((session, user)) = store.session_with_user(&hash_token(token), now).await? else {
        return Ok(None);
    };
    let end = session
        .created_at
        .saturating_add(SESSION_MAX)
        .unwrap_or(session.created_at);
    if now >= end {
        store.delete_session(&session.id).await?;
        return Ok(None);
    }
    if session.expires_at.duration_since(now) < SESSION_TTL - EXTEND_EVERY {
        let until = now.saturating_add(SESSION_TTL).unwrap_or(now).min(end);
        if let Err(e) = store.extend_session(&session.id, until).await {
            tracing::warn!(error = %e, "could not extend a session");
        }
    }
    Ok(Some((session, user)))
}

/// Signs a session out.
pub async fn end_session(store: &dyn Store, session: &Session) -> Result<(), UserError> {
    Ok(store.delete_session(&session.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_case_and_need_a_domain() {
        assert_eq!(
            check_email("Admin@Acme.Example").as_deref(),
            Ok("admin@acme.example")
        );
        for bad in [
            " admin@acme.example",
            "ad min@acme.example",
            "a@b@acme.example",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email("admin@localhost").is_ok());
        assert!(check_email("admin@callhook.local").is_ok());
        for bad in ["admin", "@acme.example", "@localhost", "admin@acme", ""] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email(&format!("{}@acme.example", "a".repeat(250))).is_err());
    }

    #[test]
    fn an_invitation_names_an_email_and_a_role() {
        let fields = |v: serde_json::Value| match parse_invite(v.as_object().unwrap()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.field).collect::<Vec<_>>(),
        };
        assert!(fields(json!({"email": "Asha@Acme.Example", "role": "viewer"})).is_empty());
        assert_eq!(fields(json!({})), ["email", "role"]);
        assert_eq!(
            fields(json!({"email": "asha", "role": "boss", "name": "Asha"})),
            ["email", "role", "name"]
        );
    }

    #[test]
    fn passwords_people_choose_have_a_length() {
        assert!(check_password_rules("short").is_err());
        assert!(check_password_rules("long enough").is_ok());
        assert!(check_password_rules(&"x".repeat(201)).is_err());
    }
}
