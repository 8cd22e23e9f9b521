//! Where a delivery's lease comes from (issue 15), counted by a real `callhook serve` process's
//! own metrics: at light load a fresh event's delivery is leased as it is stored and handed
//! straight to the dispatcher; a burst beyond what the webhook's lane starts at once is
//! claimed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::nodes::{Nodes, account_with_webhook, free_port, metrics, start_node, wait_healthy};
use crate::receiver::{Receiver, Reply};

/// The value of counter `name` in a Prometheus text page (0 before its first increment).
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// (handed over, claimed) so far.
async fn leases(http: &reqwest::Client, base: &str) -> (u64, u64) {
    let page = metrics(http, base).await;
    (
        counter(&page, "callhook_deliveries_handed_over_total"),
        counter(&page, "callhook_deliveries_claimed_total"),
    )
}

fn events(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
                   "call": {"call_id": id, "call_type": "inbound", "did_number": "+918065251305"}})
        })
        .collect()
}

async fn post(http: &reqwest::Client, base: &str, key: &str, batch: Vec<Value>) {
    let r = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

async fn received(rx: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.received().len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} arrived",
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_fresh_delivery_is_handed_over_and_a_burst_claimed() {
    if crate::helpers::test_database_url().await.is_some() {
        // The same code on both databases; one process on SQLite says it.
        return;
    }
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let rx = Receiver::start().await;
    // Slow enough that a burst fills the webhook's 16 requests at once.
    rx.behave(|_, _| Reply {
        delay: Duration::from_millis(100),
        ..Reply::status(200)
    });
    let _node = Nodes(vec![start_node(dir.path(), port, None)]);
    wait_healthy(&http, &base).await;
    let key = account_with_webhook(&http, &base, &base, &rx.url("/sink")).await;

    post(&http, &base, &key, events("first", 1)).await;
    received(&rx, 1).await;
    let before = leases(&http, &base).await;
    post(&http, &base, &key, events("light", 1)).await;
    received(&rx, 2).await;
    let (handed, claimed) = leases(&http, &base).await;
    assert_eq!(
        (handed - before.0, claimed - before.1),
        (1, 0),
        "an event at light load is handed over, not claimed"
    );

    post(&http, &base, &key, events("burst", 100)).await;
    received(&rx, 102).await;
    let (handed_burst, claimed_burst) = leases(&http, &base).await;
    let (handed_burst, claimed_burst) = (handed_burst - handed, claimed_burst - claimed);
    // The lane starts 16 at once: those are handed over, the rest claimed (a claimed one its
    // lane cannot start soon may be given back and claimed again).
    assert!(
        (1..=16).contains(&handed_burst),
        "{handed_burst} of the burst handed over"
    );
    assert!(
        handed_burst + claimed_burst >= 100 && claimed_burst >= 84,
        "{claimed_burst} of the burst claimed, {handed_burst} handed over"
    );
}
