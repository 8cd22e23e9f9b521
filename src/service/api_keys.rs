//! An account's API keys (`chk_…`). The secret exists only in the answer to a create; the
//! store keeps its SHA-256.

use jiff::Timestamp;

use super::accounts::check_name;
use super::{Actor, Failure, Holding, IntoFailure, Quotas, Who, invalid, or_not_found};
use crate::core::credentials::{hash_token, random_token};
use crate::core::id::{AccountId, ApiKeyId};
use crate::core::validate::FieldErrors;
use crate::store::{ApiKey, Page, PageRequest, Store, StoreError};

pub const API_KEY_PREFIX: &str = "chk_";

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key not found")]
    NotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(
        "this is the account's last API key, and the one this request is made with; make another before revoking it"
    )]
    LastKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for ApiKeyError {
    fn into_failure(self) -> Failure {
        match self {
            ApiKeyError::NotFound => Failure::NotFound("API key"),
            ApiKeyError::Invalid(f) => Failure::Invalid(f),
            e @ ApiKeyError::LastKey => Failure::Conflict(e.to_string()),
            ApiKeyError::Store(e) => e.into_failure(),
        }
    }
}

/// An API key just made: the row as stored, and the secret, which exists only now.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Makes an API key named `name` for the actor's account.
pub async fn create(
    store: &dyn Store,
    quotas: &Quotas,
    actor: &Actor,
    name: &str,
) -> Result<NewApiKey, ApiKeyError> {
    check_name(name).map_err(|m| ApiKeyError::Invalid(invalid("name", m)))?;
    quotas
        .check(store, actor.account(), Holding::ApiKeys)
        .await?;
    create_in(store, actor.account(), name).await
}

/// Makes an API key named `name` for account `account_id` (the operator's and the CLI's way).
pub async fn create_in(
    store: &dyn Store,
    account_id: &AccountId,
    name: &str,
) -> Result<NewApiKey, ApiKeyError> {
    let name = check_name(name).map_err(|m| ApiKeyError::Invalid(invalid("name", m)))?;
    let secret = random_token(API_KEY_PREFIX);
    let key = ApiKey {
        id: ApiKeyId::new(),
        account_id: account_id.clone(),
        name,
        prefix: secret[..API_KEY_PREFIX.len() + 6].to_owned(),
        created_at: Timestamp::now(),
        last_used_at: None,
    };
    store.insert_api_key(&key, &hash_token(&secret)).await?;
    Ok(NewApiKey { key, secret })
}

pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<ApiKey>, ApiKeyError> {
    Ok(store.list_api_keys(actor.account(), page).await?)
}

/// Revokes a key: it stops working at once. A key may not revoke itself when it is the
/// account's last one (nothing could then make another through the API).
pub async fn revoke(store: &dyn Store, actor: &Actor, id: &ApiKeyId) -> Result<(), ApiKeyError> {
    if let Who::ApiKey { id: own, .. } = &actor.who
        && own == id
        && store.account_counts(actor.account()).await?.api_keys <= 1
    {
        return Err(ApiKeyError::LastKey);
    }
    store
        .delete_api_key(actor.account(), id)
        .await
        .map_err(|e| or_not_found(e, ApiKeyError::NotFound))
}
