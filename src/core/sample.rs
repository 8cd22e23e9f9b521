//! A realistic call event for each trigger: what `GET /v1/triggers/{id}/sample`, the live
//! preview and test deliveries show.

use jiff::Timestamp;

use super::event::{
    AnswerKind, AnsweredBy, Call, CallEvent, CallType, DialVia, Dialed, Dtmf, EndStatus, Ended,
    EventDetail, HangupBy, Stage,
};
use super::number::E164;
use super::trigger::Trigger;

const STARTED: &str = "2026-11-27T04:00:00Z";
const OCCURRED: &str = "2026-11-27T04:00:05Z";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("sample timestamps are valid")
}

fn num(s: &str) -> E164 {
    E164::parse(s).expect("sample numbers are valid")
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// A sample event that fires `trigger`, for the number `did` (or a sample number).
pub fn sample_event_for(trigger: Trigger, did: Option<&E164>) -> CallEvent {
    let call_type = match trigger {
        Trigger::AnsweredByCustomer => CallType::ClickToCall,
        _ => CallType::Inbound,
    };
    let answered =
        |kind: AnswerKind, id: Option<String>, name: Option<String>, hold: Option<i64>| {
            EventDetail::Answered(AnsweredBy {
                kind,
                id,
                name,
                extension: (kind != AnswerKind::Ivr).then(|| "101".to_owned()),
                extension_name: (kind != AnswerKind::Ivr).then(|| "Asha".to_owned()),
                ring_time: (kind != AnswerKind::Ivr).then_some(5),
                hold_time: hold,
                ref_id: (kind == AnswerKind::Customer).then(|| "c2c_7781".to_owned()),
            })
        };
    let ended = |status: EndStatus| {
        let answered = status == EndStatus::Answered;
        EventDetail::Ended(Ended {
            status,
            answered_at: answered.then(|| ts(OCCURRED)),
            ended_at: Some(ts("2026-11-27T04:03:10Z")),
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
    };
    let detail = match trigger {
        Trigger::CallReceived => EventDetail::Received,
        Trigger::AnsweredOnIvr => {
            answered(AnswerKind::Ivr, some("ivr_main"), some("Main menu"), None)
        }
        Trigger::AnsweredOnRingGroup | Trigger::AnsweredByExtension => {
            answered(AnswerKind::RingGroup, some("rg_sales"), some("Sales"), None)
        }
        Trigger::AnsweredOnQueue => answered(
            AnswerKind::Queue,
            some("q_support"),
            some("Support"),
            Some(12),
        ),
        Trigger::AnsweredByCustomer => answered(AnswerKind::Customer, None, None, None),
        Trigger::CallMissed => ended(EndStatus::Missed),
        Trigger::CallHangup | Trigger::CallMissedOrAnswered => ended(EndStatus::Answered),
        Trigger::DtmfOption => EventDetail::Dtmf(Dtmf {
            digit: "2".to_owned(),
            digits: some("12"),
            ivr_id: some("ivr_main"),
            ivr_name: some("Main menu"),
        }),
        Trigger::DialedOnExtension => EventDetail::Dialed(Dialed {
            via: DialVia::RingGroup,
            id: some("rg_sales"),
            name: some("Sales"),
            extensions: vec!["101".to_owned(), "102".to_owned()],
        }),
    };
    let occurred_at = match trigger {
        Trigger::CallMissed | Trigger::CallHangup | Trigger::CallMissedOrAnswered => {
            ts("2026-11-27T04:03:10Z")
        }
        Trigger::CallReceived => ts(STARTED),
        _ => ts(OCCURRED),
    };
    CallEvent {
        id: None,
        account_id: None,
        occurred_at,
        call: Call {
            call_id: "1732680000.1042".to_owned(),
            leg_id: None,
            call_type,
            did_number: did.cloned().unwrap_or_else(|| num("+918065251305")),
            customer_number: Some(num("+919812345678")),
            started_at: Some(ts(STARTED)),
        },
        detail,
    }
}

pub fn sample_event(trigger: Trigger) -> CallEvent {
    sample_event_for(trigger, None)
}
