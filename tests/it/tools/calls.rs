//! `GET /v1/calls`: the account's calls by number (the DID or the customer's) and by when they
//! began, the latest first, paged; each with its events' types and its deliveries by status.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, loopback_app, problem_fields};
use crate::receiver::{Receiver, Reply};

const DID: &str = "+918065251305";
const DID2: &str = "+918065251399";
const ASHA: &str = "+919812345678";
const RAVI: &str = "+919812345679";

fn received(call_id: &str, did: &str, customer: &str, at: &str) -> Value {
    json!({"id": format!("{call_id}-r"), "type": "call.received", "occurred_at": at,
           "call": {"call_id": call_id, "call_type": "inbound", "did_number": did,
                    "customer_number": customer, "started_at": at}})
}

fn missed(call_id: &str, did: &str, customer: &str, at: &str) -> Value {
    json!({"id": format!("{call_id}-m"), "type": "call.ended", "occurred_at": at,
           "call": {"call_id": call_id, "call_type": "inbound", "did_number": did,
                    "customer_number": customer},
           "ended": {"status": "missed", "ended_at": at, "duration": 30}})
}

/// The call ids of a page, in order.
fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect()
}

async fn calls(app: &TestApp, query: &str) -> Value {
    let (s, b) = app.get(&format!("/v1/calls{query}")).await;
    assert_eq!(s, StatusCode::OK, "{query}: {b:#}");
    b
}

/// Every page of `query` (which must not end in `&`), following `next`.
async fn all_pages(app: &TestApp, query: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("{query}&after={a}"),
            None => query.to_owned(),
        };
        let b = calls(app, &q).await;
        pages.push(ids(&b).into_iter().map(str::to_owned).collect());
        match b["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 10, "{pages:?}");
    }
}

/// Three calls an hour apart (`one` on DID from Asha, missed; `two` on DID2 from Ravi; `three`
/// on DID from Ravi), a received-call webhook that answers 200 and a missed-call one that
/// answers 500, all settled; and a test send, which is no call of the list.
async fn three_calls() -> TestApp {
    let app = loopback_app().await;
    let ok = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.behave(|_, _| Reply::status(500));
    let hook = app
        .hook(json!({"trigger": "call_received", "url": ok.url("/r")}))
        .await;
    let failing = app
        .hook(json!({"trigger": "call_missed", "url": bad.url("/m")}))
        .await;
    app.accept(json!([
        received("one", DID, ASHA, "2026-11-27T04:00:00Z"),
        missed("one", DID, ASHA, "2026-11-27T04:00:30Z"),
        received("two", DID2, RAVI, "2026-11-27T05:00:00Z"),
        received("three", DID, RAVI, "2026-11-27T06:00:00Z"),
    ]))
    .await;
    app.settled(&hook, 3).await;
    app.settled(&failing, 1).await;
    let (s, b) = app
        .post(&format!("/v1/webhooks/{hook}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app
}

#[tokio::test]
async fn calls_are_listed_latest_first_with_their_events_and_outcomes() {
    let app = three_calls().await;
    let b = calls(&app, "").await;
    assert_eq!(ids(&b), ["three", "two", "one"], "{b:#}");
    assert_eq!(b["next"], Value::Null);
    let one = &b["data"][2];
    assert_eq!(one["did_number"], DID, "{one:#}");
    assert_eq!(one["customer_number"], ASHA, "{one:#}");
    assert_eq!(one["call_type"], "inbound", "{one:#}");
    assert_eq!(one["started_at"], "2026-11-27T04:00:00Z", "{one:#}");
    assert_eq!(
        one["events"],
        json!(["call.received", "call.ended"]),
        "{one:#}"
    );
    assert_eq!(
        one["deliveries"],
        json!({"total": 2, "pending": 0, "retrying": 0, "succeeded": 1, "failed": 1}),
        "{one:#}"
    );
    assert_eq!(b["data"][0]["events"], json!(["call.received"]));
    assert_eq!(b["data"][0]["deliveries"]["succeeded"], 1);

    // Another account sees none of them, and they see none of its.
    let (_, other_key) = app.other_account("Other").await;
    let (s, theirs) = app
        .call_as(Some(&other_key), Method::GET, "/v1/calls", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["data"], json!([]), "{theirs}");
}

#[tokio::test]
async fn calls_are_found_by_number_and_time() {
    let app = three_calls().await;
    let cases: &[(&str, &[&str])] = &[
        // The DID, written as people write it.
        ("?number=%2B91%2080652%2051305", &["three", "one"]),
        (&format!("?number={}", DID2.replace('+', "%2B")), &["two"]),
        // The customer's number.
        (
            &format!("?number={}", RAVI.replace('+', "%2B")),
            &["three", "two"],
        ),
        (&format!("?number={}", ASHA.replace('+', "%2B")), &["one"]),
        ("?number=%2B14155550100", &[]),
        ("?since=2026-11-27T05:00:00Z", &["three", "two"]),
        ("?until=2026-11-27T05:00:00Z", &["one"]),
        (
            "?since=2026-11-27T04:00:01Z&until=2026-11-27T06:00:00Z",
            &["two"],
        ),
        // An offset is a moment like any other: 10:30 in India is 05:00 UTC.
        ("?since=2026-11-27T10:30:00%2B05:30", &["three", "two"]),
        (
            &format!(
                "?number={}&since=2026-11-27T05:00:00Z",
                DID.replace('+', "%2B")
            ),
            &["three"],
        ),
    ];
    for (q, want) in cases {
        let b = calls(&app, q).await;
        assert_eq!(ids(&b), *want, "{q}: {b:#}");
    }
}

#[tokio::test]
async fn calls_are_paged_with_the_filters_kept() {
    let app = three_calls().await;
    assert_eq!(
        all_pages(&app, "?limit=1").await,
        [vec!["three"], vec!["two"], vec!["one"]]
    );
    assert_eq!(
        all_pages(&app, "?limit=2").await,
        [vec!["three", "two"], vec!["one"]]
    );
    assert_eq!(
        all_pages(
            &app,
            &format!("?limit=1&number={}", DID.replace('+', "%2B"))
        )
        .await,
        [vec!["three"], vec!["one"]]
    );
    // Calls begun at the same moment keep one order across pages.
    app.accept(json!([
        received("same-a", DID, ASHA, "2026-11-28T00:00:00Z"),
        received("same-b", DID, ASHA, "2026-11-28T00:00:00Z"),
        received("same-c", DID, ASHA, "2026-11-28T00:00:00Z"),
    ]))
    .await;
    assert_eq!(
        all_pages(&app, "?limit=2&since=2026-11-28T00:00:00Z").await,
        [vec!["same-c", "same-b"], vec!["same-a"]]
    );
}

#[tokio::test]
async fn bad_filters_are_named() {
    let app = loopback_app().await;
    for (q, field) in [
        ("?number=918065251305", "number"),
        ("?number=%2B91abc", "number"),
        ("?since=yesterday", "since"),
        ("?until=2026-11-27", "until"),
        ("?since=", "since"),
        ("?limit=0", "limit"),
    ] {
        let (s, b) = app.get(&format!("/v1/calls{q}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {b:#}");
        assert_eq!(problem_fields(&b), [field], "{q}: {b:#}");
    }
}
