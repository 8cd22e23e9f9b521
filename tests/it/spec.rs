//! SPEC §2 and §5 written out once, from the SPEC's text and not from the code: the
//! independent check that the catalogue, delivery and connector tests hold callhook to. A new
//! trigger in the SPEC is one more row here.

use std::collections::BTreeSet;

use serde_json::Value;

/// SPEC §5: the parameters every request carries first, in this order.
pub const COMMON: [&str; 9] = [
    "event_id",
    "trigger",
    "call_id",
    "leg_id",
    "call_type",
    "did_number",
    "customer_number",
    "occurred_at",
    "time_zone",
];

/// SPEC §2 "when": the condition on the call event.
pub enum When {
    Always,
    /// `answered_by.type` is one of these.
    AnsweredBy(&'static [&'static str]),
    /// `ended.status` is this.
    Status(&'static str),
}

/// A row of SPEC §2 with its row of SPEC §5.
pub struct Trigger {
    pub id: &'static str,
    pub label: &'static str,
    pub fires_on: &'static str,
    pub when: When,
    /// Its own parameters, after [`COMMON`], in order.
    pub own: &'static [&'static str],
}

pub const TRIGGERS: [Trigger; 11] = [
    Trigger {
        id: "call_received",
        label: "Call received on server",
        fires_on: "call.received",
        when: When::Always,
        own: &["start_stamp"],
    },
    Trigger {
        id: "answered_on_ivr",
        label: "Call answered on IVR",
        fires_on: "call.answered",
        when: When::AnsweredBy(&["ivr"]),
        own: &["start_stamp", "answer_stamp", "ivr_id", "ivr_name"],
    },
    Trigger {
        id: "answered_on_ring_group",
        label: "Call answered on ring group",
        fires_on: "call.answered",
        when: When::AnsweredBy(&["ring_group"]),
        own: &[
            "start_stamp",
            "answer_stamp",
            "ring_group_id",
            "ring_group_name",
            "extension",
            "extension_name",
            "ring_time",
        ],
    },
    Trigger {
        id: "answered_on_queue",
        label: "Call answered on call queue",
        fires_on: "call.answered",
        when: When::AnsweredBy(&["queue"]),
        own: &[
            "start_stamp",
            "answer_stamp",
            "queue_id",
            "queue_name",
            "extension",
            "extension_name",
            "ring_time",
            "hold_time",
        ],
    },
    Trigger {
        id: "answered_by_extension",
        label: "Call answered by extension",
        fires_on: "call.answered",
        when: When::AnsweredBy(&["extension", "ring_group", "queue"]),
        own: &[
            "start_stamp",
            "answer_stamp",
            "extension",
            "extension_name",
            "via",
            "via_id",
            "via_name",
            "ring_time",
        ],
    },
    Trigger {
        id: "call_missed",
        label: "Call missed",
        fires_on: "call.ended",
        when: When::Status("missed"),
        own: &[
            "start_stamp",
            "end_stamp",
            "duration",
            "call_status",
            "missed_extensions",
            "last_stage",
            "hangup_cause",
            "hangup_by",
            "recording_url",
        ],
    },
    Trigger {
        id: "call_hangup",
        label: "Call hangup",
        fires_on: "call.ended",
        when: When::Status("answered"),
        own: &[
            "start_stamp",
            "answer_stamp",
            "end_stamp",
            "duration",
            "billsec",
            "call_status",
            "answered_extension",
            "answered_extension_name",
            "hangup_cause",
            "hangup_by",
            "recording_url",
        ],
    },
    Trigger {
        id: "call_missed_or_answered",
        label: "Call missed or answered",
        fires_on: "call.ended",
        when: When::Always,
        own: &[
            "start_stamp",
            "answer_stamp",
            "end_stamp",
            "duration",
            "billsec",
            "call_status",
            "answered_extension",
            "answered_extension_name",
            "missed_extensions",
            "last_stage",
            "hangup_cause",
            "hangup_by",
            "recording_url",
        ],
    },
    Trigger {
        id: "dtmf_option",
        label: "DTMF option",
        fires_on: "call.dtmf",
        when: When::Always,
        own: &["digit", "digits", "ivr_id", "ivr_name", "pressed_at"],
    },
    Trigger {
        id: "dialed_on_extension",
        label: "Dialed on extensions",
        fires_on: "call.dialed",
        when: When::Always,
        own: &["extensions", "via", "via_id", "via_name", "dialed_at"],
    },
    Trigger {
        id: "answered_by_customer",
        label: "Call answered by customer (Click to Call)",
        fires_on: "call.answered",
        when: When::AnsweredBy(&["customer"]),
        own: &[
            "start_stamp",
            "answer_stamp",
            "extension",
            "extension_name",
            "ref_id",
        ],
    },
];

impl Trigger {
    /// Whether it fires for `event`, a call event as posted (SPEC §4).
    pub fn fires_for(&self, event: &Value) -> bool {
        event["type"] == self.fires_on
            && match self.when {
                When::Always => true,
                When::AnsweredBy(types) => event["answered_by"]["type"]
                    .as_str()
                    .is_some_and(|t| types.contains(&t)),
                When::Status(status) => event["ended"]["status"] == status,
            }
    }

    /// Every parameter, in the order a receiver gets them.
    pub fn params(&self) -> Vec<&'static str> {
        COMMON.iter().chain(self.own).copied().collect()
    }
}

/// The row of trigger `id`.
pub fn trigger(id: &str) -> &'static Trigger {
    TRIGGERS
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("{id} is not a trigger of SPEC §2"))
}

/// Every parameter name of trigger `id`, in the order a receiver gets them.
pub fn params_of(id: &str) -> Vec<&'static str> {
    trigger(id).params()
}

/// The triggers that fire for `event`.
pub fn triggers_firing_for(event: &Value) -> BTreeSet<&'static str> {
    TRIGGERS
        .iter()
        .filter(|t| t.fires_for(event))
        .map(|t| t.id)
        .collect()
}

/// SPEC §5 "Formats": how a parameter's value is written, as the catalogue's `kind` says it.
pub fn kind_of(param: &str) -> &'static str {
    if param == "occurred_at" || param.ends_with("_stamp") || param.ends_with("_at") {
        "timestamp"
    } else if ["duration", "billsec", "ring_time", "hold_time"].contains(&param) {
        "seconds"
    } else if ["extensions", "missed_extensions"].contains(&param) {
        "list"
    } else {
        "string"
    }
}
