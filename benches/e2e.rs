//! End-to-end load benchmark: a fresh `callhook serve` (release build, SQLite in a temp
//! folder), the `whsink` receiver, and a load generator in this process. See BENCHMARKS.md.
//!
//!     scripts/bench                       # builds whsink, then runs every scenario
//!     cargo bench --bench e2e -- one      # one scenario: one | fanout | blackhole | many
//!
//! Each scenario reports events accepted per second (batches of 100, and one event per
//! request), deliveries per second end to end, event-to-receipt latency p50/p99 at 1,000
//! events/s, callhook's CPU seconds per 10,000 deliveries and its peak RSS.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const OPERATOR: &str = "cho_bench";
const DID: &str = "+918065251305";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = ["one", "fanout", "blackhole", "many"];
    let chosen: Vec<&str> = if args.is_empty() {
        all.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for s in chosen {
        rt.block_on(scenario(s));
    }
}

fn whsink() -> PathBuf {
    if let Ok(p) = std::env::var("WHSINK") {
        return p.into();
    }
    for p in [
        "../shared/tools/whsink/target/release/whsink",
        "target/whsink/release/whsink",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("whsink not found: run scripts/bench, or set WHSINK to its binary");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// callhook's CPU seconds so far (user + system) and peak RSS in MiB, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, hwm / 1024.0)
}

struct Bench {
    dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    key: String,
    callhook: Proc,
    sink: Proc,
    sink_out: PathBuf,
    sink_url: String,
}

async fn start(id_field: bool) -> Bench {
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let sink_port = free_port();
    let sink_out = dir.path().join("sink.log");
    let mut sink_cmd = Command::new(whsink());
    sink_cmd.args([
        "--listen",
        &format!("127.0.0.1:{sink_port}"),
        "--out",
        sink_out.to_str().unwrap(),
    ]);
    if id_field {
        sink_cmd.args(["--id-field", "event_id", "--prefer-field"]);
    }
    let sink = Proc(
        sink_cmd
            .stderr(Stdio::null())
            .spawn()
            .expect("whsink starts"),
    );
    let port = free_port();
    let callhook = Proc(
        Command::new(env!("CARGO_BIN_EXE_callhook"))
            .arg("serve")
            .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CALLHOOK_DATA_DIR", dir.path().join("data"))
            .env("CALLHOOK_OPERATOR_TOKEN", OPERATOR)
            .env("CALLHOOK_ALLOW_TARGETS", "127.0.0.0/8")
            .env("CALLHOOK_LOG", "warn")
            .env("CALLHOOK_REQUEST_TIMEOUT", "5s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("callhook starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let t0 = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "callhook did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, key) = account(&http, &base, "bench").await;
    Bench {
        dir,
        base,
        http,
        key,
        callhook,
        sink,
        sink_out,
        sink_url: format!("http://127.0.0.1:{sink_port}/hook"),
    }
}

async fn account(http: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let v: Value = http
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["api_key"]["key"].as_str().unwrap().to_owned(),
    )
}

async fn webhook(http: &reqwest::Client, base: &str, key: &str, url: &str) {
    let r = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(key)
        .json(&json!({"name": "bench", "trigger": "call_received", "url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn event(id: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
           "call": {"call_id": id, "call_type": "inbound", "did_number": DID}})
}

/// Posts `total` events in requests of `batch` from `conns` connections as fast as accepted.
/// Returns events accepted per second; writes `id sent_ns` lines to `sent` if given.
async fn flood(b: &Bench, prefix: &str, total: u64, batch: u64, conns: u64) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, base, key, next, prefix) = (
            b.http.clone(),
            b.base.clone(),
            b.key.clone(),
            next.clone(),
            prefix.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let body: Value = if batch == 1 {
                    event(&format!("{prefix}{first}"))
                } else {
                    Value::Array(
                        (first..(first + batch).min(total))
                            .map(|i| event(&format!("{prefix}{i}")))
                            .collect(),
                    )
                };
                let r = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Posts single events at `rate` per second for `secs`, recording send times for whsink.
async fn paced(b: &Bench, prefix: &str, rate: u64, secs: u64, sent: &Path) -> u64 {
    let mut lines = String::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let total = rate * secs;
    let mut inflight = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let id = format!("{prefix}{i}");
        lines.push_str(&format!("{id} {}\n", unix_ns()));
        let (http, base, key) = (b.http.clone(), b.base.clone(), b.key.clone());
        inflight.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&key)
                .json(&event(&id))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }));
    }
    for t in inflight {
        t.await.unwrap();
    }
    std::fs::write(sent, lines).unwrap();
    total
}

/// Lines of `whsink report` as (label, value).
fn report(b: &Bench, sent: Option<&Path>) -> Vec<(String, String)> {
    let mut cmd = Command::new(whsink());
    cmd.args(["report", "--out", b.sink_out.to_str().unwrap()]);
    if let Some(s) = sent {
        cmd.args(["--sent", s.to_str().unwrap()]);
    }
    let out = cmd.output().expect("whsink report");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.len() > 23)
        .map(|l| (l[..23].trim().to_owned(), l[23..].trim().to_owned()))
        .collect()
}

fn field<'a>(r: &'a [(String, String)], label: &str) -> &'a str {
    r.iter()
        .find(|(l, _)| l.starts_with(label))
        .map_or("?", |(_, v)| v.as_str())
}

fn received(b: &Bench) -> u64 {
    std::fs::read_to_string(&b.sink_out).map_or(0, |s| s.lines().count() as u64)
}

async fn wait_received(b: &Bench, n: u64, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    while received(b) < n {
        assert!(
            t0.elapsed() < timeout,
            "only {} of {n} deliveries arrived",
            received(b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

async fn scenario(name: &str) {
    println!("\n## scenario: {name}");
    let fanout = match name {
        "fanout" => 10,
        _ => 1,
    };
    let b = start(fanout == 1 && name != "blackhole").await;
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match name {
        "one" | "many" => webhook(&b.http, &b.base, &b.key, &b.sink_url).await,
        "fanout" => {
            for _ in 0..10 {
                webhook(&b.http, &b.base, &b.key, &b.sink_url).await;
            }
        }
        "blackhole" => {
            // 10 webhooks, one of which (10%) never answers.
            for _ in 0..9 {
                webhook(&b.http, &b.base, &b.key, &b.sink_url).await;
            }
            webhook(
                &b.http,
                &b.base,
                &b.key,
                &format!("http://{}/hole", hole.local_addr().unwrap()),
            )
            .await;
        }
        other => panic!("unknown scenario {other}"),
    }
    if name == "many" {
        let t0 = Instant::now();
        configure_many(&b).await;
        println!(
            "configured 100,000 webhooks in 10,000 accounts in {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let pid = b.callhook.0.id();
    // 1. Ingest: batches of 100, then one event per request.
    let n_batch: u64 = 50_000;
    let per_batch = flood(&b, "b", n_batch, 100, 8).await;
    println!("accepted, batches of 100:   {per_batch:>8.0} events/s");
    wait_received(
        &b,
        n_batch * fanout_healthy(name, fanout),
        Duration::from_secs(300),
    )
    .await;
    let n_single: u64 = 20_000;
    let singles = flood(&b, "s", n_single, 1, 32).await;
    println!("accepted, one per request:  {singles:>8.0} events/s");
    wait_received(
        &b,
        (n_batch + n_single) * fanout_healthy(name, fanout),
        Duration::from_secs(300),
    )
    .await;
    // 2. Sustained delivery: a fresh burst, timed from the first post to the last receipt.
    let (cpu0, _) = usage(pid);
    let before = received(&b);
    let n_burst: u64 = 30_000 / fanout;
    let t0 = Instant::now();
    flood(&b, "d", n_burst, 100, 4).await;
    let want = before + n_burst * fanout_healthy(name, fanout);
    wait_received(&b, want, Duration::from_secs(300)).await;
    let secs = t0.elapsed().as_secs_f64();
    let delivered = (want - before) as f64;
    let (cpu1, _) = usage(pid);
    println!(
        "delivered end to end:       {:>8.0} deliveries/s ({delivered} in {secs:.2} s)",
        delivered / secs
    );
    println!(
        "callhook CPU:               {:>8.2} s per 10,000 deliveries ({:.3} ms each)",
        (cpu1 - cpu0) / delivered * 10_000.0,
        (cpu1 - cpu0) / delivered * 1000.0
    );
    // 3. Latency at 1,000 events/s.
    if fanout == 1 && name != "blackhole" {
        let sent = b.dir.path().join("sent.txt");
        let before = received(&b);
        let total = paced(&b, "p", 1000, 10, &sent).await;
        wait_received(&b, before + total, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(1200)).await; // whsink flushes every second
        let r = report(&b, Some(&sent));
        println!(
            "latency at 1,000 events/s:  {}",
            field(&r, "latency first arrival")
        );
        println!(
            "  sent {}, lost {}",
            field(&r, "sent ids"),
            field(&r, "lost")
        );
    }
    let (_, rss) = usage(pid);
    println!("callhook peak RSS:          {rss:>8.1} MiB");
    let _ = std::io::stdout().flush();
    drop(b.sink);
}

/// Deliveries per event that reach the sink (the black-holed one never does).
fn fanout_healthy(name: &str, fanout: u64) -> u64 {
    if name == "blackhole" { 9 } else { fanout }
}

/// 10,000 accounts with 10 webhooks each, none of which match the bench events.
async fn configure_many(b: &Bench) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, base, next) = (b.http.clone(), b.base.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 10_000 {
                    break;
                }
                let (_, key) = account(&http, &base, &format!("tenant {i}")).await;
                for _ in 0..10 {
                    webhook(&http, &base, &key, "https://crm.example.com/hook").await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
