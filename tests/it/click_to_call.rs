//! Click-to-call through a connected PBX (SPEC §15, issue 17): requests made with
//! `POST /v1/click-to-call` and followed with `GET /v1/click-to-call/{id}`, placed over a real
//! TCP socket to a scripted Asterisk (AMI) and a scripted FreeSWITCH (event socket). What
//! callhook sends (the originate: channel, context, caller id, variables), the request's
//! states as the PBX answers and the call goes on (each recorded with its time), the call
//! events it stores and the webhooks they cause: `answered_by_customer` with the reference,
//! and the final `call.ended`. The 409s, the 422s, the same `ref_id` twice; and two nodes on
//! PostgreSQL handing a request over through the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callhook::connectors::originate::{ClickToCallRequest, OriginateError};
use callhook::core::number::E164;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::connectors::{
    Act, CALL_SHAPES, FakePbx, banner_and_frames, check_calls, check_received, ended_call,
    follow_with_connectors, status_where,
};
use crate::helpers::{TestApp, problem_fields};
use crate::receiver::Receiver;

fn request(n: u32) -> ClickToCallRequest {
    ClickToCallRequest {
        request_id: format!("c2c_{n}"),
        ref_id: format!("crm-{n}"),
        agent_extension: "101".into(),
        customer_number: E164::parse("+919812345678").unwrap(),
        did_number: None,
    }
}

/// `POST /v1/click-to-call` for request `n` (agent 101 calling the customer, reference
/// `crm-n`) with `more` fields; answers the 202's body.
async fn ask(app: &TestApp, n: u32, more: Value) -> Value {
    let mut body = json!({"agent_extension": "101", "customer_number": "+919812345678",
                          "ref_id": format!("crm-{n}")});
    for (k, v) in more.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, b) = app.post("/v1/click-to-call", body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b
}

/// Waits until request `id` is answered or failed; answers it as `GET` shows it.
async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, b) = app.get(&format!("/v1/click-to-call/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if b["state"] == "answered" || b["state"] == "failed" {
            return b;
        }
        assert!(Instant::now() < deadline, "request {id} got stuck: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A finished request as `state[ reason]` and the states it went through, as its times say:
/// every change the connector reported was recorded.
fn went(r: &Value) -> Vec<String> {
    let mut states = vec!["queued".to_owned()];
    for (time, state) in [
        ("ringing_agent_at", "ringing_agent"),
        ("ringing_customer_at", "ringing_customer"),
        ("answered_at", "answered"),
    ] {
        if r[time].is_string() {
            states.push(state.to_owned());
        }
    }
    if r["failed_at"].is_string() {
        states.push(format!("failed {}", r["reason"].as_str().unwrap_or("?")));
    }
    assert_eq!(
        states.last().map(|s| s.split(' ').next().unwrap()),
        r["state"].as_str(),
        "{r}"
    );
    states
}

/// The fields a problem names, and the status it came with.
async fn refused(app: &TestApp, body: Value) -> (StatusCode, Vec<String>) {
    let (s, b) = app.post("/v1/click-to-call", body).await;
    (s, problem_fields(&b))
}

/// One AMI frame.
fn f(pairs: &[(&str, &str)]) -> String {
    let mut s: String = pairs.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    s.push_str("\r\n");
    s
}

/// How a scripted call goes.
#[derive(Clone, Copy)]
enum Shape {
    Answered,
    AgentBusy,
    CustomerNoAnswer,
    Refused,
}

/// The agent's and the customer's channel of request `n`'s call (the agent's is the call id).
fn uniqueids(n: u32) -> (String, String) {
    (format!("179060{n}000.{n}1"), format!("179060{n}004.{n}2"))
}

/// What Asterisk sends for request `n`'s `Originate` (sent under `action`), shaped like the
/// 22.9.0 captures' originates (tests/fixtures/asterisk-ami, S3 and S5) but placed agent
/// first: the agent's `Down` channel with the reference variable, the dial with no calling
/// channel, the `OriginateResponse`, then the dialplan's dial from the agent's channel to the
/// customer.
fn asterisk_call(n: u32, shape: Shape, action: &str) -> String {
    let (agent_id, customer_id) = uniqueids(n);
    let chan = |event: &str, agent: bool, state: &str, more: &[(&str, &str)]| {
        let (name, u, caller) = if agent {
            ("PJSIP/101-00000010", agent_id.as_str(), "+918065251305")
        } else {
            (
                "PJSIP/trunk-00000011",
                customer_id.as_str(),
                "+919812345678",
            )
        };
        let mut p = vec![
            ("Event", event),
            ("Channel", name),
            ("ChannelState", state),
            ("CallerIDNum", caller),
            ("Context", "callhook-click-to-call"),
            ("Exten", "09812345678"),
            ("Uniqueid", u),
            ("Linkedid", agent_id.as_str()),
        ];
        p.extend_from_slice(more);
        f(&p)
    };
    let ref_id = format!("crm-{n}");
    if let Shape::Refused = shape {
        return f(&[
            ("Response", "Error"),
            ("ActionID", action),
            ("Message", "Permission denied"),
        ]);
    }
    let mut s = [
        f(&[
            ("Response", "Success"),
            ("ActionID", action),
            ("Message", "Originate successfully queued"),
        ]),
        chan("Newchannel", true, "0", &[]),
        chan(
            "VarSet",
            true,
            "0",
            &[("Variable", "CALLHOOK_REF_ID"), ("Value", &ref_id)],
        ),
        f(&[
            ("Event", "DialBegin"),
            ("DestChannel", "PJSIP/101-00000010"),
            ("DestCallerIDNum", "+918065251305"),
            ("DestUniqueid", &agent_id),
            ("DestLinkedid", &agent_id),
            ("DialString", "101"),
        ]),
        chan("Newstate", true, "5", &[]),
    ]
    .concat();
    let agent_dial_end = |status: &str| {
        f(&[
            ("Event", "DialEnd"),
            ("DestChannel", "PJSIP/101-00000010"),
            ("DestUniqueid", &agent_id),
            ("DialStatus", status),
        ])
    };
    if let Shape::AgentBusy = shape {
        s.push_str(&agent_dial_end("BUSY"));
        s.push_str(&f(&[
            ("Event", "OriginateResponse"),
            ("ActionID", action),
            ("Response", "Failure"),
            ("Channel", "PJSIP/101"),
            ("Context", "callhook-click-to-call"),
            ("Exten", "09812345678"),
            ("Reason", "5"),
            ("Uniqueid", "<unknown>"),
        ]));
        s.push_str(&chan("Hangup", true, "5", &[("Cause", "17")]));
        return s;
    }
    let customer_dial = |event: &str, status: &str| {
        let mut more = vec![
            ("DestChannel", "PJSIP/trunk-00000011"),
            ("DestUniqueid", customer_id.as_str()),
        ];
        if event == "DialBegin" {
            more.push(("DialString", "trunk/09812345678"));
        } else {
            more.push(("DialStatus", status));
        }
        chan(event, true, "6", &more)
    };
    s.push_str(
        &[
            chan("Newstate", true, "6", &[]),
            f(&[
                ("Event", "OriginateResponse"),
                ("ActionID", action),
                ("Response", "Success"),
                ("Channel", "PJSIP/101-00000010"),
                ("Context", "callhook-click-to-call"),
                ("Exten", "09812345678"),
                ("Reason", "4"),
                ("Uniqueid", &agent_id),
            ]),
            agent_dial_end("ANSWER"),
            chan("Newchannel", false, "0", &[]),
            customer_dial("DialBegin", ""),
            chan("Newstate", false, "5", &[]),
        ]
        .concat(),
    );
    let b = [("BridgeUniqueid", "b1")];
    let rest = match shape {
        Shape::Answered => vec![
            chan("Newstate", false, "6", &[]),
            customer_dial("DialEnd", "ANSWER"),
            chan("BridgeEnter", true, "6", &b),
            chan("BridgeEnter", false, "6", &b),
            chan("HangupRequest", false, "6", &[("Cause", "16")]),
            chan("BridgeLeave", false, "6", &b),
            chan("Hangup", false, "6", &[("Cause", "16")]),
            chan("BridgeLeave", true, "6", &b),
            chan("Hangup", true, "6", &[("Cause", "16")]),
        ],
        _ => vec![
            customer_dial("DialEnd", "NOANSWER"),
            chan("Hangup", false, "5", &[("Cause", "19")]),
            chan("Hangup", true, "6", &[("Cause", "16")]),
        ],
    };
    s.push_str(&rest.concat());
    s
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Answered => "answered",
            Shape::AgentBusy => "agent busy",
            Shape::CustomerNoAnswer => "customer no answer",
            Shape::Refused => "refused",
        }
    }
}

const SHAPES: [Shape; 4] = [
    Shape::Answered,
    Shape::AgentBusy,
    Shape::CustomerNoAnswer,
    Shape::Refused,
];

/// The states each shape takes the request through.
fn states_of(shape: Shape) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match shape {
        Shape::Answered => s(&["queued", "ringing_agent", "ringing_customer", "answered"]),
        Shape::AgentBusy => s(&["queued", "ringing_agent", "failed agent_busy"]),
        Shape::CustomerNoAnswer => s(&[
            "queued",
            "ringing_agent",
            "ringing_customer",
            "failed customer_no_answer",
        ]),
        Shape::Refused => s(&["queued", "failed originate_refused"]),
    }
}

const ANSWERED: &[&str] = &[
    "received click_to_call",
    "answered customer 101",
    "ended answered extension 101",
];
const MISSED: &[&str] = &["received click_to_call", "ended missed - -"];

/// The webhooks of the answered call: `answered_by_customer` with the reference and the
/// agent, and the `call.ended` of a call that was answered.
fn check_answered_deliveries(receiver: &Receiver, call_id: &str, ref_id: &str) {
    let got: Vec<Value> = receiver
        .received()
        .into_iter()
        .map(|r| r.json())
        .filter(|b| b["call_id"] == call_id)
        .collect();
    let by_trigger = |t: &str| {
        got.iter()
            .find(|b| b["trigger"] == t)
            .unwrap_or_else(|| panic!("no {t} delivery for {call_id}"))
    };
    let customer = by_trigger("answered_by_customer");
    assert_eq!(customer["ref_id"], ref_id);
    assert_eq!(customer["extension"], "101");
    assert_eq!(customer["extension_name"], "Asha");
    assert_eq!(customer["call_type"], "click_to_call");
    assert_eq!(customer["customer_number"], "+919812345678");
    assert_eq!(customer["did_number"], "+918065251305");
    let hangup = by_trigger("call_hangup");
    assert_eq!(hangup["call_status"], "answered");
    assert_eq!(hangup["answered_extension"], "101");
    assert_eq!(hangup["hangup_by"], "customer");
}

/// Each shape's request through the API, in turn, to its end: its states as its times say,
/// and its call id (the agent's leg, `call_id(n)`, once the call showed up).
async fn place_each(app: &TestApp, call_id: impl Fn(u32) -> String, more: Value) {
    for (i, shape) in SHAPES.iter().enumerate() {
        let n = i as u32 + 1;
        let asked = ask(app, n, more.clone()).await;
        assert_eq!(asked["state"], "queued", "{asked}");
        assert_eq!(asked["ref_id"], format!("crm-{n}"));
        let id = asked["request_id"].as_str().unwrap();
        let done = finished(app, id).await;
        assert_eq!(went(&done), states_of(*shape), "request {n}: {done}");
        match shape {
            Shape::Refused => assert_eq!(done["call_id"], Value::Null, "{done}"),
            _ => assert_eq!(done["call_id"], call_id(n), "{done}"),
        }
        assert!(done["connector"].is_string(), "{done}");
        assert!(done["placed_at"].is_string(), "{done}");
    }
}

/// The bad requests: every bad field named at once (422), the wrong content type (415), no
/// token (401), and a 404 for what is not the account's.
async fn check_refusals(app: &TestApp) {
    let (s, fields) = refused(
        app,
        json!({"agent_extension": "1 01", "customer_number": "98123 45678",
               "did_number": "+442079460000", "ref_id": "crm 1", "callback": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fields,
        [
            "agent_extension",
            "customer_number",
            "ref_id",
            "callback",
            "did_number"
        ]
    );
    let (s, fields) = refused(app, json!({"did_number": "8065251305", "ref_id": ""})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fields,
        ["agent_extension", "customer_number", "did_number", "ref_id"]
    );
    let (s, fields) = refused(app, json!(["101"])).await;
    assert_eq!(
        (s, fields),
        (StatusCode::UNPROCESSABLE_ENTITY, vec![String::new()])
    );
    let r = app
        .http
        .post(app.url("/v1/click-to-call"))
        .bearer_auth(&app.key)
        .body("agent_extension=101")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _) = app
        .call_as(None, Method::POST, "/v1/click-to-call", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for id in ["c2c_01JDX0000000000000000000000", "nothing"] {
        let (s, b) = app.get(&format!("/v1/click-to-call/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn asterisk_places_click_to_call_calls() {
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    let mut script = vec![Act::Send(banner), Act::AmiLogin];
    for (i, shape) in SHAPES.iter().enumerate() {
        let n = i as u32 + 1;
        let shape = *shape;
        // The PBX answers each originate once it heard it, under the ActionID callhook chose.
        script.push(Act::Answer {
            find: format!("CALLHOOK_REF_ID=crm-{n}\r\n"),
            key: "ActionID",
            reply: Arc::new(move |action| asterisk_call(n, shape, action).into_bytes()),
        });
    }
    script.push(Act::Answer {
        find: "Channel: PJSIP/102\r\n".into(),
        key: "ActionID",
        reply: Arc::new(|action| asterisk_call(5, Shape::Refused, action).into_bytes()),
    });
    let pbx = FakePbx::start(vec![script]).await;
    let receiver = Receiver::start().await;
    let connector = json!({
        "kind": "asterisk_ami", "name": "pbx", "username": "callhook", "password": "s3cret",
        "country_code": "91", "default_did": "+918065251305",
        "extension_names": {"101": "Asha"},
        "originate": true,
        "originate_channel": "PJSIP/{extension}",
        "originate_context": "callhook-click-to-call",
        "originate_dial": "0{national}",
        "originate_agent_timeout": "20s",
        "originate_variables": {"__CRM": "acme"},
    });
    let (app, connectors) = follow_with_connectors(&pbx, connector, &receiver).await;
    app.add_number("+918065251305").await;
    check_refusals(&app).await;

    // Not logged in yet: nothing can be placed (SPEC §15's 409 naming the connector), nor
    // for an account without a connector that places calls.
    let call = json!({"agent_extension": "101", "customer_number": "+919812345678"});
    let (s, b) = app.post("/v1/click-to-call", call.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(problem_fields(&b), ["connector"]);
    let message = b["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("pbx is not connected"), "{b}");
    let (_, other_key) = app.other_account("No PBX").await;
    let (s, b) = app
        .call_as(
            Some(&other_key),
            Method::POST,
            "/v1/click-to-call",
            Some(call),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(problem_fields(&b), ["connector"]);
    let message = b["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("no connector"), "{b}");
    // The connectors' own entry point says the same.
    assert_eq!(
        connectors
            .originate(&app.account_id, request(1))
            .unwrap_err(),
        OriginateError::NotConnected("pbx".into())
    );
    assert_eq!(
        connectors.originate("acct_other", request(1)).unwrap_err(),
        OriginateError::NoConnector
    );
    let mut bad = request(1);
    bad.agent_extension = "101&102".into();
    assert!(matches!(
        connectors.originate(&app.account_id, bad),
        Err(OriginateError::Invalid {
            field: "agent_extension",
            ..
        })
    ));
    pbx.go();
    status_where(&app, |s| s["connected"] == true).await;

    let did = json!({"did_number": "+918065251305"});
    place_each(&app, |n| uniqueids(n).0, did.clone()).await;

    // The same ref_id again: the same request, no second call. Another call under it: 409.
    let again = ask(&app, 1, did).await;
    assert_eq!(again["state"], "answered", "{again}");
    let first = finished(&app, again["request_id"].as_str().unwrap()).await;
    assert_eq!(again["call_id"], uniqueids(1).0);
    let (s, b) = app
        .post(
            "/v1/click-to-call",
            json!({"agent_extension": "102", "customer_number": "+919812345678", "ref_id": "crm-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(problem_fields(&b), ["ref_id"]);

    // No DID and no reference: the connector's default DID, and the request id as reference.
    let (s, asked) = app
        .post(
            "/v1/click-to-call",
            json!({"agent_extension": "102", "customer_number": "+14155550177"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(asked["ref_id"], asked["request_id"]);
    assert_eq!(asked["did_number"], "+918065251305");
    let done = finished(&app, asked["request_id"].as_str().unwrap()).await;
    assert_eq!(went(&done), ["queued", "failed originate_refused"]);
    assert_eq!(done["cause"], "Permission denied");

    // What callhook asked of the PBX: the agent's channel, the context and the customer's
    // number as the trunk wants it, the DID as caller id, the reference as a variable; once
    // for each request, the repeated ref_id included.
    let heard = &pbx.heard()[0];
    let originate = format!(
        "Action: Originate\r\nActionID: callhook-originate-{}\r\n\
         Channel: PJSIP/101\r\nContext: callhook-click-to-call\r\nExten: 09812345678\r\n\
         Priority: 1\r\nCallerID: <+918065251305>\r\nTimeout: 20000\r\nAsync: true\r\n\
         Variable: CALLHOOK_REF_ID=crm-1\r\nVariable: __CRM=acme\r\n\r\n",
        first["request_id"].as_str().unwrap()
    );
    assert!(heard.contains(&originate), "{heard}");
    assert_eq!(heard.matches("Action: Originate").count(), 5, "{heard}");
    assert!(heard.contains("Exten: 0014155550177\r\n"), "{heard}");
    assert!(
        heard.contains("Events: call,agent,dtmf,dialplan\r\n"),
        "{heard}"
    );

    // The calls they made, and the webhooks those caused.
    let want = calls_of(uniqueids);
    let want: Vec<(&str, &str, &[&str])> =
        want.iter().map(|(s, c, l)| (*s, c.as_str(), *l)).collect();
    let deliveries = check_calls(&app, &want).await;
    check_received(&receiver, &deliveries).await;
    check_answered_deliveries(&receiver, &uniqueids(1).0, "crm-1");
    let busy = ended_call(&app, &uniqueids(2).0).await;
    assert_eq!(
        busy["events"][1]["event"]["ended"]["hangup_cause"],
        "USER_BUSY"
    );
    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["connected"], true);
}

/// The calls the shapes' requests made (all but the refused one), by call id, with the
/// lines of their call events.
fn calls_of(
    ids: fn(u32) -> (String, String),
) -> Vec<(&'static str, String, &'static [&'static str])> {
    let mut want = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        let lines = match shape {
            Shape::Answered => ANSWERED,
            Shape::Refused => continue,
            _ => MISSED,
        };
        want.push((shape.name(), ids(i as u32 + 1).0, lines));
    }
    want
}

/// One FreeSWITCH plain event, with `body` after its headers.
fn fs(name: &str, uuid: &str, more: &[(&str, &str)], body: &str) -> String {
    let mut head = format!("Event-Name: {name}\n");
    if !uuid.is_empty() {
        head.push_str(&format!("Unique-ID: {uuid}\n"));
    }
    for (k, v) in more {
        head.push_str(&format!("{k}: {}\n", v.replace(' ', "%20")));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\n", body.len()));
    }
    head.push('\n');
    head.push_str(body);
    format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{head}",
        head.len()
    )
}

/// The agent's and the customer's leg of request `n`'s call (the agent's is the call id).
fn legs(n: u32) -> (String, String) {
    (
        format!("5f1c2d3e-0000-4000-8000-0000000000a{n}"),
        format!("5f1c2d3e-0000-4000-8000-0000000000b{n}"),
    )
}

/// What FreeSWITCH sends for request `n`'s `bgapi originate` (job `job`): the reply naming
/// the job, the agent's leg (placed by FreeSWITCH, with the reference among its variables),
/// the job's result once the agent answered, then the B-leg the dialplan bridges to the
/// customer.
fn freeswitch_call(n: u32, shape: Shape, job: &str) -> String {
    let (a, b) = legs(n);
    let ref_id = format!("crm-{n}");
    if let Shape::Refused = shape {
        return "Content-Type: command/reply\nReply-Text: -ERR permission denied\n\n".into();
    }
    let hangup = |uuid: &str, cause: &str, disposition: &str| {
        fs(
            "CHANNEL_HANGUP_COMPLETE",
            uuid,
            &[
                ("Hangup-Cause", cause),
                ("variable_sip_hangup_disposition", disposition),
            ],
            "",
        )
    };
    let mut s = [
        format!(
            "Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"
        ),
        fs(
            "CHANNEL_CREATE",
            &a,
            &[
                ("Call-Direction", "outbound"),
                ("Channel-Call-UUID", &a),
                ("Caller-Channel-Name", "sofia/internal/101@10.0.0.21"),
                ("Caller-Context", "default"),
                ("Caller-Destination-Number", "101"),
                ("Caller-Caller-ID-Number", "+918065251305"),
                ("variable_CALLHOOK_REF_ID", &ref_id),
            ],
            "",
        ),
        fs(
            "CHANNEL_PROGRESS",
            &a,
            &[("Call-Direction", "outbound")],
            "",
        ),
    ]
    .concat();
    if let Shape::AgentBusy = shape {
        s.push_str(&hangup(&a, "USER_BUSY", "recv_486"));
        s.push_str(&fs(
            "BACKGROUND_JOB",
            "",
            &[("Job-UUID", job), ("Job-Command", "originate")],
            "-ERR USER_BUSY\n",
        ));
        return s;
    }
    s.push_str(
        &[
            fs("CHANNEL_ANSWER", &a, &[("Call-Direction", "outbound")], ""),
            fs(
                "BACKGROUND_JOB",
                "",
                &[("Job-UUID", job), ("Job-Command", "originate")],
                &format!("+OK {a}\n"),
            ),
            fs(
                "CHANNEL_CREATE",
                &b,
                &[
                    ("Call-Direction", "outbound"),
                    ("Other-Type", "originator"),
                    ("Other-Leg-Unique-ID", &a),
                    ("Channel-Call-UUID", &a),
                    ("Caller-Channel-Name", "sofia/gateway/carrier/+919812345678"),
                    ("Caller-Destination-Number", "+919812345678"),
                    ("Caller-Caller-ID-Number", "+918065251305"),
                ],
                "",
            ),
            fs("CHANNEL_PROGRESS", &b, &[], ""),
        ]
        .concat(),
    );
    let rest = match shape {
        Shape::Answered => [
            fs("CHANNEL_ANSWER", &b, &[], ""),
            fs("CHANNEL_BRIDGE", &a, &[("Bridge-B-Unique-ID", &b)], ""),
            hangup(&b, "NORMAL_CLEARING", "recv_bye"),
            hangup(&a, "NORMAL_CLEARING", "send_bye"),
        ]
        .concat(),
        _ => [
            hangup(&b, "NO_ANSWER", "send_cancel"),
            hangup(&a, "NORMAL_CLEARING", "send_bye"),
        ]
        .concat(),
    };
    s.push_str(&rest);
    s
}

#[tokio::test]
async fn freeswitch_places_click_to_call_calls() {
    let mut script = vec![
        Act::Send(b"Content-Type: auth/request\n\n".to_vec()),
        Act::Expect("auth ClueCon\n\n".into()),
        Act::Send(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n".to_vec()),
        Act::Expect(" BACKGROUND_JOB\n\n".into()),
        Act::Send(
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n"
                .to_vec(),
        ),
    ];
    for (i, shape) in SHAPES.iter().enumerate() {
        let n = i as u32 + 1;
        let shape = *shape;
        script.push(Act::Answer {
            find: format!("CALLHOOK_REF_ID=crm-{n}}}"),
            key: "Job-UUID",
            reply: Arc::new(move |job| freeswitch_call(n, shape, job).into_bytes()),
        });
    }
    let pbx = FakePbx::start(vec![script]).await;
    let receiver = Receiver::start().await;
    let connector = json!({
        "kind": "freeswitch_esl", "name": "fs", "password": "ClueCon",
        "default_did": "+918065251305",
        "extension_names": {"101": "Asha"},
        "originate": true,
        "originate_channel": "user/{extension}",
        "originate_context": "callhook-click-to-call",
    });
    let (app, _) = follow_with_connectors(&pbx, connector, &receiver).await;
    let call = json!({"agent_extension": "101", "customer_number": "+919812345678"});
    let (s, b) = app.post("/v1/click-to-call", call).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(problem_fields(&b), ["connector"]);
    pbx.go();
    status_where(&app, |s| s["connected"] == true).await;

    // No DID named: the connector's default DID is the caller id.
    place_each(&app, |n| legs(n).0, json!({})).await;

    let heard = &pbx.heard()[0];
    let job = heard
        .split("Job-UUID: ")
        .nth(1)
        .and_then(|rest| rest.split('\n').next())
        .unwrap();
    assert!(job.starts_with("c2c_"), "{heard}");
    let originate = format!(
        "bgapi originate {{origination_caller_id_number=+918065251305,\
         originate_timeout=30,CALLHOOK_REF_ID=crm-1}}user/101 +919812345678 XML \
         callhook-click-to-call\nJob-UUID: {job}\n\n"
    );
    assert!(heard.contains(&originate), "{heard}");
    assert_eq!(heard.matches("bgapi originate").count(), 4, "{heard}");

    let want = calls_of(legs);
    let want: Vec<(&str, &str, &[&str])> =
        want.iter().map(|(s, c, l)| (*s, c.as_str(), *l)).collect();
    let deliveries = check_calls(&app, &want).await;
    check_received(&receiver, &deliveries).await;
    check_answered_deliveries(&receiver, &legs(1).0, "crm-1");
    let status = status_where(&app, |s| s["calls_open"] == 0).await;
    assert_eq!(status["connected"], true);
}

/// What a node answers: status and body.
async fn node_call(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("the node answers");
    let s = r.status();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asks `base` for request `n` until it answers `want` (what a node knows of another node's
/// connector follows it by a publication); answers the last answer.
async fn ask_until(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    n: u32,
    want: impl Fn(StatusCode, &Value) -> bool,
) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = json!({"agent_extension": "101", "customer_number": "+919812345678",
                      "did_number": "+918065251305", "ref_id": format!("crm-{n}")});
    loop {
        let (s, b) = node_call(
            http,
            base,
            key,
            Method::POST,
            "/v1/click-to-call",
            Some(body.clone()),
        )
        .await;
        if want(s, &b) {
            return (s, b);
        }
        assert!(Instant::now() < deadline, "never got there: {s} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until request `id` (read on `base`) satisfies `done`.
async fn request_where(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, b) = node_call(
            http,
            base,
            key,
            Method::GET,
            &format!("/v1/click-to-call/{id}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if done(&b) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} never got there: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn conflict_says(s: StatusCode, b: &Value, words: &str) -> bool {
    s == StatusCode::CONFLICT
        && problem_fields(b) == ["connector"]
        && b["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(words))
}

/// Two `callhook serve` nodes on one PostgreSQL database, the connector on node A only
/// (docs/operations.md): requests made on node B are handed over through the database and
/// placed by A; B's 409 knows whether A's connector is connected; a request nobody takes,
/// and one whose node died while placing it, fail in bounded time; none is placed twice.
#[tokio::test]
async fn requests_made_on_another_node_are_handed_over_through_the_database() {
    use crate::nodes::{Nodes, free_port, start_node_with, wait_healthy};
    callhook::init_crypto();
    let database = crate::helpers::pg_database().await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = [free_port(), free_port()];
    let [a, b] = ports.map(|p| format!("http://127.0.0.1:{p}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let quick = [("CALLHOOK_CLICK_TO_CALL_TIMEOUT", "3s")];
    let mut nodes = Nodes(vec![start_node_with(
        dirs[1].path(),
        ports[1],
        Some(&database),
        None,
        &quick,
    )]);
    wait_healthy(&http, &b).await;
    let (s, account) = node_call(
        &http,
        &b,
        crate::helpers::OPERATOR_TOKEN,
        Method::POST,
        "/v1/accounts",
        Some(json!({"name": "Two nodes"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap();
    let key = account["api_key"]["key"].as_str().unwrap().to_owned();
    let (s, _) = node_call(
        &http,
        &b,
        &key,
        Method::POST,
        "/v1/numbers",
        Some(json!({"number": "+918065251305"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // No node runs a connector that places the account's calls.
    let (s, body) = ask_until(&http, &b, &key, 1, |_, _| true).await;
    assert!(conflict_says(s, &body, "no connector"), "{s} {body}");

    // Node A runs the connector; its PBX answers crm-1 and crm-3, takes crm-4 and then
    // goes quiet (the node will die while its agent rings).
    let (banner, _) = banner_and_frames(CALL_SHAPES);
    let answer = |n: u32, shape: Shape| Act::Answer {
        find: format!("CALLHOOK_REF_ID=crm-{n}\r\n"),
        key: "ActionID",
        reply: Arc::new(move |action| asterisk_call(n, shape, action).into_bytes()),
    };
    let script = vec![
        Act::Send(banner),
        Act::AmiLogin,
        answer(1, Shape::Answered),
        answer(3, Shape::Answered),
        Act::Answer {
            find: "CALLHOOK_REF_ID=crm-4\r\n".into(),
            key: "ActionID",
            reply: Arc::new(|action| {
                f(&[
                    ("Response", "Success"),
                    ("ActionID", action),
                    ("Message", "Originate successfully queued"),
                ])
                .into_bytes()
            }),
        },
    ];
    let pbx = FakePbx::start(vec![script]).await;
    let config = dirs[0].path().join("callhook.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nkind = \"asterisk_ami\"\nname = \"pbx\"\nhost = \"127.0.0.1\"\n\
             port = {}\nusername = \"callhook\"\npassword = \"s3cret\"\naccount = \"{account_id}\"\n\
             default_did = \"+918065251305\"\noriginate = true\n\
             originate_channel = \"PJSIP/{{extension}}\"\n\
             originate_context = \"callhook-click-to-call\"\n",
            pbx.addr.port()
        ),
    )
    .unwrap();
    nodes.0.insert(
        0,
        start_node_with(
            dirs[0].path(),
            ports[0],
            Some(&database),
            Some(&config),
            &quick,
        ),
    );
    wait_healthy(&http, &a).await;

    // A's connector is not logged in yet: B says so, naming it.
    let (s, body) = ask_until(&http, &b, &key, 1, |s, b| {
        conflict_says(s, b, "not connected")
    })
    .await;
    assert!(conflict_says(s, &body, "pbx is not connected"), "{body}");

    // Once it is, a request made on B is placed by A and followed to its end, read on B.
    pbx.go();
    let (_, asked) = ask_until(&http, &b, &key, 1, |s, _| s == StatusCode::ACCEPTED).await;
    let id = asked["request_id"].as_str().unwrap().to_owned();
    let done = request_where(&http, &b, &key, &id, |r| r["state"] == "answered").await;
    assert_eq!(
        went(&done),
        ["queued", "ringing_agent", "ringing_customer", "answered"]
    );
    assert_eq!(done["connector"], "pbx");
    assert_eq!(done["call_id"], uniqueids(1).0);
    // The same ref_id on either node: the same request, placed once.
    for base in [&a, &b] {
        let (s, again) = ask_until(&http, base, &key, 1, |_, _| true).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["request_id"], id.as_str());
    }

    // A stops answering (SIGSTOP) just after saying its connector is connected: B takes the
    // request, nobody places it, and B fails it once click_to_call_timeout (3 s) is over.
    let a_pid = nodes.0[0].id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &a_pid])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let (s, asked) = ask_until(&http, &b, &key, 2, |_, _| true).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "A's word is fresh for 15 s: {asked}"
    );
    let lost = request_where(
        &http,
        &b,
        &key,
        asked["request_id"].as_str().unwrap(),
        |r| r["state"] == "failed",
    )
    .await;
    assert_eq!(went(&lost), ["queued", "failed connector_lost"]);
    assert!(
        lost["cause"]
            .as_str()
            .unwrap()
            .contains("took the request in time"),
        "{lost}"
    );
    assert_eq!(lost["placed_at"], Value::Null);
    signal("-CONT");
    // A goes on: the failed request is never placed, the next one is.
    let (_, asked) = ask_until(&http, &b, &key, 3, |s, _| s == StatusCode::ACCEPTED).await;
    let id3 = asked["request_id"].as_str().unwrap().to_owned();
    request_where(&http, &b, &key, &id3, |r| r["state"] == "answered").await;

    // A dies while the agent's phone rings: its lease runs out and B fails the request.
    let (_, asked) = ask_until(&http, &b, &key, 4, |s, _| s == StatusCode::ACCEPTED).await;
    let id4 = asked["request_id"].as_str().unwrap().to_owned();
    request_where(&http, &b, &key, &id4, |r| r["state"] == "ringing_agent").await;
    nodes.0[0].kill().unwrap();
    nodes.0[0].wait().unwrap();
    let dead = request_where(&http, &b, &key, &id4, |r| r["state"] == "failed").await;
    assert_eq!(
        went(&dead),
        ["queued", "ringing_agent", "failed connector_lost"]
    );
    assert!(
        dead["cause"].as_str().unwrap().contains("stopped"),
        "{dead}"
    );
    // And once A's word is stale, B answers 409: no connector places the account's calls.
    // (Until then B takes requests, each with a reference of its own, which fail unplaced.)
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        let body = json!({"agent_extension": "101", "customer_number": "+919812345678",
                          "ref_id": format!("late-{i}")});
        let (s, body) = node_call(
            &http,
            &b,
            &key,
            Method::POST,
            "/v1/click-to-call",
            Some(body),
        )
        .await;
        if s == StatusCode::CONFLICT {
            assert!(conflict_says(s, &body, "no connector"), "{body}");
            break;
        }
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        assert!(Instant::now() < deadline, "B never noticed A is gone");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let heard = &pbx.heard()[0];
    assert!(!heard.contains("CALLHOOK_REF_ID=late-"), "{heard}");
    for (n, times) in [(1, 1), (2, 0), (3, 1), (4, 1)] {
        let line = format!("CALLHOOK_REF_ID=crm-{n}\r\n");
        assert_eq!(heard.matches(&line).count(), times, "crm-{n}: {heard}");
    }
}
