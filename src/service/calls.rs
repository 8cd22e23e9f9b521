//! Calls: the account's calls found by number and time, and one call's events with the
//! deliveries each caused.

use super::{Actor, Denied, Failure, IntoFailure, Need, Services, or_not_found};
use crate::connectors::ConnectorStatus;
use crate::core::id::CallId;
use crate::core::number::E164;
use crate::core::validate::FieldErrors;
use crate::store::{
    CallFilter, CallSummary, Delivery, Page, PageRequest, Store, StoreError, StoredEvent,
};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("call not found")]
    NotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for CallError {
    fn into_failure(self) -> Failure {
        match self {
            CallError::NotFound => Failure::NotFound("call"),
            CallError::Invalid(f) => Failure::Invalid(f),
            CallError::Denied(d) => d.into_failure(),
            CallError::Store(e) => e.into_failure(),
        }
    }
}

/// The filters of the Calls list as a query string or a form gives them.
#[derive(Debug, Clone, Default)]
pub struct FilterInput<'a> {
    pub number: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// Reads the filters, naming every bad one. A number is read as E.164 (spaces, dashes and
/// brackets dropped); an empty one filters nothing. A time is given whole or left out: an
/// empty one is refused, not read as none.
pub fn parse_filter(input: &FilterInput) -> Result<CallFilter, FieldErrors> {
    let mut errors = FieldErrors::default();
    let number = input
        .number
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .and_then(|n| match E164::parse(n) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push("number", e);
                None
            }
        });
    let since = super::filter_time(&mut errors, "since", input.since);
    let until = super::filter_time(&mut errors, "until", input.until);
    errors.into_result(CallFilter {
        number,
        since,
        until,
    })
}

/// A page of the account's calls that `filter` takes, the latest begun first (test sends
/// left out), each with its events' types and its deliveries counted by status.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    filter: &FilterInput<'_>,
    page: &PageRequest,
) -> Result<Page<CallSummary>, CallError> {
    actor.may(Need::Read)?;
    let filter = parse_filter(filter).map_err(CallError::Invalid)?;
    Ok(store.list_calls(actor.account(), &filter, page).await?)
}

/// The call's events in the order they arrived, each with the deliveries it caused.
pub async fn timeline(
    store: &dyn Store,
    actor: &Actor,
    call_id: &CallId,
) -> Result<Vec<(StoredEvent, Vec<Delivery>)>, CallError> {
    actor.may(Need::Read)?;
    store
        .call_timeline(actor.account(), call_id)
        .await
        .map_err(|e| or_not_found(e, CallError::NotFound))
}

/// The PBX connectors that report the account's calls.
pub fn connectors(svc: &Services, actor: &Actor) -> Result<Vec<ConnectorStatus>, CallError> {
    actor.may(Need::Read)?;
    Ok(svc
        .connectors
        .status()
        .into_iter()
        .filter(|c| c.account_id == actor.account().as_str())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_e164_and_every_bad_filter_is_named() {
        let f = parse_filter(&FilterInput {
            number: Some(" +91 80652-51305 "),
            since: Some("2026-11-27T04:00:00Z"),
            until: None,
        })
        .unwrap();
        assert_eq!(f.number.unwrap().as_str(), "+918065251305");
        assert_eq!(f.since.unwrap().to_string(), "2026-11-27T04:00:00Z");
        assert!(f.until.is_none());
        assert!(
            parse_filter(&FilterInput::default())
                .unwrap()
                .number
                .is_none()
        );
        let bad = parse_filter(&FilterInput {
            number: Some("918065251305"),
            since: Some(""),
            until: Some("2026-11-27"),
        })
        .unwrap_err();
        let fields: Vec<&str> = bad.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["number", "since", "until"]);
    }
}
