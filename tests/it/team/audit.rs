//! The audit log (SPEC §13): one row per change — webhooks, numbers, API keys, users, secret
//! reveal and rotation, resend, replay, enable and disable — by whom (a user or a key, by
//! name), with the fields it moved; filtered and paged through `GET /v1/audit` and the Audit
//! page; and never a secret's value: the audit table, as the database file and `pg_dump` hold
//! it, is searched for every secret the test used.

use std::collections::BTreeSet;

use callhook::core::audit::Action;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::receiver::Receiver;

/// The entries of `log` with `action` on `resource`.
fn entries<'a>(log: &'a [Value], action: &str, resource: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|e| e["action"] == action && e["resource"]["id"] == resource)
        .collect()
}

/// The one entry of `log` with `action` on `resource`.
fn entry<'a>(log: &'a [Value], action: &str, resource: &str) -> &'a Value {
    let found = entries(log, action, resource);
    assert_eq!(found.len(), 1, "{action} {resource}: {found:?}");
    found[0]
}

fn change(e: &Value, field: &str) -> Value {
    e["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == field)
        .map(|c| json!([c["before"], c["after"]]))
        .unwrap_or_else(|| panic!("no {field} in {e}"))
}

/// The token of a one-time link.
fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn every_change_is_recorded_by_whom_with_what_moved_and_never_a_secret() {
    let team = Team::new().await;
    let app = &team.app;
    let rx = Receiver::start().await;
    // Everything secret this test hands callhook or gets from it.
    let mut secrets: Vec<String> = vec![
        app.key.clone(),
        team.viewer_key.clone(),
        PASSWORD.into(),
        "s3cr3t-header-one".into(),
        "s3cr3t-header-two".into(),
    ];

    // An owner signs up through an invitation and works in the web page.
    let owner_email = fresh_email("owner");
    let (owner_user, owner_link) = team.invite(&owner_email, "owner").await;
    secrets.push(token_of(&owner_link));
    let owner_id = id_of(&owner_user);
    let owner = team.follow(&owner_link, PASSWORD).await.1.unwrap();

    // Webhooks, through the API: create, change, disable and enable, reveal and rotate.
    let (s, made) = app
        .post(
            "/v1/webhooks",
            json!({"name": "CRM", "trigger": "call_received", "url": rx.url("/hook"),
                   "headers": [{"key": "X-Api-Key", "value": "s3cr3t-header-one"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let wh = id_of(&made);
    secrets.push(made["secret"].as_str().unwrap().into());
    let patch = |body: Value| {
        let path = format!("/v1/webhooks/{wh}");
        async move {
            let (s, b) = app.call(Method::PATCH, &path, Some(body)).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    };
    patch(json!({"url": rx.url("/v2"),
        "headers": [{"key": "X-Api-Key", "value": "s3cr3t-header-two"}]}))
    .await;
    patch(json!({"enabled": false})).await;
    patch(json!({"enabled": true})).await;
    secrets.push(app.secret_of(&wh).await);
    let (s, rotated) = app
        .post(&format!("/v1/webhooks/{wh}/secret/rotate"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    secrets.push(rotated["secret"].as_str().unwrap().into());

    // A delivery resent and a replay, through the web page by the owner and by the key.
    app.accept(
        json!({"type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
        "call": {"call_id": "audited", "call_type": "inbound", "did_number": "+918065251305"}}),
    )
    .await;
    let delivery = id_of(&app.settled(&wh, 1).await[0]);
    let (s, _, _) = team
        .form(&owner, &format!("/deliveries/{delivery}/resend"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    app.settled(&wh, 1).await;
    let (s, b) = app
        .post(
            &format!("/v1/webhooks/{wh}/replay"),
            json!({"since": "2020-01-01T00:00:00Z", "status": "succeeded"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    // A bulk retry of the failed ones (there are none), through the web page.
    let (s, _, _) = team
        .form(
            &owner,
            &format!("/webhooks/{wh}/retry"),
            &[("status", "failed")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    // The secret header's value shown in the web page.
    let (s, _, page) = team
        .form(&owner, &format!("/webhooks/{wh}/headers/reveal"), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("s3cr3t-header-two"));

    // Numbers, in the web page.
    let number = fresh_number();
    for (path, fields) in [
        (
            "/numbers",
            vec![("number", number.as_str()), ("label", "Sales")],
        ),
        (
            "/numbers/label",
            vec![("number", number.as_str()), ("label", "Support")],
        ),
        ("/numbers/remove", vec![("number", number.as_str())]),
    ] {
        let (s, _, page) = team.form(&owner, path, &fields).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{path}: {page}");
    }

    // API keys: one made and revoked.
    let (s, key) = app
        .post("/v1/api-keys", json!({"name": "ci", "role": "viewer"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    secrets.push(key["key"].as_str().unwrap().into());
    let key_id = id_of(&key);
    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{key_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Users: invited by the owner, promoted, reset, a new password, removed.
    let (s, _, page) = team
        .form(
            &owner,
            "/users",
            &[("email", "ravi@acme.example"), ("role", "viewer")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let at = page.find("id=\"made-link\">").unwrap() + "id=\"made-link\">".len();
    let invite = page[at..].split('<').next().unwrap().to_owned();
    secrets.push(token_of(&invite));
    let ravi = team.follow(&invite, PASSWORD).await.1.unwrap();
    let (_, users) = app.get("/v1/users").await;
    let ravi_id = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ravi@acme.example")
        .map(id_of)
        .unwrap();
    let (s, _, _) = team
        .form(
            &owner,
            &format!("/users/{ravi_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, reset) = app
        .post(&format!("/v1/users/{ravi_id}/reset"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{reset}");
    let reset_url = reset["reset_url"].as_str().unwrap();
    secrets.push(token_of(reset_url));
    assert!(!team.signed_in(&ravi).await);
    let second = "ravi's second password";
    secrets.push(second.into());
    let ravi = team.follow(reset_url, second).await.1.unwrap();
    let third = "ravi's third password!";
    secrets.push(third.into());
    let (s, _, _) = team
        .form(
            &ravi,
            "/password",
            &[("current", second), ("password", third), ("confirm", third)],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, _) = team
        .form(&owner, &format!("/users/{ravi_id}/remove"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // And the webhook deleted, in the web page.
    let (s, _, _) = team
        .form(&owner, &format!("/webhooks/{wh}/delete"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // The log, newest first.
    let log = team.audit("?limit=1000").await;
    let times: Vec<jiff::Timestamp> = log
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let key_actor = json!({"type": "api_key", "id": log.iter().find(|e| e["actor"]["name"] == "default").unwrap()["actor"]["id"], "name": "default"});
    let owner_actor = json!({"type": "user", "id": owner_id, "name": owner_email});

    let created = entry(&log, "webhook.create", &wh);
    assert_eq!(created["actor"], key_actor);
    assert_eq!(created["resource"], json!({"type": "webhook", "id": wh}));
    assert_eq!(change(created, "name"), json!([null, "CRM"]));
    assert_eq!(change(created, "headers"), json!([null, ["X-Api-Key"]]));
    let updated = entry(&log, "webhook.update", &wh);
    assert_eq!(
        change(updated, "url"),
        json!([rx.url("/hook"), rx.url("/v2")])
    );
    assert_eq!(
        change(updated, "headers.X-Api-Key"),
        json!([null, "changed"])
    );
    assert_eq!(
        change(entry(&log, "webhook.disable", &wh), "enabled"),
        json!([true, false])
    );
    assert_eq!(
        change(entry(&log, "webhook.enable", &wh), "enabled"),
        json!([false, true])
    );
    assert_eq!(
        change(entry(&log, "webhook.secret_reveal", &wh), "secret"),
        json!([null, "revealed"])
    );
    assert_eq!(
        change(entry(&log, "webhook.header_reveal", &wh), "headers"),
        json!([null, "revealed"])
    );
    assert_eq!(
        change(entry(&log, "webhook.secret_rotate", &wh), "secret"),
        json!([null, "rotated"])
    );
    let replay = entry(&log, "webhook.replay", &wh);
    assert_eq!(change(replay, "status"), json!([null, "succeeded"]));
    assert_eq!(change(replay, "replayed"), json!([null, 1]));
    let retry = entry(&log, "webhook.retry", &wh);
    assert_eq!(retry["actor"], owner_actor);
    assert_eq!(change(retry, "filter"), json!([null, {"status": "failed"}]));
    assert_eq!(change(retry, "retried"), json!([null, 0]));
    let deleted = entry(&log, "webhook.delete", &wh);
    assert_eq!(deleted["actor"], owner_actor);
    assert_eq!(change(deleted, "url"), json!([rx.url("/v2"), null]));
    assert_eq!(
        entry(&log, "delivery.resend", &delivery)["actor"],
        owner_actor
    );
    assert_eq!(
        change(entry(&log, "number.add", &number), "label"),
        json!([null, "Sales"])
    );
    assert_eq!(
        change(entry(&log, "number.update", &number), "label"),
        json!(["Sales", "Support"])
    );
    assert_eq!(
        change(entry(&log, "number.remove", &number), "number"),
        json!([number, null])
    );
    assert_eq!(
        change(entry(&log, "api_key.create", &key_id), "role"),
        json!([null, "viewer"])
    );
    assert_eq!(
        change(entry(&log, "api_key.revoke", &key_id), "name"),
        json!(["ci", null])
    );
    // The account's first key was made by the operator.
    let first_key = log
        .iter()
        .find(|e| e["action"] == "api_key.create" && e["actor"]["type"] == "operator")
        .expect("the first key's creation");
    assert_eq!(first_key["actor"]["name"], "the operator API");
    let invited = entry(&log, "user.invite", &ravi_id);
    assert_eq!(invited["actor"], owner_actor);
    assert_eq!(change(invited, "email"), json!([null, "ravi@acme.example"]));
    assert_eq!(change(invited, "role"), json!([null, "viewer"]));
    let signed_up = entry(&log, "user.sign_up", &ravi_id);
    assert_eq!(signed_up["actor"]["name"], "ravi@acme.example");
    assert_eq!(change(signed_up, "password"), json!([null, "set"]));
    assert_eq!(
        change(entry(&log, "user.role_change", &ravi_id), "role"),
        json!(["viewer", "admin"])
    );
    let reset = entry(&log, "user.reset", &ravi_id);
    assert_eq!(reset["actor"], key_actor);
    assert_eq!(change(reset, "password"), json!([null, "reset"]));
    let changes = entries(&log, "user.password_change", &ravi_id);
    assert_eq!(
        changes.len(),
        2,
        "through the reset link and in the account menu"
    );
    assert!(
        changes
            .iter()
            .all(|e| e["actor"]["name"] == "ravi@acme.example")
    );
    assert_eq!(
        change(entry(&log, "user.remove", &ravi_id), "email"),
        json!(["ravi@acme.example", null])
    );

    // Every action of the log is here, but those that have their own tests: user.create (the
    // command line, in `invitations`), click_to_call.request (a connected PBX, in
    // `click_to_call`) and the account's alert settings (in `alerts`).
    let seen: BTreeSet<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let elsewhere = [
        "user.create",
        "click_to_call.request",
        "account.alerts_update",
        "account.alert_secret_reveal",
        "account.alert_secret_rotate",
    ];
    let missing: Vec<&str> = Action::ALL
        .iter()
        .map(|a| a.as_str())
        .filter(|a| !seen.contains(a) && !elsewhere.contains(a))
        .collect();
    assert!(missing.is_empty(), "no entry for {missing:?}");

    // Filters: by resource, by actor (id, email or key name), by action, by time; bad ones named.
    let only_wh = team.audit(&format!("?resource_id={wh}")).await;
    assert!(only_wh.len() >= 8 && only_wh.iter().all(|e| e["resource"]["id"] == wh.as_str()));
    let by_owner = team.audit(&format!("?actor={owner_email}")).await;
    let by_owner_id = team.audit(&format!("?actor={owner_id}")).await;
    assert_eq!(by_owner, by_owner_id);
    assert!(!by_owner.is_empty() && by_owner.iter().all(|e| e["actor"] == owner_actor));
    assert!(
        team.audit("?actor=default")
            .await
            .iter()
            .all(|e| e["actor"] == key_actor)
    );
    let rotations = team.audit("?action=webhook.secret_rotate").await;
    assert_eq!(rotations.len(), 1);
    assert!(team.audit("?since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(
        team.audit("?until=2999-01-01T00:00:00Z").await.len(),
        log.len()
    );
    let (s, b) = app
        .get("/v1/audit?action=webhook.explode&since=yesterday")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(crate::helpers::problem_fields(&b), ["action", "since"]);
    // Pages.
    let (_, first) = app.get("/v1/audit?limit=3").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let next = first["next"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/v1/audit?limit=1000&after={next}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), log.len() - 3);
    // Another account sees none of it.
    let (_, other) = app.other_account("Other").await;
    let (_, theirs) = app
        .call_as(Some(&other), Method::GET, "/v1/audit", None)
        .await;
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "api_key.create")
    );

    // The Audit page shows it to the owner, filtered.
    let (s, html) = team
        .page(
            &owner,
            &format!("/audit?resource_id={wh}&action=webhook.update"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("<code>webhook.update</code>") && html.contains("headers.X-Api-Key"),
        "{html}"
    );
    assert!(
        !html.contains("<code>webhook.create</code>"),
        "filtered: {html}"
    );

    // No secret anywhere in the audit table. The search finds what is there (the control).
    let audit_table = team.dump(&["audit_log"]).await;
    assert!(holds(&audit_table, &owner_email) && holds(&audit_table, "headers.X-Api-Key"));
    for s in &secrets {
        assert!(
            !holds(&audit_table, s),
            "the audit table holds a secret: {s}"
        );
    }
    // Nor anywhere in the database, of what callhook keeps only hashed: keys, passwords and
    // the links' tokens.
    let everything = team.dump(&[]).await;
    assert!(holds(&everything, &owner_email));
    for s in secrets
        .iter()
        .filter(|s| !s.starts_with("whsec_") && !s.starts_with("s3cr3t-header"))
    {
        assert!(!holds(&everything, s), "the database holds a secret: {s}");
    }
}
