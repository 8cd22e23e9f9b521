//! End-to-end load benchmark: fresh `callhook serve` processes (release build), the `whsink`
//! receiver, and a load generator in this process, all on this machine. See BENCHMARKS.md.
//!
//!     scripts/bench                        # builds whsink, then runs every scenario
//!     scripts/bench one fanout             # some scenarios
//!
//! Scenarios: `one` (10 accounts, one webhook each: one delivery per event), `single` (one
//! webhook only), `fanout` (one account, 10 webhooks), `blackhole` (as fanout, one of the 10
//! never answers), `many` (as one, with 100,000 other webhooks in 10,000 other accounts),
//! `pg1` and `pg3` (as one, on PostgreSQL, with one and with three nodes), `spread` (100
//! accounts with one webhook each: latency at 5,000 events/s), `stored` (latency at 1,000
//! events/s on an empty database, then again with 1,000,000 deliveries stored).
//!
//! Each reports events accepted per second (batches of 100, and one event per request),
//! deliveries per second end to end, event-to-receipt latency p50/p99 at 1,000 events/s where
//! it applies, callhook's CPU per delivery and its peak RSS. Each scenario first measures the
//! loopback HTTP limit: requests per second an HTTP client (reqwest, as in every run since the
//! first) gets from a bare whsink, so every figure can be read as a share of what the machine
//! does at that moment. The load itself is sent by a leaner client of its own ([`Conn`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const OPERATOR: &str = "cho_bench";
const DID: &str = "+918065251305";
const ALL: [&str; 10] = [
    "one",
    "single",
    "fanout",
    "blackhole",
    "many",
    "pg1",
    "pg3",
    "spread",
    "stored",
    "latency",
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let chosen: Vec<&str> = if args.is_empty() {
        // `stored` takes as long as all the others together: only when asked for.
        ALL.iter()
            .copied()
            .filter(|s| !matches!(*s, "latency" | "stored"))
            .collect()
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

/// A process's CPU seconds so far (user + system) and peak RSS in MiB, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|u| u.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0);
    ((tick(11) + tick(12)) / 100.0, hwm / 1024.0)
}

/// The peaks of a process's anonymous memory (heap, stacks) and file-backed resident pages
/// (SQLite's memory-mapped database file), sampled every 20 ms: VmHWM counts both.
struct RssWatch {
    anon_kib: Arc<AtomicU64>,
    file_kib: Arc<AtomicU64>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let (anon_kib, file_kib) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (a, f) = (anon_kib.clone(), file_kib.clone());
        std::thread::spawn(move || {
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kib = |key: &str| {
                    status
                        .lines()
                        .find(|l| l.starts_with(key))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|k| k.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                a.fetch_max(kib("RssAnon:"), Ordering::Relaxed);
                f.fetch_max(kib("RssFile:") + kib("RssShmem:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch { anon_kib, file_kib }
    }
}

struct Bench {
    dir: tempfile::TempDir,
    nodes: Vec<(String, Proc)>,
    watches: Vec<RssWatch>,
    http: reqwest::Client,
    /// API keys of the accounts events are posted for, round robin.
    keys: Vec<String>,
    _sink: Proc,
    sink_out: PathBuf,
    sink_url: String,
}

impl Bench {
    fn cpu(&self) -> f64 {
        self.nodes.iter().map(|(_, p)| usage(p.0.id()).0).sum()
    }

    fn peak_rss(&self) -> f64 {
        self.nodes
            .iter()
            .map(|(_, p)| usage(p.0.id()).1)
            .fold(0.0, f64::max)
    }

    /// The peak RSS line: VmHWM of the largest node, and the sampled peaks of its parts.
    fn rss_line(&self) -> String {
        let mib = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1024.0;
        let anon = self
            .watches
            .iter()
            .map(|w| mib(&w.anon_kib))
            .fold(0.0, f64::max);
        let file = self
            .watches
            .iter()
            .map(|w| mib(&w.file_kib))
            .fold(0.0, f64::max);
        format!(
            "callhook peak RSS:          {:>8.1} MiB{} (sampled peaks: anonymous {anon:.1} MiB, file-backed {file:.1} MiB)",
            self.peak_rss(),
            if self.nodes.len() > 1 {
                " (largest node)"
            } else {
                ""
            },
        )
    }

    fn base(&self) -> &str {
        &self.nodes[0].0
    }
}

/// A whsink on `port` writing its record to `out` (taking the event id from the body with
/// `id_field`).
fn sink(port: u16, out: &Path, id_field: bool) -> Proc {
    let mut cmd = Command::new(whsink());
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--out",
        out.to_str().unwrap(),
    ]);
    if id_field {
        cmd.args(["--id-field", "event_id", "--prefer-field"]);
    }
    Proc(cmd.stderr(Stdio::null()).spawn().expect("whsink starts"))
}

/// The HTTP client for setting up and reading results (not the load itself: see [`Conn`]).
fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// One kept-alive HTTP/1.1 connection of the load generator: requests are written as prepared
/// bytes and each answer is read to its end by its `Content-Length`, as `wrk` does. The load
/// generator shares the machine's two cores with callhook and the receiver, so its own cost per
/// request lowers the figures: against a bare whsink this gets about 2.5 times the requests per
/// second reqwest does (BENCHMARKS.md, eleventh pass, where both are compared on one build).
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(base: &str) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(authority(base)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends a request made by [`request`] and answers the status, once the whole answer is
    /// read. An error means the connection is no longer usable.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some((status, len)) = head(&self.buf)? {
                while self.buf.len() < len {
                    self.read_more().await?;
                }
                self.buf.drain(..len);
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt as _;
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// The status of the answer at the start of `buf` and the length of the whole answer (head
/// and body), once its head has arrived.
fn head(buf: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut len = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            len = value
                .trim()
                .parse()
                .map_err(|_| bad("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not read by this load generator"));
        }
    }
    Ok(Some((status, end + 4 + len)))
}

/// The `host:port` of a base URL such as `http://127.0.0.1:8080`.
fn authority(base: &str) -> &str {
    base.strip_prefix("http://").unwrap_or(base)
}

/// A POST of `body` to `path` on `base`, with `key` as its bearer token when given.
fn request(base: &str, path: &str, key: Option<&str>, body: &[u8]) -> Vec<u8> {
    let host = authority(base);
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends `request` on `conn` (a new connection to `base` when there is none) and answers the
/// status. A kept-alive connection the server closed as the request went out fails before
/// anything was read: the request is sent again on a new connection.
async fn post(conn: &mut Option<Conn>, base: &str, request: &[u8]) -> u16 {
    let mut tries = 0;
    loop {
        let c = match conn {
            Some(c) => c,
            None => conn.insert(Conn::open(base).await.expect("connects")),
        };
        match c.send(request).await {
            Ok(status) => return status,
            Err(e) => {
                *conn = None;
                tries += 1;
                assert!(tries <= 3, "post to {base}: {e}");
                eprintln!("post to {base}: {e}; trying again");
            }
        }
    }
}

/// The loopback HTTP limit: requests per second that reqwest, from 64 connections in this
/// process, gets answered by a whsink of its own for `secs` (a bare receiver: what the
/// machine's loopback, the receiver and a load generator do together right now). Measured
/// with reqwest as in every earlier run, so shares of it compare across BENCHMARKS.md's
/// passes, though the load itself is sent by [`Conn`], which costs less per request.
async fn loopback_limit(secs: f64) -> f64 {
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _sink = sink(port, &dir.path().join("sink.log"), false);
    let http = load_client();
    let url = format!("http://127.0.0.1:{port}/hook");
    let t0 = Instant::now();
    while http.post(&url).body("{}").send().await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "whsink did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = event("loopback-0000000000").into_bytes();
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (http, url, body, done) = (http.clone(), url.clone(), body.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let _ = r.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// `x` as a share of the loopback limit `limit`, for printing.
fn share(x: f64, limit: f64) -> String {
    format!("{:.1} % of the loopback limit", x / limit * 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh PostgreSQL database for the run.
async fn pg_database() -> String {
    let server = std::env::var("CALLHOOK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("callhook_bench_{}", unix_ns());
    pg_admin(&server, format!("CREATE DATABASE {name}")).await;
    format!("{server}/{name}")
}

/// Runs `sql` on the server's `postgres` database.
async fn pg_admin(server: &str, sql: String) {
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
    sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(sql))
        .await
        .unwrap();
}

async fn start(nodes: usize, database: Option<String>, id_field: bool) -> Bench {
    callhook::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let sink_port = free_port();
    let sink_out = dir.path().join("sink.log");
    let sink = sink(sink_port, &sink_out, id_field);
    let http = load_client();
    let mut procs = Vec::new();
    for i in 0..nodes {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
        cmd.arg("serve")
            .env("CALLHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CALLHOOK_DATA_DIR", dir.path().join("data"))
            .env("CALLHOOK_OPERATOR_TOKEN", OPERATOR)
            .env("CALLHOOK_ALLOW_TARGETS", "127.0.0.0/8")
            .env("CALLHOOK_LOG", "warn")
            .env("CALLHOOK_REQUEST_TIMEOUT", "5s")
            // The load generator is one client address with as many connections as requests
            // wait (the paced runs open one per request while callhook is slow to answer).
            .env("CALLHOOK_MAX_CONNECTIONS_PER_CLIENT", "100000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(db) = &database {
            cmd.env("CALLHOOK_DATABASE_URL", db);
        }
        let base = format!("http://127.0.0.1:{port}");
        procs.push((base.clone(), Proc(cmd.spawn().expect("callhook starts"))));
        let t0 = Instant::now();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "callhook node {i} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let watches = procs
        .iter()
        .map(|(_, p)| RssWatch::start(p.0.id()))
        .collect();
    Bench {
        dir,
        nodes: procs,
        watches,
        http,
        keys: Vec::new(),
        _sink: sink,
        sink_out,
        sink_url: format!("http://127.0.0.1:{sink_port}/hook"),
    }
}

async fn account(http: &reqwest::Client, base: &str, name: &str) -> String {
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
    v["api_key"]["key"].as_str().unwrap().to_owned()
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

/// A `call.received` event whose event and call ids are `id`, as JSON text.
fn event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"call.received","occurred_at":"2026-11-27T04:00:00Z","call":{{"call_id":"{id}","call_type":"inbound","did_number":"{DID}"}}}}"#
    )
}

/// Posts `total` events in requests of `batch` from `conns` connections as fast as they are
/// accepted, spread over the nodes and accounts. Answers events accepted per second.
async fn flood(b: &Bench, prefix: &str, total: u64, batch: u64, conns: u64) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let bases: Arc<Vec<String>> = Arc::new(b.nodes.iter().map(|(u, _)| u.clone()).collect());
    let keys = Arc::new(b.keys.clone());
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (next, prefix, bases, keys) =
            (next.clone(), prefix.to_owned(), bases.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            // One kept-alive connection to each node, opened when first used.
            let mut conns: Vec<Option<Conn>> = bases.iter().map(|_| None).collect();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let n = first / batch;
                let node = n as usize % bases.len();
                let base = &bases[node];
                let key = &keys[n as usize % keys.len()];
                let body = if batch == 1 {
                    event(&format!("{prefix}{first}"))
                } else {
                    let events: Vec<String> = (first..(first + batch).min(total))
                        .map(|i| event(&format!("{prefix}{i}")))
                        .collect();
                    format!("[{}]", events.join(","))
                };
                let req = request(base, "/v1/events", Some(key), body.as_bytes());
                assert_eq!(post(&mut conns[node], base, &req).await, 202);
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
    // At most this many posts wait for their answer (connections are file descriptors): when
    // callhook falls behind, the next posts wait here, after their send time was taken, so
    // the wait counts in their latency.
    let open = Arc::new(tokio::sync::Semaphore::new(1024));
    // Each node's kept-alive connections that no post is using.
    let idle: Vec<Arc<std::sync::Mutex<Vec<Conn>>>> =
        b.nodes.iter().map(|_| Default::default()).collect();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let id = format!("{prefix}{i}");
        lines.push_str(&format!("{id} {}\n", unix_ns()));
        let node = i as usize % b.nodes.len();
        let base = b.nodes[node].0.clone();
        let key = &b.keys[i as usize % b.keys.len()];
        let req = request(&base, "/v1/events", Some(key), event(&id).as_bytes());
        let idle = idle[node].clone();
        let permit = open.clone().acquire_owned().await.unwrap();
        inflight.push(tokio::spawn(async move {
            let _permit = permit;
            // On an idle kept-alive connection, or a new one while all are busy; a retry is
            // still timed from the first try, so the latency counts it.
            let mut conn = idle.lock().unwrap().pop();
            assert_eq!(post(&mut conn, &base, &req).await, 202);
            idle.lock().unwrap().extend(conn);
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

/// When the last request arrived at the sink (its own clock, in its record), in Unix ns.
fn last_arrival_ns(b: &Bench) -> u128 {
    std::fs::read_to_string(&b.sink_out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<u128>().ok())
        .max()
        .unwrap_or(0)
}

async fn wait_received(b: &Bench, n: u64, timeout: Duration) {
    let t0 = Instant::now();
    // whsink flushes its file every second, so the count trails by up to a second.
    while received(b) < n {
        assert!(
            t0.elapsed() < timeout,
            "only {} of {n} deliveries arrived",
            received(b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(name: &str) {
    println!("\n## {name}");
    assert!(
        ALL.contains(&name),
        "unknown scenario {name}; one of {ALL:?}"
    );
    let limit = loopback_limit(3.0).await;
    println!(
        "loopback HTTP limit:        {limit:>8.0} requests/s (load average {})",
        load_average()
    );
    let (nodes, database) = match name {
        "pg1" => (1, Some(pg_database().await)),
        "pg3" => (3, Some(pg_database().await)),
        _ => (1, None),
    };
    if name == "spread" || name == "stored" {
        return latency_scenario(name).await;
    }
    let webhooks_per_event: u64 = match name {
        "fanout" | "blackhole" => 10,
        _ => 1,
    };
    let mut b = start(nodes, database.clone(), webhooks_per_event == 1).await;
    let base = b.base().to_owned();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match name {
        "single" => {
            let key = account(&b.http, &base, "bench").await;
            webhook(&b.http, &base, &key, &b.sink_url).await;
            b.keys.push(key);
        }
        "fanout" | "blackhole" => {
            let key = account(&b.http, &base, "bench").await;
            for i in 0..10 {
                let url = if name == "blackhole" && i == 9 {
                    format!("http://{}/hole", hole.local_addr().unwrap())
                } else {
                    b.sink_url.clone()
                };
                webhook(&b.http, &base, &key, &url).await;
            }
            b.keys.push(key);
        }
        _ => {
            for i in 0..10 {
                let key = account(&b.http, &base, &format!("bench {i}")).await;
                webhook(&b.http, &base, &key, &b.sink_url).await;
                b.keys.push(key);
            }
        }
    }
    if name == "many" {
        let t0 = Instant::now();
        configure_many(&b).await;
        println!(
            "configured 100,000 other webhooks in 10,000 other accounts in {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let healthy: u64 = if name == "blackhole" {
        9
    } else {
        webhooks_per_event
    };
    if name != "latency" {
        // 1. Ingest: batches of 100, then one event per request.
        let n_batch: u64 = 50_000;
        let per_batch = flood(&b, "b", n_batch, 100, 8).await;
        println!(
            "accepted, batches of 100:   {per_batch:>8.0} events/s ({})",
            share(per_batch, limit)
        );
        wait_received(&b, n_batch * healthy, Duration::from_secs(600)).await;
        let n_single: u64 = 20_000;
        let singles = flood(&b, "s", n_single, 1, 32).await;
        println!(
            "accepted, one per request:  {singles:>8.0} events/s ({})",
            share(singles, limit)
        );
        wait_received(&b, (n_batch + n_single) * healthy, Duration::from_secs(600)).await;
        // 2. Sustained delivery: a fresh burst, from its first post to its last receipt.
        let cpu0 = b.cpu();
        let before = received(&b);
        let n_burst: u64 = 60_000 / webhooks_per_event;
        let t0 = unix_ns();
        flood(&b, "d", n_burst, 100, 4).await;
        let want = before + n_burst * healthy;
        wait_received(&b, want, Duration::from_secs(600)).await;
        // The sink writes its file once a second: time the burst by its record, not by when
        // the file showed it.
        let secs = (last_arrival_ns(&b) - t0) as f64 / 1e9;
        let delivered = (want - before) as f64;
        let cpu = b.cpu() - cpu0;
        println!(
            "delivered end to end:       {:>8.0} deliveries/s ({delivered} in {secs:.2} s; {}){}",
            delivered / secs,
            share(delivered / secs, limit),
            if name == "blackhole" {
                " to the 9 healthy webhooks"
            } else {
                ""
            }
        );
        println!(
            "callhook CPU:               {:>8.3} ms per delivery ({:.2} s per 10,000, ingest included)",
            cpu / delivered * 1000.0,
            cpu / delivered * 10_000.0
        );
    }
    // 3. Latency at 1,000 events/s.
    if webhooks_per_event == 1 {
        latency(&b, "p", 1000, 10).await;
    }
    println!("{}", b.rss_line());
    println!("load average at the end:    {}", load_average());
    let _ = std::io::stdout().flush();
    drop(b);
    if let Some(db) = database {
        drop_pg_database(&db).await;
    }
}

/// Drops a benchmark's PostgreSQL database (its nodes have stopped), so runs leave none behind.
async fn drop_pg_database(url: &str) {
    let (server, name) = url.rsplit_once('/').unwrap();
    pg_admin(
        server,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
}

/// Latency scenarios on SQLite. `spread`: 100 accounts with one webhook each, events at
/// 5,000/s round robin over them. `stored`: 10 accounts with one webhook each, latency at
/// 1,000 events/s on an empty database, then 1,000,000 events stored and delivered (so
/// 1,000,000 deliveries are kept), then the latency again.
async fn latency_scenario(name: &str) {
    let mut b = start(1, None, true).await;
    let base = b.base().to_owned();
    let accounts = if name == "spread" { 100 } else { 10 };
    for i in 0..accounts {
        let key = account(&b.http, &base, &format!("bench {i}")).await;
        webhook(&b.http, &base, &key, &b.sink_url).await;
        b.keys.push(key);
    }
    if name == "spread" {
        latency(&b, "p", 5000, 10).await;
    } else {
        latency(&b, "p", 1000, 10).await;
        let total: u64 = 1_000_000;
        let t0 = Instant::now();
        let before = received(&b);
        let rate = flood(&b, "m", total, 100, 8).await;
        wait_received(&b, before + total, Duration::from_secs(1800)).await;
        println!(
            "stored 1,000,000 deliveries: accepted at {rate:.0} events/s, all delivered in {:.0} s",
            t0.elapsed().as_secs_f64()
        );
        latency(&b, "q", 1000, 10).await;
    }
    println!("{}", b.rss_line());
    println!("load average at the end:    {}", load_average());
    let _ = std::io::stdout().flush();
}

/// Posts events at `rate` per second for `secs` seconds and prints whsink's latency report.
async fn latency(b: &Bench, prefix: &str, rate: u64, secs: u64) {
    let sent = b.dir.path().join(format!("sent-{prefix}.txt"));
    let before = received(b);
    let total = paced(b, prefix, rate, secs, &sent).await;
    wait_received(b, before + total, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = report(b, Some(&sent));
    println!(
        "latency at {rate:>5} events/s: {}",
        field(&r, "latency first arrival")
    );
    println!(
        "  lost {}, duplicates {}",
        field(&r, "lost"),
        field(&r, "duplicates")
    );
}

/// 10,000 accounts with 10 webhooks each, none of which match the bench events.
async fn configure_many(b: &Bench) {
    let next = Arc::new(AtomicU64::new(0));
    let base = b.base().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, base, next) = (b.http.clone(), base.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 10_000 {
                    break;
                }
                let key = account(&http, &base, &format!("tenant {i}")).await;
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
