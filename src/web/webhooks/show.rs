//! A webhook's page: its settings, enable/disable, delete, signing secret, Send test, the
//! delivery log and the deliveries-per-hour chart.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::core::id::{DeliveryId, WebhookId};
use crate::core::number::E164;
use crate::core::webhook::Header;
use crate::core::webhook::TimeZone;
use crate::service::deliveries::{self, DeliveryError, LogFilterInput};
use crate::service::{Actor, parse_id, webhooks};
use crate::store::{
    Delivery, DeliveryFilter, DeliveryStatus, ErrorKind, HealthState, HourlyDeliveries, PageRequest,
};
use crate::web::form::PostForm;
use crate::web::session::Signed;
use crate::web::view::{
    Layout, When, call_type_label, delivery_badge, http_status, last_answer, latency, when, when_in,
};
use crate::web::{WebResult, WebState, page};

/// Deliveries shown per page of the log.
const LOG_PAGE: u32 = 25;

struct DeliveryRow {
    id: String,
    status_class: &'static str,
    status: &'static str,
    /// Still to be sent or retried: the page's script follows it.
    pending: bool,
    trigger: &'static str,
    call_id: String,
    created: When,
    attempts: u32,
    last_response: String,
    /// The latest failed attempt's kind, as a label.
    error_kind: Option<&'static str>,
    last_error: Option<String>,
    next_attempt: Option<When>,
    latency: String,
    test: bool,
}

impl DeliveryRow {
    /// A row of the log, its times in the webhook's `zone` (named).
    fn new(d: Delivery, zone: &TimeZone) -> Self {
        let (status_class, status) = delivery_badge(&d);
        let (last_response, latency) = last_answer(&d);
        DeliveryRow {
            status_class,
            status,
            pending: d.status == DeliveryStatus::Pending,
            error_kind: d.last_error_kind.map(ErrorKind::label),
            last_error: d.last_error.clone().filter(|_| d.last_error_kind.is_some()),
            next_attempt: d.next_attempt_at.map(|t| when_in(t, zone)),
            trigger: d.trigger.label(),
            created: when_in(d.created_at, zone),
            attempts: d.attempts,
            last_response,
            latency,
            test: d.test,
            call_id: d.call_id.into_string(),
            id: d.id.into_string(),
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
    fn build(hours: &[HourlyDeliveries], now: Timestamp) -> Chart {
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
    /// Some header's value is masked, and the user may reveal it.
    can_reveal_headers: bool,
    rate_limit: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created: When,
    updated: When,
    secret: SecretView,
    test: Option<TestResult>,
    chart: Chart,
    deliveries: Vec<DeliveryRow>,
    /// `all`, `pending`, `retrying`, `succeeded` or `failed`.
    filter: String,
    /// The error kind filtered by, or empty.
    error_kind: &'static str,
    /// The search box's text.
    search: String,
    /// The filters as a query string (without `?`), for links that keep them.
    query: String,
    /// Whether any filter is given.
    filtered: bool,
    /// The filters, as hidden fields of "Retry all matching".
    retry_fields: Vec<(&'static str, String)>,
    /// Every error kind: (id, label).
    kinds: Vec<(&'static str, &'static str)>,
    banner: Option<Banner>,
    failures_view: bool,
    groups: Vec<GroupRow>,
    /// Failed and retrying deliveries (test sends left out).
    to_retry: u64,
    retried: Option<u64>,
    next: Option<String>,
}

/// One filter of the delivery log.
struct Tab {
    label: String,
    href: String,
    current: bool,
}

impl ShowPage {
    fn tabs(&self) -> Vec<Tab> {
        let mut tabs: Vec<Tab> = [
            ("all", "All"),
            ("pending", "Pending"),
            ("retrying", "Retrying"),
            ("succeeded", "Succeeded"),
            ("failed", "Failed"),
        ]
        .into_iter()
        .map(|(status, label)| {
            let mut q = vec![];
            if status != "all" {
                q.push(("status", status.to_owned()));
            }
            if !self.error_kind.is_empty() {
                q.push(("error_kind", self.error_kind.to_owned()));
            }
            if !self.search.trim().is_empty() {
                q.push(("q", self.search.trim().to_owned()));
            }
            Tab {
                label: label.to_owned(),
                href: format!("/webhooks/{}?{}#log", self.id, encode_query(&q)),
                current: !self.failures_view && self.filter == status,
            }
        })
        .collect();
        tabs.push(Tab {
            label: format!("Failures ({})", self.to_retry),
            href: format!("/webhooks/{}?view=failures#log", self.id),
            current: self.failures_view,
        });
        tabs
    }

    fn next_link(&self) -> Option<String> {
        let after = self.next.as_ref()?;
        Some(if self.query.is_empty() {
            format!("/webhooks/{}?after={after}#log", self.id)
        } else {
            format!("/webhooks/{}?{}&after={after}#log", self.id, self.query)
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    notice: Option<String>,
    status: Option<String>,
    after: Option<String>,
    test: Option<String>,
    /// An error kind (`dns`, `http_status`, …).
    error_kind: Option<String>,
    /// The search box: a call id or a phone number.
    q: Option<String>,
    /// `failures`: the failure groups instead of the log.
    view: Option<String>,
    /// How many deliveries a retry just took.
    retried: Option<u64>,
}

/// The log's filters as the page's query gives them: a search that reads as a phone number
/// looks for the number, else for the call id. What does not parse filters nothing.
fn page_filter(q: &ShowQuery) -> DeliveryFilter {
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let number = search.and_then(|s| E164::parse(s).ok());
    let input = LogFilterInput {
        status: q.status.as_deref().filter(|s| *s != "all"),
        error_kind: q.error_kind.as_deref(),
        call_id: search.filter(|_| number.is_none()),
        number: number.as_ref().map(E164::as_str),
        ..LogFilterInput::default()
    };
    deliveries::parse_log_filter(&input).unwrap_or_default()
}

/// The page's own query for `filter` (and the view), to link to it and keep it.
fn filter_query(filter: &DeliveryFilter) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = filter.status {
        let s = if filter.retrying {
            "retrying"
        } else {
            s.as_str()
        };
        q.push(("status", s.to_owned()));
    }
    if let Some(k) = filter.error_kind {
        q.push(("error_kind", k.as_str().to_owned()));
    }
    if let Some(n) = &filter.number {
        q.push(("q", n.as_str().to_owned()));
    } else if let Some(c) = &filter.call_id {
        q.push(("q", c.as_str().to_owned()));
    }
    q
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// What is wrong with a failing webhook, for the banner at the top of its page.
struct Banner {
    since: When,
    error: Option<String>,
    /// Failed and retrying deliveries a retry would take.
    to_retry: u64,
}

/// One failure group, for the Failures view.
struct GroupRow {
    kind: &'static str,
    kind_id: &'static str,
    status: Option<u16>,
    message: String,
    count: u64,
    first: Option<When>,
    last: Option<When>,
    example: String,
}

async fn test_result(
    state: &WebState,
    actor: &Actor,
    webhook_id: &WebhookId,
    delivery_id: &str,
) -> WebResult<Option<TestResult>> {
    let Some(delivery_id) = DeliveryId::parse(delivery_id) else {
        return Ok(None);
    };
    let (d, attempts) = match deliveries::get(&*state.svc.store, actor, &delivery_id).await {
        Ok(found) => found,
        Err(DeliveryError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if d.webhook_id != *webhook_id {
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
        delivery_id: d.id.into_string(),
    }))
}

pub(super) async fn show(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> WebResult<Response> {
    show_page(&state, &signed, &id, q, None).await
}

/// The webhook's page with its custom header values shown (an admin's Reveal, recorded in the
/// audit log; refused to viewers).
pub(super) async fn reveal_headers(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let headers =
        webhooks::reveal_headers(&*state.svc.store, &form.signed.actor(), &parse_id(&id)?).await?;
    let q = ShowQuery::default();
    show_page(&state, &form.signed, &id, q, Some(headers)).await
}

async fn show_page(
    state: &WebState,
    signed: &Signed,
    id: &str,
    q: ShowQuery,
    revealed: Option<Vec<Header>>,
) -> WebResult<Response> {
    let actor = signed.actor();
    let store = &*state.svc.store;
    let w = webhooks::get(store, &actor, &parse_id(id)?).await?;
    let filter = page_filter(&q);
    let page_request = PageRequest {
        limit: LOG_PAGE,
        after: q.after.clone().filter(|a| DeliveryId::parse(a).is_some()),
    };
    let log = deliveries::list(store, &actor, &w.id, &filter, &page_request).await?;
    let groups = deliveries::failure_groups(store, &actor, &w.id, Timestamp::UNIX_EPOCH).await?;
    let to_retry: u64 = groups.iter().map(|g| g.count).sum();
    let banner = match (w.health_state(), w.failing_since) {
        (HealthState::Failing, Some(since)) => Some(Banner {
            since: when(since),
            error: w
                .last_error
                .as_ref()
                .map(|e| format!("{}: {}", e.kind.label(), e.message)),
            to_retry,
        }),
        _ => None,
    };
    let failures_view = q.view.as_deref() == Some("failures");
    let now = Timestamp::now();
    let since = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let hours = deliveries::hourly(store, &actor, &w.id, since).await?;
    let test = match q.test.as_deref() {
        Some(t) => test_result(state, &actor, &w.id, t).await?,
        None => None,
    };
    let spec = &w.spec;
    let can_reveal_headers = revealed.is_none()
        && actor.can(crate::service::Need::ReadSecrets)
        && spec.headers.iter().any(|h| h.secret);
    page(&ShowPage {
        can_reveal_headers,
        layout: Layout::new(signed, spec.name.clone(), "webhooks").with_notice(q.notice.as_deref()),
        id: w.id.to_string(),
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
        headers: revealed.unwrap_or_else(|| spec.headers.clone()),
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
        deliveries: log
            .items
            .into_iter()
            .map(|d| DeliveryRow::new(d, &spec.time_zone))
            .collect(),
        filter: match filter.status {
            Some(_) if filter.retrying => "retrying",
            Some(s) => s.as_str(),
            None => "all",
        }
        .to_owned(),
        error_kind: filter.error_kind.map_or("", ErrorKind::as_str),
        search: q.q.clone().unwrap_or_default(),
        query: encode_query(&filter_query(&filter)),
        filtered: filter != DeliveryFilter::default(),
        retry_fields: filter_query(&filter),
        kinds: ErrorKind::ALL.map(|k| (k.as_str(), k.label())).to_vec(),
        banner,
        failures_view,
        groups: groups
            .into_iter()
            .map(|g| GroupRow {
                kind: g.kind.label(),
                kind_id: g.kind.as_str(),
                status: g.status,
                message: g.message,
                count: g.count,
                first: g.first_at.map(|t| when_in(t, &spec.time_zone)),
                last: g.last_at.map(|t| when_in(t, &spec.time_zone)),
                example: g.example.into_string(),
            })
            .collect(),
        to_retry,
        retried: q.retried,
        next: log.next,
    })
}

async fn set_enabled(state: &WebState, form: &PostForm, id: &str, on: bool) -> WebResult<Response> {
    let actor = form.signed.actor();
    let w = webhooks::set_enabled(&*state.svc.store, &actor, &parse_id(id)?, on).await?;
    let notice = if on { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/webhooks/{}?notice={notice}", w.id)).into_response())
}

pub(super) async fn enable(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    set_enabled(&state, &form, &id, true).await
}

pub(super) async fn disable(
    State(state): State<WebState>,
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

pub(super) async fn confirm_delete(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let w = webhooks::to_change(&*state.svc.store, &signed.actor(), &parse_id(&id)?).await?;
    page(&DeletePage {
        layout: Layout::new(&signed, format!("Delete {}", w.spec.name), "webhooks"),
        id: w.id.into_string(),
        name: w.spec.name,
    })
}

pub(super) async fn delete(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    webhooks::delete(&*state.svc.store, &form.signed.actor(), &parse_id(&id)?).await?;
    Ok(Redirect::to("/webhooks?notice=deleted").into_response())
}

/// The signing secret, fetched by the page's script only when the admin asks to reveal or
/// copy it, so it is not in the page itself.
pub(super) async fn secret(
    State(state): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let secrets = webhooks::secrets(&*state.svc.store, &signed.actor(), &parse_id(&id)?).await?;
    let secret = secrets.current.map(|s| s.expose()).unwrap_or_default();
    Ok(Json(json!({ "secret": secret })).into_response())
}

pub(super) async fn rotate_secret(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    webhooks::rotate(&*state.svc.store, &form.signed.actor(), &parse_id(&id)?).await?;
    Ok(Redirect::to(&format!("/webhooks/{id}?notice=rotated#secret")).into_response())
}

/// Retries the failed and retrying deliveries that match the form's filters (the log's, or a
/// failure group's), each call's in order; back to the log with how many.
pub(super) async fn retry(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let f = |k: &str| Some(form.fields.get(k)).filter(|v| !v.trim().is_empty());
    let q = ShowQuery {
        status: f("status").map(str::to_owned),
        error_kind: f("error_kind").map(str::to_owned),
        q: f("q").map(str::to_owned),
        ..ShowQuery::default()
    };
    let mut filter = page_filter(&q);
    if let Some(s) = f("http_status").and_then(|s| s.parse().ok()) {
        filter.http_status = Some(s);
    }
    let webhook_id = parse_id(&id)?;
    let n =
        deliveries::retry_matching(&state.svc, &form.signed.actor(), &webhook_id, &filter).await?;
    Ok(Redirect::to(&format!("/webhooks/{id}?retried={n}#log")).into_response())
}

pub(super) async fn test(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: PostForm,
) -> WebResult<Response> {
    let delivery = deliveries::send_test(&state.svc, &form.signed.actor(), &parse_id(&id)?).await?;
    Ok(Redirect::to(&format!("/webhooks/{id}?test={delivery}#test")).into_response())
}
