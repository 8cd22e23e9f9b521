//! The Prometheus metrics count events and deliveries.

use super::*;

/// The sum of every sample of `name` (all label sets) in a Prometheus text page.
fn metric_sum(page: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn metrics_page(app: &TestApp) -> String {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_events_and_deliveries() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/m")}))
        .await;
    let before = metrics_page(&app).await;
    // The registry is process-wide and other tests run alongside: compare, never equate.
    let accepted_before = metric_sum(&before, "callhook_events_accepted_total").unwrap_or(0.0);
    let delivered_before = metric_sum(&before, "callhook_deliveries_total").unwrap_or(0.0);
    for i in 0..3 {
        app.accept(received_event(
            &format!("m-{i}"),
            &format!("c-m-{i}"),
            DID,
            "inbound",
        ))
        .await;
    }
    app.settled(&wh, 3).await;
    // The outcome counter is bumped as the attempt is recorded; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = metrics_page(&app).await;
        let delivered = metric_sum(&page, "callhook_deliveries_total").unwrap_or(0.0);
        if delivered >= delivered_before + 3.0 || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in [
        "callhook_events_accepted_total",
        "callhook_deliveries_total",
        "callhook_attempt_duration_seconds",
        "callhook_queue_oldest_due_age_seconds",
    ] {
        assert!(
            page.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name}:\n{page}"
        );
    }
    let accepted = metric_sum(&page, "callhook_events_accepted_total").unwrap();
    assert!(
        accepted >= accepted_before + 3.0,
        "accepted {accepted_before} -> {accepted}"
    );
    let delivered = metric_sum(&page, "callhook_deliveries_total").unwrap();
    assert!(
        delivered >= delivered_before + 3.0,
        "deliveries {delivered_before} -> {delivered}"
    );
    assert!(
        metric_sum(&page, "callhook_attempt_duration_seconds_count").unwrap_or(0.0) >= 3.0,
        "{page}"
    );
}
