//! Bearer tokens: account API keys (`chk_…`, kept as SHA-256) and the operator token. The
//! API's extractor asks [`authenticate`] who a request comes from.

use jiff::Timestamp;

use super::api_keys::API_KEY_PREFIX;
use super::{Actor, Failure, IntoFailure, Services, Who};
use crate::core::credentials::{hash_token, tokens_match};
use crate::store::StoreError;

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY_SECS: i64 = 60;

/// Who is calling the API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator token: manages accounts, may post events for any account.
    Operator,
    /// An account API key: sees only its own account.
    Account(Actor),
}

impl Caller {
    /// The caller acting on its account, for account-scoped operations.
    pub fn actor(&self) -> Result<&Actor, Failure> {
        match self {
            Caller::Account(actor) => Ok(actor),
            Caller::Operator => Err(Failure::Forbidden(
                "this route works on one account's data; call it with that account's API key (chk_…)".into(),
            )),
        }
    }

    /// Succeeds only for the operator.
    pub fn operator(&self) -> Result<(), Failure> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Account(_) => Err(Failure::Forbidden(
                "this route needs the operator token".into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or unknown bearer token")]
    Unknown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for AuthError {
    fn into_failure(self) -> Failure {
        match self {
            // The API answers 401 itself; a failure only reaches here from elsewhere.
            e @ AuthError::Unknown => Failure::Forbidden(e.to_string()),
            AuthError::Store(e) => e.into_failure(),
        }
    }
}

/// Who `token` is: an account's API key (its use noted at most once a minute) or the
/// operator.
pub async fn authenticate(svc: &Services, token: &str) -> Result<Caller, AuthError> {
    let hash = hash_token(token);
    if token.starts_with(API_KEY_PREFIX) {
        let key = svc
            .store
            .api_key_by_hash(&hash)
            .await?
            .ok_or(AuthError::Unknown)?;
        let now = Timestamp::now();
        if key
            .last_used_at
            .is_none_or(|t| now.as_second() - t.as_second() >= TOUCH_EVERY_SECS)
        {
            let store = svc.store.clone();
            let id = key.id.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&id, now).await {
                    tracing::warn!(error = %e, "could not note an API key's use");
                }
            });
        }
        return Ok(Caller::Account(Actor {
            account_id: key.account_id,
            who: Who::ApiKey {
                id: key.id,
                name: key.name,
            },
            role: key.role,
        }));
    }
    if tokens_match(&hash, &svc.operator_hash) {
        return Ok(Caller::Operator);
    }
    Err(AuthError::Unknown)
}
