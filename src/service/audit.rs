//! The audit log (SPEC §13) as the API and the Audit page read it: the account's entries,
//! newest first, filtered by resource, actor, action and time. Open to the roles that may
//! change things (admins and owners, admin keys); the entries themselves are written by the
//! store methods that make each change.

use super::{Actor, Denied, Failure, IntoFailure, Need};
use crate::core::audit::Action;
use crate::core::validate::{Choice, FieldErrors};
use crate::store::{AuditEntry, AuditFilter, Page, PageRequest, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for AuditError {
    fn into_failure(self) -> Failure {
        match self {
            AuditError::Invalid(f) => Failure::Invalid(f),
            AuditError::Denied(d) => d.into_failure(),
            AuditError::Store(e) => e.into_failure(),
        }
    }
}

/// The filters as a query string or a form gives them; empty ones filter nothing.
#[derive(Debug, Clone, Default)]
pub struct FilterInput<'a> {
    pub resource_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// Reads the filters, naming every bad one.
pub fn parse_filter(input: &FilterInput) -> Result<AuditFilter, FieldErrors> {
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut errors = FieldErrors::default();
    let action = given(input.action).and_then(|a| {
        let parsed = Action::parse(&a);
        if parsed.is_none() {
            errors.push(
                "action",
                format!("{a:?} is not an action; use {}", Action::choices()),
            );
        }
        parsed
    });
    let since = super::filter_time(&mut errors, "since", input.since);
    let until = super::filter_time(&mut errors, "until", input.until);
    errors.into_result(AuditFilter {
        resource_id: given(input.resource_id),
        actor: given(input.actor),
        action,
        since,
        until,
    })
}

/// The account's entries matching `filter`, newest first.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    filter: &FilterInput<'_>,
    page: &PageRequest,
) -> Result<Page<AuditEntry>, AuditError> {
    actor.may(Need::ReadAudit)?;
    let filter = parse_filter(filter).map_err(AuditError::Invalid)?;
    Ok(store.list_audit(actor.account(), &filter, page).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_filter_is_named() {
        let bad = FilterInput {
            action: Some("webhook.explode"),
            since: Some("yesterday"),
            until: Some("2026-11-27"),
            ..FilterInput::default()
        };
        let fields: Vec<String> = parse_filter(&bad)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["action", "since", "until"]);
        let empty = FilterInput {
            until: Some(""),
            ..FilterInput::default()
        };
        assert!(parse_filter(&empty).is_err(), "an empty time is no time");
        let good = FilterInput {
            resource_id: Some(" wh_1 "),
            action: Some("webhook.update"),
            since: Some("2026-11-27T00:00:00Z"),
            actor: Some(""),
            ..FilterInput::default()
        };
        let f = parse_filter(&good).unwrap();
        assert_eq!(f.resource_id.as_deref(), Some("wh_1"));
        assert_eq!(f.action, Some(Action::WebhookUpdate));
        assert!(f.actor.is_none() && f.since.is_some() && f.until.is_none());
    }
}
