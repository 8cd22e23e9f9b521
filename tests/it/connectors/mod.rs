//! PBX connectors (issue 8): real Asterisk 22 captures and FreeSWITCH sessions are played over
//! a real TCP socket by a fake PBX, byte for byte and in uneven pieces; callhook logs in,
//! follows the calls, stores their call events and delivers the webhooks they cause to real
//! receivers. Scenario by scenario, the call events are read back with `GET /v1/calls/{id}`.
//!
//! One file per topic; this one holds the fixtures, the scenario tables and the helpers they
//! share, `fake_pbx.rs` the PBX that plays them.

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

mod asterisk;
mod fake_pbx;
mod freeswitch;
mod recovery;

pub(crate) use self::fake_pbx::{Act, FakePbx, banner_and_frames};

pub(crate) const CALL_SHAPES: &[u8] =
    include_bytes!("../../fixtures/asterisk-ami/call-shapes-asterisk-22.9.0.raw");
const QUEUE_SHAPES: &[u8] =
    include_bytes!("../../fixtures/asterisk-ami/queue-shapes-asterisk-22.9.0.raw");

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
    let first = TestApp::attach(base, client(), tempfile::tempdir().unwrap(), "PBX owner").await;
    let (account_id, key) = (first.account_id.clone(), first.key.clone());
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

/// One webhook per trigger of SPEC §2, each to `receiver` at `/<trigger>`.
pub(crate) async fn hook_every_trigger(app: &TestApp, receiver: &Receiver) {
    for t in spec::TRIGGERS.iter().map(|t| t.id) {
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
