//! The delivery log, one delivery with its attempts, resend, replay and test sends. A viewer
//! reads the log with the request headers an attempt sent masked (they carry the webhook's
//! custom header values); resends and replays are recorded in the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::webhooks::{self, MASKED, WebhookError};
use super::{Actor, Denied, Failure, IntoFailure, Need, Services, or_not_found};
use crate::core::audit::{Action, Change};
use crate::core::failure::ErrorKind;
use crate::core::id::{CallId, DeliveryId, EventId, PostedEventId, WebhookId, new_id};
use crate::core::number::E164;
use crate::core::sample::sample_event_for;
use crate::core::sign::Secret;
use crate::core::validate::{FieldErrors, Fields};
use crate::delivery::attempt;
use crate::ingest::stored_event;
use crate::store::{
    Attempt, Claimed, Delivery, DeliveryFilter, DeliveryStatus, FailureGroup, HourlyDeliveries,
    NewDelivery, NewEvent, Next, Page, PageRequest, Store, StoreError, StoredSecret, Webhook,
};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery not found")]
    NotFound,
    #[error("webhook not found")]
    WebhookNotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    /// Not now: it waits for an earlier delivery of its call, or is being sent (the message
    /// says which).
    #[error("{0}")]
    NotNow(String),
    /// A limit of the webhook says not now.
    #[error("{0}")]
    Limited(Failure),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DeliveryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => DeliveryError::NotNow(m),
            e => DeliveryError::Store(e),
        }
    }
}

impl From<WebhookError> for DeliveryError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound => DeliveryError::WebhookNotFound,
            WebhookError::Invalid(f) => DeliveryError::Invalid(f),
            WebhookError::Stale(m) => DeliveryError::NotNow(m),
            WebhookError::Denied(d) => DeliveryError::Denied(d),
            WebhookError::Store(e) => DeliveryError::Store(e),
        }
    }
}

impl IntoFailure for DeliveryError {
    fn into_failure(self) -> Failure {
        match self {
            DeliveryError::NotFound => Failure::NotFound("delivery"),
            DeliveryError::WebhookNotFound => Failure::NotFound("webhook"),
            DeliveryError::Invalid(f) => Failure::Invalid(f),
            DeliveryError::NotNow(m) => Failure::Conflict(m),
            DeliveryError::Denied(d) => d.into_failure(),
            DeliveryError::Limited(f) => f,
            DeliveryError::Store(e) => e.into_failure(),
        }
    }
}

/// Reads a status filter: `pending`, `succeeded` or `failed`.
pub fn parse_status(field: &str, s: &str) -> Result<DeliveryStatus, FieldErrors> {
    DeliveryStatus::parse(s).ok_or_else(|| {
        super::invalid(
            field,
            format!("{s:?} is not a status; use pending, succeeded or failed"),
        )
    })
}

/// The log's filters (SPEC §12) as a query string or a form gives them; empty ones filter
/// nothing, but an empty time is refused (a time is given whole or left out).
#[derive(Debug, Clone, Default)]
pub struct LogFilterInput<'a> {
    pub status: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub number: Option<&'a str>,
    pub error_kind: Option<&'a str>,
    pub http_status: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// Reads the log's filters, naming every bad one.
pub fn parse_log_filter(input: &LogFilterInput) -> Result<DeliveryFilter, FieldErrors> {
    fn given(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let mut errors = FieldErrors::default();
    let mut filter = DeliveryFilter::default();
    match given(input.status) {
        None => {}
        Some("retrying") => {
            filter.status = Some(DeliveryStatus::Pending);
            filter.retrying = true;
        }
        Some(s) => match DeliveryStatus::parse(s) {
            Some(st) => filter.status = Some(st),
            None => errors.push(
                "status",
                format!("{s:?} is not a status; use pending, retrying, succeeded or failed"),
            ),
        },
    }
    filter.call_id = given(input.call_id).map(|c| CallId::from_string(c.to_owned()));
    if let Some(n) = given(input.number) {
        match E164::parse(n) {
            Ok(n) => filter.number = Some(n),
            Err(_) => errors.push(
                "number",
                format!("{n:?} is not a phone number in E.164 form, like +919876543210"),
            ),
        }
    }
    if let Some(k) = given(input.error_kind) {
        match ErrorKind::parse(k) {
            Some(k) => filter.error_kind = Some(k),
            None => errors.push(
                "error_kind",
                format!("{k:?} is not an error kind; use {}", ErrorKind::names()),
            ),
        }
    }
    if let Some(st) = given(input.http_status) {
        match st.parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => filter.http_status = Some(n),
            _ => errors.push(
                "http_status",
                format!("{st:?} is not an HTTP status (100 to 599)"),
            ),
        }
    }
    let mut time = |field: &str, v: Option<&str>| {
        v.and_then(|t| match t.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                errors.push(
                    field,
                    format!("{t:?} is not an RFC 3339 timestamp with an offset"),
                );
                None
            }
        })
    };
    filter.since = time("since", input.since);
    filter.until = time("until", input.until);
    errors.into_result(filter)
}

/// A page of webhook `webhook_id`'s deliveries, newest first.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    webhook_id: &WebhookId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>, DeliveryError> {
    actor.may(Need::Read)?;
    webhooks::get(store, actor, webhook_id).await?;
    Ok(store
        .list_deliveries(actor.account(), webhook_id, filter, page)
        .await?)
}

/// A page of webhook `webhook_id`'s deliveries matching the log's filters as given, newest
/// first; every bad filter is named.
pub async fn search(
    store: &dyn Store,
    actor: &Actor,
    webhook_id: &WebhookId,
    input: &LogFilterInput<'_>,
    page: &PageRequest,
) -> Result<Page<Delivery>, DeliveryError> {
    actor.may(Need::Read)?;
    let filter = parse_log_filter(input).map_err(DeliveryError::Invalid)?;
    list(store, actor, webhook_id, &filter, page).await
}

/// Webhook `webhook_id`'s failed and retrying deliveries created since `since` (test sends
/// left out), grouped by error kind, HTTP status and message.
pub async fn failure_groups(
    store: &dyn Store,
    actor: &Actor,
    webhook_id: &WebhookId,
    since: Timestamp,
) -> Result<Vec<FailureGroup>, DeliveryError> {
    actor.may(Need::Read)?;
    webhooks::get(store, actor, webhook_id).await?;
    Ok(store
        .failure_groups(actor.account(), webhook_id, since)
        .await?)
}

/// The failure groups' `since`: as given, or 24 hours before `now`.
pub fn failures_since(since: Option<&str>, now: Timestamp) -> Result<Timestamp, DeliveryError> {
    match since {
        None => Ok(now
            .saturating_sub(SignedDuration::from_hours(24))
            .unwrap_or(now)),
        Some(s) => s.parse().map_err(|_| {
            DeliveryError::Invalid(super::invalid(
                "since",
                format!("{s:?} is not an RFC 3339 timestamp with an offset"),
            ))
        }),
    }
}

/// The keys a bulk retry body takes: the log's filters.
pub const RETRY_KEYS: &[&str] = &[
    "status",
    "call_id",
    "number",
    "error_kind",
    "http_status",
    "since",
    "until",
];

/// Reads a bulk retry body: the log's filters, as JSON; `status`, when given, is `failed` or
/// `retrying` (only those are retried).
pub fn parse_retry(obj: &Map<String, Value>) -> Result<DeliveryFilter, FieldErrors> {
    let mut f = Fields::new("", obj, RETRY_KEYS);
    let status = f.str("status");
    let call_id = f.str("call_id");
    let number = f.str("number");
    let error_kind = f.str("error_kind");
    let http_status = f.value("http_status").and_then(|v| match v.as_u64() {
        Some(n) => Some(n.to_string()),
        None => {
            f.error("http_status", "must be an integer from 100 to 599");
            None
        }
    });
    let since = f.str("since");
    let until = f.str("until");
    let mut errors = f.finish();
    if let Some(s) = status
        && !matches!(s, "failed" | "retrying")
    {
        errors.push(
            "status",
            format!("{s:?} is not retried; use failed or retrying (or leave it out for both)"),
        );
    }
    let parsed = parse_log_filter(&LogFilterInput {
        status,
        call_id,
        number,
        error_kind,
        http_status: http_status.as_deref(),
        since,
        until,
    });
    match parsed {
        Ok(filter) if errors.is_empty() => Ok(filter),
        Ok(_) => Err(errors),
        Err(more) => {
            for e in more.0 {
                if !errors.0.iter().any(|have| have.field == e.field) {
                    errors.0.push(e);
                }
            }
            Err(errors)
        }
    }
}

/// Retries now every failed or retrying delivery of webhook `webhook_id` that matches the
/// body's filters, each call's in their order, each with a fresh retry schedule; never a test
/// delivery. Answers how many, and records the filters and the count in the audit log.
pub async fn retry(
    svc: &Services,
    actor: &Actor,
    webhook_id: &WebhookId,
    body: &Map<String, Value>,
) -> Result<u64, DeliveryError> {
    actor.may(Need::Change)?;
    let filter = parse_retry(body).map_err(DeliveryError::Invalid)?;
    retry_matching(svc, actor, webhook_id, &filter).await
}

/// Retries the failed or retrying deliveries of webhook `webhook_id` that match `filter`.
pub async fn retry_matching(
    svc: &Services,
    actor: &Actor,
    webhook_id: &WebhookId,
    filter: &DeliveryFilter,
) -> Result<u64, DeliveryError> {
    actor.may(Need::Change)?;
    webhooks::get(&*svc.store, actor, webhook_id).await?;
    let entry = actor.entry(
        Action::DeliveryBulkRetry,
        webhook_id.as_str(),
        vec![Change::set("filter", describe_filter(filter))],
    );
    let n = svc
        .store
        .retry_deliveries(
            actor.account(),
            webhook_id,
            filter,
            svc.policy.schedule.max_attempts(),
            Timestamp::now(),
            &entry,
        )
        .await?;
    svc.ingest.wake();
    Ok(n)
}

/// The filters given, as the audit log records them.
fn describe_filter(f: &DeliveryFilter) -> Value {
    let mut m = Map::new();
    if let Some(s) = f.status {
        let s = if f.retrying { "retrying" } else { s.as_str() };
        m.insert("status".into(), json!(s));
    }
    if let Some(c) = &f.call_id {
        m.insert("call_id".into(), json!(c.as_str()));
    }
    if let Some(n) = &f.number {
        m.insert("number".into(), json!(n.as_str()));
    }
    if let Some(k) = f.error_kind {
        m.insert("error_kind".into(), json!(k.as_str()));
    }
    if let Some(s) = f.http_status {
        m.insert("http_status".into(), json!(s));
    }
    if let Some(t) = f.since {
        m.insert("since".into(), json!(super::ts(t)));
    }
    if let Some(t) = f.until {
        m.insert("until".into(), json!(super::ts(t)));
    }
    Value::Object(m)
}

/// Webhook `webhook_id`'s deliveries created since `since`, counted per UTC hour by status.
pub async fn hourly(
    store: &dyn Store,
    actor: &Actor,
    webhook_id: &WebhookId,
    since: Timestamp,
) -> Result<Vec<HourlyDeliveries>, DeliveryError> {
    actor.may(Need::Read)?;
    Ok(store
        .hourly_deliveries(actor.account(), webhook_id, since)
        .await?)
}

/// Most deliveries [`now`] reads at once.
pub const MAX_LIVE: usize = 50;

/// Deliveries `ids` of the account as they are now (the web page's pending rows follow them);
/// those not found (another account's, pruned) are left out. At most [`MAX_LIVE`] ids.
pub async fn now(
    store: &dyn Store,
    actor: &Actor,
    ids: &[DeliveryId],
) -> Result<Vec<Delivery>, DeliveryError> {
    actor.may(Need::Read)?;
    if ids.len() > MAX_LIVE {
        return Err(DeliveryError::Invalid(super::invalid(
            "ids",
            format!("at most {MAX_LIVE} deliveries at once"),
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match store.get_delivery(actor.account(), id).await {
            Ok((d, _)) => out.push(d),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The request headers an attempt's log shows to everyone: callhook's own. The others are the
/// webhook's custom headers, whose values are secrets.
const OWN_HEADERS: &[&str] = &[
    "user-agent",
    "content-type",
    "content-length",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// One delivery with every attempt; for a role without secrets, the custom headers each
/// attempt sent are masked.
pub async fn get(
    store: &dyn Store,
    actor: &Actor,
    id: &DeliveryId,
) -> Result<(Delivery, Vec<Attempt>), DeliveryError> {
    actor.may(Need::Read)?;
    let (d, mut attempts) = store
        .get_delivery(actor.account(), id)
        .await
        .map_err(|e| or_not_found(e, DeliveryError::NotFound))?;
    if !actor.can(Need::ReadSecrets) {
        for a in &mut attempts {
            for (name, value) in &mut a.request_headers {
                if !OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    *value = MASKED.to_owned();
                }
            }
        }
    }
    Ok((d, attempts))
}

/// Makes delivery `id` due now for one more attempt and wakes the dispatcher. One that had
/// ended gets exactly one more attempt, in its call's order.
pub async fn resend(svc: &Services, actor: &Actor, id: &DeliveryId) -> Result<(), DeliveryError> {
    actor.may(Need::Change)?;
    let entry = actor.entry(Action::DeliveryResend, id.as_str(), Vec::new());
    svc.store
        .resend(actor.account(), id, Timestamp::now(), &entry)
        .await
        .map_err(|e| or_not_found(e, DeliveryError::NotFound))?;
    svc.ingest.wake();
    Ok(())
}

/// What a replay takes: deliveries created since `since`, in `status`.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    pub since: Timestamp,
    pub status: DeliveryStatus,
}

impl Replay {
    /// The keys a replay body takes.
    pub const KEYS: &[&str] = &["since", "status"];

    /// From `{since, status}`; `status` is `failed` (default) or `succeeded`.
    pub fn parse(obj: &Map<String, Value>) -> Result<Replay, FieldErrors> {
        let mut f = Fields::new("", obj, Replay::KEYS);
        let since = f
            .req_str("since")
            .and_then(|s| match s.parse::<Timestamp>() {
                Ok(t) => Some(t),
                Err(_) => {
                    f.error(
                        "since",
                        format!("{s:?} is not an RFC 3339 timestamp with an offset"),
                    );
                    None
                }
            });
        let status = match f.str("status") {
            None => Some(DeliveryStatus::Failed),
            Some("pending") => {
                f.error(
                    "status",
                    "pending deliveries are already queued; replay failed or succeeded ones",
                );
                None
            }
            Some(s) => match DeliveryStatus::parse(s) {
                Some(st) => Some(st),
                None => {
                    f.error(
                        "status",
                        format!("{s:?} is not a status; use failed or succeeded"),
                    );
                    None
                }
            },
        };
        f.finish().into_result(())?;
        match (since, status) {
            (Some(since), Some(status)) => Ok(Replay { since, status }),
            _ => Err(super::invalid("since", "is required")),
        }
    }
}

/// Queues webhook `webhook_id`'s deliveries again as `{since, status}` asks (see [`Replay`]),
/// each call's in their original order, each with a fresh retry schedule. Answers how many.
pub async fn replay(
    svc: &Services,
    actor: &Actor,
    webhook_id: &WebhookId,
    body: &Map<String, Value>,
) -> Result<u64, DeliveryError> {
    actor.may(Need::Change)?;
    let replay = Replay::parse(body).map_err(DeliveryError::Invalid)?;
    webhooks::get(&*svc.store, actor, webhook_id).await?;
    let entry = actor.entry(
        Action::WebhookReplay,
        webhook_id.as_str(),
        vec![
            Change::set("since", json!(super::ts(replay.since))),
            Change::set("status", json!(replay.status.as_str())),
        ],
    );
    let n = svc
        .store
        .replay(
            actor.account(),
            webhook_id,
            replay.since,
            replay.status,
            svc.policy.schedule.max_attempts(),
            Timestamp::now(),
            &entry,
        )
        .await?;
    svc.ingest.wake();
    Ok(n)
}

/// Sends sample data for webhook `webhook_id`'s trigger now, waits for the one attempt and
/// records it; answers the test delivery's id. It shows in the log, marked test.
pub async fn send_test(
    svc: &Services,
    actor: &Actor,
    webhook_id: &WebhookId,
) -> Result<DeliveryId, DeliveryError> {
    let webhook = webhooks::to_change(&*svc.store, actor, webhook_id).await?;
    test_send(svc, webhook).await
}

async fn test_send(svc: &Services, mut webhook: Webhook) -> Result<DeliveryId, DeliveryError> {
    let _permit = svc
        .test_sends
        .start(
            &webhook,
            svc.settings.max_in_flight_per_webhook,
            Instant::now(),
        )
        .map_err(DeliveryError::Limited)?;
    let account_id = webhook.account_id.clone();
    // A test goes out even while the webhook is disabled: it is how an admin checks a fix.
    webhook.spec.enabled = true;
    let mut event = sample_event_for(
        webhook.spec.trigger,
        &webhook.spec.call_types,
        webhook.spec.numbers.first(),
    );
    event.call.call_id = CallId::from_string(new_id("test"));
    let now = Timestamp::now();
    let delivery_id = DeliveryId::new();
    let new = NewEvent {
        event: stored_event(&account_id, &event, now, true),
        deliveries: vec![NewDelivery {
            id: delivery_id.clone(),
            webhook_id: webhook.id.clone(),
            trigger: webhook.spec.trigger,
            attempt_limit: Some(1),
            not_before: None,
            lease: None,
        }],
    };
    let lease = now
        .saturating_add(
            SignedDuration::try_from(svc.settings.lease.0).unwrap_or(SignedDuration::from_secs(60)),
        )
        .unwrap_or(now);
    let mut claimed = svc
        .store
        .insert_test_delivery(&svc.node, new, lease)
        .await?;
    claimed.webhook = Arc::new(webhook);
    let record = attempt::run(&svc.client, &claimed, &svc.policy).await;
    svc.store
        .record_attempts(vec![record], Timestamp::now())
        .await?;
    Ok(delivery_id)
}

/// What a test of an unsaved webhook gives back: the one attempt, whether it succeeded, and
/// the throwaway secret that signed it (so a receiver's developer can check the signature).
#[derive(Debug, Clone)]
pub struct UnsavedTest {
    pub attempt: Attempt,
    pub succeeded: bool,
    pub secret: Secret,
}

/// Sends the sample of an unsaved webhook's trigger once, as [`send_test`] does for a saved
/// one, and stores nothing: no webhook, event, delivery or attempt row (so no audit entry
/// either). The body is validated as a create is (every bad field named). It is signed with a
/// throwaway secret made for this one request and goes through the same renderer, client and
/// target policy as every delivery. Unsaved tests of an account count as one webhook for the
/// test-send limits: at most `max_in_flight_per_webhook` at once, spaced by the body's
/// `rate_limit` if it has one.
///
/// `saved`: the webhook the body is an edit of, whose secret header values a masked value
/// (`********`) stands for.
pub async fn send_unsaved_test(
    svc: &Services,
    actor: &Actor,
    body: &Map<String, Value>,
    saved: Option<&WebhookId>,
) -> Result<UnsavedTest, DeliveryError> {
    actor.may(Need::Change)?;
    let mut spec = webhooks::validate(&*svc.store, actor, body).await?;
    if let Some(id) = saved {
        let stored = webhooks::to_change(&*svc.store, actor, id).await?;
        crate::core::webhook::keep_masked_values(&stored.spec.headers, &mut spec.headers);
    }
    // A test goes out whatever the form's Enabled box says: it is how an admin checks a URL.
    spec.enabled = true;
    let now = Timestamp::now();
    let secret = Secret::generate();
    let webhook = Webhook {
        // Never stored: it names the account's unsaved tests for the limits and the log lines.
        id: WebhookId::from_string(format!("unsaved:{}", actor.account())),
        account_id: actor.account().clone(),
        disabled_reason: None,
        spec,
        secrets: vec![StoredSecret {
            secret: secret.clone(),
            created_at: now,
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        last_success_at: None,
        failing_since: None,
        hold_until: None,
        last_failure_at: None,
        last_error: None,
        recent: Default::default(),
    };
    let _permit = svc
        .test_sends
        .start(
            &webhook,
            svc.settings.max_in_flight_per_webhook,
            Instant::now(),
        )
        .map_err(DeliveryError::Limited)?;
    let mut event = sample_event_for(
        webhook.spec.trigger,
        &webhook.spec.call_types,
        webhook.spec.numbers.first(),
    );
    event.call.call_id = CallId::from_string(new_id("test"));
    let claimed = Claimed {
        delivery_id: DeliveryId::new(),
        lease: 0,
        trigger: webhook.spec.trigger,
        attempts: 0,
        attempt_limit: Some(1),
        event_id: PostedEventId::from_string(EventId::new().into_string()),
        event_payload: event.to_json().to_string().into(),
        webhook: Arc::new(webhook),
        lease_until: now,
        test: true,
        alert: false,
    };
    let record = attempt::run(&svc.client, &claimed, &svc.policy).await;
    match record.attempt {
        Some(mut attempt) => {
            attempt.n = 1;
            Ok(UnsavedTest {
                attempt,
                succeeded: record.next == Next::Succeeded,
                secret,
            })
        }
        // Only a disabled webhook or an unreadable event is not sent, and this is neither.
        None => Err(DeliveryError::Store(StoreError::Corrupt(
            record
                .note
                .unwrap_or_else(|| "the test was not sent".into()),
        ))),
    }
}

/// Test sends per webhook, kept to the webhook's limits like the dispatcher's sends: at most
/// `max_in_flight_per_webhook` at once, and no closer together than its `rate_limit` allows,
/// so "Send test" clicked in a loop cannot flood a receiver. A test send beyond them is
/// refused at once (429, naming the limit) rather than queued behind a button. They are
/// counted apart from the dispatcher's own requests, which test sends never wait for.
#[derive(Clone, Default)]
pub struct TestSends(Arc<Mutex<HashMap<WebhookId, Gate>>>);

#[derive(Debug, Clone, Copy)]
struct Gate {
    in_flight: u32,
    /// The earliest the next test send may start.
    next: Instant,
}

/// One test send's place among its webhook's; given back when dropped.
pub struct TestPermit {
    sends: TestSends,
    webhook: WebhookId,
}

impl Drop for TestPermit {
    fn drop(&mut self) {
        let mut gates = self.sends.gates();
        if let Some(g) = gates.get_mut(&self.webhook) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }
}

impl TestSends {
    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Gate>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leave for one test send of `webhook` now, or how long to wait and which limit says so.
    pub fn start(
        &self,
        webhook: &Webhook,
        per_webhook: u32,
        now: Instant,
    ) -> Result<TestPermit, Failure> {
        let mut gates = self.gates();
        // Webhooks with nothing in flight and no slot to keep are forgotten.
        gates.retain(|_, g| g.in_flight > 0 || g.next > now);
        let g = gates.entry(webhook.id.clone()).or_insert(Gate {
            in_flight: 0,
            next: now,
        });
        if g.in_flight >= per_webhook.max(1) {
            return Err(Failure::TooMany {
                message: format!(
                    "{} test send{} of this webhook already in flight, the most \
                     max_in_flight_per_webhook allows; try again when {} finished",
                    g.in_flight,
                    if g.in_flight == 1 { " is" } else { "s are" },
                    if g.in_flight == 1 {
                        "it has"
                    } else {
                        "one has"
                    },
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        if g.next > now {
            let wait = g.next - now;
            return Err(Failure::TooMany {
                message: format!(
                    "the webhook's rate_limit ({}/s) allows its next request in {:.1} s",
                    webhook.spec.rate_limit.unwrap_or_default(),
                    wait.as_secs_f64()
                ),
                retry_after: wait,
            });
        }
        g.in_flight += 1;
        if let Some(rate) = webhook.spec.rate_limit.filter(|r| *r > 0.0) {
            g.next = now + Duration::from_secs_f64(1.0 / rate);
        }
        Ok(TestPermit {
            sends: self.clone(),
            webhook: webhook.id.clone(),
        })
    }
}
