//! The 11 triggers as one table: stable id, the label admins see, the call event that fires
//! them, the condition, and the parameters a receiver gets. Adding a trigger means adding a
//! variant here and a row to [`TRIGGERS`]; everything else (matching, rendering, the catalogue,
//! the web form) reads this table.

use serde::{Deserialize, Serialize};

use super::event::{AnswerKind, CallEvent, EndStatus, EventDetail, EventType};

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

/// A parameter a receiver gets, in the order of SPEC §5.
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

/// How a parameter's value is written.
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

impl Param {
    pub fn name(self) -> &'static str {
        use Param::*;
        match self {
            EventId => "event_id",
            Trigger => "trigger",
            CallId => "call_id",
            LegId => "leg_id",
            CallType => "call_type",
            DidNumber => "did_number",
            CustomerNumber => "customer_number",
            OccurredAt => "occurred_at",
            TimeZone => "time_zone",
            StartStamp => "start_stamp",
            AnswerStamp => "answer_stamp",
            EndStamp => "end_stamp",
            IvrId => "ivr_id",
            IvrName => "ivr_name",
            RingGroupId => "ring_group_id",
            RingGroupName => "ring_group_name",
            QueueId => "queue_id",
            QueueName => "queue_name",
            Extension => "extension",
            ExtensionName => "extension_name",
            Via => "via",
            ViaId => "via_id",
            ViaName => "via_name",
            RingTime => "ring_time",
            HoldTime => "hold_time",
            Duration => "duration",
            Billsec => "billsec",
            CallStatus => "call_status",
            AnsweredExtension => "answered_extension",
            AnsweredExtensionName => "answered_extension_name",
            MissedExtensions => "missed_extensions",
            LastStage => "last_stage",
            HangupCause => "hangup_cause",
            HangupBy => "hangup_by",
            RecordingUrl => "recording_url",
            Digit => "digit",
            Digits => "digits",
            PressedAt => "pressed_at",
            Extensions => "extensions",
            DialedAt => "dialed_at",
            RefId => "ref_id",
        }
    }

    pub fn kind(self) -> ParamKind {
        use Param::*;
        match self {
            OccurredAt | StartStamp | AnswerStamp | EndStamp | PressedAt | DialedAt => {
                ParamKind::Timestamp
            }
            RingTime | HoldTime | Duration | Billsec => ParamKind::Seconds,
            MissedExtensions | Extensions => ParamKind::List,
            _ => ParamKind::String,
        }
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

/// One row of the trigger table.
#[derive(Debug)]
pub struct TriggerInfo {
    pub trigger: Trigger,
    pub id: &'static str,
    pub label: &'static str,
    pub fires_on: EventType,
    /// The condition on the event, as documentation (the code is [`Trigger::fires_for`]).
    pub condition: &'static str,
    /// The trigger's own parameters, after [`COMMON_PARAMS`].
    pub params: &'static [Param],
}

use Param as P;

pub const TRIGGERS: [TriggerInfo; 11] = [
    TriggerInfo {
        trigger: Trigger::CallReceived,
        id: "call_received",
        label: "Call received on server",
        fires_on: EventType::Received,
        condition: "always",
        params: &[P::StartStamp],
    },
    TriggerInfo {
        trigger: Trigger::AnsweredOnIvr,
        id: "answered_on_ivr",
        label: "Call answered on IVR",
        fires_on: EventType::Answered,
        condition: "answered_by.type = ivr",
        params: &[P::StartStamp, P::AnswerStamp, P::IvrId, P::IvrName],
    },
    TriggerInfo {
        trigger: Trigger::AnsweredOnRingGroup,
        id: "answered_on_ring_group",
        label: "Call answered on ring group",
        fires_on: EventType::Answered,
        condition: "answered_by.type = ring_group",
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
    TriggerInfo {
        trigger: Trigger::AnsweredOnQueue,
        id: "answered_on_queue",
        label: "Call answered on call queue",
        fires_on: EventType::Answered,
        condition: "answered_by.type = queue",
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
    TriggerInfo {
        trigger: Trigger::AnsweredByExtension,
        id: "answered_by_extension",
        label: "Call answered by extension",
        fires_on: EventType::Answered,
        condition: "answered_by.type in extension, ring_group, queue",
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
    TriggerInfo {
        trigger: Trigger::CallMissed,
        id: "call_missed",
        label: "Call missed",
        fires_on: EventType::Ended,
        condition: "ended.status = missed",
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
    TriggerInfo {
        trigger: Trigger::CallHangup,
        id: "call_hangup",
        label: "Call hangup",
        fires_on: EventType::Ended,
        condition: "ended.status = answered",
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
    TriggerInfo {
        trigger: Trigger::CallMissedOrAnswered,
        id: "call_missed_or_answered",
        label: "Call missed or answered",
        fires_on: EventType::Ended,
        condition: "always",
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
    TriggerInfo {
        trigger: Trigger::DtmfOption,
        id: "dtmf_option",
        label: "DTMF option",
        fires_on: EventType::Dtmf,
        condition: "always",
        params: &[P::Digit, P::Digits, P::IvrId, P::IvrName, P::PressedAt],
    },
    TriggerInfo {
        trigger: Trigger::DialedOnExtension,
        id: "dialed_on_extension",
        label: "Dialed on extensions",
        fires_on: EventType::Dialed,
        condition: "always",
        params: &[P::Extensions, P::Via, P::ViaId, P::ViaName, P::DialedAt],
    },
    TriggerInfo {
        trigger: Trigger::AnsweredByCustomer,
        id: "answered_by_customer",
        label: "Call answered by customer (Click to Call)",
        fires_on: EventType::Answered,
        condition: "answered_by.type = customer",
        params: &[
            P::StartStamp,
            P::AnswerStamp,
            P::Extension,
            P::ExtensionName,
            P::RefId,
        ],
    },
];

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

    pub fn info(self) -> &'static TriggerInfo {
        // The table is in declaration order; a unit test keeps it so.
        &TRIGGERS[self as usize]
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn label(self) -> &'static str {
        self.info().label
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        TRIGGERS.iter().find(|t| t.id == s).map(|t| t.trigger)
    }

    /// Every parameter a receiver gets for this trigger, common ones first.
    pub fn params(self) -> impl Iterator<Item = Param> {
        COMMON_PARAMS.iter().chain(self.info().params).copied()
    }

    /// Whether this trigger fires on `event` (SPEC §2, the "fires on" and "when" columns).
    pub fn fires_for(self, event: &CallEvent) -> bool {
        match (self, &event.detail) {
            (Trigger::CallReceived, EventDetail::Received) => true,
            (Trigger::AnsweredOnIvr, EventDetail::Answered(a)) => a.kind == AnswerKind::Ivr,
            (Trigger::AnsweredOnRingGroup, EventDetail::Answered(a)) => {
                a.kind == AnswerKind::RingGroup
            }
            (Trigger::AnsweredOnQueue, EventDetail::Answered(a)) => a.kind == AnswerKind::Queue,
            (Trigger::AnsweredByExtension, EventDetail::Answered(a)) => matches!(
                a.kind,
                AnswerKind::Extension | AnswerKind::RingGroup | AnswerKind::Queue
            ),
            (Trigger::AnsweredByCustomer, EventDetail::Answered(a)) => {
                a.kind == AnswerKind::Customer
            }
            (Trigger::CallMissed, EventDetail::Ended(e)) => e.status == EndStatus::Missed,
            (Trigger::CallHangup, EventDetail::Ended(e)) => e.status == EndStatus::Answered,
            (Trigger::CallMissedOrAnswered, EventDetail::Ended(_)) => true,
            (Trigger::DtmfOption, EventDetail::Dtmf(_)) => true,
            (Trigger::DialedOnExtension, EventDetail::Dialed(_)) => true,
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order_with_unique_ids() {
        for (i, t) in Trigger::ALL.iter().enumerate() {
            assert_eq!(TRIGGERS[i].trigger, *t);
            assert_eq!(Trigger::parse(t.id()), Some(*t));
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, t.id());
        }
        assert_eq!(Trigger::parse("call_ended"), None);
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
}
