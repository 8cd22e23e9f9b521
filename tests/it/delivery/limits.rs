//! Limits on what goes out: test sends keep to the webhook's `max_in_flight_per_webhook` and
//! `rate_limit`; a receiver that stalls its body after a 2xx, or trickles its answer, is
//! bounded by `request_timeout`; webhooks sharing a receiver keep their connections to it.

use super::*;

/// Test sends keep to the webhook's limits: no more in flight than
/// `max_in_flight_per_webhook`, no closer together than its `rate_limit`; beyond, a 429 that
/// names the limit, and nothing is sent.
#[tokio::test]
async fn test_sends_keep_to_the_webhooks_limits() {
    let app = spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
        s.max_in_flight_per_webhook = 1;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let rx = Receiver::start().await;
    // The first request is answered only after a while: the second test send comes meanwhile.
    rx.behave(|_, n| {
        let mut r = Reply::status(200);
        if n == 0 {
            r.delay = Duration::from_secs(3);
        }
        r
    });
    let wh = app.hook(json!({"url": rx.url("/t")})).await;
    let first = {
        let (app, wh) = (app.clone(), wh.clone());
        tokio::spawn(async move {
            app.post(&format!("/v1/webhooks/{wh}/test"), json!({}))
                .await
        })
    };
    rx.wait_for(1, Duration::from_secs(20)).await;
    let (status, body) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_in_flight_per_webhook"),
        "{body}"
    );
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rx.received().len(), 1);

    // A rate limit of one request per 10 s: the next test send waits its slot.
    let limited = app
        .hook(json!({"url": rx.url("/r"), "rate_limit": 0.1}))
        .await;
    let (status, body) = app
        .post(&format!("/v1/webhooks/{limited}/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = app
        .http
        .post(app.url(&format!("/v1/webhooks/{limited}/test")))
        .bearer_auth(&app.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("rate_limit"),
        "{body}"
    );
    assert_eq!(rx.received().len(), 2, "the refused test send sent nothing");
}

/// Webhooks that share one receiver (many accounts posting to one CRM) keep their connections
/// between deliveries, however many are open at once: callhook once kept 64 per host, and
/// closed and opened a connection for two deliveries in five of ten webhooks on one receiver.
#[tokio::test]
async fn webhooks_sharing_a_receiver_keep_their_connections() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    // Slow enough that each webhook's 16 requests are all on the wire at once.
    rx.behave(|_, _| Reply {
        delay: Duration::from_millis(300),
        ..Reply::status(200)
    });
    let mut hooks = Vec::new();
    for i in 0..6 {
        hooks.push(app.hook(json!({"url": rx.url(&format!("/h{i}"))})).await);
    }
    // Each round: 16 calls, so 16 deliveries to each of the 6 webhooks, 96 in flight.
    for round in 1..=2 {
        let events: Vec<Value> = (0..16)
            .map(|i| {
                received_event(
                    &format!("e{round}-{i}"),
                    &format!("c{round}-{i}"),
                    DID,
                    "inbound",
                )
            })
            .collect();
        app.accept(json!(events)).await;
        for wh in &hooks {
            app.settled(wh, 16 * round).await;
        }
        if round == 1 {
            assert!(
                rx.connections() > 64,
                "the first round has more than 64 requests at once: {} connections",
                rx.connections()
            );
        }
    }
    let opened = rx.connections();
    assert!(
        opened <= 96,
        "the second round reuses the first's connections: {opened} opened for 96 at once"
    );
}

/// A receiver on loopback that answers every request with `head` at once, then sends nothing
/// more and keeps the connection open; or, with `trickle`, sends `head` one byte at a time.
async fn stalling_receiver(head: &'static str, trickle: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = sock.read(&mut buf).await;
                if trickle {
                    for b in head.bytes().cycle() {
                        if sock.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } else {
                    let _ = sock.write_all(head.as_bytes()).await;
                    // Held open, silent, until callhook gives up.
                    let _ = sock.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// A 2xx whose body then stalls is a success (the status is the receiver's verdict), and the
/// attempt records that the body was cut; a receiver that trickles its answer forever is
/// bounded by request_timeout and fails with `timeout`.
#[tokio::test]
async fn a_stalled_body_after_a_2xx_is_a_success_noted_cut_and_a_trickle_times_out() {
    let app = spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
        s.request_timeout = Dur(Duration::from_secs(1));
    })
    .await;
    let stalls = stalling_receiver(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nreceived, now thinking",
        false,
    )
    .await;
    let wh = app
        .hook(json!({"url": format!("http://{stalls}/hook")}))
        .await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let a = &d["attempt_log"][0];
    assert_eq!(a["response"]["status"], 200, "{d:#}");
    assert_eq!(a["response"]["body"], "received, now thinking", "{d:#}");
    assert_eq!(a["error"]["kind"], "timeout", "{d:#}");
    let msg = a["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("response body was cut off after 22 bytes"),
        "{msg}"
    );

    let trickles = stalling_receiver("HTTP/1.1 200 OK\r\nX-Slow: ", true).await;
    let wh = app
        .hook(json!({"url": format!("http://{trickles}/hook")}))
        .await;
    let (s, d) = app
        .post(&format!("/v1/webhooks/{wh}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "failed", "{d:#}");
    let a = &d["attempt_log"][0];
    assert_eq!(a["response"], Value::Null, "{d:#}");
    assert_eq!(a["error"]["kind"], "timeout", "{d:#}");
}
