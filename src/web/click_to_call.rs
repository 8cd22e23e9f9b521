//! The Calls page's Call form (SPEC §15): an admin asks the PBX to ring an agent, then a
//! customer, with one of My Numbers as caller id; the page then shows the request's state,
//! which the page's script keeps up to date from a small JSON view of it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::calls::render_list;
use super::form::{PostForm, urlencode};
use super::session::Signed;
use super::view::{Layout, When, when};
use super::{WebResult, WebState};
use crate::core::click_to_call::{FailReason, Status};
use crate::core::validate::FieldErrors;
use crate::service::click_to_call::{self, ClickToCallError};
use crate::service::numbers;
use crate::store::StoredClickToCall;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/calls/click-to-call", post(place))
        .route("/calls/click-to-call/{id}", get(state))
}

/// A My Numbers entry for the caller-id picker.
pub struct DidChoice {
    pub number: String,
    pub label: String,
}

/// The Call form: what it shows again after a refusal, and the problems found.
#[derive(Default)]
pub struct CallForm {
    /// Shown open (after a refusal), not folded behind the Call button.
    pub open: bool,
    pub agent_extension: String,
    pub customer_number: String,
    pub did_number: String,
    pub errors: FieldErrors,
}

impl CallForm {
    /// The messages for `field`, joined.
    pub fn error(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self
            .errors
            .0
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    /// Problems not tied to one of the form's inputs (the connector).
    pub fn other_errors(&self) -> Vec<String> {
        self.errors
            .0
            .iter()
            .filter(|e| {
                !["agent_extension", "customer_number", "did_number"].contains(&e.field.as_str())
            })
            .map(|e| {
                if e.field == "connector" {
                    format!("Cannot place the call now: {}.", e.message)
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect()
    }
}

/// The My Numbers picker's entries.
pub async fn did_choices(state: &WebState, signed: &Signed) -> WebResult<Vec<DidChoice>> {
    Ok(numbers::all(&*state.svc.store, &signed.actor())
        .await?
        .into_iter()
        .map(|n| DidChoice {
            number: n.number.to_string(),
            label: n.label.unwrap_or_default(),
        })
        .collect())
}

/// One step of a request's way, as the page lists it.
pub struct Step {
    /// `queued`, `ringing_agent`, `ringing_customer`, `end`.
    pub key: &'static str,
    pub label: String,
    pub at: Option<When>,
}

/// A request as the Calls page shows it.
pub struct RequestView {
    pub id: String,
    pub ref_id: String,
    pub agent_extension: String,
    pub customer_number: String,
    pub did_number: String,
    /// `queued`, …, `answered`, `failed`.
    pub state: &'static str,
    /// What the badge says: `Ringing the agent`, `Failed`.
    pub label: &'static str,
    /// `ok`, `bad`, `wait`.
    pub badge: &'static str,
    pub is_final: bool,
    pub steps: Vec<Step>,
    /// Why it failed, in words, and what the PBX said.
    pub reason: Option<String>,
    pub call_id: Option<String>,
}

/// The badge of a state: its word and colour.
fn badge(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Queued => ("Queued", "wait"),
        Status::RingingAgent => ("Ringing the agent", "wait"),
        Status::RingingCustomer => ("Ringing the customer", "wait"),
        Status::Answered => ("Answered", "ok"),
        Status::Failed(_) => ("Failed", "bad"),
    }
}

/// A failure's reason, as an admin reads it.
fn reason_text(r: FailReason) -> &'static str {
    match r {
        FailReason::AgentBusy => "The agent's phone was busy.",
        FailReason::AgentNoAnswer => "The agent did not answer.",
        FailReason::AgentUnavailable => "The agent's phone could not be reached.",
        FailReason::AgentHungUp => "The agent hung up while the customer's phone rang.",
        FailReason::CustomerBusy => "The customer's line was busy.",
        FailReason::CustomerNoAnswer => "The customer did not answer.",
        FailReason::CustomerUnavailable => "The customer could not be reached.",
        FailReason::OriginateRefused => "The PBX refused to place the call.",
        FailReason::ConnectorLost => {
            "callhook lost its connection to the PBX before the call started."
        }
    }
}

impl From<StoredClickToCall> for RequestView {
    fn from(r: StoredClickToCall) -> Self {
        let (label, badge) = badge(r.status);
        let end = match r.status {
            Status::Answered => "Answered",
            Status::Failed(_) => "Failed",
            _ => "Answered",
        };
        let steps = vec![
            Step {
                key: "queued",
                label: "Queued".into(),
                at: Some(when(r.created_at)),
            },
            Step {
                key: "ringing_agent",
                label: format!("Ringing agent {}", r.agent_extension),
                at: r.ringing_agent_at.map(when),
            },
            Step {
                key: "ringing_customer",
                label: format!("Ringing {}", r.customer_number),
                at: r.ringing_customer_at.map(when),
            },
            Step {
                key: "end",
                label: end.into(),
                at: r.ended_at.map(when),
            },
        ];
        let reason = r.status.reason().map(|why| match &r.cause {
            Some(c) => format!("{} The PBX said: {c}", reason_text(why)),
            None => reason_text(why).to_owned(),
        });
        RequestView {
            id: r.id.into_string(),
            ref_id: r.ref_id,
            agent_extension: r.agent_extension,
            customer_number: r.customer_number.to_string(),
            did_number: r.did_number.to_string(),
            state: r.status.as_str(),
            label,
            badge,
            is_final: r.status.is_final(),
            steps,
            reason,
            call_id: r.call_id.map(|c| c.into_string()),
        }
    }
}

/// The request as the page's script reads it while it follows the request.
#[derive(Serialize)]
struct StateJson {
    state: &'static str,
    label: &'static str,
    badge: &'static str,
    #[serde(rename = "final")]
    is_final: bool,
    steps: Vec<StepJson>,
    reason: Option<String>,
    call_id: Option<String>,
    call_url: Option<String>,
}

#[derive(Serialize)]
struct StepJson {
    key: &'static str,
    label: String,
    /// RFC 3339, once the request got there.
    at: Option<String>,
    /// The same in UTC words, for browsers that cannot localise it.
    at_text: Option<String>,
}

impl From<RequestView> for StateJson {
    fn from(v: RequestView) -> Self {
        StateJson {
            state: v.state,
            label: v.label,
            badge: v.badge,
            is_final: v.is_final,
            steps: v
                .steps
                .into_iter()
                .map(|s| StepJson {
                    key: s.key,
                    label: s.label,
                    at: s.at.as_ref().map(|w| w.iso.clone()),
                    at_text: s.at.map(|w| w.text),
                })
                .collect(),
            reason: v.reason,
            call_url: v
                .call_id
                .as_deref()
                .map(|c| format!("/calls/{}", urlencode(c).replace('+', "%20"))),
            call_id: v.call_id,
        }
    }
}

/// The Call form's request: placed, the Calls page shows its state; refused, the form again
/// with every problem.
async fn place(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let f = &form.fields;
    let mut body = Map::new();
    body.insert("agent_extension".into(), json!(f.get("agent_extension")));
    body.insert("customer_number".into(), json!(f.get("customer_number")));
    if !f.get("did_number").is_empty() {
        body.insert("did_number".into(), Value::from(f.get("did_number")));
    }
    let (errors, status) = match click_to_call::request(&state.svc, &signed.actor(), &body).await {
        Ok(r) => {
            return Ok(Redirect::to(&format!(
                "/calls?click_to_call={}#click-to-call",
                urlencode(r.id.as_str())
            ))
            .into_response());
        }
        Err(ClickToCallError::Invalid(e)) => (e, StatusCode::UNPROCESSABLE_ENTITY),
        Err(ClickToCallError::Conflict(e)) => (e, StatusCode::CONFLICT),
        Err(e) => return Err(e.into()),
    };
    let again = CallForm {
        open: true,
        agent_extension: f.get("agent_extension").to_owned(),
        customer_number: f.get("customer_number").to_owned(),
        did_number: f.get("did_number").to_owned(),
        errors,
    };
    let layout = Layout::new(signed, "Calls", "calls");
    let mut resp = render_list(&state, signed, layout, Default::default(), again, None).await?;
    *resp.status_mut() = status;
    Ok(resp)
}

/// The request's state, for the page's script.
async fn state(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = click_to_call::parse_id(&id)?;
    let r = click_to_call::get(&*state.svc.store, &signed.actor(), &id).await?;
    Ok(Json(StateJson::from(RequestView::from(r))).into_response())
}
