//! One attempt of one delivery: render and sign the request, send it, judge the answer and
//! decide what comes next. The dispatcher and test sends both go through [`run`].

use std::time::Duration;

use jiff::Timestamp;

use super::client::{HttpClient, Response};
use crate::core::alert;
use crate::core::event::CallEvent;
use crate::core::failure::{self, AttemptError};
use crate::core::render::{Context, build};
use crate::core::retry::{RetrySchedule, Situation, Verdict, decide, judge};
use crate::store::{Attempt, AttemptRecord, Claimed, Next};

/// What an attempt needs to know beyond the delivery itself.
#[derive(Debug, Clone)]
pub struct Policy {
    pub schedule: RetrySchedule,
    /// A webhook whose deliveries have all failed for this long is disabled once one of them
    /// has used every attempt.
    pub disable_after: Duration,
}

/// Sends `claimed` once and says what to record. Logs a failed attempt at `info` (with what
/// comes next), a success only at `debug`: a busy node's log is its failures.
#[tracing::instrument(
    name = "attempt",
    skip_all,
    fields(
        webhook = %claimed.webhook.id,
        delivery = %claimed.delivery_id,
        call = tracing::field::Empty,
        n = claimed.attempts + 1,
    )
)]
pub async fn run(client: &HttpClient, claimed: &Claimed, policy: &Policy) -> AttemptRecord {
    let now = Timestamp::now();
    let webhook = &claimed.webhook;
    let record = |attempt: Option<Attempt>, next: Next, disable: Option<String>| AttemptRecord {
        delivery_id: claimed.delivery_id.clone(),
        webhook_id: webhook.id.clone(),
        lease: claimed.lease,
        attempt,
        next,
        disable_webhook: disable,
        note: None,
        test: claimed.test,
    };
    if !webhook.spec.enabled {
        let why = webhook.disabled_reason.as_deref().unwrap_or("disabled");
        tracing::debug!(reason = why, "not sent: the webhook is disabled");
        return record(None, Next::Failed, None)
            .with_error(format!("not sent: the webhook is disabled ({why})"));
    }
    let secrets = webhook.live_secrets(now);
    let request = if claimed.alert {
        // An alert's body was made when it was decided; it goes as it is.
        alert::request(
            webhook.spec.url.as_str(),
            &claimed.event_payload,
            claimed.delivery_id.as_str(),
            now,
            &secrets,
        )
    } else {
        let event = match serde_json::from_str(&claimed.event_payload)
            .map_err(|e| e.to_string())
            .and_then(|v| CallEvent::from_json(&v).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(delivery = %claimed.delivery_id, error = %e, "stored event does not parse");
                return record(None, Next::Failed, None)
                    .with_error(format!("not sent: the stored event is unreadable ({e})"));
            }
        };
        tracing::Span::current().record("call", event.call.call_id.as_str());
        let ctx = Context::of(
            &webhook.spec,
            claimed.trigger,
            &event,
            claimed.event_id.as_str(),
        );
        build(
            &webhook.spec,
            &ctx,
            claimed.delivery_id.as_str(),
            now,
            &secrets,
        )
    };
    let response = client.send(&request).await;
    let finished = Timestamp::now();
    let verdict = match response.status {
        Some(s) => judge(s, response.header("retry-after"), finished),
        None => Verdict::Retry(None),
    };
    let (next, disable) = decide(&Situation {
        verdict,
        attempt: claimed.attempts + 1,
        limit: claimed
            .attempt_limit
            .unwrap_or(policy.schedule.max_attempts()),
        schedule: &policy.schedule,
        failing_since: webhook.failing_since,
        disable_after: policy.disable_after,
        test: claimed.test,
        now: finished,
        jitter: rand::random_range(-1.0..=1.0),
    });
    // An alert receiver is never disabled: it is the account's, not a webhook.
    let disable = disable.filter(|_| !claimed.alert);
    log_outcome(&response, &next);
    let mut attempt = to_attempt(now, &request, &response);
    // What is kept of the request never holds a secret header's value (SPEC §14).
    crate::core::webhook::mask_secret_headers(&webhook.spec.headers, &mut attempt.request_headers);
    record(Some(attempt), next, disable)
}

fn log_outcome(response: &Response, next: &Next) {
    let latency_ms = response.latency.as_millis();
    let status = response.status;
    let failure = failure_of(response);
    let (error_kind, error) = match &failure {
        Some(f) => (Some(f.kind.as_str()), Some(f.message.as_str())),
        None => (None, None),
    };
    match next {
        Next::Succeeded => tracing::debug!(status, latency_ms, "delivered"),
        Next::RetryAt(at) => tracing::info!(
            status,
            error_kind,
            error,
            latency_ms,
            retry_at = %at,
            "attempt failed; retrying"
        ),
        Next::Failed => tracing::info!(
            status,
            error_kind,
            error,
            latency_ms,
            "attempt failed; no attempts left"
        ),
    }
}

fn to_attempt(
    started: Timestamp,
    req: &crate::core::render::WebhookRequest,
    resp: &Response,
) -> Attempt {
    let failure = failure_of(resp);
    Attempt {
        n: 0,
        started_at: started,
        latency_ms: resp.latency.as_millis().min(u32::MAX as u128) as u32,
        request_method: req.method.as_str().to_owned(),
        request_url: req.url.clone(),
        request_headers: req.headers.clone(),
        request_body: req.body.clone(),
        response_status: resp.status,
        response_headers: resp.status.map(|_| resp.headers.clone()),
        response_body: resp.body.clone(),
        error_kind: failure.as_ref().map(|f| f.kind),
        error: failure.map(|f| f.message),
    }
}

/// What went wrong, if anything: a status that is not 2xx says so (a 2xx whose body was then
/// cut off is a success, and keeps the note of what broke); without a status, the client's
/// error.
fn failure_of(resp: &Response) -> Option<AttemptError> {
    match resp.status {
        Some(status) => {
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason());
            failure::of_status(status, reason, resp.header("location")).or_else(|| {
                resp.error.as_ref().map(|(kind, message)| AttemptError {
                    kind: *kind,
                    status: Some(status),
                    message: message.clone(),
                })
            })
        }
        None => resp.error.as_ref().map(|(kind, message)| AttemptError {
            kind: *kind,
            status: None,
            message: message.clone(),
        }),
    }
}

impl AttemptRecord {
    /// For deliveries that end without a request: the reason goes in `last_error`.
    fn with_error(mut self, msg: String) -> AttemptRecord {
        self.note = Some(msg);
        self
    }
}
