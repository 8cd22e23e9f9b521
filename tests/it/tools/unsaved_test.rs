//! `POST /v1/webhooks/test`: a webhook's body, unsaved, sent the trigger's sample once; the
//! answer is the attempt, and nothing is stored.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::row_counts;
use crate::helpers::{loopback_app, loopback_app_with, problem_fields, spawn_app};
use crate::receiver::{Receiver, Reply};
use crate::spec;
use crate::verifier::signed_with;

fn body(url: &str) -> Value {
    json!({"name": "CRM", "trigger": "call_missed", "url": url, "time_zone": "Asia/Kolkata",
           "headers": [{"key": "X-Api-Key", "value": "k-123"}]})
}

#[tokio::test]
async fn an_unsaved_webhook_gets_its_signed_sample_and_nothing_is_stored() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let before = row_counts(&app.database_url).await;
    let (s, d) = app.post("/v1/webhooks/test", body(&rx.url("/t"))).await;
    assert_eq!(s, StatusCode::OK, "{d:#}");
    assert_eq!(d["succeeded"], true, "{d:#}");
    assert_eq!(d["status"], 200, "{d:#}");
    assert_eq!(d["response"]["status"], 200, "{d:#}");
    assert_eq!(d["response"]["body"], "ok", "{d:#}");
    assert!(d["latency_ms"].is_u64(), "{d:#}");
    assert_eq!(d["error"], Value::Null, "{d:#}");
    assert_eq!(d["request"]["method"], "POST", "{d:#}");

    let got = rx.received();
    assert_eq!(got.len(), 1, "sent once, before the answer: {got:#?}");
    let r = &got[0];
    let sent = r.json();
    let keys: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, spec::params_of("call_missed"), "the trigger's sample");
    assert_eq!(sent["time_zone"], "Asia/Kolkata");
    assert!(
        sent["start_stamp"].as_str().unwrap().ends_with("+05:30"),
        "{sent}"
    );
    assert_eq!(r.header("x-api-key"), Some("k-123"));
    assert_eq!(d["request"]["body"].as_str(), Some(r.body.as_str()));
    let secret = d["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{d:#}");
    assert!(
        signed_with(secret, r, &r.body),
        "signed with the secret answered"
    );

    // A second test signs with another throwaway secret.
    let (_, d2) = app.post("/v1/webhooks/test", body(&rx.url("/t"))).await;
    assert_ne!(d2["secret"], d["secret"]);
    assert_eq!(rx.received().len(), 2);

    assert_eq!(
        row_counts(&app.database_url).await,
        before,
        "no webhook, event, delivery, attempt or audit row"
    );
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]), "{list}");
}

#[tokio::test]
async fn failed_tests_say_how_and_store_nothing() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let before = row_counts(&app.database_url).await;
    let (s, d) = app.post("/v1/webhooks/test", body(&rx.url("/t"))).await;
    assert_eq!(s, StatusCode::OK, "{d:#}");
    assert_eq!(d["succeeded"], false, "{d:#}");
    assert_eq!(d["status"], 500, "{d:#}");
    assert_eq!(d["response"]["status"], 500, "{d:#}");
    rx.expect_no_more_than(1, Duration::from_millis(400)).await;

    // Nothing listens on a port just freed: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (s, d) = app
        .post(
            "/v1/webhooks/test",
            body(&format!("http://127.0.0.1:{port}/t")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d:#}");
    assert_eq!(d["succeeded"], false, "{d:#}");
    assert_eq!(d["status"], Value::Null, "{d:#}");
    assert_eq!(d["response"], Value::Null, "{d:#}");
    assert_eq!(d["error"]["kind"], "connect", "{d:#}");
    assert!(!d["error"]["message"].as_str().unwrap().is_empty(), "{d:#}");
    assert_eq!(row_counts(&app.database_url).await, before);
}

#[tokio::test]
async fn unsaved_tests_keep_to_the_target_policy() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let (s, d) = app.post("/v1/webhooks/test", body(&rx.url("/t"))).await;
    assert_eq!(s, StatusCode::OK, "{d:#}");
    assert_eq!(d["succeeded"], false, "{d:#}");
    let kind = d["error"]["kind"].as_str().unwrap();
    assert!(kind.starts_with("blocked"), "{d:#}");
    assert!(rx.received().is_empty(), "loopback is not reached");
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_every_field() {
    let app = loopback_app().await;
    let before = row_counts(&app.database_url).await;
    let (s, b) = app
        .post(
            "/v1/webhooks/test",
            json!({"name": "", "trigger": "nope", "url": "ftp://x", "numbers": ["+918065259999"],
                   "body_fields": [{"key": "a", "value": "$nope"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b:#}");
    let fields = problem_fields(&b);
    for f in ["name", "trigger", "url", "numbers[0]"] {
        assert!(fields.iter().any(|x| x == f), "{f} named: {fields:?}");
    }
    let (s, b) = app
        .post(
            "/v1/webhooks/test",
            json!({"name": "x", "trigger": "call_missed", "url": "https://crm.example.com/",
            "secret": "whsec_x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b:#}");
    assert_eq!(problem_fields(&b), ["secret"], "{b:#}");
    assert_eq!(row_counts(&app.database_url).await, before);
}

#[tokio::test]
async fn viewers_may_not_send_tests() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let (s, k) = app
        .post("/v1/api-keys", json!({"name": "support", "role": "viewer"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let (s, b) = app
        .call_as(
            k["key"].as_str(),
            Method::POST,
            "/v1/webhooks/test",
            Some(body(&rx.url("/t"))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b:#}");
    assert!(rx.received().is_empty());
}

#[tokio::test]
async fn unsaved_tests_of_an_account_keep_to_the_test_send_limits() {
    let app = loopback_app_with(|s| s.max_in_flight_per_webhook = 1).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply {
        delay: Duration::from_millis(600),
        ..Reply::status(200)
    });
    let url = rx.url("/slow");
    let first = {
        let app = &app;
        let url = url.clone();
        async move { app.post("/v1/webhooks/test", body(&url)).await }
    };
    let second = async {
        rx.wait_for(1, Duration::from_secs(5)).await;
        app.post("/v1/webhooks/test", body(&url)).await
    };
    let ((s1, d1), (s2, d2)) = tokio::join!(first, second);
    assert_eq!(s1, StatusCode::OK, "{d1:#}");
    assert_eq!(s2, StatusCode::TOO_MANY_REQUESTS, "{d2:#}");
    assert_eq!(rx.received().len(), 1);
}
