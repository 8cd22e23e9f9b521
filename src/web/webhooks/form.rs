//! The Add / edit form, its live preview of what the receiver will get, and its Send test of
//! the form as it stands, before saving.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};

use crate::core::event::CallType;
use crate::core::shape::{Payload, TimeFormat};
use crate::core::trigger::{ParamKind, Trigger};
use crate::core::validate::FieldErrors;
use crate::core::webhook::{ContentType, Method, WebhookSpec};
use crate::service::Failure;
use crate::service::deliveries::{self, DeliveryError, UnsavedTest};
use crate::service::triggers;
use crate::service::webhooks::{self, WebhookError};
use crate::service::{numbers, parse_id};
use crate::store::Number;
use crate::web::form::{Fields, PostForm};
use crate::web::session::Signed;
use crate::web::view::{Layout, call_type_label, http_status, latency, pretty_body, time_zones};
use crate::web::{WebResult, WebState, page};

/// What the form shows: a webhook's values, the defaults, or what was just typed.
struct FormValues {
    name: String,
    description: String,
    trigger: String,
    url: String,
    method: String,
    content_type: String,
    call_types: Vec<String>,
    numbers: Vec<String>,
    time_zone: String,
    headers: Vec<HeaderRow>,
    payload: String,
    body_fields: Vec<HeaderRow>,
    time_format: String,
    rate_limit: String,
    enabled: bool,
}

/// A key/value row of the form: a custom header or a body field.
struct HeaderRow {
    key: String,
    value: String,
    key_error: Option<String>,
    value_error: Option<String>,
}

impl FormValues {
    fn defaults() -> FormValues {
        FormValues {
            name: String::new(),
            description: String::new(),
            trigger: Trigger::CallReceived.id().to_owned(),
            url: String::new(),
            method: Method::Post.as_str().to_owned(),
            content_type: ContentType::Json.as_str().to_owned(),
            call_types: CallType::ALL
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            numbers: Vec::new(),
            time_zone: "UTC".to_owned(),
            headers: Vec::new(),
            payload: Payload::Standard.as_str().to_owned(),
            body_fields: Vec::new(),
            time_format: TimeFormat::Rfc3339.as_str().to_owned(),
            rate_limit: String::new(),
            enabled: true,
        }
    }

    fn of(spec: &WebhookSpec) -> FormValues {
        FormValues {
            name: spec.name.clone(),
            description: spec.description.clone(),
            trigger: spec.trigger.id().to_owned(),
            url: spec.url.to_string(),
            method: spec.method.as_str().to_owned(),
            content_type: spec.content_type.as_str().to_owned(),
            call_types: spec
                .call_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            numbers: spec.numbers.iter().map(|n| n.to_string()).collect(),
            time_zone: spec.time_zone.name().to_owned(),
            headers: spec
                .headers
                .iter()
                .map(|h| HeaderRow {
                    key: h.key.clone(),
                    // A secret header's value stays masked; saved as it is, it is kept.
                    value: h.shown_value().to_owned(),
                    key_error: None,
                    value_error: None,
                })
                .collect(),
            payload: spec.payload.as_str().to_owned(),
            body_fields: spec
                .body_fields
                .iter()
                .map(|r| HeaderRow {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    key_error: None,
                    value_error: None,
                })
                .collect(),
            time_format: spec.time_format.as_str().to_owned(),
            rate_limit: spec.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            enabled: spec.enabled,
        }
    }

    /// Reads the posted form. Header and body rows left entirely blank are dropped first, so
    /// the validator's `headers[i]` and `body_fields[i]` are the rows shown again.
    fn from_fields(f: &Fields) -> FormValues {
        let rows = |key: &str, value: &str| -> Vec<HeaderRow> {
            let keys = f.all(key);
            let values = f.all(value);
            keys.iter()
                .zip(values.iter().chain(std::iter::repeat(&"")))
                .filter(|(k, v)| !k.trim().is_empty() || !v.trim().is_empty())
                .map(|(k, v)| HeaderRow {
                    key: k.trim().to_owned(),
                    value: (*v).to_owned(),
                    key_error: None,
                    value_error: None,
                })
                .collect()
        };
        FormValues {
            name: f.get("name").to_owned(),
            description: f.get("description").to_owned(),
            trigger: f.get("trigger").to_owned(),
            url: f.get("url").to_owned(),
            method: f.get("method").to_owned(),
            content_type: f.get("content_type").to_owned(),
            call_types: f.all("call_types").iter().map(|s| s.to_string()).collect(),
            numbers: f.all("numbers").iter().map(|s| s.to_string()).collect(),
            time_zone: f.get("time_zone").to_owned(),
            headers: rows("header_key", "header_value"),
            payload: f.get("payload").to_owned(),
            body_fields: rows("body_key", "body_value"),
            time_format: f.get("time_format").to_owned(),
            rate_limit: f.get("rate_limit").to_owned(),
            enabled: f.has("enabled"),
        }
    }

    /// The values as the JSON body the REST API takes, for the one validator both share.
    fn to_json(&self) -> Map<String, Value> {
        let opt = |s: &str| {
            if s.is_empty() { Value::Null } else { json!(s) }
        };
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert("trigger".into(), json!(self.trigger));
        m.insert("url".into(), json!(self.url));
        m.insert("method".into(), opt(&self.method));
        m.insert("content_type".into(), opt(&self.content_type));
        m.insert("call_types".into(), json!(self.call_types));
        m.insert("numbers".into(), json!(self.numbers));
        m.insert("time_zone".into(), opt(&self.time_zone));
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|h| json!({"key": h.key, "value": h.value}))
            .collect();
        m.insert("headers".into(), Value::Array(headers));
        m.insert("payload".into(), opt(&self.payload));
        let rows: Vec<Value> = self
            .body_fields
            .iter()
            .map(|h| json!({"key": h.key, "value": h.value}))
            .collect();
        m.insert("body_fields".into(), Value::Array(rows));
        m.insert("time_format".into(), opt(&self.time_format));
        // A number stays a number; anything else goes through as typed, so the validator
        // words the error like every other.
        let rate = self.rate_limit.trim();
        m.insert(
            "rate_limit".into(),
            if rate.is_empty() {
                Value::Null
            } else {
                rate.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| json!(rate), Value::Number)
            },
        );
        m.insert("enabled".into(), json!(self.enabled));
        m
    }

    fn has_call_type(&self, t: &str) -> bool {
        self.call_types.iter().any(|c| c == t)
    }

    fn has_number(&self, n: &str) -> bool {
        self.numbers.iter().any(|c| c == n)
    }
}

/// The validator's errors, looked up by field for the template.
#[derive(Default)]
struct Errors(FieldErrors);

impl Errors {
    /// The messages for `field` and anything inside it (`call_types[1]`), joined.
    fn get(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self
            .0
            .0
            .iter()
            .filter(|e| {
                e.field == field
                    || e.field.strip_prefix(field).is_some_and(|rest| {
                        rest.starts_with('[') && !matches!(field, "headers" | "body_fields")
                    })
            })
            .map(|e| e.message.as_str())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    fn count(&self) -> usize {
        self.0.0.len()
    }

    /// Puts each `{list}[i].key` / `{list}[i].value` error on its row.
    fn place_on_rows(&self, list: &str, rows: &mut [HeaderRow]) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.key_error = self.get(&format!("{list}[{i}].key"));
            row.value_error = self.get(&format!("{list}[{i}].value"));
        }
    }
}

struct Choice {
    value: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "webhook_form.html")]
struct FormPage {
    layout: Layout,
    /// `None` when adding.
    webhook_id: Option<String>,
    f: FormValues,
    errors: Errors,
    triggers: Vec<Choice>,
    call_types: Vec<Choice>,
    content_types: Vec<Choice>,
    numbers: Vec<Number>,
    zones: &'static [String],
    time_formats: Vec<Choice>,
    /// Each trigger's parameters, for the picker beside the trigger.
    catalogue: Vec<TriggerParams>,
    p: PreviewView,
}

/// One trigger's parameters as the picker lists them.
struct TriggerParams {
    id: &'static str,
    params: Vec<ParamChip>,
}

struct ParamChip {
    name: &'static str,
    /// `text`, `timestamp`, `seconds` or `list`.
    kind: &'static str,
    meaning: &'static str,
    example: String,
}

fn catalogue() -> Vec<TriggerParams> {
    Trigger::ALL
        .iter()
        .map(|t| TriggerParams {
            id: t.id(),
            params: t
                .params()
                .map(|p| {
                    let info = p.info();
                    ParamChip {
                        name: info.name,
                        kind: match p.kind() {
                            ParamKind::String => "text",
                            ParamKind::Timestamp => "timestamp",
                            ParamKind::Seconds => "seconds",
                            ParamKind::List => "list",
                        },
                        meaning: info.meaning,
                        example: info.example.to_json().to_string(),
                    }
                })
                .collect(),
        })
        .collect()
}

impl FormPage {
    /// The empty row the page's script copies for **Add header** and **Add field**.
    fn blank(&self) -> HeaderRow {
        HeaderRow {
            key: String::new(),
            value: String::new(),
            key_error: None,
            value_error: None,
        }
    }

    fn action(&self) -> String {
        match &self.webhook_id {
            Some(id) => format!("/webhooks/{id}"),
            None => "/webhooks".to_owned(),
        }
    }
}

async fn form_page(
    state: &WebState,
    signed: &Signed,
    webhook_id: Option<String>,
    mut f: FormValues,
    errors: Errors,
) -> WebResult<Response> {
    errors.place_on_rows("headers", &mut f.headers);
    errors.place_on_rows("body_fields", &mut f.body_fields);
    let numbers = numbers::all(&*state.svc.store, &signed.actor()).await?;
    let title = match &webhook_id {
        Some(_) => format!("Edit {}", f.name),
        None => "Add Webhook".to_owned(),
    };
    let preview = PreviewView::of(&f);
    let invalid = errors.count() > 0;
    let mut resp = page(&FormPage {
        layout: Layout::new(signed, title, "webhooks"),
        webhook_id,
        f,
        errors,
        triggers: Trigger::ALL
            .iter()
            .map(|t| Choice {
                value: t.id(),
                label: t.label(),
            })
            .collect(),
        call_types: CallType::ALL
            .iter()
            .map(|t| Choice {
                value: t.as_str(),
                label: call_type_label(*t),
            })
            .collect(),
        content_types: ContentType::ALL
            .iter()
            .map(|t| Choice {
                value: t.as_str(),
                label: t.as_str(),
            })
            .collect(),
        numbers,
        zones: time_zones(),
        time_formats: TimeFormat::ALL
            .iter()
            .map(|t| Choice {
                value: t.as_str(),
                label: match t {
                    TimeFormat::Rfc3339 => "RFC 3339 with offset (2026-11-27T09:30:05+05:30)",
                    TimeFormat::Local => "Local time (2026-11-27 09:30:05)",
                    TimeFormat::Unix => "Unix seconds (1795752005)",
                },
            })
            .collect(),
        catalogue: catalogue(),
        p: preview,
    })?;
    if invalid {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

pub(super) async fn new_form(State(state): State<WebState>, signed: Signed) -> WebResult<Response> {
    webhooks::may_create(&signed.actor())?;
    form_page(
        &state,
        &signed,
        None,
        FormValues::defaults(),
        Errors::default(),
    )
    .await
}

pub(super) async fn edit_form(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let w = webhooks::to_change(&*state.svc.store, &signed.actor(), &parse_id(&id)?).await?;
    form_page(
        &state,
        &signed,
        Some(w.id.to_string()),
        FormValues::of(&w.spec),
        Errors::default(),
    )
    .await
}

/// Creates a webhook from the posted form; when it is not valid, the form again with every
/// error next to its field and everything typed kept.
pub(super) async fn create(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let values = FormValues::from_fields(&form.fields);
    let actor = form.signed.actor();
    match webhooks::create(
        &*state.svc.store,
        &state.svc.quotas(),
        &actor,
        &values.to_json(),
    )
    .await
    {
        Ok((w, _)) => {
            Ok(Redirect::to(&format!("/webhooks/{}?notice=created", w.id)).into_response())
        }
        Err(WebhookError::Invalid(errors)) => {
            form_page(&state, &form.signed, None, values, Errors(errors)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Saves the posted form over webhook `id`, or shows the form again as [`create`] does.
pub(super) async fn save(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let values = FormValues::from_fields(&form.fields);
    let actor = form.signed.actor();
    match webhooks::replace(
        &*state.svc.store,
        &actor,
        &parse_id(&id)?,
        &values.to_json(),
    )
    .await
    {
        Ok(w) => Ok(Redirect::to(&format!("/webhooks/{}?notice=saved", w.id)).into_response()),
        Err(WebhookError::Invalid(errors)) => {
            form_page(&state, &form.signed, Some(id), values, Errors(errors)).await
        }
        Err(e) => Err(e.into()),
    }
}

// The live preview.

/// The request a receiver would get, as the preview shows it.
struct PreviewView {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// Why the preview is not exactly what was typed (a field it could not use yet).
    note: Option<String>,
}

impl PreviewView {
    /// Renders the trigger's sample for the form as it stands, with the renderer every
    /// delivery uses. A field that is not valid yet (a half-typed URL or zone) falls back to
    /// its default, and a row that is not valid yet is left out; the note says which.
    fn of(f: &FormValues) -> PreviewView {
        let preview = triggers::preview(&f.to_json());
        let Some(r) = preview.request else {
            return PreviewView {
                method: String::new(),
                url: String::new(),
                headers: Vec::new(),
                body: None,
                note: Some("The preview appears once the form's fields are valid.".into()),
            };
        };
        let (mut defaulted, mut left_out) = (Vec::new(), Vec::new());
        for field in &preview.skipped {
            match field.as_str() {
                "url" => defaulted.push("URL"),
                "time_zone" => defaulted.push("Time Zone"),
                "method" => defaulted.push("Request"),
                "content_type" => defaulted.push("Content-Type"),
                "time_format" => defaulted.push("Time format"),
                "payload" => defaulted.push("Payload"),
                "trigger" => defaulted.push("Trigger"),
                "headers" => left_out.push("headers"),
                "body_fields" => left_out.push("body fields"),
                _ => {}
            }
        }
        let mut notes = Vec::new();
        if !defaulted.is_empty() {
            notes.push(format!(
                "Shown with the default {} until the field is valid.",
                defaulted.join(" and ")
            ));
        }
        if !left_out.is_empty() {
            notes.push(format!(
                "Shown without the {} that are not valid yet.",
                left_out.join(" and ")
            ));
        }
        PreviewView {
            body: r.body.as_deref().map(pretty_body),
            method: r.method.as_str().to_owned(),
            url: r.url,
            headers: r.headers,
            note: (!notes.is_empty()).then(|| notes.join(" ")),
        }
    }
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewFragment {
    p: PreviewView,
}

/// `GET /webhooks/preview?trigger=…&method=…`: the preview panel for the form's current
/// values, which the form's script swaps in as the admin types.
pub(super) async fn preview(_signed: Signed, RawQuery(q): RawQuery) -> WebResult<Response> {
    let fields = Fields::parse(q.as_deref().unwrap_or(""))?;
    let values = FormValues::from_fields(&fields);
    page(&PreviewFragment {
        p: PreviewView::of(&values),
    })
}

// Send test, before saving.

/// What a test of the form as it stands came to, for the form's result panel.
#[derive(Template)]
#[template(path = "test_result.html")]
struct TestResultFragment {
    ok: bool,
    headline: String,
    /// The form's fields that are not valid yet, when it could not be sent.
    errors: Vec<String>,
    /// The start of the receiver's answer.
    body: Option<String>,
    /// Whether a request went out.
    sent: bool,
}

/// `POST /webhooks/test`: sends the trigger's sample once to the webhook the form describes,
/// saved or not, and answers the result panel (the form's script puts it in place; an
/// `x-test-result` header tells it from an error page). Nothing is stored.
pub(super) async fn test(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let values = FormValues::from_fields(&form.fields);
    let actor = form.signed.actor();
    // The edit form of a saved webhook: its secret header values, shown masked, are the stored
    // ones.
    let saved = match form.fields.get("webhook_id") {
        "" => None,
        id => Some(parse_id(id)?),
    };
    let (status, fragment) =
        match deliveries::send_unsaved_test(&state.svc, &actor, &values.to_json(), saved.as_ref())
            .await
        {
            Ok(t) => (StatusCode::OK, TestResultFragment::of(&t)),
            Err(DeliveryError::Invalid(errors)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                TestResultFragment {
                    ok: false,
                    headline: "Not sent: fix the form first.".to_owned(),
                    errors: errors
                        .0
                        .into_iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect(),
                    body: None,
                    sent: false,
                },
            ),
            Err(DeliveryError::Limited(Failure::TooMany { message, .. })) => (
                StatusCode::TOO_MANY_REQUESTS,
                TestResultFragment {
                    ok: false,
                    headline: format!("Not sent: {message}."),
                    errors: Vec::new(),
                    body: None,
                    sent: false,
                },
            ),
            Err(e) => return Err(e.into()),
        };
    let mut resp = page(&fragment)?;
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("x-test-result", HeaderValue::from_static("1"));
    Ok(resp)
}

impl TestResultFragment {
    fn of(t: &UnsavedTest) -> TestResultFragment {
        let a = &t.attempt;
        let took = latency(a.latency_ms);
        let headline = match (a.response_status, &a.error) {
            (Some(s), _) if t.succeeded => format!("Test delivered: {} in {took}", http_status(s)),
            (Some(s), _) => format!(
                "Test failed: the receiver answered {} in {took}",
                http_status(s)
            ),
            (None, Some(e)) => format!("Test failed after {took}: {e}"),
            (None, None) => format!("Test failed after {took}."),
        };
        TestResultFragment {
            ok: t.succeeded,
            headline,
            errors: Vec::new(),
            body: a
                .response_body
                .as_deref()
                .filter(|b| !b.trim().is_empty())
                .map(|b| pretty_body(b).chars().take(2000).collect()),
            sent: true,
        }
    }
}
