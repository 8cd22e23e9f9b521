//! The delivery log (`/v1/webhooks/{id}/deliveries`, `/v1/deliveries/{id}`), resend, replay
//! and test sends.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::id::{CallId, DeliveryId};
use crate::core::trigger::Trigger;
use crate::service::deliveries::{self, parse_status};
use crate::service::{Actor, Services, parse_id};
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryStatus};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(resend_delivery))
        .routes(routes!(replay_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(test_unsaved_webhook))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Also the `webhook-id` header of every attempt: receivers deduplicate on it.
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub call_id: String,
    pub trigger: Trigger,
    pub status: DeliveryStatus,
    /// Pending because an earlier delivery of the same call to this webhook has not finished.
    pub waiting_for_earlier: bool,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u32>,
    /// A test delivery (sample data, sent from `POST /v1/webhooks/{id}/test`).
    pub test: bool,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id.into_string(),
            webhook_id: d.webhook_id.into_string(),
            event_id: d.event_id.into_string(),
            call_id: d.call_id.into_string(),
            trigger: d.trigger,
            status: d.status,
            waiting_for_earlier: d.waiting,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(ts),
            created_at: ts(d.created_at),
            updated_at: ts(d.updated_at),
            last_attempt_at: d.last_attempt_at.map(ts),
            last_status: d.last_status,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            test: d.test,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub n: u32,
    pub started_at: String,
    pub latency_ms: u32,
    pub request: AttemptRequest,
    /// `null` when no answer came (see `error`).
    pub response: Option<AttemptResponse>,
    pub error: Option<AttemptError>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The first 16 KiB.
    pub body: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptError {
    /// `timeout`, `connect`, `dns`, `tls`, `blocked` or `io`.
    pub kind: String,
    pub message: String,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        AttemptOut {
            n: a.n,
            started_at: ts(a.started_at),
            latency_ms: a.latency_ms,
            request: AttemptRequest {
                method: a.request_method,
                url: a.request_url,
                headers: a.request_headers,
                body: a.request_body,
            },
            response: a.response_status.map(|status| AttemptResponse {
                status,
                headers: a.response_headers.unwrap_or_default(),
                body: a.response_body,
            }),
            error: match (a.error_kind, a.error) {
                (Some(kind), Some(message)) => Some(AttemptError { kind, message }),
                (None, Some(message)) => Some(AttemptError {
                    kind: "io".into(),
                    message,
                }),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    pub attempt_log: Vec<AttemptOut>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`.
    #[param(value_type = Option<crate::store::DeliveryStatus>)]
    pub status: Option<String>,
    pub call_id: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

async fn detail(svc: &Services, actor: &Actor, id: &DeliveryId) -> ApiResult<DeliveryDetail> {
    let (d, attempts) = deliveries::get(&*svc.store, actor, id).await?;
    Ok(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts.into_iter().map(AttemptOut::from).collect(),
    })
}

/// A webhook's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries",
    params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = ListOf<DeliveryOut>), (status = 404, body = Problem)))]
async fn list_deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<ListOf<DeliveryOut>>> {
    let page = ListParams {
        limit: q.limit,
        after: q.after.clone(),
    }
    .page()?;
    let filter = DeliveryFilter {
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_status("status", s))
            .transpose()?,
        call_id: q
            .call_id
            .clone()
            .filter(|c| !c.is_empty())
            .map(CallId::from_string),
    };
    let actor = caller.actor()?;
    let page = deliveries::list(&*state.svc.store, actor, &parse_id(&id)?, &filter, &page).await?;
    Ok(Json(ListOf::from_page(page, DeliveryOut::from)))
}

/// One delivery with every attempt: request, response, latency, error.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem)))]
async fn get_delivery(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    Ok(Json(
        detail(&state.svc, caller.actor()?, &parse_id(&id)?).await?,
    ))
}

/// Sends a delivery again now, outside its schedule. One that had ended gets exactly one
/// more attempt.
#[utoipa::path(post, path = "/v1/deliveries/{id}/resend", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 202, body = DeliveryOut), (status = 404, body = Problem),
        (status = 409, description = "The delivery waits for an earlier one of its call, or is being sent", body = Problem)))]
async fn resend_delivery(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let actor = caller.actor()?;
    let id = parse_id(&id)?;
    deliveries::resend(&state.svc, actor, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(detail(&state.svc, actor, &id).await?.delivery),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    /// RFC 3339: deliveries created at or after this time.
    #[schema(format = DateTime)]
    pub since: String,
    /// Which deliveries: `failed` (default) or `succeeded`.
    #[schema(value_type = Option<ReplayStatus>)]
    pub status: Option<String>,
}

/// The deliveries a replay re-queues.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ReplayStatus {
    Failed,
    Succeeded,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Deliveries queued again.
    pub replayed: u64,
}

/// Queues a webhook's deliveries again (by default the failed ones) since a time, each call's
/// in their original order, each with a fresh retry schedule.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "deliveries", params(("id" = String, Path)),
    request_body = ReplayInput,
    responses((status = 202, body = Replayed), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn replay_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let n = deliveries::replay(&state.svc, actor, &parse_id(&id)?, body).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Sends sample data for the webhook's trigger now and answers with the outcome. It shows in
/// the delivery log, marked `test`; it is tried once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem),
        (status = 429, description = "The webhook's max_in_flight_per_webhook or rate_limit says not now (Retry-After)", body = Problem)))]
async fn test_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let actor = caller.actor()?;
    let delivery_id = deliveries::send_test(&state.svc, actor, &parse_id(&id)?).await?;
    Ok(Json(detail(&state.svc, actor, &delivery_id).await?))
}

/// What a test of an unsaved webhook answers: the attempt, and the secret that signed it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnsavedTestOut {
    /// Whether the receiver answered 2xx.
    pub succeeded: bool,
    /// The receiver's HTTP status; `null` when no answer came (see `error`).
    pub status: Option<u16>,
    /// A throwaway `whsec_…` secret made for this one request, which signed it: check the
    /// receiver's signature code with it. It is kept nowhere.
    pub secret: String,
    #[serde(flatten)]
    pub attempt: AttemptOut,
}

/// Sends the trigger's sample once to an unsaved webhook (the body a create takes, validated
/// the same way) and answers with the attempt. Nothing is stored: no webhook, event, delivery
/// or log row. The request is signed with a throwaway secret, given back in the answer.
#[utoipa::path(post, path = "/v1/webhooks/test", tag = "deliveries",
    request_body = super::webhooks::WebhookInput,
    responses((status = 200, body = UnsavedTestOut), (status = 422, body = Problem),
        (status = 429, description = "The account's unsaved tests already use max_in_flight_per_webhook, or the body's rate_limit says not yet (Retry-After)", body = Problem)))]
async fn test_unsaved_webhook(
    State(state): State<ApiState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Json<UnsavedTestOut>> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let t = deliveries::send_unsaved_test(&state.svc, actor, body, None).await?;
    Ok(Json(UnsavedTestOut {
        succeeded: t.succeeded,
        status: t.attempt.response_status,
        secret: t.secret.expose(),
        attempt: t.attempt.into(),
    }))
}
