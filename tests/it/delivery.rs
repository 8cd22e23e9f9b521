//! Deliveries over real HTTP (issue 3): what a receiver gets for each trigger and encoding,
//! time zones, headers, signatures (checked independently: HMAC in Rust and the PyPI
//! `standardwebhooks` package), matching and repeats, batches, the SSRF guard, the delivery log
//! APIs and metrics. Every receiver listens on loopback; no request leaves the machine.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::config::Dur;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::helpers::*;
use crate::receiver::{Received, Receiver, Reply};
use crate::spec;

// ---------------------------------------------------------------------------------------------
// Realistic call events

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

/// What one trigger's receiver must get for one event, in Asia/Kolkata.
struct Case {
    trigger: &'static str,
    event: &'static str,
    /// `occurred_at` in Asia/Kolkata.
    occurred_at: &'static str,
    /// The trigger's own parameters.
    own: Value,
}

/// The cases that show each trigger: every event it fires for here, with the values a
/// receiver must get (SPEC §5 "Values").
fn cases(trigger: &'static str) -> Vec<Case> {
    let case = |event: &'static str, occurred_at: &'static str, own: Value| Case {
        trigger,
        event,
        occurred_at,
        own,
    };
    let rg = || {
        case(
            "ring_group",
            "2026-11-27T09:30:05+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                   "extension": "101", "extension_name": "Asha",
                   "via": "ring_group", "via_id": "rg_sales", "via_name": "Sales", "ring_time": 5}),
        )
    };
    let missed = || {
        case(
            "missed",
            "2026-11-27T09:30:33+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": null,
                   "end_stamp": "2026-11-27T09:30:32+05:30", "duration": 32, "billsec": null,
                   "call_status": "missed", "answered_extension": null, "answered_extension_name": null,
                   "missed_extensions": ["101", "102"], "last_stage": "ring_group",
                   "hangup_cause": "NO_ANSWER", "hangup_by": "system", "recording_url": null}),
        )
    };
    let hangup = || {
        case(
            "hangup",
            "2026-11-27T09:33:11+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:06+05:30",
                   "end_stamp": "2026-11-27T09:33:10+05:30", "duration": 190, "billsec": 184,
                   "call_status": "answered", "answered_extension": "101",
                   "answered_extension_name": "Asha", "missed_extensions": ["102"],
                   "last_stage": "extension", "hangup_cause": "NORMAL_CLEARING",
                   "hangup_by": "customer",
                   "recording_url": "https://recordings.example.com/c-hangup.mp3"}),
        )
    };
    // The shared rows carry the keys of every trigger they serve; each case keeps its trigger's.
    let mut out = match trigger {
        "call_received" => vec![case(
            "received",
            "2026-11-27T09:30:01+05:30",
            json!({"start_stamp": STARTED_IST}),
        )],
        "answered_on_ivr" => vec![case(
            "ivr",
            "2026-11-27T09:30:05+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                   "ivr_id": "ivr_main", "ivr_name": "Main menu"}),
        )],
        "answered_on_ring_group" => vec![case(
            "ring_group",
            "2026-11-27T09:30:05+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                   "ring_group_id": "rg_sales", "ring_group_name": "Sales",
                   "extension": "101", "extension_name": "Asha", "ring_time": 5}),
        )],
        "answered_on_queue" => vec![case(
            "queue",
            "2026-11-27T09:30:05+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                   "queue_id": "q_support", "queue_name": "Support",
                   "extension": "102", "extension_name": "Ravi", "ring_time": 7, "hold_time": 12}),
        )],
        "answered_by_extension" => vec![
            rg(),
            case(
                "queue",
                "2026-11-27T09:30:05+05:30",
                json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                       "extension": "102", "extension_name": "Ravi",
                       "via": "queue", "via_id": "q_support", "via_name": "Support", "ring_time": 7}),
            ),
            case(
                "extension",
                "2026-11-27T09:30:05+05:30",
                json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                       "extension": "103", "extension_name": "Meera",
                       "via": "direct", "via_id": null, "via_name": null, "ring_time": 3}),
            ),
        ],
        "call_missed" => vec![missed()],
        "call_hangup" => vec![hangup()],
        "call_missed_or_answered" => vec![missed(), hangup()],
        "dtmf_option" => vec![case(
            "dtmf",
            "2026-11-27T09:30:03+05:30",
            json!({"digit": "2", "digits": "12", "ivr_id": "ivr_main", "ivr_name": "Main menu",
                   "pressed_at": "2026-11-27T09:30:03+05:30"}),
        )],
        "dialed_on_extension" => vec![case(
            "dialed",
            "2026-11-27T09:30:04+05:30",
            json!({"extensions": ["101", "102"], "via": "ring_group", "via_id": "rg_sales",
                   "via_name": "Sales", "dialed_at": "2026-11-27T09:30:04+05:30"}),
        )],
        "answered_by_customer" => vec![case(
            "customer",
            "2026-11-27T09:30:05+05:30",
            json!({"start_stamp": STARTED_IST, "answer_stamp": "2026-11-27T09:30:05+05:30",
                   "extension": "101", "extension_name": "Asha", "ref_id": "c2c_7781"}),
        )],
        other => panic!("no cases for {other}"),
    };
    let own_keys: HashSet<&str> = spec::trigger(trigger).own.iter().copied().collect();
    for c in &mut out {
        let obj = c.own.as_object_mut().unwrap();
        obj.retain(|k, _| own_keys.contains(k.as_str()));
        assert_eq!(
            obj.len(),
            own_keys.len(),
            "test data: {trigger}/{} must give every own parameter",
            c.event
        );
    }
    out
}

impl Case {
    /// Every parameter's expected value; `event_id` is what the event was stored under.
    fn expected(&self, event_id: &str) -> Map<String, Value> {
        let ev = event(self.event);
        let c = &ev["call"];
        let mut m = Map::new();
        m.insert("event_id".into(), json!(event_id));
        m.insert("trigger".into(), json!(self.trigger));
        m.insert("call_id".into(), c["call_id"].clone());
        m.insert("leg_id".into(), c["leg_id"].clone());
        m.insert("call_type".into(), c["call_type"].clone());
        m.insert("did_number".into(), c["did_number"].clone());
        m.insert("customer_number".into(), c["customer_number"].clone());
        m.insert("occurred_at".into(), json!(self.occurred_at));
        m.insert("time_zone".into(), json!("Asia/Kolkata"));
        for (k, v) in self.own.as_object().unwrap() {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A server that may reach loopback receivers, polls often and retries quickly.
pub(crate) async fn loopback_app() -> TestApp {
    spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        s.poll_interval = Dur(Duration::from_millis(100));
        s.retry_schedule = "100ms,200ms".parse().unwrap();
    })
    .await
}

/// Creates a webhook (its `url` must be a loopback receiver); answers its id.
pub(crate) async fn hook(app: &TestApp, fields: Value) -> String {
    let url = fields["url"]
        .as_str()
        .expect("every test webhook names its url");
    assert!(
        url.starts_with("http://127.")
            || url.starts_with("http://[::1]")
            || url.starts_with("http://[::ffff:127.")
            || url.starts_with("http://localhost"),
        "test webhooks only point at loopback: {url}"
    );
    app.create_webhook(fields).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn secret_of(app: &TestApp, webhook_id: &str) -> String {
    let (s, b) = app.get(&format!("/v1/webhooks/{webhook_id}/secret")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["secret"].as_str().unwrap().to_owned()
}

/// Posts events with the account key and expects a 202; answers the counts.
pub(crate) async fn accept(app: &TestApp, body: Value) -> Value {
    let (s, b) = app.post("/v1/events", body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Enc {
    Json,
    Form,
    Get,
}

/// The three ways a receiver can get parameters: path prefix, method, content type.
const ENCODINGS: [(Enc, &str, &str, &str); 3] = [
    (Enc::Json, "json", "POST", "application/json"),
    (
        Enc::Form,
        "form",
        "POST",
        "application/x-www-form-urlencoded",
    ),
    (Enc::Get, "get", "GET", "application/json"),
];

/// The URL's own query for GET webhooks: callhook must append to it.
const OWN_QUERY: &str = "src=pbx&list=a%2Cb";

/// Asserts `r` carries exactly `keys`, in order, with the `expected` values, encoded as `enc`.
fn check_request(r: &Received, enc: Enc, keys: &[&str], expected: &Map<String, Value>) {
    let what = format!("{} {}", r.method, r.path);
    match enc {
        Enc::Json => {
            assert_eq!(r.method, "POST", "{what}");
            assert_eq!(media_type(r).as_deref(), Some("application/json"), "{what}");
            let body = r.json();
            let obj = body.as_object().expect("the body is one JSON object");
            let got: Vec<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(got, keys, "{what}: parameter names and order");
            for k in keys {
                assert_eq!(obj[*k], expected[*k], "{what}: {k} in {}", r.body);
            }
        }
        Enc::Form | Enc::Get => {
            let mut pairs = r.form();
            if enc == Enc::Get {
                assert_eq!(r.method, "GET", "{what}");
                assert!(r.body.is_empty(), "{what}: a GET has no body: {}", r.body);
                assert_eq!(
                    r.header("content-type"),
                    None,
                    "{what}: a GET has no Content-Type"
                );
                let q = r.query.as_deref().unwrap_or("");
                assert!(
                    q.starts_with(&format!("{OWN_QUERY}&")),
                    "{what}: the URL's own query comes first, then callhook's: {q}"
                );
                let own: Vec<(String, String)> = pairs.drain(..2).collect();
                assert_eq!(
                    own,
                    [("src".into(), "pbx".into()), ("list".into(), "a,b".into())]
                );
            } else {
                assert_eq!(r.method, "POST", "{what}");
                assert_eq!(
                    media_type(r).as_deref(),
                    Some("application/x-www-form-urlencoded"),
                    "{what}"
                );
            }
            let got: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(got, keys, "{what}: parameter names and order");
            for (k, v) in &pairs {
                assert_eq!(
                    v,
                    &form_value(&expected[k.as_str()]),
                    "{what}: {k} in {:?}",
                    r.query.as_deref().unwrap_or(&r.body)
                );
            }
        }
    }
}

/// Polls the delivery log until `webhook_id` has `n` deliveries and none is pending.
async fn settled(app: &TestApp, webhook_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, b) = app
            .get(&format!("/v1/webhooks/{webhook_id}/deliveries?limit=1000"))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let data = b["data"].as_array().unwrap().clone();
        if data.len() >= n && data.iter().all(|d| d["status"] != "pending") {
            assert_eq!(data.len(), n, "{b}");
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "{webhook_id}: expected {n} finished deliveries: {b:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries_of(app: &TestApp, webhook_id: &str, query: &str) -> Value {
    let (s, b) = app
        .get(&format!("/v1/webhooks/{webhook_id}/deliveries{query}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{query}: {b}");
    b
}

async fn delivery(app: &TestApp, id: &str) -> Value {
    let (s, b) = app.get(&format!("/v1/deliveries/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

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

/// `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{content}` keyed with the decoded secret:
/// the Standard Webhooks scheme, written here from its specification.
fn standard_signature(secret: &str, id: &str, timestamp: &str, content: &str) -> String {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{content}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Whether `secret` made one of the space-separated signatures of `r` over `content`.
fn signed_with(secret: &str, r: &Received, content: &str) -> bool {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let want = standard_signature(secret, id, ts, content);
    r.header("webhook-signature")
        .expect("webhook-signature")
        .split(' ')
        .any(|s| s == want)
}

/// A Python with the `standardwebhooks` package: `$CALLHOOK_PYTHON`, else `.venv/bin/python`.
fn python() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("CALLHOOK_PYTHON").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    for c in &candidates {
        let works = Command::new(c)
            .args(["-c", "from standardwebhooks.webhooks import Webhook"])
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return c.clone();
        }
    }
    panic!(
        "no Python with the standardwebhooks package (tried {candidates:?}): run scripts/test, \
         which installs it in .venv, or set CALLHOOK_PYTHON"
    )
}

/// Runs tests/verify_signatures.py on `items`; answers its lines (`ok` / `bad`).
pub(crate) async fn python_verdicts(items: Vec<Value>) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_signatures.py");
        let mut child = Command::new(python())
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        {
            let mut stdin = child.stdin.take().unwrap();
            for item in &items {
                writeln!(stdin, "{item}").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            lines.len(),
            items.len(),
            "one verdict per line; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines
    })
    .await
    .unwrap()
}

/// What the Python verifier needs to check one received POST.
pub(crate) fn verifier_input(secret: &str, r: &Received, body: &str) -> Value {
    json!({
        "secret": secret,
        "id": r.header("webhook-id").unwrap(),
        "timestamp": r.header("webhook-timestamp").unwrap(),
        "body": body,
        "signature": r.header("webhook-signature").unwrap(),
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Parameters: names, order and values for every trigger and encoding

/// Makes a JSON, a form and a GET webhook for `trigger`, posts the events of its cases, and
/// checks every request against the tables above.
async fn renders(trigger: &'static str) {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    for (enc, prefix, method, content_type) in ENCODINGS {
        let query = if enc == Enc::Get {
            format!("?{OWN_QUERY}")
        } else {
            String::new()
        };
        hook(
            &app,
            json!({"trigger": trigger, "method": method, "content_type": content_type,
                   "time_zone": "Asia/Kolkata",
                   "url": rx.url(&format!("/{prefix}/{trigger}{query}"))}),
        )
        .await;
    }
    let cases = cases(trigger);
    for c in &cases {
        let b = accept(&app, event(c.event)).await;
        assert_eq!(
            counts(&b),
            (1, 0, 3),
            "{trigger}: {} fires one delivery per webhook",
            c.event
        );
    }
    let got = rx.wait_for(3 * cases.len(), Duration::from_secs(10)).await;
    let keys = spec::params_of(trigger);
    for c in &cases {
        let ev = event(c.event);
        let call_id = ev["call"]["call_id"].as_str().unwrap();
        let event_id = match ev["id"].as_str() {
            Some(id) => id.to_owned(),
            None => {
                let (s, b) = app.get(&format!("/v1/calls/{call_id}")).await;
                assert_eq!(s, StatusCode::OK, "{b}");
                let id = b["events"][0]["event_id"].as_str().unwrap().to_owned();
                assert!(!id.is_empty(), "callhook gives an event with no id one");
                id
            }
        };
        let expected = c.expected(&event_id);
        for (enc, prefix, _, _) in ENCODINGS {
            let path = format!("/{prefix}/{trigger}");
            let matching: Vec<&Received> = got
                .iter()
                .filter(|r| r.path == path && param(r, "call_id").as_deref() == Some(call_id))
                .collect();
            assert_eq!(
                matching.len(),
                1,
                "{path}: one request for {call_id}: {got:#?}"
            );
            check_request(matching[0], enc, &keys, &expected);
        }
    }
    rx.expect_no_more_than(3 * cases.len(), Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn call_received_parameters() {
    renders("call_received").await;
}

#[tokio::test]
async fn answered_on_ivr_parameters() {
    renders("answered_on_ivr").await;
}

#[tokio::test]
async fn answered_on_ring_group_parameters() {
    renders("answered_on_ring_group").await;
}

#[tokio::test]
async fn answered_on_queue_parameters() {
    renders("answered_on_queue").await;
}

#[tokio::test]
async fn answered_by_extension_parameters_for_each_route() {
    renders("answered_by_extension").await;
}

#[tokio::test]
async fn call_missed_parameters() {
    renders("call_missed").await;
}

#[tokio::test]
async fn call_hangup_parameters() {
    renders("call_hangup").await;
}

#[tokio::test]
async fn call_missed_or_answered_parameters_for_both_outcomes() {
    renders("call_missed_or_answered").await;
}

#[tokio::test]
async fn dtmf_option_parameters() {
    renders("dtmf_option").await;
}

#[tokio::test]
async fn dialed_on_extension_parameters() {
    renders("dialed_on_extension").await;
}

#[tokio::test]
async fn answered_by_customer_parameters() {
    renders("answered_by_customer").await;
}

#[test]
fn the_tables_cover_the_eleven_triggers() {
    assert_eq!(spec::TRIGGERS.len(), 11);
    for t in &spec::TRIGGERS {
        assert!(!cases(t.id).is_empty(), "{}", t.id);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Time zones

#[tokio::test]
async fn timestamps_are_in_the_webhooks_zone_across_dst_and_half_hour_offsets() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    hook(
        &app,
        json!({"trigger": "call_received", "time_zone": "Europe/London",
                      "url": rx.url("/london")}),
    )
    .await;
    hook(
        &app,
        json!({"trigger": "call_received", "time_zone": "Europe/London", "method": "GET",
                      "url": rx.url("/london-get")}),
    )
    .await;
    hook(
        &app,
        json!({"trigger": "call_received", "time_zone": "Asia/Kolkata",
                      "url": rx.url("/kolkata")}),
    )
    .await;
    // 2026-10-25 01:00 UTC: London leaves summer time (+01:00) for GMT (+00:00).
    let before = "2026-10-25T00:30:00Z";
    let after = "2026-10-25T01:30:00Z";
    for (id, at) in [("tz-before", before), ("tz-after", after)] {
        accept(
            &app,
            json!({"id": id, "type": "call.received", "occurred_at": at,
                   "call": {"call_id": id, "call_type": "inbound", "did_number": DID,
                            "started_at": at}}),
        )
        .await;
    }
    let got = rx.wait_for(6, Duration::from_secs(10)).await;
    let want = [
        (
            "/london",
            "tz-before",
            "2026-10-25T01:30:00+01:00",
            "Europe/London",
        ),
        (
            "/london",
            "tz-after",
            "2026-10-25T01:30:00+00:00",
            "Europe/London",
        ),
        (
            "/london-get",
            "tz-before",
            "2026-10-25T01:30:00+01:00",
            "Europe/London",
        ),
        (
            "/london-get",
            "tz-after",
            "2026-10-25T01:30:00+00:00",
            "Europe/London",
        ),
        (
            "/kolkata",
            "tz-before",
            "2026-10-25T06:00:00+05:30",
            "Asia/Kolkata",
        ),
        (
            "/kolkata",
            "tz-after",
            "2026-10-25T07:00:00+05:30",
            "Asia/Kolkata",
        ),
    ];
    for (path, call_id, stamp, zone) in want {
        let r = got
            .iter()
            .find(|r| r.path == path && param(r, "call_id").as_deref() == Some(call_id))
            .unwrap_or_else(|| panic!("{path} got nothing for {call_id}: {got:#?}"));
        assert_eq!(
            param(r, "occurred_at").as_deref(),
            Some(stamp),
            "{path} {call_id}"
        );
        assert_eq!(
            param(r, "start_stamp").as_deref(),
            Some(stamp),
            "{path} {call_id}"
        );
        assert_eq!(param(r, "time_zone").as_deref(), Some(zone), "{path}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Headers

#[tokio::test]
async fn custom_headers_user_agent_and_webhook_headers_arrive() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/h"),
               "headers": [{"key": "X-Api-Key", "value": "s3cr3t"},
                           {"key": "X-Tenant", "value": "acme corp"}]}),
    )
    .await;
    accept(&app, received_event("h-1", "c-h", DID, "inbound")).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(r.header("x-api-key"), Some("s3cr3t"));
    assert_eq!(r.header("x-tenant"), Some("acme corp"));
    assert_eq!(
        r.header("user-agent"),
        Some(format!("callhook/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let list = deliveries_of(&app, &wh, "").await;
    assert_eq!(ids(&list).len(), 1, "{list}");
    assert_eq!(r.header("webhook-id"), Some(ids(&list)[0].as_str()));
    let ts: i64 = r
        .header("webhook-timestamp")
        .expect("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!(
        (ts - now_secs()).abs() <= 30,
        "webhook-timestamp {ts} is not recent (now {})",
        now_secs()
    );
    assert!(
        r.header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,")),
        "{:?}",
        r.headers
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Matching and repeats

#[tokio::test]
async fn a_did_filter_takes_only_its_numbers() {
    let app = loopback_app().await;
    app.add_number(DID).await;
    app.add_number(DID2).await;
    let only = Receiver::start().await;
    let all = Receiver::start().await;
    let only_id = hook(
        &app,
        json!({"trigger": "call_received", "numbers": [DID], "url": only.url("/only")}),
    )
    .await;
    hook(
        &app,
        json!({"trigger": "call_received", "url": all.url("/all")}),
    )
    .await;
    let b = accept(&app, received_event("did-2", "c-did-2", DID2, "inbound")).await;
    assert_eq!(
        counts(&b),
        (1, 0, 1),
        "a call on {DID2} fires only the unfiltered webhook"
    );
    let b = accept(&app, received_event("did-1", "c-did-1", DID, "inbound")).await;
    assert_eq!(counts(&b), (1, 0, 2), "a call on {DID} fires both");
    all.wait_for(2, Duration::from_secs(10)).await;
    let got = only.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(param(&got[0], "did_number").as_deref(), Some(DID));
    only.expect_no_more_than(1, Duration::from_millis(300))
        .await;
    let list = deliveries_of(&app, &only_id, "").await;
    assert_eq!(ids(&list).len(), 1, "{list}");
}

#[tokio::test]
async fn a_call_type_filter_takes_only_its_types() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "call_types": ["outbound", "click_to_call"],
               "url": rx.url("/out")}),
    )
    .await;
    let b = accept(&app, received_event("ct-in", "c-in", DID, "inbound")).await;
    assert_eq!(counts(&b), (1, 0, 0), "inbound is not among the call types");
    let b = accept(&app, received_event("ct-out", "c-out", DID, "outbound")).await;
    assert_eq!(counts(&b), (1, 0, 1));
    let b = accept(
        &app,
        received_event("ct-c2c", "c-c2c", DID, "click_to_call"),
    )
    .await;
    assert_eq!(counts(&b), (1, 0, 1));
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut types: Vec<String> = got.iter().map(|r| param(r, "call_type").unwrap()).collect();
    types.sort();
    assert_eq!(types, ["click_to_call", "outbound"]);
    rx.expect_no_more_than(2, Duration::from_millis(300)).await;
    assert_eq!(ids(&deliveries_of(&app, &wh, "").await).len(), 2);
}

#[tokio::test]
async fn a_disabled_webhook_gets_nothing() {
    let app = loopback_app().await;
    let off = Receiver::start().await;
    let on = Receiver::start().await;
    let off_id = hook(
        &app,
        json!({"trigger": "call_received", "enabled": false, "url": off.url("/off")}),
    )
    .await;
    hook(
        &app,
        json!({"trigger": "call_received", "url": on.url("/on")}),
    )
    .await;
    let b = accept(&app, received_event("dis-1", "c-dis", DID, "inbound")).await;
    assert_eq!(counts(&b), (1, 0, 1), "only the enabled webhook fires");
    on.wait_for(1, Duration::from_secs(10)).await;
    off.expect_no_more_than(0, Duration::from_millis(300)).await;
    assert!(ids(&deliveries_of(&app, &off_id, "").await).is_empty());
}

#[tokio::test]
async fn answered_by_extension_fires_for_extension_ring_group_and_queue_only() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "answered_by_extension", "url": rx.url("/ext")}),
    )
    .await;
    for (name, fires) in [
        ("ivr", false),
        ("customer", false),
        ("ring_group", true),
        ("queue", true),
        ("extension", true),
    ] {
        let b = accept(&app, event(name)).await;
        assert_eq!(
            counts(&b),
            (1, 0, u64::from(fires)),
            "an answer by {name} {} answered_by_extension",
            if fires { "fires" } else { "does not fire" }
        );
    }
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    let mut via: Vec<String> = got.iter().map(|r| param(r, "via").unwrap()).collect();
    via.sort();
    assert_eq!(via, ["direct", "queue", "ring_group"]);
    rx.expect_no_more_than(3, Duration::from_millis(300)).await;
    assert_eq!(ids(&deliveries_of(&app, &wh, "").await).len(), 3);
}

#[tokio::test]
async fn an_event_posted_twice_is_delivered_once() {
    let app = loopback_app().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let wa = hook(
        &app,
        json!({"trigger": "call_received", "url": a.url("/a")}),
    )
    .await;
    let wb = hook(
        &app,
        json!({"trigger": "call_received", "url": b.url("/b")}),
    )
    .await;
    let ev = received_event("twice", "c-twice", DID, "inbound");
    assert_eq!(counts(&accept(&app, ev.clone()).await), (1, 0, 2));
    assert_eq!(
        counts(&accept(&app, ev.clone()).await),
        (0, 1, 0),
        "a repeat is counted as a duplicate and makes no deliveries"
    );
    // In a batch too, next to a new event.
    let batch = json!([ev, received_event("twice-2", "c-twice-2", DID, "inbound")]);
    assert_eq!(counts(&accept(&app, batch).await), (1, 1, 2));
    for (rx, wh) in [(&a, &wa), (&b, &wb)] {
        rx.wait_for(2, Duration::from_secs(10)).await;
        rx.expect_no_more_than(2, Duration::from_millis(300)).await;
        let calls: HashSet<String> = rx
            .received()
            .iter()
            .map(|r| param(r, "call_id").unwrap())
            .collect();
        assert_eq!(calls.len(), 2, "one request per event");
        assert_eq!(ids(&deliveries_of(&app, wh, "").await).len(), 2);
    }
}

#[tokio::test]
async fn an_event_posted_ten_times_at_once_is_delivered_once() {
    let app = loopback_app().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let wa = hook(
        &app,
        json!({"trigger": "call_received", "url": a.url("/a")}),
    )
    .await;
    let wb = hook(
        &app,
        json!({"trigger": "call_received", "url": b.url("/b")}),
    )
    .await;
    let ev = received_event("concurrent", "c-concurrent", DID, "inbound");
    let answers =
        futures_util::future::join_all((0..10).map(|_| app.post("/v1/events", ev.clone()))).await;
    let mut total = (0, 0, 0);
    for (s, body) in &answers {
        assert_eq!(*s, StatusCode::ACCEPTED, "{body}");
        let (acc, dup, del) = counts(body);
        total = (total.0 + acc, total.1 + dup, total.2 + del);
    }
    assert_eq!(
        total,
        (1, 9, 2),
        "one post stores it, nine are duplicates: {answers:?}"
    );
    for (rx, wh) in [(&a, &wa), (&b, &wb)] {
        rx.wait_for(1, Duration::from_secs(10)).await;
        rx.expect_no_more_than(1, Duration::from_millis(500)).await;
        assert_eq!(ids(&deliveries_of(&app, wh, "").await).len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Batches and who may post for whom

#[tokio::test]
async fn a_batch_with_one_invalid_event_stores_nothing() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/b")}),
    )
    .await;
    let mut bad = received_event("b-2", "c-batch-2", DID, "inbound");
    bad["occurred_at"] = json!("yesterday");
    let batch = json!([
        received_event("b-1", "c-batch-1", DID, "inbound"),
        bad,
        received_event("b-3", "c-batch-3", DID, "inbound"),
    ]);
    let (s, b) = app.post("/v1/events", batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["[1].occurred_at"], "{b}");
    for call in ["c-batch-1", "c-batch-3"] {
        let (s, b) = app.get(&format!("/v1/calls/{call}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{call} was not stored: {b}");
    }
    assert!(ids(&deliveries_of(&app, &wh, "").await).is_empty());
    // The valid events were not stored: posted again they are new, not duplicates.
    let b = accept(
        &app,
        json!([
            received_event("b-1", "c-batch-1", DID, "inbound"),
            received_event("b-3", "c-batch-3", DID, "inbound"),
        ]),
    )
    .await;
    assert_eq!(counts(&b), (2, 0, 2));
    rx.wait_for(2, Duration::from_secs(10)).await;
    rx.expect_no_more_than(2, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_batch_holds_at_most_1000_events() {
    let app = loopback_app().await;
    let many = |n: usize, prefix: &str| {
        Value::Array(
            (0..n)
                .map(|i| {
                    received_event(
                        &format!("{prefix}-{i}"),
                        &format!("{prefix}-call-{i}"),
                        DID,
                        "inbound",
                    )
                })
                .collect(),
        )
    };
    let (s, b) = app.post("/v1/events", many(1001, "over")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b.to_string().contains("1000"),
        "the answer says the limit: {b}"
    );
    let (s, _) = app.get("/v1/calls/over-call-0").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing of the batch was stored");
    let b = accept(&app, many(1000, "full")).await;
    assert_eq!(counts(&b), (1000, 0, 0));
}

#[tokio::test]
async fn a_second_call_ended_for_a_call_is_a_422_naming_type() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_missed_or_answered", "url": rx.url("/end")}),
    )
    .await;
    let ended = |id: &str, call_id: &str| {
        let mut e = event("hangup");
        e["id"] = json!(id);
        e["call"]["call_id"] = json!(call_id);
        e
    };
    assert_eq!(
        counts(&accept(&app, ended("end-1", "c-end")).await),
        (1, 0, 1)
    );
    let (s, b) = app.post("/v1/events", ended("end-2", "c-end")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["type"], "{b}");
    // In a batch: the whole batch is refused, naming the event.
    let (s, b) = app
        .post(
            "/v1/events",
            json!([
                received_event("end-3", "c-other", DID, "inbound"),
                ended("end-4", "c-end")
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["[1].type"], "{b}");
    let (s, _) = app.get("/v1/calls/c-other").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing of the batch was stored");
    // Two ends of one new call in one batch.
    let (s, b) = app
        .post(
            "/v1/events",
            json!([
                ended("end-5", "c-twice-ended"),
                ended("end-6", "c-twice-ended")
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["[1].type"], "{b}");
    let (s, _) = app.get("/v1/calls/c-twice-ended").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing of the batch was stored");
    let (s, call) = app.get("/v1/calls/c-end").await;
    assert_eq!(s, StatusCode::OK, "{call}");
    assert_eq!(call["events"].as_array().unwrap().len(), 1, "{call}");
    rx.wait_for(1, Duration::from_secs(10)).await;
    rx.expect_no_more_than(1, Duration::from_millis(300)).await;
    assert_eq!(ids(&deliveries_of(&app, &wh, "").await).len(), 1);
}

#[tokio::test]
async fn a_refused_post_does_not_spoil_posts_committed_with_it() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/r")}),
    )
    .await;
    let mut ended = event("missed");
    ended["call"]["call_id"] = json!("c-ends-once");
    accept(&app, ended.clone()).await;
    ended["id"] = json!("ev-missed-again");
    // Posted together, so the store may commit them as one group.
    let posts = (0..10).map(|i| {
        let body = if i == 5 {
            ended.clone()
        } else {
            received_event(&format!("g-{i}"), &format!("c-g-{i}"), DID, "inbound")
        };
        app.post("/v1/events", body)
    });
    let answers = futures_util::future::join_all(posts).await;
    for (i, (s, b)) in answers.iter().enumerate() {
        if i == 5 {
            assert_eq!(*s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(problem_fields(b), ["type"], "{b}");
        } else {
            assert_eq!(*s, StatusCode::ACCEPTED, "post {i}: {b}");
            assert_eq!(counts(b), (1, 0, 1), "post {i}");
        }
    }
    rx.wait_for(9, Duration::from_secs(10)).await;
    rx.expect_no_more_than(9, Duration::from_millis(300)).await;
    assert_eq!(ids(&deliveries_of(&app, &wh, "?limit=100").await).len(), 9);
    let (s, call) = app.get("/v1/calls/c-ends-once").await;
    assert_eq!(s, StatusCode::OK, "{call}");
    assert_eq!(call["events"].as_array().unwrap().len(), 1, "{call}");
}

#[tokio::test]
async fn the_operator_names_the_account_and_may_post_for_any() {
    let app = loopback_app().await;
    let (other_id, other_key) = app.other_account("Globex").await;
    let rx = Receiver::start().await;
    hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/acme")}),
    )
    .await;
    let (s, b) = app
        .call_as(
            Some(&other_key),
            Method::POST,
            "/v1/webhooks",
            Some(json!({"name": "globex", "trigger": "call_received", "url": rx.url("/globex")})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let (s, b) = app
        .operator(
            Method::POST,
            "/v1/events",
            Some(received_event("op-0", "c-op-0", DID, "inbound")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["account_id"], "{b}");

    let mut batch = json!([
        received_event("op-1", "c-op-1", DID, "inbound"),
        received_event("op-2", "c-op-2", DID, "inbound"),
    ]);
    batch[0]["account_id"] = json!(app.account_id);
    let (s, b) = app.operator(Method::POST, "/v1/events", Some(batch)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["[1].account_id"], "{b}");

    let mut ev = received_event("op-3", "c-op-3", DID, "inbound");
    ev["account_id"] = json!("acct_nobody");
    let (s, b) = app.operator(Method::POST, "/v1/events", Some(ev)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(
        problem_fields(&b),
        ["account_id"],
        "an unknown account: {b}"
    );

    let mut batch = json!([
        received_event("op-1", "c-op-1", DID, "inbound"),
        received_event("op-2", "c-op-2", DID, "inbound"),
    ]);
    batch[0]["account_id"] = json!(app.account_id);
    batch[1]["account_id"] = json!(other_id);
    let (s, b) = app.operator(Method::POST, "/v1/events", Some(batch)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(counts(&b), (2, 0, 2));
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.path.clone(), param(r, "call_id").unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("/acme".to_owned(), "c-op-1".to_owned()),
            ("/globex".to_owned(), "c-op-2".to_owned())
        ],
        "each event goes to its own account's webhook"
    );
    // The event belongs to the named account only.
    let (s, _) = app.get("/v1/calls/c-op-2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .call_as(Some(&other_key), Method::GET, "/v1/calls/c-op-2", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    rx.expect_no_more_than(2, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_account_key_cannot_post_for_another_account() {
    let app = loopback_app().await;
    let (other_id, _) = app.other_account("Globex").await;
    let mut ev = received_event("k-1", "c-k-1", DID, "inbound");
    ev["account_id"] = json!(other_id);
    let (s, b) = app.post("/v1/events", ev).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["account_id"], "{b}");
    let mut ev = received_event("k-2", "c-k-2", DID, "inbound");
    ev["account_id"] = json!(app.account_id);
    assert_eq!(
        counts(&accept(&app, ev).await),
        (1, 0, 0),
        "naming its own account is fine"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Signatures, verified independently

#[tokio::test]
async fn standardwebhooks_verifies_json_and_form_deliveries() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let json_id = hook(
        &app,
        json!({"trigger": "call_hangup", "url": rx.url("/json")}),
    )
    .await;
    let form_id = hook(
        &app,
        json!({"trigger": "call_hangup", "content_type": "application/x-www-form-urlencoded",
               "url": rx.url("/form")}),
    )
    .await;
    accept(&app, event("hangup")).await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let find = |path: &str| got.iter().find(|r| r.path == path).unwrap().clone();
    let (j, f) = (find("/json"), find("/form"));
    let (js, fs) = (
        secret_of(&app, &json_id).await,
        secret_of(&app, &form_id).await,
    );
    // The Rust check, written from the Standard Webhooks spec.
    assert!(signed_with(&js, &j, &j.body), "{:?}", j.headers);
    assert!(signed_with(&fs, &f, &f.body), "{:?}", f.headers);
    assert!(!signed_with(&fs, &j, &j.body), "another webhook's secret");
    let tampered = j.body.replace("\"billsec\":184", "\"billsec\":999");
    assert_ne!(tampered, j.body, "the test changes the body");
    let verdicts = python_verdicts(vec![
        verifier_input(&js, &j, &j.body),
        verifier_input(&fs, &f, &f.body),
        verifier_input(&js, &j, &tampered),
    ])
    .await;
    assert_eq!(verdicts, ["ok", "ok", "bad"]);
}

#[tokio::test]
async fn a_get_delivery_signs_the_query_callhook_appended() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "dialed_on_extension", "method": "GET",
               "url": rx.url(&format!("/get?{OWN_QUERY}"))}),
    )
    .await;
    accept(&app, event("dialed")).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let secret = secret_of(&app, &wh).await;
    let query = r.query.clone().expect("a query");
    let appended = query
        .strip_prefix(&format!("{OWN_QUERY}&"))
        .unwrap_or_else(|| panic!("callhook appends to the URL's own query: {query}"));
    assert!(
        signed_with(&secret, &r, appended),
        "the signature covers {appended:?}: {:?}",
        r.headers
    );
    assert!(
        !signed_with(&secret, &r, &query),
        "not the URL's own query as well"
    );
    assert!(!signed_with(&secret, &r, ""), "not an empty body");
    // The log shows the request as sent: GET, the whole URL, no body, no Content-Type.
    let list = settled(&app, &wh, 1).await;
    let d = delivery(&app, list[0]["id"].as_str().unwrap()).await;
    let req = &d["attempt_log"][0]["request"];
    assert_eq!(req["method"], "GET", "{d:#}");
    assert_eq!(req["url"], rx.url(&format!("{}?{query}", r.path)), "{d:#}");
    assert_eq!(req["body"], Value::Null, "{d:#}");
    let headers: Vec<(String, String)> = serde_json::from_value(req["headers"].clone()).unwrap();
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type")),
        "{headers:?}"
    );
}

#[tokio::test]
async fn after_a_rotation_both_secrets_verify_a_delivery() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/rot")}),
    )
    .await;
    let old = secret_of(&app, &wh).await;
    let (s, rotated) = app
        .post(&format!("/v1/webhooks/{wh}/secret/rotate"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(secret_of(&app, &wh).await, new);
    accept(&app, received_event("rot-1", "c-rot", DID, "inbound")).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let sig = r.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "two signatures: {sig}");
    assert!(signed_with(&old, &r, &r.body), "the old secret: {sig}");
    assert!(signed_with(&new, &r, &r.body), "the new secret: {sig}");
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let verdicts = python_verdicts(vec![
        verifier_input(&old, &r, &r.body),
        verifier_input(&new, &r, &r.body),
        verifier_input(stranger, &r, &r.body),
    ])
    .await;
    assert_eq!(verdicts, ["ok", "ok", "bad"]);
}

// ---------------------------------------------------------------------------------------------
// 7. SSRF: loopback is refused unless the operator allows it

/// Webhooks at four spellings of loopback: 127.0.0.1, [::1], [::ffff:127.0.0.1], localhost.
async fn loopback_hooks(app: &TestApp, v4: &Receiver, v6: &Receiver) -> Vec<(String, String)> {
    let port = v4.addr.port();
    let urls = [
        v4.url("/v4"),
        v6.url("/v6"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        format!("http://localhost:{port}/name"),
    ];
    let mut out = Vec::new();
    for url in urls {
        let id = hook(app, json!({"trigger": "call_received", "url": url})).await;
        out.push((id, url));
    }
    out
}

#[tokio::test]
async fn loopback_receivers_get_nothing_by_default() {
    let app = spawn_app_with(|s| {
        s.poll_interval = Dur(Duration::from_millis(100));
        s.retry_schedule = "".parse().unwrap();
    })
    .await;
    let v4 = Receiver::start().await;
    let v6 = Receiver::start_on("[::1]:0").await;
    let hooks = loopback_hooks(&app, &v4, &v6).await;
    let b = accept(&app, received_event("ssrf-1", "c-ssrf", DID, "inbound")).await;
    assert_eq!(counts(&b), (1, 0, 4));
    for (wh, url) in &hooks {
        let list = settled(&app, wh, 1).await;
        assert_eq!(list[0]["status"], "failed", "{url}: {list:?}");
        let d = delivery(&app, list[0]["id"].as_str().unwrap()).await;
        let attempts = d["attempt_log"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "{url}: no retries with an empty schedule: {d:#}"
        );
        let a = &attempts[0];
        assert_eq!(a["response"], Value::Null, "{url}: {d:#}");
        assert_eq!(a["error"]["kind"], "blocked", "{url}: {d:#}");
        let msg = a["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("allow_targets"),
            "{url}: the message says how to allow it: {msg}"
        );
    }
    assert!(v4.received().is_empty(), "{:#?}", v4.received());
    assert!(v6.received().is_empty(), "{:#?}", v6.received());
}

#[tokio::test]
async fn loopback_receivers_get_everything_once_allowed() {
    let app = loopback_app().await;
    let v4 = Receiver::start().await;
    let v6 = Receiver::start_on("[::1]:0").await;
    let hooks = loopback_hooks(&app, &v4, &v6).await;
    accept(&app, received_event("ssrf-2", "c-ssrf", DID, "inbound")).await;
    let got4 = v4.wait_for(3, Duration::from_secs(10)).await;
    let mut paths: Vec<&str> = got4.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/mapped", "/name", "/v4"]);
    let got6 = v6.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got6[0].path, "/v6");
    for (wh, url) in &hooks {
        let list = settled(&app, wh, 1).await;
        assert_eq!(list[0]["status"], "succeeded", "{url}: {list:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. The delivery log, the call timeline, test sends and samples

/// A webhook with three deliveries that succeed (c-ok-1..3) and one that fails every attempt
/// (c-fail); answers the webhook id once all four have finished.
async fn mixed_log(app: &TestApp, rx: &Receiver) -> String {
    rx.behave(|r, _| {
        if r.json()["call_id"] == "c-fail" {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    });
    let wh = hook(
        app,
        json!({"trigger": "call_received", "url": rx.url("/log")}),
    )
    .await;
    for call in ["c-ok-1", "c-ok-2", "c-fail", "c-ok-3"] {
        accept(
            app,
            received_event(&format!("ev-{call}"), call, DID, "inbound"),
        )
        .await;
    }
    settled(app, &wh, 4).await;
    wh
}

#[tokio::test]
async fn the_delivery_log_filters_by_status_and_call_and_pages() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = mixed_log(&app, &rx).await;

    let ok = deliveries_of(&app, &wh, "?status=succeeded").await;
    assert_eq!(ids(&ok).len(), 3, "{ok}");
    for d in ok["data"].as_array().unwrap() {
        assert_eq!(d["status"], "succeeded");
        assert_eq!(d["webhook_id"], wh.as_str());
        assert_eq!(d["trigger"], "call_received");
        assert_eq!(d["last_status"], 200);
        assert_eq!(d["attempts"], 1);
    }
    let failed = deliveries_of(&app, &wh, "?status=failed").await;
    assert_eq!(ids(&failed).len(), 1, "{failed}");
    assert_eq!(failed["data"][0]["call_id"], "c-fail");
    assert_eq!(
        failed["data"][0]["attempts"], 3,
        "the schedule allows 3 attempts"
    );
    assert_eq!(failed["data"][0]["last_status"], 500);
    let pending = deliveries_of(&app, &wh, "?status=pending").await;
    assert!(ids(&pending).is_empty(), "{pending}");
    let one = deliveries_of(&app, &wh, "?call_id=c-ok-2").await;
    assert_eq!(ids(&one).len(), 1, "{one}");
    assert_eq!(one["data"][0]["call_id"], "c-ok-2");
    assert_eq!(one["data"][0]["event_id"], "ev-c-ok-2");
    let both = deliveries_of(&app, &wh, "?status=failed&call_id=c-ok-2").await;
    assert!(ids(&both).is_empty(), "filters combine: {both}");
    let none = deliveries_of(&app, &wh, "?call_id=c-unknown").await;
    assert!(ids(&none).is_empty(), "{none}");

    let (s, b) = app
        .get(&format!("/v1/webhooks/{wh}/deliveries?status=bogus"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["status"], "{b}");

    let all = ids(&deliveries_of(&app, &wh, "").await);
    assert_eq!(all.len(), 4);
    let first = deliveries_of(&app, &wh, "?limit=3").await;
    assert_eq!(ids(&first).len(), 3, "{first}");
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = deliveries_of(&app, &wh, &format!("?limit=3&after={next}")).await;
    assert_eq!(ids(&second).len(), 1, "{second}");
    assert_eq!(second["next"], Value::Null, "{second}");
    let paged: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(
        paged, all,
        "pages give every delivery once, in the list's order"
    );
    // Filters hold across pages.
    let first = deliveries_of(&app, &wh, "?status=succeeded&limit=2").await;
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = deliveries_of(
        &app,
        &wh,
        &format!("?status=succeeded&limit=2&after={next}"),
    )
    .await;
    assert_eq!(ids(&first).len() + ids(&second).len(), 3, "{second}");
    assert!(
        second["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded")
    );
}

#[tokio::test]
async fn a_delivery_shows_every_attempt_with_request_and_response() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = mixed_log(&app, &rx).await;
    let failed = deliveries_of(&app, &wh, "?status=failed").await;
    let id = failed["data"][0]["id"].as_str().unwrap().to_owned();
    let secret = secret_of(&app, &wh).await;
    let d = delivery(&app, &id).await;
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["status"], "failed");
    assert_eq!(d["call_id"], "c-fail");
    let attempts = d["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{d:#}");
    let sent: Vec<Received> = rx
        .received()
        .into_iter()
        .filter(|r| r.json()["call_id"] == "c-fail")
        .collect();
    assert_eq!(sent.len(), 3, "the receiver got the three attempts");
    for (i, a) in attempts.iter().enumerate() {
        let req = &a["request"];
        assert_eq!(req["method"], "POST", "{a:#}");
        assert_eq!(req["url"], rx.url("/log"), "{a:#}");
        let headers: Vec<(String, String)> =
            serde_json::from_value(req["headers"].clone()).expect("headers as [name, value] pairs");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("webhook-id"), Some(id.as_str()), "{a:#}");
        assert_eq!(header("content-type"), Some("application/json"), "{a:#}");
        assert!(header("webhook-signature").is_some(), "{a:#}");
        let body: Value =
            serde_json::from_str(req["body"].as_str().expect("the body")).expect("JSON body");
        assert_eq!(body["call_id"], "c-fail");
        assert_eq!(body["event_id"], "ev-c-fail");
        assert_eq!(a["response"]["status"], 500, "{a:#}");
        assert_eq!(a["response"]["body"], "ok", "{a:#}");
        assert!(a["latency_ms"].is_u64(), "{a:#}");
        assert!(a["started_at"].is_string(), "{a:#}");
        // Every attempt carries the same webhook-id, and the receiver saw what the log shows.
        assert_eq!(sent[i].header("webhook-id"), Some(id.as_str()));
        assert_eq!(Some(sent[i].body.as_str()), req["body"].as_str());
        assert!(
            signed_with(&secret, &sent[i], &sent[i].body),
            "attempt {i} is signed: {:?}",
            sent[i].headers
        );
    }
    let ok = deliveries_of(&app, &wh, "?call_id=c-ok-1").await;
    let d = delivery(&app, ok["data"][0]["id"].as_str().unwrap()).await;
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1, "{d:#}");
    assert_eq!(d["attempt_log"][0]["response"]["status"], 200, "{d:#}");
    assert_eq!(d["attempt_log"][0]["error"], Value::Null, "{d:#}");

    let (s, _) = app
        .get("/v1/deliveries/dlv_00000000000000000000000000")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A receiver on loopback that answers 200 with `body`.
async fn answering(body: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let b = body.clone();
        async move { b }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_response_body_is_kept_up_to_16_kib() {
    let app = loopback_app().await;
    let big: String = (0..100 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let addr = answering(big.clone()).await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": format!("http://{addr}/big")}),
    )
    .await;
    accept(&app, received_event("big-1", "c-big", DID, "inbound")).await;
    let list = settled(&app, &wh, 1).await;
    assert_eq!(list[0]["status"], "succeeded", "{list:?}");
    let d = delivery(&app, list[0]["id"].as_str().unwrap()).await;
    let body = d["attempt_log"][0]["response"]["body"]
        .as_str()
        .expect("a response body");
    assert_eq!(body.len(), 16384, "cut at 16 KiB");
    assert!(big.starts_with(body), "the first 16 KiB, as sent");
}

#[tokio::test]
async fn a_call_lists_its_events_in_order_with_their_deliveries() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let on_received = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/r")}),
    )
    .await;
    let on_rg = hook(
        &app,
        json!({"trigger": "answered_on_ring_group", "url": rx.url("/rg")}),
    )
    .await;
    let on_ext = hook(
        &app,
        json!({"trigger": "answered_by_extension", "url": rx.url("/ext")}),
    )
    .await;
    let on_end = hook(
        &app,
        json!({"trigger": "call_hangup", "url": rx.url("/end")}),
    )
    .await;
    let mut answered = event("ring_group");
    answered["call"]["call_id"] = json!("c-timeline");
    answered["id"] = json!("tl-2");
    let mut ended = event("hangup");
    ended["call"]["call_id"] = json!("c-timeline");
    ended["id"] = json!("tl-3");
    accept(&app, received_event("tl-1", "c-timeline", DID, "inbound")).await;
    accept(&app, json!([answered, ended])).await;
    // Another call, which must not show.
    accept(&app, received_event("tl-x", "c-elsewhere", DID, "inbound")).await;
    rx.wait_for(5, Duration::from_secs(10)).await;

    let (s, call) = app.get("/v1/calls/c-timeline").await;
    assert_eq!(s, StatusCode::OK, "{call}");
    assert_eq!(call["call_id"], "c-timeline");
    let events = call["events"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("tl-1", "call.received"),
            ("tl-2", "call.answered"),
            ("tl-3", "call.ended")
        ],
        "{call:#}"
    );
    let hooks_of = |e: &Value| -> Vec<String> {
        let mut v: Vec<String> = e["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(hooks_of(&events[0]), std::slice::from_ref(&on_received));
    let mut answered_hooks = vec![on_rg.clone(), on_ext.clone()];
    answered_hooks.sort();
    assert_eq!(hooks_of(&events[1]), answered_hooks);
    assert_eq!(hooks_of(&events[2]), std::slice::from_ref(&on_end));
    // The deliveries are the ones in each webhook's log.
    for (e, wh) in [(&events[0], &on_received), (&events[2], &on_end)] {
        let log = deliveries_of(&app, wh, "?call_id=c-timeline").await;
        assert_eq!(ids(&log), [e["deliveries"][0]["id"].as_str().unwrap()]);
        assert_eq!(e["deliveries"][0]["event_id"], e["event_id"]);
    }
    assert_eq!(events[1]["event"]["answered_by"]["type"], "ring_group");

    let (s, b) = app.get("/v1/calls/c-nowhere").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test]
async fn a_test_send_goes_out_now_and_shows_in_the_log() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "answered_on_queue", "time_zone": "Asia/Kolkata", "url": rx.url("/t")}),
    )
    .await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["test"], true, "{d:#}");
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1, "{d:#}");
    assert_eq!(d["attempt_log"][0]["response"]["status"], 200, "{d:#}");
    let got = rx.received();
    assert_eq!(got.len(), 1, "sent before the answer: {got:#?}");
    let r = &got[0];
    let body = r.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        spec::params_of("answered_on_queue"),
        "sample data for the trigger"
    );
    assert_eq!(body["trigger"], "answered_on_queue");
    assert_eq!(body["time_zone"], "Asia/Kolkata");
    assert_eq!(r.header("webhook-id"), d["id"].as_str());
    let secret = secret_of(&app, &wh).await;
    assert!(signed_with(&secret, r, &r.body), "test sends are signed");

    let log = deliveries_of(&app, &wh, "").await;
    assert_eq!(ids(&log), [d["id"].as_str().unwrap()], "{log}");
    assert_eq!(log["data"][0]["test"], true, "{log}");
    assert_eq!(log["data"][0]["status"], "succeeded", "{log}");
}

#[tokio::test]
async fn a_failed_test_send_answers_the_status_and_is_not_retried() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let wh = hook(&app, json!({"trigger": "call_missed", "url": rx.url("/t")})).await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "failed", "{d:#}");
    assert_eq!(d["last_status"], 500, "{d:#}");
    assert_eq!(d["attempt_log"][0]["response"]["status"], 500, "{d:#}");
    assert_eq!(d["test"], true);
    assert_eq!(rx.received().len(), 1);
    rx.expect_no_more_than(1, Duration::from_millis(600)).await;
    let log = deliveries_of(&app, &wh, "?status=failed").await;
    assert_eq!(ids(&log), [d["id"].as_str().unwrap()], "{log}");
    assert_eq!(log["data"][0]["test"], true, "{log}");
}

#[tokio::test]
async fn a_trigger_sample_renders_the_get_query_in_the_zone() {
    let app = spawn_app().await;
    for trigger in [
        "answered_on_queue",
        "call_missed_or_answered",
        "dialed_on_extension",
    ] {
        let (s, b) = app
            .get(&format!(
                "/v1/triggers/{trigger}/sample?method=GET&time_zone=Asia/Kolkata"
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let req = &b["request"];
        assert_eq!(req["method"], "GET", "{b:#}");
        assert_eq!(req["body"], Value::Null, "{b:#}");
        let headers: Vec<(String, String)> =
            serde_json::from_value(req["headers"].clone()).unwrap();
        assert!(
            !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type")),
            "no Content-Type on GET: {headers:?}"
        );
        let url = url::Url::parse(req["url"].as_str().unwrap()).expect("a URL");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, spec::params_of(trigger), "{url}");
        let value = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(value("trigger"), trigger);
        assert_eq!(value("time_zone"), "Asia/Kolkata");
        assert!(value("occurred_at").ends_with("+05:30"), "{url}");
        let params: Vec<&str> = b["parameters"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(params, spec::params_of(trigger));
    }
    let (s, b) = app
        .get("/v1/triggers/dialed_on_extension/sample?method=GET&time_zone=Asia/Kolkata")
        .await;
    assert_eq!(s, StatusCode::OK);
    let url = url::Url::parse(b["request"]["url"].as_str().unwrap()).unwrap();
    let ext = url
        .query_pairs()
        .find(|(k, _)| k == "extensions")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(
        !ext.starts_with('[') && !ext.is_empty(),
        "lists are comma-joined in a query: {ext}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Metrics

/// The sum of every sample of `name` (all label sets) in a Prometheus text page.
fn metric_sum(page: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn metrics_page(app: &TestApp) -> String {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_events_and_deliveries() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = hook(
        &app,
        json!({"trigger": "call_received", "url": rx.url("/m")}),
    )
    .await;
    let before = metrics_page(&app).await;
    // The registry is process-wide and other tests run alongside: compare, never equate.
    let accepted_before = metric_sum(&before, "callhook_events_accepted_total").unwrap_or(0.0);
    let delivered_before = metric_sum(&before, "callhook_deliveries_total").unwrap_or(0.0);
    for i in 0..3 {
        accept(
            &app,
            received_event(&format!("m-{i}"), &format!("c-m-{i}"), DID, "inbound"),
        )
        .await;
    }
    settled(&app, &wh, 3).await;
    // The outcome counter is bumped as the attempt is recorded; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = metrics_page(&app).await;
        let delivered = metric_sum(&page, "callhook_deliveries_total").unwrap_or(0.0);
        if delivered >= delivered_before + 3.0 || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in [
        "callhook_events_accepted_total",
        "callhook_deliveries_total",
        "callhook_attempt_duration_seconds",
        "callhook_queue_oldest_due_age_seconds",
    ] {
        assert!(
            page.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name}:\n{page}"
        );
    }
    let accepted = metric_sum(&page, "callhook_events_accepted_total").unwrap();
    assert!(
        accepted >= accepted_before + 3.0,
        "accepted {accepted_before} -> {accepted}"
    );
    let delivered = metric_sum(&page, "callhook_deliveries_total").unwrap();
    assert!(
        delivered >= delivered_before + 3.0,
        "deliveries {delivered_before} -> {delivered}"
    );
    assert!(
        metric_sum(&page, "callhook_attempt_duration_seconds_count").unwrap_or(0.0) >= 3.0,
        "{page}"
    );
}

/// Test sends keep to the webhook's limits: no more in flight than
/// `max_in_flight_per_webhook`, no closer together than its `rate_limit`; beyond, a 429 that
/// names the limit, and nothing is sent.
#[tokio::test]
async fn test_sends_keep_to_the_webhooks_limits() {
    let app = spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
        s.max_in_flight_per_webhook = 1;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let rx = Receiver::start().await;
    // The first request is answered only after a while: the second test send comes meanwhile.
    rx.behave(|_, n| {
        let mut r = Reply::status(200);
        if n == 0 {
            r.delay = Duration::from_secs(3);
        }
        r
    });
    let wh = hook(&app, json!({"url": rx.url("/t")})).await;
    let first = {
        let (app, wh) = (app.clone(), wh.clone());
        tokio::spawn(async move {
            app.post(&format!("/v1/webhooks/{wh}/test"), json!({}))
                .await
        })
    };
    rx.wait_for(1, Duration::from_secs(20)).await;
    let (status, body) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_in_flight_per_webhook"),
        "{body}"
    );
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rx.received().len(), 1);

    // A rate limit of one request per 10 s: the next test send waits its slot.
    let limited = hook(&app, json!({"url": rx.url("/r"), "rate_limit": 0.1})).await;
    let (status, body) = app
        .post(&format!("/v1/webhooks/{limited}/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = app
        .http
        .post(app.url(&format!("/v1/webhooks/{limited}/test")))
        .bearer_auth(&app.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("rate_limit"),
        "{body}"
    );
    assert_eq!(rx.received().len(), 2, "the refused test send sent nothing");
}

/// A receiver on loopback that answers every request with `head` at once, then sends nothing
/// more and keeps the connection open; or, with `trickle`, sends `head` one byte at a time.
async fn stalling_receiver(head: &'static str, trickle: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = sock.read(&mut buf).await;
                if trickle {
                    for b in head.bytes().cycle() {
                        if sock.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } else {
                    let _ = sock.write_all(head.as_bytes()).await;
                    // Held open, silent, until callhook gives up.
                    let _ = sock.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// A 2xx whose body then stalls is a success (the status is the receiver's verdict), and the
/// attempt records that the body was cut; a receiver that trickles its answer forever is
/// bounded by request_timeout and fails with `timeout`.
#[tokio::test]
async fn a_stalled_body_after_a_2xx_is_a_success_noted_cut_and_a_trickle_times_out() {
    let app = spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
        s.request_timeout = Dur(Duration::from_secs(1));
    })
    .await;
    let stalls = stalling_receiver(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nreceived, now thinking",
        false,
    )
    .await;
    let wh = hook(&app, json!({"url": format!("http://{stalls}/hook")})).await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let a = &d["attempt_log"][0];
    assert_eq!(a["response"]["status"], 200, "{d:#}");
    assert_eq!(a["response"]["body"], "received, now thinking", "{d:#}");
    assert_eq!(a["error"]["kind"], "timeout", "{d:#}");
    let msg = a["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("response body was cut off after 22 bytes"),
        "{msg}"
    );

    let trickles = stalling_receiver("HTTP/1.1 200 OK\r\nX-Slow: ", true).await;
    let wh = hook(&app, json!({"url": format!("http://{trickles}/hook")})).await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "failed", "{d:#}");
    let a = &d["attempt_log"][0];
    assert_eq!(a["response"], Value::Null, "{d:#}");
    assert_eq!(a["error"]["kind"], "timeout", "{d:#}");
}
