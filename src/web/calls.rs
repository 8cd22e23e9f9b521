//! Calls: the account's recent calls with the state of the PBX connectors that report them
//! and the Call form (`click_to_call.rs`), and a call's timeline of events with the deliveries
//! each one caused.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::click_to_call::{CallForm, DidChoice, RequestView, did_choices};
use super::session::Signed;
use super::view::{Layout, When, http_status, latency, status_badge, when};
use super::{WebResult, WebState, page};
use crate::connectors::ConnectorStatus;
use crate::core::id::{CallId, WebhookId};
use crate::service::click_to_call::{self, ClickToCallError};
use crate::service::{calls, webhooks};
use crate::store::{CallSummary, PageRequest};

/// How many calls the Calls page lists.
const RECENT_CALLS: u32 = 100;

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
    last_event: String,
    events: u64,
    deliveries: u64,
    last: When,
}

impl From<CallSummary> for CallRow {
    fn from(c: CallSummary) -> Self {
        CallRow {
            call_type: c.call_type.unwrap_or_default().replace('_', " "),
            did_number: c.did_number.unwrap_or_default(),
            customer_number: c.customer_number.unwrap_or_else(|| "—".to_owned()),
            last_event: c.last_event_type,
            events: c.events,
            deliveries: c.deliveries,
            last: when(c.last_received_at),
            call_id: c.call_id.into_string(),
        }
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
    /// The PBX connectors that report this account's calls (none: the box is not shown).
    connectors: Vec<ConnectorRow>,
    /// The Call form, and My Numbers for its caller id.
    call_form: CallForm,
    dids: Vec<DidChoice>,
    /// The click-to-call request the Call form just made, followed on the page.
    request: Option<RequestView>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// A click-to-call request to show (the Call form sends the page here).
    click_to_call: Option<String>,
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let request = match q.click_to_call {
        Some(id) => match async {
            let id = click_to_call::parse_id(&id)?;
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
    render_list(&state, &signed, layout, CallForm::default(), request).await
}

/// The Calls page, with the Call form as given and the request it follows, if any.
pub(super) async fn render_list(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    call_form: CallForm,
    request: Option<RequestView>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let calls = calls::recent(&*state.svc.store, &actor, RECENT_CALLS).await?;
    let connectors = calls::connectors(&state.svc, &actor)
        .into_iter()
        .map(ConnectorRow::from)
        .collect();
    page(&CallsPage {
        layout,
        rows: calls.into_iter().map(CallRow::from).collect(),
        connectors,
        dids: did_choices(state, signed).await?,
        call_form,
        request,
    })
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
                    CallDelivery {
                        webhook: names
                            .get(&d.webhook_id)
                            .cloned()
                            .unwrap_or_else(|| "Deleted webhook".to_owned()),
                        trigger: d.trigger.label(),
                        status_class,
                        status,
                        attempts: d.attempts,
                        last_response: match (d.last_status, d.last_latency_ms) {
                            (Some(s), Some(ms)) => format!("{} · {}", http_status(s), latency(ms)),
                            (Some(s), None) => http_status(s),
                            (None, _) => "—".to_owned(),
                        },
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
