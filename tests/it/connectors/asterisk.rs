//! Asterisk (AMI): the call-shapes and queue-shapes captures of Asterisk 22 become the call
//! events and deliveries of SPEC §2 and §15, scenario by scenario.

use super::*;

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

/// Reading status and deliveries per scenario needs the scenario names to be unique.
#[test]
fn the_scenario_tables_name_each_call_once() {
    for table in [CALL_SHAPES_WANT, QUEUE_SHAPES_WANT] {
        let calls: BTreeMap<&str, &str> = table.iter().map(|(s, c, _)| (*c, *s)).collect();
        assert_eq!(calls.len(), table.len());
    }
}
