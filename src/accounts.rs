//! Accounts, their API keys and their web admins are made here and only here: the operator
//! API, the web page, the CLI and the very first start all call these functions, so every
//! name and email is checked the same way and every row is written the same way.

use jiff::Timestamp;

use crate::api::auth::{hash_password, new_api_key, random_token};
use crate::core::id::new_id;
use crate::core::validate::FieldErrors;
use crate::store::{Account, ApiKey, Store, StoreError, User};

/// Longest name of an account or an API key, in characters.
const MAX_NAME: usize = 100;
/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Length of a generated sign-in password (base64url: about 120 random bits).
const PASSWORD_LEN: usize = 20;

/// Why an account, key or user was not made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A name or email that breaks the rules.
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password could not be hashed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn invalid(field: &str, message: impl Into<String>) -> CreateError {
    let mut e = FieldErrors::default();
    e.push(field, message);
    CreateError::Invalid(e)
}

/// The name of an account or an API key as kept: trimmed, 1 to 100 characters; else what is
/// wrong with it.
pub fn check_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err("must be 1 to 100 characters");
    }
    Ok(name.to_owned())
}

/// An admin's email as kept and looked up at sign-in: trimmed and lower-case.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// An admin's email, normalized, if it looks like an address (`name@example.com`, or
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

/// An API key just made: the row as stored, and the secret, which exists only now.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// An account just made, with its first API key.
#[derive(Debug)]
pub struct NewAccount {
    pub account: Account,
    pub api_key: NewApiKey,
}

/// A web admin just made, with the generated password to hand over once.
#[derive(Debug)]
pub struct NewUser {
    pub user: User,
    pub password: String,
}

/// Makes an account named `name` with a first API key named "default".
pub async fn create_account(store: &dyn Store, name: &str) -> Result<NewAccount, CreateError> {
    let name = check_name(name).map_err(|m| invalid("name", m))?;
    let account = Account {
        id: new_id("acct"),
        name,
        created_at: Timestamp::now(),
    };
    store.insert_account(&account).await?;
    let api_key = create_api_key(store, &account.id, "default").await?;
    Ok(NewAccount { account, api_key })
}

/// Makes an API key named `name` for account `account_id`.
pub async fn create_api_key(
    store: &dyn Store,
    account_id: &str,
    name: &str,
) -> Result<NewApiKey, CreateError> {
    let name = check_name(name).map_err(|m| invalid("name", m))?;
    let (key, hash, secret) = new_api_key(account_id, &name);
    store.insert_api_key(&key, &hash).await?;
    Ok(NewApiKey { key, secret })
}

/// Makes a web admin of account `account_id` who signs in with `email` and a generated
/// password.
pub async fn create_user(
    store: &dyn Store,
    account_id: &str,
    email: &str,
) -> Result<NewUser, CreateError> {
    let email = check_email(email).map_err(|m| invalid("email", m))?;
    let password = random_token("")[..PASSWORD_LEN].to_owned();
    let user = User {
        id: new_id("usr"),
        account_id: account_id.to_owned(),
        email,
        password_hash: hash_password(&password)?,
        created_at: Timestamp::now(),
    };
    store.insert_user(&user).await?;
    Ok(NewUser { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_one_to_a_hundred_characters() {
        assert_eq!(check_name("  Acme  ").as_deref(), Ok("Acme"));
        assert!(check_name("   ").is_err());
        assert!(check_name(&"é".repeat(100)).is_ok());
        assert!(check_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn emails_are_lower_case_and_need_a_domain() {
        assert_eq!(
            check_email(" Admin@Acme.Example ").as_deref(),
            Ok("admin@acme.example")
        );
        assert!(check_email("admin@localhost").is_ok());
        assert!(check_email(crate::app::ADMIN_EMAIL).is_ok());
        for bad in ["admin", "@acme.example", "@localhost", "admin@acme", ""] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email(&format!("{}@acme.example", "a".repeat(250))).is_err());
    }
}
