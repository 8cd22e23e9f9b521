//! Recovery: a connection cut mid-event, a replayed stream, a restart mid-call, a call that
//! ended while callhook was down, a refused login; nothing lost, nothing twice.

use super::*;

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
