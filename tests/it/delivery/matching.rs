//! SPEC §2: which webhooks an event fires (numbers, call types, enabled), and an event
//! posted again is delivered once.

use super::*;

#[tokio::test]
async fn a_did_filter_takes_only_its_numbers() {
    let app = loopback_app().await;
    app.add_number(DID).await;
    app.add_number(DID2).await;
    let only = Receiver::start().await;
    let all = Receiver::start().await;
    let only_id = app
        .hook(json!({"trigger": "call_received", "numbers": [DID], "url": only.url("/only")}))
        .await;
    app.hook(json!({"trigger": "call_received", "url": all.url("/all")}))
        .await;
    let b = app
        .accept(received_event("did-2", "c-did-2", DID2, "inbound"))
        .await;
    assert_eq!(
        counts(&b),
        (1, 0, 1),
        "a call on {DID2} fires only the unfiltered webhook"
    );
    let b = app
        .accept(received_event("did-1", "c-did-1", DID, "inbound"))
        .await;
    assert_eq!(counts(&b), (1, 0, 2), "a call on {DID} fires both");
    all.wait_for(2, Duration::from_secs(10)).await;
    let got = only.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(param(&got[0], "did_number").as_deref(), Some(DID));
    only.expect_no_more_than(1, Duration::from_millis(300))
        .await;
    let list = app.deliveries_of(&only_id, "").await;
    assert_eq!(ids(&list).len(), 1, "{list}");
}

#[tokio::test]
async fn a_call_type_filter_takes_only_its_types() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(
            json!({"trigger": "call_received", "call_types": ["outbound", "click_to_call"],
               "url": rx.url("/out")}),
        )
        .await;
    let b = app
        .accept(received_event("ct-in", "c-in", DID, "inbound"))
        .await;
    assert_eq!(counts(&b), (1, 0, 0), "inbound is not among the call types");
    let b = app
        .accept(received_event("ct-out", "c-out", DID, "outbound"))
        .await;
    assert_eq!(counts(&b), (1, 0, 1));
    let b = app
        .accept(received_event("ct-c2c", "c-c2c", DID, "click_to_call"))
        .await;
    assert_eq!(counts(&b), (1, 0, 1));
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut types: Vec<String> = got.iter().map(|r| param(r, "call_type").unwrap()).collect();
    types.sort();
    assert_eq!(types, ["click_to_call", "outbound"]);
    rx.expect_no_more_than(2, Duration::from_millis(300)).await;
    assert_eq!(ids(&app.deliveries_of(&wh, "").await).len(), 2);
}

#[tokio::test]
async fn a_disabled_webhook_gets_nothing() {
    let app = loopback_app().await;
    let off = Receiver::start().await;
    let on = Receiver::start().await;
    let off_id = app
        .hook(json!({"trigger": "call_received", "enabled": false, "url": off.url("/off")}))
        .await;
    app.hook(json!({"trigger": "call_received", "url": on.url("/on")}))
        .await;
    let b = app
        .accept(received_event("dis-1", "c-dis", DID, "inbound"))
        .await;
    assert_eq!(counts(&b), (1, 0, 1), "only the enabled webhook fires");
    on.wait_for(1, Duration::from_secs(10)).await;
    off.expect_no_more_than(0, Duration::from_millis(300)).await;
    assert!(ids(&app.deliveries_of(&off_id, "").await).is_empty());
}

#[tokio::test]
async fn answered_by_extension_fires_for_extension_ring_group_and_queue_only() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "answered_by_extension", "url": rx.url("/ext")}))
        .await;
    for (name, fires) in [
        ("ivr", false),
        ("customer", false),
        ("ring_group", true),
        ("queue", true),
        ("extension", true),
    ] {
        let b = app.accept(event(name)).await;
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
    assert_eq!(ids(&app.deliveries_of(&wh, "").await).len(), 3);
}

#[tokio::test]
async fn an_event_posted_twice_is_delivered_once() {
    let app = loopback_app().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let wa = app
        .hook(json!({"trigger": "call_received", "url": a.url("/a")}))
        .await;
    let wb = app
        .hook(json!({"trigger": "call_received", "url": b.url("/b")}))
        .await;
    let ev = received_event("twice", "c-twice", DID, "inbound");
    assert_eq!(counts(&app.accept(ev.clone()).await), (1, 0, 2));
    assert_eq!(
        counts(&app.accept(ev.clone()).await),
        (0, 1, 0),
        "a repeat is counted as a duplicate and makes no deliveries"
    );
    // In a batch too, next to a new event.
    let batch = json!([ev, received_event("twice-2", "c-twice-2", DID, "inbound")]);
    assert_eq!(counts(&app.accept(batch).await), (1, 1, 2));
    for (rx, wh) in [(&a, &wa), (&b, &wb)] {
        rx.wait_for(2, Duration::from_secs(10)).await;
        rx.expect_no_more_than(2, Duration::from_millis(300)).await;
        let calls: HashSet<String> = rx
            .received()
            .iter()
            .map(|r| param(r, "call_id").unwrap())
            .collect();
        assert_eq!(calls.len(), 2, "one request per event");
        assert_eq!(ids(&app.deliveries_of(wh, "").await).len(), 2);
    }
}

#[tokio::test]
async fn an_event_posted_ten_times_at_once_is_delivered_once() {
    let app = loopback_app().await;
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let wa = app
        .hook(json!({"trigger": "call_received", "url": a.url("/a")}))
        .await;
    let wb = app
        .hook(json!({"trigger": "call_received", "url": b.url("/b")}))
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
        assert_eq!(ids(&app.deliveries_of(wh, "").await).len(), 1);
    }
}
