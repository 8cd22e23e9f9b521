//! Accounts (tenants), made and read by the operator. Accounts are made here and only here:
//! the operator API, the CLI and the very first start all call [`create`].

use jiff::Timestamp;

use super::api_keys::{self, ApiKeyError, NewApiKey};
use super::{Failure, IntoFailure, invalid, or_not_found};
use crate::core::id::AccountId;
use crate::core::validate::FieldErrors;
use crate::store::{Account, Page, PageRequest, Store, StoreError};

/// Longest name of an account or an API key, in characters.
const MAX_NAME: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account not found")]
    NotFound,
    /// A name that breaks the rules.
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for AccountError {
    fn into_failure(self) -> Failure {
        match self {
            AccountError::NotFound => Failure::NotFound("account"),
            AccountError::Invalid(f) => Failure::Invalid(f),
            AccountError::Store(e) => e.into_failure(),
        }
    }
}

impl From<ApiKeyError> for AccountError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid(f) => AccountError::Invalid(f),
            ApiKeyError::Store(e) => AccountError::Store(e),
            // Making an account's first key neither looks a key up nor revokes one, and the
            // operator is no actor a role could refuse.
            e @ (ApiKeyError::NotFound | ApiKeyError::Conflict(_) | ApiKeyError::Denied(_)) => {
                AccountError::Store(StoreError::Conflict(e.to_string()))
            }
        }
    }
}

/// The name of an account or an API key: 1 to 100 characters, none of them control
/// characters, not starting or ending with a space (so what is kept is what was sent, and the
/// OpenAPI document can say exactly what is accepted); else what is wrong with it.
pub fn check_name(name: &str) -> Result<String, &'static str> {
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err("must be 1 to 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not hold control characters");
    }
    if name.trim() != name {
        return Err("must not start or end with a space");
    }
    Ok(name.to_owned())
}

/// An account just made, with its first API key.
#[derive(Debug)]
pub struct NewAccount {
    pub account: Account,
    pub api_key: NewApiKey,
}

/// Makes an account named `name` with a first (admin) API key named "default"; `how` says who
/// asked, for the audit log (the operator API, the command line, the first start).
pub async fn create(store: &dyn Store, name: &str, how: &str) -> Result<NewAccount, AccountError> {
    let name = check_name(name).map_err(|m| AccountError::Invalid(invalid("name", m)))?;
    let account = Account {
        id: AccountId::new(),
        name,
        created_at: Timestamp::now(),
    };
    store.insert_account(&account).await?;
    let api_key = api_keys::create_in(store, &account.id, "default", how).await?;
    Ok(NewAccount { account, api_key })
}

pub async fn list(store: &dyn Store, page: &PageRequest) -> Result<Page<Account>, AccountError> {
    Ok(store.list_accounts(page).await?)
}

/// The account `id`.
pub async fn get(store: &dyn Store, id: &AccountId) -> Result<Account, AccountError> {
    store
        .get_account(id)
        .await
        .map_err(|e| or_not_found(e, AccountError::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_one_to_a_hundred_characters() {
        assert_eq!(check_name("Acme Co").as_deref(), Ok("Acme Co"));
        for bad in ["", "   ", " Acme", "Acme\u{a0}", "Ac\u{1}me", "Acme\n"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"é".repeat(100)).is_ok());
        assert!(check_name(&"é".repeat(101)).is_err());
    }
}
