//! Accounts, API keys, numbers and webhooks over real HTTP (issue 2).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_webhook_round_trips_with_every_field() {
    let app = spawn_app().await;
    app.add_number("+91 80652 51305").await;
    let w = app
        .create_webhook(json!({
            "name": "CRM: missed calls",
            "description": "Creates a callback task",
            "trigger": "call_missed",
            "url": "https://crm.example.com/hooks/calls?src=pbx",
            "method": "POST",
            "call_types": ["inbound", "click_to_call"],
            "content_type": "application/json",
            "numbers": ["+918065251305"],
            "time_zone": "Asia/Kolkata",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}],
            "rate_limit": null,
            "enabled": true
        }))
        .await;
    assert!(w["id"].as_str().unwrap().starts_with("wh_"));
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    let (s, got) = app
        .get(&format!("/v1/webhooks/{}", w["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["numbers"], json!(["+918065251305"]));
    assert_eq!(got["time_zone"], "Asia/Kolkata");
    assert!(
        got.get("secret").is_none(),
        "the secret is only in the create answer"
    );
    let (s, _) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn another_accounts_webhook_is_a_404() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let (_, other_key) = app.other_account("Other").await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
    let (s, b) = app
        .call_as(Some(&other_key), Method::GET, &path, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}
