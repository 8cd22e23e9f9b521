//! When to try again: the retry schedule with jitter, `Retry-After`, and what an HTTP answer
//! means for a delivery (SPEC §7).

use std::time::Duration;

use jiff::Timestamp;

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
