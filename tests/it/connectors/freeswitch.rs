//! FreeSWITCH (event socket): recorded sessions become call events and deliveries.

use super::*;

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
