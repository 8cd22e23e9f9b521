//! Calls: the account's calls, found by number and day and paged, with the state of the PBX
//! connectors that report them and the Call form (`click_to_call.rs`); and a call's timeline
//! of events with the deliveries each one caused.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::click_to_call::{CallForm, DidChoice, RequestView, did_choices};
use super::form::urlencode;
use super::session::Signed;
use super::view::{Layout, When, day_start, last_answer, status_badge, when, when_in};
use super::{WebResult, WebState, page};
use crate::connectors::ConnectorStatus;
use crate::core::id::{CallId, WebhookId};
use crate::core::webhook::TimeZone;
use crate::service::calls::{CallError, FilterInput};
use crate::service::click_to_call::{self, ClickToCallError};
use crate::service::{calls, webhooks};
use crate::store::{CallSummary, DeliveryCounts, DeliveryStatus, PageRequest};

/// How many calls a page of the Calls list shows.
const PAGE: u32 = 50;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/calls", get(list))
        .route("/calls/{call_id}", get(show))
}

struct CallRow {
    call_id: String,
    call_type: String,
    did_number: String,
    customer_number: String,
    /// Its events' types without the `call.` every one has (`received`, `answered`, …).
    events: Vec<String>,
    deliveries: DeliveryCounts,
    started: When,
}

impl From<CallSummary> for CallRow {
    fn from(c: CallSummary) -> Self {
        CallRow {
            call_type: c.call_type.unwrap_or_default().replace('_', " "),
            did_number: c.did_number.unwrap_or_default(),
            customer_number: c.customer_number.unwrap_or_else(|| "—".to_owned()),
            events: c
                .event_types
                .iter()
                .map(|t| t.strip_prefix("call.").unwrap_or(t).to_owned())
                .collect(),
            deliveries: c.deliveries,
            started: when_in(c.started_at, &TimeZone::utc()),
            call_id: c.call_id.into_string(),
        }
    }
}

/// The Calls list's filters as the page's form sends them.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct CallsQuery {
    /// The DID or the customer's number.
    number: Option<String>,
    /// `YYYY-MM-DD` (UTC), from the start of that day.
    from: Option<String>,
    /// `YYYY-MM-DD` (UTC), to the end of that day.
    to: Option<String>,
    after: Option<String>,
    /// A click-to-call request to show (the Call form sends the page here).
    click_to_call: Option<String>,
}

impl CallsQuery {
    fn value(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }

    /// The link to the page after this one, with the same filters.
    fn next_link(&self, after: &str) -> String {
        let mut link = String::from("/calls?");
        for (k, v) in [
            ("number", &self.number),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                link.push_str(&format!("{k}={}&", urlencode(v)));
            }
        }
        link.push_str(&format!("after={}", urlencode(after)));
        link
    }

    fn filtered(&self) -> bool {
        [&self.number, &self.from, &self.to]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
    }
}

/// A PBX connector of the account, as the Calls page shows it.
struct ConnectorRow {
    name: String,
    connected: bool,
    calls_open: u64,
    last_error: Option<String>,
    last_error_at: Option<When>,
}

impl From<ConnectorStatus> for ConnectorRow {
    fn from(c: ConnectorStatus) -> Self {
        ConnectorRow {
            name: c.name,
            connected: c.connected,
            calls_open: c.calls_open,
            last_error: c.last_error,
            last_error_at: c.last_error_at.and_then(|t| t.parse().ok()).map(when),
        }
    }
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    layout: Layout,
    rows: Vec<CallRow>,
    q: CallsQuery,
    /// What is wrong with the filters, field by field.
    errors: Vec<String>,
    /// The next page's link, when there is one.
    next: Option<String>,
    /// The PBX connectors that report this account's calls (none: the box is not shown).
    connectors: Vec<ConnectorRow>,
    /// The Call form, and My Numbers for its caller id.
    call_form: CallForm,
    dids: Vec<DidChoice>,
    /// The click-to-call request the Call form just made, followed on the page.
    request: Option<RequestView>,
}

impl CallsPage {
    fn value(v: &Option<String>) -> &str {
        CallsQuery::value(v)
    }
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<CallsQuery>,
) -> WebResult<Response> {
    let request = match &q.click_to_call {
        Some(id) => match async {
            let id = click_to_call::parse_id(id)?;
            click_to_call::get(&*state.svc.store, &signed.actor(), &id).await
        }
        .await
        {
            Ok(r) => Some(RequestView::from(r)),
            // A link to a request that is gone (pruned, another account's): the page without it.
            Err(ClickToCallError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let layout = Layout::new(&signed, "Calls", "calls");
    render_list(&state, &signed, layout, q, CallForm::default(), request).await
}

/// The Calls page for the filters `q`, with the Call form as given and the request it
/// follows, if any.
pub(super) async fn render_list(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    q: CallsQuery,
    call_form: CallForm,
    request: Option<RequestView>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let (since, until) = (day_start(&q.from, 0), day_start(&q.to, 1));
    let filter = FilterInput {
        number: q.number.as_deref(),
        since: since.as_deref(),
        until: until.as_deref(),
    };
    let page_request = PageRequest {
        limit: PAGE,
        after: q.after.clone().filter(|a| !a.is_empty()),
    };
    let (rows, next, errors) =
        match calls::list(&*state.svc.store, &actor, &filter, &page_request).await {
            Ok(p) => (p.items, p.next, Vec::new()),
            Err(CallError::Invalid(f)) => (
                Vec::new(),
                None,
                f.0.into_iter()
                    .map(|e| {
                        let field = match e.field.as_str() {
                            "since" => "From",
                            "until" => "To",
                            _ => "Number",
                        };
                        format!("{field}: {}", e.message)
                    })
                    .collect(),
            ),
            Err(e) => return Err(e.into()),
        };
    let connectors = calls::connectors(&state.svc, &actor)?
        .into_iter()
        .map(ConnectorRow::from)
        .collect();
    let invalid = !errors.is_empty();
    let mut resp = page(&CallsPage {
        layout,
        rows: rows.into_iter().map(CallRow::from).collect(),
        next: next.map(|after| q.next_link(&after)),
        q,
        errors,
        connectors,
        dids: did_choices(state, signed).await?,
        call_form,
        request,
    })?;
    if invalid {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

struct EventView {
    event_type: String,
    event_id: String,
    occurred: When,
    received: When,
    /// The event as stored, pretty-printed.
    payload: String,
    deliveries: Vec<CallDelivery>,
}

struct CallDelivery {
    id: String,
    /// Still to be sent or retried: the page's script follows it.
    pending: bool,
    webhook: String,
    trigger: &'static str,
    status_class: &'static str,
    status: &'static str,
    attempts: u32,
    last_response: String,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    layout: Layout,
    call_id: String,
    events: Vec<EventView>,
}

async fn show(
    State(state): State<WebState>,
    signed: Signed,
    Path(call_id): Path<String>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let call_id = CallId::from_string(call_id);
    let timeline = calls::timeline(&*state.svc.store, &actor, &call_id).await?;
    let all = PageRequest {
        limit: 1000,
        after: None,
    };
    let names: HashMap<WebhookId, String> = webhooks::list(&*state.svc.store, &actor, &all)
        .await?
        .items
        .into_iter()
        .map(|w| (w.id, w.spec.name))
        .collect();
    let events = timeline
        .into_iter()
        .map(|(e, ds)| EventView {
            event_type: e.event_type,
            event_id: e.event_id.into_string(),
            occurred: when(e.occurred_at),
            received: when(e.received_at),
            payload: super::view::pretty_body(&e.payload),
            deliveries: ds
                .into_iter()
                .map(|d| {
                    let (status_class, status) = status_badge(d.status, d.waiting);
                    let (last_response, _) = last_answer(&d);
                    CallDelivery {
                        pending: d.status == DeliveryStatus::Pending,
                        webhook: names
                            .get(&d.webhook_id)
                            .cloned()
                            .unwrap_or_else(|| "Deleted webhook".to_owned()),
                        trigger: d.trigger.label(),
                        status_class,
                        status,
                        attempts: d.attempts,
                        last_response,
                        id: d.id.into_string(),
                    }
                })
                .collect(),
        })
        .collect();
    page(&CallPage {
        layout: Layout::new(&signed, format!("Call {call_id}"), "calls"),
        call_id: call_id.into_string(),
        events,
    })
}
