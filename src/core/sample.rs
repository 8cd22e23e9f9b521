//! A realistic call event for each trigger: what `GET /v1/triggers/{id}/sample`, the live
//! preview and test deliveries show. The event is built from the trigger's row (the situation
//! it fires on, the call types its sample may have), so a new trigger needs nothing here unless
//! it fires on a new kind of event.

use jiff::Timestamp;

use super::event::{
    AnswerKind, AnsweredBy, Call, CallEvent, CallType, DialVia, Dialed, Dtmf, EndStatus, Ended,
    EventDetail, HangupBy, Stage,
};
use super::id::CallId;
use super::number::E164;
use super::trigger::{FiresOn, Trigger};

const STARTED: &str = "2026-11-27T04:00:00Z";
const OCCURRED: &str = "2026-11-27T04:00:05Z";
const ENDED: &str = "2026-11-27T04:03:10Z";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("sample timestamps are valid")
}

fn num(s: &str) -> E164 {
    E164::parse(s).expect("sample numbers are valid")
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// Of the values a trigger admits, the one its sample shows: the first in the order SPEC §4
/// lists them (a ring group's answer before a direct one, an answered end before a missed one).
fn shown<T: Copy + PartialEq>(all: &[T], admitted: &[T]) -> T {
    all.iter()
        .copied()
        .find(|v| admitted.contains(v))
        .expect("every trigger admits some value (a unit test keeps it so)")
}

fn answered(kind: AnswerKind) -> EventDetail {
    let (id, name, hold_time, ref_id) = match kind {
        AnswerKind::Ivr => (some("ivr_main"), some("Main menu"), None, None),
        AnswerKind::RingGroup => (some("rg_sales"), some("Sales"), None, None),
        AnswerKind::Queue => (some("q_support"), some("Support"), Some(12), None),
        AnswerKind::Extension => (None, None, None, None),
        // The agent's extension answered first; `ref_id` names the click-to-call request.
        AnswerKind::Customer => (None, None, None, some("c2c_7781")),
    };
    // An IVR answers by itself; every other answer is an extension picking up.
    let picked_up = kind != AnswerKind::Ivr;
    EventDetail::Answered(AnsweredBy {
        kind,
        id,
        name,
        extension: picked_up.then(|| "101".to_owned()),
        extension_name: picked_up.then(|| "Asha".to_owned()),
        ring_time: picked_up.then_some(5),
        hold_time,
        ref_id,
    })
}

fn ended(status: EndStatus) -> EventDetail {
    let answered = status == EndStatus::Answered;
    EventDetail::Ended(Ended {
        status,
        answered_at: answered.then(|| ts(OCCURRED)),
        ended_at: Some(ts(ENDED)),
        duration: Some(190),
        billsec: Some(if answered { 185 } else { 0 }),
        hangup_cause: some("NORMAL_CLEARING"),
        hangup_by: Some(if answered {
            HangupBy::Customer
        } else {
            HangupBy::System
        }),
        answered_extension: answered.then(|| "101".to_owned()),
        answered_extension_name: answered.then(|| "Asha".to_owned()),
        missed_extensions: Some(if answered {
            vec!["102".to_owned()]
        } else {
            vec!["101".to_owned(), "102".to_owned()]
        }),
        last_stage: Some(if answered {
            Stage::Extension
        } else {
            Stage::RingGroup
        }),
        recording_url: answered
            .then(|| "https://recordings.example.com/1732680000.1042.mp3".to_owned()),
    })
}

/// A sample event that fires `trigger`, on a call of the first of `call_types` (a webhook's)
/// that its sample may have, for the number `did` (or a sample number).
pub fn sample_event_for(
    trigger: Trigger,
    call_types: &[CallType],
    did: Option<&E164>,
) -> CallEvent {
    let info = trigger.info();
    let allowed = info.sample_call_types;
    let call_type = call_types
        .iter()
        .find(|t| allowed.contains(t))
        .or(allowed.first())
        .copied()
        .unwrap_or(CallType::Inbound);
    let (detail, occurred_at) = match info.fires_on {
        FiresOn::Received => (EventDetail::Received, STARTED),
        FiresOn::Answered(kinds) => (answered(shown(AnswerKind::ALL, kinds)), OCCURRED),
        FiresOn::Dialed => (
            EventDetail::Dialed(Dialed {
                via: DialVia::RingGroup,
                id: some("rg_sales"),
                name: some("Sales"),
                extensions: vec!["101".to_owned(), "102".to_owned()],
            }),
            OCCURRED,
        ),
        FiresOn::Dtmf => (
            EventDetail::Dtmf(Dtmf {
                digit: "2".to_owned(),
                digits: some("12"),
                ivr_id: some("ivr_main"),
                ivr_name: some("Main menu"),
            }),
            OCCURRED,
        ),
        FiresOn::Ended(statuses) => (ended(shown(EndStatus::ALL, statuses)), ENDED),
    };
    CallEvent {
        id: None,
        account_id: None,
        occurred_at: ts(occurred_at),
        call: Call {
            call_id: CallId::from_string("1732680000.1042".to_owned()),
            leg_id: None,
            call_type,
            did_number: did.cloned().unwrap_or_else(|| num("+918065251305")),
            customer_number: Some(num("+919812345678")),
            started_at: Some(ts(STARTED)),
        },
        detail,
    }
}

/// The sample event of `trigger`, as the catalogue shows it.
pub fn sample_event(trigger: Trigger) -> CallEvent {
    sample_event_for(trigger, &[], None)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::core::render::Context;
    use crate::core::trigger::{JsonType, Param};
    use crate::core::webhook::TimeZone;

    /// The parameters a sample leaves unknown, because its situation has no such value: the
    /// sample call has one leg, and a missed call has no recording.
    const UNKNOWN_IN_SAMPLES: &[(Option<Trigger>, &str)] = &[
        (None, "leg_id"),
        (Some(Trigger::CallMissed), "recording_url"),
    ];

    #[test]
    fn every_sample_fires_its_trigger_and_renders_every_parameter_with_its_type() {
        let tz = TimeZone::parse("Asia/Kolkata").unwrap();
        for t in Trigger::ALL {
            let ev = sample_event(t);
            assert!(t.fires_for(&ev), "{t}");
            let ctx = Context {
                trigger: t,
                event: &ev,
                event_id: "evt_sample",
                time_zone: &tz,
                time_format: crate::core::shape::TimeFormat::Rfc3339,
            };
            let json = ctx.json();
            let names: Vec<&str> = json.keys().map(String::as_str).collect();
            let want: Vec<&str> = t.params().map(Param::name).collect();
            assert_eq!(names, want, "{t}");
            for p in t.params() {
                let name = p.name();
                let v = &json[name];
                let unknown = UNKNOWN_IN_SAMPLES
                    .iter()
                    .any(|(only, n)| *n == name && only.is_none_or(|o| o == t));
                if unknown {
                    assert_eq!(*v, Value::Null, "{t}: {name}");
                    continue;
                }
                let typed = match p.kind().json_type() {
                    JsonType::String => v.as_str().is_some_and(|s| !s.is_empty()),
                    JsonType::Integer => v.is_i64(),
                    JsonType::Array => v.as_array().is_some_and(|a| !a.is_empty()),
                };
                assert!(typed, "{t}: {name} = {v}");
            }
        }
    }

    #[test]
    fn a_sample_takes_the_webhooks_call_type_unless_its_trigger_has_one() {
        use CallType::{ClickToCall, Inbound, Outbound};
        for t in Trigger::ALL {
            let call_type = |types: &[CallType]| sample_event_for(t, types, None).call.call_type;
            if t == Trigger::AnsweredByCustomer {
                for types in [&[][..], &[Outbound], &[Inbound, ClickToCall]] {
                    assert_eq!(call_type(types), ClickToCall, "{t}: {types:?}");
                }
            } else {
                assert_eq!(call_type(&[]), Inbound, "{t}");
                assert_eq!(call_type(&[Outbound, Inbound]), Outbound, "{t}");
                assert_eq!(call_type(&[ClickToCall]), ClickToCall, "{t}");
            }
        }
    }

    #[test]
    fn a_sample_is_on_the_webhooks_number() {
        let did = num("+918065251399");
        for t in Trigger::ALL {
            assert_eq!(sample_event_for(t, &[], Some(&did)).call.did_number, did);
            assert_eq!(sample_event(t).call.did_number.as_str(), "+918065251305");
        }
    }
}
