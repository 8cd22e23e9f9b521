//! `POST /v1/events`: call events in (SPEC §4), one or up to 1000 at once, all or nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::extract::{BodyLimit, Caller, JsonBody};
use super::problem::{ApiResult, Problem};
use crate::core::event::CallType;
use crate::ingest::Accepted;
use crate::service::events;

/// Bodies of event batches may be this large.
pub const EVENTS_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(post_events))
        .layer(axum::Extension(BodyLimit(EVENTS_BODY_LIMIT)))
}

/// A call event as posted (SPEC §4). Exactly one of `answered_by`, `dialed`, `dtmf`, `ended`,
/// matching `type` (none for `call.received`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CallEventInput {
    /// Unique per account; a repeat is accepted once and ignored after.
    pub id: Option<String>,
    /// Only with the operator token: the account the event is for.
    pub account_id: Option<String>,
    /// `call.received`, `call.answered`, `call.dialed`, `call.dtmf` or `call.ended`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::core::event::EventType)]
    pub event_type: String,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub call: CallInput,
    pub answered_by: Option<AnsweredByInput>,
    pub dialed: Option<DialedInput>,
    pub dtmf: Option<DtmfInput>,
    pub ended: Option<EndedInput>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CallInput {
    pub call_id: String,
    pub leg_id: Option<String>,
    /// `inbound`, `outbound` or `click_to_call`.
    #[schema(value_type = CallType)]
    pub call_type: String,
    /// E.164.
    #[schema(pattern = r"^\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$")]
    pub did_number: String,
    /// E.164.
    #[schema(pattern = r"^\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$")]
    pub customer_number: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AnsweredByInput {
    /// `ivr`, `ring_group`, `queue`, `extension` or `customer`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::core::event::AnswerKind)]
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
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DialedInput {
    /// `direct`, `ring_group` or `queue`.
    #[schema(value_type = crate::core::event::DialVia)]
    pub via: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub extensions: Vec<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DtmfInput {
    /// One of 0-9, *, #, A-D.
    pub digit: String,
    pub digits: Option<String>,
    pub ivr_id: Option<String>,
    pub ivr_name: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct EndedInput {
    /// `answered` or `missed`.
    #[schema(value_type = crate::core::event::EndStatus)]
    pub status: String,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    pub duration: Option<u32>,
    pub billsec: Option<u32>,
    pub hangup_cause: Option<String>,
    /// `customer`, `extension` or `system`.
    #[schema(value_type = Option<crate::core::event::HangupBy>)]
    pub hangup_by: Option<String>,
    pub answered_extension: Option<String>,
    pub answered_extension_name: Option<String>,
    pub missed_extensions: Option<Vec<String>>,
    /// `ivr`, `ring_group`, `queue` or `extension`.
    #[schema(value_type = Option<crate::core::event::Stage>)]
    pub last_stage: Option<String>,
    pub recording_url: Option<String>,
}

/// What `POST /v1/events` takes: one call event, or an array of up to 1000.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsInput {
    One(Box<CallEventInput>),
    Batch(Vec<CallEventInput>),
}

/// Ingests one call event or an array of up to 1000. Answers 202 only once the events and
/// all their deliveries are committed; nothing is stored if any event is invalid.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventsInput,
    responses((status = 202, body = Accepted), (status = 422, body = Problem), (status = 413, body = Problem)))]
async fn post_events(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let accepted = events::post(&state.svc, &caller, &body.0).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
