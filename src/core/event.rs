//! Call events (SPEC §4): what the telephony core reports about a call, validated at the edge.
//!
//! One parser ([`CallEvent::from_json`]) reads both what clients post and what the store kept;
//! [`CallEvent::to_json`] writes the canonical form back, so the two never drift apart.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::id::{CallId, PostedEventId};
use super::number::E164;
use super::validate::{FieldErrors, Fields, kind};

/// Longest id, name or extension we accept in an event.
const MAX_TEXT: usize = 256;
const MAX_URL: usize = 2048;
const MAX_EXTENSIONS: usize = 1000;

/// Which call situation an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "call.received")]
    Received,
    #[serde(rename = "call.answered")]
    Answered,
    #[serde(rename = "call.dialed")]
    Dialed,
    #[serde(rename = "call.dtmf")]
    Dtmf,
    #[serde(rename = "call.ended")]
    Ended,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Received,
        EventType::Answered,
        EventType::Dialed,
        EventType::Dtmf,
        EventType::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Received => "call.received",
            EventType::Answered => "call.answered",
            EventType::Dialed => "call.dialed",
            EventType::Dtmf => "call.dtmf",
            EventType::Ended => "call.ended",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The keys of this type's own object.
    fn detail_keys(self) -> &'static [&'static str] {
        match self {
            EventType::Received => &[],
            EventType::Answered => AnsweredBy::KEYS,
            EventType::Dialed => Dialed::KEYS,
            EventType::Dtmf => Dtmf::KEYS,
            EventType::Ended => Ended::KEYS,
        }
    }

    /// The key of this type's own object in an event (`answered_by`, `ended`, …).
    fn detail_key(self) -> Option<&'static str> {
        match self {
            EventType::Received => None,
            EventType::Answered => Some("answered_by"),
            EventType::Dialed => Some("dialed"),
            EventType::Dtmf => Some("dtmf"),
            EventType::Ended => Some("ended"),
        }
    }
}

/// Generates a small string enum with `as_str`, `parse` and `ALL`.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $s)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages: `a, b or c`.
            pub fn choices() -> String {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                match all.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                }
            }
        }

        impl $crate::core::validate::Choice for $name {
            fn parse(s: &str) -> Option<Self> {
                $name::parse(s)
            }
            fn choices() -> String {
                $name::choices()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// The direction of a call.
    CallType { Inbound = "inbound", Outbound = "outbound", ClickToCall = "click_to_call" }
);
str_enum!(
    /// Who answered a call (`answered_by.type`).
    AnswerKind { Ivr = "ivr", RingGroup = "ring_group", Queue = "queue", Extension = "extension", Customer = "customer" }
);
str_enum!(
    /// How extensions were dialed (`dialed.via`).
    DialVia { Direct = "direct", RingGroup = "ring_group", Queue = "queue" }
);
str_enum!(
    /// How a call ended (`ended.status`).
    EndStatus { Answered = "answered", Missed = "missed" }
);
str_enum!(
    /// Who hung up (`ended.hangup_by`).
    HangupBy { Customer = "customer", Extension = "extension", System = "system" }
);
str_enum!(
    /// Where a call was when it ended (`ended.last_stage`).
    Stage { Ivr = "ivr", RingGroup = "ring_group", Queue = "queue", Extension = "extension" }
);

/// The call an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub call_id: CallId,
    pub leg_id: Option<String>,
    pub call_type: CallType,
    pub did_number: E164,
    pub customer_number: Option<E164>,
    pub started_at: Option<Timestamp>,
}

// The keys each part of a posted event takes (see `Fields`).
impl CallEvent {
    pub const KEYS: &[&str] = &[
        "id",
        "account_id",
        "type",
        "occurred_at",
        "call",
        "answered_by",
        "dialed",
        "dtmf",
        "ended",
    ];
}

impl Call {
    pub const KEYS: &[&str] = &[
        "call_id",
        "leg_id",
        "call_type",
        "did_number",
        "customer_number",
        "started_at",
    ];
}

impl AnsweredBy {
    pub const KEYS: &[&str] = &[
        "type",
        "id",
        "name",
        "extension",
        "extension_name",
        "ring_time",
        "hold_time",
        "ref_id",
    ];
}

impl Dialed {
    pub const KEYS: &[&str] = &["via", "id", "name", "extensions"];
}

impl Dtmf {
    pub const KEYS: &[&str] = &["digit", "digits", "ivr_id", "ivr_name"];
}

impl Ended {
    pub const KEYS: &[&str] = &[
        "status",
        "answered_at",
        "ended_at",
        "duration",
        "billsec",
        "hangup_cause",
        "hangup_by",
        "answered_extension",
        "answered_extension_name",
        "missed_extensions",
        "last_stage",
        "recording_url",
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnsweredBy {
    pub kind: AnswerKind,
    pub id: Option<String>,
    pub name: Option<String>,
    pub extension: Option<String>,
    pub extension_name: Option<String>,
    pub ring_time: Option<i64>,
    pub hold_time: Option<i64>,
    pub ref_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialed {
    pub via: DialVia,
    pub id: Option<String>,
    pub name: Option<String>,
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dtmf {
    pub digit: String,
    pub digits: Option<String>,
    pub ivr_id: Option<String>,
    pub ivr_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub status: EndStatus,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration: Option<i64>,
    pub billsec: Option<i64>,
    pub hangup_cause: Option<String>,
    pub hangup_by: Option<HangupBy>,
    pub answered_extension: Option<String>,
    pub answered_extension_name: Option<String>,
    pub missed_extensions: Option<Vec<String>>,
    pub last_stage: Option<Stage>,
    pub recording_url: Option<String>,
}

/// The type-specific part of an event: exactly one, matching its type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventDetail {
    Received,
    Answered(AnsweredBy),
    Dialed(Dialed),
    Dtmf(Dtmf),
    Ended(Ended),
}

/// A validated call event.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// The id the sender gave, unique per account; `None` when it gave none.
    pub id: Option<PostedEventId>,
    /// Which account the event is for; only the operator token may name one.
    pub account_id: Option<String>,
    pub occurred_at: Timestamp,
    pub call: Call,
    pub detail: EventDetail,
}

impl CallEvent {
    pub fn event_type(&self) -> EventType {
        match self.detail {
            EventDetail::Received => EventType::Received,
            EventDetail::Answered(_) => EventType::Answered,
            EventDetail::Dialed(_) => EventType::Dialed,
            EventDetail::Dtmf(_) => EventType::Dtmf,
            EventDetail::Ended(_) => EventType::Ended,
        }
    }

    /// Parses and validates one event, naming every bad field.
    pub fn from_json(value: &Value) -> Result<CallEvent, FieldErrors> {
        let Value::Object(obj) = value else {
            let mut e = FieldErrors::default();
            e.push(
                "",
                format!("a call event must be a JSON object, not {}", kind(value)),
            );
            return Err(e);
        };
        let mut f = Fields::new("", obj, CallEvent::KEYS);
        let id = text(&mut f, "id", MAX_TEXT);
        if id.as_deref() == Some("") {
            f.error(
                "id",
                "must not be empty (leave it out to have callhook assign one)",
            );
        }
        let account_id = text(&mut f, "account_id", MAX_TEXT);
        let event_type = f.req_str("type").and_then(|s| {
            let t = EventType::parse(s);
            if t.is_none() {
                let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                f.error(
                    "type",
                    format!(
                        "{s:?} is not a call event type; use one of {}",
                        all.join(", ")
                    ),
                );
            }
            t
        });
        let occurred_at = req_timestamp(&mut f, "occurred_at");
        let call = match f.object("call") {
            Some(c) => parse_call(c, &mut f.errors),
            None => {
                if !f.errors.0.iter().any(|e| e.field == "call") {
                    f.error("call", "is required");
                }
                None
            }
        };
        let detail = event_type.and_then(|t| parse_detail(t, &mut f));
        // The other types' objects do not belong here; say so more clearly than "unknown".
        for t in EventType::ALL {
            if let Some(key) = t.detail_key()
                && Some(t) != event_type
                && obj.contains_key(key)
            {
                let _ = f.value(key);
                f.error(key, format!("belongs to {} events only", t.as_str()));
            }
        }
        let errors = f.finish();
        match (occurred_at, call, detail) {
            (Some(occurred_at), Some(call), Some(detail)) if errors.is_empty() => Ok(CallEvent {
                id: id.map(PostedEventId::from_string),
                account_id,
                occurred_at,
                call,
                detail,
            }),
            _ => Err(errors),
        }
    }

    /// The canonical JSON form: what the store keeps and what [`CallEvent::from_json`] reads.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        if let Some(id) = &self.id {
            obj.insert("id".into(), json!(id.as_str()));
        }
        if let Some(a) = &self.account_id {
            obj.insert("account_id".into(), json!(a));
        }
        obj.insert("type".into(), json!(self.event_type().as_str()));
        obj.insert("occurred_at".into(), json!(self.occurred_at.to_string()));
        let c = &self.call;
        let mut call = Map::new();
        call.insert("call_id".into(), json!(c.call_id.as_str()));
        put(&mut call, "leg_id", &c.leg_id);
        call.insert("call_type".into(), json!(c.call_type.as_str()));
        call.insert("did_number".into(), json!(c.did_number.as_str()));
        put(
            &mut call,
            "customer_number",
            &c.customer_number.as_ref().map(E164::as_str),
        );
        put(
            &mut call,
            "started_at",
            &c.started_at.map(|t| t.to_string()),
        );
        obj.insert("call".into(), Value::Object(call));
        match &self.detail {
            EventDetail::Received => {}
            EventDetail::Answered(a) => {
                let mut m = Map::new();
                m.insert("type".into(), json!(a.kind.as_str()));
                put(&mut m, "id", &a.id);
                put(&mut m, "name", &a.name);
                put(&mut m, "extension", &a.extension);
                put(&mut m, "extension_name", &a.extension_name);
                put(&mut m, "ring_time", &a.ring_time);
                put(&mut m, "hold_time", &a.hold_time);
                put(&mut m, "ref_id", &a.ref_id);
                obj.insert("answered_by".into(), Value::Object(m));
            }
            EventDetail::Dialed(d) => {
                let mut m = Map::new();
                m.insert("via".into(), json!(d.via.as_str()));
                put(&mut m, "id", &d.id);
                put(&mut m, "name", &d.name);
                m.insert("extensions".into(), json!(d.extensions));
                obj.insert("dialed".into(), Value::Object(m));
            }
            EventDetail::Dtmf(d) => {
                let mut m = Map::new();
                m.insert("digit".into(), json!(d.digit));
                put(&mut m, "digits", &d.digits);
                put(&mut m, "ivr_id", &d.ivr_id);
                put(&mut m, "ivr_name", &d.ivr_name);
                obj.insert("dtmf".into(), Value::Object(m));
            }
            EventDetail::Ended(e) => {
                let mut m = Map::new();
                m.insert("status".into(), json!(e.status.as_str()));
                put(&mut m, "answered_at", &e.answered_at.map(|t| t.to_string()));
                put(&mut m, "ended_at", &e.ended_at.map(|t| t.to_string()));
                put(&mut m, "duration", &e.duration);
                put(&mut m, "billsec", &e.billsec);
                put(&mut m, "hangup_cause", &e.hangup_cause);
                put(&mut m, "hangup_by", &e.hangup_by.map(HangupBy::as_str));
                put(&mut m, "answered_extension", &e.answered_extension);
                put(
                    &mut m,
                    "answered_extension_name",
                    &e.answered_extension_name,
                );
                put(&mut m, "missed_extensions", &e.missed_extensions);
                put(&mut m, "last_stage", &e.last_stage.map(Stage::as_str));
                put(&mut m, "recording_url", &e.recording_url);
                obj.insert("ended".into(), Value::Object(m));
            }
        }
        Value::Object(obj)
    }
}

fn put<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

/// An optional string of at most `max` characters.
fn text(f: &mut Fields, key: &'static str, max: usize) -> Option<String> {
    let s = f.str(key)?;
    if s.chars().count() > max {
        f.error(key, format!("must be at most {max} characters"));
        return None;
    }
    Some(s.to_owned())
}

fn timestamp(f: &mut Fields, key: &'static str) -> Option<Timestamp> {
    let s = f.str(key)?;
    match s.parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            f.error(
                key,
                format!(
                    "{s:?} is not an RFC 3339 timestamp with an offset, like 2026-11-27T04:00:05Z"
                ),
            );
            None
        }
    }
}

fn req_timestamp(f: &mut Fields, key: &'static str) -> Option<Timestamp> {
    f.req_str(key)?;
    timestamp(f, key)
}

fn parse_call(obj: &Map<String, Value>, errors: &mut FieldErrors) -> Option<Call> {
    let mut f = Fields::new("call", obj, Call::KEYS);
    let call_id = f.req_str("call_id").map(str::to_owned);
    if let Some(id) = &call_id
        && (id.is_empty() || id.chars().count() > MAX_TEXT)
    {
        f.error("call_id", format!("must be 1 to {MAX_TEXT} characters"));
    }
    let leg_id = text(&mut f, "leg_id", MAX_TEXT);
    let call_type = f.req_choice::<CallType>("call_type");
    let did_number = f.req_str("did_number").and_then(|s| match E164::parse(s) {
        Ok(n) => Some(n),
        Err(e) => {
            f.error("did_number", e);
            None
        }
    });
    let customer_number = f.str("customer_number").and_then(|s| match E164::parse(s) {
        Ok(n) => Some(n),
        Err(e) => {
            f.error("customer_number", e);
            None
        }
    });
    let started_at = timestamp(&mut f, "started_at");
    let e = f.finish();
    let ok = e.is_empty();
    errors.0.extend(e.0);
    match (call_id, call_type, did_number) {
        (Some(call_id), Some(call_type), Some(did_number)) if ok => Some(Call {
            call_id: CallId::from_string(call_id),
            leg_id,
            call_type,
            did_number,
            customer_number,
            started_at,
        }),
        _ => None,
    }
}

fn parse_detail(t: EventType, parent: &mut Fields) -> Option<EventDetail> {
    let Some(key) = t.detail_key() else {
        return Some(EventDetail::Received);
    };
    let obj = match parent.object(key) {
        Some(o) => o,
        None => {
            if !parent.errors.0.iter().any(|e| e.field == key) {
                parent.error(key, format!("is required for {} events", t.as_str()));
            }
            return None;
        }
    };
    let mut f = Fields::new(key, obj, t.detail_keys());
    let detail = match t {
        EventType::Received => Some(EventDetail::Received),
        EventType::Answered => {
            let kind = f.req_choice::<AnswerKind>("type");
            let a = AnsweredBy {
                kind: kind.unwrap_or(AnswerKind::Extension),
                id: text(&mut f, "id", MAX_TEXT),
                name: text(&mut f, "name", MAX_TEXT),
                extension: text(&mut f, "extension", MAX_TEXT),
                extension_name: text(&mut f, "extension_name", MAX_TEXT),
                ring_time: f.seconds("ring_time"),
                hold_time: f.seconds("hold_time"),
                ref_id: text(&mut f, "ref_id", MAX_TEXT),
            };
            kind.map(|_| EventDetail::Answered(a))
        }
        EventType::Dialed => {
            let via = f.req_choice::<DialVia>("via");
            let id = text(&mut f, "id", MAX_TEXT);
            let name = text(&mut f, "name", MAX_TEXT);
            let extensions = extension_list(&mut f, "extensions", true);
            match (via, extensions) {
                (Some(via), Some(extensions)) => Some(EventDetail::Dialed(Dialed {
                    via,
                    id,
                    name,
                    extensions,
                })),
                _ => None,
            }
        }
        EventType::Dtmf => {
            let digit = f.req_str("digit").map(str::to_owned);
            if let Some(d) = &digit
                && !(d.chars().count() == 1 && d.chars().all(is_dtmf))
            {
                f.error(
                    "digit",
                    format!("{d:?} is not one DTMF digit (0-9, *, #, A-D)"),
                );
            }
            let digits = text(&mut f, "digits", MAX_TEXT);
            if let Some(d) = &digits
                && !d.chars().all(is_dtmf)
            {
                f.error(
                    "digits",
                    format!("{d:?} may hold only DTMF digits (0-9, *, #, A-D)"),
                );
            }
            let ivr_id = text(&mut f, "ivr_id", MAX_TEXT);
            let ivr_name = text(&mut f, "ivr_name", MAX_TEXT);
            digit.map(|digit| {
                EventDetail::Dtmf(Dtmf {
                    digit,
                    digits,
                    ivr_id,
                    ivr_name,
                })
            })
        }
        EventType::Ended => {
            let status = f.req_choice::<EndStatus>("status");
            let e = Ended {
                status: status.unwrap_or(EndStatus::Missed),
                answered_at: timestamp(&mut f, "answered_at"),
                ended_at: timestamp(&mut f, "ended_at"),
                duration: f.seconds("duration"),
                billsec: f.seconds("billsec"),
                hangup_cause: text(&mut f, "hangup_cause", MAX_TEXT),
                hangup_by: f.opt_choice::<HangupBy>("hangup_by"),
                answered_extension: text(&mut f, "answered_extension", MAX_TEXT),
                answered_extension_name: text(&mut f, "answered_extension_name", MAX_TEXT),
                missed_extensions: extension_list(&mut f, "missed_extensions", false),
                last_stage: f.opt_choice::<Stage>("last_stage"),
                recording_url: text(&mut f, "recording_url", MAX_URL),
            };
            if status == Some(EndStatus::Missed) {
                if e.answered_extension.is_some() {
                    f.error(
                        "answered_extension",
                        "a missed call has no answering extension; use status \"answered\"",
                    );
                }
                if e.answered_at.is_some() {
                    f.error(
                        "answered_at",
                        "a missed call was never answered; use status \"answered\"",
                    );
                }
            }
            status.map(|_| EventDetail::Ended(e))
        }
    };
    let e = f.finish();
    let ok = e.is_empty();
    parent.errors.0.extend(e.0);
    detail.filter(|_| ok)
}

fn extension_list(f: &mut Fields, key: &'static str, required: bool) -> Option<Vec<String>> {
    if required && f.array(key).is_none() {
        if !f.errors.0.iter().any(|e| e.field.ends_with(key)) {
            f.error(key, "is required");
        }
        return None;
    }
    let list = f.str_array(key)?;
    if list.len() > MAX_EXTENSIONS {
        f.error(key, format!("may hold at most {MAX_EXTENSIONS} extensions"));
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        if s.is_empty() || s.chars().count() > MAX_TEXT || s.contains(',') {
            f.error(
                &format!("{key}[{i}]"),
                format!("{s:?} is not an extension (1 to {MAX_TEXT} characters, no commas)"),
            );
        } else {
            out.push((*s).to_owned());
        }
    }
    (out.len() == list.len()).then_some(out)
}

fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered() -> Value {
        json!({
            "id": "ev-1",
            "type": "call.answered",
            "occurred_at": "2026-11-27T04:00:05Z",
            "call": {
                "call_id": "1732680000.1042",
                "leg_id": "leg-2",
                "call_type": "inbound",
                "did_number": "+918065251305",
                "customer_number": "+919812345678",
                "started_at": "2026-11-27T04:00:00Z"
            },
            "answered_by": {"type": "ring_group", "id": "rg_sales", "name": "Sales",
                            "extension": "101", "extension_name": "Asha", "ring_time": 5, "hold_time": null}
        })
    }

    fn fields(v: &Value) -> Vec<String> {
        CallEvent::from_json(v)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn parses_the_spec_example_and_round_trips() {
        let ev = CallEvent::from_json(&answered()).unwrap();
        assert_eq!(ev.event_type(), EventType::Answered);
        let EventDetail::Answered(a) = &ev.detail else {
            panic!()
        };
        assert_eq!(a.kind, AnswerKind::RingGroup);
        assert_eq!(a.ring_time, Some(5));
        assert_eq!(a.hold_time, None);
        assert_eq!(CallEvent::from_json(&ev.to_json()).unwrap(), ev);
    }

    #[test]
    fn every_type_round_trips() {
        let call = json!({"call_id": "c1", "call_type": "outbound", "did_number": "+918065251305"});
        for v in [
            json!({"type": "call.received", "occurred_at": "2026-11-27T04:00:00+05:30", "call": call}),
            json!({"type": "call.dialed", "occurred_at": "2026-11-27T04:00:00Z", "call": call,
                   "dialed": {"via": "queue", "id": "q1", "name": "Support", "extensions": ["101", "102"]}}),
            json!({"type": "call.dtmf", "occurred_at": "2026-11-27T04:00:00Z", "call": call,
                   "dtmf": {"digit": "#", "digits": "12#", "ivr_id": "ivr1", "ivr_name": "Main"}}),
            json!({"type": "call.ended", "occurred_at": "2026-11-27T04:00:00Z", "call": call,
                   "ended": {"status": "answered", "answered_at": "2026-11-27T04:00:03Z",
                             "ended_at": "2026-11-27T04:01:00Z", "duration": 60, "billsec": 57,
                             "hangup_cause": "NORMAL_CLEARING", "hangup_by": "customer",
                             "answered_extension": "101", "answered_extension_name": "Asha",
                             "missed_extensions": ["102"], "last_stage": "extension",
                             "recording_url": "https://rec.example.com/1.mp3"}}),
        ] {
            let ev = CallEvent::from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(CallEvent::from_json(&ev.to_json()).unwrap(), ev);
        }
    }

    #[test]
    fn names_every_bad_field_at_once() {
        let mut v = answered();
        v["type"] = json!("call.answered");
        v["occurred_at"] = json!("yesterday");
        v["call"]["did_number"] = json!("8065251305");
        v["call"]["call_type"] = json!("inbound_call");
        v["answered_by"]["type"] = json!("robot");
        v["answered_by"]["ring_time"] = json!(-1);
        v["extra"] = json!(1);
        assert_eq!(
            fields(&v),
            [
                "occurred_at",
                "call.call_type",
                "call.did_number",
                "answered_by.type",
                "answered_by.ring_time",
                "extra"
            ]
        );
    }

    #[test]
    fn required_fields_are_named() {
        assert_eq!(fields(&json!({})), ["type", "occurred_at", "call"]);
        assert_eq!(
            fields(
                &json!({"type": "call.dialed", "occurred_at": "2026-11-27T04:00:00Z", "call": {},
                           "dialed": {}})
            ),
            [
                "call.call_id",
                "call.call_type",
                "call.did_number",
                "dialed.via",
                "dialed.extensions"
            ]
        );
        assert_eq!(
            fields(
                &json!({"type": "call.ended", "occurred_at": "2026-11-27T04:00:00Z",
                           "call": {"call_id": "c", "call_type": "inbound", "did_number": "+918065251305"}})
            ),
            ["ended"]
        );
        assert_eq!(
            fields(&json!({"type": "call.hold"})),
            ["type", "occurred_at", "call"]
        );
        assert_eq!(fields(&json!([1])), [""]);
    }

    #[test]
    fn type_specific_objects_must_match_the_type() {
        let mut v = answered();
        v["dtmf"] = json!({"digit": "1"});
        assert_eq!(fields(&v), ["dtmf"]);
    }

    #[test]
    fn a_missed_call_has_no_answering_extension() {
        let v = json!({"type": "call.ended", "occurred_at": "2026-11-27T04:00:00Z",
                       "call": {"call_id": "c", "call_type": "inbound", "did_number": "+918065251305"},
                       "ended": {"status": "missed", "answered_extension": "101"}});
        assert_eq!(fields(&v), ["ended.answered_extension"]);
    }

    #[test]
    fn dtmf_digits_are_checked() {
        let v = json!({"type": "call.dtmf", "occurred_at": "2026-11-27T04:00:00Z",
                       "call": {"call_id": "c", "call_type": "inbound", "did_number": "+918065251305"},
                       "dtmf": {"digit": "12", "digits": "1x"}});
        assert_eq!(fields(&v), ["dtmf.digit", "dtmf.digits"]);
    }
}
