//! Secrets at rest (SPEC §14): what the database holds (the SQLite file and its WAL, or a
//! `pg_dump` of the PostgreSQL database) contains no secret in use; `callhook rekey` then a
//! start with the new key signs exactly as before; a wrong key, a missing key file or one
//! others can read stops the start with a message that says what to do.

use std::path::Path;
use std::time::Duration;

use callhook::app::App;
use callhook::config::{Dur, Settings};
use callhook::core::seal::Key;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::verifier::signed_with;

/// Everything the database holds, as text: the SQLite file and its WAL, or a `pg_dump`.
pub async fn stored_text(database_url: &str) -> String {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(bytes);
            }
        }
        assert!(!all.is_empty(), "the SQLite file {path} is there");
        return String::from_utf8_lossy(&all).into_owned();
    }
    let url = database_url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    assert!(dump.contains("webhooks"), "the dump has the webhooks table");
    dump
}

/// Fails naming each secret found in what is stored.
pub fn assert_none_stored(stored: &str, secrets: &[(&str, &str)]) {
    for (what, s) in secrets {
        assert!(!s.is_empty());
        assert!(!stored.contains(s), "the {what} is stored in clear");
    }
}

/// The base64 of a `whsec_` secret: what an HMAC key would show as in a dump.
fn secret_body(secret: &str) -> &str {
    secret.strip_prefix("whsec_").unwrap()
}

fn received(id: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
           "call": {"call_id": id, "call_type": "inbound", "did_number": "+918065251305"}})
}

#[tokio::test]
async fn the_database_holds_no_signing_secret_in_clear() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    let id = app.hook(json!({"url": rx.url("/in")})).await;
    let first = app.secret_of(&id).await;
    let (s, b) = app
        .post(&format!("/v1/webhooks/{id}/secret/rotate"), json!({}))
        .await;
    assert!(s.is_success(), "{b}");
    let second = app.secret_of(&id).await;
    assert_ne!(first, second);
    app.accept(received("ev-1")).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert!(
        signed_with(&second, &r, &r.body),
        "signed with the new secret"
    );
    assert!(signed_with(&first, &r, &r.body), "and the previous one");
    app.settled(&id, 1).await;

    // The account's alert secret (SPEC §12), and the one it rotated out.
    let alert_first = alert_secret(&app).await;
    let (s, b) = app.post("/v1/account/alert-secret/rotate", json!({})).await;
    assert!(s.is_success(), "{b}");
    let alert_second = alert_secret(&app).await;
    assert_ne!(alert_first, alert_second);

    let stored = stored_text(&app.database_url).await;
    assert!(stored.contains(&id), "the webhook is in what was searched");
    assert_none_stored(
        &stored,
        &[
            ("signing secret", secret_body(&second)),
            ("previous signing secret", secret_body(&first)),
            ("alert secret", secret_body(&alert_second)),
            ("previous alert secret", secret_body(&alert_first)),
        ],
    );
}

/// The account's alert signing secret, as an admin reads it.
async fn alert_secret(app: &TestApp) -> String {
    let (s, b) = app.get("/v1/account").await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");
    b["alert_secret"].as_str().unwrap().to_owned()
}

/// A callhook on `settings` until the returned sender is dropped or sent to; answers its base
/// URL and a handle that ends when it has stopped.
async fn run(
    settings: Settings,
) -> anyhow::Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(settings).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Ok((base, stop, handle))
}

async fn settings_in(dir: &Path) -> Settings {
    callhook::init_crypto();
    let mut s = test_settings(dir);
    if let Some(url) = test_database_url().await {
        s.database_url = url;
    }
    s.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
    s.poll_interval = Dur(Duration::from_millis(100));
    s.retry_schedule = "100ms,200ms".parse().unwrap();
    s
}

/// Starts callhook once on a new database and stops it: its key is made.
async fn first_start(settings: &Settings) {
    let (_base, stop, stopped) = run(settings.clone()).await.unwrap();
    let _ = stop.send(());
    stopped.await.unwrap();
}

fn start_error(r: anyhow::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("the start should have been refused"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn rekey_then_a_start_with_the_new_key_signs_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path()).await;
    let key_file = dir.path().join("secret.key");
    let (base, stop, stopped) = run(settings.clone()).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the key file is made for its owner only"
        );
    }
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let mut app = TestApp::attach(
        base,
        reqwest::Client::new(),
        tempfile::tempdir().unwrap(),
        "Acme",
    )
    .await;
    let rx = Receiver::start().await;
    let id = app
        .hook(json!({"url": rx.url("/in"), "headers": [{"key": "X-Static", "value": "plain-header-value"}]}))
        .await;
    let secret = app.secret_of(&id).await;
    let alert = alert_secret(&app).await;
    app.accept(received("before")).await;
    let before = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert!(signed_with(&secret, &before, &before.body));
    app.settled(&id, 1).await;
    let _ = stop.send(());
    stopped.await.unwrap();

    // The new key in secret_key, the old one kept in previous_secret_keys: rekey.
    let new_key = Key::generate().to_base64();
    let mut both = settings.clone();
    both.secret_key = new_key.clone();
    both.previous_secret_keys = vec![old_key.trim().to_owned()];
    let stored_before = stored_text(&settings.database_url()).await;
    callhook::cli::rekey(&both).await.unwrap();
    // Idempotent: a second run finds nothing left under the old key.
    let store = callhook::app::open_database(&both).await.unwrap();
    assert_eq!(callhook::secrets::rekey(&both, &*store).await.unwrap(), 0);
    drop(store);
    let stored_after = stored_text(&settings.database_url()).await;
    let old_kid = Key::parse(&old_key).unwrap().kid().to_owned();
    let new_kid = Key::parse(&new_key).unwrap().kid().to_owned();
    assert!(stored_before.contains(&format!("v1.{old_kid}.")));
    assert!(stored_after.contains(&format!("v1.{new_kid}.")));

    // The old key alone no longer opens the database's secrets.
    let e = start_error(App::build(settings.clone()).await);
    assert!(
        e.contains(&format!(
            "secret_key does not open this database's secrets (key id {new_kid})"
        )),
        "{e}"
    );

    // The new key alone: the same secret signs, the header is sent as set.
    let mut new_only = settings.clone();
    new_only.secret_key = new_key;
    let (base, _stop, _running) = run(new_only).await.unwrap();
    app.base = base;
    assert_eq!(app.secret_of(&id).await, secret);
    assert_eq!(alert_secret(&app).await, alert, "the alert secret too");
    app.accept(received("after")).await;
    let after = rx.wait_for(2, Duration::from_secs(10)).await.remove(1);
    assert!(
        signed_with(&secret, &after, &after.body),
        "the same secret signs"
    );
    assert_eq!(after.header("x-static"), Some("plain-header-value"));
    let stored = stored_text(&settings.database_url()).await;
    assert!(
        !stored.contains(&format!("v1.{old_kid}.")),
        "nothing is left under the old key"
    );
    assert_none_stored(&stored, &[("signing secret", secret_body(&secret))]);
}

#[tokio::test]
async fn a_wrong_or_missing_key_stops_the_start_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path()).await;
    first_start(&settings).await;
    let key_file = dir.path().join("secret.key");
    let kid = Key::parse(&std::fs::read_to_string(&key_file).unwrap())
        .unwrap()
        .kid()
        .to_owned();

    let mut wrong = settings.clone();
    wrong.secret_key = Key::generate().to_base64();
    let e = start_error(App::build(wrong).await);
    assert!(
        e.contains(&format!(
            "secret_key does not open this database's secrets (key id {kid}); set secret_key to the key with id {kid}"
        )),
        "{e}"
    );

    std::fs::rename(&key_file, dir.path().join("elsewhere.key")).unwrap();
    let e = start_error(App::build(settings.clone()).await);
    assert!(
        e.contains(&format!(
            "encrypted with key id {kid}, but secret_key is not set and the key file"
        )),
        "{e}"
    );
    assert!(
        !key_file.exists(),
        "no new key is made for a database that has one"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path()).await;
    first_start(&settings).await;
    let key_file = dir.path().join("secret.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = start_error(App::build(settings.clone()).await);
    assert!(
        e.contains(&format!(
            "the key file {} may be read by others",
            key_file.display()
        )) && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_base, _stop, _running) = run(settings).await.unwrap();
}

#[tokio::test]
async fn migrate_makes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path()).await;
    callhook::cli::migrate(&settings).await.unwrap();
    assert!(!dir.path().join("secret.key").exists());
}

/// What `callhook serve` logs at `debug` while a webhook with a secret header is made, its
/// secret rotated and revealed, and an event delivered: no secret and no header value.
#[tokio::test]
async fn the_log_holds_no_secret() {
    use std::process::{Command, Stdio};

    use crate::nodes::{Nodes, free_port, wait_healthy};
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
    if let Some(url) = test_database_url().await {
        cmd.env("CALLHOOK_DATABASE_URL", url);
    }
    let secret_key = Key::generate().to_base64();
    let child = cmd
        .arg("serve")
        .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALLHOOK_DATA_DIR", dir.path())
        .env("CALLHOOK_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CALLHOOK_ALLOW_TARGETS", "127.0.0.0/8")
        .env("CALLHOOK_SECRET_KEY", &secret_key)
        .env("CALLHOOK_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("callhook starts");
    let nodes = Nodes(vec![child]);
    let http = reqwest::Client::new();
    wait_healthy(&http, &base).await;
    let app = TestApp::attach(base, http, tempfile::tempdir().unwrap(), "Logged").await;
    let rx = Receiver::start().await;
    let id = app
        .hook(json!({"url": rx.url("/in"), "headers": [{"key": "X-Api-Key", "value": "logged-header-secret-5d1"}]}))
        .await;
    let first = app.secret_of(&id).await;
    let (s, b) = app
        .post(&format!("/v1/webhooks/{id}/secret/rotate"), json!({}))
        .await;
    assert!(s.is_success(), "{b}");
    let second = app.secret_of(&id).await;
    let alert = alert_secret(&app).await;
    app.accept(received("logged")).await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    app.settled(&id, 1).await;
    drop(nodes);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "the log was written: {log}"
    );
    assert_none_stored(
        &log,
        &[
            ("header value", "logged-header-secret-5d1"),
            ("signing secret", secret_body(&first)),
            ("rotated signing secret", secret_body(&second)),
            ("alert secret", secret_body(&alert)),
            ("master key", secret_key.as_str()),
            ("operator token", OPERATOR_TOKEN),
            ("API key", app.key.as_str()),
        ],
    );
}
