//! The 11 triggers as one table (SPEC §2, §5): for each, its stable id, the label admins see,
//! the call event that fires it and the condition on that event, the call types its sample may
//! have, and its parameters; and for each parameter its name, type, meaning and an example.
//! Matching, rendering, samples, the catalogue and the web form read these two tables.
//!
//! Adding a trigger is: a variant (and its place in [`Trigger::ALL`]), its row in
//! [`Trigger::info`], any new parameter's row in [`Param::info`], and its tests. Every match
//! over a trigger, a parameter or an event kind is exhaustive, so the compiler names anything
//! forgotten (a unit test names a variant missing from [`Trigger::ALL`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{AnswerKind, CallEvent, CallType, EndStatus, EventDetail, EventType};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Call received on server.
    CallReceived,
    /// Call answered on IVR.
    AnsweredOnIvr,
    /// Call answered on ring group.
    AnsweredOnRingGroup,
    /// Call answered on call queue.
    AnsweredOnQueue,
    /// Call answered by extension (by any route).
    AnsweredByExtension,
    /// Call missed.
    CallMissed,
    /// Call hangup (an answered call ended).
    CallHangup,
    /// Call missed or answered (every ended call).
    CallMissedOrAnswered,
    /// DTMF option pressed.
    DtmfOption,
    /// Dialed on extensions.
    DialedOnExtension,
    /// Call answered by customer (Click to Call).
    AnsweredByCustomer,
}

/// The call event that fires a trigger and the condition on it (SPEC §2, "fires on" and
/// "when"). [`Trigger::fires_for`] and the catalogue's condition text are both read from it,
/// so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiresOn {
    /// `call.received`, always.
    Received,
    /// `call.answered` when `answered_by.type` is one of these.
    Answered(&'static [AnswerKind]),
    /// `call.dialed`, always.
    Dialed,
    /// `call.dtmf`, always.
    Dtmf,
    /// `call.ended` when `ended.status` is one of these.
    Ended(&'static [EndStatus]),
}

impl FiresOn {
    pub fn event_type(self) -> EventType {
        match self {
            FiresOn::Received => EventType::Received,
            FiresOn::Answered(_) => EventType::Answered,
            FiresOn::Dialed => EventType::Dialed,
            FiresOn::Dtmf => EventType::Dtmf,
            FiresOn::Ended(_) => EventType::Ended,
        }
    }

    /// Whether an event with this detail meets it: the right type, and the condition holds.
    pub fn admits(self, detail: &EventDetail) -> bool {
        match detail {
            EventDetail::Received => self == FiresOn::Received,
            EventDetail::Answered(a) => {
                matches!(self, FiresOn::Answered(kinds) if kinds.contains(&a.kind))
            }
            EventDetail::Dialed(_) => self == FiresOn::Dialed,
            EventDetail::Dtmf(_) => self == FiresOn::Dtmf,
            EventDetail::Ended(e) => {
                matches!(self, FiresOn::Ended(statuses) if statuses.contains(&e.status))
            }
        }
    }

    /// The condition in SPEC §2's words: `always`, `answered_by.type = ivr`,
    /// `answered_by.type in extension, ring_group, queue`.
    pub fn condition(self) -> String {
        match self {
            FiresOn::Received | FiresOn::Dialed | FiresOn::Dtmf => "always".to_owned(),
            FiresOn::Answered(kinds) => one_of("answered_by.type", kinds, AnswerKind::ALL),
            FiresOn::Ended(statuses) => one_of("ended.status", statuses, EndStatus::ALL),
        }
    }
}

/// `field = a`, `field in a, b`, or `always` when every value of the field is admitted.
fn one_of<T: Copy + PartialEq + std::fmt::Display>(
    field: &str,
    admitted: &[T],
    all: &[T],
) -> String {
    if all.iter().all(|v| admitted.contains(v)) {
        return "always".to_owned();
    }
    let values: Vec<String> = admitted.iter().map(T::to_string).collect();
    match values.as_slice() {
        [one] => format!("{field} = {one}"),
        many => format!("{field} in {}", many.join(", ")),
    }
}

/// One row of the trigger table.
#[derive(Debug)]
pub struct TriggerInfo {
    /// The stable API name.
    pub id: &'static str,
    /// The words admins see.
    pub label: &'static str,
    /// The call event that fires it, and the condition on that event.
    pub fires_on: FiresOn,
    /// The call types its sample may have; a test send takes the webhook's first among them,
    /// else the first here. A customer answers only the calls the platform placed for an
    /// agent, so `answered_by_customer`'s sample is always click-to-call.
    pub sample_call_types: &'static [CallType],
    /// The trigger's own parameters, after [`COMMON_PARAMS`], in SPEC §5 order.
    pub params: &'static [Param],
}

use Param as P;

/// Every call type: the sample of most triggers may have any.
const ANY_CALL: &[CallType] = CallType::ALL;

impl Trigger {
    pub const ALL: [Trigger; 11] = [
        Trigger::CallReceived,
        Trigger::AnsweredOnIvr,
        Trigger::AnsweredOnRingGroup,
        Trigger::AnsweredOnQueue,
        Trigger::AnsweredByExtension,
        Trigger::CallMissed,
        Trigger::CallHangup,
        Trigger::CallMissedOrAnswered,
        Trigger::DtmfOption,
        Trigger::DialedOnExtension,
        Trigger::AnsweredByCustomer,
    ];

    /// The trigger table (SPEC §2 and §5), one row per trigger.
    pub fn info(self) -> &'static TriggerInfo {
        match self {
            Trigger::CallReceived => &TriggerInfo {
                id: "call_received",
                label: "Call received on server",
                fires_on: FiresOn::Received,
                sample_call_types: ANY_CALL,
                params: &[P::StartStamp],
            },
            Trigger::AnsweredOnIvr => &TriggerInfo {
                id: "answered_on_ivr",
                label: "Call answered on IVR",
                fires_on: FiresOn::Answered(&[AnswerKind::Ivr]),
                sample_call_types: ANY_CALL,
                params: &[P::StartStamp, P::AnswerStamp, P::IvrId, P::IvrName],
            },
            Trigger::AnsweredOnRingGroup => &TriggerInfo {
                id: "answered_on_ring_group",
                label: "Call answered on ring group",
                fires_on: FiresOn::Answered(&[AnswerKind::RingGroup]),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::RingGroupId,
                    P::RingGroupName,
                    P::Extension,
                    P::ExtensionName,
                    P::RingTime,
                ],
            },
            Trigger::AnsweredOnQueue => &TriggerInfo {
                id: "answered_on_queue",
                label: "Call answered on call queue",
                fires_on: FiresOn::Answered(&[AnswerKind::Queue]),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::QueueId,
                    P::QueueName,
                    P::Extension,
                    P::ExtensionName,
                    P::RingTime,
                    P::HoldTime,
                ],
            },
            Trigger::AnsweredByExtension => &TriggerInfo {
                id: "answered_by_extension",
                label: "Call answered by extension",
                // An extension picked up, by any route.
                fires_on: FiresOn::Answered(&[
                    AnswerKind::Extension,
                    AnswerKind::RingGroup,
                    AnswerKind::Queue,
                ]),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::Extension,
                    P::ExtensionName,
                    P::Via,
                    P::ViaId,
                    P::ViaName,
                    P::RingTime,
                ],
            },
            Trigger::CallMissed => &TriggerInfo {
                id: "call_missed",
                label: "Call missed",
                fires_on: FiresOn::Ended(&[EndStatus::Missed]),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::EndStamp,
                    P::Duration,
                    P::CallStatus,
                    P::MissedExtensions,
                    P::LastStage,
                    P::HangupCause,
                    P::HangupBy,
                    P::RecordingUrl,
                ],
            },
            Trigger::CallHangup => &TriggerInfo {
                id: "call_hangup",
                label: "Call hangup",
                fires_on: FiresOn::Ended(&[EndStatus::Answered]),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::EndStamp,
                    P::Duration,
                    P::Billsec,
                    P::CallStatus,
                    P::AnsweredExtension,
                    P::AnsweredExtensionName,
                    P::HangupCause,
                    P::HangupBy,
                    P::RecordingUrl,
                ],
            },
            Trigger::CallMissedOrAnswered => &TriggerInfo {
                id: "call_missed_or_answered",
                label: "Call missed or answered",
                fires_on: FiresOn::Ended(EndStatus::ALL),
                sample_call_types: ANY_CALL,
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::EndStamp,
                    P::Duration,
                    P::Billsec,
                    P::CallStatus,
                    P::AnsweredExtension,
                    P::AnsweredExtensionName,
                    P::MissedExtensions,
                    P::LastStage,
                    P::HangupCause,
                    P::HangupBy,
                    P::RecordingUrl,
                ],
            },
            Trigger::DtmfOption => &TriggerInfo {
                id: "dtmf_option",
                label: "DTMF option",
                fires_on: FiresOn::Dtmf,
                sample_call_types: ANY_CALL,
                params: &[P::Digit, P::Digits, P::IvrId, P::IvrName, P::PressedAt],
            },
            Trigger::DialedOnExtension => &TriggerInfo {
                id: "dialed_on_extension",
                label: "Dialed on extensions",
                fires_on: FiresOn::Dialed,
                sample_call_types: ANY_CALL,
                params: &[P::Extensions, P::Via, P::ViaId, P::ViaName, P::DialedAt],
            },
            Trigger::AnsweredByCustomer => &TriggerInfo {
                id: "answered_by_customer",
                label: "Call answered by customer (Click to Call)",
                fires_on: FiresOn::Answered(&[AnswerKind::Customer]),
                sample_call_types: &[CallType::ClickToCall],
                params: &[
                    P::StartStamp,
                    P::AnswerStamp,
                    P::Extension,
                    P::ExtensionName,
                    P::RefId,
                ],
            },
        }
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn label(self) -> &'static str {
        self.info().label
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.id() == s)
    }

    /// Every parameter a receiver gets for this trigger, common ones first.
    pub fn params(self) -> impl Iterator<Item = Param> {
        COMMON_PARAMS.iter().chain(self.info().params).copied()
    }

    /// Whether this trigger fires on `event` (SPEC §2, the "fires on" and "when" columns).
    pub fn fires_for(self, event: &CallEvent) -> bool {
        self.info().fires_on.admits(&event.detail)
    }

    /// The triggers that fire for `event`: the keys to look webhooks up by.
    pub fn firing_for(event: &CallEvent) -> impl Iterator<Item = Trigger> + '_ {
        Trigger::ALL.into_iter().filter(move |t| t.fires_for(event))
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A parameter a receiver gets; [`Param::info`] says what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    EventId,
    Trigger,
    CallId,
    LegId,
    CallType,
    DidNumber,
    CustomerNumber,
    OccurredAt,
    TimeZone,
    StartStamp,
    AnswerStamp,
    EndStamp,
    IvrId,
    IvrName,
    RingGroupId,
    RingGroupName,
    QueueId,
    QueueName,
    Extension,
    ExtensionName,
    Via,
    ViaId,
    ViaName,
    RingTime,
    HoldTime,
    Duration,
    Billsec,
    CallStatus,
    AnsweredExtension,
    AnsweredExtensionName,
    MissedExtensions,
    LastStage,
    HangupCause,
    HangupBy,
    RecordingUrl,
    Digit,
    Digits,
    PressedAt,
    Extensions,
    DialedAt,
    RefId,
}

/// How a parameter's value is written (SPEC §5, "Formats").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Text.
    String,
    /// RFC 3339 in the webhook's time zone, with its offset.
    Timestamp,
    /// Whole seconds (a JSON number).
    Seconds,
    /// A JSON array of strings; comma-joined in form and query encodings.
    List,
}

/// The JSON type of a parameter's value when it is known (it is `null` when not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    String,
    Integer,
    Array,
}

impl ParamKind {
    pub fn json_type(self) -> JsonType {
        match self {
            ParamKind::String | ParamKind::Timestamp => JsonType::String,
            ParamKind::Seconds => JsonType::Integer,
            ParamKind::List => JsonType::Array,
        }
    }
}

/// A parameter's type together with an example value, as a receiver in Asia/Kolkata gets it;
/// one value holds both so that they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    String(&'static str),
    Timestamp(&'static str),
    Seconds(i64),
    List(&'static [&'static str]),
}

impl Example {
    pub fn kind(self) -> ParamKind {
        match self {
            Example::String(_) => ParamKind::String,
            Example::Timestamp(_) => ParamKind::Timestamp,
            Example::Seconds(_) => ParamKind::Seconds,
            Example::List(_) => ParamKind::List,
        }
    }

    /// The example as it appears in a JSON body.
    pub fn to_json(self) -> Value {
        match self {
            Example::String(s) | Example::Timestamp(s) => Value::from(s),
            Example::Seconds(n) => Value::from(n),
            Example::List(l) => Value::from(l),
        }
    }
}

/// One row of the parameter table.
#[derive(Debug, Clone, Copy)]
pub struct ParamInfo {
    /// The key a receiver gets.
    pub name: &'static str,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// Its type and an example value.
    pub example: Example,
}

impl Param {
    /// The parameter table (SPEC §5): each parameter's name, meaning, type and example.
    pub fn info(self) -> ParamInfo {
        let (name, meaning, example) = match self {
            Param::EventId => (
                "event_id",
                "The call event's id as posted, or the one callhook gave it",
                Example::String("ev_1732680000.1042_answered"),
            ),
            Param::Trigger => (
                "trigger",
                "The id of the trigger that fired",
                Example::String("answered_on_ring_group"),
            ),
            Param::CallId => (
                "call_id",
                "The call's id in the telephony core",
                Example::String("1732680000.1042"),
            ),
            Param::LegId => (
                "leg_id",
                "The call leg the event is about, when the core reports one",
                Example::String("1732680000.1042-2"),
            ),
            Param::CallType => (
                "call_type",
                "The call's direction: `inbound`, `outbound` or `click_to_call`",
                Example::String("inbound"),
            ),
            Param::DidNumber => (
                "did_number",
                "The account's number the call came in on or went out from (E.164)",
                Example::String("+918065251305"),
            ),
            Param::CustomerNumber => (
                "customer_number",
                "The customer's number (E.164); null when it was withheld",
                Example::String("+919812345678"),
            ),
            Param::OccurredAt => (
                "occurred_at",
                "When the event happened",
                Example::Timestamp("2026-11-27T09:30:05+05:30"),
            ),
            Param::TimeZone => (
                "time_zone",
                "The webhook's time zone (IANA), in which every timestamp is written",
                Example::String("Asia/Kolkata"),
            ),
            Param::StartStamp => (
                "start_stamp",
                "When the call started",
                Example::Timestamp("2026-11-27T09:30:00+05:30"),
            ),
            Param::AnswerStamp => (
                "answer_stamp",
                "When the call was answered",
                Example::Timestamp("2026-11-27T09:30:05+05:30"),
            ),
            Param::EndStamp => (
                "end_stamp",
                "When the call ended",
                Example::Timestamp("2026-11-27T09:33:10+05:30"),
            ),
            Param::IvrId => ("ivr_id", "The IVR's id", Example::String("ivr_main")),
            Param::IvrName => ("ivr_name", "The IVR's name", Example::String("Main menu")),
            Param::RingGroupId => (
                "ring_group_id",
                "The ring group's id",
                Example::String("rg_sales"),
            ),
            Param::RingGroupName => (
                "ring_group_name",
                "The ring group's name",
                Example::String("Sales"),
            ),
            Param::QueueId => (
                "queue_id",
                "The call queue's id",
                Example::String("q_support"),
            ),
            Param::QueueName => (
                "queue_name",
                "The call queue's name",
                Example::String("Support"),
            ),
            Param::Extension => (
                "extension",
                "The extension that picked up (for click-to-call, the agent's)",
                Example::String("101"),
            ),
            Param::ExtensionName => (
                "extension_name",
                "The name of the extension that picked up",
                Example::String("Asha"),
            ),
            Param::Via => (
                "via",
                "How the call reached the extension: `direct`, `ring_group` or `queue`",
                Example::String("ring_group"),
            ),
            Param::ViaId => (
                "via_id",
                "The id of the ring group or queue it came through",
                Example::String("rg_sales"),
            ),
            Param::ViaName => (
                "via_name",
                "The name of the ring group or queue it came through",
                Example::String("Sales"),
            ),
            Param::RingTime => (
                "ring_time",
                "Seconds the extension rang before it answered",
                Example::Seconds(5),
            ),
            Param::HoldTime => (
                "hold_time",
                "Seconds the caller waited in the queue",
                Example::Seconds(12),
            ),
            Param::Duration => (
                "duration",
                "Seconds from the start of the call to its end",
                Example::Seconds(190),
            ),
            Param::Billsec => (
                "billsec",
                "Seconds from the answer to the end of the call",
                Example::Seconds(185),
            ),
            Param::CallStatus => (
                "call_status",
                "How the call ended: `answered` or `missed`",
                Example::String("answered"),
            ),
            Param::AnsweredExtension => (
                "answered_extension",
                "The extension that answered",
                Example::String("101"),
            ),
            Param::AnsweredExtensionName => (
                "answered_extension_name",
                "The name of the extension that answered",
                Example::String("Asha"),
            ),
            Param::MissedExtensions => (
                "missed_extensions",
                "The extensions that rang and did not answer",
                Example::List(&["101", "102"]),
            ),
            Param::LastStage => (
                "last_stage",
                "Where the call was when it ended: `ivr`, `ring_group`, `queue` or `extension`",
                Example::String("extension"),
            ),
            Param::HangupCause => (
                "hangup_cause",
                "The telephony core's reason for the hangup",
                Example::String("NORMAL_CLEARING"),
            ),
            Param::HangupBy => (
                "hangup_by",
                "Who hung up: `customer`, `extension` or `system`",
                Example::String("customer"),
            ),
            Param::RecordingUrl => (
                "recording_url",
                "Where the call's recording can be fetched",
                Example::String("https://recordings.example.com/1732680000.1042.mp3"),
            ),
            Param::Digit => ("digit", "The key pressed", Example::String("2")),
            Param::Digits => (
                "digits",
                "Every key pressed in the IVR so far, in order",
                Example::String("12"),
            ),
            Param::PressedAt => (
                "pressed_at",
                "When the key was pressed",
                Example::Timestamp("2026-11-27T09:30:03+05:30"),
            ),
            Param::Extensions => (
                "extensions",
                "The extensions that were dialed",
                Example::List(&["101", "102"]),
            ),
            Param::DialedAt => (
                "dialed_at",
                "When they were dialed",
                Example::Timestamp("2026-11-27T09:30:04+05:30"),
            ),
            Param::RefId => (
                "ref_id",
                "The click-to-call request's reference",
                Example::String("c2c_7781"),
            ),
        };
        ParamInfo {
            name,
            meaning,
            example,
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn kind(self) -> ParamKind {
        self.info().example.kind()
    }
}

/// The parameters every request carries, first.
pub const COMMON_PARAMS: &[Param] = &[
    Param::EventId,
    Param::Trigger,
    Param::CallId,
    Param::LegId,
    Param::CallType,
    Param::DidNumber,
    Param::CustomerNumber,
    Param::OccurredAt,
    Param::TimeZone,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::sample_event;

    #[test]
    fn all_lists_every_trigger_in_declaration_order_with_unique_ids() {
        for (i, t) in Trigger::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t}");
            assert_eq!(Trigger::parse(t.id()), Some(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.id());
        }
        assert_eq!(Trigger::parse("call_ended"), None);
        // The schema is derived from the variants themselves: a variant missing from ALL shows.
        let schema = serde_json::to_value(<Trigger as utoipa::PartialSchema>::schema()).unwrap();
        let mut variants = Vec::new();
        collect_enum_values(&schema, &mut variants);
        let ids: Vec<&str> = Trigger::ALL.iter().map(|t| t.id()).collect();
        assert_eq!(variants, ids, "{schema}");
    }

    fn collect_enum_values(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(values)) = m.get("enum") {
                    out.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
                }
                for (k, v) in m {
                    if k != "enum" {
                        collect_enum_values(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| collect_enum_values(v, out)),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }

    /// One event of each situation SPEC §4 names: every event type, every `answered_by.type`,
    /// every `ended.status`.
    fn situations() -> Vec<(String, CallEvent)> {
        let mut out = Vec::new();
        out.push(("received".to_owned(), sample_event(Trigger::CallReceived)));
        for kind in AnswerKind::ALL {
            let mut ev = sample_event(Trigger::AnsweredOnIvr);
            let EventDetail::Answered(a) = &mut ev.detail else {
                panic!("an answer")
            };
            a.kind = *kind;
            out.push((format!("answered:{kind}"), ev));
        }
        out.push((
            "dialed".to_owned(),
            sample_event(Trigger::DialedOnExtension),
        ));
        out.push(("dtmf".to_owned(), sample_event(Trigger::DtmfOption)));
        for status in EndStatus::ALL {
            let mut ev = sample_event(Trigger::CallMissedOrAnswered);
            let EventDetail::Ended(e) = &mut ev.detail else {
                panic!("an end")
            };
            e.status = *status;
            out.push((format!("ended:{status}"), ev));
        }
        out
    }

    /// SPEC §2: the situations each trigger fires on, and no other.
    const FIRES: [(Trigger, &[&str]); 11] = [
        (Trigger::CallReceived, &["received"]),
        (Trigger::AnsweredOnIvr, &["answered:ivr"]),
        (Trigger::AnsweredOnRingGroup, &["answered:ring_group"]),
        (Trigger::AnsweredOnQueue, &["answered:queue"]),
        (
            Trigger::AnsweredByExtension,
            &[
                "answered:ring_group",
                "answered:queue",
                "answered:extension",
            ],
        ),
        (Trigger::CallMissed, &["ended:missed"]),
        (Trigger::CallHangup, &["ended:answered"]),
        (
            Trigger::CallMissedOrAnswered,
            &["ended:answered", "ended:missed"],
        ),
        (Trigger::DtmfOption, &["dtmf"]),
        (Trigger::DialedOnExtension, &["dialed"]),
        (Trigger::AnsweredByCustomer, &["answered:customer"]),
    ];

    #[test]
    fn each_trigger_fires_for_its_situations_and_no_other() {
        let situations = situations();
        assert_eq!(situations.len(), 10);
        assert_eq!(FIRES.map(|f| f.0), Trigger::ALL);
        for (trigger, fires) in FIRES {
            for (name, ev) in &situations {
                assert_eq!(
                    trigger.fires_for(ev),
                    fires.contains(&name.as_str()),
                    "{trigger} on {name}"
                );
            }
            for name in fires {
                assert!(situations.iter().any(|(n, _)| n == name), "{name}");
            }
        }
        for (name, ev) in &situations {
            let fired: Vec<Trigger> = Trigger::firing_for(ev).collect();
            let want: Vec<Trigger> = FIRES
                .iter()
                .filter(|(_, f)| f.contains(&name.as_str()))
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(fired, want, "{name}");
        }
    }

    #[test]
    fn the_condition_text_is_spec_section_2s() {
        let want = [
            ("call.received", "always"),
            ("call.answered", "answered_by.type = ivr"),
            ("call.answered", "answered_by.type = ring_group"),
            ("call.answered", "answered_by.type = queue"),
            (
                "call.answered",
                "answered_by.type in extension, ring_group, queue",
            ),
            ("call.ended", "ended.status = missed"),
            ("call.ended", "ended.status = answered"),
            ("call.ended", "always"),
            ("call.dtmf", "always"),
            ("call.dialed", "always"),
            ("call.answered", "answered_by.type = customer"),
        ];
        for (t, (event, condition)) in Trigger::ALL.into_iter().zip(want) {
            let fires_on = t.info().fires_on;
            assert_eq!(fires_on.event_type().as_str(), event, "{t}");
            assert_eq!(fires_on.condition(), condition, "{t}");
        }
    }

    #[test]
    fn labels_are_spec_section_2s() {
        let labels = Trigger::ALL.map(Trigger::label);
        assert_eq!(
            labels,
            [
                "Call received on server",
                "Call answered on IVR",
                "Call answered on ring group",
                "Call answered on call queue",
                "Call answered by extension",
                "Call missed",
                "Call hangup",
                "Call missed or answered",
                "DTMF option",
                "Dialed on extensions",
                "Call answered by customer (Click to Call)",
            ]
        );
    }

    #[test]
    fn parameters_are_in_spec_section_5_order() {
        let common = "event_id trigger call_id leg_id call_type did_number customer_number \
                      occurred_at time_zone";
        let own = [
            "start_stamp",
            "start_stamp answer_stamp ivr_id ivr_name",
            "start_stamp answer_stamp ring_group_id ring_group_name extension extension_name \
             ring_time",
            "start_stamp answer_stamp queue_id queue_name extension extension_name ring_time \
             hold_time",
            "start_stamp answer_stamp extension extension_name via via_id via_name ring_time",
            "start_stamp end_stamp duration call_status missed_extensions last_stage \
             hangup_cause hangup_by recording_url",
            "start_stamp answer_stamp end_stamp duration billsec call_status answered_extension \
             answered_extension_name hangup_cause hangup_by recording_url",
            "start_stamp answer_stamp end_stamp duration billsec call_status answered_extension \
             answered_extension_name missed_extensions last_stage hangup_cause hangup_by \
             recording_url",
            "digit digits ivr_id ivr_name pressed_at",
            "extensions via via_id via_name dialed_at",
            "start_stamp answer_stamp extension extension_name ref_id",
        ];
        let common: Vec<&str> = common.split_whitespace().collect();
        let names = |ps: &[Param]| ps.iter().map(|p| p.name()).collect::<Vec<_>>();
        assert_eq!(names(COMMON_PARAMS), common);
        for (t, own) in Trigger::ALL.into_iter().zip(own) {
            let own: Vec<&str> = own.split_whitespace().collect();
            assert_eq!(names(t.info().params), own, "{t}");
            let all: Vec<&str> = t.params().map(Param::name).collect();
            assert_eq!(all, [common.clone(), own].concat(), "{t}");
        }
    }

    #[test]
    fn no_parameter_repeats_within_a_trigger() {
        for t in Trigger::ALL {
            let names: Vec<&str> = t.params().map(Param::name).collect();
            let mut dedup = names.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(names.len(), dedup.len(), "{t}: {names:?}");
        }
    }

    /// Every parameter some trigger carries, once each.
    fn every_param() -> Vec<Param> {
        let mut out: Vec<Param> = Vec::new();
        for p in Trigger::ALL.into_iter().flat_map(Trigger::params) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn each_parameter_has_a_name_a_meaning_and_an_example_of_its_type() {
        let params = every_param();
        assert_eq!(params.len(), 41);
        let mut names: Vec<&str> = params.iter().map(|p| p.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), params.len(), "names are unique");
        for p in params {
            let info = p.info();
            let name = info.name;
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            let meaning = info.meaning;
            assert!(
                meaning.len() >= 10 && meaning.len() <= 100 && !meaning.contains('\n'),
                "{name}: one line: {meaning:?}"
            );
            assert!(
                meaning.starts_with(|c: char| c.is_uppercase() || c == '`'),
                "{name}: {meaning:?}"
            );
            assert!(!meaning.ends_with('.'), "{name}: {meaning:?}");
            match info.example {
                Example::String(s) => assert!(!s.is_empty(), "{name}"),
                Example::Timestamp(s) => {
                    let at: jiff::Timestamp = s.parse().unwrap();
                    assert_eq!(
                        crate::core::render::format_stamp(
                            at,
                            &crate::core::webhook::TimeZone::parse("Asia/Kolkata").unwrap()
                        ),
                        s,
                        "{name}: RFC 3339 in Asia/Kolkata"
                    );
                }
                Example::Seconds(n) => assert!(n >= 0, "{name}"),
                Example::List(l) => assert!(!l.is_empty(), "{name}"),
            }
            assert_eq!(p.kind(), info.example.kind());
            assert_eq!(
                serde_json::to_value(p.kind().json_type()).unwrap(),
                json_type(&info.example.to_json()),
                "{name}"
            );
        }
    }

    fn json_type(v: &Value) -> &'static str {
        match v {
            Value::String(_) => "string",
            Value::Number(n) if n.is_i64() => "integer",
            Value::Array(_) => "array",
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => "other",
        }
    }

    /// SPEC §5 "Formats": which parameters are timestamps, seconds and lists.
    #[test]
    fn kinds_follow_spec_section_5s_formats() {
        for p in every_param() {
            let name = p.name();
            let want = if name == "occurred_at" || name.ends_with("_stamp") || name.ends_with("_at")
            {
                ParamKind::Timestamp
            } else if ["duration", "billsec", "ring_time", "hold_time"].contains(&name) {
                ParamKind::Seconds
            } else if ["extensions", "missed_extensions"].contains(&name) {
                ParamKind::List
            } else {
                ParamKind::String
            };
            assert_eq!(p.kind(), want, "{name}");
        }
    }
}
