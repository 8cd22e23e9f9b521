//! Accounts, API keys, numbers, webhooks, secrets and the trigger catalogue over real HTTP
//! (issue 2): every validation rule of SPEC §3, tenant isolation, paging, secret rotation,
//! and malformed input that must never reach a 500.

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::spec;

/// An answer with the headers we check.
struct Answer {
    status: StatusCode,
    content_type: String,
    www_authenticate: Option<String>,
    body: Value,
}

impl Answer {
    async fn read(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE).unwrap_or_default();
        let www_authenticate = header(WWW_AUTHENTICATE);
        let text = resp.text().await.expect("the body is readable");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            content_type,
            www_authenticate,
            body,
        }
    }

    /// Asserts a problem+json answer with `status`, and that the document says so too.
    #[track_caller]
    fn problem(&self, status: StatusCode) -> &Answer {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{status}: {}",
            self.body
        );
        assert_eq!(self.body["status"], status.as_u16(), "{}", self.body);
        assert!(self.body["title"].is_string(), "{}", self.body);
        assert!(self.body["detail"].is_string(), "{}", self.body);
        self
    }

    /// Asserts a 422 whose `errors[].field` are exactly `fields` (in any order).
    #[track_caller]
    fn invalid(&self, fields: &[&str]) {
        self.problem(StatusCode::UNPROCESSABLE_ENTITY);
        let mut got = problem_fields(&self.body);
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{}", self.body);
        for e in self.body["errors"].as_array().unwrap() {
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "every error says what is wrong: {}",
                self.body
            );
        }
    }
}

/// A JSON request with `token`.
async fn send(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Answer::read(req.send().await.expect("callhook answers")).await
}

/// A request with the app's account key, as JSON.
async fn send_json(app: &TestApp, method: Method, path: &str, body: Value) -> Answer {
    send(app, Some(&app.key), method, path, Some(body)).await
}

/// A request with the app's account key and a body sent byte for byte.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.key)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    Answer::read(req.send().await.expect("callhook answers")).await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// The smallest valid webhook, with `over` laid on top.
fn webhook_body(over: &Value) -> Value {
    let mut body =
        json!({"name": "hook", "trigger": "call_received", "url": "https://crm.example.com/hook"});
    for (k, v) in over.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// `n` headers named `X-0`, `X-1`, ….
fn headers(n: usize) -> Value {
    json!(
        (0..n)
            .map(|i| json!({"key": format!("X-{i}"), "value": "v"}))
            .collect::<Vec<_>>()
    )
}

/// The number the tests' account owns.
const OWNED: &str = "+918065251305";

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
        json!([{"key": "X-Api-Key", "value": "s3cr3t"}])
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

// ---------------------------------------------------------------------------------------------
// Numbers

#[tokio::test]
async fn numbers_are_stored_in_e164() {
    let app = spawn_app().await;
    let (s, n) = app
        .post(
            "/v1/numbers",
            json!({"number": "+91 80652 51305", "label": "Sales"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(n["number"], OWNED);
    assert_eq!(n["label"], "Sales");
    let (s, list) = app.get("/v1/numbers").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], OWNED);
    let (s, got) = app.get("/v1/numbers/%2B918065251305").await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["number"], OWNED);
    assert_eq!(got["label"], "Sales");
}

#[tokio::test]
async fn bad_numbers_are_a_422_naming_number() {
    let app = spawn_app().await;
    for bad in [
        json!("918065251305"),
        json!("+91 80652 5130x"),
        json!("+123"),
        json!("+1234567890123456"),
        json!("+0918065251305"),
        json!(""),
        json!(null),
        json!(918065251305u64),
    ] {
        let a = send_json(&app, Method::POST, "/v1/numbers", json!({"number": bad})).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            a.body
        );
        a.invalid(&["number"]);
    }
    send_json(
        &app,
        Method::POST,
        "/v1/numbers",
        json!({"number": OWNED, "label": "l".repeat(101)}),
    )
    .await
    .invalid(&["label"]);
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_number_added_twice_is_a_409() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    for spelling in [OWNED, "+91 80652-51305"] {
        send_json(
            &app,
            Method::POST,
            "/v1/numbers",
            json!({"number": spelling}),
        )
        .await
        .problem(StatusCode::CONFLICT);
    }
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_numbers_label_can_be_changed_and_removed() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let path = "/v1/numbers/%2B918065251305";
    let (s, n) = app
        .call(Method::PATCH, path, Some(json!({"label": "Sales line"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["number"], OWNED);
    assert_eq!(n["label"], "Sales line");
    let (_, got) = app.get(path).await;
    assert_eq!(got["label"], "Sales line");

    let (s, n) = app.call(Method::PATCH, path, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["label"], "Sales line", "a PATCH without label keeps it");

    send_json(&app, Method::PATCH, path, json!({"label": "l".repeat(101)}))
        .await
        .invalid(&["label"]);
    send_json(&app, Method::PATCH, path, json!({"lable": "typo"}))
        .await
        .invalid(&["lable"]);
    let (_, got) = app.get(path).await;
    assert_eq!(got["label"], "Sales line");

    let (s, n) = app
        .call(Method::PATCH, path, Some(json!({"label": null})))
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["label"], Value::Null);

    send_json(
        &app,
        Method::PATCH,
        "/v1/numbers/%2B14155550100",
        json!({"label": "x"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_number_can_be_deleted() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    app.add_number("+14155550100").await;
    let path = "/v1/numbers/%2B918065251305";
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    send(&app, Some(&app.key), Method::GET, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, Some(&app.key), Method::DELETE, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], "+14155550100");
    // Once gone, it can be added again.
    app.add_number(OWNED).await;
}

#[tokio::test]
async fn a_number_a_webhook_uses_cannot_be_deleted() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let w = app.create_webhook(json!({"numbers": [OWNED]})).await;
    let path = "/v1/numbers/%2B918065251305";
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    a.problem(StatusCode::CONFLICT);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(&id_of(&w)), "names the webhook: {detail}");
    let (s, _) = app.get(path).await;
    assert_eq!(s, StatusCode::OK, "the number is still there");

    // Once no webhook names it, it goes.
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", id_of(&w)),
            Some(json!({"numbers": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation and authentication

#[tokio::test]
async fn another_accounts_webhook_is_a_404() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let (_, other_key) = app.other_account("Other").await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let b = Some(other_key.as_str());
    send(&app, b, Method::GET, &path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PATCH, &path, Some(json!({"name": "mine"})))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PUT, &path, Some(webhook_body(&json!({}))))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::GET, &format!("{path}/secret"), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        b,
        Method::POST,
        &format!("{path}/secret/rotate"),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::DELETE, &path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let a = send(&app, b, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"], json!([]));

    // Untouched for its owner.
    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["name"], w["name"]);
    let (_, secret) = app.get(&format!("{path}/secret")).await;
    assert_eq!(secret["secret"], w["secret"]);
    assert_eq!(secret["previous"], json!([]));
}

#[tokio::test]
async fn accounts_see_only_their_own_rows() {
    let app = spawn_app().await;
    let (_, b_key) = app.other_account("B").await;
    let b = Some(b_key.as_str());
    app.add_number(OWNED).await;
    let wa = app.create_webhook(json!({"name": "of A"})).await;
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/numbers",
        Some(json!({"number": "+14155550100"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/webhooks",
        Some(webhook_body(&json!({"name": "of B"}))),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let wb = a.body;
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "B's ci"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], wa["id"]);
    let list = send(&app, b, Method::GET, "/v1/webhooks", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], wb["id"]);

    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], OWNED);
    let list = send(&app, b, Method::GET, "/v1/numbers", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], "+14155550100");

    let (_, list) = app.get("/v1/api-keys").await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default"]);
    let list = send(&app, b, Method::GET, "/v1/api-keys", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn another_accounts_numbers_are_a_404_and_cannot_be_used() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let (_, b_key) = app.other_account("B").await;
    let b = Some(b_key.as_str());
    let path = "/v1/numbers/%2B918065251305";
    send(&app, b, Method::GET, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PATCH, path, Some(json!({"label": "mine"})))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::DELETE, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        b,
        Method::POST,
        "/v1/webhooks",
        Some(webhook_body(&json!({"numbers": [OWNED]}))),
    )
    .await
    .invalid(&["numbers[0]"]);
    let (s, n) = app.get(path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["label"], Value::Null);
}

#[tokio::test]
async fn another_accounts_api_key_cannot_be_revoked() {
    let app = spawn_app().await;
    let (_, b_key) = app.other_account("B").await;
    let (_, keys) = app.get("/v1/api-keys").await;
    let a_key_id = id_of(&keys["data"][0]);
    let a = send(
        &app,
        Some(&b_key),
        Method::DELETE,
        &format!("/v1/api-keys/{a_key_id}"),
        None,
    )
    .await;
    a.problem(StatusCode::NOT_FOUND);
    let (s, _) = app.get("/v1/webhooks").await;
    assert_eq!(s, StatusCode::OK, "A's key still works");
}

#[tokio::test]
async fn account_keys_cannot_use_operator_routes() {
    let app = spawn_app().await;
    let k = Some(app.key.as_str());
    send(&app, k, Method::GET, "/v1/accounts", None)
        .await
        .problem(StatusCode::FORBIDDEN);
    send(
        &app,
        k,
        Method::POST,
        "/v1/accounts",
        Some(json!({"name": "Evil"})),
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    send(
        &app,
        k,
        Method::GET,
        &format!("/v1/accounts/{}", app.account_id),
        None,
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    let (s, list) = app.operator(Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&app.account_id.as_str()), "{list}");
    assert!(
        !ids.iter().any(|id| id.contains("Evil")) && !list.to_string().contains("Evil"),
        "the refused create made nothing: {list}"
    );
}

#[tokio::test]
async fn the_operator_creates_and_reads_accounts() {
    let app = spawn_app().await;
    let (s, created) = app
        .operator(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "Globex"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(id_of(&created).starts_with("acct_"));
    assert!(
        created["api_key"]["key"]
            .as_str()
            .unwrap()
            .starts_with("chk_")
    );
    let (s, got) = app
        .operator(
            Method::GET,
            &format!("/v1/accounts/{}", id_of(&created)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let mut want = created.clone();
    want.as_object_mut().unwrap().remove("api_key");
    assert_eq!(got, want, "GET shows what the create answered");
    let a = send(
        &app,
        Some(OPERATOR_TOKEN),
        Method::GET,
        "/v1/accounts/acct_nope",
        None,
    )
    .await;
    a.problem(StatusCode::NOT_FOUND);
    for bad in [
        json!({"name": ""}),
        json!({}),
        json!({"name": "x", "plan": "gold"}),
    ] {
        let a = send(
            &app,
            Some(OPERATOR_TOKEN),
            Method::POST,
            "/v1/accounts",
            Some(bad),
        )
        .await;
        a.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Its key sees its own, empty account.
    let key = created["api_key"]["key"].as_str().unwrap();
    let a = send(&app, Some(key), Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"], json!([]));
}

#[tokio::test]
async fn the_operator_token_cannot_use_account_routes() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let wh = format!("/v1/webhooks/{}", id_of(&w));
    let op = Some(OPERATOR_TOKEN);
    for (method, path, body) in [
        (Method::GET, "/v1/webhooks".to_owned(), None),
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            Some(webhook_body(&json!({}))),
        ),
        (Method::GET, wh.clone(), None),
        (Method::PATCH, wh.clone(), Some(json!({"name": "x"}))),
        (Method::DELETE, wh.clone(), None),
        (Method::GET, format!("{wh}/secret"), None),
        (Method::POST, format!("{wh}/secret/rotate"), None),
        (Method::GET, "/v1/numbers".to_owned(), None),
        (
            Method::POST,
            "/v1/numbers".to_owned(),
            Some(json!({"number": OWNED})),
        ),
        (Method::GET, "/v1/api-keys".to_owned(), None),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "x"})),
        ),
    ] {
        let a = send(&app, op, method.clone(), &path, body).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.body
        );
        a.problem(StatusCode::FORBIDDEN);
    }
    let (s, _) = app.get(&wh).await;
    assert_eq!(s, StatusCode::OK, "the webhook is still there");
}

#[tokio::test]
async fn no_token_or_a_wrong_token_is_a_401() {
    let app = spawn_app().await;
    let wrong = [
        None,
        Some("chk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        Some("garbage".to_owned()),
        Some(format!("{OPERATOR_TOKEN}x")),
        Some(format!("{}x", app.key)),
        Some(String::new()),
    ];
    for token in &wrong {
        for (method, path) in [
            (Method::GET, "/v1/webhooks"),
            (Method::POST, "/v1/webhooks"),
            (Method::GET, "/v1/numbers"),
            (Method::GET, "/v1/api-keys"),
            (Method::GET, "/v1/accounts"),
            (Method::POST, "/v1/accounts"),
            (Method::GET, "/v1/triggers"),
        ] {
            let body = (method == Method::POST).then(|| json!({"name": "x"}));
            let a = send(&app, token.as_deref(), method.clone(), path, body).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{token:?} {method} {path}"
            );
            a.problem(StatusCode::UNAUTHORIZED);
            assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"));
        }
    }
    // The key in another scheme is no bearer token.
    let resp = app
        .http
        .get(app.url("/v1/webhooks"))
        .header("Authorization", format!("Basic {}", app.key))
        .send()
        .await
        .unwrap();
    Answer::read(resp).await.problem(StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// API keys

#[tokio::test]
async fn an_api_key_is_shown_once_works_and_is_revoked_at_once() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let (s, created) = app.post("/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("chk_"), "{key}");
    assert!(id_of(&created).starts_with("key_"));
    assert_eq!(created["name"], "ci");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let (s, list) = app.get("/v1/api-keys").await;
    assert_eq!(s, StatusCode::OK);
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the default key and the new one: {list}");
    let listed = items
        .iter()
        .find(|k| k["id"] == created["id"])
        .expect("the new key is listed");
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().remove("key");
    assert_eq!(
        listed, &shown,
        "the list shows what the create answered, but the secret"
    );
    for k in items {
        assert!(k.get("key").is_none(), "no secret in a list: {k}");
    }
    let text = list.to_string();
    assert!(!text.contains(&key), "the new secret is never listed again");
    assert!(!text.contains(&app.key), "nor the first one");

    // The new key works, on the same account.
    let a = send(&app, Some(&key), Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"][0]["id"], w["id"]);

    let a = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&created)),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    send(&app, Some(&key), Method::GET, "/v1/webhooks", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let (s, list) = app.get("/v1/api-keys").await;
    assert_eq!(s, StatusCode::OK, "the other key still works");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&created)),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_can_revoke_itself_unless_it_is_the_last() {
    let app = spawn_app().await;
    let (_, keys) = app.get("/v1/api-keys").await;
    let last = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&keys["data"][0])),
        None,
    )
    .await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    let (status, _) = app.post("/v1/api-keys", json!({"name": "spare"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let a = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&keys["data"][0])),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    send(&app, Some(&app.key), Method::GET, "/v1/api-keys", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_key_names_are_validated() {
    let app = spawn_app().await;
    for bad in [json!(""), json!("k".repeat(101)), json!(null), json!(7)] {
        send_json(&app, Method::POST, "/v1/api-keys", json!({"name": bad}))
            .await
            .invalid(&["name"]);
    }
    let (_, list) = app.get("/v1/api-keys").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Paging

#[tokio::test]
async fn lists_page_with_limit_and_next() {
    let app = spawn_app().await;
    let mut made = Vec::new();
    for i in 0..7 {
        let w = app
            .create_webhook(json!({"name": format!("hook {i}")}))
            .await;
        made.push(id_of(&w));
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/webhooks?limit=3".to_owned();
    loop {
        let (s, page) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["data"].as_array().unwrap();
        pages.push(items.len());
        seen.extend(items.iter().map(id_of));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/webhooks?limit=3&after={next}"),
            None => {
                assert_eq!(page["next"], Value::Null);
                break;
            }
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, made, "every webhook once, oldest first");

    let (_, all) = app.get("/v1/webhooks").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 7);
    assert_eq!(all["next"], Value::Null);
}

#[tokio::test]
async fn a_full_last_page_has_no_next() {
    let app = spawn_app().await;
    for _ in 0..6 {
        app.create_webhook(json!({})).await;
    }
    let (_, first) = app.get("/v1/webhooks?limit=3").await;
    let next = first["next"].as_str().unwrap();
    let (_, second) = app.get(&format!("/v1/webhooks?limit=3&after={next}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 3);
    assert_eq!(second["next"], Value::Null);
}

#[tokio::test]
async fn numbers_page_in_number_order() {
    let app = spawn_app().await;
    let numbers = ["+919812345678", "+14155550100", OWNED, "+442079460958"];
    for n in numbers {
        app.add_number(n).await;
    }
    let mut want = numbers.to_vec();
    want.sort();
    let (_, first) = app.get("/v1/numbers?limit=2").await;
    let next = first["next"].as_str().expect("a next page").to_owned();
    // The cursor as a client may paste it (`+` unencoded), and encoded.
    for after in [next.clone(), next.replace('+', "%2B")] {
        let (s, second) = app.get(&format!("/v1/numbers?limit=2&after={after}")).await;
        assert_eq!(s, StatusCode::OK, "{second}");
        assert_eq!(second["next"], Value::Null, "after={after}: {second}");
        let seen: Vec<&str> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["data"].as_array().unwrap())
            .map(|n| n["number"].as_str().unwrap())
            .collect();
        assert_eq!(
            seen, want,
            "every number once, in number order (after={after})"
        );
    }
}

#[tokio::test]
async fn a_limit_out_of_range_is_a_422_naming_limit() {
    let app = spawn_app().await;
    for path in ["/v1/webhooks", "/v1/numbers", "/v1/api-keys"] {
        for limit in ["0", "1001"] {
            send(
                &app,
                Some(&app.key),
                Method::GET,
                &format!("{path}?limit={limit}"),
                None,
            )
            .await
            .invalid(&["limit"]);
        }
        let a = send(
            &app,
            Some(&app.key),
            Method::GET,
            &format!("{path}?limit=1000"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let resp = app
        .http
        .get(app.url("/v1/accounts?limit=0"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    Answer::read(resp).await.invalid(&["limit"]);
}

// ---------------------------------------------------------------------------------------------
// Signing secrets

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

// ---------------------------------------------------------------------------------------------
// The trigger catalogue

#[tokio::test]
async fn the_catalogue_lists_the_eleven_triggers_in_order() {
    let app = spawn_app().await;
    let (s, list) = app.get("/v1/triggers").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = spec::TRIGGERS.iter().map(|t| t.id).collect();
    assert_eq!(ids, want);
    for (t, want) in data.iter().zip(&spec::TRIGGERS) {
        let id = want.id;
        assert_eq!(t["label"], want.label, "{id}");
        assert_eq!(t["fires_on"], want.fires_on, "{id}");
        let params = t["parameters"].as_array().unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, want.params(), "{id}");
        for (i, p) in params.iter().enumerate() {
            assert_eq!(p["common"], i < spec::COMMON.len(), "{id}: {p}");
            let name = p["name"].as_str().unwrap();
            assert_eq!(p["kind"], spec::kind_of(name), "{id}: {p}");
            // SPEC §11: a type, a one-line meaning and an example of that type.
            let json_type = match spec::kind_of(name) {
                "seconds" => "integer",
                "list" => "array",
                _ => "string",
            };
            assert_eq!(p["type"], json_type, "{id}: {p}");
            let description = p["description"].as_str().unwrap_or_default();
            assert!(
                !description.is_empty() && !description.contains('\n'),
                "{id}: {p}"
            );
            let example = &p["example"];
            let typed = match json_type {
                "integer" => example.is_i64(),
                "array" => example
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string)),
                _ => example.as_str().is_some_and(|s| !s.is_empty()),
            };
            assert!(typed, "{id}: {p}");
        }
    }
    assert_eq!(list["next"], Value::Null);
}

#[tokio::test]
async fn every_trigger_has_a_sample_with_its_parameters() {
    let app = spawn_app().await;
    for t in &spec::TRIGGERS {
        let id = t.id;
        let (s, sample) = app.get(&format!("/v1/triggers/{id}/sample")).await;
        assert_eq!(s, StatusCode::OK, "{id}: {sample}");
        assert_eq!(sample["trigger"], id);
        let keys: Vec<&str> = sample["parameters"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, t.params(), "{id}");
        assert_eq!(sample["parameters"]["trigger"], id);
        assert_eq!(sample["request"]["method"], "POST");
        let body: Value =
            serde_json::from_str(sample["request"]["body"].as_str().unwrap()).expect("a JSON body");
        assert_eq!(body, sample["parameters"], "{id}");
    }
}

#[tokio::test]
async fn a_sample_follows_the_query() {
    let app = spawn_app().await;
    let (s, sample) = app
        .get("/v1/triggers/call_received/sample?method=GET&time_zone=Asia/Kolkata")
        .await;
    assert_eq!(s, StatusCode::OK, "{sample}");
    assert_eq!(sample["parameters"]["time_zone"], "Asia/Kolkata");
    let at = sample["parameters"]["occurred_at"].as_str().unwrap();
    assert!(at.ends_with("+05:30"), "{at}");
    assert_eq!(sample["request"]["method"], "GET");
    assert_eq!(sample["request"]["body"], Value::Null);
    assert!(
        sample["request"]["url"]
            .as_str()
            .unwrap()
            .contains("trigger=call_received"),
        "{sample}"
    );
}

#[tokio::test]
async fn a_bad_sample_request_is_refused() {
    let app = spawn_app().await;
    send(
        &app,
        Some(&app.key),
        Method::GET,
        "/v1/triggers/call_ended/sample",
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    for (query, field) in [
        ("method=PUT", "method"),
        ("content_type=text/plain", "content_type"),
        ("time_zone=Mars/Olympus", "time_zone"),
        ("url=ftp://x.example.com/", "url"),
    ] {
        send(
            &app,
            Some(&app.key),
            Method::GET,
            &format!("/v1/triggers/call_missed/sample?{query}"),
            None,
        )
        .await
        .invalid(&[field]);
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed input: never a 500

/// The routes that take a JSON body, for the app's account key.
fn json_routes(webhook: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/webhooks".to_owned()),
        (Method::PUT, webhook.to_owned()),
        (Method::PATCH, webhook.to_owned()),
        (Method::POST, "/v1/numbers".to_owned()),
        (Method::PATCH, "/v1/numbers/%2B918065251305".to_owned()),
        (Method::POST, "/v1/api-keys".to_owned()),
    ]
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (method, path) in json_routes(&wh) {
        for body in [
            "{\"name\": ".to_owned(),
            "{name: 'x'}".to_owned(),
            "{\"name\": \"x\"} trailing".to_owned(),
            "\u{FEFF}".to_owned(),
            deep.clone(),
        ] {
            let a = send_raw(
                &app,
                method.clone(),
                &path,
                Some("application/json"),
                body.clone(),
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {:?}: {}",
                &body[..body.len().min(20)],
                a.body
            );
            a.problem(StatusCode::BAD_REQUEST);
        }
        let a = send_raw(
            &app,
            method.clone(),
            &path,
            Some("application/json"),
            vec![0xff, 0xfe, b'{'],
        )
        .await;
        a.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn an_empty_body_is_a_400() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path) in json_routes(&wh) {
        let a = send_raw(&app, method.clone(), &path, Some("application/json"), "").await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            a.body
        );
        a.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path) in json_routes(&wh) {
        for body in [
            json!([]),
            json!([{"name": "x"}]),
            json!("a string"),
            json!(5),
            json!(null),
        ] {
            let a = send_json(&app, method.clone(), &path, body.clone()).await;
            assert_eq!(
                a.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {body}: {}",
                a.body
            );
            a.problem(StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
}

#[tokio::test]
async fn wrong_types_are_a_422_naming_the_field() {
    let app = spawn_app().await;
    for (over, field) in [
        (json!({"name": 5}), "name"),
        (json!({"name": ["a"]}), "name"),
        (json!({"description": {}}), "description"),
        (json!({"trigger": 1}), "trigger"),
        (json!({"url": []}), "url"),
        (json!({"method": true}), "method"),
        (json!({"content_type": 1}), "content_type"),
        (json!({"call_types": "inbound"}), "call_types"),
        (json!({"call_types": [1]}), "call_types[0]"),
        (json!({"numbers": "+918065251305"}), "numbers"),
        (json!({"numbers": [918065251305u64]}), "numbers[0]"),
        (json!({"time_zone": 5.5}), "time_zone"),
        (json!({"headers": {"X-A": "1"}}), "headers"),
        (json!({"headers": ["X-A: 1"]}), "headers[0]"),
        (
            json!({"headers": [{"key": 1, "value": "v"}]}),
            "headers[0].key",
        ),
        (
            json!({"headers": [{"key": "X-A", "value": 1}]}),
            "headers[0].value",
        ),
        (json!({"headers": [{"key": "X-A"}]}), "headers[0].value"),
        (
            json!({"headers": [{"key": "X-A", "value": "v", "extra": 1}]}),
            "headers[0].extra",
        ),
        (json!({"rate_limit": true}), "rate_limit"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"enabled": 1}), "enabled"),
    ] {
        let a = send_json(&app, Method::POST, "/v1/webhooks", webhook_body(&over)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{over}: {}",
            a.body
        );
        a.invalid(&[field]);
    }
}

#[tokio::test]
async fn an_unknown_field_is_a_422_naming_it() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            webhook_body(&json!({"colour": "blue"})),
        ),
        (
            Method::PUT,
            wh.clone(),
            webhook_body(&json!({"colour": "blue"})),
        ),
        (Method::PATCH, wh.clone(), json!({"colour": "blue"})),
        (
            Method::POST,
            "/v1/numbers".to_owned(),
            json!({"number": "+14155550100", "colour": "blue"}),
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            json!({"name": "k", "colour": "blue"}),
        ),
    ] {
        let a = send_json(&app, method.clone(), &path, body).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {}",
            a.body
        );
        a.invalid(&["colour"]);
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["name"], "hook");
}

#[tokio::test]
async fn a_body_over_a_mebibyte_is_a_413() {
    let app = spawn_app().await;
    let body = json!({"name": "n", "description": "d".repeat(1024 * 1024)}).to_string();
    assert!(body.len() > 1024 * 1024);
    for path in ["/v1/webhooks", "/v1/numbers", "/v1/api-keys"] {
        let a = send_raw(
            &app,
            Method::POST,
            path,
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            a.body
        );
        a.problem(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Just under the limit is read (and then refused for what it says, not for its size).
    let mut small = json!({"name": "n", "trigger": "call_received", "url": "https://crm.example.com/h", "description": ""})
        .to_string();
    let pad = 1024 * 1024 - small.len();
    small = small.replace(
        "\"description\":\"\"",
        &format!("\"description\":\"{}\"", "d".repeat(pad)),
    );
    assert_eq!(small.len(), 1024 * 1024);
    let a = send_raw(
        &app,
        Method::POST,
        "/v1/webhooks",
        Some("application/json"),
        small,
    )
    .await;
    a.invalid(&["description"]);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    let valid = webhook_body(&json!({})).to_string();
    for (method, path) in json_routes(&wh) {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let a = send_raw(&app, method.clone(), &path, ct, valid.clone()).await;
            assert_eq!(
                a.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} {ct:?}: {}",
                a.body
            );
            a.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    // A charset parameter is fine.
    let a = send_raw(
        &app,
        Method::POST,
        "/v1/webhooks",
        Some("application/json; charset=utf-8"),
        valid,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}
