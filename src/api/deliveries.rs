//! The delivery log (`/v1/webhooks/{id}/deliveries`, `/v1/deliveries/{id}`), resend, replay
//! and test sends.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::id::DeliveryId;
use crate::core::trigger::Trigger;
use crate::service::deliveries::{self, LogFilterInput};
use crate::service::{Actor, Services, parse_id};
use crate::store::{Attempt, Delivery, DeliveryStatus, ErrorKind};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(resend_delivery))
        .routes(routes!(replay_webhook))
        .routes(routes!(failure_groups))
        .routes(routes!(retry_deliveries))
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
    /// Pending after a failed attempt (the log's `status=retrying`).
    pub retrying: bool,
    /// Pending because an earlier delivery of the same call to this webhook has not finished.
    pub waiting_for_earlier: bool,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// The kind of the latest failed attempt; `null` once it succeeded.
    pub last_error_kind: Option<ErrorKind>,
    pub last_latency_ms: Option<u32>,
    /// A test delivery (sample data, sent from `POST /v1/webhooks/{id}/test`).
    pub test: bool,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        let retrying = d.retrying();
        DeliveryOut {
            id: d.id.into_string(),
            webhook_id: d.webhook_id.into_string(),
            event_id: d.event_id.into_string(),
            call_id: d.call_id.into_string(),
            trigger: d.trigger,
            status: d.status,
            retrying,
            waiting_for_earlier: d.waiting,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(ts),
            created_at: ts(d.created_at),
            updated_at: ts(d.updated_at),
            last_attempt_at: d.last_attempt_at.map(ts),
            last_status: d.last_status,
            last_error: d.last_error,
            last_error_kind: d.last_error_kind,
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

/// Why an attempt failed (SPEC §12). A 2xx whose body broke off is a success that keeps this
/// note of what broke.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptError {
    pub kind: ErrorKind,
    /// The HTTP status, for `http_status` and `redirect`.
    pub status: Option<u16>,
    /// What happened, in words: `answered 500 Internal Server Error`, `the name crm.example
    /// does not resolve (…)`, `connection refused by 203.0.113.5:443`.
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
                (Some(kind), Some(message)) => Some(AttemptError {
                    kind,
                    status: a.response_status,
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

/// What the log's `status` filter takes: `retrying` is pending after a failed attempt.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum LogStatus {
    Pending,
    Retrying,
    Succeeded,
    Failed,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `retrying` (pending after a failed attempt), `succeeded` or `failed`.
    #[param(value_type = Option<LogStatus>, inline)]
    pub status: Option<String>,
    pub call_id: Option<String>,
    /// The call's DID or the customer's number, E.164.
    #[param(pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub number: Option<String>,
    /// The kind of the latest failed attempt.
    #[param(value_type = Option<ErrorKind>)]
    pub error_kind: Option<String>,
    /// The latest attempt's HTTP status.
    #[param(value_type = Option<u16>, minimum = 100, maximum = 599)]
    pub http_status: Option<String>,
    /// RFC 3339: deliveries created at or after.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: deliveries created before.
    #[param(format = DateTime)]
    pub until: Option<String>,
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

/// A webhook's deliveries, newest first, filtered (SPEC §12): every filter given must hold.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries",
    params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = ListOf<DeliveryOut>), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Every bad filter, named")))]
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
    let filter = LogFilterInput {
        status: q.status.as_deref(),
        call_id: q.call_id.as_deref(),
        number: q.number.as_deref(),
        error_kind: q.error_kind.as_deref(),
        http_status: q.http_status.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    let actor = caller.actor()?;
    let page =
        deliveries::search(&*state.svc.store, actor, &parse_id(&id)?, &filter, &page).await?;
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailuresQuery {
    /// RFC 3339: deliveries created at or after (default: 24 hours ago).
    #[param(format = DateTime)]
    pub since: Option<String>,
}

/// Failed and retrying deliveries that went wrong the same way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailureGroupOut {
    pub kind: ErrorKind,
    /// The HTTP status, for `http_status` and `redirect`.
    pub status: Option<u16>,
    pub message: String,
    pub count: u64,
    /// The earliest and latest of their latest attempts.
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    /// One of them, to open.
    pub example_delivery_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailureGroups {
    pub since: String,
    pub groups: Vec<FailureGroupOut>,
}

/// A webhook's failed and retrying deliveries (test sends left out), grouped by error kind,
/// HTTP status and message; largest group first, at most 100.
#[utoipa::path(get, path = "/v1/webhooks/{id}/failures", tag = "deliveries",
    params(("id" = String, Path), FailuresQuery),
    responses((status = 200, body = FailureGroups), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "A bad since, named")))]
async fn failure_groups(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FailuresQuery>,
) -> ApiResult<Json<FailureGroups>> {
    let actor = caller.actor()?;
    let since = deliveries::failures_since(q.since.as_deref(), Timestamp::now())?;
    let groups =
        deliveries::failure_groups(&*state.svc.store, actor, &parse_id(&id)?, since).await?;
    Ok(Json(FailureGroups {
        since: ts(since),
        groups: groups
            .into_iter()
            .map(|g| FailureGroupOut {
                kind: g.kind,
                status: g.status,
                message: g.message,
                count: g.count,
                first_at: g.first_at.map(ts),
                last_at: g.last_at.map(ts),
                example_delivery_id: g.example.into_string(),
            })
            .collect(),
    }))
}

/// What a bulk retry takes: the log's filters. Only failed and retrying deliveries are
/// retried; none given retries them all.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct RetryInput {
    /// `failed` or `retrying`; left out, both.
    #[schema(value_type = Option<RetryStatus>)]
    pub status: Option<String>,
    pub call_id: Option<String>,
    /// The call's DID or the customer's number, E.164.
    #[schema(pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub number: Option<String>,
    #[schema(value_type = Option<ErrorKind>)]
    pub error_kind: Option<String>,
    #[schema(minimum = 100, maximum = 599)]
    pub http_status: Option<u16>,
    /// RFC 3339: deliveries created at or after.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: deliveries created before.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// The deliveries a bulk retry takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RetryStatus {
    Failed,
    Retrying,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// Deliveries retried now.
    pub retried: u64,
}

/// Retries now every failed or retrying delivery of the webhook that matches the log's
/// filters (never a test delivery), each call's in their order, each with a fresh retry
/// schedule.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/retry", tag = "deliveries", params(("id" = String, Path)),
    request_body = RetryInput,
    responses((status = 202, body = Retried), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn retry_deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Retried>)> {
    let (actor, body) = (caller.actor()?, body.object()?);
    let n = deliveries::retry(&state.svc, actor, &parse_id(&id)?, body).await?;
    Ok((StatusCode::ACCEPTED, Json(Retried { retried: n })))
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
