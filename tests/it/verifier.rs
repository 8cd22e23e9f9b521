//! Signatures checked independently of callhook's code: the Standard Webhooks HMAC written
//! here from its specification, and the PyPI `standardwebhooks` package run on what a receiver
//! got (`tests/verify_signatures.py`, in `$CALLHOOK_PYTHON` or `.venv`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::receiver::Received;

/// `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{content}` keyed with the decoded secret:
/// the Standard Webhooks scheme, written here from its specification.
pub fn standard_signature(secret: &str, id: &str, timestamp: &str, content: &str) -> String {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{content}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Whether `secret` made one of the space-separated signatures of `r` over `content`.
pub fn signed_with(secret: &str, r: &Received, content: &str) -> bool {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let want = standard_signature(secret, id, ts, content);
    r.header("webhook-signature")
        .expect("webhook-signature")
        .split(' ')
        .any(|s| s == want)
}

/// A Python with the `standardwebhooks` package: `$CALLHOOK_PYTHON`, else `.venv/bin/python`.
fn python() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("CALLHOOK_PYTHON").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    for c in &candidates {
        let works = Command::new(c)
            .args(["-c", "from standardwebhooks.webhooks import Webhook"])
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return c.clone();
        }
    }
    panic!(
        "no Python with the standardwebhooks package (tried {candidates:?}): run scripts/test, \
         which installs it in .venv, or set CALLHOOK_PYTHON"
    )
}

/// Runs tests/verify_signatures.py on `items`; answers its lines (`ok` / `bad`).
pub async fn python_verdicts(items: Vec<Value>) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_signatures.py");
        let mut child = Command::new(python())
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        {
            let mut stdin = child.stdin.take().unwrap();
            for item in &items {
                writeln!(stdin, "{item}").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            lines.len(),
            items.len(),
            "one verdict per line; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines
    })
    .await
    .unwrap()
}

/// What the Python verifier needs to check one received POST.
pub fn verifier_input(secret: &str, r: &Received, body: &str) -> Value {
    json!({
        "secret": secret,
        "id": r.header("webhook-id").unwrap(),
        "timestamp": r.header("webhook-timestamp").unwrap(),
        "body": body,
        "signature": r.header("webhook-signature").unwrap(),
    })
}
