//! The SSRF guard: loopback receivers are refused unless the operator allows them.

use super::*;

/// Webhooks at four spellings of loopback: 127.0.0.1, [::1], [::ffff:127.0.0.1], localhost.
async fn loopback_hooks(app: &TestApp, v4: &Receiver, v6: &Receiver) -> Vec<(String, String)> {
    let port = v4.addr.port();
    let urls = [
        v4.url("/v4"),
        v6.url("/v6"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        format!("http://localhost:{port}/name"),
    ];
    let mut out = Vec::new();
    for url in urls {
        let id = app
            .hook(json!({"trigger": "call_received", "url": url}))
            .await;
        out.push((id, url));
    }
    out
}

#[tokio::test]
async fn loopback_receivers_get_nothing_by_default() {
    let app = spawn_app_with(|s| {
        s.poll_interval = Dur(Duration::from_millis(100));
        s.retry_schedule = "".parse().unwrap();
    })
    .await;
    let v4 = Receiver::start().await;
    let v6 = Receiver::start_on("[::1]:0").await;
    let hooks = loopback_hooks(&app, &v4, &v6).await;
    let b = app
        .accept(received_event("ssrf-1", "c-ssrf", DID, "inbound"))
        .await;
    assert_eq!(counts(&b), (1, 0, 4));
    for (wh, url) in &hooks {
        let list = app.settled(wh, 1).await;
        assert_eq!(list[0]["status"], "failed", "{url}: {list:?}");
        let d = app.delivery(list[0]["id"].as_str().unwrap()).await;
        let attempts = d["attempt_log"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "{url}: no retries with an empty schedule: {d:#}"
        );
        let a = &attempts[0];
        assert_eq!(a["response"], Value::Null, "{url}: {d:#}");
        assert_eq!(a["error"]["kind"], "blocked_target", "{url}: {d:#}");
        let msg = a["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("allow_targets"),
            "{url}: the message says how to allow it: {msg}"
        );
    }
    assert!(v4.received().is_empty(), "{:#?}", v4.received());
    assert!(v6.received().is_empty(), "{:#?}", v6.received());
}

#[tokio::test]
async fn loopback_receivers_get_everything_once_allowed() {
    let app = loopback_app().await;
    let v4 = Receiver::start().await;
    let v6 = Receiver::start_on("[::1]:0").await;
    let hooks = loopback_hooks(&app, &v4, &v6).await;
    app.accept(received_event("ssrf-2", "c-ssrf", DID, "inbound"))
        .await;
    let got4 = v4.wait_for(3, Duration::from_secs(10)).await;
    let mut paths: Vec<&str> = got4.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/mapped", "/name", "/v4"]);
    let got6 = v6.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got6[0].path, "/v6");
    for (wh, url) in &hooks {
        let list = app.settled(wh, 1).await;
        assert_eq!(list[0]["status"], "succeeded", "{url}: {list:?}");
    }
}
