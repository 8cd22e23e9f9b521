//! PBX connectors (issue 8): real Asterisk 22 captures and FreeSWITCH sessions are played over
//! a real TCP socket by a fake PBX, byte for byte and in uneven pieces; callhook logs in,
//! follows the calls, stores their call events and delivers the webhooks they cause to real
//! receivers. Scenario by scenario, the call events are read back with `GET /v1/calls/{id}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhook::app::App;
use callhook::config::Dur;
use callhook::connectors::{ConnectorSettings, Connectors};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::spec;

pub(crate) const CALL_SHAPES: &[u8] =
    include_bytes!("../fixtures/asterisk-ami/call-shapes-asterisk-22.9.0.raw");
const QUEUE_SHAPES: &[u8] =
    include_bytes!("../fixtures/asterisk-ami/queue-shapes-asterisk-22.9.0.raw");

pub(crate) const TRIGGERS: [&str; 11] = [
    "call_received",
    "answered_on_ivr",
    "answered_on_ring_group",
    "answered_on_queue",
    "answered_by_extension",
    "call_missed",
    "call_hangup",
    "call_missed_or_answered",
    "dtmf_option",
    "dialed_on_extension",
    "answered_by_customer",
];

/// What an [`Act::Answer`] sends, made from the id of the command it answers.
pub(crate) type Reply = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// What the fake PBX does on one connection.
#[derive(Clone)]
pub(crate) enum Act {
    /// Writes these bytes, in uneven pieces (as a PBX's writes reach a socket).
    Send(Vec<u8>),
    /// Waits for an AMI `Action: Login` and answers it with success (the captures had their
    /// login response removed; a real Asterisk sends this).
    AmiLogin,
    /// Waits until the client has sent this text.
    Expect(String),
    /// Answers the client's `CoreShowChannels` with these live channels (uniqueid, linkedid).
    AmiListing(Vec<(&'static str, &'static str)>),
    /// Waits for a command holding `find` (an originate with a reference, say), reads the
    /// value of its `key` line (`ActionID`, `Job-UUID`) and sends what `reply` makes of it:
    /// answers to commands whose ids callhook chose.
    Answer {
        find: String,
        key: &'static str,
        reply: Reply,
    },
    /// Ends the connection.
    Close,
}

/// A PBX on 127.0.0.1 that plays a script, one list of acts per connection, once `go` is
/// given. Connections beyond the script are held open and silent.
pub(crate) struct FakePbx {
    pub(crate) addr: std::net::SocketAddr,
    go: watch::Sender<bool>,
    /// What each connection received from callhook.
    heard: Arc<Mutex<Vec<String>>>,
}

impl FakePbx {
    pub(crate) async fn start(script: Vec<Vec<Act>>) -> FakePbx {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, go_rx) = watch::channel(false);
        let heard: Arc<Mutex<Vec<String>>> = Arc::default();
        let h = heard.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            while let Ok((sock, _)) = listener.accept().await {
                let acts = script.next().unwrap_or_default();
                let index = {
                    let mut h = h.lock().unwrap();
                    h.push(String::new());
                    h.len() - 1
                };
                tokio::spawn(play(sock, acts, go_rx.clone(), h.clone(), index));
            }
        });
        FakePbx { addr, go, heard }
    }

    pub(crate) fn go(&self) {
        let _ = self.go.send(true);
    }

    pub(crate) fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

async fn play(
    mut sock: TcpStream,
    acts: Vec<Act>,
    mut go: watch::Receiver<bool>,
    heard: Arc<Mutex<Vec<String>>>,
    index: usize,
) {
    let _ = go.wait_for(|g| *g).await;
    let mut buf = vec![0u8; 8192];
    let mut got = String::new();
    // Reads until `pred` holds for what was heard so far.
    macro_rules! hear_until {
        ($pred:expr) => {{
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(found) = $pred(&got) {
                    break Some(found);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, sock.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        got.push_str(&String::from_utf8_lossy(&buf[..n]));
                        heard.lock().unwrap()[index] = got.clone();
                    }
                    _ => break None,
                }
            }
        }};
    }
    for act in acts {
        match act {
            Act::Send(bytes) => {
                // Uneven pieces: a frame is often split across reads, sometimes mid-line.
                let sizes = [1usize, 700, 13, 4096, 1500, 97, 8192];
                let mut rest = &bytes[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].min(rest.len());
                    if sock.write_all(&rest[..n]).await.is_err() {
                        return;
                    }
                    rest = &rest[n..];
                    i += 1;
                }
            }
            Act::AmiLogin => {
                let id = hear_until!(|g: &String| {
                    let login = g.find("Action: Login")?;
                    let end = g[login..].find("\r\n\r\n")?;
                    let action = &g[login..login + end];
                    Some(
                        action
                            .lines()
                            .find_map(|l| l.strip_prefix("ActionID: "))
                            .unwrap_or_default()
                            .to_owned(),
                    )
                });
                let Some(id) = id else { return };
                let ok = format!(
                    "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
                );
                if sock.write_all(ok.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::AmiListing(channels) => {
                let id = hear_until!(|g: &String| {
                    let at = g.find("Action: CoreShowChannels")?;
                    let end = g[at..].find("\r\n\r\n")?;
                    g[at..at + end]
                        .lines()
                        .find_map(|l| l.strip_prefix("ActionID: "))
                        .map(str::to_owned)
                });
                let Some(id) = id else { return };
                let mut reply = format!(
                    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
                );
                for (u, l) in &channels {
                    reply.push_str(&format!(
                        "Event: CoreShowChannel\r\nActionID: {id}\r\nChannel: PJSIP/x-00000001\r\nUniqueid: {u}\r\nLinkedid: {l}\r\n\r\n"
                    ));
                }
                reply.push_str(&format!(
                    "Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n",
                    channels.len()
                ));
                if sock.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::Answer { find, key, reply } => {
                let id = hear_until!(|g: &String| command_value(g, &find, key));
                let Some(id) = id else { return };
                if sock.write_all(&reply(&id)).await.is_err() {
                    return;
                }
            }
            Act::Expect(text) => {
                if hear_until!(|g: &String| g.contains(text.as_str()).then_some(())).is_none() {
                    return;
                }
            }
            Act::Close => {
                // A clean close: the client reads everything sent before the end of the
                // stream (closing with its bytes unread would reset the connection and could
                // drop data still in flight, which is not what this act is for).
                let _ = sock.shutdown().await;
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
        }
    }
    // Stay connected, and keep listening (keep-alives, the channel listing).
    while let Ok(n) = sock.read(&mut buf).await {
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        heard.lock().unwrap()[index] = got.clone();
    }
}

/// The value of `key` in the first complete command (AMI action or event-socket command)
/// that holds `find`.
fn command_value(heard: &str, find: &str, key: &str) -> Option<String> {
    let at = heard.find(find)?;
    let start = heard[..at].rfind("\n\n").map_or(0, |i| i + 2);
    let end = at
        + heard[at..]
            .find("\n\n")
            .or_else(|| heard[at..].find("\r\n\r\n"))?;
    let start = start.max(heard[..at].rfind("\r\n\r\n").map_or(0, |i| i + 4));
    heard[start..end].lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(|v| v.trim().to_owned())
    })
}

/// The banner line of an AMI capture, and everything after it.
pub(crate) fn banner_and_frames(capture: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = capture.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    (capture[..end].to_vec(), capture[end..].to_vec())
}

/// One AMI connection playing `frames` after the banner and the login.
fn ami_connection(frames: &[u8]) -> Vec<Act> {
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    vec![Act::Send(banner), Act::AmiLogin, Act::Send(frames.to_vec())]
}

/// Serves `settings` on loopback until `until` resolves; answers the base URL and the task.
async fn serve(
    settings: callhook::config::Settings,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> (String, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let (base, task, _) = serve_with_connectors(settings, until).await;
    (base, task)
}

/// Like [`serve`], and answers the app's connectors too (to place calls through them).
async fn serve_with_connectors(
    settings: callhook::config::Settings,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    String,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Connectors,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(settings).await.expect("the app starts");
    let connectors = app.services.connectors.clone();
    (base, tokio::spawn(app.serve(listener, until)), connectors)
}

pub(crate) fn client() -> reqwest::Client {
    callhook::init_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Settings for a callhook that follows `pbx` and delivers to loopback receivers.
///
/// The connector names its account in the settings, so the account is made first: callhook
/// runs once to create it; the caller starts it again on the same data folder with the
/// connector. Answers the settings, the account id and its key.
pub(crate) async fn settings_following(
    dir: &std::path::Path,
    pbx: &FakePbx,
    connector: Value,
) -> (callhook::config::Settings, String, String) {
    let mut settings = test_settings(dir);
    if let Some(url) = test_database_url().await {
        settings.database_url = url;
    }
    settings.allow_targets = vec!["127.0.0.0/8".parse().unwrap()];
    settings.poll_interval = Dur(Duration::from_millis(100));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (base, server) = serve(settings.clone(), async {
        let _ = stopped.await;
    })
    .await;
    let first = TestApp {
        base,
        http: client(),
        account_id: String::new(),
        key: String::new(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let (s, b) = first
        .operator(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "PBX owner"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let account_id = b["id"].as_str().unwrap().to_owned();
    let key = b["api_key"]["key"].as_str().unwrap().to_owned();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let mut connector = connector;
    connector["host"] = json!("127.0.0.1");
    connector["port"] = json!(pbx.addr.port());
    connector["account"] = json!(account_id);
    let connector: ConnectorSettings = serde_json::from_value(connector).unwrap();
    settings.connectors = vec![connector];
    (settings, account_id, key)
}

/// One webhook per trigger, each to `receiver` at `/<trigger>`.
pub(crate) async fn hook_every_trigger(app: &TestApp, receiver: &Receiver) {
    for t in TRIGGERS {
        app.create_webhook(json!({"name": t, "trigger": t, "url": receiver.url(&format!("/{t}"))}))
            .await;
    }
}

/// A callhook that follows `pbx` for a fresh account, with a webhook for every trigger to
/// `receiver`; then lets the PBX begin.
async fn follow(pbx: &FakePbx, connector: Value, receiver: &Receiver) -> TestApp {
    let (app, _) = follow_with_connectors(pbx, connector, receiver).await;
    pbx.go();
    app
}

/// Like [`follow`], but the PBX has not begun yet; answers the app's connectors too.
pub(crate) async fn follow_with_connectors(
    pbx: &FakePbx,
    connector: Value,
    receiver: &Receiver,
) -> (TestApp, Connectors) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, account_id, key) = settings_following(dir.path(), pbx, connector).await;
    let (base, _, connectors) = serve_with_connectors(settings, std::future::pending()).await;
    let app = TestApp {
        base,
        http: client(),
        account_id,
        key,
        _dir: dir,
    };
    hook_every_trigger(&app, receiver).await;
    (app, connectors)
}

/// The connector settings of the call-shapes lab (see tests/fixtures/asterisk-ami/README.md).
fn call_shapes_connector() -> Value {
    json!({
        "kind": "asterisk_ami", "name": "pbx", "username": "callhook", "password": "s3cret",
        "ivrs": [{"context": "from-external", "id": "ivr_main", "name": "Main IVR"}],
        "dial_targets": [{"context": "from-external", "exten": "303", "type": "ring_group",
                          "id": "rg_sales", "name": "Sales"}],
        "queue_names": {"n5q": "Support"},
        "extension_names": {"600": "Asha"},
        "default_did": "+15550000100",
    })
}

fn queue_shapes_connector() -> Value {
    let dids: serde_json::Map<String, Value> = (4001..=4016)
        .map(|e| (e.to_string(), json!(format!("+1555010{e}"))))
        .chain([("7000".to_owned(), json!("+15550107000"))])
        .collect();
    json!({
        "kind": "asterisk_ami", "name": "pbx", "username": "callhook", "password": "s3cret",
        "ivrs": [{"context": "from-pstn", "exten": "4004"}, {"context": "from-pstn", "exten": "4012"}],
        "country_code": "1",
        "dids": dids,
    })
}

/// One line per stored call event.
pub(crate) fn line(e: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    match e["type"].as_str().unwrap_or_default() {
        "call.received" => format!("received {}", s(&e["call"]["call_type"])),
        "call.answered" => {
            let a = &e["answered_by"];
            format!("answered {} {}", s(&a["type"]), s(&a["extension"]))
        }
        "call.dialed" => {
            let d = &e["dialed"];
            let exts: Vec<String> = d["extensions"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            format!("dialed {} {}", s(&d["via"]), exts.join(","))
        }
        "call.dtmf" => format!("dtmf {}", s(&e["dtmf"]["digit"])),
        "call.ended" => {
            let x = &e["ended"];
            format!(
                "ended {} {} {}",
                s(&x["status"]),
                s(&x["last_stage"]),
                s(&x["answered_extension"])
            )
        }
        other => other.to_owned(),
    }
}

/// Waits until the call has ended; answers its timeline.
pub(crate) async fn ended_call(app: &TestApp, call_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = app.get(&format!("/v1/calls/{call_id}")).await;
        if s == StatusCode::OK
            && body["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["type"] == "call.ended"))
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "call {call_id} did not end: {s} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks every scenario's call events, and that each event caused the deliveries its
/// triggers call for. Answers the deliveries expected, as (event id, trigger).
pub(crate) async fn check_calls(
    app: &TestApp,
    want: &[(&str, &str, &[&str])],
) -> BTreeSet<(String, String)> {
    let mut deliveries = BTreeSet::new();
    for (scenario, call_id, lines) in want {
        let timeline = ended_call(app, call_id).await;
        let events = timeline["events"].as_array().unwrap();
        let got: Vec<String> = events.iter().map(|e| line(&e["event"])).collect();
        assert_eq!(got, *lines, "{scenario} ({call_id})");
        for e in events {
            let caused: BTreeSet<&str> = e["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["trigger"].as_str())
                .collect();
            assert_eq!(
                caused,
                spec::triggers_firing_for(&e["event"]),
                "{scenario}: {}",
                e["event_id"]
            );
            for t in caused {
                deliveries.insert((e["event_id"].as_str().unwrap().to_owned(), t.to_owned()));
            }
        }
    }
    deliveries
}

/// Waits for the receiver to have all `want` deliveries, then checks it got those and no
/// other (and none twice).
pub(crate) async fn check_received(receiver: &Receiver, want: &BTreeSet<(String, String)>) {
    let got = receiver.wait_for(want.len(), Duration::from_secs(60)).await;
    receiver
        .expect_no_more_than(want.len(), Duration::from_millis(500))
        .await;
    let got: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let b = r.json();
            let trigger = b["trigger"].as_str().unwrap().to_owned();
            // Each carries the SPEC's parameters of its trigger, like events posted to the API.
            let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, spec::params_of(&trigger), "{b}");
            (b["event_id"].as_str().unwrap().to_owned(), trigger)
        })
        .collect();
    let unique: BTreeSet<(String, String)> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "a delivery arrived twice");
    assert_eq!(&unique, want);
}

pub(crate) async fn connector_status(app: &TestApp) -> Value {
    let (s, ready) = app.call_as(None, Method::GET, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    let (s, body) = app.operator(Method::GET, "/v1/connectors", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let status = body["data"][0].clone();
    // The public probe says only whether it is connected, nothing more. (The two answers
    // may straddle a reconnect, so only the shape and the name are compared.)
    let public = ready["connectors"][0]
        .as_object()
        .expect("the probe lists the connector");
    let keys: Vec<&str> = public.keys().map(String::as_str).collect();
    assert_eq!(keys, ["name", "connected"]);
    assert_eq!(public["name"], status["name"]);
    status
}

/// Waits until the connector's status satisfies `ok`.
pub(crate) async fn status_where(app: &TestApp, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = connector_status(app).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "status never got there: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) type Scenario = (&'static str, &'static str, &'static [&'static str]);

const IVR_ONLY: &[&str] = &["received inbound", "answered ivr -", "ended missed ivr -"];

const CALL_SHAPES_WANT: &[Scenario] = &[
    ("S1-ivr-pbx-hangs-up", "1790513783.0", IVR_ONLY),
    ("S2-ivr-caller-hangs-up", "1790513789.1", IVR_ONLY),
    (
        "S3-originate-answered-no-dial",
        "1790513796.2",
        &[
            "received click_to_call",
            "answered customer -",
            "ended missed - -",
        ],
    ),
    (
        "S4-originate-local-answered",
        "1790513803.3",
        &[
            "received click_to_call",
            "answered customer -",
            "ended missed - -",
        ],
    ),
    (
        "S5-originate-never-answered",
        "1790513809.5",
        &["received click_to_call", "ended missed - -"],
    ),
    (
        "S6-dialer-queued-agent-answers",
        "1790513817.6",
        &[
            "received click_to_call",
            "answered customer -",
            "dialed queue 600",
            "answered queue 600",
            "ended answered extension 600",
        ],
    ),
    (
        "S7-dialer-queued-abandoned",
        "1790513827.9",
        &[
            "received click_to_call",
            "answered customer -",
            "ended missed queue -",
        ],
    ),
    ("S8-long-ivr", "1790513836.10", IVR_ONLY),
    (
        "S9-control-inbound-dialed",
        "1790513850.11",
        &[
            "received inbound",
            "dialed ring_group 600",
            "answered ring_group 600",
            "ended answered extension 600",
        ],
    ),
    (
        "S10-ivr-then-queue-agent-answers",
        "1790513858.14",
        &[
            "received inbound",
            "answered ivr -",
            "dialed queue 600",
            "answered queue 600",
            "ended answered extension 600",
        ],
    ),
    (
        "S11-ivr-then-queue-abandoned",
        "1790513867.17",
        &["received inbound", "answered ivr -", "ended missed queue -"],
    ),
    (
        "S12-ivr-then-dial-agent",
        "1790513875.18",
        &[
            "received inbound",
            "answered ivr -",
            "dialed direct 600",
            "answered extension 600",
            "ended answered extension 600",
        ],
    ),
];

const QUEUE_ANSWERED: &[&str] = &[
    "received inbound",
    "dialed queue agent1",
    "answered queue agent1",
    "ended answered extension agent1",
];
const QUEUE_ABANDONED: &[&str] = &[
    "received inbound",
    "dialed queue agent2",
    "ended missed queue -",
];

const QUEUE_SHAPES_WANT: &[Scenario] = &[
    (
        "L: Local member",
        "1790519558.2",
        &[
            "received inbound",
            "dialed queue agent",
            "answered queue agent",
            "ended answered extension agent",
        ],
    ),
    ("P: PJSIP member", "1790519568.5", QUEUE_ANSWERED),
    (
        "P2: ring-all, one member answers",
        "1790519578.7",
        &[
            "received inbound",
            "dialed queue agent2,agent1",
            "answered queue agent1",
            "ended answered extension agent1",
        ],
    ),
    (
        "PI: IVR then queue",
        "1790519588.10",
        &[
            "received inbound",
            "answered ivr -",
            "dialed queue agent1",
            "answered queue agent1",
            "ended answered extension agent1",
        ],
    ),
    (
        "PD: dialer call queued",
        "1790519603.12",
        &[
            "received click_to_call",
            "answered customer -",
            "dialed queue agent1",
            "answered queue agent1",
            "ended answered extension agent1",
        ],
    ),
    (
        "A: app_agent_pool agent",
        "1790519614.14",
        &[
            "received inbound",
            "dialed queue 1001",
            "answered queue 1001",
            "ended answered extension 1001",
        ],
    ),
    (
        "AO: agent through a Local member without /n",
        "1790519623.17",
        &[
            "received inbound",
            "dialed queue 1001",
            "answered queue 1001",
            "ended answered extension 1001",
        ],
    ),
    ("F: FreePBX-style member", "1790519631.20", QUEUE_ANSWERED),
    (
        "XC: confirmation rejected, abandoned",
        "1790519641.24",
        &[
            "received inbound",
            "dialed queue agent1",
            "dialed queue agent1",
            "ended missed queue -",
        ],
    ),
    (
        "AX: agent never acknowledges, abandoned",
        "1790519651.31",
        &[
            "received inbound",
            "dialed queue 1002",
            "ended missed queue -",
        ],
    ),
    (
        "X1: nobody answers, caller hangs up",
        "1790519660.34",
        QUEUE_ABANDONED,
    ),
    (
        "X2: PBX answers, then abandoned",
        "1790519668.36",
        QUEUE_ABANDONED,
    ),
    ("X3: queue timeout", "1790519675.38", QUEUE_ABANDONED),
    (
        "T: blind transfer into a queue",
        "1790519683.40",
        &[
            "received inbound",
            "dialed direct agent1",
            "answered extension agent1",
            "dialed queue agent3",
            "answered queue agent3",
            "ended answered extension agent1",
        ],
    ),
    (
        "O: timeout, overflow queue answers",
        "1790519701.43",
        &[
            "received inbound",
            "dialed queue agent2",
            "dialed queue agent3",
            "answered queue agent3",
            "ended answered extension agent3",
        ],
    ),
    (
        "D: control, direct dial",
        "1790519721.46",
        &[
            "received inbound",
            "dialed direct agent1",
            "answered extension agent1",
            "ended answered extension agent1",
        ],
    ),
    (
        "I: control, IVR only",
        "1790519731.48",
        &["received inbound", "answered ivr -", "ended missed ivr -"],
    ),
];

fn events_in(table: &[Scenario]) -> u64 {
    table.iter().map(|(_, _, lines)| lines.len() as u64).sum()
}

/// The call events of a whole account, by event id (to compare runs).
async fn all_event_ids(app: &TestApp, want: &[Scenario]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (_, call, _) in want {
        let t = ended_call(app, call).await;
        for e in t["events"].as_array().unwrap() {
            ids.insert(e["event_id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

#[tokio::test]
async fn asterisk_call_shapes_become_call_events_and_deliveries() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(CALL_SHAPES);
    let pbx = FakePbx::start(vec![ami_connection(&frames)]).await;
    let app = follow(&pbx, call_shapes_connector(), &receiver).await;

    let deliveries = check_calls(&app, CALL_SHAPES_WANT).await;
    check_received(&receiver, &deliveries).await;

    // What callhook said to the PBX: a login with the configured user, then a channel listing.
    let heard = &pbx.heard()[0];
    assert!(
        heard.starts_with("Action: Login\r\nActionID: callhook-login-1\r\nUsername: callhook\r\nSecret: s3cret\r\n"),
        "{heard}"
    );
    assert!(heard.contains("Action: CoreShowChannels"), "{heard}");

    // The details a receiver relies on, for one call: the IVR answer of S10 and its queue.
    let t = ended_call(&app, "1790513858.14").await;
    let ev = |i: usize| t["events"][i]["event"].clone();
    assert_eq!(ev(0)["id"], "pbx/1790513858.14/received");
    assert_eq!(ev(0)["call"]["did_number"], "+15550000100");
    assert_eq!(ev(0)["call"]["started_at"], "2026-09-27T12:57:38Z");
    assert_eq!(ev(1)["answered_by"]["id"], "ivr_main");
    assert_eq!(ev(1)["answered_by"]["name"], "Main IVR");
    assert_eq!(ev(3)["answered_by"]["name"], "Support");
    assert_eq!(ev(3)["answered_by"]["extension_name"], "Asha");
    assert_eq!(ev(4)["ended"]["hangup_by"], "extension");
    assert_eq!(ev(4)["ended"]["hangup_cause"], "NORMAL_CLEARING");

    // A hook receives the SPEC's parameters, like for events posted to the API.
    let missed = receiver
        .received()
        .into_iter()
        .map(|r| r.json())
        .find(|b| b["trigger"] == "call_missed" && b["call_id"] == "1790513789.1")
        .expect("S2's call_missed delivery");
    assert_eq!(missed["call_status"], "missed");
    assert_eq!(missed["last_stage"], "ivr");
    assert_eq!(missed["hangup_by"], "customer");

    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["name"], "pbx");
    assert_eq!(status["kind"], "asterisk_ami");
    assert_eq!(status["connected"], true);
    // 516 frames, less the responses to the recording client's actions.
    assert_eq!(status["events_read"], 497);
    assert_eq!(status["call_events"], events_in(CALL_SHAPES_WANT));
    assert_eq!(status["duplicates"], 0);
    assert_eq!(status["connects"], 1);
    assert_eq!(status["account_id"], app.account_id.as_str());

    let (_, metrics) = app.call_as(None, Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("callhook_connector_connected{connector=\"pbx\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("callhook_connector_events_read_total{connector=\"pbx\"}"));
    assert!(metrics.contains("callhook_connector_calls_open{connector=\"pbx\"} 0"));
}

/// SPEC §15: the lab's originates as a dialer's calls (`originated_call_type = "outbound"`).
/// Answered when the customer answered and no extension rang (S3, S4, S7) or when an extension
/// talked with them (S6); missed when the customer never answered (S5). Receivers get
/// `call_hangup` for the answered ones and `call_missed` for the other.
#[tokio::test]
async fn asterisk_dialer_calls_end_as_spec_15_says() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(CALL_SHAPES);
    let pbx = FakePbx::start(vec![ami_connection(&frames)]).await;
    let mut connector = call_shapes_connector();
    connector["originated_call_type"] = json!("outbound");
    let app = follow(&pbx, connector, &receiver).await;

    let dialer: &[Scenario] = &[
        (
            "S3-originate-answered-no-dial",
            "1790513796.2",
            &[
                "received outbound",
                "answered customer -",
                "ended answered - -",
            ],
        ),
        (
            "S4-originate-local-answered",
            "1790513803.3",
            &[
                "received outbound",
                "answered customer -",
                "ended answered - -",
            ],
        ),
        (
            "S5-originate-never-answered",
            "1790513809.5",
            &["received outbound", "ended missed - -"],
        ),
        (
            "S6-dialer-queued-agent-answers",
            "1790513817.6",
            &[
                "received outbound",
                "answered customer -",
                "dialed queue 600",
                "answered queue 600",
                "ended answered extension 600",
            ],
        ),
        (
            "S7-dialer-queued-abandoned",
            "1790513827.9",
            &[
                "received outbound",
                "answered customer -",
                "ended answered queue -",
            ],
        ),
    ];
    let mut want: Vec<Scenario> = CALL_SHAPES_WANT
        .iter()
        .filter(|(s, _, _)| !dialer.iter().any(|(d, _, _)| d == s))
        .copied()
        .collect();
    want.extend_from_slice(dialer);
    let deliveries = check_calls(&app, &want).await;
    check_received(&receiver, &deliveries).await;
    let ends: BTreeMap<String, String> = receiver
        .received()
        .into_iter()
        .map(|r| r.json())
        .filter(|b| b["trigger"] == "call_missed_or_answered" && b["call_type"] == "outbound")
        .map(|b| {
            let call = b["call_id"].as_str().unwrap_or_default().to_owned();
            (
                call,
                b["call_status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let status = |s: &str| s.to_owned();
    assert_eq!(
        ends,
        BTreeMap::from([
            (status("1790513796.2"), status("answered")),
            (status("1790513803.3"), status("answered")),
            (status("1790513809.5"), status("missed")),
            (status("1790513817.6"), status("answered")),
            (status("1790513827.9"), status("answered")),
        ])
    );
    // Billed from the customer's answer, with nobody's extension.
    let s3 = ended_call(&app, "1790513796.2").await;
    let ended = &s3["events"][2]["event"]["ended"];
    assert_eq!(
        ended["answered_at"],
        s3["events"][1]["event"]["occurred_at"]
    );
    assert!(ended["billsec"].as_u64().is_some(), "{ended}");
    assert!(ended["answered_extension"].is_null(), "{ended}");
}

#[tokio::test]
async fn asterisk_queue_shapes_become_call_events_and_deliveries() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(QUEUE_SHAPES);
    let pbx = FakePbx::start(vec![ami_connection(&frames)]).await;
    let app = follow(&pbx, queue_shapes_connector(), &receiver).await;

    let deliveries = check_calls(&app, QUEUE_SHAPES_WANT).await;
    check_received(&receiver, &deliveries).await;

    // The customer's number, in E.164 with the configured country code, and the queue's times.
    let t = ended_call(&app, "1790519578.7").await;
    let ev = |i: usize| t["events"][i]["event"].clone();
    assert_eq!(ev(0)["call"]["customer_number"], "+15550003");
    assert_eq!(ev(0)["call"]["did_number"], "+15550104003");
    assert_eq!(ev(2)["answered_by"]["id"], "q-ringall");
    assert_eq!(ev(2)["answered_by"]["ring_time"], 2);
    assert_eq!(ev(2)["answered_by"]["hold_time"], 2);
    assert_eq!(ev(3)["ended"]["missed_extensions"], json!([]));
    let o = ended_call(&app, "1790519701.43").await;
    assert_eq!(
        o["events"][4]["event"]["ended"]["missed_extensions"],
        json!(["agent2"])
    );

    // The agents' login calls have no DID: not reported, and nothing is left open.
    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["events_read"], 711);
    let (s, _) = app.get("/v1/calls/1790519556.0").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The stream is cut in the middle of a frame (S6's `AgentConnect`, while a call is
/// connected); callhook reconnects and the PBX goes on from that frame: nothing lost, nothing
/// twice.
#[tokio::test]
async fn a_connection_dropped_mid_event_loses_and_duplicates_nothing() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(CALL_SHAPES);
    let frame_start = frames
        .windows(19)
        .position(|w| w == b"Event: AgentConnect")
        .unwrap();
    let cut = frame_start + 150;
    assert!(
        !frames[frame_start..cut]
            .windows(4)
            .any(|w| w == b"\r\n\r\n"),
        "the cut is inside the frame"
    );
    let mut first = ami_connection(&frames[..cut]);
    first.push(Act::Close);
    let pbx = FakePbx::start(vec![first, ami_connection(&frames[frame_start..])]).await;
    let app = follow(&pbx, call_shapes_connector(), &receiver).await;

    let deliveries = check_calls(&app, CALL_SHAPES_WANT).await;
    check_received(&receiver, &deliveries).await;
    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["connects"], 2);
    assert_eq!(status["call_events"], events_in(CALL_SHAPES_WANT));
    assert_eq!(status["duplicates"], 0);
    assert_eq!(pbx.heard().len(), 2);
    assert!(pbx.heard()[1].starts_with("Action: Login\r\n"));
}

/// The PBX plays the whole recording twice (a replay after a reconnect): the ids are the
/// PBX's, so the second time stores nothing and delivers nothing.
#[tokio::test]
async fn a_replay_delivers_nothing_twice() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(QUEUE_SHAPES);
    let mut first = ami_connection(&frames);
    first.push(Act::Close);
    let pbx = FakePbx::start(vec![first, ami_connection(&frames)]).await;
    let app = follow(&pbx, queue_shapes_connector(), &receiver).await;

    let status = status_where(&app, |s| s["connects"] == 2 && s["events_read"] == 2 * 711).await;
    let deliveries = check_calls(&app, QUEUE_SHAPES_WANT).await;
    check_received(&receiver, &deliveries).await;
    let stored = all_event_ids(&app, QUEUE_SHAPES_WANT).await;
    assert_eq!(status["call_events"].as_u64(), Some(stored.len() as u64));
    let status = status_where(&app, |s| {
        s["duplicates"].as_u64() == Some(stored.len() as u64)
    })
    .await;
    assert_eq!(status["calls_open"], 0);
}

/// Where the call-shapes capture is cut for a restart: right after S6's agent answered (the
/// call is connected), and the channels S6 has then.
fn cut_after_s6_answer(frames: &[u8]) -> usize {
    let at = frames
        .windows(19)
        .position(|w| w == b"Event: AgentConnect")
        .unwrap();
    at + frames[at..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4
}
const S6: &str = "1790513817.6";
const S6_CHANNELS: [(&str, &str); 3] = [
    ("1790513817.6", "1790513817.6"),
    ("1790513818.7", "1790513817.6"),
    ("1790513818.8", "1790513817.6"),
];

/// callhook follows the PBX, is stopped while S6 is connected, and starts again: `second` is
/// what the PBX does on the new connection. Answers the restarted app (the receiver has a
/// webhook for every trigger).
async fn restart_mid_call(second: Vec<Act>, receiver: &Receiver) -> (TestApp, FakePbx) {
    let (_, frames) = banner_and_frames(CALL_SHAPES);
    let cut = cut_after_s6_answer(&frames);
    let pbx = FakePbx::start(vec![ami_connection(&frames[..cut]), second]).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, account_id, key) =
        settings_following(dir.path(), &pbx, call_shapes_connector()).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (base, server) = serve(settings.clone(), async {
        let _ = stopped.await;
    })
    .await;
    let before = TestApp {
        base,
        http: client(),
        account_id: account_id.clone(),
        key: key.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    hook_every_trigger(&before, receiver).await;
    pbx.go();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, t) = before.get(&format!("/v1/calls/{S6}")).await;
        if t["events"].as_array().is_some_and(|e| e.len() == 4) {
            break;
        }
        assert!(Instant::now() < deadline, "S6 never got its agent: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connector_status(&before).await["calls_open"], 1);
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let (base, _) = serve(settings, std::future::pending()).await;
    let after = TestApp {
        base,
        http: client(),
        account_id,
        key,
        _dir: dir,
    };
    (after, pbx)
}

/// callhook restarts while a call is connected; the PBX (which kept running) reports the
/// call's channels alive and goes on: the call is followed to its end as if nothing happened.
#[tokio::test]
async fn a_restart_picks_up_the_calls_being_followed() {
    let receiver = Receiver::start().await;
    let (_, frames) = banner_and_frames(CALL_SHAPES);
    let cut = cut_after_s6_answer(&frames);
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    let second = vec![
        Act::Send(banner),
        Act::AmiLogin,
        Act::AmiListing(S6_CHANNELS.to_vec()),
        Act::Send(frames[cut..].to_vec()),
    ];
    let (app, pbx) = restart_mid_call(second, &receiver).await;
    let deliveries = check_calls(&app, CALL_SHAPES_WANT).await;
    check_received(&receiver, &deliveries).await;
    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["duplicates"], 0);
    assert_eq!(pbx.heard().len(), 2);
}

/// callhook restarts while a call is connected, and the call ends before it is back: the
/// channel listing after the login shows it gone, and it is closed then, as answered.
#[tokio::test]
async fn a_call_that_ended_while_callhook_was_down_is_closed() {
    let receiver = Receiver::start().await;
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    let second = vec![Act::Send(banner), Act::AmiLogin, Act::AmiListing(vec![])];
    let (app, _pbx) = restart_mid_call(second, &receiver).await;
    let closed: &[&str] = &[
        "received click_to_call",
        "answered customer -",
        "dialed queue 600",
        "answered queue 600",
        "ended answered extension 600",
    ];
    let mut want: Vec<Scenario> = CALL_SHAPES_WANT[..5].to_vec();
    want.push(("S6, closed at the restart", S6, closed));
    let deliveries = check_calls(&app, &want).await;
    check_received(&receiver, &deliveries).await;
    let t = ended_call(&app, S6).await;
    let ended = &t["events"][4]["event"]["ended"];
    assert!(
        ended["hangup_cause"].is_null() && ended["hangup_by"].is_null(),
        "{ended}"
    );
    assert_eq!(connector_status(&app).await["calls_open"], 0);
}

#[tokio::test]
async fn a_refused_login_is_reported_and_callhook_stays_ready() {
    let receiver = Receiver::start().await;
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    let refuse = vec![
        Act::Send(banner),
        Act::Expect("Action: Login".into()),
        Act::Send(b"Response: Error\r\nActionID: callhook-login-1\r\nMessage: Authentication failed\r\n\r\n".to_vec()),
    ];
    let pbx = FakePbx::start(vec![refuse]).await;
    let app = follow(&pbx, call_shapes_connector(), &receiver).await;
    let status = status_where(&app, |s| !s["last_error"].is_null()).await;
    assert_eq!(status["connected"], false);
    assert_eq!(
        status["last_error"],
        "the PBX refused the login: Authentication failed"
    );
    assert_eq!(status["connects"], 0);
}

/// The FreeSWITCH sessions, played one after another on one event-socket connection.
#[tokio::test]
async fn freeswitch_sessions_become_call_events_and_deliveries() {
    let files = [
        "ivr-dtmf-extension.esl",
        "callcenter-answered.esl",
        "callcenter-abandoned.esl",
        "missed-ring-group.esl",
        "outbound.esl",
        "click-to-call.esl",
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/freeswitch-esl");
    let mut greeting = Vec::new();
    let mut events = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(format!("{dir}/{f}")).unwrap();
        // Each file starts with the greeting and the two replies; play them once.
        let mut rest = &bytes[..];
        let mut head = Vec::new();
        for _ in 0..3 {
            let end = rest.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
            head.push(rest[..end].to_vec());
            rest = &rest[end..];
        }
        if i == 0 {
            greeting = head;
        }
        events.extend_from_slice(rest);
    }
    let script = vec![vec![
        Act::Send(greeting[0].clone()),
        Act::Expect("auth ClueCon\n\n".into()),
        Act::Send(greeting[1].clone()),
        Act::Expect("event plain CHANNEL_CREATE".into()),
        Act::Send(greeting[2].clone()),
        Act::Send(events),
    ]];
    let receiver = Receiver::start().await;
    let pbx = FakePbx::start(script).await;
    let connector = json!({
        "kind": "freeswitch_esl", "name": "fs", "password": "ClueCon",
        "ivrs": [{"context": "default", "exten": "5000", "id": "ivr_main", "name": "Main menu"}],
        "dial_targets": [{"context": "default", "exten": "600", "type": "ring_group",
                          "id": "rg_sales", "name": "Sales"}],
        "queue_names": {"support@default": "Support"},
        "outbound_contexts": ["default"],
        "country_code": "1",
        "dids": {"1001": "+18005550100"},
    });
    let app = follow(&pbx, connector, &receiver).await;
    let want: &[Scenario] = &[
        (
            "IVR + DTMF, answered by an extension",
            "6c1a2f4e-1b3d-4c5e-8f70-1a2b3c4d5e01",
            &[
                "received inbound",
                "answered ivr -",
                "dtmf 1",
                "dtmf 2",
                "dialed direct 1001",
                "answered extension 1001",
                "ended answered extension 1001",
            ],
        ),
        (
            "callcenter queue answered",
            "8d2b3e5f-2c4e-4d6f-9a81-2b3c4d5e6f11",
            &[
                "received inbound",
                "dialed queue 1002",
                "answered queue 1002",
                "ended answered extension 1002",
            ],
        ),
        (
            "callcenter queue abandoned",
            "8d2b3e5f-2c4e-4d6f-9a81-2b3c4d5e6f12",
            &[
                "received inbound",
                "dialed queue 1002",
                "ended missed queue -",
            ],
        ),
        (
            "a missed call (ring group)",
            "9e3c4f60-3d5f-4e70-8b92-3c4d5e6f7a01",
            &[
                "received inbound",
                "dialed ring_group 1001,1002",
                "ended missed ring_group -",
            ],
        ),
        (
            "an outbound call",
            "a04d5e71-4e60-4f81-9ca3-4d5e6f7a8b01",
            &[
                "received outbound",
                "answered customer 1001",
                "ended answered extension 1001",
            ],
        ),
        (
            "click-to-call",
            "b15e6f82-5f71-4092-8db4-5e6f7a8b9c01",
            &[
                "received click_to_call",
                "answered customer -",
                "dialed direct 1001",
                "answered extension 1001",
                "ended answered extension 1001",
            ],
        ),
    ];
    let deliveries = check_calls(&app, want).await;
    check_received(&receiver, &deliveries).await;

    let t = ended_call(&app, "6c1a2f4e-1b3d-4c5e-8f70-1a2b3c4d5e01").await;
    let ended = &t["events"][6]["event"]["ended"];
    assert_eq!(
        (ended["duration"].clone(), ended["billsec"].clone()),
        (json!(40), json!(31))
    );
    assert_eq!(t["events"][3]["event"]["dtmf"]["digits"], "12");
    let c2c = ended_call(&app, "b15e6f82-5f71-4092-8db4-5e6f7a8b9c01").await;
    assert_eq!(c2c["events"][1]["event"]["answered_by"]["ref_id"], "crm-42");
    assert_eq!(
        c2c["events"][0]["event"]["call"]["customer_number"],
        "+14155550177"
    );

    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["kind"], "freeswitch_esl");
    assert_eq!(status["connected"], true);
    assert!(pbx.heard()[0].contains("api show channels as json"));
}

/// Reading status and deliveries per scenario needs the scenario names to be unique.
#[test]
fn the_scenario_tables_name_each_call_once() {
    for table in [CALL_SHAPES_WANT, QUEUE_SHAPES_WANT] {
        let calls: BTreeMap<&str, &str> = table.iter().map(|(s, c, _)| (*c, *s)).collect();
        assert_eq!(calls.len(), table.len());
    }
}
