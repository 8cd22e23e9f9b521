//! The delivery log (`/v1/webhooks/{id}/deliveries`, `/v1/deliveries/{id}`), resend, replay
//! and test sends.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, JsonBody, ListParams};
use super::problem::{ApiError, ApiResult, OrNotFound, Problem};
use super::{AppState, ListOf, ts};
use crate::core::id::{is_id, new_id};
use crate::core::sample::sample_event_for;
use crate::core::trigger::Trigger;
use crate::core::validate::Fields;
use crate::delivery::attempt;
use crate::ingest::stored_event;
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, NewDelivery, NewEvent};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(resend_delivery))
        .routes(routes!(replay_webhook))
        .routes(routes!(test_webhook))
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
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            call_id: d.call_id,
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
    pub status: Option<String>,
    pub call_id: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

fn parse_status(field: &str, s: &str) -> ApiResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| {
        ApiError::field(
            field,
            format!("{s:?} is not a status; use pending, succeeded or failed"),
        )
    })
}

async fn detail(state: &AppState, account_id: &str, id: &str) -> ApiResult<DeliveryDetail> {
    if !is_id("dlv", id) {
        return Err(ApiError::NotFound("delivery"));
    }
    let (d, attempts) = state
        .store
        .get_delivery(account_id, id)
        .await
        .or_404("delivery")?;
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
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<ListOf<DeliveryOut>>> {
    let account_id = caller.account()?;
    super::webhooks::load(&state, account_id, &id).await?;
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
        call_id: q.call_id.clone().filter(|c| !c.is_empty()),
    };
    let page = state
        .store
        .list_deliveries(account_id, &id, &filter, &page)
        .await?;
    Ok(Json(ListOf::from_page(page, DeliveryOut::from)))
}

/// One delivery with every attempt: request, response, latency, error.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem)))]
async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    Ok(Json(detail(&state, caller.account()?, &id).await?))
}

/// Sends a delivery again now, outside its schedule. One that had ended gets exactly one
/// more attempt.
#[utoipa::path(post, path = "/v1/deliveries/{id}/resend", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 202, body = DeliveryOut), (status = 404, body = Problem)))]
async fn resend_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let account_id = caller.account()?;
    resend(&state, account_id, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(detail(&state, account_id, &id).await?.delivery),
    ))
}

/// Makes the account's delivery `id` due now for one more attempt and wakes the dispatcher.
pub async fn resend(state: &AppState, account_id: &str, id: &str) -> ApiResult<()> {
    if !is_id("dlv", id) {
        return Err(ApiError::NotFound("delivery"));
    }
    state
        .store
        .resend(account_id, id, Timestamp::now())
        .await
        .or_404("delivery")?;
    state.ingest.wake();
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReplayInput {
    /// RFC 3339: deliveries created at or after this time.
    pub since: String,
    /// Which deliveries: `failed` (default) or `succeeded`.
    pub status: Option<String>,
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
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let account_id = caller.account()?;
    super::webhooks::load(&state, account_id, &id).await?;
    let mut f = Fields::new("", body.object()?);
    let since = f
        .req_str("since")
        .and_then(|s| match s.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                f.error(
                    "since",
                    format!("{s:?} is not an RFC 3339 timestamp with an offset"),
                );
                None
            }
        });
    let status = match f.str("status") {
        None => Some(DeliveryStatus::Failed),
        Some("pending") => {
            f.error(
                "status",
                "pending deliveries are already queued; replay failed or succeeded ones",
            );
            None
        }
        Some(s) => match DeliveryStatus::parse(s) {
            Some(st) => Some(st),
            None => {
                f.error(
                    "status",
                    format!("{s:?} is not a status; use failed or succeeded"),
                );
                None
            }
        },
    };
    f.finish().into_result(())?;
    let (Some(since), Some(status)) = (since, status) else {
        return Err(ApiError::field("since", "is required"));
    };
    let n = state
        .store
        .replay(
            account_id,
            &id,
            since,
            status,
            state.policy.schedule.max_attempts(),
            Timestamp::now(),
        )
        .await?;
    state.ingest.wake();
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Sends sample data for the webhook's trigger now and answers with the outcome. It shows in
/// the delivery log, marked `test`; it is tried once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem)))]
async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let account_id = caller.account()?;
    let webhook = super::webhooks::load(&state, account_id, &id).await?;
    let delivery_id = send_test(&state, webhook).await?;
    Ok(Json(detail(&state, account_id, &delivery_id).await?))
}

/// Sends sample data for `webhook`'s trigger now, waits for the one attempt and records it;
/// answers the test delivery's id. The REST API and the web page's **Send test** share it.
pub async fn send_test(state: &AppState, mut webhook: crate::store::Webhook) -> ApiResult<String> {
    let account_id = webhook.account_id.clone();
    let account_id = account_id.as_str();
    // A test goes out even while the webhook is disabled: it is how an admin checks a fix.
    webhook.spec.enabled = true;
    let mut event = sample_event_for(
        webhook.spec.trigger,
        &webhook.spec.call_types,
        webhook.spec.numbers.first(),
    );
    event.call.call_id = new_id("test");
    let now = Timestamp::now();
    let delivery_id = new_id("dlv");
    let new = NewEvent {
        event: stored_event(account_id, &event, now, true),
        deliveries: vec![NewDelivery {
            id: delivery_id.clone(),
            webhook_id: webhook.id.clone(),
            trigger: webhook.spec.trigger,
            attempt_limit: Some(1),
            not_before: None,
        }],
    };
    let lease = now
        .saturating_add(
            SignedDuration::try_from(state.settings.lease.0)
                .unwrap_or(SignedDuration::from_secs(60)),
        )
        .unwrap_or(now);
    let mut claimed = state.store.insert_test_delivery(new, lease).await?;
    claimed.webhook = webhook;
    let record = attempt::run(&state.client, &claimed, &state.policy).await;
    state
        .store
        .record_attempts(vec![record], Timestamp::now())
        .await?;
    Ok(delivery_id)
}
