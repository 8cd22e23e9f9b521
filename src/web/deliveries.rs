//! A delivery's page: its attempts (request, response, latency, error) and **Resend**; and
//! the state of pending deliveries as JSON, which the log and a call's timeline follow.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::form::PostForm;
use super::session::Signed;
use super::view::{
    Layout, When, delivery_badge, http_status, last_answer, latency, pretty_body, status_badge,
    when_in,
};
use super::{WebResult, WebState, page};
use crate::core::id::DeliveryId;
use crate::core::webhook::TimeZone;
use crate::service::Failure;
use crate::service::webhooks::{self, WebhookError};
use crate::service::{deliveries, parse_id};
use crate::store::{Attempt, Delivery, DeliveryStatus};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/deliveries/live", get(live))
        .route("/deliveries/{id}", get(show))
        .route("/deliveries/{id}/resend", post(resend))
}

struct AttemptView {
    n: u32,
    started: When,
    latency: String,
    ok: bool,
    /// `200 OK`, or what went wrong when no answer came.
    outcome: String,
    request_line: String,
    request_headers: Vec<(String, String)>,
    request_body: Option<String>,
    response_headers: Vec<(String, String)>,
    response_body: Option<String>,
    error: Option<String>,
}

impl AttemptView {
    /// An attempt as its page shows it, its time in the webhook's `zone` (named).
    fn new(a: Attempt, zone: &TimeZone) -> Self {
        let ok = a.response_status.is_some_and(|s| (200..300).contains(&s));
        AttemptView {
            n: a.n,
            started: when_in(a.started_at, zone),
            latency: latency(a.latency_ms),
            ok,
            outcome: match (a.response_status, &a.error_kind) {
                (Some(s), _) => http_status(s),
                (None, Some(kind)) => format!("No response ({})", kind.label()),
                (None, None) => "No response".to_owned(),
            },
            request_line: format!("{} {}", a.request_method, a.request_url),
            request_headers: a.request_headers,
            request_body: a.request_body.as_deref().map(pretty_body),
            response_headers: a.response_headers.unwrap_or_default(),
            response_body: a.response_body.filter(|b| !b.is_empty()),
            error: a.error,
        }
    }
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    layout: Layout,
    id: String,
    webhook_id: String,
    webhook_name: String,
    status_class: &'static str,
    status: &'static str,
    trigger: &'static str,
    call_id: String,
    event_id: String,
    test: bool,
    created: When,
    next_attempt: Option<When>,
    last_error: Option<String>,
    attempts: Vec<AttemptView>,
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    notice: Option<String>,
}

async fn show(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let (d, attempts) = deliveries::get(&*state.svc.store, &actor, &parse_id(&id)?).await?;
    // The webhook may have been deleted since; its log rows stay until retention.
    // Times are shown in the webhook's zone; a deleted one's in UTC.
    let (webhook_name, zone) = match webhooks::get(&*state.svc.store, &actor, &d.webhook_id).await {
        Ok(w) => (w.spec.name, w.spec.time_zone),
        Err(WebhookError::NotFound) => ("Deleted webhook".to_owned(), TimeZone::utc()),
        Err(e) => return Err(e.into()),
    };
    let (status_class, status) = status_badge(d.status, d.waiting);
    let mut attempts: Vec<AttemptView> = attempts
        .into_iter()
        .map(|a| AttemptView::new(a, &zone))
        .collect();
    // Newest first: the attempt an admin looks for is the last one.
    attempts.reverse();
    page(&DeliveryPage {
        layout: Layout::new(&signed, format!("Delivery {}", d.id), "webhooks")
            .with_notice(q.notice.as_deref()),
        id: d.id.into_string(),
        webhook_id: d.webhook_id.into_string(),
        webhook_name,
        status_class,
        status,
        trigger: d.trigger.label(),
        call_id: d.call_id.into_string(),
        event_id: d.event_id.into_string(),
        test: d.test,
        created: when_in(d.created_at, &zone),
        next_attempt: d.next_attempt_at.map(|t| when_in(t, &zone)),
        last_error: d.last_error,
        attempts,
    })
}

async fn resend(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    deliveries::resend(&state.svc, &form.signed.actor(), &parse_id(&id)?).await?;
    Ok(Redirect::to(&format!("/deliveries/{id}?notice=resent")).into_response())
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    /// Delivery ids, comma-separated.
    ids: Option<String>,
}

/// A delivery's state as a pending row of the log or a call's timeline shows it.
#[derive(Debug, Serialize)]
struct LiveDelivery {
    id: String,
    /// Still to be sent or retried: the page keeps following it.
    pending: bool,
    status_class: &'static str,
    status: &'static str,
    attempts: u32,
    last_response: String,
    latency: String,
}

impl From<Delivery> for LiveDelivery {
    fn from(d: Delivery) -> Self {
        let (status_class, status) = delivery_badge(&d);
        let (last_response, latency) = last_answer(&d);
        LiveDelivery {
            pending: d.status == DeliveryStatus::Pending,
            status_class,
            status,
            attempts: d.attempts,
            last_response,
            latency,
            id: d.id.into_string(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Live {
    deliveries: Vec<LiveDelivery>,
}

/// `GET /deliveries/live?ids=dlv_…,dlv_…`: how the page's pending deliveries stand now, for
/// its script to update their rows without a reload.
async fn live(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<LiveQuery>,
) -> WebResult<Json<Live>> {
    let mut ids = Vec::new();
    for (i, s) in q.ids.as_deref().unwrap_or("").split(',').enumerate() {
        if s.is_empty() {
            continue;
        }
        ids.push(DeliveryId::parse(s).ok_or_else(|| {
            Failure::Invalid(crate::service::invalid(
                format!("ids[{i}]"),
                format!("{s:?} is not a delivery id"),
            ))
        })?);
    }
    let now = deliveries::now(&*state.svc.store, &signed.actor(), &ids).await?;
    Ok(Json(Live {
        deliveries: now.into_iter().map(LiveDelivery::from).collect(),
    }))
}
