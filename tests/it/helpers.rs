//! `spawn_app()`: a real callhook on a free loopback port with a fresh database, and typed
//! helpers to call it: the [`TestApp`] methods every area's tests share (make a webhook, post
//! events, read the delivery log, wait for it to settle).

use std::time::{Duration, Instant};

use callhook::app::App;
use callhook::config::{Dur, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "cho_test_operator_token";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// The first account made through the operator API, and its key.
    pub account_id: String,
    pub key: String,
    pub _dir: tempfile::TempDir,
}

/// Settings for a test server: a temp folder, loopback receivers allowed, quick retries.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        operator_token: OPERATOR_TOKEN.into(),
        log: "warn".into(),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// With `CALLHOOK_TEST_DATABASE=postgres` every test gets a fresh PostgreSQL database
/// (`CALLHOOK_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`) instead of SQLite.
pub async fn test_database_url() -> Option<String> {
    if std::env::var("CALLHOOK_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    Some(pg_database().await)
}

/// A fresh, empty PostgreSQL database.
pub async fn pg_database() -> String {
    let server = std::env::var("CALLHOOK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("callhook_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL is reachable");
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("a test database can be created");
    format!("{server}/{name}")
}

/// A server that may reach loopback receivers, polls often and retries quickly
/// (`100ms,200ms`): what tests that deliver to a [`crate::receiver::Receiver`] start.
pub async fn loopback_app() -> TestApp {
    loopback_app_with(|_| {}).await
}

/// [`loopback_app`], with `tweak` applied last.
pub async fn loopback_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        s.poll_interval = Dur(Duration::from_millis(100));
        s.retry_schedule = "100ms,200ms".parse().unwrap();
        tweak(s);
    })
    .await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    // Warnings and errors (an internal error behind a 500, say) show with a failing test,
    // through the test harness's capture.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    if let Some(url) = test_database_url().await {
        settings.database_url = url;
    }
    tweak(&mut settings);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(settings).await.expect("the app starts");
    tokio::spawn(app.serve(listener, std::future::pending()));
    callhook::init_crypto();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp::attach(base, http, dir, "Acme").await
}

impl TestApp {
    /// A [`TestApp`] on a callhook at `base` (one a test started itself, to stop or restart
    /// it), with a first account named `account` made through the operator API.
    pub async fn attach(
        base: String,
        http: reqwest::Client,
        dir: tempfile::TempDir,
        account: &str,
    ) -> TestApp {
        let mut t = TestApp {
            base,
            http,
            account_id: String::new(),
            key: String::new(),
            _dir: dir,
        };
        (t.account_id, t.key) = t.other_account(account).await;
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `token`; answers the status and the body as JSON (or a string).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("callhook answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Some(&self.key), method, path, body).await
    }

    pub async fn operator(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Some(OPERATOR_TOKEN), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Adds a number to My Numbers.
    pub async fn add_number(&self, number: &str) {
        let (s, b) = self.post("/v1/numbers", json!({"number": number})).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Creates a webhook from `fields` (over sane defaults); answers its JSON.
    pub async fn create_webhook(&self, fields: Value) -> Value {
        let mut body = json!({"name": "hook", "trigger": "call_received", "url": "https://crm.example.com/hook"});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, b) = self.post("/v1/webhooks", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b
    }

    /// Creates a webhook whose `url` is a loopback receiver; answers its id.
    pub async fn hook(&self, fields: Value) -> String {
        let url = fields["url"]
            .as_str()
            .expect("every test webhook names its url");
        assert!(
            url.starts_with("http://127.")
                || url.starts_with("http://[::1]")
                || url.starts_with("http://[::ffff:127.")
                || url.starts_with("http://localhost"),
            "test webhooks only point at loopback: {url}"
        );
        self.create_webhook(fields).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The current signing secret of webhook `webhook_id`.
    pub async fn secret_of(&self, webhook_id: &str) -> String {
        let (s, b) = self.get(&format!("/v1/webhooks/{webhook_id}/secret")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["secret"].as_str().unwrap().to_owned()
    }

    /// Posts events with the account key and expects a 202; answers the counts.
    pub async fn accept(&self, events: Value) -> Value {
        let (s, b) = self.post("/v1/events", events).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        b
    }

    /// One delivery with its attempt log (`GET /v1/deliveries/{id}`).
    pub async fn delivery(&self, id: &str) -> Value {
        let (s, b) = self.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    /// A page of webhook `webhook_id`'s delivery log; `query` is `""` or starts with `?`.
    pub async fn deliveries_of(&self, webhook_id: &str, query: &str) -> Value {
        let (s, b) = self
            .get(&format!("/v1/webhooks/{webhook_id}/deliveries{query}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{query}: {b}");
        b
    }

    /// Polls the delivery log until `webhook_id` has `n` deliveries and none is pending;
    /// answers them, newest first.
    pub async fn settled(&self, webhook_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let b = self.deliveries_of(webhook_id, "?limit=1000").await;
            let data = b["data"].as_array().unwrap().clone();
            if data.len() >= n && data.iter().all(|d| d["status"] != "pending") {
                assert_eq!(data.len(), n, "{b}");
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "{webhook_id}: expected {n} finished deliveries: {b:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Another account with its own key, through the operator API.
    pub async fn other_account(&self, name: &str) -> (String, String) {
        let (s, b) = self
            .operator(Method::POST, "/v1/accounts", Some(json!({"name": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        (
            b["id"].as_str().unwrap().to_owned(),
            b["api_key"]["key"].as_str().unwrap().to_owned(),
        )
    }
}

/// The `field`s of a validation problem, in order.
pub fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}
