//! Signing secrets: rotation, and the old secret signing on for a day.

use super::*;

fn assert_secret_form(secret: &str) {
    use base64::Engine;
    let b64 = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 after whsec_");
    assert!(bytes.len() >= 24, "{secret}: {} bytes", bytes.len());
}

/// Asserts `expires_at` is 24 hours from now, give or take a minute.
fn assert_expires_in_a_day(expires_at: &Value) {
    let at: jiff::Timestamp = expires_at
        .as_str()
        .expect("expires_at is a string")
        .parse()
        .expect("expires_at is RFC 3339");
    let want = jiff::Timestamp::now().as_second() + 24 * 3600;
    assert!(
        (at.as_second() - want).abs() <= 60,
        "expires_at {at} is not about 24 h ahead"
    );
}

#[tokio::test]
async fn secrets_rotate_and_the_old_ones_keep_signing_for_a_day() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let s0 = w["secret"].as_str().unwrap().to_owned();
    assert_secret_form(&s0);
    let path = format!("/v1/webhooks/{}/secret", id_of(&w));
    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got, json!({"secret": s0, "previous": []}));

    let (s, r1) = app
        .call(Method::POST, &format!("{path}/rotate"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r1}");
    let s1 = r1["secret"].as_str().unwrap().to_owned();
    assert_secret_form(&s1);
    assert_ne!(s1, s0);
    let prev = r1["previous"].as_array().unwrap();
    assert_eq!(prev.len(), 1, "{r1}");
    assert_eq!(prev[0]["secret"], s0.as_str());
    assert_expires_in_a_day(&prev[0]["expires_at"]);
    let (_, got) = app.get(&path).await;
    assert_eq!(got, r1, "GET shows what the rotation answered");

    let (s, r2) = app
        .call(Method::POST, &format!("{path}/rotate"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r2}");
    let s2 = r2["secret"].as_str().unwrap().to_owned();
    assert!(s2 != s1 && s2 != s0);
    let prev = r2["previous"].as_array().unwrap();
    let mut olds: Vec<&str> = prev.iter().map(|p| p["secret"].as_str().unwrap()).collect();
    olds.sort();
    let mut want = vec![s0.as_str(), s1.as_str()];
    want.sort();
    assert_eq!(olds, want, "both older secrets still sign: {r2}");
    for p in prev {
        assert_expires_in_a_day(&p["expires_at"]);
    }
    let (_, got) = app.get(&path).await;
    assert_eq!(got, r2);

    // The webhook itself never shows the secret after creation.
    let (_, wh) = app.get(&format!("/v1/webhooks/{}", id_of(&w))).await;
    assert!(wh.get("secret").is_none());
}
