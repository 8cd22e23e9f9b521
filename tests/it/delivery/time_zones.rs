//! Timestamps written in the webhook's time zone, across DST changes and half-hour offsets.

use super::*;

#[tokio::test]
async fn timestamps_are_in_the_webhooks_zone_across_dst_and_half_hour_offsets() {
    let app = loopback_app().await;
    let rx = Receiver::start().await;
    app.hook(
        json!({"trigger": "call_received", "time_zone": "Europe/London",
                      "url": rx.url("/london")}),
    )
    .await;
    app.hook(
        json!({"trigger": "call_received", "time_zone": "Europe/London", "method": "GET",
                      "url": rx.url("/london-get")}),
    )
    .await;
    app.hook(
        json!({"trigger": "call_received", "time_zone": "Asia/Kolkata",
                      "url": rx.url("/kolkata")}),
    )
    .await;
    // 2026-10-25 01:00 UTC: London leaves summer time (+01:00) for GMT (+00:00).
    let before = "2026-10-25T00:30:00Z";
    let after = "2026-10-25T01:30:00Z";
    for (id, at) in [("tz-before", before), ("tz-after", after)] {
        app.accept(json!({"id": id, "type": "call.received", "occurred_at": at,
                   "call": {"call_id": id, "call_type": "inbound", "did_number": DID,
                            "started_at": at}}))
            .await;
    }
    let got = rx.wait_for(6, Duration::from_secs(10)).await;
    let want = [
        (
            "/london",
            "tz-before",
            "2026-10-25T01:30:00+01:00",
            "Europe/London",
        ),
        (
            "/london",
            "tz-after",
            "2026-10-25T01:30:00+00:00",
            "Europe/London",
        ),
        (
            "/london-get",
            "tz-before",
            "2026-10-25T01:30:00+01:00",
            "Europe/London",
        ),
        (
            "/london-get",
            "tz-after",
            "2026-10-25T01:30:00+00:00",
            "Europe/London",
        ),
        (
            "/kolkata",
            "tz-before",
            "2026-10-25T06:00:00+05:30",
            "Asia/Kolkata",
        ),
        (
            "/kolkata",
            "tz-after",
            "2026-10-25T07:00:00+05:30",
            "Asia/Kolkata",
        ),
    ];
    for (path, call_id, stamp, zone) in want {
        let r = got
            .iter()
            .find(|r| r.path == path && param(r, "call_id").as_deref() == Some(call_id))
            .unwrap_or_else(|| panic!("{path} got nothing for {call_id}: {got:#?}"));
        assert_eq!(
            param(r, "occurred_at").as_deref(),
            Some(stamp),
            "{path} {call_id}"
        );
        assert_eq!(
            param(r, "start_stamp").as_deref(),
            Some(stamp),
            "{path} {call_id}"
        );
        assert_eq!(param(r, "time_zone").as_deref(), Some(zone), "{path}");
    }
}
