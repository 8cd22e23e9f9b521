//! The webhook list: each webhook's name, trigger, URL, method, state and recent success rate.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::service::webhooks;
use crate::store::{PageRequest, Webhook, WebhookStats};
use crate::web::session::Signed;
use crate::web::view::{Layout, When, when};
use crate::web::{WebResult, WebState, page};

/// How many of a webhook's latest deliveries its success rate is taken over.
const RATE_WINDOW: u32 = 100;

struct WebhookRow {
    id: String,
    name: String,
    trigger: &'static str,
    url: String,
    method: &'static str,
    enabled: bool,
    disabled_reason: Option<String>,
    /// Percent of finished deliveries that succeeded, over the latest ones.
    success: Option<u64>,
    /// `ok`, `warn` or `bad`, for the rate's colour.
    success_class: &'static str,
    finished: u64,
    last: Option<When>,
}

impl WebhookRow {
    fn new(w: Webhook, stats: Option<&WebhookStats>) -> WebhookRow {
        let s = stats.cloned().unwrap_or_default();
        let finished = s.succeeded + s.failed;
        let success = (finished > 0).then(|| (s.succeeded * 100 + finished / 2) / finished);
        WebhookRow {
            success_class: match success {
                Some(p) if p >= 95 => "ok",
                Some(p) if p >= 70 => "warn",
                Some(_) => "bad",
                None => "",
            },
            success,
            finished,
            last: s.last_delivery_at.map(when),
            id: w.id.into_string(),
            name: w.spec.name,
            trigger: w.spec.trigger.label(),
            url: w.spec.url.to_string(),
            method: w.spec.method.as_str(),
            enabled: w.spec.enabled,
            disabled_reason: w.disabled_reason,
        }
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
    let stats = webhooks::stats(store, &actor, RATE_WINDOW).await?;
    let rows = webhooks
        .items
        .into_iter()
        .map(|w| {
            let s = stats.iter().find(|(id, _)| *id == w.id).map(|(_, s)| s);
            WebhookRow::new(w, s)
        })
        .collect();
    page(&ListPage {
        layout: Layout::new(&signed, "Webhook", "webhooks").with_notice(q.notice.as_deref()),
        rows,
        next: webhooks.next,
    })
}
