//! Services > Webhook: the list, the Add / edit form with its live preview, and a webhook's
//! own page (settings, enable/disable, delete, signing secret, Send test, delivery log and
//! the deliveries-per-hour chart).

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::form::{Fields, PostForm};
use super::session::Signed;
use super::view::{
    Layout, When, call_type_label, http_status, latency, pretty_body, status_badge, time_zones,
    when,
};
use super::{WebResult, page};
use crate::api::AppState;
use crate::api::deliveries::send_test;
use crate::api::problem::ApiError;
use crate::api::triggers::{SampleParams, render_sample, sample_spec};
use crate::api::webhooks::{insert, load, rotate, update, validate_spec};
use crate::core::event::CallType;
use crate::core::trigger::Trigger;
use crate::core::validate::FieldErrors;
use crate::core::webhook::{ContentType, Header, Method, WebhookSpec};
use crate::store::{
    Delivery, DeliveryFilter, DeliveryStatus, Number, PageRequest, Webhook, WebhookStats,
};

/// Deliveries shown per page of the log.
const LOG_PAGE: u32 = 25;
/// How many of a webhook's latest deliveries its success rate is taken over.
const RATE_WINDOW: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/new", get(new_form))
        .route("/webhooks/preview", get(preview))
        .route("/webhooks/{id}", get(show).post(save))
        .route("/webhooks/{id}/edit", get(edit_form))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/disable", post(disable))
        .route("/webhooks/{id}/delete", get(confirm_delete).post(delete))
        .route("/webhooks/{id}/secret", get(secret))
        .route("/webhooks/{id}/secret/rotate", post(rotate_secret))
        .route("/webhooks/{id}/test", post(test))
}

// ---------------------------------------------------------------------------------------
// The list.

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
            id: w.id,
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
struct ListQuery {
    notice: Option<String>,
    after: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let account = signed.account();
    let webhooks = state
        .store
        .list_webhooks(
            account,
            &PageRequest {
                limit: 200,
                after: q.after.clone(),
            },
        )
        .await?;
    let stats = state.store.webhook_stats(account, RATE_WINDOW).await?;
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

// ---------------------------------------------------------------------------------------
// The Add / edit form.

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
    rate_limit: String,
    enabled: bool,
}

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
                    value: h.value.clone(),
                    key_error: None,
                    value_error: None,
                })
                .collect(),
            rate_limit: spec.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            enabled: spec.enabled,
        }
    }

    /// Reads the posted form. Header rows left entirely blank are dropped first, so the
    /// validator's `headers[i]` are the rows shown again.
    fn from_fields(f: &Fields) -> FormValues {
        let keys = f.all("header_key");
        let values = f.all("header_value");
        let headers = keys
            .iter()
            .zip(values.iter().chain(std::iter::repeat(&"")))
            .filter(|(k, v)| !k.trim().is_empty() || !v.trim().is_empty())
            .map(|(k, v)| HeaderRow {
                key: k.trim().to_owned(),
                value: (*v).to_owned(),
                key_error: None,
                value_error: None,
            })
            .collect();
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
            headers,
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
                    || e.field
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('[') && field != "headers")
            })
            .map(|e| e.message.as_str())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    fn count(&self) -> usize {
        self.0.0.len()
    }

    /// Puts each `headers[i].key` / `headers[i].value` error on its row.
    fn place_on_rows(&self, rows: &mut [HeaderRow]) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.key_error = self.get(&format!("headers[{i}].key"));
            row.value_error = self.get(&format!("headers[{i}].value"));
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
    p: PreviewView,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.webhook_id {
            Some(id) => format!("/webhooks/{id}"),
            None => "/webhooks".to_owned(),
        }
    }
}

async fn form_page(
    state: &AppState,
    signed: &Signed,
    webhook_id: Option<String>,
    mut f: FormValues,
    errors: Errors,
) -> WebResult<Response> {
    errors.place_on_rows(&mut f.headers);
    let numbers = state
        .store
        .list_numbers(
            signed.account(),
            &PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await?
        .items;
    let title = match &webhook_id {
        Some(_) => format!("Edit {}", f.name),
        None => "Add Webhook".to_owned(),
    };
    let preview = PreviewView::of(&preview_fields(&f));
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
        p: preview,
    })?;
    if invalid {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

async fn new_form(State(state): State<AppState>, signed: Signed) -> WebResult<Response> {
    form_page(
        &state,
        &signed,
        None,
        FormValues::defaults(),
        Errors::default(),
    )
    .await
}

async fn edit_form(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let w = load(&state, signed.account(), &id).await?;
    form_page(
        &state,
        &signed,
        Some(w.id),
        FormValues::of(&w.spec),
        Errors::default(),
    )
    .await
}

/// Validates the posted form with the API's validator: the spec, or the form again with
/// every error next to its field and everything typed kept.
async fn validated(
    state: &AppState,
    signed: &Signed,
    webhook_id: Option<String>,
    fields: &Fields,
) -> WebResult<Result<WebhookSpec, Response>> {
    let values = FormValues::from_fields(fields);
    match validate_spec(state, signed.account(), &values.to_json()).await {
        Ok(spec) => Ok(Ok(spec)),
        Err(ApiError::Invalid(errors)) => Ok(Err(form_page(
            state,
            signed,
            webhook_id,
            values,
            Errors(errors),
        )
        .await?)),
        Err(e) => Err(e.into()),
    }
}

async fn create(State(state): State<AppState>, form: PostForm) -> WebResult<Response> {
    let spec = match validated(&state, &form.signed, None, &form.fields).await? {
        Ok(spec) => spec,
        Err(page) => return Ok(page),
    };
    let (w, _) = insert(&state, form.signed.account(), spec).await?;
    Ok(Redirect::to(&format!("/webhooks/{}?notice=created", w.id)).into_response())
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let mut w = load(&state, form.signed.account(), &id).await?;
    let spec = match validated(&state, &form.signed, Some(w.id.clone()), &form.fields).await? {
        Ok(spec) => spec,
        Err(page) => return Ok(page),
    };
    update(&state, &mut w, spec).await?;
    Ok(Redirect::to(&format!("/webhooks/{}?notice=saved", w.id)).into_response())
}

// ---------------------------------------------------------------------------------------
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

/// The form fields the preview reads.
struct PreviewFields {
    trigger: Option<Trigger>,
    params: SampleParams,
    headers: Vec<(String, String)>,
}

fn preview_fields(f: &FormValues) -> PreviewFields {
    PreviewFields {
        trigger: Trigger::parse(&f.trigger),
        params: SampleParams {
            method: Some(f.method.clone()),
            content_type: Some(f.content_type.clone()),
            time_zone: Some(f.time_zone.clone()),
            url: Some(f.url.clone()),
        },
        headers: f
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
    }
}

impl PreviewView {
    /// Renders the trigger's sample exactly as `GET /v1/triggers/{id}/sample` does. A field
    /// that is not valid yet (a half-typed URL or zone) falls back to its default, and says so.
    fn of(p: &PreviewFields) -> PreviewView {
        let trigger = p.trigger.unwrap_or(Trigger::CallReceived);
        let mut params = SampleParams {
            method: p.params.method.clone(),
            content_type: p.params.content_type.clone(),
            time_zone: p.params.time_zone.clone(),
            url: p.params.url.clone(),
        };
        let mut skipped = Vec::new();
        let spec = match sample_spec(trigger, &params) {
            Ok(spec) => Some(spec),
            Err(errors) => {
                // Each field the sample could not use falls back to its default.
                for e in &errors.0 {
                    let (field, name) = match e.field.as_str() {
                        "url" => (&mut params.url, "URL"),
                        "time_zone" => (&mut params.time_zone, "Time Zone"),
                        "method" => (&mut params.method, "Request"),
                        "content_type" => (&mut params.content_type, "Content-Type"),
                        _ => continue,
                    };
                    *field = None;
                    skipped.push(name);
                }
                sample_spec(trigger, &params).ok()
            }
        };
        let Some(mut spec) = spec else {
            return PreviewView {
                method: String::new(),
                url: String::new(),
                headers: Vec::new(),
                body: None,
                note: Some("The preview appears once the form's fields are valid.".into()),
            };
        };
        // Custom headers as they would be sent; rows that are not valid yet are left out.
        spec.headers = p
            .headers
            .iter()
            .filter_map(|(k, v)| Header::parse(k, v).ok())
            .collect();
        let sample = render_sample(&spec);
        let r = sample.request;
        PreviewView {
            body: r.body.as_deref().map(pretty_body),
            method: r.method,
            url: r.url,
            headers: r.headers,
            note: (!skipped.is_empty()).then(|| {
                format!(
                    "Shown with the default {} until the field is valid.",
                    skipped.join(" and ")
                )
            }),
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
async fn preview(_signed: Signed, RawQuery(q): RawQuery) -> WebResult<Response> {
    let fields = Fields::parse(q.as_deref().unwrap_or(""))?;
    let values = FormValues::from_fields(&fields);
    page(&PreviewFragment {
        p: PreviewView::of(&preview_fields(&values)),
    })
}

// ---------------------------------------------------------------------------------------
// A webhook's page.

struct DeliveryRow {
    id: String,
    status_class: &'static str,
    status: &'static str,
    trigger: &'static str,
    call_id: String,
    created: When,
    attempts: u32,
    last_response: String,
    latency: String,
    test: bool,
}

impl From<Delivery> for DeliveryRow {
    fn from(d: Delivery) -> Self {
        let (status_class, status) = status_badge(d.status, d.waiting);
        DeliveryRow {
            status_class,
            status,
            trigger: d.trigger.label(),
            created: when(d.created_at),
            attempts: d.attempts,
            last_response: match (d.last_status, &d.last_error) {
                (Some(s), _) => http_status(s),
                (None, Some(_)) => "No response".to_owned(),
                (None, None) => "—".to_owned(),
            },
            latency: d.last_latency_ms.map_or_else(|| "—".to_owned(), latency),
            test: d.test,
            call_id: d.call_id,
            id: d.id,
        }
    }
}

/// The outcome of **Send test**, shown at the top of the webhook's page.
struct TestResult {
    ok: bool,
    headline: String,
    detail: Option<String>,
    delivery_id: String,
}

/// One hour of the chart: a stacked bar.
struct Bar {
    x: u32,
    /// Segments bottom-up: (y, height, class).
    segments: Vec<(u32, u32, &'static str)>,
    title: String,
    /// An hour label under some bars (`09:00`).
    label: Option<String>,
}

struct Chart {
    bars: Vec<Bar>,
    succeeded: u64,
    failed: u64,
    pending: u64,
}

const CHART_HEIGHT: u32 = 120;
const BAR_STEP: u32 = 30;

impl Chart {
    fn total(&self) -> u64 {
        self.succeeded + self.failed + self.pending
    }

    /// 24 bars, one per UTC hour up to the current one.
    fn build(hours: &[crate::store::HourlyDeliveries], now: Timestamp) -> Chart {
        let this_hour = now.as_second() - now.as_second().rem_euclid(3600);
        let first = this_hour - 23 * 3600;
        let max = hours
            .iter()
            .map(|h| h.succeeded + h.failed + h.pending)
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = Chart {
            bars: Vec::with_capacity(24),
            succeeded: 0,
            failed: 0,
            pending: 0,
        };
        for i in 0..24u32 {
            let start = first + i64::from(i) * 3600;
            let h = hours.iter().find(|h| h.hour.as_second() == start);
            let (ok, bad, wait) = h.map_or((0, 0, 0), |h| (h.succeeded, h.failed, h.pending));
            chart.succeeded += ok;
            chart.failed += bad;
            chart.pending += wait;
            let scale = |n: u64| -> u32 {
                if n == 0 {
                    0
                } else {
                    ((n * u64::from(CHART_HEIGHT)) / max).max(2) as u32
                }
            };
            let mut y = CHART_HEIGHT;
            let mut segments = Vec::new();
            for (n, class) in [(ok, "ok"), (bad, "bad"), (wait, "wait")] {
                let hgt = scale(n).min(y);
                if hgt > 0 {
                    y -= hgt;
                    segments.push((y, hgt, class));
                }
            }
            let at = Timestamp::from_second(start).unwrap_or(now);
            let hour = at.strftime("%H:00").to_string();
            chart.bars.push(Bar {
                x: i * BAR_STEP,
                segments,
                title: format!("{hour} UTC: {ok} succeeded, {bad} failed, {wait} pending"),
                label: (i % 6 == 0 || i == 23).then_some(hour),
            });
        }
        chart
    }
}

struct SecretView {
    /// When the rotated-out secret stops signing, if one still does.
    previous_until: Option<When>,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct ShowPage {
    layout: Layout,
    id: String,
    name: String,
    description: String,
    trigger: &'static str,
    url: String,
    method: &'static str,
    content_type: &'static str,
    call_types: String,
    numbers: String,
    time_zone: String,
    headers: Vec<Header>,
    rate_limit: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created: When,
    updated: When,
    secret: SecretView,
    test: Option<TestResult>,
    chart: Chart,
    deliveries: Vec<DeliveryRow>,
    /// `all`, `pending`, `succeeded` or `failed`.
    filter: String,
    next: Option<String>,
}

/// One filter of the delivery log.
struct Tab {
    label: &'static str,
    href: String,
    current: bool,
}

impl ShowPage {
    fn tabs(&self) -> Vec<Tab> {
        [
            ("all", "All"),
            ("pending", "Pending"),
            ("succeeded", "Succeeded"),
            ("failed", "Failed"),
        ]
        .into_iter()
        .map(|(status, label)| Tab {
            label,
            href: match status {
                "all" => format!("/webhooks/{}#log", self.id),
                s => format!("/webhooks/{}?status={s}#log", self.id),
            },
            current: self.filter == status,
        })
        .collect()
    }

    fn next_link(&self) -> Option<String> {
        let after = self.next.as_ref()?;
        Some(match self.filter.as_str() {
            "all" => format!("/webhooks/{}?after={after}#log", self.id),
            s => format!("/webhooks/{}?status={s}&after={after}#log", self.id),
        })
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    notice: Option<String>,
    status: Option<String>,
    after: Option<String>,
    test: Option<String>,
}

async fn test_result(
    state: &AppState,
    account: &str,
    webhook_id: &str,
    delivery_id: &str,
) -> WebResult<Option<TestResult>> {
    if !crate::core::id::is_id("dlv", delivery_id) {
        return Ok(None);
    }
    let (d, attempts) = match state.store.get_delivery(account, delivery_id).await {
        Ok(found) => found,
        Err(crate::store::StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if d.webhook_id != webhook_id {
        return Ok(None);
    }
    let Some(a) = attempts.last() else {
        return Ok(None);
    };
    let ok = d.status == DeliveryStatus::Succeeded;
    let took = latency(a.latency_ms);
    let headline = match (a.response_status, &a.error) {
        (Some(s), _) if ok => format!("Test delivered: {} in {took}", http_status(s)),
        (Some(s), _) => format!("Test failed: the receiver answered {}", http_status(s)),
        (None, Some(e)) => format!("Test failed: {e}"),
        (None, None) => "Test failed.".to_owned(),
    };
    let detail = a
        .response_body
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.chars().take(300).collect::<String>());
    Ok(Some(TestResult {
        ok,
        headline,
        detail,
        delivery_id: d.id,
    }))
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> WebResult<Response> {
    let account = signed.account();
    let w = load(&state, account, &id).await?;
    let status = q.status.as_deref().and_then(DeliveryStatus::parse);
    let log = state
        .store
        .list_deliveries(
            account,
            &w.id,
            &DeliveryFilter {
                status,
                call_id: None,
            },
            &PageRequest {
                limit: LOG_PAGE,
                after: q.after.clone().filter(|a| crate::core::id::is_id("dlv", a)),
            },
        )
        .await?;
    let now = Timestamp::now();
    let since = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let hours = state.store.hourly_deliveries(account, &w.id, since).await?;
    let test = match q.test.as_deref() {
        Some(t) => test_result(&state, account, &w.id, t).await?,
        None => None,
    };
    let spec = &w.spec;
    page(&ShowPage {
        layout: Layout::new(&signed, spec.name.clone(), "webhooks")
            .with_notice(q.notice.as_deref()),
        id: w.id.clone(),
        name: spec.name.clone(),
        description: spec.description.clone(),
        trigger: spec.trigger.label(),
        url: spec.url.to_string(),
        method: spec.method.as_str(),
        content_type: spec.content_type.as_str(),
        call_types: spec
            .call_types
            .iter()
            .map(|t| call_type_label(*t))
            .collect::<Vec<_>>()
            .join(", "),
        numbers: if spec.numbers.is_empty() {
            "All numbers".to_owned()
        } else {
            spec.numbers
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        time_zone: spec.time_zone.name().to_owned(),
        headers: spec.headers.clone(),
        rate_limit: spec
            .rate_limit
            .map_or_else(|| "No limit".to_owned(), |r| format!("{r} requests/s")),
        enabled: spec.enabled,
        disabled_reason: w.disabled_reason.clone(),
        created: when(w.created_at),
        updated: when(w.updated_at),
        secret: SecretView {
            previous_until: w
                .secrets
                .iter()
                .filter_map(|s| s.expires_at)
                .filter(|e| *e > now)
                .max()
                .map(when),
        },
        test,
        chart: Chart::build(&hours, now),
        deliveries: log.items.into_iter().map(DeliveryRow::from).collect(),
        filter: status.map_or("all", DeliveryStatus::as_str).to_owned(),
        next: log.next,
    })
}

async fn set_enabled(state: &AppState, form: &PostForm, id: &str, on: bool) -> WebResult<Response> {
    let mut w = load(state, form.signed.account(), id).await?;
    let mut spec = w.spec.clone();
    spec.enabled = on;
    update(state, &mut w, spec).await?;
    let notice = if on { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/webhooks/{}?notice={notice}", w.id)).into_response())
}

async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    set_enabled(&state, &form, &id, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    set_enabled(&state, &form, &id, false).await
}

#[derive(Template)]
#[template(path = "webhook_delete.html")]
struct DeletePage {
    layout: Layout,
    id: String,
    name: String,
}

async fn confirm_delete(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let w = load(&state, signed.account(), &id).await?;
    page(&DeletePage {
        layout: Layout::new(&signed, format!("Delete {}", w.spec.name), "webhooks"),
        id: w.id,
        name: w.spec.name,
    })
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let w = load(&state, form.signed.account(), &id).await?;
    state.store.delete_webhook(&w.account_id, &w.id).await?;
    Ok(Redirect::to("/webhooks?notice=deleted").into_response())
}

/// The signing secret, fetched by the page's script only when the admin asks to reveal or
/// copy it, so it is not in the page itself.
async fn secret(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let w = load(&state, signed.account(), &id).await?;
    let secret = w
        .current_secret()
        .map(|s| s.secret.expose())
        .unwrap_or_default();
    Ok(Json(json!({ "secret": secret })).into_response())
}

async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let mut w = load(&state, form.signed.account(), &id).await?;
    rotate(&state, &mut w).await?;
    Ok(Redirect::to(&format!("/webhooks/{}?notice=rotated#secret", w.id)).into_response())
}

async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let w = load(&state, form.signed.account(), &id).await?;
    let webhook_id = w.id.clone();
    let delivery = send_test(&state, w).await?;
    Ok(Redirect::to(&format!("/webhooks/{webhook_id}?test={delivery}#test")).into_response())
}
