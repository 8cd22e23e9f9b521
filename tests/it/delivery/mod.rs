//! Deliveries over real HTTP (issue 3): what a receiver gets for each trigger and encoding,
//! time zones, headers, signatures (checked independently: HMAC in Rust and the PyPI
//! `standardwebhooks` package), matching and repeats, batches, the SSRF guard, the delivery log
//! APIs and metrics. Every receiver listens on loopback; no request leaves the machine.
//!
//! One file per topic; this one holds the realistic call events and the helpers they share.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callhook::config::Dur;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::*;
use crate::receiver::{Received, Receiver, Reply};
use crate::spec;
use crate::verifier::{python_verdicts, signed_with, verifier_input};

mod batches;
mod failures;
mod headers;
mod limits;
mod log;
mod matching;
mod metrics;
mod parameters;
mod signing;
mod ssrf;
mod time_zones;

const DID: &str = "+918065251305";
const DID2: &str = "+918065251399";
const CUSTOMER: &str = "+919812345678";
const STARTED: &str = "2026-11-27T04:00:00Z";
/// `STARTED` in Asia/Kolkata.
const STARTED_IST: &str = "2026-11-27T09:30:00+05:30";

fn call(call_id: &str) -> Value {
    json!({"call_id": call_id, "call_type": "inbound", "did_number": DID,
           "customer_number": CUSTOMER, "started_at": STARTED})
}

/// One realistic event per situation, by name.
fn event(name: &str) -> Value {
    match name {
        // No id: callhook gives it one.
        "received" => json!({"type": "call.received", "occurred_at": "2026-11-27T04:00:01Z",
            "call": call("c-received")}),
        "ivr" => {
            json!({"id": "ev-ivr", "type": "call.answered", "occurred_at": "2026-11-27T04:00:05Z",
            "call": {"call_id": "c-ivr", "leg_id": "c-ivr-leg-1", "call_type": "inbound",
                     "did_number": DID, "customer_number": CUSTOMER, "started_at": STARTED},
            "answered_by": {"type": "ivr", "id": "ivr_main", "name": "Main menu"}})
        }
        "ring_group" => {
            json!({"id": "ev-rg", "type": "call.answered", "occurred_at": "2026-11-27T04:00:05Z",
            "call": call("c-rg"),
            "answered_by": {"type": "ring_group", "id": "rg_sales", "name": "Sales",
                            "extension": "101", "extension_name": "Asha", "ring_time": 5}})
        }
        "queue" => {
            json!({"id": "ev-queue", "type": "call.answered", "occurred_at": "2026-11-27T04:00:05Z",
            "call": call("c-queue"),
            "answered_by": {"type": "queue", "id": "q_support", "name": "Support",
                            "extension": "102", "extension_name": "Ravi", "ring_time": 7, "hold_time": 12}})
        }
        // Caller id withheld: no customer number.
        "extension" => {
            json!({"id": "ev-ext", "type": "call.answered", "occurred_at": "2026-11-27T04:00:05Z",
            "call": {"call_id": "c-ext", "call_type": "inbound", "did_number": DID, "started_at": STARTED},
            "answered_by": {"type": "extension", "extension": "103", "extension_name": "Meera", "ring_time": 3}})
        }
        "customer" => {
            json!({"id": "ev-c2c", "type": "call.answered", "occurred_at": "2026-11-27T04:00:05Z",
            "call": {"call_id": "c-c2c", "call_type": "click_to_call", "did_number": DID,
                     "customer_number": CUSTOMER, "started_at": STARTED},
            "answered_by": {"type": "customer", "extension": "101", "extension_name": "Asha", "ref_id": "c2c_7781"}})
        }
        "missed" => {
            json!({"id": "ev-missed", "type": "call.ended", "occurred_at": "2026-11-27T04:00:33Z",
            "call": call("c-missed"),
            "ended": {"status": "missed", "ended_at": "2026-11-27T04:00:32Z", "duration": 32,
                      "hangup_cause": "NO_ANSWER", "hangup_by": "system",
                      "missed_extensions": ["101", "102"], "last_stage": "ring_group"}})
        }
        "hangup" => {
            json!({"id": "ev-hangup", "type": "call.ended", "occurred_at": "2026-11-27T04:03:11Z",
            "call": call("c-hangup"),
            "ended": {"status": "answered", "answered_at": "2026-11-27T04:00:06Z",
                      "ended_at": "2026-11-27T04:03:10Z", "duration": 190, "billsec": 184,
                      "hangup_cause": "NORMAL_CLEARING", "hangup_by": "customer",
                      "answered_extension": "101", "answered_extension_name": "Asha",
                      "missed_extensions": ["102"], "last_stage": "extension",
                      "recording_url": "https://recordings.example.com/c-hangup.mp3"}})
        }
        "dtmf" => {
            json!({"id": "ev-dtmf", "type": "call.dtmf", "occurred_at": "2026-11-27T04:00:03Z",
            "call": call("c-dtmf"),
            "dtmf": {"digit": "2", "digits": "12", "ivr_id": "ivr_main", "ivr_name": "Main menu"}})
        }
        "dialed" => {
            json!({"id": "ev-dialed", "type": "call.dialed", "occurred_at": "2026-11-27T04:00:04Z",
            "call": {"call_id": "c-dialed", "leg_id": "c-dialed-leg-7", "call_type": "inbound",
                     "did_number": DID, "customer_number": CUSTOMER, "started_at": STARTED},
            "dialed": {"via": "ring_group", "id": "rg_sales", "name": "Sales", "extensions": ["101", "102"]}})
        }
        other => panic!("no event {other}"),
    }
}

fn counts(b: &Value) -> (u64, u64, u64) {
    (
        b["accepted"].as_u64().expect("accepted"),
        b["duplicates"].as_u64().expect("duplicates"),
        b["deliveries"].as_u64().expect("deliveries"),
    )
}

/// A call.received event for `call_id` on `did`.
fn received_event(id: &str, call_id: &str, did: &str, call_type: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:01Z",
           "call": {"call_id": call_id, "call_type": call_type, "did_number": did,
                    "customer_number": CUSTOMER, "started_at": STARTED}})
}

/// The value a form or query carries for a JSON value (SPEC §5: nulls empty, lists
/// comma-joined, numbers as digits).
fn form_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("lists hold strings"))
            .collect::<Vec<_>>()
            .join(","),
        other => panic!("no form spelling for {other}"),
    }
}

/// One parameter of a received request, whatever its encoding, as text.
fn param(r: &Received, name: &str) -> Option<String> {
    if r.method == "POST" && media_type(r).as_deref() == Some("application/json") {
        let v = r.json();
        v.get(name).map(form_value)
    } else {
        r.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The Content-Type without parameters.
fn media_type(r: &Received) -> Option<String> {
    r.header("content-type").map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// The URL's own query for GET webhooks: callhook must append to it.
const OWN_QUERY: &str = "src=pbx&list=a%2Cb";

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
