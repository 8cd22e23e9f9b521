//! Real `callhook serve` processes for the tests that kill one (crash safety) or run several
//! on one database (multi-node).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::OPERATOR_TOKEN;

/// Child processes killed when dropped, so a failing test leaves no server behind.
pub struct Nodes(pub Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The master key of nodes that share a database (32 bytes, base64).
pub const NODES_SECRET_KEY: &str = "bm9kZXMgc2hhcmUgdGhpcyBrZXkgZm9yIHRlc3RzISE=";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `callhook serve` on `port` with quick retries and short leases (5 s: a killed node's
/// work comes back within seconds even before its heartbeats are missed), on `database` or an
/// SQLite file in `dir`.
/// Places for `n` nodes: a data folder, a free port and its base URL each.
pub fn node_places(n: usize) -> (Vec<tempfile::TempDir>, Vec<u16>, Vec<String>) {
    let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let bases = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    (dirs, ports, bases)
}

pub fn start_node(dir: &std::path::Path, port: u16, database: Option<&str>) -> Child {
    start_node_with(dir, port, database, None, &[])
}

/// Like [`start_node`], with a settings file (`--config`) and more settings in `env`.
pub fn start_node_with(
    dir: &std::path::Path,
    port: u16,
    database: Option<&str>,
    config: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
    if let Some(url) = database {
        // Nodes sharing a database share its master key (each has its own data folder).
        cmd.env("CALLHOOK_DATABASE_URL", url)
            .env("CALLHOOK_SECRET_KEY", NODES_SECRET_KEY);
    }
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    cmd.arg("serve")
        .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALLHOOK_DATA_DIR", dir)
        .env("CALLHOOK_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CALLHOOK_ALLOW_TARGETS", "127.0.0.0/8")
        .env(
            "CALLHOOK_RETRY_SCHEDULE",
            "100ms,200ms,400ms,800ms,1s,1s,1s,1s",
        )
        .env("CALLHOOK_LEASE", "5s")
        .env("CALLHOOK_REQUEST_TIMEOUT", "1s")
        .env("CALLHOOK_POLL_INTERVAL", "100ms")
        .env("CALLHOOK_MAX_IN_FLIGHT", "64")
        .env("CALLHOOK_LOG", "warn")
        // After the defaults above, so a test's own settings win.
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("callhook starts")
}

pub async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "callhook did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Through the API of the node at `base` (the one at `hook_base`, if another): an account with
/// a webhook on `call.received` to `url`. Answers the account's API key.
pub async fn account_with_webhook(
    http: &reqwest::Client,
    base: &str,
    hook_base: &str,
    url: &str,
) -> String {
    let account: serde_json::Value = http
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({"name": "processes"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = account["api_key"]["key"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{hook_base}/v1/webhooks"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "sink", "trigger": "call_received", "url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    key
}

/// The Prometheus page of the node at `base`.
pub async fn metrics(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
