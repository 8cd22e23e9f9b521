//! SPEC §5: the names, order and values of every trigger's parameters, in JSON, form and GET.

use super::*;

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
        app.hook(
            json!({"trigger": trigger, "method": method, "content_type": content_type,
                   "time_zone": "Asia/Kolkata",
                   "url": rx.url(&format!("/{prefix}/{trigger}{query}"))}),
        )
        .await;
    }
    let cases = cases(trigger);
    for c in &cases {
        let b = app.accept(event(c.event)).await;
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
