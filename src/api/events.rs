//! `POST /v1/events`: call events in (SPEC §4), one or up to 1000 at once, all or nothing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{BodyLimit, Caller, JsonBody};
use super::problem::{ApiError, ApiResult, Problem};
use crate::core::event::CallEvent;
use crate::core::validate::FieldErrors;
use crate::ingest::Accepted;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;
/// Bodies of event batches may be this large.
pub const EVENTS_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_events))
        .layer(axum::Extension(BodyLimit(EVENTS_BODY_LIMIT)))
}

/// A call event as posted (SPEC §4). Exactly one of `answered_by`, `dialed`, `dtmf`, `ended`,
/// matching `type` (none for `call.received`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallEventInput {
    /// Unique per account; a repeat is accepted once and ignored after.
    pub id: Option<String>,
    /// Only with the operator token: the account the event is for.
    pub account_id: Option<String>,
    /// `call.received`, `call.answered`, `call.dialed`, `call.dtmf` or `call.ended`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 with an offset.
    pub occurred_at: String,
    pub call: CallInput,
    pub answered_by: Option<AnsweredByInput>,
    pub dialed: Option<DialedInput>,
    pub dtmf: Option<DtmfInput>,
    pub ended: Option<EndedInput>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallInput {
    pub call_id: String,
    pub leg_id: Option<String>,
    /// `inbound`, `outbound` or `click_to_call`.
    pub call_type: String,
    /// E.164.
    pub did_number: String,
    /// E.164.
    pub customer_number: Option<String>,
    pub started_at: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AnsweredByInput {
    /// `ivr`, `ring_group`, `queue`, `extension` or `customer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub extension: Option<String>,
    pub extension_name: Option<String>,
    /// Seconds.
    pub ring_time: Option<u32>,
    /// Seconds.
    pub hold_time: Option<u32>,
    /// The click-to-call request's reference.
    pub ref_id: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DialedInput {
    /// `direct`, `ring_group` or `queue`.
    pub via: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub extensions: Vec<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DtmfInput {
    /// One of 0-9, *, #, A-D.
    pub digit: String,
    pub digits: Option<String>,
    pub ivr_id: Option<String>,
    pub ivr_name: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EndedInput {
    /// `answered` or `missed`.
    pub status: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration: Option<u32>,
    pub billsec: Option<u32>,
    pub hangup_cause: Option<String>,
    /// `customer`, `extension` or `system`.
    pub hangup_by: Option<String>,
    pub answered_extension: Option<String>,
    pub answered_extension_name: Option<String>,
    pub missed_extensions: Option<Vec<String>>,
    /// `ivr`, `ring_group`, `queue` or `extension`.
    pub last_stage: Option<String>,
    pub recording_url: Option<String>,
}

/// Ingests one call event or an array of up to 1000. Answers 202 only once the events and
/// all their deliveries are committed; nothing is stored if any event is invalid.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = CallEventInput,
    responses((status = 202, body = Accepted), (status = 422, body = Problem), (status = 413, body = Problem)))]
async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let (items, batch): (Vec<&Value>, bool) = match &body.0 {
        Value::Array(a) => (a.iter().collect(), true),
        v => (vec![v], false),
    };
    if items.is_empty() {
        return Err(ApiError::field(
            "",
            "the array is empty; send at least one event",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::field(
            "",
            format!(
                "{} events in one request; send at most {MAX_BATCH}",
                items.len()
            ),
        ));
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
        let account = match (&caller, &ev.account_id) {
            (Caller::Account { account_id, .. }, None) => account_id.clone(),
            (Caller::Account { account_id, .. }, Some(named)) if named == account_id => {
                account_id.clone()
            }
            (Caller::Account { .. }, Some(_)) => {
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
                named.clone()
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
        match state.store.get_account(&account).await {
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound) => {
                for field in fields {
                    errors.push(field, format!("there is no account {account}"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let accepted = state.ingest.accept(events).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
