//! SPEC §4: batches are all or nothing, at most 1000 events; who may post for which account.

use super::*;

#[tokio::test]
async fn a_batch_with_one_invalid_event_stores_nothing() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/b")}))
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
    assert!(ids(&app.deliveries_of(&wh, "").await).is_empty());
    // The valid events were not stored: posted again they are new, not duplicates.
    let b = app
        .accept(json!([
            received_event("b-1", "c-batch-1", DID, "inbound"),
            received_event("b-3", "c-batch-3", DID, "inbound"),
        ]))
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
    let b = app.accept(many(1000, "full")).await;
    assert_eq!(counts(&b), (1000, 0, 0));
}

#[tokio::test]
async fn a_second_call_ended_for_a_call_is_a_422_naming_type() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_missed_or_answered", "url": rx.url("/end")}))
        .await;
    let ended = |id: &str, call_id: &str| {
        let mut e = event("hangup");
        e["id"] = json!(id);
        e["call"]["call_id"] = json!(call_id);
        e
    };
    assert_eq!(
        counts(&app.accept(ended("end-1", "c-end")).await),
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
    assert_eq!(ids(&app.deliveries_of(&wh, "").await).len(), 1);
}

#[tokio::test]
async fn a_refused_post_does_not_spoil_posts_committed_with_it() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/r")}))
        .await;
    let mut ended = event("missed");
    ended["call"]["call_id"] = json!("c-ends-once");
    app.accept(ended.clone()).await;
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
    assert_eq!(ids(&app.deliveries_of(&wh, "?limit=100").await).len(), 9);
    let (s, call) = app.get("/v1/calls/c-ends-once").await;
    assert_eq!(s, StatusCode::OK, "{call}");
    assert_eq!(call["events"].as_array().unwrap().len(), 1, "{call}");
}

#[tokio::test]
async fn the_operator_names_the_account_and_may_post_for_any() {
    let app = loopback_app().await;
    let (other_id, other_key) = app.other_account("Globex").await;
    let rx = Receiver::start().await;
    app.hook(json!({"trigger": "call_received", "url": rx.url("/acme")}))
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
        counts(&app.accept(ev).await),
        (1, 0, 0),
        "naming its own account is fine"
    );
}
