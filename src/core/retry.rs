//! When to try again: the retry schedule with jitter, `Retry-After`, and what an HTTP answer
//! means for a delivery (SPEC §7).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written `250ms`, `5s`, `5m`, `2h` or `1d` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            Raw::Text(t) => parse_duration(&t)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Longest wait a receiver's `Retry-After` can ask for.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);
/// Share of each delay that jitter may add or take away.
pub const JITTER: f64 = 0.2;

/// Delays between attempts: after attempt *n* fails, the next waits `delays[n-1]`. A delivery
/// gets `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h").expect("the default schedule parses")
    }
}

impl RetrySchedule {
    /// Reads `5s,5m,30m,2h` (units `ms`, `s`, `m`, `h`, `d`). An empty string means no retries.
    pub fn parse(s: &str) -> Result<RetrySchedule, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(RetrySchedule(Vec::new()));
        }
        s.split(',')
            .map(|part| parse_duration(part.trim()))
            .collect::<Result<_, _>>()
            .map(RetrySchedule)
    }

    pub fn max_attempts(&self) -> u32 {
        self.0.len() as u32 + 1
    }

    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// The wait after `attempts` failed attempts, before jitter; `None` when none are left.
    pub fn delay_after(&self, attempts: u32) -> Option<Duration> {
        self.0.get((attempts as usize).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| format_duration(*d)).collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<RetrySchedule, String> {
        RetrySchedule::parse(s)
    }
}

/// Written as it is read (`"5s,5m,30m"`): the settings file, the environment and `--help` all
/// show the one form.
impl serde::Serialize for RetrySchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RetrySchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RetrySchedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Reads one duration: `250ms`, `5s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 5s, 5m, 2h or 1d"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{s:?} has no unit; use ms, s, m, h or d")),
    };
    if !secs.is_finite() || !(0.0..=366.0 * 86400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(86_400_000) && ms > 0 => format!("{}d", ms / 86_400_000),
        _ if ms.is_multiple_of(3_600_000) && ms > 0 => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) && ms > 0 => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// `d` moved by up to ±20%; `unit` is a random number in [-1, 1].
pub fn jitter(d: Duration, unit: f64) -> Duration {
    d.mul_f64(1.0 + JITTER * unit.clamp(-1.0, 1.0))
}

/// Reads a `Retry-After` value, seconds or an HTTP date, capped at 24 hours.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    let d = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        let secs = at.as_second() - now.as_second();
        Duration::from_secs(secs.max(0) as u64)
    };
    Some(d.min(RETRY_AFTER_CAP))
}

/// What one attempt's result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Success,
    /// 410 Gone: the receiver asks us to stop; the webhook is disabled.
    Gone,
    /// Failed; try again by the schedule, or after `Some(wait)` when the receiver said so.
    Retry(Option<Duration>),
}

/// Judges an HTTP status (and its `Retry-After`, if any). Redirects are failures: we never
/// follow them, as the receiver could point us anywhere.
pub fn judge(status: u16, retry_after: Option<&str>, now: Timestamp) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        410 => Verdict::Gone,
        429 | 503 => Verdict::Retry(retry_after.and_then(|v| parse_retry_after(v, now))),
        _ => Verdict::Retry(None),
    }
}

/// How a delivery continues after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Succeeded,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// No attempts left (or the receiver answered 410).
    Failed,
}

/// Everything [`decide`] weighs.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    pub verdict: Verdict,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Attempts allowed in all (a resend or replay raises it past the schedule's count).
    pub limit: u32,
    pub schedule: &'a RetrySchedule,
    /// When the webhook's current run of failures began, if it is failing.
    pub failing_since: Option<Timestamp>,
    pub disable_after: Duration,
    /// Test sends never disable a webhook nor count towards it.
    pub test: bool,
    pub now: Timestamp,
    /// A random number in [-1, 1] for the jitter.
    pub jitter: f64,
}

/// What follows an attempt: the delivery's next step, and a reason when the webhook must be
/// disabled (SPEC §7: 410 Gone at once; failing for `disable_after` once a delivery has used
/// every attempt).
pub fn decide(s: &Situation) -> (Next, Option<String>) {
    let now = s.now;
    match s.verdict {
        Verdict::Success => (Next::Succeeded, None),
        Verdict::Gone if s.test => (Next::Failed, None),
        Verdict::Gone => (
            Next::Failed,
            Some(format!(
                "The receiver answered 410 Gone at {now}, asking callhook to stop; the webhook was disabled. \
                 Enable it again once the URL is fixed."
            )),
        ),
        Verdict::Retry(_) if s.attempt >= s.limit => {
            let disable_after = jiff::SignedDuration::try_from(s.disable_after)
                .unwrap_or(jiff::SignedDuration::MAX);
            let disable = match s.failing_since {
                Some(since) if !s.test && now.duration_since(since) >= disable_after => {
                    let failing =
                        Duration::from_secs(now.duration_since(since).as_secs().max(0) as u64);
                    Some(format!(
                        "Every delivery has failed since {since} ({}) and the latest used all its attempts; \
                         disabled at {now}.",
                        format_duration(failing)
                    ))
                }
                _ => None,
            };
            (Next::Failed, disable)
        }
        Verdict::Retry(asked) => {
            // Position within the current budget: a replay starts the schedule afresh.
            let base = s.limit.saturating_sub(s.schedule.max_attempts());
            let pos = s.attempt.saturating_sub(base).max(1);
            let wait = match asked {
                Some(d) => d,
                None => {
                    let d = s
                        .schedule
                        .delay_after(pos)
                        .or_else(|| s.schedule.delays().last().copied())
                        .unwrap_or(Duration::from_secs(5));
                    jitter(d, s.jitter)
                }
            };
            let wait = jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX);
            (Next::RetryAt(now.saturating_add(wait).unwrap_or(now)), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_schedule_is_the_documented_one() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        let mins: Vec<u64> = s.delays().iter().map(|d| d.as_secs()).collect();
        assert_eq!(mins, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.delay_after(0), None);
        assert_eq!(s.delay_after(1), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(7), Some(Duration::from_secs(36000)));
        assert_eq!(s.delay_after(8), None);
        assert_eq!(s.to_string(), "5s,5m,30m,2h,5h,10h,10h");
    }

    #[test]
    fn schedules_parse_and_refuse() {
        assert_eq!(
            RetrySchedule::parse("100ms, 1s").unwrap().delays(),
            [Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(RetrySchedule::parse("").unwrap().max_attempts(), 1);
        assert!(RetrySchedule::parse("5").is_err());
        assert!(RetrySchedule::parse("5x").is_err());
        assert!(RetrySchedule::parse("-5s").is_err());
        assert!(RetrySchedule::parse("5s,,5m").is_err());
    }

    #[test]
    fn retry_after_takes_seconds_or_dates_and_is_capped() {
        let now: Timestamp = "2015-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999", now), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_judged() {
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(judge(200, None, now), Verdict::Success);
        assert_eq!(judge(204, None, now), Verdict::Success);
        assert_eq!(judge(301, None, now), Verdict::Retry(None));
        assert_eq!(judge(410, None, now), Verdict::Gone);
        assert_eq!(
            judge(429, Some("7"), now),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
        assert_eq!(judge(503, Some("x"), now), Verdict::Retry(None));
        assert_eq!(judge(500, Some("7"), now), Verdict::Retry(None));
    }

    fn situation(verdict: Verdict, attempt: u32, schedule: &RetrySchedule) -> Situation<'_> {
        Situation {
            verdict,
            attempt,
            limit: schedule.max_attempts(),
            schedule,
            failing_since: None,
            disable_after: Duration::from_secs(5 * 86400),
            test: false,
            now: "2026-11-27T04:00:00Z".parse().unwrap(),
            jitter: 0.0,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn each_failure_waits_its_turn_of_the_schedule() {
        let schedule = RetrySchedule::default();
        let expected = [
            "04:00:05", "04:05:00", "04:30:00", "06:00:00", "09:00:00", "14:00:00", "14:00:00",
        ];
        for (i, want) in expected.iter().enumerate() {
            let (next, disable) = decide(&situation(Verdict::Retry(None), i as u32 + 1, &schedule));
            assert_eq!(
                next,
                Next::RetryAt(at(&format!("2026-11-27T{want}Z"))),
                "after attempt {}",
                i + 1
            );
            assert_eq!(disable, None);
        }
        let (next, _) = decide(&situation(Verdict::Retry(None), 8, &schedule));
        assert_eq!(next, Next::Failed, "eight attempts in all");
    }

    #[test]
    fn jitter_moves_the_wait_by_at_most_a_fifth() {
        let schedule = RetrySchedule::default();
        let mut s = situation(Verdict::Retry(None), 2, &schedule);
        s.jitter = 1.0;
        assert_eq!(decide(&s).0, Next::RetryAt(at("2026-11-27T04:06:00Z")));
        s.jitter = -1.0;
        assert_eq!(decide(&s).0, Next::RetryAt(at("2026-11-27T04:04:00Z")));
    }

    #[test]
    fn retry_after_replaces_the_schedule() {
        let schedule = RetrySchedule::default();
        let s = situation(Verdict::Retry(Some(Duration::from_secs(120))), 1, &schedule);
        assert_eq!(decide(&s).0, Next::RetryAt(at("2026-11-27T04:02:00Z")));
    }

    #[test]
    fn a_replay_starts_the_schedule_afresh() {
        let schedule = RetrySchedule::default();
        let mut s = situation(Verdict::Retry(None), 9, &schedule);
        s.limit = 8 + 8;
        assert_eq!(decide(&s).0, Next::RetryAt(at("2026-11-27T04:00:05Z")));
    }

    #[test]
    fn gone_fails_at_once_and_disables_but_not_for_a_test() {
        let schedule = RetrySchedule::default();
        let (next, disable) = decide(&situation(Verdict::Gone, 1, &schedule));
        assert_eq!(next, Next::Failed);
        assert!(disable.unwrap().contains("410"));
        let mut s = situation(Verdict::Gone, 1, &schedule);
        s.test = true;
        assert_eq!(decide(&s), (Next::Failed, None));
    }

    #[test]
    fn failing_for_long_enough_disables_on_the_last_attempt_only() {
        let schedule = RetrySchedule::default();
        let mut s = situation(Verdict::Retry(None), 8, &schedule);
        s.failing_since = Some(at("2026-11-22T04:00:00Z"));
        let (next, disable) = decide(&s);
        assert_eq!(next, Next::Failed);
        assert!(disable.unwrap().contains("since 2026-11-22T04:00:00Z (5d)"));
        // Not yet on an earlier attempt, not when failing for less, not for a test.
        s.attempt = 7;
        assert!(decide(&s).1.is_none());
        s.attempt = 8;
        s.failing_since = Some(at("2026-11-22T04:00:01Z"));
        assert!(decide(&s).1.is_none());
        s.failing_since = Some(at("2026-11-20T00:00:00Z"));
        s.test = true;
        assert!(decide(&s).1.is_none());
        // A webhook that is not failing (its last delivery succeeded) is never disabled.
        s.test = false;
        s.failing_since = None;
        assert!(decide(&s).1.is_none());
        // Short runs are measured to the millisecond, not in whole seconds.
        s.disable_after = Duration::from_millis(300);
        s.failing_since = Some(at("2026-11-27T03:59:59.701Z"));
        assert!(decide(&s).1.is_none(), "299 ms");
        s.failing_since = Some(at("2026-11-27T03:59:59.700Z"));
        assert!(decide(&s).1.is_some(), "300 ms");
    }

    proptest! {
        #[test]
        fn jitter_stays_within_twenty_percent(secs in 1u64..100_000, unit in -1.0f64..=1.0) {
            let d = Duration::from_secs(secs);
            let j = jitter(d, unit);
            prop_assert!(j >= d.mul_f64(0.8) && j <= d.mul_f64(1.2));
        }

        #[test]
        fn durations_round_trip(ms in 0u64..10_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
