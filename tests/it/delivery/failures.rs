//! Seeing and fixing failures (SPEC §12): every failed attempt carries its kind, a webhook's
//! health moves with its attempts, the log filters, failures group, and a bulk retry sends
//! each matching delivery once more in its call's order, never a test send.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::*;
use crate::receiver::black_hole;

const CUSTOMER2: &str = "+919800000002";

/// A call.received event for `call_id` from `customer` on `did`.
fn event_from(id: &str, call_id: &str, did: &str, customer: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:01Z",
           "call": {"call_id": call_id, "call_type": "inbound", "did_number": did,
                    "customer_number": customer, "started_at": STARTED}})
}

/// A server on loopback that answers every request `302 Found` to `location`.
async fn redirecting(location: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, location)],
            "moved",
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A loopback port nobody listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Polls the log with `query` until `n` rows are there and `done` holds for each.
async fn log_until(
    app: &TestApp,
    wh: &str,
    query: &str,
    n: usize,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = app.deliveries_of(wh, query).await;
        let data = b["data"].as_array().unwrap().clone();
        if data.len() == n && data.iter().all(&done) {
            return data;
        }
        assert!(Instant::now() < deadline, "{wh}{query}: {b:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhook(app: &TestApp, id: &str) -> Value {
    let (s, b) = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

#[tokio::test]
async fn every_failed_attempt_carries_its_kind() {
    // One attempt each, and a short wait for an answer.
    let app = loopback_app_with(|s| {
        s.retry_schedule = "".parse().unwrap();
        s.request_timeout = Dur(Duration::from_millis(400));
    })
    .await;
    app.add_number(DID).await;
    let rx = Receiver::start().await;
    rx.behave(|r, _| Reply::status(if r.path == "/404" { 404 } else { 500 }));
    let hole = black_hole().await;
    let closed = closed_port().await;
    let moved = redirecting("https://elsewhere.example/hook").await;
    let cases: Vec<(String, &str, Option<u16>, String)> = vec![
        (
            rx.url("/500"),
            "http_status",
            Some(500),
            "answered 500 Internal Server Error".into(),
        ),
        (
            rx.url("/404"),
            "http_status",
            Some(404),
            "answered 404 Not Found".into(),
        ),
        (
            format!("http://{closed}/hook"),
            "connect",
            None,
            format!("connection refused by {closed}"),
        ),
        (
            "http://crm.nothing-here.invalid/hook".into(),
            "dns",
            None,
            "the name crm.nothing-here.invalid does not resolve".into(),
        ),
        (
            "http://10.255.255.1/hook".into(),
            "blocked_target",
            None,
            "10.255.255.1 is".into(),
        ),
        (
            format!("http://{hole}/hook"),
            "timeout",
            None,
            format!("no complete answer from {hole} within 400ms"),
        ),
        (
            format!("http://{moved}/hook"),
            "redirect",
            Some(302),
            "answered 302 Found: redirected to https://elsewhere.example/hook (callhook does not follow redirects)".into(),
        ),
    ];
    let mut hooks = Vec::new();
    for (i, (url, ..)) in cases.iter().enumerate() {
        let w = app
            .create_webhook(json!({"name": format!("case {i}"), "url": url}))
            .await;
        assert_eq!(w["health"]["state"], "idle", "{w}");
        hooks.push(w["id"].as_str().unwrap().to_owned());
    }
    app.accept(received_event("ev-kinds", "c-kinds", DID, "inbound"))
        .await;
    for ((url, kind, status, message), wh) in cases.iter().zip(&hooks) {
        let rows = log_until(&app, wh, "", 1, |d| d["status"] == "failed").await;
        let row = &rows[0];
        assert_eq!(row["last_error_kind"], *kind, "{url}: {row:#}");
        assert_eq!(row["retrying"], false);
        let d = app.delivery(row["id"].as_str().unwrap()).await;
        let error = &d["attempt_log"][0]["error"];
        assert_eq!(error["kind"], *kind, "{url}: {d:#}");
        assert_eq!(error["status"], json!(status), "{url}: {d:#}");
        let said = error["message"].as_str().unwrap();
        assert!(said.starts_with(message.as_str()), "{url}: {said}");
        // The webhook says the same of its latest failure.
        let w = webhook(&app, wh).await;
        let health = &w["health"];
        assert_eq!(health["state"], "failing", "{url}: {w:#}");
        assert_eq!(health["last_error"]["kind"], *kind, "{url}: {w:#}");
        assert_eq!(health["last_error"]["status"], json!(status));
        assert_eq!(health["last_error"]["message"], said);
        assert_eq!(health["failed"], 1, "{w:#}");
        // The log filters by it.
        let by_kind = app.deliveries_of(wh, &format!("?error_kind={kind}")).await;
        assert_eq!(ids(&by_kind).len(), 1, "{url}: {by_kind}");
        let other = if *kind == "dns" { "tls" } else { "dns" };
        let none = app.deliveries_of(wh, &format!("?error_kind={other}")).await;
        assert!(ids(&none).is_empty(), "{url}: {none}");
    }
    // The blocked address is told without the operator's networks being anyone's business
    // but the message's own advice.
    let blocked = app.deliveries_of(&hooks[4], "").await;
    assert!(
        blocked["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("allow_targets"),
        "{blocked}"
    );
}

#[tokio::test]
async fn health_moves_from_idle_to_healthy_to_failing_and_back() {
    let app = loopback_app().await;
    app.add_number(DID).await;
    let rx = Receiver::start().await;
    let answer = Arc::new(AtomicU16::new(200));
    let a = answer.clone();
    rx.behave(move |_, _| Reply::status(a.load(Ordering::SeqCst)));
    let wh = app.hook(json!({"url": rx.url("/crm")})).await;
    let h = webhook(&app, &wh).await["health"].clone();
    assert_eq!(h["state"], "idle", "{h}");
    assert_eq!(h["succeeded"], 0);
    assert_eq!(h["success_rate"], Value::Null);
    assert_eq!(h["p50_ms"], Value::Null);
    assert_eq!(h["last_error"], Value::Null);

    app.accept(received_event("ev-h1", "c-h1", DID, "inbound"))
        .await;
    app.settled(&wh, 1).await;
    let w = webhook(&app, &wh).await;
    let h = &w["health"];
    assert_eq!(h["state"], "healthy", "{w:#}");
    assert_eq!(h["succeeded"], 1);
    assert_eq!(h["failed"], 0);
    assert_eq!(h["success_rate"], 1.0);
    assert!(
        h["p50_ms"].as_u64().is_some() && h["p95_ms"].as_u64().is_some(),
        "{h}"
    );
    assert!(h["last_success_at"].is_string());
    assert_eq!(h["failing_since"], Value::Null);

    // The receiver breaks: three attempts (100ms, 200ms apart), then failed.
    answer.store(500, Ordering::SeqCst);
    app.accept(received_event("ev-h2", "c-h2", DID, "inbound"))
        .await;
    app.settled(&wh, 2).await;
    let w = webhook(&app, &wh).await;
    let h = &w["health"];
    assert_eq!(h["state"], "failing", "{w:#}");
    assert!(h["failing_since"].is_string(), "{h}");
    assert_eq!(h["last_error"]["kind"], "http_status");
    assert_eq!(h["last_error"]["status"], 500);
    assert_eq!(h["succeeded"], 1);
    assert_eq!(h["failed"], 1);
    assert_eq!(h["retrying"], 0);
    assert_eq!(h["success_rate"], 0.25, "1 of 4 attempts: {h}");
    let failing_since = h["failing_since"].clone();
    // The list says so too.
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"][0]["health"]["state"], "failing", "{list}");
    assert_eq!(list["data"][0]["health"]["failing_since"], failing_since);

    // A test send that succeeds changes nothing of it.
    answer.store(200, Ordering::SeqCst);
    let (s, b) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "succeeded", "{b}");
    let h = webhook(&app, &wh).await["health"].clone();
    assert_eq!(h["state"], "failing", "test sends never count: {h}");
    assert_eq!(h["succeeded"], 1, "{h}");

    // Fixed: the next delivery succeeds and the webhook has recovered.
    app.accept(received_event("ev-h3", "c-h3", DID, "inbound"))
        .await;
    app.settled(&wh, 4).await;
    let h = webhook(&app, &wh).await["health"].clone();
    assert_eq!(h["state"], "healthy", "{h}");
    assert_eq!(h["failing_since"], Value::Null);
    assert_eq!(h["succeeded"], 2);
    assert!(
        h["last_failure_at"].is_string(),
        "the last failure is kept: {h}"
    );
    assert_eq!(h["last_error"]["kind"], "http_status");

    // Disabled wins.
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{wh}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["health"]["state"], "disabled", "{b}");
    assert!(b["health"]["disabled_reason"].is_string(), "{b}");
}

/// A webhook whose receiver succeeds for c-ok (from CUSTOMER), fails every attempt for c-fail
/// (500, from CUSTOMER2) and asks c-retry to come back in an hour (503); answers it once all
/// three have had their attempts.
async fn failing_log(app: &TestApp, rx: &Receiver) -> String {
    rx.behave(|r, _| match r.json()["call_id"].as_str() {
        Some("c-fail") => Reply::status(500),
        Some("c-retry") => Reply {
            retry_after: Some("3600".into()),
            ..Reply::status(503)
        },
        _ => Reply::status(200),
    });
    let wh = app.hook(json!({"url": rx.url("/log")})).await;
    app.accept(json!([
        event_from("ev-ok", "c-ok", DID, CUSTOMER),
        event_from("ev-fail", "c-fail", DID, CUSTOMER2),
        event_from("ev-retry", "c-retry", DID2, CUSTOMER2),
    ]))
    .await;
    log_until(app, &wh, "", 3, |d| match d["call_id"].as_str() {
        Some("c-ok") => d["status"] == "succeeded",
        Some("c-fail") => d["status"] == "failed",
        _ => d["retrying"] == true,
    })
    .await;
    wh
}

fn calls(list: &Value) -> Vec<String> {
    let mut c: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["call_id"].as_str().unwrap().to_owned())
        .collect();
    c.sort();
    c
}

#[tokio::test]
async fn the_log_filters_by_status_kind_number_and_time() {
    let app = loopback_app().await;
    app.add_number(DID).await;
    app.add_number(DID2).await;
    let rx = Receiver::start().await;
    let wh = failing_log(&app, &rx).await;

    let q = |query: &'static str| {
        let (app, wh) = (&app, wh.clone());
        async move { calls(&app.deliveries_of(&wh, query).await) }
    };
    assert_eq!(q("?status=retrying").await, ["c-retry"]);
    assert_eq!(q("?status=pending").await, ["c-retry"]);
    assert_eq!(q("?status=failed").await, ["c-fail"]);
    assert_eq!(q("?status=succeeded").await, ["c-ok"]);
    assert_eq!(q("?error_kind=http_status").await, ["c-fail", "c-retry"]);
    assert!(q("?error_kind=timeout").await.is_empty());
    assert_eq!(q("?http_status=503").await, ["c-retry"]);
    assert_eq!(q("?number=%2B919812345678").await, ["c-ok"]);
    assert_eq!(q("?number=%2B919800000002").await, ["c-fail", "c-retry"]);
    assert_eq!(q("?number=%2B918065251399").await, ["c-retry"], "the DID");
    assert_eq!(
        q("?number=%2B918065251305&status=failed").await,
        ["c-fail"],
        "filters combine"
    );
    assert_eq!(
        q("?call_id=c-ok&error_kind=http_status").await,
        Vec::<String>::new()
    );
    assert_eq!(
        q("?since=2020-01-01T00:00:00Z").await,
        ["c-fail", "c-ok", "c-retry"]
    );
    assert!(q("?since=2099-01-01T00:00:00Z").await.is_empty());
    assert!(q("?until=2020-01-01T00:00:00Z").await.is_empty());
    // Filters page like the whole log.
    let first = app
        .deliveries_of(&wh, "?error_kind=http_status&limit=1")
        .await;
    assert_eq!(ids(&first).len(), 1);
    let next = first["next"].as_str().unwrap();
    let second = app
        .deliveries_of(
            &wh,
            &format!("?error_kind=http_status&limit=1&after={next}"),
        )
        .await;
    assert_eq!(ids(&second).len(), 1);
    assert_ne!(ids(&first), ids(&second));
    assert_eq!(second["next"], Value::Null, "{second}");

    // Each row says how it went.
    let rows = app.deliveries_of(&wh, "?status=retrying").await;
    let row = &rows["data"][0];
    assert_eq!(row["retrying"], true);
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["last_status"], 503);
    assert_eq!(row["last_error_kind"], "http_status");
    assert!(row["next_attempt_at"].is_string(), "{row}");

    // Bad filters are named.
    for (query, field) in [
        ("?status=broken", "status"),
        ("?error_kind=blocked", "error_kind"),
        ("?number=12345", "number"),
        ("?http_status=99", "http_status"),
        ("?since=yesterday", "since"),
        ("?until=", "until"),
    ] {
        let (s, b) = app
            .get(&format!("/v1/webhooks/{wh}/deliveries{query}"))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {b}");
        assert_eq!(problem_fields(&b), [field], "{query}: {b}");
    }

    // Failures group by kind, status and message.
    let (s, b) = app.get(&format!("/v1/webhooks/{wh}/failures")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let groups = b["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{b:#}");
    let by_status: HashMap<u64, &Value> = groups
        .iter()
        .map(|g| (g["status"].as_u64().unwrap(), g))
        .collect();
    assert_eq!(
        by_status[&500]["message"],
        "answered 500 Internal Server Error"
    );
    assert_eq!(
        by_status[&503]["message"],
        "answered 503 Service Unavailable"
    );
    for g in groups {
        assert_eq!(g["kind"], "http_status");
        assert_eq!(g["count"], 1);
        assert!(g["first_at"].is_string() && g["last_at"].is_string(), "{g}");
        let example = app
            .delivery(g["example_delivery_id"].as_str().unwrap())
            .await;
        assert_eq!(example["last_status"], g["status"]);
    }
    let (_, later) = app
        .get(&format!(
            "/v1/webhooks/{wh}/failures?since=2099-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(later["groups"], json!([]), "{later}");
    let (s, b) = app
        .get(&format!("/v1/webhooks/{wh}/failures?since=soon"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["since"]);

    // The webhook's health counts the one retrying now.
    let h = webhook(&app, &wh).await["health"].clone();
    assert_eq!(h["retrying"], 1, "{h}");
    assert_eq!(h["failed"], 1, "{h}");
    assert_eq!(h["succeeded"], 1, "{h}");
}

#[tokio::test]
async fn bulk_retry_takes_the_logs_filters_and_refuses_bad_ones() {
    let app = loopback_app().await;
    app.add_number(DID).await;
    app.add_number(DID2).await;
    let rx = Receiver::start().await;
    let wh = failing_log(&app, &rx).await;
    let retry = |body: Value| {
        let (app, wh) = (&app, wh.clone());
        async move {
            app.post(&format!("/v1/webhooks/{wh}/deliveries/retry"), body)
                .await
        }
    };
    for (body, field) in [
        (json!({"status": "succeeded"}), "status"),
        (json!({"error_kind": "nope"}), "error_kind"),
        (json!({"http_status": "500"}), "http_status"),
        (json!({"number": "12"}), "number"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (s, b) = retry(body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(problem_fields(&b), [field], "{body}: {b}");
    }
    // Nothing matches: nothing is retried.
    let (s, b) = retry(json!({"error_kind": "dns"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["retried"], 0);
    // The receiver is fixed; the 503 one is retried now rather than in an hour.
    rx.behave(|_, _| Reply::status(200));
    let before = rx.received().len();
    let (s, b) = retry(json!({"status": "retrying", "http_status": 503})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["retried"], 1, "{b}");
    let got = rx.wait_for(before + 1, Duration::from_secs(10)).await;
    assert_eq!(got[before].json()["call_id"], "c-retry");
    log_until(&app, &wh, "?call_id=c-retry", 1, |d| {
        d["status"] == "succeeded"
    })
    .await;
    // Then every failed one.
    let (s, b) = retry(json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["retried"], 1, "{b}");
    log_until(&app, &wh, "?status=succeeded", 3, |_| true).await;
    let h = webhook(&app, &wh).await["health"].clone();
    assert_eq!(h["state"], "healthy", "{h}");
    assert_eq!(h["retrying"], 0, "{h}");
    // Recorded, with the filter and the count.
    let (_, audit) = app.get("/v1/audit?action=webhook.retry").await;
    let entries = audit["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit:#}");
    let changes = entries[0]["changes"].to_string();
    assert!(changes.contains("retried"), "{changes}");
}

#[tokio::test]
async fn bulk_retry_sends_a_thousand_failed_deliveries_once_more_in_call_order() {
    // One attempt each: every delivery fails at once while the receiver is down. A lane wide
    // enough for every call's head never fills, so the failing endpoint is not held back.
    let app = loopback_app_with(|s| {
        s.retry_schedule = "".parse().unwrap();
        s.max_in_flight_per_webhook = 256;
    })
    .await;
    app.add_number(DID).await;
    let rx = Receiver::start().await;
    let up = Arc::new(AtomicU16::new(500));
    let u = up.clone();
    rx.behave(move |_, _| Reply::status(u.load(Ordering::SeqCst)));
    let wh = app.hook(json!({"url": rx.url("/bulk")})).await;
    // 200 calls of 5 events each, interleaved as a PBX would send them.
    let mut events = Vec::new();
    for step in 0..5 {
        for call in 0..200 {
            events.push(event_from(
                &format!("ev-{call}-{step}"),
                &format!("c-{call}"),
                DID,
                CUSTOMER,
            ));
        }
    }
    app.accept(Value::Array(events)).await;
    rx.wait_for(1000, Duration::from_secs(60)).await;
    let failed = app.settled(&wh, 1000).await;
    assert!(failed.iter().all(|d| d["status"] == "failed"));
    // A test send fails too; it is never retried in bulk, nor replayed.
    let (s, t) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["status"], "failed");
    let test_id = t["id"].as_str().unwrap().to_owned();
    let first_pass = rx.received().len();
    assert_eq!(first_pass, 1001);

    up.store(200, Ordering::SeqCst);
    let (s, b) = app
        .post(&format!("/v1/webhooks/{wh}/deliveries/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["retried"], 1000, "{b}");
    let all = rx.wait_for(2001, Duration::from_secs(120)).await;
    log_until(&app, &wh, "?status=succeeded&limit=1000", 1000, |_| true).await;
    // Each once more, in its call's order.
    let mut per_call: HashMap<String, Vec<String>> = HashMap::new();
    let mut sent: HashMap<String, u32> = HashMap::new();
    for r in &all[first_pass..] {
        let body = r.json();
        per_call
            .entry(body["call_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["event_id"].as_str().unwrap().to_owned());
        *sent
            .entry(r.header("webhook-id").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(sent.len(), 1000);
    assert!(sent.values().all(|n| *n == 1), "each once");
    assert!(!sent.contains_key(&test_id), "never the test send");
    assert_eq!(per_call.len(), 200);
    for (call, order) in &per_call {
        let n = call.trim_start_matches("c-");
        let want: Vec<String> = (0..5).map(|s| format!("ev-{n}-{s}")).collect();
        assert_eq!(order, &want, "{call}");
    }
    // A replay of failed deliveries finds only the test send, and leaves it.
    let (s, b) = app
        .post(
            &format!("/v1/webhooks/{wh}/replay"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["replayed"], 0, "{b}");
    assert_eq!(app.delivery(&test_id).await["status"], "failed");
    rx.expect_no_more_than(2001, Duration::from_millis(300))
        .await;
}
