//! Secret header values (SPEC §14): write-only in the API (answers show `********`, and a PUT
//! of what GET answered keeps them), masked in the attempt log, never stored in clear, and
//! masked in the web page until an admin reveals them (an audit entry, never the value); a
//! viewer sees no value and may not reveal.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::at_rest::{assert_none_stored, stored_text};
use crate::receiver::Receiver;

const BEARER: &str = "Bearer s3cr3t-bearer-9f2";
const HIDDEN: &str = "hidden-by-choice-71c";

fn header<'a>(w: &'a Value, key: &str) -> &'a Value {
    w["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {w}"))
}

fn event(id: &str) -> Value {
    json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
           "call": {"call_id": id, "call_type": "inbound", "did_number": "+918065251305"}})
}

#[tokio::test]
async fn secret_header_values_are_write_only_masked_in_attempts_and_never_stored_in_clear() {
    let team = Team::new().await;
    let app = &team.app;
    let rx = Receiver::start().await;
    let made = app
        .create_webhook(json!({"url": rx.url("/in"), "headers": [
            {"key": "Authorization", "value": BEARER},
            {"key": "X-Tenant", "value": "acme"},
            {"key": "X-Custom", "value": HIDDEN, "secret": true},
            {"key": "X-Api-Key", "value": "not-secret-key", "secret": false},
        ]}))
        .await;
    let id = id_of(&made);
    for w in [&made, &app.get(&format!("/v1/webhooks/{id}")).await.1] {
        assert_eq!(
            header(w, "Authorization"),
            &json!({"key": "Authorization", "value": "********", "secret": true})
        );
        assert_eq!(
            header(w, "X-Tenant"),
            &json!({"key": "X-Tenant", "value": "acme", "secret": false})
        );
        assert_eq!(header(w, "X-Custom")["value"], "********");
        assert_eq!(
            header(w, "X-Api-Key"),
            &json!({"key": "X-Api-Key", "value": "not-secret-key", "secret": false})
        );
        assert!(
            !w.to_string().contains("s3cr3t") && !w.to_string().contains(HIDDEN),
            "{w}"
        );
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert!(!list.to_string().contains("s3cr3t"), "{list}");

    // What GET answered, sent back whole with PUT, keeps the secret values.
    let (_, got) = app.get(&format!("/v1/webhooks/{id}")).await;
    let (s, put) = app
        .call(
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(got.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    app.accept(json!([event("ev-1")])).await;
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(r.header("authorization"), Some(BEARER));
    assert_eq!(r.header("x-custom"), Some(HIDDEN));
    assert_eq!(r.header("x-tenant"), Some("acme"));

    // The attempt log shows secret values masked, to admins too.
    let d = app.settled(&id, 1).await.remove(0);
    let (_, delivery) = app.get(&format!("/v1/deliveries/{}", id_of(&d))).await;
    let sent = |name: &str| sent_header(&delivery, name);
    assert_eq!(
        sent("authorization").as_deref(),
        Some("********"),
        "{delivery}"
    );
    assert_eq!(sent("x-custom").as_deref(), Some("********"));
    assert_eq!(sent("x-tenant").as_deref(), Some("acme"));

    // A PATCH with a new value sends the new value. A masked value sent back stays secret even
    // when the body says otherwise (the web form does not say); to show it, send it again.
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(
                json!({"headers": [{"key": "Authorization", "value": "Bearer rotated-77"},
                                    {"key": "X-Custom", "value": "********", "secret": false},
                                    {"key": "X-Tenant", "value": "acme"}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(header(&b, "Authorization")["value"], "********");
    assert_eq!(
        header(&b, "X-Custom"),
        &json!({"key": "X-Custom", "value": "********", "secret": true})
    );
    app.accept(json!([event("ev-2")])).await;
    let r = rx.wait_for(2, Duration::from_secs(10)).await.remove(1);
    assert_eq!(r.header("authorization"), Some("Bearer rotated-77"));
    assert_eq!(r.header("x-custom"), Some(HIDDEN));
    app.settled(&id, 2).await;
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(
                json!({"headers": [{"key": "Authorization", "value": "********"},
                                    {"key": "X-Custom", "value": "shown-now", "secret": false},
                                    {"key": "X-Tenant", "value": "acme"}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        header(&b, "X-Custom"),
        &json!({"key": "X-Custom", "value": "shown-now", "secret": false})
    );

    // A viewer reads no header value at all.
    let (_, as_viewer) = app
        .call_as(
            Some(&team.viewer_key),
            Method::GET,
            &format!("/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(header(&as_viewer, "X-Tenant")["value"], "********");

    // What the database holds: no secret header value, in the webhook or the attempts.
    let stored = stored_text(&app.database_url).await;
    assert!(stored.contains(&id));
    assert_none_stored(
        &stored,
        &[
            ("Authorization header value", "s3cr3t-bearer-9f2"),
            ("rotated Authorization header value", "rotated-77"),
            ("secret header value", HIDDEN),
        ],
    );
}

#[tokio::test]
async fn the_web_page_masks_secret_values_until_an_admin_reveals_them() {
    let team = Team::new().await;
    let app = &team.app;
    let rx = Receiver::start().await;
    let id = app
        .hook(json!({"url": rx.url("/in"), "headers": [
            {"key": "Authorization", "value": BEARER},
            {"key": "X-Tenant", "value": "acme-tenant"},
        ]}))
        .await;
    let (_, admin) = team.member("admin", "admin").await;
    let (_, viewer) = team.member("viewer", "viewer").await;
    let page = format!("/webhooks/{id}");
    let reveal = format!("/webhooks/{id}/headers/reveal");

    let (s, html) = team.page(&admin, &page).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("s3cr3t"), "masked until revealed");
    assert!(html.contains("Authorization: ********") && html.contains("acme-tenant"));
    assert!(html.contains("Show values"));
    // The edit form does not hold it either; saved as it is, the value is kept.
    let (_, form) = team.page(&admin, &format!("/webhooks/{id}/edit")).await;
    assert!(!form.contains("s3cr3t"), "the edit form masks it");
    // Its Send test, as the form stands, sends the stored value.
    let url = rx.url("/in");
    let (s, _, panel) = team
        .form(
            &admin,
            "/webhooks/test",
            &[
                ("webhook_id", id.as_str()),
                ("name", "hook"),
                ("trigger", "call_received"),
                ("url", url.as_str()),
                ("method", "POST"),
                ("content_type", "application/json"),
                ("call_types", "inbound"),
                ("time_zone", "UTC"),
                ("header_key", "Authorization"),
                ("header_value", "********"),
                ("header_key", "X-Tenant"),
                ("header_value", "acme-tenant"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{panel}");
    let r = rx.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(r.header("authorization"), Some(BEARER));

    let (s, _, html) = team.form(&admin, &reveal, &[]).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("Authorization: {BEARER}")),
        "revealed"
    );
    assert!(!html.contains("Show values"));
    let (_, log) = app.get("/v1/audit?action=webhook.header_reveal").await;
    let entries = log["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["resource"]["id"], id.as_str());
    assert!(
        !log.to_string().contains("s3cr3t"),
        "the entry holds no value: {log}"
    );

    // A viewer: every value masked, no button, and the form is refused.
    let (_, html) = team.page(&viewer, &page).await;
    assert!(!html.contains("s3cr3t") && !html.contains("acme-tenant"));
    assert!(!html.contains("Show values"));
    let (s, _, _) = team.form(&viewer, &reveal, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, log) = app.get("/v1/audit?action=webhook.header_reveal").await;
    assert_eq!(
        log["data"].as_array().unwrap().len(),
        1,
        "a refusal reveals nothing"
    );
}
