//! Alerts (SPEC §12): the account's alert settings by role, and alerts that arrive signed at
//! a real receiver, once per transition: failing (at once with `0s`, and after `alert_after`),
//! recovered, disabled (410 Gone, auto-disable), `delivery.failed` rate-limited with its
//! count; an alert receiver that is down gets the alert later; test sends never alert; a
//! `kill -9` and a second node neither repeat nor lose a transition.

use std::time::{Duration, Instant};

use callhook::config::Dur;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Receiver, Reply};
use crate::verifier::{python_verdicts, signed_with, verifier_input};

const DID: &str = "+918065251305";

fn received(id: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
           "call": {"call_id": id, "call_type": "inbound", "did_number": DID}})
}

/// A loopback app retrying on `schedule`, with `tweak` applied.
async fn app_with(schedule: &str, tweak: impl FnOnce(&mut callhook::config::Settings)) -> TestApp {
    let schedule = schedule.parse().expect("a retry schedule");
    loopback_app_with(move |s| {
        s.retry_schedule = schedule;
        s.request_timeout = Dur(Duration::from_secs(2));
        tweak(s);
    })
    .await
}

/// Sets the account's alert URL and `alert_after`; answers the alert secret.
async fn alerts_to(app: &TestApp, url: &str, after: &str) -> String {
    let (s, b) = app
        .call(
            Method::PATCH,
            "/v1/account",
            Some(json!({"alert_url": url, "alert_after": after})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["alert_url"], url);
    b["alert_secret"]
        .as_str()
        .expect("an admin sees the secret")
        .to_owned()
}

/// The alerts `rx` got of `kind`.
fn of_kind(rx: &Receiver, kind: &str) -> Vec<Value> {
    rx.received()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == kind)
        .collect()
}

/// Waits until `rx` got `n` alerts of `kind`.
async fn wait_kind(rx: &Receiver, kind: &str, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = of_kind(rx, kind);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{n} {kind} alerts never came; got {:?}",
            rx.received()
                .iter()
                .map(|r| r.body.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_account_shows_alert_settings_and_only_admins_change_them() {
    let app = spawn_app().await;
    let (s, b) = app.get("/v1/account").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["id"], app.account_id.as_str());
    assert_eq!(b["alert_url"], Value::Null);
    assert_eq!(b["alert_after"], "10m");
    let secret = b["alert_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");

    // Bad fields are named.
    for (body, field) in [
        (json!({"alert_after": "10"}), "alert_after"),
        (json!({"alert_after": "8d"}), "alert_after"),
        (json!({"alert_after": 600}), "alert_after"),
        (json!({"alert_url": "ftp://ops.example.com/"}), "alert_url"),
        (
            json!({"alert_url": "https://user:pw@ops.example.com/"}),
            "alert_url",
        ),
        (json!({"alert_secret": "whsec_AAAA"}), "alert_secret"),
    ] {
        let (s, p) = app
            .call(Method::PATCH, "/v1/account", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        assert_eq!(problem_fields(&p), [field], "{body}: {p}");
    }
    let (s, b) = app
        .call(
            Method::PATCH,
            "/v1/account",
            Some(json!({"alert_url": "https://ops.example.com/alerts", "alert_after": "0s"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["alert_after"], "0s");
    assert_eq!(b["alert_secret"], secret.as_str(), "the secret stays");
    // A field left out stays; null turns alerts off.
    let (_, b) = app
        .call(
            Method::PATCH,
            "/v1/account",
            Some(json!({"alert_after": "90s"})),
        )
        .await;
    assert_eq!(
        (b["alert_url"].as_str(), b["alert_after"].as_str()),
        (Some("https://ops.example.com/alerts"), Some("90s"))
    );

    // A viewer reads the settings without the secret, and changes nothing.
    let (s, k) = app
        .post("/v1/api-keys", json!({"name": "ro", "role": "viewer"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let viewer = k["key"].as_str().unwrap();
    let (s, b) = app
        .call_as(Some(viewer), Method::GET, "/v1/account", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["alert_after"], "90s");
    assert!(
        b.get("alert_secret").is_none(),
        "a viewer sees no secret: {b}"
    );
    assert!(!b.to_string().contains(&secret));
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/account",
            Some(json!({"alert_url": null})),
        ),
        (Method::POST, "/v1/account/alert-secret/rotate", None),
    ] {
        let (s, p) = app.call_as(Some(viewer), method, path, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {p}");
    }

    // Rotation: a new secret.
    let (s, b) = app.post("/v1/account/alert-secret/rotate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(b["alert_secret"], secret.as_str());

    // The audit log has the changes, and never the secret.
    let (_, audit) = app.get("/v1/audit").await;
    let text = audit.to_string();
    assert!(!text.contains(&secret), "{text}");
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "account.alerts_update",
        "account.alert_secret_rotate",
        "account.alert_secret_reveal",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let update = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "account.alerts_update")
        .unwrap();
    assert_eq!(
        update["changes"],
        json!([
            {"field": "alert_url", "before": null, "after": "https://ops.example.com/alerts"},
            {"field": "alert_after", "before": "10m", "after": "0s"}
        ])
    );
}

#[tokio::test]
async fn failing_and_recovered_arrive_signed_once_each() {
    let app = app_with("100ms", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let alerts = Receiver::start().await;
    let secret = alerts_to(&app, &alerts.url("/alerts"), "0s").await;
    let w = app
        .create_webhook(json!({"name": "CRM", "url": rx.url("/h")}))
        .await;
    let id = w["id"].as_str().unwrap();
    for i in 0..3 {
        app.accept(received(&format!("e{i}"))).await;
    }
    let failing = wait_kind(&alerts, "webhook.failing", 1, Duration::from_secs(10)).await;
    let f = &failing[0];
    assert_eq!(f["account_id"], app.account_id.as_str());
    assert_eq!(
        f["webhook"],
        json!({"id": id, "name": "CRM", "url": rx.url("/h")})
    );
    assert_eq!(f["alert_after"], "0s");
    assert_eq!(f["last_error"]["status"], 500);
    assert!(f["failing_since"].is_string() && f["at"].is_string(), "{f}");
    // Every attempt of every delivery fails; still one failing alert.
    let _ = app.settled(id, 3).await;
    // Recovered once the receiver answers again.
    rx.behave(|_, _| Reply::status(200));
    app.accept(received("e-ok")).await;
    let recovered = wait_kind(&alerts, "webhook.recovered", 1, Duration::from_secs(10)).await;
    assert_eq!(recovered[0]["failing_since"], f["failing_since"]);
    app.accept(received("e-ok2")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = alerts.received();
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .filter(|k| k.starts_with("webhook."))
        .collect();
    assert_eq!(kinds, ["webhook.failing", "webhook.recovered"]);

    // Signed with the alert secret: the spec's HMAC and the PyPI package agree.
    let mut items = Vec::new();
    for r in &got {
        assert!(signed_with(&secret, r, &r.body), "{:?}", r.headers);
        assert_eq!(r.header("content-type"), Some("application/json"));
        items.push(verifier_input(&secret, r, &r.body));
    }
    let n = items.len();
    assert_eq!(python_verdicts(items).await, vec!["ok"; n]);

    // The alert log lists them; the account's own lists never show them.
    let (s, log) = app.get("/v1/account/alerts").await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let rows = log["data"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["type"] == "webhook.failing"
        && r["status"] == "succeeded"
        && r["call_id"] == id));
    let one = rows[0]["id"].as_str().unwrap();
    let (s, d) = app.get(&format!("/v1/account/alerts/{one}")).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["attempt_log"][0]["response"]["status"], 200);
    let (s, _) = app.get(&format!("/v1/deliveries/{one}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "an alert is not a delivery of a webhook"
    );
    let (_, hooks) = app.get("/v1/webhooks").await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1, "{hooks}");
    let (s, _) = app.get(&format!("/v1/calls/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failing_waits_for_alert_after_and_test_sends_never_alert() {
    // One attempt per delivery: nothing happens after the first failure but time passing.
    let app = app_with("", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(503));
    let alerts = Receiver::start().await;
    alerts_to(&app, &alerts.url("/alerts"), "2s").await;
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    let id = w["id"].as_str().unwrap();
    // A failing test send neither starts a run nor alerts.
    let (s, b) = app
        .post(&format!("/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "failed");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(alerts.received().is_empty(), "a test send alerted");

    app.accept(received("e1")).await;
    let first = rx.wait_for(2, Duration::from_secs(5)).await[1].at;
    // delivery.failed comes at once; webhook.failing only once the run is 2 s old.
    wait_kind(&alerts, "delivery.failed", 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        of_kind(&alerts, "webhook.failing").is_empty(),
        "alerted before alert_after"
    );
    let got = wait_kind(&alerts, "webhook.failing", 1, Duration::from_secs(5)).await;
    let at = alerts
        .received()
        .into_iter()
        .find(|r| r.json()["type"] == "webhook.failing")
        .unwrap()
        .at;
    assert!(
        at - first >= Duration::from_millis(1900),
        "{:?}",
        at - first
    );
    assert_eq!(got[0]["alert_after"], "2s");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(of_kind(&alerts, "webhook.failing").len(), 1, "once per run");
}

#[tokio::test]
async fn gone_and_auto_disable_alert_disabled_with_the_reason() {
    let app = app_with("", |s| s.disable_after = Dur(Duration::from_millis(300))).await;
    let alerts = Receiver::start().await;
    alerts_to(&app, &alerts.url("/alerts"), "1h").await;
    let gone = Receiver::start().await;
    gone.behave(|_, _| Reply::status(410));
    let g = app
        .create_webhook(json!({"name": "gone", "url": gone.url("/h")}))
        .await;
    app.accept(received("g1")).await;
    let d = wait_kind(&alerts, "webhook.disabled", 1, Duration::from_secs(5)).await;
    assert_eq!(d[0]["webhook"]["id"], g["id"]);
    assert!(d[0]["reason"].as_str().unwrap().contains("410"), "{}", d[0]);

    let down = Receiver::start().await;
    down.behave(|_, _| Reply::status(500));
    let w = app
        .create_webhook(json!({"name": "down", "url": down.url("/h")}))
        .await;
    app.accept(received("d1")).await;
    down.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.accept(received("d2")).await;
    let d = wait_kind(&alerts, "webhook.disabled", 2, Duration::from_secs(5)).await;
    let auto = d.iter().find(|a| a["webhook"]["id"] == w["id"]).unwrap();
    assert!(
        auto["reason"].as_str().unwrap().contains("failed since"),
        "{auto}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_kind(&alerts, "webhook.disabled").len(), 2, "once each");
}

#[tokio::test]
async fn delivery_failed_is_rate_limited_and_the_next_carries_the_count() {
    let app = app_with("", |s| s.alert_failed_every = Dur(Duration::from_secs(4))).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let alerts = Receiver::start().await;
    alerts_to(&app, &alerts.url("/alerts"), "1h").await;
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    let id = w["id"].as_str().unwrap();
    app.accept(received("f0")).await;
    let first = wait_kind(&alerts, "delivery.failed", 1, Duration::from_secs(5)).await;
    let first = first[0].clone();
    assert_eq!(first["failed_count"], 1);
    assert_eq!(first["counted_since"], Value::Null);
    assert_eq!(first["delivery"]["call_id"], "f0");
    assert_eq!(first["delivery"]["last_status"], 500);
    let sent_at = Instant::now();
    // Four more fail within the window: no alert for them yet.
    app.accept(json!(
        (1..=4)
            .map(|i| received(&format!("f{i}")))
            .collect::<Vec<_>>()
    ))
    .await;
    app.settled(id, 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_kind(&alerts, "delivery.failed").len(), 1, "rate-limited");
    // Once the window has passed, the next one carries the count.
    let got = wait_kind(&alerts, "delivery.failed", 2, Duration::from_secs(5)).await;
    assert!(sent_at.elapsed() >= Duration::from_secs(3));
    assert_eq!(got[1]["failed_count"], 4, "{}", got[1]);
    assert_eq!(got[1]["counted_since"], first["at"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        of_kind(&alerts, "delivery.failed").len(),
        2,
        "nothing more to count"
    );
}

#[tokio::test]
async fn an_alert_receiver_that_is_down_gets_the_alert_later() {
    let app = app_with("100ms,100ms,100ms", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let alerts = Receiver::start().await;
    alerts.behave(|_, n| Reply::status(if n < 2 { 503 } else { 200 }));
    alerts_to(&app, &alerts.url("/alerts"), "0s").await;
    app.create_webhook(json!({"url": rx.url("/h")})).await;
    app.accept(received("e1")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let (_, log) = app.get("/v1/account/alerts").await;
        let row = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "webhook.failing")
            .cloned();
        if let Some(r) = row.filter(|r| r["status"] == "succeeded") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the alert never got through: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["attempts"], 3, "{row}");
    let got = alerts.received();
    let ids: Vec<&str> = got
        .iter()
        .filter(|r| r.json()["type"] == "webhook.failing")
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "three attempts of one alert");
    assert!(ids.iter().all(|i| *i == ids[0]), "same webhook-id: {ids:?}");
}

/// The distinct alerts (by `webhook-id`: a retried alert is one alert) `rx` got of `kind`.
fn distinct(rx: &Receiver, kind: &str) -> usize {
    let mut ids: Vec<String> = rx
        .received()
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

#[tokio::test]
async fn kill_9_and_a_second_node_neither_repeat_nor_lose_a_transition() {
    use crate::nodes::{Nodes, account_with_webhook, free_port, start_node, wait_healthy};
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let alerts = Receiver::start().await;
    // Two nodes sweep at once on PostgreSQL; SQLite is one node's store.
    let database = test_database_url().await;
    let ports: Vec<u16> = if database.is_some() {
        vec![free_port(), free_port()]
    } else {
        vec![free_port()]
    };
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut nodes = Nodes(
        ports
            .iter()
            .map(|p| start_node(dir.path(), *p, database.as_deref()))
            .collect(),
    );
    for b in &bases {
        wait_healthy(&http, b).await;
    }
    let key = account_with_webhook(&http, &bases[0], &bases[0], &rx.url("/h")).await;
    let patch = http
        .patch(format!("{}/v1/account", bases[0]))
        .bearer_auth(&key)
        .json(&json!({"alert_url": alerts.url("/alerts"), "alert_after": "1s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::OK);
    let post = |id: &'static str| {
        let (http, base, key) = (http.clone(), bases[0].clone(), key.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&key)
                .json(&received(id))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
        }
    };
    post("k1").await;
    rx.wait_for(1, Duration::from_secs(5)).await;
    // Killed mid-run, before the run is alert_after old: the restarted node alerts it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = nodes.0[0].kill();
    let _ = nodes.0[0].wait();
    nodes.0[0] = start_node(dir.path(), ports[0], database.as_deref());
    wait_healthy(&http, &bases[0]).await;
    wait_kind(&alerts, "webhook.failing", 1, Duration::from_secs(10)).await;
    rx.behave(|_, _| Reply::status(200));
    post("k2").await;
    wait_kind(&alerts, "webhook.recovered", 1, Duration::from_secs(10)).await;
    // Killed again right after: the restart neither sends a transition again nor misses one.
    let _ = nodes.0[0].kill();
    let _ = nodes.0[0].wait();
    nodes.0[0] = start_node(dir.path(), ports[0], database.as_deref());
    wait_healthy(&http, &bases[0]).await;
    post("k3").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(distinct(&alerts, "webhook.failing"), 1);
    assert_eq!(distinct(&alerts, "webhook.recovered"), 1);
    drop(nodes);
}
