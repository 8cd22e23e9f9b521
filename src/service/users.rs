//! The people who sign in to the web page, and their sessions.
//!
//! A session is a random 256-bit token the browser keeps in a cookie; the store keeps only
//! its SHA-256, so a copy of the database signs nobody in. Sessions slide: they last
//! [`SESSION_TTL`] from their last use, and never beyond [`SESSION_MAX`] from the sign-in, so
//! a stolen cookie kept busy does not live for ever. Each carries its own CSRF token.

use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};

use super::{Actor, Failure, IntoFailure, Who, invalid};
use crate::core::credentials::{hash_password, hash_token, random_token, verify_password};
use crate::core::id::{AccountId, UserId};
use crate::core::validate::FieldErrors;
use crate::store::{Session, Store, StoreError, User};

/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Length of a generated sign-in password (base64url: about 120 random bits).
const PASSWORD_LEN: usize = 20;
/// How long a session lives after its last use.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
/// How long a session lives at most, however busy: then its admin signs in again.
pub const SESSION_MAX: SignedDuration = SignedDuration::from_hours(24);
/// A session's expiry is pushed forward at most this often, not on every request.
const EXTEND_EVERY: SignedDuration = SignedDuration::from_mins(5);

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password could not be hashed, or the check could not run.
    #[error("{0}")]
    Internal(String),
}

impl IntoFailure for UserError {
    fn into_failure(self) -> Failure {
        match self {
            UserError::Invalid(f) => Failure::Invalid(f),
            UserError::Store(e) => e.into_failure(),
            UserError::Internal(m) => Failure::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// An email as kept and looked up at sign-in: trimmed and lower-case.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// An email, normalized, if it looks like an address (`name@example.com`, or
/// `name@localhost`).
pub fn check_email(raw: &str) -> Result<String, String> {
    let email = normalize_email(raw);
    let ok = email.len() <= MAX_EMAIL
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && (domain.contains('.') || domain == "localhost")
        });
    if ok {
        Ok(email)
    } else {
        Err(format!("{email:?} is not an email address"))
    }
}

/// A user just made, with the generated password to hand over once.
#[derive(Debug)]
pub struct NewUser {
    pub user: User,
    pub password: String,
}

/// Makes a user of account `account_id` who signs in with `email` and a generated password
/// (the CLI's and the first start's way).
pub async fn create(
    store: &dyn Store,
    account_id: &AccountId,
    email: &str,
) -> Result<NewUser, UserError> {
    let email = check_email(email).map_err(|m| UserError::Invalid(invalid("email", m)))?;
    let password = random_token("")[..PASSWORD_LEN].to_owned();
    let user = User {
        id: UserId::new(),
        account_id: account_id.clone(),
        email,
        password_hash: hash_password(&password).map_err(UserError::Internal)?,
        created_at: Timestamp::now(),
    };
    store.insert_user(&user).await?;
    Ok(NewUser { user, password })
}

/// The user of this sign-in as an [`Actor`].
pub fn actor(user: &User) -> Actor {
    Actor {
        account_id: user.account_id.clone(),
        who: Who::User {
            id: user.id.clone(),
            email: user.email.clone(),
        },
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
    let user = store.user_by_email(&normalize_email(email)).await?;
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
            check_email(" Admin@Acme.Example ").as_deref(),
            Ok("admin@acme.example")
        );
        assert!(check_email("admin@localhost").is_ok());
        assert!(check_email("admin@callhook.local").is_ok());
        for bad in ["admin", "@acme.example", "@localhost", "admin@acme", ""] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email(&format!("{}@acme.example", "a".repeat(250))).is_err());
    }
}
