//! The webhook list: each webhook's name, trigger, URL, method, health (a failing one stands
//! out, with its last error) and its last 24 hours' success rate.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::service::webhooks;
use crate::store::{HealthState, PageRequest, Webhook};
use crate::web::session::Signed;
use crate::web::view::{Layout, When, when};
use crate::web::{WebResult, WebState, page};

struct WebhookRow {
    id: String,
    name: String,
    trigger: &'static str,
    url: String,
    method: &'static str,
    /// `healthy`, `failing`, `disabled` or `idle`.
    state: &'static str,
    state_label: &'static str,
    /// Since when it has been failing.
    failing_since: Option<When>,
    disabled_reason: Option<String>,
    /// What went wrong last, while failing.
    last_error: Option<String>,
    /// Percent of the last 24 hours' attempts that succeeded.
    success: Option<u64>,
    /// `ok`, `warn` or `bad`, for the rate's colour.
    success_class: &'static str,
    attempts: u64,
    retrying: u64,
    last: Option<When>,
}

impl WebhookRow {
    fn new(w: Webhook) -> WebhookRow {
        let state = w.health_state();
        let r = &w.recent;
        let success = r.success_rate().map(|x| (x * 100.0).round() as u64);
        WebhookRow {
            success_class: match success {
                Some(p) if p >= 95 => "ok",
                Some(p) if p >= 70 => "warn",
                Some(_) => "bad",
                None => "",
            },
            success,
            attempts: r.ok_attempts + r.failed_attempts,
            retrying: r.retrying,
            last: w.last_success_at.max(w.last_failure_at).map(when),
            state: state.as_str(),
            state_label: state_label(state),
            failing_since: w
                .failing_since
                .filter(|_| state == HealthState::Failing)
                .map(when),
            last_error: w
                .last_error
                .as_ref()
                .filter(|_| state == HealthState::Failing)
                .map(|e| format!("{}: {}", e.kind.label(), e.message)),
            id: w.id.into_string(),
            name: w.spec.name,
            trigger: w.spec.trigger.label(),
            url: w.spec.url.to_string(),
            method: w.spec.method.as_str(),
            disabled_reason: w.disabled_reason.filter(|_| !w.spec.enabled),
        }
    }
}

/// How a state reads in a badge.
pub(crate) fn state_label(s: HealthState) -> &'static str {
    match s {
        HealthState::Healthy => "Healthy",
        HealthState::Failing => "Failing",
        HealthState::Disabled => "Disabled",
        HealthState::Idle => "No deliveries yet",
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<WebhookRow>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    notice: Option<String>,
    after: Option<String>,
}

pub(super) async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let store = &*state.svc.store;
    let page_request = PageRequest {
        limit: 200,
        after: q.after.clone(),
    };
    let webhooks = webhooks::list(store, &actor, &page_request).await?;
    let rows = webhooks.items.into_iter().map(WebhookRow::new).collect();
    page(&ListPage {
        layout: Layout::new(&signed, "Webhook", "webhooks").with_notice(q.notice.as_deref()),
        rows,
        next: webhooks.next,
    })
}
