//! The Audit page (SPEC §13): who changed what and when, newest first, filtered by resource,
//! actor, action and day. Never a secret's value: the log does not keep one.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::form::urlencode;
use super::session::Signed;
use super::view::{Layout, When, day_start, when};
use super::{WebResult, WebState, page};
use crate::core::audit::Action;
use crate::service::audit::{self, AuditError, FilterInput};
use crate::store::{AuditEntry, PageRequest};

/// Entries per page.
const PAGE: u32 = 50;

pub fn router() -> Router<WebState> {
    Router::new().route("/audit", get(list))
}

struct ChangeRow {
    field: String,
    before: String,
    after: String,
}

struct EntryRow {
    at: When,
    actor: String,
    actor_kind: &'static str,
    action: &'static str,
    resource_kind: &'static str,
    resource_id: String,
    /// Where the resource's page is, when it has one.
    href: Option<String>,
    changes: Vec<ChangeRow>,
}

/// A value of a change as people read it.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "“”".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl From<AuditEntry> for EntryRow {
    fn from(e: AuditEntry) -> Self {
        let kind = e.action.resource();
        let href = match kind.as_str() {
            "webhook" if e.action != Action::WebhookDelete => {
                Some(format!("/webhooks/{}", e.resource_id))
            }
            "delivery" => Some(format!("/deliveries/{}", e.resource_id)),
            _ => None,
        };
        EntryRow {
            at: when(e.at),
            actor: e.actor.name,
            actor_kind: match e.actor.kind.as_str() {
                "user" => "user",
                "api_key" => "API key",
                _ => "operator",
            },
            action: e.action.as_str(),
            resource_kind: kind.as_str(),
            resource_id: e.resource_id,
            href,
            changes: e
                .changes
                .into_iter()
                .map(|c| ChangeRow {
                    before: shown(&c.before),
                    after: shown(&c.after),
                    field: c.field,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    resource_id: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    /// `YYYY-MM-DD` (UTC), from the start of that day.
    from: Option<String>,
    /// `YYYY-MM-DD` (UTC), to the end of that day.
    to: Option<String>,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<EntryRow>,
    q: AuditQuery,
    actions: Vec<&'static str>,
    errors: Vec<String>,
    next: Option<String>,
}

impl AuditPage {
    fn value(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let (since, until) = (day_start(&q.from, 0), day_start(&q.to, 1));
    let filter = FilterInput {
        resource_id: q.resource_id.as_deref(),
        actor: q.actor.as_deref(),
        action: q.action.as_deref(),
        since: since.as_deref(),
        until: until.as_deref(),
    };
    let page_request = PageRequest {
        limit: PAGE,
        after: q.after.clone().filter(|a| !a.is_empty()),
    };
    let (rows, next, errors) =
        match audit::list(&*state.svc.store, &signed.actor(), &filter, &page_request).await {
            Ok(p) => (p.items, p.next, Vec::new()),
            Err(AuditError::Invalid(f)) => (
                Vec::new(),
                None,
                f.0.into_iter()
                    .map(|e| {
                        let field = match e.field.as_str() {
                            "since" => "From",
                            "until" => "To",
                            "action" => "Action",
                            other => other,
                        };
                        format!("{field}: {}", e.message)
                    })
                    .collect(),
            ),
            Err(e) => return Err(e.into()),
        };
    let next = next.map(|after| {
        let mut link = String::from("/audit?");
        for (k, v) in [
            ("resource_id", &q.resource_id),
            ("actor", &q.actor),
            ("action", &q.action),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                link.push_str(&format!("{k}={}&", urlencode(v)));
            }
        }
        link.push_str(&format!("after={}", urlencode(&after)));
        link
    });
    let invalid = !errors.is_empty();
    let mut resp = page(&AuditPage {
        layout: Layout::new(&signed, "Audit", "audit"),
        rows: rows.into_iter().map(EntryRow::from).collect(),
        q,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        errors,
        next,
    })?;
    if invalid {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}
