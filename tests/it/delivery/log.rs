//! The delivery log and what a person does with it: filters and pages, attempts with request
//! and response, a call's timeline, test sends and trigger samples.

use super::*;

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
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/log")}))
        .await;
    for call in ["c-ok-1", "c-ok-2", "c-fail", "c-ok-3"] {
        app.accept(received_event(&format!("ev-{call}"), call, DID, "inbound"))
            .await;
    }
    app.settled(&wh, 4).await;
    wh
}

#[tokio::test]
async fn the_delivery_log_filters_by_status_and_call_and_pages() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = mixed_log(&app, &rx).await;

    let ok = app.deliveries_of(&wh, "?status=succeeded").await;
    assert_eq!(ids(&ok).len(), 3, "{ok}");
    for d in ok["data"].as_array().unwrap() {
        assert_eq!(d["status"], "succeeded");
        assert_eq!(d["webhook_id"], wh.as_str());
        assert_eq!(d["trigger"], "call_received");
        assert_eq!(d["last_status"], 200);
        assert_eq!(d["attempts"], 1);
    }
    let failed = app.deliveries_of(&wh, "?status=failed").await;
    assert_eq!(ids(&failed).len(), 1, "{failed}");
    assert_eq!(failed["data"][0]["call_id"], "c-fail");
    assert_eq!(
        failed["data"][0]["attempts"], 3,
        "the schedule allows 3 attempts"
    );
    assert_eq!(failed["data"][0]["last_status"], 500);
    let pending = app.deliveries_of(&wh, "?status=pending").await;
    assert!(ids(&pending).is_empty(), "{pending}");
    let one = app.deliveries_of(&wh, "?call_id=c-ok-2").await;
    assert_eq!(ids(&one).len(), 1, "{one}");
    assert_eq!(one["data"][0]["call_id"], "c-ok-2");
    assert_eq!(one["data"][0]["event_id"], "ev-c-ok-2");
    let both = app
        .deliveries_of(&wh, "?status=failed&call_id=c-ok-2")
        .await;
    assert!(ids(&both).is_empty(), "filters combine: {both}");
    let none = app.deliveries_of(&wh, "?call_id=c-unknown").await;
    assert!(ids(&none).is_empty(), "{none}");

    let (s, b) = app
        .get(&format!("/v1/webhooks/{wh}/deliveries?status=bogus"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), ["status"], "{b}");

    let listed = app.deliveries_of(&wh, "").await;
    let calls: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        ["c-ok-3", "c-fail", "c-ok-2", "c-ok-1"],
        "newest first: {listed}"
    );
    let all = ids(&listed);
    let first = app.deliveries_of(&wh, "?limit=3").await;
    assert_eq!(ids(&first).len(), 3, "{first}");
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = app
        .deliveries_of(&wh, &format!("?limit=3&after={next}"))
        .await;
    assert_eq!(ids(&second).len(), 1, "{second}");
    assert_eq!(second["next"], Value::Null, "{second}");
    let paged: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(
        paged, all,
        "pages give every delivery once, in the list's order"
    );
    // Filters hold across pages.
    let first = app.deliveries_of(&wh, "?status=succeeded&limit=2").await;
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = app
        .deliveries_of(&wh, &format!("?status=succeeded&limit=2&after={next}"))
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
    let failed = app.deliveries_of(&wh, "?status=failed").await;
    let id = failed["data"][0]["id"].as_str().unwrap().to_owned();
    let secret = app.secret_of(&wh).await;
    let d = app.delivery(&id).await;
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
    let ok = app.deliveries_of(&wh, "?call_id=c-ok-1").await;
    let d = app.delivery(ok["data"][0]["id"].as_str().unwrap()).await;
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
    let wh = app
        .hook(json!({"trigger": "call_received", "url": format!("http://{addr}/big")}))
        .await;
    app.accept(received_event("big-1", "c-big", DID, "inbound"))
        .await;
    let list = app.settled(&wh, 1).await;
    assert_eq!(list[0]["status"], "succeeded", "{list:?}");
    let d = app.delivery(list[0]["id"].as_str().unwrap()).await;
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
    let on_received = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/r")}))
        .await;
    let on_rg = app
        .hook(json!({"trigger": "answered_on_ring_group", "url": rx.url("/rg")}))
        .await;
    let on_ext = app
        .hook(json!({"trigger": "answered_by_extension", "url": rx.url("/ext")}))
        .await;
    let on_end = app
        .hook(json!({"trigger": "call_hangup", "url": rx.url("/end")}))
        .await;
    let mut answered = event("ring_group");
    answered["call"]["call_id"] = json!("c-timeline");
    answered["id"] = json!("tl-2");
    let mut ended = event("hangup");
    ended["call"]["call_id"] = json!("c-timeline");
    ended["id"] = json!("tl-3");
    app.accept(received_event("tl-1", "c-timeline", DID, "inbound"))
        .await;
    app.accept(json!([answered, ended])).await;
    // Another call, which must not show.
    app.accept(received_event("tl-x", "c-elsewhere", DID, "inbound"))
        .await;
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
        let log = app.deliveries_of(wh, "?call_id=c-timeline").await;
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
    let wh = app.hook(json!({"trigger": "answered_on_queue", "time_zone": "Asia/Kolkata", "url": rx.url("/t")}),
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
    let secret = app.secret_of(&wh).await;
    assert!(signed_with(&secret, r, &r.body), "test sends are signed");

    let log = app.deliveries_of(&wh, "").await;
    assert_eq!(ids(&log), [d["id"].as_str().unwrap()], "{log}");
    assert_eq!(log["data"][0]["test"], true, "{log}");
    assert_eq!(log["data"][0]["status"], "succeeded", "{log}");
}

#[tokio::test]
async fn a_failed_test_send_answers_the_status_and_is_not_retried() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    rx.behave(|_, _| Reply::status(500));
    let wh = app
        .hook(json!({"trigger": "call_missed", "url": rx.url("/t")}))
        .await;
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
    let log = app.deliveries_of(&wh, "?status=failed").await;
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
