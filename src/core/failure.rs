//! What went wrong with an attempt, and how a webhook is doing (SPEC §12): the kinds of
//! failure with their human messages, a webhook's health state, and the latency histogram the
//! hourly rollup keeps for p50/p95. Plain data: the HTTP client classifies its errors into an
//! [`ErrorKind`], the store keeps the counts, and these functions say what they mean.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The receiver answered, with a status that is not 2xx nor a redirect.
    HttpStatus,
    /// No complete answer in time (connect or whole request).
    Timeout,
    /// The connection could not be made or broke (refused, reset, unreachable).
    Connect,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The address is one callhook does not connect to (SSRF policy, `allow_targets`).
    BlockedTarget,
    /// The receiver answered 3xx: callhook does not follow redirects.
    Redirect,
    /// The request could not be made from the webhook's templates (its URL came out invalid).
    Template,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::HttpStatus,
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::BlockedTarget,
        ErrorKind::Redirect,
        ErrorKind::Template,
    ];

    /// The stored and API spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::BlockedTarget => "blocked_target",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Template => "template",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A short label for the web page.
    pub const fn label(self) -> &'static str {
        match self {
            ErrorKind::HttpStatus => "HTTP status",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Connect => "Connection",
            ErrorKind::Dns => "DNS",
            ErrorKind::Tls => "TLS",
            ErrorKind::BlockedTarget => "Blocked address",
            ErrorKind::Redirect => "Redirect",
            ErrorKind::Template => "Template",
        }
    }

    /// Every spelling, for messages that list them.
    pub fn names() -> String {
        ErrorKind::ALL.map(ErrorKind::as_str).join(", ")
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed attempt's kind, status (for `http_status` and `redirect`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
}

/// What an answer with `status` says went wrong; `None` for a 2xx. `reason` is the status's
/// reason phrase (`Internal Server Error`), `location` a redirect's `Location`.
pub fn of_status(
    status: u16,
    reason: Option<&str>,
    location: Option<&str>,
) -> Option<AttemptError> {
    let answered = match reason {
        Some(r) if !r.is_empty() => format!("{status} {r}"),
        _ => status.to_string(),
    };
    match status {
        200..=299 => None,
        300..=399 => Some(AttemptError {
            kind: ErrorKind::Redirect,
            status: Some(status),
            message: match location {
                Some(to) => format!(
                    "answered {answered}: redirected to {} (callhook does not follow redirects)",
                    clip(to, 300)
                ),
                None => format!("answered {answered} (callhook does not follow redirects)"),
            },
        }),
        _ => Some(AttemptError {
            kind: ErrorKind::HttpStatus,
            status: Some(status),
            message: format!("answered {answered}"),
        }),
    }
}

/// At most `max` characters of `s`, marked when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// A webhook's state (SPEC §12 `health.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Its latest attempt succeeded.
    Healthy,
    /// Its latest attempt failed (since `failing_since`).
    Failing,
    /// Disabled (by an admin, a 410 Gone, or failing too long): `disabled_reason` says which.
    Disabled,
    /// Nothing sent yet.
    Idle,
}

impl HealthState {
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Failing => "failing",
            HealthState::Disabled => "disabled",
            HealthState::Idle => "idle",
        }
    }

    /// Its state from what the webhook keeps: disabled wins; then a run of failures; then
    /// whether anything was ever sent.
    pub fn of(
        enabled: bool,
        failing_since: Option<Timestamp>,
        last_success_at: Option<Timestamp>,
        last_failure_at: Option<Timestamp>,
    ) -> HealthState {
        if !enabled {
            HealthState::Disabled
        } else if failing_since.is_some() {
            HealthState::Failing
        } else if last_success_at.is_some() || last_failure_at.is_some() {
            HealthState::Healthy
        } else {
            HealthState::Idle
        }
    }
}

/// Upper bounds (ms) of the latency histogram's buckets; the last bucket has no bound.
pub const LATENCY_BOUNDS: [u32; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// How many buckets the histogram has (one more than bounds: the open last one).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// The bucket an attempt of `ms` milliseconds counts in.
pub fn latency_bucket(ms: u32) -> usize {
    LATENCY_BOUNDS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BOUNDS.len())
}

/// The `q` quantile (0..=1) of the latencies counted in `buckets`, estimated by linear
/// interpolation inside its bucket (the open last bucket answers its lower bound); `None` when
/// nothing was counted.
pub fn latency_quantile(buckets: &[u64; LATENCY_BUCKETS], q: f64) -> Option<u32> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let low = if i == 0 { 0 } else { LATENCY_BOUNDS[i - 1] };
            let Some(high) = LATENCY_BOUNDS.get(i) else {
                return Some(low);
            };
            let share = (rank - seen as f64) / *n as f64;
            return Some(low + ((high - low) as f64 * share).round() as u32);
        }
        seen += n;
    }
    LATENCY_BOUNDS.last().copied()
}

/// What a webhook's last 24 hours hold (the hourly rollup summed, and its retrying now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Deliveries that succeeded.
    pub succeeded: u64,
    /// Deliveries that used every attempt.
    pub failed: u64,
    /// Deliveries pending after a failed attempt, now.
    pub retrying: u64,
    /// Attempts that succeeded, and that failed.
    pub ok_attempts: u64,
    pub failed_attempts: u64,
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Window {
    /// Share of the window's attempts that succeeded; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        let all = self.ok_attempts + self.failed_attempts;
        (all > 0).then(|| (self.ok_attempts as f64 / all as f64 * 1000.0).round() / 1000.0)
    }

    pub fn p50_ms(&self) -> Option<u32> {
        latency_quantile(&self.latency, 0.5)
    }

    pub fn p95_ms(&self) -> Option<u32> {
        latency_quantile(&self.latency, 0.95)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_written() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(ErrorKind::parse("blocked"), None);
        assert!(ErrorKind::names().starts_with("http_status, timeout"));
    }

    #[test]
    fn statuses_say_what_went_wrong() {
        assert_eq!(of_status(200, Some("OK"), None), None);
        assert_eq!(of_status(204, None, None), None);
        let e = of_status(500, Some("Internal Server Error"), None).unwrap();
        assert_eq!(e.kind, ErrorKind::HttpStatus);
        assert_eq!(e.status, Some(500));
        assert_eq!(e.message, "answered 500 Internal Server Error");
        assert_eq!(of_status(599, None, None).unwrap().message, "answered 599");
        let e = of_status(302, Some("Found"), Some("https://elsewhere.example/x")).unwrap();
        assert_eq!(e.kind, ErrorKind::Redirect);
        assert_eq!(
            e.message,
            "answered 302 Found: redirected to https://elsewhere.example/x (callhook does not follow redirects)"
        );
        let long = "x".repeat(400);
        assert!(
            of_status(301, None, Some(&long))
                .unwrap()
                .message
                .contains("x…")
        );
        assert_eq!(
            of_status(410, Some("Gone"), None).unwrap().kind,
            ErrorKind::HttpStatus
        );
    }

    #[test]
    fn the_state_follows_what_the_webhook_keeps() {
        let t: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        assert_eq!(HealthState::of(true, None, None, None), HealthState::Idle);
        assert_eq!(
            HealthState::of(true, None, Some(t), None),
            HealthState::Healthy
        );
        assert_eq!(
            HealthState::of(true, None, Some(t), Some(t)),
            HealthState::Healthy
        );
        assert_eq!(
            HealthState::of(true, Some(t), None, Some(t)),
            HealthState::Failing
        );
        assert_eq!(
            HealthState::of(false, Some(t), None, Some(t)),
            HealthState::Disabled
        );
        assert_eq!(
            HealthState::of(false, None, None, None),
            HealthState::Disabled
        );
    }

    #[test]
    fn latencies_fall_in_their_buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(10_000), 10);
        assert_eq!(latency_bucket(10_001), 11);
        assert_eq!(latency_bucket(u32::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_histogram() {
        let mut b = [0u64; LATENCY_BUCKETS];
        assert_eq!(latency_quantile(&b, 0.5), None);
        // 100 attempts in (50, 100] ms: the median is half way through the bucket.
        b[4] = 100;
        assert_eq!(latency_quantile(&b, 0.5), Some(75));
        assert_eq!(latency_quantile(&b, 0.95), Some(98));
        // 90 fast ones and 10 slow: p50 is fast, p95 is slow.
        let mut b = [0u64; LATENCY_BUCKETS];
        b[1] = 90;
        b[8] = 10;
        assert!(latency_quantile(&b, 0.5).unwrap() <= 10);
        assert!(latency_quantile(&b, 0.95).unwrap() > 1000);
        // The open last bucket answers its lower bound.
        let mut b = [0u64; LATENCY_BUCKETS];
        b[LATENCY_BUCKETS - 1] = 3;
        assert_eq!(latency_quantile(&b, 0.5), Some(10_000));
    }

    #[test]
    fn the_success_rate_is_over_attempts() {
        let mut w = Window::default();
        assert_eq!(w.success_rate(), None);
        w.ok_attempts = 2;
        w.failed_attempts = 1;
        assert_eq!(w.success_rate(), Some(0.667));
    }
}
