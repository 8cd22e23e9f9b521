//! Accounts, API keys, numbers, webhooks, secrets and the trigger catalogue over real HTTP
//! (issue 2): every validation rule of SPEC §3, tenant isolation, paging, secret rotation,
//! and malformed input that must never reach a 500.
//!
//! One file per topic; this one holds the request helpers they share.

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::spec;

mod api_keys;
mod catalogue;
mod malformed;
mod numbers;
mod paging;
mod secrets;
mod tenants;
mod webhooks;

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
