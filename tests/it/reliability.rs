//! Delivery guarantees (issue 4): retries on schedule, Retry-After, 410 Gone, per-call order
//! under failures, isolation from a black-holed endpoint, resend, replay, auto-disable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callhook::config::Dur;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Receiver, Reply, black_hole};

const DID: &str = "+918065251305";

/// A [`loopback_app`] that retries on `schedule` and gives up on a request sooner.
async fn app_with(schedule: &str, tweak: impl FnOnce(&mut callhook::config::Settings)) -> TestApp {
    let schedule = schedule.parse().expect("a valid retry schedule");
    loopback_app_with(move |s| {
        s.retry_schedule = schedule;
        s.request_timeout = Dur(Duration::from_secs(2));
        s.connect_timeout = Dur(Duration::from_secs(1));
        tweak(s);
    })
    .await
}

fn received(id: &str, call: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
           "call": {"call_id": call, "call_type": "inbound", "did_number": DID}})
}

/// Five events of one call that one webhook gets: the caller presses five IVR options.
/// (Per-call order is per webhook, so the events must all go to the same one.)
fn call_events(call: &str) -> Vec<Value> {
    let c = json!({"call_id": call, "call_type": "inbound", "did_number": DID});
    (0..5)
        .map(|k| {
            json!({"id": format!("{call}-{k}"), "type": "call.dtmf",
                   "occurred_at": format!("2026-11-27T04:00:0{k}Z"), "call": c,
                   "dtmf": {"digit": k.to_string()}})
        })
        .collect()
}

/// The one webhook that gets every event of [`call_events`].
async fn hooks_for_call_flow(app: &TestApp, url: &str) {
    app.create_webhook(json!({"trigger": "dtmf_option", "url": url}))
        .await;
}

async fn only_delivery(app: &TestApp, webhook_id: &str) -> Value {
    let b = app.deliveries_of(webhook_id, "").await;
    let id = b["data"][0]["id"].as_str().expect("a delivery").to_owned();
    app.delivery(&id).await
}

fn timestamp(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

/// Polls the webhook's only delivery until `ok` holds for it.
async fn wait_until(
    app: &TestApp,
    webhook_id: &str,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let d = only_delivery(app, webhook_id).await;
        if ok(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "delivery never {what}: {d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a delivery until its status is `want`.
async fn wait_status(app: &TestApp, webhook_id: &str, want: &str, timeout: Duration) -> Value {
    let what = format!("became {want}");
    wait_until(app, webhook_id, &what, timeout, |d| d["status"] == want).await
}

#[tokio::test]
async fn failed_attempts_follow_the_schedule_then_fail() {
    let app = app_with("100ms,200ms,300ms", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    app.accept(received("e1", "c1")).await;
    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    let gaps: Vec<Duration> = got.windows(2).map(|p| p[1].at - p[0].at).collect();
    for (gap, want) in gaps.iter().zip([100u64, 200, 300]) {
        let want = Duration::from_millis(want);
        assert!(
            *gap >= want.mul_f64(0.8) - Duration::from_millis(20),
            "gap {gap:?} < 80% of {want:?}: {gaps:?}"
        );
        assert!(
            *gap <= want.mul_f64(1.2) + Duration::from_millis(400),
            "gap {gap:?} > 120% of {want:?}: {gaps:?}"
        );
    }
    let d = wait_status(
        &app,
        w["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 4);
    assert_eq!(d["last_status"], 500);
    // Every attempt of a delivery carries the same webhook-id.
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == got[0].header("webhook-id"))
    );
    rx.expect_no_more_than(4, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_failed_attempts() {
    let app = app_with("100ms", |s| {
        s.request_timeout = Dur(Duration::from_millis(500))
    })
    .await;
    let hole = black_hole().await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = app
        .create_webhook(json!({"url": format!("http://{hole}/h")}))
        .await;
    let closed = app
        .create_webhook(json!({"url": format!("http://{refused}/h")}))
        .await;
    app.accept(received("e1", "c1")).await;
    let d = wait_status(
        &app,
        slow["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(d["attempt_log"][0]["error"]["kind"], "timeout", "{d:#}");
    assert_eq!(d["attempts"], 2);
    let d = wait_status(
        &app,
        closed["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(d["attempt_log"][0]["error"]["kind"], "connect", "{d:#}");
    assert!(d["attempt_log"][0]["response"].is_null());
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    // The schedule would try again after 100 ms; the receiver asks for 2 s. The retry is set
    // for then, and nothing is claimed before its time (the schedule test above sees that
    // happen), so the two seconds need not be waited out here.
    let app = app_with("100ms,100ms", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply {
        retry_after: Some("2".into()),
        ..Reply::status(429)
    });
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    app.accept(received("e1", "c1")).await;
    let d = wait_until(
        &app,
        w["id"].as_str().unwrap(),
        "had an attempt",
        Duration::from_secs(10),
        |d| d["attempts"] == 1,
    )
    .await;
    assert_eq!(d["status"], "pending", "{d:#}");
    assert_eq!(d["last_status"], 429, "{d:#}");
    let tried = timestamp(&d["attempt_log"][0]["started_at"]);
    let next = timestamp(&d["next_attempt_at"]);
    let wait = tried.duration_until(next);
    assert!(
        wait >= jiff::SignedDuration::from_secs(2) && wait < jiff::SignedDuration::from_secs(3),
        "Retry-After: 2 was not honoured: the next attempt is {wait:?} after the first"
    );
    assert_eq!(rx.received().len(), 1, "not tried again meanwhile");
}

#[tokio::test]
async fn gone_disables_the_webhook_at_once_and_enabling_is_one_call() {
    let app = app_with("100ms,100ms", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(410));
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    let id = w["id"].as_str().unwrap();
    app.accept(received("e1", "c1")).await;
    let d = wait_status(&app, id, "failed", Duration::from_secs(5)).await;
    assert_eq!(d["attempts"], 1, "410 is final: {d:#}");
    let (_, got) = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(got["enabled"], false);
    assert!(
        got["disabled_reason"].as_str().unwrap().contains("410"),
        "{got}"
    );
    // Disabled: new events make no deliveries (so nothing can be sent).
    let counts = app.accept(received("e2", "c2")).await;
    assert_eq!(counts["deliveries"], 0, "{counts}");
    assert_eq!(rx.received().len(), 1);
    let (s, got) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["disabled_reason"], Value::Null);
    rx.behave(|_, _| Reply::status(200));
    app.accept(received("e3", "c3")).await;
    rx.wait_for(2, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_webhook_failing_for_too_long_is_disabled() {
    // The first failure starts the run; a failure `disable_after` later (with its delivery's
    // attempts used up) disables the webhook.
    const DISABLE_AFTER: Duration = Duration::from_millis(300);
    let app = app_with("", |s| s.disable_after = Dur(DISABLE_AFTER)).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    let id = w["id"].as_str().unwrap();
    app.accept(received("e1", "c1")).await;
    let first = wait_status(&app, id, "failed", Duration::from_secs(5)).await;
    let (_, got) = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(
        got["enabled"], true,
        "one failure is not a run of failures: {got}"
    );
    // The run began as that failure was recorded.
    let run_began = timestamp(&first["updated_at"]);
    // A test that fails does not count, and one that succeeds does not end the run.
    rx.behave(|_, _| Reply::status(200));
    let (s, b) = app
        .post(&format!("/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "succeeded");
    rx.behave(|_, _| Reply::status(500));
    let run_long_enough = run_began
        .checked_add(jiff::SignedDuration::try_from(DISABLE_AFTER).unwrap())
        .unwrap();
    let left = jiff::Timestamp::now().duration_until(run_long_enough);
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
    app.accept(received("e2", "c2")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let (_, got) = app.get(&format!("/v1/webhooks/{id}")).await;
        if got["enabled"] == false {
            break got;
        }
        assert!(Instant::now() < deadline, "never disabled: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = got["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("Every delivery has failed since"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_failing_then_healthy_receiver_gets_everything_in_call_order() {
    let app = app_with("200ms,200ms,200ms,200ms,200ms,200ms", |_| {}).await;
    let rx = Receiver::start().await;
    let healthy_from = Instant::now() + Duration::from_millis(800);
    // Only answers after the outage are successes; record which.
    let ok = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<crate::receiver::Received>::new(),
    ));
    let ok2 = ok.clone();
    rx.behave(move |r, _| {
        if Instant::now() < healthy_from {
            Reply::status(503)
        } else {
            ok2.lock().unwrap().push(r.clone());
            Reply::status(200)
        }
    });
    hooks_for_call_flow(&app, &rx.url("/h")).await;
    let mut events = Vec::new();
    for c in 0..5 {
        events.extend(call_events(&format!("call{c}")));
    }
    app.accept(Value::Array(events)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = first_successes(&ok.lock().unwrap());
        if ok.values().map(Vec::len).sum::<usize>() == 25 {
            for (call, seq) in ok {
                assert_eq!(seq, vec![0, 1, 2, 3, 4], "{call} out of order");
            }
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {ok:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For each call, the event numbers of its first successful receipts, in arrival order.
fn first_successes(got: &[crate::receiver::Received]) -> HashMap<String, Vec<u32>> {
    let mut seen = std::collections::HashSet::new();
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    for r in got {
        let body = r.json();
        let event_id = body["event_id"].as_str().unwrap().to_owned();
        let (call, n) = event_id.rsplit_once('-').unwrap();
        if seen.insert(event_id.clone()) {
            out.entry(call.to_owned())
                .or_default()
                .push(n.parse().unwrap());
        }
    }
    out
}

#[tokio::test]
async fn two_hundred_calls_stay_in_order_through_random_failures() {
    let app = app_with(&["50ms"; 20].join(","), |_| {}).await;
    let rx = Receiver::start().await;
    // 30% of requests fail at random; the receiver remembers which ids it accepted.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new()));
    let acc = accepted.clone();
    rx.behave(move |r, _| {
        if rand::random::<f64>() < 0.3 {
            return Reply::status(500);
        }
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let (call, n) = body["event_id"].as_str().unwrap().rsplit_once('-').unwrap();
        acc.lock()
            .unwrap()
            .push((call.to_owned(), n.parse().unwrap()));
        Reply::status(200)
    });
    hooks_for_call_flow(&app, &rx.url("/h")).await;
    let mut events = Vec::new();
    for c in 0..200 {
        events.extend(call_events(&format!("call{c}")));
    }
    app.accept(Value::Array(events)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = accepted.lock().unwrap().clone();
        let mut per_call: HashMap<String, Vec<u32>> = HashMap::new();
        for (call, n) in &got {
            let seq = per_call.entry(call.clone()).or_default();
            if !seq.contains(n) {
                seq.push(*n);
            }
        }
        for (call, seq) in &per_call {
            let mut sorted = seq.clone();
            sorted.sort();
            assert_eq!(
                seq, &sorted,
                "{call}: first successful receipts out of event order"
            );
        }
        if per_call.values().map(Vec::len).sum::<usize>() == 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 delivered",
            per_call.values().map(Vec::len).sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_black_holed_webhook_does_not_slow_a_healthy_one() {
    let app = app_with("1s", |s| s.request_timeout = Dur(Duration::from_secs(10))).await;
    let hole = black_hole().await;
    let rx = Receiver::start().await;
    app.create_webhook(json!({"url": format!("http://{hole}/h")}))
        .await;
    app.create_webhook(json!({"url": rx.url("/h")})).await;
    let started = Instant::now();
    let events: Vec<Value> = (0..300)
        .map(|i| received(&format!("e{i}"), &format!("c{i}")))
        .collect();
    for chunk in events.chunks(50) {
        app.accept(Value::Array(chunk.to_vec())).await;
    }
    rx.wait_for(300, Duration::from_secs(8)).await;
    let took = started.elapsed();
    // The black hole holds its own 16 requests for 10 s; the healthy webhook is done long before.
    assert!(
        took < Duration::from_secs(8),
        "healthy deliveries took {took:?}"
    );
}

#[tokio::test]
async fn resend_sends_again_now_and_replay_requeues_failed_in_order() {
    let app = app_with("", |_| {}).await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let w = app.create_webhook(json!({"url": rx.url("/h")})).await;
    let id = w["id"].as_str().unwrap();
    let before = jiff::Timestamp::now().to_string();
    app.accept(Value::Array(
        (0..3)
            .map(|i| received(&format!("e{i}"), "same-call"))
            .collect::<Vec<_>>(),
    ))
    .await;
    rx.wait_for(3, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, b) = app
            .get(&format!("/v1/webhooks/{id}/deliveries?status=failed"))
            .await;
        if b["data"].as_array().unwrap().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Resend one: exactly one more attempt, now.
    rx.behave(|_, _| Reply::status(200));
    let (_, list) = app.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    let one = list["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post(&format!("/v1/deliveries/{one}/resend"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    rx.wait_for(4, Duration::from_secs(5)).await;
    // Replay the rest: both failed ones go again, in their call's order.
    let (s, b) = app
        .post(
            &format!("/v1/webhooks/{id}/replay"),
            json!({"since": before}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["replayed"], 2);
    let got = rx.wait_for(6, Duration::from_secs(5)).await;
    let replayed: Vec<String> = got[4..]
        .iter()
        .map(|r| r.json()["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = replayed.clone();
    sorted.sort();
    assert_eq!(replayed, sorted, "replay must keep the call's order");
    let (s, b) = app
        .post(
            &format!("/v1/webhooks/{id}/replay"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["since"]);
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let app = app_with("", |_| {}).await;
    let rx = Receiver::start().await;
    app.create_webhook(json!({"url": rx.url("/h"), "rate_limit": 5}))
        .await;
    let events: Vec<Value> = (0..6)
        .map(|i| received(&format!("e{i}"), &format!("c{i}")))
        .collect();
    app.accept(Value::Array(events)).await;
    let got = rx.wait_for(6, Duration::from_secs(10)).await;
    let span = got[5].at - got[0].at;
    // Six requests at 5/s need at least a second between the first and the last.
    assert!(
        span >= Duration::from_millis(950),
        "rate limit not kept: {span:?}"
    );
}

#[tokio::test]
async fn shutdown_lets_sends_finish_within_the_grace_period_and_gives_back_the_rest() {
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    if let Some(url) = test_database_url().await {
        settings.database_url = url;
    }
    settings.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
    settings.poll_interval = Dur(Duration::from_millis(100));
    settings.shutdown_grace = Dur(Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = callhook::app::App::build(settings.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let mut app = TestApp::attach(base, reqwest::Client::new(), dir, "a").await;

    // One receiver answers within the grace period, the other long after it.
    let quick = Receiver::start().await;
    quick.behave(|_, _| Reply {
        delay: Duration::from_millis(300),
        ..Reply::status(200)
    });
    let hung = Receiver::start().await;
    hung.behave(|_, _| Reply {
        delay: Duration::from_secs(60),
        ..Reply::status(200)
    });
    let finishes = app.create_webhook(json!({"url": quick.url("/q")})).await;
    let hangs = app.create_webhook(json!({"url": hung.url("/h")})).await;
    app.accept(received("e1", "c1")).await;
    quick.wait_for(1, Duration::from_secs(10)).await;
    hung.wait_for(1, Duration::from_secs(10)).await;

    let asked = Instant::now();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "the hung send gets the grace period (a second) and no more; shutting down took {took:?}"
    );

    // Started again: what finished in time was recorded before the stop, and what did not
    // was given back, so it goes out again at once (not when its lease would have run out).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    app.base = format!("http://{}", listener.local_addr().unwrap());
    let again = callhook::app::App::build(settings).await.unwrap();
    tokio::spawn(again.serve(listener, std::future::pending()));
    let d = only_delivery(&app, finishes["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let d = only_delivery(&app, hangs["id"].as_str().unwrap()).await;
    assert_eq!(d["attempts"], 0, "a send cut short is no attempt: {d:#}");
    hung.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(quick.received().len(), 1);
}
