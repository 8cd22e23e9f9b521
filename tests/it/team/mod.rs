//! A business with a team (SPEC §13), over real HTTP on both databases: each role against
//! every route of the API and the web page (`roles`), invitations, resets, password changes
//! and removals with the sessions they end and the last-owner rule (`invitations`), and an
//! audit row for every change with no secret in the audit table (`audit`).

mod audit;
mod invitations;
mod roles;
mod secret_headers;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::*;

/// The password every test user chooses when they follow their link.
pub const PASSWORD: &str = "a long enough password";

/// A browser of one signed-in user: its session cookie and the CSRF token of its forms.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// A callhook (that may deliver to loopback receivers) with its first account, the account's
/// admin key (`app.key`) and a viewer key, and a web client that follows no redirects (so a
/// refusal or a sign-in redirect shows).
pub struct Team {
    pub app: TestApp,
    pub viewer_key: String,
    pub web: reqwest::Client,
}

/// A fresh number for each use, so that tests never collide.
pub fn fresh_number() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("+9180650{:05}", N.fetch_add(1, Ordering::Relaxed))
}

/// A fresh email.
pub fn fresh_email(who: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{who}-{}@acme.example", N.fetch_add(1, Ordering::Relaxed))
}

/// The value of the cookie `name` a response sets.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?;
            let (k, val) = pair.split_once('=')?;
            (k == name && !val.is_empty()).then(|| val.to_owned())
        })
}

/// The first `name="csrf"` hidden field of a page.
pub fn csrf_field(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

impl Team {
    pub async fn new() -> Team {
        let app = loopback_app().await;
        let (s, b) = app
            .post("/v1/api-keys", json!({"name": "support", "role": "viewer"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["role"], "viewer");
        let web = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Team {
            viewer_key: b["key"].as_str().unwrap().to_owned(),
            app,
            web,
        }
    }

    /// Invites `email` as `role` with the admin key: the user and their one-time link.
    pub async fn invite(&self, email: &str, role: &str) -> (Value, String) {
        let (s, b) = self
            .app
            .post("/v1/users", json!({"email": email, "role": role}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let url = b["invite_url"].as_str().unwrap().to_owned();
        (b, url)
    }

    /// Opens a one-time link in a new browser and sets `password` there: the status of the
    /// answer, and the browser signed in when it worked.
    pub async fn follow(&self, url: &str, password: &str) -> (StatusCode, Option<Browser>) {
        let page = self.web.get(url).send().await.unwrap();
        if page.status() != StatusCode::OK {
            return (page.status(), None);
        }
        let token = set_cookie(&page, "callhook_signin").expect("a form token cookie");
        let html = page.text().await.unwrap();
        assert_eq!(csrf_field(&html), token);
        let resp = self
            .web
            .post(url)
            .header(COOKIE, format!("callhook_signin={token}"))
            .form(&[
                ("csrf", token.as_str()),
                ("password", password),
                ("confirm", password),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let Some(session) = set_cookie(&resp, "callhook_session") else {
            return (status, None);
        };
        let cookie = format!("callhook_session={session}");
        let (s, html) = self.page_as(&cookie, "/webhooks?notice=signed-up").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        (
            status,
            Some(Browser {
                csrf: csrf_field(&html),
                cookie,
            }),
        )
    }

    /// A user with `role`, invited and signed up: their id and browser.
    pub async fn member(&self, who: &str, role: &str) -> (String, Browser) {
        let (user, url) = self.invite(&fresh_email(who), role).await;
        let (s, browser) = self.follow(&url, PASSWORD).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        (
            user["id"].as_str().unwrap().to_owned(),
            browser.expect("signed in"),
        )
    }

    async fn page_as(&self, cookie: &str, path: &str) -> (StatusCode, String) {
        let resp = self
            .web
            .get(self.app.url(path))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// A page as `b` sees it.
    pub async fn page(&self, b: &Browser, path: &str) -> (StatusCode, String) {
        self.page_as(&b.cookie, path).await
    }

    /// Posts a form as `b` (its CSRF token added): the status, where it redirects, the page.
    pub async fn form(
        &self,
        b: &Browser,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", b.csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = self
            .web
            .post(self.app.url(path))
            .header(COOKIE, &b.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (resp.status(), location, resp.text().await.unwrap())
    }

    /// Whether `b` is still signed in.
    pub async fn signed_in(&self, b: &Browser) -> bool {
        let (s, _) = self.page(b, "/webhooks").await;
        match s {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => false,
            s => panic!("/webhooks answered {s}"),
        }
    }

    /// A new webhook made with the admin key; its id.
    pub async fn webhook(&self, fields: Value) -> String {
        id_of(&self.app.create_webhook(fields).await)
    }

    /// A delivery: a DTMF event for a new call, to a webhook for DTMF made for it. Answers
    /// the delivery's id and the call's.
    pub async fn delivery(&self) -> (String, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let webhook = self.webhook(json!({"trigger": "dtmf_option"})).await;
        let call = format!("call-{}", N.fetch_add(1, Ordering::Relaxed));
        self.app
            .accept(
                json!({"type": "call.dtmf", "occurred_at": "2026-11-27T04:00:05Z",
                "call": {"call_id": call, "call_type": "inbound", "did_number": "+918065251305"},
                "dtmf": {"digit": "1"}}),
            )
            .await;
        let log = self.app.deliveries_of(&webhook, "").await;
        (id_of(&log["data"][0]), call)
    }

    /// A number added with the admin key.
    pub async fn number(&self) -> String {
        let n = fresh_number();
        self.app.add_number(&n).await;
        n
    }

    /// An API key made with the admin key; its id.
    pub async fn api_key(&self, role: &str) -> String {
        let (s, b) = self
            .app
            .post("/v1/api-keys", json!({"name": "made", "role": role}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id_of(&b)
    }

    /// A user invited with the admin key; their id.
    pub async fn user(&self, role: &str) -> String {
        id_of(&self.invite(&fresh_email("made"), role).await.0)
    }

    /// The audit log as the admin key reads it, with `query` (`""` or starting with `?`).
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (s, b) = self.app.get(&format!("/v1/audit{query}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["data"].as_array().unwrap().clone()
    }
}

/// The value of request header `name` that a delivery's first attempt sent, as its log shows it.
pub fn sent_header(delivery: &Value, name: &str) -> Option<String> {
    delivery["attempt_log"][0]["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap().to_owned())
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

impl Team {
    /// Signs `email` in through the sign-in form: the browser, when the password is right.
    pub async fn sign_in(&self, email: &str, password: &str) -> Option<Browser> {
        let page = self.web.get(self.app.url("/signin")).send().await.unwrap();
        let token = set_cookie(&page, "callhook_signin").expect("a sign-in token cookie");
        let resp = self
            .web
            .post(self.app.url("/signin"))
            .header(COOKIE, format!("callhook_signin={token}"))
            .form(&[
                ("csrf", token.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let cookie = format!(
            "callhook_session={}",
            set_cookie(&resp, "callhook_session")?
        );
        let (s, html) = self.page_as(&cookie, "/webhooks").await;
        assert_eq!(s, StatusCode::OK);
        Some(Browser {
            csrf: csrf_field(&html),
            cookie,
        })
    }

    /// Runs one statement on callhook's database, as an operator with a database console
    /// would (to move a stored time into the past).
    pub async fn sql(&self, statement: &str) {
        use sqlx::Connection;
        let url = &self.app.database_url;
        let statement = sqlx::AssertSqlSafe(statement.to_owned());
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        } else {
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let mut c =
                sqlx::SqliteConnection::connect_with(&opts.busy_timeout(Duration::from_secs(10)))
                    .await
                    .unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
    }
}

impl Team {
    /// What the database holds, as bytes to search: on SQLite, a copy of the database file
    /// (`VACUUM INTO`, so the log's last commits are in it) with only the tables in `keep`
    /// (all when empty), vacuumed again so that nothing of the others is left in free pages;
    /// on PostgreSQL, `pg_dump` of those tables.
    pub async fn dump(&self, keep: &[&str]) -> Vec<u8> {
        use sqlx::Connection;
        let url = &self.app.database_url;
        if url.starts_with("postgres") {
            let mut cmd = std::process::Command::new("pg_dump");
            cmd.arg("--data-only");
            for t in keep {
                cmd.arg(format!("--table={t}"));
            }
            let out = cmd.arg(url).output().expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out.stdout;
        }
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.db");
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut live =
            sqlx::SqliteConnection::connect_with(&opts.busy_timeout(Duration::from_secs(10)))
                .await
                .unwrap();
        sqlx::query("VACUUM INTO $1")
            .bind(copy.display().to_string())
            .execute(&mut live)
            .await
            .unwrap();
        live.close().await.unwrap();
        if !keep.is_empty() {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&copy);
            let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut c)
                .await
                .unwrap();
            for t in tables.iter().filter(|t| !keep.contains(&t.as_str())) {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{t}\"")))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("VACUUM").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        std::fs::read(&copy).unwrap()
    }
}

/// Whether `needle` is anywhere in `hay`.
pub fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
