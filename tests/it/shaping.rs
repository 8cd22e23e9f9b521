//! Shaping the request (SPEC §11), through real HTTP to a real receiver: body rows with
//! templates in JSON, form and GET; type preservation, nesting, `$$`, `${}` next to letters;
//! references in the URL and in header values; every time format in a zone with DST; custom
//! and standard payloads; the 422s of every rule; and the PyPI `standardwebhooks` package
//! verifying custom bodies exactly as sent.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Received, Receiver};
use crate::spec;
use crate::verifier::{python_verdicts, verifier_input};

const DID: &str = "+918065251305";
const CUSTOMER: &str = "+919812345678";

/// A missed call that rang two extensions, with a hangup cause that tries to smuggle a
/// header in.
fn missed(call_id: &str) -> Value {
    json!({"id": format!("ev-{call_id}"), "type": "call.ended", "occurred_at": "2026-11-27T04:01:00Z",
        "call": {"call_id": call_id, "call_type": "inbound", "did_number": DID,
                 "customer_number": CUSTOMER, "started_at": "2026-11-27T04:00:00Z"},
        "ended": {"status": "missed", "ended_at": "2026-11-27T04:01:00Z", "duration": 60,
                  "hangup_cause": "NO_ANSWER\r\nX-Injected: 1", "hangup_by": "system",
                  "missed_extensions": ["101", "102"], "last_stage": "ring_group"}})
}

async fn one(rx: &Receiver) -> Received {
    rx.wait_for(1, Duration::from_secs(10)).await.remove(0)
}

#[tokio::test]
async fn a_custom_json_body_has_only_the_rows_with_their_types_nested() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let id = app.hook(json!({"trigger": "call_missed", "url": rx.url("/crm"), "payload": "custom",
            "body_fields": [
                {"key": "phone", "value": "$customer_number"},
                {"key": "lead.phone", "value": "${customer_number}"},
                {"key": "lead.source", "value": "pbx"},
                {"key": "lead.meta.call", "value": "lead-${call_id}x"},
                {"key": "duration", "value": "$duration"},
                {"key": "rang", "value": "$missed_extensions"},
                {"key": "leg", "value": "$leg_id"},
                {"key": "note", "value": "Missed $customer_number after ${duration}s (cost $$0, rang $missed_extensions)"}
            ]}),
    )
    .await;
    app.accept(missed("c-1")).await;
    let r = one(&rx).await;
    assert_eq!(
        r.json(),
        json!({
            "phone": CUSTOMER,
            "lead": {"phone": CUSTOMER, "source": "pbx", "meta": {"call": "lead-c-1x"}},
            "duration": 60,
            "rang": ["101", "102"],
            "leg": null,
            "note": "Missed +919812345678 after 60s (cost $0, rang 101,102)"
        })
    );
    // The keys arrive in the rows' order; nothing else is sent.
    let keys: Vec<String> = r.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["phone", "lead", "duration", "rang", "leg", "note"]);
    let secret = app.secret_of(&id).await;
    assert_eq!(
        python_verdicts(vec![verifier_input(&secret, &r, &r.body)]).await,
        ["ok"]
    );
}

#[tokio::test]
async fn a_standard_form_body_sends_every_parameter_then_the_rows_keys_as_written() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let id = app
        .hook(json!({"trigger": "call_missed", "url": rx.url("/form"),
        "content_type": "application/x-www-form-urlencoded",
        "body_fields": [
            {"key": "lead.phone", "value": "$customer_number"},
            {"key": "rang", "value": "$missed_extensions"},
            {"key": "dollars", "value": "$$$$"}
        ]}))
        .await;
    app.accept(missed("c-2")).await;
    let r = one(&rx).await;
    let pairs = r.form();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let mut want: Vec<&str> = spec::params_of("call_missed");
    want.extend(["lead.phone", "rang", "dollars"]);
    assert_eq!(keys, want);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("lead.phone"), Some(CUSTOMER));
    assert_eq!(get("rang"), Some("101,102"));
    assert_eq!(get("dollars"), Some("$$"));
    assert_eq!(get("missed_extensions"), Some("101,102"));
    let secret = app.secret_of(&id).await;
    assert_eq!(
        python_verdicts(vec![verifier_input(&secret, &r, &r.body)]).await,
        ["ok"]
    );
}

#[tokio::test]
async fn a_get_fills_the_url_percent_encoded_and_headers_without_control_characters() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    app.hook(
        json!({"trigger": "call_missed", "method": "GET", "payload": "custom",
            "url": rx.url("/calls/$call_id/lookup?phone=$customer_number&src=pbx"),
            "headers": [{"key": "X-Caller", "value": "caller $customer_number"},
                        {"key": "X-Cause", "value": "$hangup_cause"}],
            "body_fields": [{"key": "n", "value": "${customer_number}"}]}),
    )
    .await;
    app.accept(missed("c/3 x")).await;
    let r = one(&rx).await;
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/calls/c%2F3%20x/lookup");
    assert_eq!(
        r.query.as_deref(),
        Some("phone=%2B919812345678&src=pbx&n=%2B919812345678")
    );
    assert_eq!(r.header("x-caller"), Some("caller +919812345678"));
    assert_eq!(r.header("x-cause"), Some("NO_ANSWER  X-Injected: 1"));
    assert_eq!(r.header("x-injected"), None);
    assert!(r.body.is_empty());
}

/// One event on each side of the October switch in London (01:00 UTC on 25 October 2026).
fn received_at(call_id: &str, at: &str) -> Value {
    json!({"id": format!("ev-{call_id}"), "type": "call.received", "occurred_at": at,
        "call": {"call_id": call_id, "call_type": "inbound", "did_number": DID,
                 "customer_number": CUSTOMER, "started_at": at}})
}

#[tokio::test]
async fn each_time_format_applies_to_parameters_and_templates_across_dst() {
    let app = loopback_app().await;
    let cases = [
        (
            "rfc3339",
            json!("2026-10-25T01:30:00+01:00"),
            json!("2026-10-25T01:30:00+00:00"),
        ),
        (
            "local",
            json!("2026-10-25 01:30:00"),
            json!("2026-10-25 01:30:00"),
        ),
        ("unix", json!(1792888200), json!(1792891800)),
    ];
    for (format, before, after) in cases {
        let rx = Receiver::start().await;
        app.hook(
            json!({"trigger": "call_received", "url": rx.url("/t"), "time_zone": "Europe/London",
                "time_format": format,
                "body_fields": [{"key": "at", "value": "$occurred_at"},
                                {"key": "said", "value": "at $start_stamp"}]}),
        )
        .await;
        app.accept(json!([
            received_at(&format!("{format}-a"), "2026-10-25T00:30:00Z"),
            received_at(&format!("{format}-b"), "2026-10-25T01:30:00Z")
        ]))
        .await;
        let got = rx.wait_for(2, Duration::from_secs(10)).await;
        let by_call = |c: &str| {
            got.iter()
                .map(Received::json)
                .find(|j| j["call_id"] == c)
                .unwrap()
        };
        for (call, want) in [("a", &before), ("b", &after)] {
            let j = by_call(&format!("{format}-{call}"));
            assert_eq!(&j["occurred_at"], want, "{format} {call}: {j}");
            assert_eq!(&j["start_stamp"], want, "{format} {call}");
            assert_eq!(&j["at"], want, "{format} {call}");
            let said = match want {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(j["said"], format!("at {said}"), "{format} {call}");
        }
        // Sending to one webhook at a time keeps the receivers apart.
        let (s, b) = app.get("/v1/webhooks").await;
        assert_eq!(s, StatusCode::OK);
        for w in b["data"].as_array().unwrap() {
            let path = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
            app.call(reqwest::Method::DELETE, &path, None).await;
        }
    }
}

fn problems(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_rule_is_a_422_naming_its_field_all_at_once() {
    let app = spawn_app().await;
    let mut rows: Vec<Value> = vec![
        json!({"key": "phone", "value": "$customer_nmber"}),
        json!({"key": "phone", "value": "x"}),
        json!({"key": "lead", "value": "x"}),
        json!({"key": "lead.source", "value": "x"}),
        json!({"key": "", "value": "x"}),
        json!({"key": "k".repeat(101), "value": "x"}),
        json!({"key": "long", "value": "v".repeat(2001)}),
        json!({"key": "lone", "value": "5$"}),
        json!({"key": "open", "value": "${call_id"}),
    ];
    let (s, b) = app
        .post(
            "/v1/webhooks",
            json!({"name": "n", "trigger": "call_missed", "url": "https://crm.example.com/$nope",
                "headers": [{"key": "X-A", "value": "$digit"}], "body_fields": rows.clone()}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let p = problems(&b);
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "url",
            "headers[0].value",
            "body_fields[0].value",
            "body_fields[1].key",
            "body_fields[3].key",
            "body_fields[4].key",
            "body_fields[5].key",
            "body_fields[6].value",
            "body_fields[7].value",
            "body_fields[8].value"
        ],
        "{b}"
    );
    // An unknown reference lists what the trigger has.
    let listed = &p[2].1;
    assert!(
        listed.contains("$customer_nmber is not a parameter of call_missed"),
        "{listed}"
    );
    for name in spec::params_of("call_missed") {
        assert!(listed.contains(name), "{name} missing from: {listed}");
    }
    assert!(p[1].1.contains("$digit"), "{:?}", p[1]);
    // A reference may not decide the host.
    let (s, b) = app
        .post(
            "/v1/webhooks",
            json!({"name": "n", "trigger": "call_missed", "url": "https://$did_number.example.com/x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&b), ["url"]);
    // At most 50 rows.
    rows = (0..51)
        .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
        .collect();
    let (s, b) = app
        .post(
            "/v1/webhooks",
            json!({"name": "n", "trigger": "call_missed", "url": "https://crm.example.com/",
                "body_fields": rows}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&b), ["body_fields"]);
}

#[tokio::test]
async fn changing_the_trigger_checks_the_references_again() {
    let app = spawn_app().await;
    let w = app
        .create_webhook(
            json!({"trigger": "call_missed", "url": "https://crm.example.com/$call_id",
            "body_fields": [{"key": "who", "value": "$customer_number"},
                            {"key": "rang", "value": "$missed_extensions"}]}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
    let (s, b) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"trigger": "dtmf_option"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let p = problems(&b);
    assert_eq!(p.len(), 1, "{b}");
    assert_eq!(p[0].0, "body_fields[1].value");
    assert!(
        p[0].1
            .starts_with("$missed_extensions is not a parameter of dtmf_option"),
        "{}",
        p[0].1
    );
    // Nothing changed; a trigger with every referenced parameter is fine.
    let (_, now) = app.get(&path).await;
    assert_eq!(now["trigger"], "call_missed");
    let (s, b) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"trigger": "call_missed_or_answered"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["url"], "https://crm.example.com/$call_id");
    assert_eq!(
        b["body_fields"][1],
        json!({"key": "rang", "value": "$missed_extensions"})
    );
    assert_eq!(b["payload"], "standard");
    assert_eq!(b["time_format"], "rfc3339");
}

#[tokio::test]
async fn the_test_send_sample_and_delivery_render_alike_and_sign_what_is_sent() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let id = app
        .hook(
            json!({"trigger": "call_missed", "url": rx.url("/s?from=$customer_number"),
            "payload": "custom", "content_type": "application/x-www-form-urlencoded",
            "body_fields": [{"key": "phone", "value": "$customer_number"},
                            {"key": "lead.call", "value": "c-${call_id}"}]}),
        )
        .await;
    let (s, b) = app
        .post(&format!("/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let attempt = &b["attempt_log"][0]["request"];
    let r = one(&rx).await;
    // The attempt records exactly what the receiver got.
    assert_eq!(attempt["body"].as_str(), Some(r.body.as_str()));
    assert!(r.body.starts_with("phone=%2B"), "{}", r.body);
    assert!(r.body.contains("&lead.call=c-test_"), "{}", r.body);
    let query = r.query.clone().unwrap_or_default();
    assert!(query.starts_with("from=%2B"), "{query}");
    assert_eq!(
        attempt["url"].as_str(),
        Some(rx.url(&format!("/s?{query}")).as_str())
    );
    let secret = app.secret_of(&id).await;
    assert_eq!(
        python_verdicts(vec![verifier_input(&secret, &r, &r.body)]).await,
        ["ok"]
    );
}

#[tokio::test]
async fn a_custom_get_without_rows_sends_only_its_own_query() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    app.hook(
        json!({"trigger": "call_received", "method": "GET", "payload": "custom",
            "url": rx.url("/lookup?phone=$customer_number&line=$did_number")}),
    )
    .await;
    app.accept(received_at("c-4", "2026-11-27T04:00:00Z")).await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/lookup");
    assert_eq!(
        r.query.as_deref(),
        Some("phone=%2B919812345678&line=%2B918065251305")
    );
}
