//! Webhooks (SPEC §3): what they keep, their defaults and limits, every rule a 422 naming its
//! field, PUT and PATCH, enable and disable, delete.

use super::*;

/// One failing case per rule of SPEC §3: the fields to set, and the field that must be named.
fn invalid_webhook_cases() -> Vec<(&'static str, Value, &'static str)> {
    let long_url = format!("https://crm.example.com/{}", "a".repeat(2025));
    assert_eq!(long_url.len(), 2049);
    let mut cases = vec![
        ("name missing", json!({"name": null}), "name"),
        ("name empty", json!({"name": ""}), "name"),
        ("name blank", json!({"name": "   "}), "name"),
        ("name too long", json!({"name": "n".repeat(101)}), "name"),
        (
            "description too long",
            json!({"description": "d".repeat(1001)}),
            "description",
        ),
        ("trigger missing", json!({"trigger": null}), "trigger"),
        (
            "trigger unknown",
            json!({"trigger": "call_ended"}),
            "trigger",
        ),
        ("method PUT", json!({"method": "PUT"}), "method"),
        ("method DELETE", json!({"method": "DELETE"}), "method"),
        (
            "content_type other",
            json!({"content_type": "text/plain"}),
            "content_type",
        ),
        ("call_types empty", json!({"call_types": []}), "call_types"),
        (
            "call_types unknown entry",
            json!({"call_types": ["inbound", "voicemail"]}),
            "call_types[1]",
        ),
        ("url missing", json!({"url": null}), "url"),
        (
            "url ftp",
            json!({"url": "ftp://files.example.com/drop"}),
            "url",
        ),
        ("url relative", json!({"url": "/hooks/calls"}), "url"),
        (
            "url without scheme",
            json!({"url": "crm.example.com/hook"}),
            "url",
        ),
        (
            "url with user and password",
            json!({"url": "https://user:pw@crm.example.com/hook"}),
            "url",
        ),
        (
            "url with user",
            json!({"url": "https://user@crm.example.com/hook"}),
            "url",
        ),
        ("url too long", json!({"url": long_url}), "url"),
        (
            "number not E.164",
            json!({"numbers": ["918065251305"]}),
            "numbers[0]",
        ),
        (
            "number with letters",
            json!({"numbers": [OWNED, "+91806525130x"]}),
            "numbers[1]",
        ),
        (
            // The unowned number sorts before the owned one: the index is the one in the body.
            "number not the account's",
            json!({"numbers": [OWNED, "+14155550100"]}),
            "numbers[1]",
        ),
        (
            "time_zone not IANA",
            json!({"time_zone": "Mars/Olympus"}),
            "time_zone",
        ),
        ("time_zone empty", json!({"time_zone": ""}), "time_zone"),
        ("rate_limit zero", json!({"rate_limit": 0}), "rate_limit"),
        (
            "rate_limit below 0.1",
            json!({"rate_limit": 0.09}),
            "rate_limit",
        ),
        (
            "rate_limit negative",
            json!({"rate_limit": -5}),
            "rate_limit",
        ),
        (
            "rate_limit above 1000",
            json!({"rate_limit": 1000.5}),
            "rate_limit",
        ),
        (
            "rate_limit not a number",
            json!({"rate_limit": "10"}),
            "rate_limit",
        ),
        (
            "more than 20 headers",
            json!({"headers": headers(21)}),
            "headers",
        ),
        (
            "header key with a space",
            json!({"headers": [{"key": "X Api", "value": "v"}]}),
            "headers[0].key",
        ),
        (
            "header key with a colon",
            json!({"headers": [{"key": "X-Ok", "value": "v"}, {"key": "X:Api", "value": "v"}]}),
            "headers[1].key",
        ),
        (
            "header key empty",
            json!({"headers": [{"key": "", "value": "v"}]}),
            "headers[0].key",
        ),
        (
            "header value with CR LF",
            json!({"headers": [{"key": "X-Api", "value": "a\r\nX-Injected: 1"}]}),
            "headers[0].value",
        ),
        (
            "header value with LF",
            json!({"headers": [{"key": "X-Api", "value": "a\nb"}]}),
            "headers[0].value",
        ),
        (
            "header value with CR",
            json!({"headers": [{"key": "X-Api", "value": "a\rb"}]}),
            "headers[0].value",
        ),
    ];
    for key in [
        "host",
        "Host",
        "content-length",
        "Content-Type",
        "transfer-encoding",
        "connection",
        "user-agent",
        "User-Agent",
        "webhook-xyz",
        "Webhook-Signature",
        "webhook-id",
        "webhook-timestamp",
    ] {
        cases.push((
            "reserved header key",
            json!({"headers": [{"key": "X-Ok", "value": "v"}, {"key": key, "value": "v"}]}),
            "headers[1].key",
        ));
    }
    cases
}

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
            "numbers": ["+91 80652 51305"],
            "time_zone": "Asia/Kolkata",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}],
            "rate_limit": null,
            "enabled": true
        }))
        .await;
    assert!(w["id"].as_str().unwrap().starts_with("wh_"));
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    let (s, got) = app.get(&format!("/v1/webhooks/{}", id_of(&w))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["name"], "CRM: missed calls");
    assert_eq!(got["description"], "Creates a callback task");
    assert_eq!(got["trigger"], "call_missed");
    assert_eq!(got["url"], "https://crm.example.com/hooks/calls?src=pbx");
    assert_eq!(got["method"], "POST");
    assert_eq!(got["call_types"], json!(["inbound", "click_to_call"]));
    assert_eq!(got["content_type"], "application/json");
    assert_eq!(got["numbers"], json!([OWNED]));
    assert_eq!(got["time_zone"], "Asia/Kolkata");
    assert_eq!(
        got["headers"],
        json!([{"key": "X-Api-Key", "value": "********", "secret": true}]),
        "a secret header by its name: write-only"
    );
    assert_eq!(got["rate_limit"], Value::Null);
    assert_eq!(got["enabled"], true);
    assert_eq!(got["disabled_reason"], Value::Null);
    assert!(
        got.get("secret").is_none(),
        "the secret is only in the create answer"
    );
    let (s, list) = app.get("/v1/webhooks").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], w["id"]);
    assert!(list["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn a_webhook_takes_defaults_for_what_is_left_out() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    assert_eq!(w["method"], "POST");
    assert_eq!(w["content_type"], "application/json");
    assert_eq!(
        w["call_types"],
        json!(["inbound", "outbound", "click_to_call"])
    );
    assert_eq!(w["numbers"], json!([]));
    assert_eq!(w["time_zone"], "UTC");
    assert_eq!(w["headers"], json!([]));
    assert_eq!(w["rate_limit"], Value::Null);
    assert_eq!(w["enabled"], true);
    assert_eq!(w["description"], "");
}

#[tokio::test]
async fn the_limits_themselves_are_allowed() {
    let app = spawn_app().await;
    let url = format!("https://crm.example.com/{}", "a".repeat(2024));
    assert_eq!(url.len(), 2048);
    let w = app
        .create_webhook(json!({
            "name": "n".repeat(100),
            "description": "d".repeat(1000),
            "url": url,
            "method": "GET",
            "content_type": "application/x-www-form-urlencoded",
            "call_types": ["outbound"],
            "time_zone": "Europe/London",
            "headers": headers(20),
            "rate_limit": 0.1
        }))
        .await;
    assert_eq!(w["url"], url.as_str());
    assert_eq!(w["headers"].as_array().unwrap().len(), 20);
    assert_eq!(w["rate_limit"], 0.1);
    let w = app
        .create_webhook(
            json!({"rate_limit": 1000, "url": "http://crm.example.com:8080/h", "time_zone": "UTC"}),
        )
        .await;
    assert_eq!(w["rate_limit"], 1000.0);
    let w = app
        .create_webhook(json!({"headers": [
            {"key": "Authorization", "value": "Bearer abc"},
            {"key": "X-Tab", "value": "a\tb"},
            {"key": "Webhook", "value": "a bare 'webhook' is no Standard Webhooks header"}
        ]}))
        .await;
    assert_eq!(w["headers"][0]["key"], "Authorization");
}

#[tokio::test]
async fn every_invalid_field_is_a_422_naming_it_on_create() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    for (case, over, field) in invalid_webhook_cases() {
        let a = send_json(&app, Method::POST, "/v1/webhooks", webhook_body(&over)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {}",
            a.body
        );
        a.invalid(&[field]);
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn every_bad_field_is_listed_at_once() {
    let app = spawn_app().await;
    let a = send_json(
        &app,
        Method::POST,
        "/v1/webhooks",
        json!({
            "name": "",
            "description": "d".repeat(1001),
            "trigger": "nope",
            "url": "ftp://x.example.com/",
            "method": "PUT",
            "content_type": "text/xml",
            "call_types": [],
            "numbers": ["123"],
            "time_zone": "Nowhere/Land",
            "rate_limit": 5000,
            "headers": [{"key": "Host", "value": "x"}, {"key": "X-A", "value": "a\nb"}],
            "enabled": "yes",
            "colour": "blue"
        }),
    )
    .await;
    a.invalid(&[
        "name",
        "description",
        "trigger",
        "url",
        "method",
        "content_type",
        "call_types",
        "numbers[0]",
        "time_zone",
        "rate_limit",
        "headers[0].key",
        "headers[1].value",
        "enabled",
        "colour",
    ]);
}

#[tokio::test]
async fn numbers_the_account_does_not_own_are_listed_with_the_other_errors() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let a = send_json(
        &app,
        Method::POST,
        "/v1/webhooks",
        webhook_body(&json!({
            "name": "",
            "numbers": ["+14155550100", OWNED, "not a number", "+442079460958"]
        })),
    )
    .await;
    a.invalid(&["name", "numbers[0]", "numbers[2]", "numbers[3]"]);
}

#[tokio::test]
async fn every_invalid_field_is_a_422_on_put_and_patch_and_changes_nothing() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let w = app
        .create_webhook(json!({"name": "before", "numbers": [OWNED], "time_zone": "Asia/Kolkata"}))
        .await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let (_, before) = app.get(&path).await;
    for (case, over, field) in invalid_webhook_cases() {
        let a = send_json(&app, Method::PUT, &path, webhook_body(&over)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "PUT {case}: {}",
            a.body
        );
        a.invalid(&[field]);
        let a = send_json(&app, Method::PATCH, &path, over.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "PATCH {case}: {}",
            a.body
        );
        a.invalid(&[field]);
    }
    let (_, after) = app.get(&path).await;
    assert_eq!(after, before, "a refused PUT or PATCH changes nothing");
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let w = app
        .create_webhook(json!({
            "name": "CRM",
            "description": "keep me",
            "trigger": "call_missed",
            "numbers": [OWNED],
            "time_zone": "Asia/Kolkata",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}],
            "rate_limit": 5
        }))
        .await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let (s, got) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"method": "GET", "time_zone": "Europe/London"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let mut want = w.clone();
    want.as_object_mut().unwrap().remove("secret");
    want["method"] = json!("GET");
    want["time_zone"] = json!("Europe/London");
    want["updated_at"] = got["updated_at"].clone();
    assert_eq!(got, want);
    let (_, stored) = app.get(&path).await;
    assert_eq!(stored, got, "the answer is what was stored");

    // `null` clears a field that may be null; a list is replaced whole.
    let (s, got) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"rate_limit": null, "headers": [], "numbers": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["rate_limit"], Value::Null);
    assert_eq!(got["headers"], json!([]));
    assert_eq!(got["numbers"], json!([]));
    assert_eq!(got["name"], "CRM");
    assert_eq!(got["description"], "keep me");
    assert_eq!(got["method"], "GET");

    // An empty patch changes nothing.
    let (s, again) = app.call(Method::PATCH, &path, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["name"], "CRM");
    assert_eq!(again["trigger"], "call_missed");
    assert_eq!(again["time_zone"], "Europe/London");
}

#[tokio::test]
async fn disabling_and_enabling_keeps_the_reason_in_step() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let (s, got) = app
        .call(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["enabled"], false);
    assert!(got["disabled_reason"].is_string(), "{got}");
    let (_, got) = app
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(got["enabled"], true);
    assert_eq!(got["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn put_replaces_every_field_and_keeps_id_and_secret() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let w = app
        .create_webhook(json!({
            "description": "old",
            "method": "GET",
            "content_type": "application/x-www-form-urlencoded",
            "call_types": ["inbound"],
            "numbers": [OWNED],
            "time_zone": "Asia/Kolkata",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}],
            "rate_limit": 5,
            "enabled": false
        }))
        .await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let (s, got) = app
        .call(
            Method::PUT,
            &path,
            Some(json!({"name": "new", "trigger": "dtmf_option", "url": "https://other.example.com/x"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["id"], w["id"]);
    assert_eq!(
        got["created_at"], w["created_at"],
        "PUT keeps when it was made"
    );
    assert_eq!(got["name"], "new");
    assert_eq!(got["trigger"], "dtmf_option");
    assert_eq!(got["url"], "https://other.example.com/x");
    assert_eq!(got["description"], "");
    assert_eq!(got["method"], "POST");
    assert_eq!(got["content_type"], "application/json");
    assert_eq!(
        got["call_types"],
        json!(["inbound", "outbound", "click_to_call"])
    );
    assert_eq!(got["numbers"], json!([]));
    assert_eq!(got["time_zone"], "UTC");
    assert_eq!(got["headers"], json!([]));
    assert_eq!(got["rate_limit"], Value::Null);
    assert_eq!(got["enabled"], true);
    let (_, stored) = app.get(&path).await;
    assert_eq!(stored, got);
    let (_, secret) = app.get(&format!("{path}/secret")).await;
    assert_eq!(
        secret["secret"], w["secret"],
        "PUT keeps the signing secret"
    );

    // What GET answers can be PUT back as it is.
    let (s, back) = app.call(Method::PUT, &path, Some(stored.clone())).await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(back["name"], "new");
}

#[tokio::test]
async fn a_deleted_webhook_is_gone() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let a = send(&app, Some(&app.key), Method::DELETE, &path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE] {
        send(&app, Some(&app.key), method, &path, None)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    send_json(&app, Method::PATCH, &path, json!({"name": "x"}))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        Some(&app.key),
        Method::GET,
        &format!("{path}/secret"),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        Some(&app.key),
        Method::GET,
        "/v1/webhooks/not-an-id",
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"], json!([]));
}
