//! Call events posted to the API (SPEC §4): one or a batch of up to [`MAX_BATCH`], validated
//! whole, each assigned to its account, then handed to [`crate::ingest`] all or nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::auth::Caller;
use super::{Failure, IntoFailure, Services, invalid};
use crate::core::event::CallEvent;
use crate::core::id::AccountId;
use crate::core::validate::FieldErrors;
use crate::ingest::Accepted;
use crate::store::StoreError;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Every bad field of every event (`[3].call.did_number` in a batch).
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EventError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(f) => EventError::Invalid(f),
            e => EventError::Store(e),
        }
    }
}

impl IntoFailure for EventError {
    fn into_failure(self) -> Failure {
        match self {
            EventError::Invalid(f) => Failure::Invalid(f),
            EventError::Store(e) => e.into_failure(),
        }
    }
}

/// Ingests one event (an object) or a batch (an array): answered only once the events and all
/// their deliveries are committed; nothing is stored if any event is invalid.
pub async fn post(svc: &Services, caller: &Caller, body: &Value) -> Result<Accepted, EventError> {
    let (items, batch): (Vec<&Value>, bool) = match body {
        Value::Array(a) => (a.iter().collect(), true),
        v => (vec![v], false),
    };
    if items.is_empty() {
        return Err(EventError::Invalid(invalid(
            "",
            "the array is empty; send at least one event",
        )));
    }
    if items.len() > MAX_BATCH {
        return Err(EventError::Invalid(invalid(
            "",
            format!(
                "{} events in one request; send at most {MAX_BATCH}",
                items.len()
            ),
        )));
    }
    let mut errors = FieldErrors::default();
    let mut events = Vec::with_capacity(items.len());
    // Each account the operator names, with every field that named it: one lookup per account.
    let mut operator_accounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, v) in items.iter().enumerate() {
        let prefix = if batch {
            format!("[{i}]")
        } else {
            String::new()
        };
        let ev = match CallEvent::from_json(v) {
            Ok(ev) => ev,
            Err(e) => {
                errors.absorb(&prefix, e);
                continue;
            }
        };
        let field = |f: &str| {
            if batch {
                format!("{prefix}.{f}")
            } else {
                f.to_owned()
            }
        };
        let account = match (caller, &ev.account_id) {
            (Caller::Account(actor), None) => actor.account_id.clone(),
            (Caller::Account(actor), Some(named)) if actor.account_id == named.as_str() => {
                actor.account_id.clone()
            }
            (Caller::Account(_), Some(_)) => {
                errors.push(
                    field("account_id"),
                    "only the operator token may post events for another account",
                );
                continue;
            }
            (Caller::Operator, Some(named)) => {
                operator_accounts
                    .entry(named.clone())
                    .or_default()
                    .push(field("account_id"));
                // One that cannot be an account id is reported below with the unknown ones.
                let Some(id) = AccountId::parse(named) else {
                    continue;
                };
                id
            }
            (Caller::Operator, None) => {
                errors.push(
                    field("account_id"),
                    "is required with the operator token: name the account the event is for",
                );
                continue;
            }
        };
        events.push((account, ev));
    }
    for (account, fields) in operator_accounts {
        let found = match AccountId::parse(&account) {
            Some(id) => svc.store.get_account(&id).await,
            None => Err(StoreError::NotFound),
        };
        match found {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                for field in fields {
                    errors.push(field, format!("there is no account {account}"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !errors.is_empty() {
        return Err(EventError::Invalid(errors));
    }
    Ok(svc.ingest.accept(events).await?)
}
