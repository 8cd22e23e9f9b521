//! Calls: an account's recent calls, and one call's events with the deliveries each caused.

use super::{Actor, Failure, IntoFailure, Services, or_not_found};
use crate::connectors::ConnectorStatus;
use crate::core::id::CallId;
use crate::store::{CallSummary, Delivery, Store, StoreError, StoredEvent};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("call not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for CallError {
    fn into_failure(self) -> Failure {
        match self {
            CallError::NotFound => Failure::NotFound("call"),
            CallError::Store(e) => e.into_failure(),
        }
    }
}

/// The account's `limit` most recently active calls, newest first (test sends left out).
pub async fn recent(
    store: &dyn Store,
    actor: &Actor,
    limit: u32,
) -> Result<Vec<CallSummary>, CallError> {
    Ok(store.recent_calls(actor.account(), limit).await?)
}

/// The call's events in the order they arrived, each with the deliveries it caused.
pub async fn timeline(
    store: &dyn Store,
    actor: &Actor,
    call_id: &CallId,
) -> Result<Vec<(StoredEvent, Vec<Delivery>)>, CallError> {
    store
        .call_timeline(actor.account(), call_id)
        .await
        .map_err(|e| or_not_found(e, CallError::NotFound))
}

/// The PBX connectors that report the account's calls.
pub fn connectors(svc: &Services, actor: &Actor) -> Vec<ConnectorStatus> {
    svc.connectors
        .status()
        .into_iter()
        .filter(|c| c.account_id == actor.account().as_str())
        .collect()
}
