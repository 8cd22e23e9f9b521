//! Alerts (SPEC §12): the account's alert settings (where alerts go, after how long a failing
//! webhook is alerted), the alert signing secret for admins, and the alerts' own log.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, json};

use super::form::PostForm;
use super::session::Signed;
use super::view::{Layout, Notice, When, status_badge, when};
use super::{WebResult, WebState, page};
use crate::core::alert;
use crate::core::validate::FieldErrors;
use crate::service::alerts::{self, AlertError};
use crate::service::webhooks;
use crate::store::{DeliveryStatus, PageRequest};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/alerts", get(show).post(save))
        .route("/alerts/secret", get(secret))
        .route("/alerts/secret/rotate", post(rotate))
}

/// One alert of the log.
struct AlertRow {
    kind: String,
    /// The webhook it is about, and its name (its id once it is deleted).
    webhook_id: String,
    webhook_name: String,
    status: &'static str,
    status_class: &'static str,
    attempts: u32,
    sent: When,
    last: String,
    next: Option<When>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    url: String,
    after: String,
    url_error: Option<String>,
    after_error: Option<String>,
    alerts_on: bool,
    previous_until: Option<When>,
    rows: Vec<AlertRow>,
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    notice: Option<String>,
}

fn error_of(errors: &FieldErrors, field: &str) -> Option<String> {
    let msgs: Vec<&str> = errors
        .0
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.as_str())
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// The form's values shown again after an error, with the errors.
struct Again {
    url: String,
    after: String,
    errors: FieldErrors,
}

async fn render(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    again: Option<Again>,
    status: StatusCode,
) -> WebResult<Response> {
    let actor = signed.actor();
    let store = &*state.svc.store;
    let v = alerts::settings(store, &actor).await?;
    let log = alerts::log(
        store,
        &actor,
        &PageRequest {
            limit: 50,
            after: None,
        },
    )
    .await?;
    let hooks = webhooks::list(
        store,
        &actor,
        &PageRequest {
            limit: 1000,
            after: None,
        },
    )
    .await?;
    let name_of = |id: &str| {
        hooks
            .items
            .iter()
            .find(|w| w.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |w| w.spec.name.clone())
    };
    let rows = log
        .items
        .into_iter()
        .map(|d| AlertRow {
            kind: alerts::kind_of(&d).to_owned(),
            webhook_name: name_of(d.call_id.as_str()),
            webhook_id: d.call_id.to_string(),
            status_class: status_badge(d.status, d.waiting).0,
            status: match d.status {
                DeliveryStatus::Pending if d.attempts > 0 => "Retrying",
                s => status_badge(s, d.waiting).1,
            },
            attempts: d.attempts,
            sent: when(d.created_at),
            last: match (d.last_status, d.last_error) {
                (_, Some(e)) => e,
                (Some(s), None) => format!("HTTP {s}"),
                (None, None) => String::new(),
            },
            next: d.next_attempt_at.map(when),
        })
        .collect();
    let now = jiff::Timestamp::now();
    let (url, after, errors) = match again {
        Some(a) => (a.url, a.after, a.errors),
        None => (
            v.alerts.url.clone().unwrap_or_default(),
            alert::format_after(v.alerts.after),
            FieldErrors::default(),
        ),
    };
    let mut resp = page(&AlertsPage {
        layout,
        alerts_on: v.alerts.url.is_some(),
        previous_until: alerts::previous_expires(&v.alerts, now).map(when),
        url_error: error_of(&errors, "alert_url"),
        after_error: error_of(&errors, "alert_after"),
        url,
        after,
        rows,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}

async fn show(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ShowQuery>,
) -> WebResult<Response> {
    let mut layout = Layout::new(&signed, "Alerts", "alerts");
    layout = match q.notice.as_deref() {
        Some("alerts-saved") => layout.with(Notice::success("Alert settings saved.")),
        Some("alert-secret-rotated") => layout.with(Notice::success(
            "Alert secret rotated. The previous secret keeps signing too for 24 hours.",
        )),
        other => layout.with_notice(other),
    };
    render(&state, &signed, layout, None, StatusCode::OK).await
}

async fn save(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let (url, after) = (form.fields.get("alert_url"), form.fields.get("alert_after"));
    let mut body = Map::new();
    body.insert("alert_url".into(), json!(url));
    body.insert("alert_after".into(), json!(after));
    match alerts::patch(&*state.svc.store, &signed.actor(), &body).await {
        Ok(_) => Ok(Redirect::to("/alerts?notice=alerts-saved").into_response()),
        Err(AlertError::Invalid(errors)) => {
            let layout = Layout::new(signed, "Alerts", "alerts");
            let again = Again {
                url: url.to_owned(),
                after: after.to_owned(),
                errors,
            };
            render(
                &state,
                signed,
                layout,
                Some(again),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The alert secret, fetched by the page's script only when an admin asks to reveal or copy
/// it, so it is not in the page itself.
async fn secret(State(state): State<WebState>, signed: Signed) -> WebResult<Response> {
    let s = alerts::secret(&*state.svc.store, &signed.actor()).await?;
    Ok(Json(json!({ "secret": s })).into_response())
}

async fn rotate(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    alerts::rotate(&*state.svc.store, &form.signed.actor()).await?;
    Ok(Redirect::to("/alerts?notice=alert-secret-rotated#secret").into_response())
}
