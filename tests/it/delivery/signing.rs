//! Standard Webhooks signatures, verified independently of callhook: HMAC written from the
//! specification, and the PyPI `standardwebhooks` package; rotation keeps both secrets signing.

use super::*;

#[tokio::test]
async fn standardwebhooks_verifies_json_and_form_deliveries() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let json_id = app
        .hook(json!({"trigger": "call_hangup", "url": rx.url("/json")}))
        .await;
    let form_id = app
        .hook(
            json!({"trigger": "call_hangup", "content_type": "application/x-www-form-urlencoded",
               "url": rx.url("/form")}),
        )
        .await;
    app.accept(event("hangup")).await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let find = |path: &str| got.iter().find(|r| r.path == path).unwrap().clone();
    let (j, f) = (find("/json"), find("/form"));
    let (js, fs) = (app.secret_of(&json_id).await, app.secret_of(&form_id).await);
    // The Rust check, written from the Standard Webhooks spec.
    assert!(signed_with(&js, &j, &j.body), "{:?}", j.headers);
    assert!(signed_with(&fs, &f, &f.body), "{:?}", f.headers);
    assert!(!signed_with(&fs, &j, &j.body), "another webhook's secret");
    let tampered = j.body.replace("\"billsec\":184", "\"billsec\":999");
    assert_ne!(tampered, j.body, "the test changes the body");
    let verdicts = python_verdicts(vec![
        verifier_input(&js, &j, &j.body),
        verifier_input(&fs, &f, &f.body),
        verifier_input(&js, &j, &tampered),
    ])
    .await;
    assert_eq!(verdicts, ["ok", "ok", "bad"]);
}

#[tokio::test]
async fn a_get_delivery_signs_the_query_callhook_appended() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "dialed_on_extension", "method": "GET",
               "url": rx.url(&format!("/get?{OWN_QUERY}"))}))
        .await;
    app.accept(event("dialed")).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let secret = app.secret_of(&wh).await;
    let query = r.query.clone().expect("a query");
    let appended = query
        .strip_prefix(&format!("{OWN_QUERY}&"))
        .unwrap_or_else(|| panic!("callhook appends to the URL's own query: {query}"));
    assert!(
        signed_with(&secret, &r, appended),
        "the signature covers {appended:?}: {:?}",
        r.headers
    );
    assert!(
        !signed_with(&secret, &r, &query),
        "not the URL's own query as well"
    );
    assert!(!signed_with(&secret, &r, ""), "not an empty body");
    // The log shows the request as sent: GET, the whole URL, no body, no Content-Type.
    let list = app.settled(&wh, 1).await;
    let d = app.delivery(list[0]["id"].as_str().unwrap()).await;
    let req = &d["attempt_log"][0]["request"];
    assert_eq!(req["method"], "GET", "{d:#}");
    assert_eq!(req["url"], rx.url(&format!("{}?{query}", r.path)), "{d:#}");
    assert_eq!(req["body"], Value::Null, "{d:#}");
    let headers: Vec<(String, String)> = serde_json::from_value(req["headers"].clone()).unwrap();
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type")),
        "{headers:?}"
    );
}

#[tokio::test]
async fn after_a_rotation_both_secrets_verify_a_delivery() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let wh = app
        .hook(json!({"trigger": "call_received", "url": rx.url("/rot")}))
        .await;
    let old = app.secret_of(&wh).await;
    let (s, rotated) = app
        .post(&format!("/v1/webhooks/{wh}/secret/rotate"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(app.secret_of(&wh).await, new);
    app.accept(received_event("rot-1", "c-rot", DID, "inbound"))
        .await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let sig = r.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "two signatures: {sig}");
    assert!(signed_with(&old, &r, &r.body), "the old secret: {sig}");
    assert!(signed_with(&new, &r, &r.body), "the new secret: {sig}");
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let verdicts = python_verdicts(vec![
        verifier_input(&old, &r, &r.body),
        verifier_input(&new, &r, &r.body),
        verifier_input(stranger, &r, &r.body),
    ])
    .await;
    assert_eq!(verdicts, ["ok", "ok", "bad"]);
}
