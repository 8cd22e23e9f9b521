//! Upgrading a database made by an earlier callhook: a webhook saved before URLs and header
//! values became templates (SPEC §11) keeps sending exactly what it sent, every `$` literal;
//! and a key and a user made before roles (SPEC §13) are an admin key and an owner.

use std::time::Duration;

use callhook::core::credentials::hash_token;
use callhook::core::id::new_id;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::helpers::*;
use crate::receiver::Receiver;

fn on_postgres() -> bool {
    std::env::var("CALLHOOK_TEST_DATABASE").as_deref() == Ok("postgres")
}

const KEY: &str = "chk_legacy_test_key_000000000000000000000000000";

/// The schema of the first release only, as it was migrated then.
fn first_release(sql: &'static str) -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )])
}

/// The rows a first-release callhook kept for an account, its key and one webhook whose URL
/// and header hold a `$` meant literally.
fn legacy_rows(receiver: &str, enabled: &str, webhook_id: &str) -> Vec<String> {
    let (account, key) = (new_id("acct"), new_id("key"));
    let spec = json!({"name": "legacy", "description": "", "trigger": "call_received",
        "url": format!("{receiver}/p$q?x=$1"), "method": "POST", "call_types": ["inbound"],
        "content_type": "application/json", "numbers": [], "time_zone": "UTC",
        "headers": [{"key": "X-Token", "value": "tok$en$"}], "rate_limit": null, "enabled": true});
    let secrets = json!([{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "created_at": 1, "expires_at": null}]);
    vec![
        format!("INSERT INTO accounts (id, name, created_at) VALUES ('{account}', 'Legacy', 1)"),
        format!(
            "INSERT INTO api_keys (id, account_id, name, prefix, hash, created_at) \
             VALUES ('{key}', '{account}', 'k', 'chk_le', '{}', 1)",
            hash_token(KEY)
        ),
        format!(
            "INSERT INTO webhooks (id, account_id, spec, trigger, enabled, secrets, created_at, updated_at) \
             VALUES ('{webhook_id}', '{account}', '{}', 'call_received', {enabled}, '{}', 1, 1)",
            spec.to_string().replace('\'', "''"),
            secrets
        ),
        format!(
            "INSERT INTO users (id, account_id, email, password_hash, created_at) \
             VALUES ('{}', '{account}', 'legacy@acme.example', 'argon', 1)",
            new_id("usr")
        ),
    ]
}

async fn upgraded_webhook_sends_what_it_sent(database_url: String, rx: Receiver, id: &str) {
    let app = spawn_app_with(|s| {
        s.database_url = database_url;
        s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (s, w) = app
        .call_as(
            Some(KEY),
            reqwest::Method::GET,
            &format!("/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["url"], format!("{}$$q?x=$$1", rx.url("/p")));
    // X-Token is secret by its name: its value is write-only now, and sent as it was.
    assert_eq!(
        w["headers"][0],
        json!({"key": "X-Token", "value": "********", "secret": true})
    );
    let (s, b) = app
        .call_as(
            Some(KEY),
            reqwest::Method::POST,
            "/v1/events",
            Some(json!({"type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
                "call": {"call_id": "c-legacy", "call_type": "inbound", "did_number": "+918065251305"}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(r.path, "/p$q");
    assert_eq!(r.query.as_deref(), Some("x=$1"));
    assert_eq!(r.header("x-token"), Some("tok$en$"));
    // Its signing secret, stored in clear before SPEC §14, was sealed at the start.
    assert!(
        r.header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,")),
        "still signed"
    );
    let stored = crate::at_rest::stored_text(&app.database_url).await;
    assert!(stored.contains(id), "the webhook is in what was searched");
    crate::at_rest::assert_none_stored(
        &stored,
        &[
            ("legacy signing secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("legacy header value", "tok$en$"),
            ("legacy header value as upgraded", "tok$$en$$"),
        ],
    );
    assert!(
        crate::verifier::signed_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &r, &r.body),
        "with the secret it had"
    );
    // Before roles, a key could do everything and a user ran the account.
    let (s, keys) = app
        .call_as(Some(KEY), reqwest::Method::GET, "/v1/api-keys", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{keys}");
    assert_eq!(keys["data"][0]["role"], "admin", "{keys}");
    let (s, users) = app
        .call_as(Some(KEY), reqwest::Method::GET, "/v1/users", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{users}");
    assert_eq!(
        (&users["data"][0]["email"], &users["data"][0]["role"]),
        (&json!("legacy@acme.example"), &json!("owner")),
        "{users}"
    );
}

#[tokio::test]
async fn an_upgraded_sqlite_database_keeps_literal_dollars() {
    if on_postgres() {
        return; // this case is SQLite's; the PostgreSQL one is below
    }
    let rx = Receiver::start().await;
    let id = new_id("wh");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        use sqlx::Connection;
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
            .await
            .unwrap();
        first_release(include_str!(
            "../../src/store/migrations/sqlite/0001_init.sql"
        ))
        .run_direct(None, &mut conn, false)
        .await
        .unwrap();
        for sql in legacy_rows(&rx.url(""), "1", &id) {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    upgraded_webhook_sends_what_it_sent(url, rx, &id).await;
}

#[tokio::test]
async fn an_upgraded_postgres_database_keeps_literal_dollars() {
    if !on_postgres() {
        return; // run with CALLHOOK_TEST_DATABASE=postgres
    }
    let rx = Receiver::start().await;
    let id = new_id("wh");
    let url = pg_database().await;
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        first_release(include_str!(
            "../../src/store/migrations/postgres/0001_init.sql"
        ))
        .run_direct(None, &mut conn, false)
        .await
        .unwrap();
        for sql in legacy_rows(&rx.url(""), "true", &id) {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    upgraded_webhook_sends_what_it_sent(url, rx, &id).await;
}
