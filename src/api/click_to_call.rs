//! `/v1/click-to-call` (SPEC §15): ask the PBX to ring an agent, then a customer; read how the
//! request is going.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, JsonBody};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ts};
use crate::service::click_to_call;
use crate::store::{ClickToCallStatus, StoredClickToCall};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(request_call))
        .routes(routes!(get_request))
}

/// A click-to-call request and how it is going.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClickToCallOut {
    /// `c2c_…`.
    pub request_id: String,
    /// The reference the call's events and `answered_by_customer` carry: the one given, or
    /// the request id when none was.
    pub ref_id: String,
    /// `queued`, `ringing_agent`, `ringing_customer`, `answered` or `failed`.
    #[schema(example = "ringing_agent")]
    pub state: &'static str,
    /// Why it failed: `agent_busy`, `agent_no_answer`, `agent_unavailable`, `agent_hung_up`,
    /// `customer_busy`, `customer_no_answer`, `customer_unavailable`, `originate_refused`,
    /// `connector_lost`.
    pub reason: Option<&'static str>,
    /// What the PBX (or callhook) said when it failed.
    pub cause: Option<String>,
    /// The call's id in the call events (`GET /v1/calls/{call_id}`), once the call showed up.
    pub call_id: Option<String>,
    pub agent_extension: String,
    pub customer_number: String,
    /// The caller id the customer sees.
    pub did_number: String,
    /// The connector placing it, once one took it.
    pub connector: Option<String>,
    pub created_at: String,
    /// When the node with the connector took it.
    pub placed_at: Option<String>,
    pub ringing_agent_at: Option<String>,
    pub ringing_customer_at: Option<String>,
    pub answered_at: Option<String>,
    pub failed_at: Option<String>,
    pub updated_at: String,
}

impl From<StoredClickToCall> for ClickToCallOut {
    fn from(r: StoredClickToCall) -> Self {
        let ended = r.ended_at.map(ts);
        let (answered_at, failed_at) = match r.status {
            ClickToCallStatus::Answered => (ended, None),
            ClickToCallStatus::Failed(_) => (None, ended),
            _ => (None, None),
        };
        ClickToCallOut {
            request_id: r.id.into_string(),
            ref_id: r.ref_id,
            state: r.status.as_str(),
            reason: r.status.reason().map(|x| x.as_str()),
            cause: r.cause,
            call_id: r.call_id.map(|c| c.into_string()),
            agent_extension: r.agent_extension,
            customer_number: r.customer_number.to_string(),
            did_number: r.did_number.to_string(),
            connector: r.connector,
            created_at: ts(r.created_at),
            placed_at: r.placed_at.map(ts),
            ringing_agent_at: r.ringing_agent_at.map(ts),
            ringing_customer_at: r.ringing_customer_at.map(ts),
            answered_at,
            failed_at,
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ClickToCallInput {
    /// The agent's extension, rung first (letters, digits and `- _ . @ +`).
    #[schema(example = "101", pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub agent_extension: String,
    /// The customer's number in E.164, dialled once the agent picked up.
    #[schema(
        example = "+919812345678",
        pattern = r"^\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$"
    )]
    pub customer_number: String,
    /// One of My Numbers, shown to the customer as caller id; the placing connector's
    /// `default_did` when absent.
    #[schema(
        example = "+918065251305",
        pattern = r"^\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$"
    )]
    pub did_number: Option<String>,
    /// Your reference (up to 100 letters, digits and `- _ . : / @ + #`): the call's events
    /// and `answered_by_customer` carry it, and the same `ref_id` again answers the same
    /// request. callhook uses the request id when absent.
    #[schema(example = "crm-lead-4711", pattern = r"^[A-Za-z0-9._:/@+#-]{1,100}$")]
    pub ref_id: Option<String>,
}

/// Asks the PBX to ring the agent, then the customer. The request is stored before this
/// answers `202`; follow it with `GET /v1/click-to-call/{request_id}`. The same `ref_id` again
/// places no second call and answers the same request.
#[utoipa::path(post, path = "/v1/click-to-call", tag = "click-to-call", request_body = ClickToCallInput,
    responses(
        (status = 202, body = ClickToCallOut, description = "Taken: queued for the placing connector (or, for a ref_id seen before, that request as it is now)",
            headers(("Location" = String, description = "Where to read the request"))),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The operator token, which has no account to call for"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`connector`: no connector of the account places calls, or it is not connected; `ref_id`: it names a request for another call"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Every bad field, named"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Shutting down or overloaded"),
    ))]
async fn request_call(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<(StatusCode, HeaderMap, Json<ClickToCallOut>)> {
    let r = click_to_call::request(&state.svc, caller.actor()?, body.object()?).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/click-to-call/{}", r.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(r.into())))
}

/// A click-to-call request: its state, the reason it failed, when it got to each state and
/// the call's id.
#[utoipa::path(get, path = "/v1/click-to-call/{request_id}", tag = "click-to-call",
    params(("request_id" = String, Path, description = "`c2c_…`, as the request's 202 answered")),
    responses(
        (status = 200, body = ClickToCallOut),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The operator token, which has no account"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such request in the account"),
    ))]
async fn get_request(
    State(state): State<ApiState>,
    caller: Caller,
    Path(request_id): Path<String>,
) -> ApiResult<Json<ClickToCallOut>> {
    let id = click_to_call::parse_id(&request_id)?;
    let r = click_to_call::get(&*state.svc.store, caller.actor()?, &id).await?;
    Ok(Json(r.into()))
}
