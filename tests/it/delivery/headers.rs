//! The headers a receiver gets: the webhook's own, User-Agent and the `webhook-*` ones.

use super::*;

#[tokio::test]
async fn custom_headers_user_agent_and_webhook_headers_arrive() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/h"),
               "headers": [{"key": "X-Api-Key", "value": "s3cr3t"},
                           {"key": "X-Tenant", "value": "acme corp"}]}))
        .await;
    app.accept(received_event("h-1", "c-h", DID, "inbound"))
        .await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(r.header("x-api-key"), Some("s3cr3t"));
    assert_eq!(r.header("x-tenant"), Some("acme corp"));
    assert_eq!(
        r.header("user-agent"),
        Some(format!("callhook/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let list = app.deliveries_of(&wh, "").await;
    assert_eq!(ids(&list).len(), 1, "{list}");
    assert_eq!(r.header("webhook-id"), Some(ids(&list)[0].as_str()));
    let ts: i64 = r
        .header("webhook-timestamp")
        .expect("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!(
        (ts - now_secs()).abs() <= 30,
        "webhook-timestamp {ts} is not recent (now {})",
        now_secs()
    );
    assert!(
        r.header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,")),
        "{:?}",
        r.headers
    );
}
