//! What the templates are filled with: the page frame ([`Layout`]), notices, and values
//! turned into the words and formats admins read (times, statuses, call types).

use std::sync::OnceLock;

use jiff::Timestamp;

use super::session::Signed;
use crate::core::event::CallType;
use crate::core::webhook::TimeZone;
use crate::service::Need;
use crate::store::{Delivery, DeliveryStatus};

/// The frame around every signed-in page: title, active navigation entry, who is signed in
/// and what their role lets them do (the page leaves out what it would refuse), the CSRF
/// token for its forms, and a notice to show once.
pub struct Layout {
    pub title: String,
    /// `webhooks`, `numbers`, `api-keys`, `calls`, `alerts`, `users`, `audit` or `password`.
    pub nav: &'static str,
    pub email: String,
    /// `Owner`, `Admin` or `Viewer`.
    pub role: &'static str,
    pub csrf: String,
    pub notice: Option<Notice>,
    /// Whether the signed-in user may change things (else no edit buttons anywhere).
    pub can_change: bool,
    /// Whether they may see secrets (signing secrets, header values, API keys).
    pub can_see_secrets: bool,
    pub can_manage_users: bool,
    pub can_read_audit: bool,
}

impl Layout {
    pub fn new(signed: &Signed, title: impl Into<String>, nav: &'static str) -> Layout {
        let actor = signed.actor();
        Layout {
            title: title.into(),
            nav,
            email: signed.user.email.clone(),
            role: signed.user.role.label(),
            csrf: signed.session.csrf.clone(),
            notice: None,
            can_change: actor.can(Need::Change),
            can_see_secrets: actor.can(Need::ReadSecrets),
            can_manage_users: actor.can(Need::ManageUsers),
            can_read_audit: actor.can(Need::ReadAudit),
        }
    }

    /// Adds the notice a redirect asked for (`?notice=saved`), if it is one we know.
    pub fn with_notice(mut self, code: Option<&str>) -> Layout {
        self.notice = code.and_then(Notice::from_code);
        self
    }

    pub fn with(mut self, notice: Notice) -> Layout {
        self.notice = Some(notice);
        self
    }
}

/// A one-line message at the top of a page after an action.
pub struct Notice {
    /// `success` or `error`: how it is coloured and announced.
    pub kind: &'static str,
    pub text: String,
}

impl Notice {
    pub fn success(text: impl Into<String>) -> Notice {
        Notice {
            kind: "success",
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            kind: "error",
            text: text.into(),
        }
    }

    /// The notices redirects may ask for. A fixed list, so a link cannot put words on a page.
    fn from_code(code: &str) -> Option<Notice> {
        let text = match code {
            "created" => "Webhook created. It signs every request with the secret below.",
            "saved" => "Changes saved.",
            "enabled" => "Webhook enabled. New call events will be delivered again.",
            "disabled" => "Webhook disabled. No new deliveries will be made until you enable it.",
            "deleted" => "Webhook deleted.",
            "rotated" => {
                "Secret rotated. The previous secret keeps signing too for 24 hours, so receivers can switch over."
            }
            "resent" => "Delivery queued to be sent again now.",
            "number-added" => "Number added.",
            "number-saved" => "Label saved.",
            "number-removed" => "Number removed.",
            "key-revoked" => "API key revoked. Requests with it are refused from now on.",
            "user-saved" => "Role changed.",
            "user-removed" => "User removed. Their sessions ended.",
            "password-changed" => {
                "Password changed. Every other session of yours has been signed out."
            }
            "signed-up" => "Welcome to callhook. Your password is set.",
            _ => return None,
        };
        Some(Notice::success(text))
    }
}

/// A moment, as the page shows it: exact (with its zone named) and relative.
pub struct When {
    /// RFC 3339, for `<time datetime>`: in UTC (`…Z`) for a moment the browser's script may
    /// show in the reader's own zone, or with the offset of the zone it is pinned to.
    pub iso: String,
    /// `2026-11-27 09:30:05 UTC`, `2026-11-27 15:00:05 Asia/Kolkata`.
    pub text: String,
    /// `5 min ago`.
    pub ago: String,
}

/// A moment in UTC, which the browser's script shows in the reader's zone (named).
pub fn when(t: Timestamp) -> When {
    When {
        iso: t.to_string(),
        text: t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ago: ago(t, Timestamp::now()),
    }
}

/// A moment in `zone`, the zone named (`2026-12-05 11:02:07 Europe/London`): a webhook's
/// deliveries in the webhook's zone (SPEC §12). The browser's script leaves it as written.
pub fn when_in(t: Timestamp, zone: &TimeZone) -> When {
    let z = t.to_zoned_datetime(zone.tz().clone());
    When {
        iso: z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        text: format!("{} {}", z.strftime("%Y-%m-%d %H:%M:%S"), zone.name()),
        ago: ago(t, Timestamp::now()),
    }
}

/// A day of a filter form (`2026-11-27`, UTC) as the RFC 3339 time it starts at, `days`
/// later; empty is no filter, and what is not a day goes through as typed (the filter's
/// parser names it).
pub fn day_start(day: &Option<String>, days: i64) -> Option<String> {
    let day = day.as_deref().map(str::trim).filter(|d| !d.is_empty())?;
    let start = || -> Option<String> {
        let date: jiff::civil::Date = day.parse().ok()?;
        let date = date.checked_add(jiff::Span::new().days(days)).ok()?;
        Some(format!("{date}T00:00:00Z"))
    };
    Some(start().unwrap_or_else(|| day.to_owned()))
}

fn ago(t: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second() - t.as_second();
    match secs {
        s if s < -86_400 => format!("in {} d", -s / 86_400),
        s if s < -3600 => format!("in {} h", -s / 3600),
        s if s < -45 => format!("in {} min", (-s + 30) / 60),
        s if s < 45 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", (s + 30) / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A delivery status as a badge: its CSS class and word.
pub fn status_badge(status: DeliveryStatus, waiting: bool) -> (&'static str, &'static str) {
    match status {
        DeliveryStatus::Succeeded => ("ok", "Succeeded"),
        DeliveryStatus::Failed => ("bad", "Failed"),
        DeliveryStatus::Pending if waiting => ("wait", "Waiting"),
        DeliveryStatus::Pending => ("wait", "Pending"),
    }
}

/// A delivery's last answer and its latency as the log shows them (`503 Service Unavailable`,
/// `87 ms`), `—` before any.
pub fn last_answer(d: &Delivery) -> (String, String) {
    let response = match (d.last_status, &d.last_error) {
        (Some(s), _) => http_status(s),
        (None, Some(_)) => "No response".to_owned(),
        (None, None) => "—".to_owned(),
    };
    (
        response,
        d.last_latency_ms.map_or_else(|| "—".to_owned(), latency),
    )
}

/// A delivery of the log as a badge: [`status_badge`], and `Retrying` for one pending after a
/// failed attempt (SPEC §12).
pub fn delivery_badge(d: &Delivery) -> (&'static str, &'static str) {
    if d.retrying() && !d.waiting {
        ("wait", "Retrying")
    } else {
        status_badge(d.status, d.waiting)
    }
}

/// `200 OK`, `503 Service Unavailable`.
pub fn http_status(code: u16) -> String {
    match axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// The words admins see for a call type.
pub fn call_type_label(t: CallType) -> &'static str {
    match t {
        CallType::Inbound => "Inbound",
        CallType::Outbound => "Outbound",
        CallType::ClickToCall => "Click to Call",
    }
}

/// Every IANA time zone name, sorted, for the Time Zone picker.
pub fn time_zones() -> &'static [String] {
    static ZONES: OnceLock<Vec<String>> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut z: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .filter(|n| n.contains('/') || n == "UTC")
            .collect();
        z.sort();
        z.dedup();
        z
    })
}

/// `1,234 ms` → `1.2 s`: latencies as people read them.
pub fn latency(ms: u32) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", f64::from(ms) / 1000.0)
    }
}

/// A body for reading: JSON pretty-printed, anything else as it came.
pub fn pretty_body(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_owned())
        }
        _ => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(ago(at("2026-11-27T09:59:50Z"), now), "just now");
        assert_eq!(ago(at("2026-11-27T09:55:00Z"), now), "5 min ago");
        assert_eq!(ago(at("2026-11-27T07:00:00Z"), now), "3 h ago");
        assert_eq!(ago(at("2026-11-25T10:00:00Z"), now), "2 d ago");
    }

    #[test]
    fn zoned_times_name_their_zone() {
        let t: Timestamp = "2026-12-05T11:02:07Z".parse().unwrap();
        let w = when_in(t, &TimeZone::parse("Asia/Kolkata").unwrap());
        assert_eq!(w.text, "2026-12-05 16:32:07 Asia/Kolkata");
        assert_eq!(w.iso, "2026-12-05T16:32:07+05:30");
        let w = when_in(t, &TimeZone::utc());
        assert_eq!(w.text, "2026-12-05 11:02:07 UTC");
        assert_eq!(w.iso, "2026-12-05T11:02:07+00:00");
        assert_eq!(when(t).iso, "2026-12-05T11:02:07Z");
        assert_eq!(
            day_start(&Some(" 2026-11-30 ".into()), 1).unwrap(),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(day_start(&Some("soon".into()), 0).unwrap(), "soon");
        assert_eq!(day_start(&Some(" ".into()), 0), None);
    }

    #[test]
    fn statuses_and_latencies_are_worded() {
        assert_eq!(http_status(200), "200 OK");
        assert_eq!(http_status(599), "599");
        assert_eq!(latency(87), "87 ms");
        assert_eq!(latency(1234), "1.2 s");
        assert_eq!(pretty_body("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(pretty_body("a=1&b=2"), "a=1&b=2");
    }

    #[test]
    fn the_zone_list_has_the_usual_names() {
        let z = time_zones();
        assert!(z.iter().any(|n| n == "Asia/Kolkata"));
        assert!(z.iter().any(|n| n == "UTC"));
    }
}
