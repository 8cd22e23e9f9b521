//! Who may do what, route by route: a table of rules walked against the OpenAPI document's
//! route list and the web page's routes as written in `src/web`, so a new route without a rule
//! fails here. Every route is called with each role it concerns: the admin and viewer keys
//! through the API, and owner, admin and viewer users through the web page. A refusal is a
//! 403 saying which role it needs; an allowed call is anything but a refusal.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Anyone, without a token or session.
    Public,
    /// The operator token only.
    Operator,
    /// Any account key (and the operator token).
    AnyKey,
    /// Every role: reading webhooks, logs, calls, numbers.
    Read,
    /// Admins and owners (admin keys): the changes.
    Change,
    /// Admins and owners (admin keys): secrets.
    Secrets,
    /// Admins and owners (admin keys): the audit log.
    Audit,
    /// Owners in the web page, admin keys in the API: users.
    Users,
    /// Any signed-in user acting on their own session (not walked: it would end it).
    Own,
}

/// Every API route and its rule.
const API: &[(&str, &str, Rule)] = &[
    ("post", "/v1/accounts", Rule::Operator),
    ("get", "/v1/accounts", Rule::Operator),
    ("get", "/v1/accounts/{id}", Rule::Operator),
    ("post", "/v1/api-keys", Rule::Change),
    ("get", "/v1/api-keys", Rule::Secrets),
    ("delete", "/v1/api-keys/{id}", Rule::Change),
    ("post", "/v1/users", Rule::Users),
    ("get", "/v1/users", Rule::Users),
    ("patch", "/v1/users/{id}", Rule::Users),
    ("delete", "/v1/users/{id}", Rule::Users),
    ("post", "/v1/users/{id}/reset", Rule::Users),
    ("get", "/v1/audit", Rule::Audit),
    ("get", "/v1/account", Rule::Read),
    ("patch", "/v1/account", Rule::Change),
    ("post", "/v1/account/alert-secret/rotate", Rule::Change),
    ("get", "/v1/account/alerts", Rule::Read),
    ("get", "/v1/account/alerts/{id}", Rule::Read),
    ("post", "/v1/numbers", Rule::Change),
    ("get", "/v1/numbers", Rule::Read),
    ("get", "/v1/numbers/{number}", Rule::Read),
    ("patch", "/v1/numbers/{number}", Rule::Change),
    ("delete", "/v1/numbers/{number}", Rule::Change),
    ("post", "/v1/webhooks", Rule::Change),
    ("get", "/v1/webhooks", Rule::Read),
    ("get", "/v1/webhooks/{id}", Rule::Read),
    ("put", "/v1/webhooks/{id}", Rule::Change),
    ("patch", "/v1/webhooks/{id}", Rule::Change),
    ("delete", "/v1/webhooks/{id}", Rule::Change),
    ("get", "/v1/webhooks/{id}/secret", Rule::Secrets),
    ("post", "/v1/webhooks/{id}/secret/rotate", Rule::Change),
    ("get", "/v1/triggers", Rule::AnyKey),
    ("get", "/v1/triggers/{id}/sample", Rule::AnyKey),
    ("post", "/v1/events", Rule::Change),
    ("get", "/v1/webhooks/{id}/deliveries", Rule::Read),
    ("get", "/v1/deliveries/{id}", Rule::Read),
    ("post", "/v1/deliveries/{id}/resend", Rule::Change),
    ("post", "/v1/webhooks/{id}/replay", Rule::Change),
    ("get", "/v1/webhooks/{id}/failures", Rule::Read),
    ("post", "/v1/webhooks/{id}/deliveries/retry", Rule::Change),
    ("post", "/v1/webhooks/{id}/test", Rule::Change),
    ("post", "/v1/webhooks/test", Rule::Change),
    ("get", "/v1/calls", Rule::Read),
    ("get", "/v1/calls/{call_id}", Rule::Read),
    ("post", "/v1/click-to-call", Rule::Change),
    ("get", "/v1/click-to-call/{request_id}", Rule::Read),
    ("get", "/v1/connectors", Rule::Operator),
    ("get", "/healthz", Rule::Public),
    ("get", "/readyz", Rule::Public),
    ("get", "/metrics", Rule::Public),
];

/// Every route of the web page and its rule.
const WEB: &[(&str, &str, Rule)] = &[
    ("get", "/", Rule::Public),
    ("get", "/signin", Rule::Public),
    ("post", "/signin", Rule::Public),
    ("post", "/signout", Rule::Own),
    ("get", "/invite/{token}", Rule::Public),
    ("post", "/invite/{token}", Rule::Public),
    ("get", "/password", Rule::Own),
    ("post", "/password", Rule::Own),
    ("get", "/assets/{version}/{file}", Rule::Public),
    ("get", "/webhooks", Rule::Read),
    ("post", "/webhooks", Rule::Change),
    ("get", "/webhooks/new", Rule::Change),
    ("get", "/webhooks/preview", Rule::Read),
    ("get", "/webhooks/{id}", Rule::Read),
    ("post", "/webhooks/{id}", Rule::Change),
    ("get", "/webhooks/{id}/edit", Rule::Change),
    ("post", "/webhooks/{id}/enable", Rule::Change),
    ("post", "/webhooks/{id}/disable", Rule::Change),
    ("get", "/webhooks/{id}/delete", Rule::Change),
    ("post", "/webhooks/{id}/delete", Rule::Change),
    ("get", "/webhooks/{id}/secret", Rule::Secrets),
    ("post", "/webhooks/{id}/secret/rotate", Rule::Change),
    ("post", "/webhooks/{id}/headers/reveal", Rule::Secrets),
    ("post", "/webhooks/{id}/test", Rule::Change),
    ("post", "/webhooks/{id}/retry", Rule::Change),
    ("post", "/webhooks/test", Rule::Change),
    ("get", "/deliveries/{id}", Rule::Read),
    ("get", "/deliveries/live", Rule::Read),
    ("post", "/deliveries/{id}/resend", Rule::Change),
    ("get", "/numbers", Rule::Read),
    ("post", "/numbers", Rule::Change),
    ("post", "/numbers/label", Rule::Change),
    ("post", "/numbers/remove", Rule::Change),
    ("get", "/api-keys", Rule::Secrets),
    ("post", "/api-keys", Rule::Change),
    ("post", "/api-keys/{id}/revoke", Rule::Change),
    ("get", "/calls", Rule::Read),
    ("get", "/calls/{call_id}", Rule::Read),
    ("post", "/calls/click-to-call", Rule::Change),
    ("get", "/calls/click-to-call/{id}", Rule::Read),
    ("get", "/users", Rule::Users),
    ("post", "/users", Rule::Users),
    ("post", "/users/{id}/role", Rule::Users),
    ("post", "/users/{id}/reset", Rule::Users),
    ("post", "/users/{id}/remove", Rule::Users),
    ("get", "/audit", Rule::Audit),
    ("get", "/alerts", Rule::Read),
    ("post", "/alerts", Rule::Change),
    ("get", "/alerts/secret", Rule::Secrets),
    ("post", "/alerts/secret/rotate", Rule::Change),
];

/// The routes of the OpenAPI document.
async fn documented(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

/// The routes of the web page as `src/web` writes them: `.route("/path", get(…).post(…))`.
fn web_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut files = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/web"
    ))];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let start = rest.find('"').unwrap() + 1;
            let end = start + rest[start..].find('"').unwrap();
            let route = &rest[start..end];
            // The handlers: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut close = end;
            for (i, c) in rest[end..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    close = end + i;
                    break;
                }
            }
            let handlers = &rest[end..close];
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = handlers
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric());
                if called {
                    routes.insert((method.to_owned(), route.to_owned()));
                }
            }
        }
    }
    routes
}

fn table(rows: &[(&str, &str, Rule)]) -> BTreeSet<(String, String)> {
    rows.iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect()
}

#[tokio::test]
async fn every_route_has_a_rule() {
    let team = Team::new().await;
    assert_eq!(
        documented(&team.app).await,
        table(API),
        "the OpenAPI document's routes, and the rules of the API"
    );
    let web = web_routes();
    assert!(web.len() > 30, "the web page's routes were read: {web:?}");
    assert_eq!(web, table(WEB), "the web page's routes, and their rules");
}

/// A body fit for the route, so that what answers is the rule and not the parser.
fn body_for(method: &str, path: &str) -> Option<Value> {
    let webhook =
        || json!({"name": "w", "trigger": "call_received", "url": "https://crm.example.com/hook"});
    Some(match (method, path) {
        ("post", "/v1/accounts") => json!({"name": "Other"}),
        ("post", "/v1/api-keys") => json!({"name": "k", "role": "viewer"}),
        ("post", "/v1/users") => json!({"email": fresh_email("walk"), "role": "viewer"}),
        ("patch", "/v1/users/{id}") => json!({"role": "admin"}),
        ("post", "/v1/numbers") => json!({"number": fresh_number()}),
        ("patch", "/v1/numbers/{number}") => json!({"label": "Sales"}),
        ("patch", "/v1/account") => json!({"alert_after": "5m"}),
        ("post", "/v1/webhooks") | ("put", "/v1/webhooks/{id}") => webhook(),
        ("patch", "/v1/webhooks/{id}") => json!({"name": "renamed"}),
        // Nothing listens on port 9 (discard): the test answers at once, whatever it meets.
        ("post", "/v1/webhooks/test") => {
            json!({"name": "w", "trigger": "call_received", "url": "http://127.0.0.1:9/hook"})
        }
        ("post", "/v1/webhooks/{id}/replay") => json!({"since": "2020-01-01T00:00:00Z"}),
        ("post", "/v1/webhooks/{id}/deliveries/retry") => json!({"status": "failed"}),
        ("post", "/v1/click-to-call") => {
            json!({"agent_extension": "101", "customer_number": "+919812345678"})
        }
        ("post", "/v1/events") => json!({"type": "call.received",
            "occurred_at": "2026-11-27T04:00:00Z",
            "call": {"call_id": "walk", "call_type": "inbound", "did_number": "+918065251305"}}),
        _ => return None,
    })
}

/// `path` with its parameters filled with things of the account made for this one call (a
/// delete must not take away what a later call needs).
async fn concrete(team: &Team, path: &str) -> String {
    let app = &team.app;
    let mut url = path.to_owned();
    if path.starts_with("/v1/accounts/") {
        url = url.replace("{id}", &app.account_id);
    } else if path.starts_with("/v1/api-keys/") || path.starts_with("/api-keys/") {
        url = url.replace("{id}", &team.api_key("viewer").await);
    } else if path.starts_with("/v1/users/") || path.starts_with("/users/") {
        url = url.replace("{id}", &team.user("viewer").await);
    } else if path.contains("{number}") {
        url = url.replace("{number}", &team.number().await.replace('+', "%2B"));
    } else if path.starts_with("/v1/deliveries/") || path.starts_with("/deliveries/") {
        url = url.replace("{id}", &team.delivery().await.0);
    } else if path.contains("{call_id}") {
        url = url.replace("{call_id}", &team.delivery().await.1);
    } else if path.starts_with("/v1/click-to-call/") || path.starts_with("/calls/click-to-call/") {
        let made = callhook::core::id::ClickToCallId::new();
        url = url
            .replace("{request_id}", made.as_str())
            .replace("{id}", made.as_str());
    } else if path.starts_with("/v1/account/alerts/") {
        // No alert yet: any role that may read gets a 404, not a refusal.
        url = url.replace("{id}", callhook::core::id::DeliveryId::new().as_str());
    } else if path.starts_with("/v1/triggers/") {
        url = url.replace("{id}", "call_missed");
    } else if path.contains("/webhooks/{id}") {
        url = url.replace("{id}", &team.webhook(json!({})).await);
    }
    assert!(
        !url.contains('{'),
        "{path} has a parameter the walk cannot fill"
    );
    url
}

/// Whether `answer` is a refusal that names the role it needs.
fn refused(status: StatusCode, body: &Value, rule: Rule) -> bool {
    let detail = body["detail"].as_str().unwrap_or("");
    let names_it = match rule {
        Rule::Operator => detail.contains("operator token"),
        Rule::Users => detail.contains("an owner (in the web page) or an admin API key"),
        _ => detail.contains("the admin or owner role"),
    };
    status == StatusCode::FORBIDDEN && body["status"] == 403 && names_it
}

#[tokio::test]
async fn each_api_key_role_against_every_route() {
    let team = Team::new().await;
    let app = &team.app;
    for (method, path, rule) in API {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let callers: [(&str, &str, bool); 3] = [
            (
                "viewer key",
                team.viewer_key.as_str(),
                matches!(rule, Rule::Public | Rule::AnyKey | Rule::Read),
            ),
            (
                "admin key",
                app.key.as_str(),
                !matches!(rule, Rule::Operator),
            ),
            (
                "operator",
                OPERATOR_TOKEN,
                matches!(rule, Rule::Public | Rule::Operator | Rule::AnyKey),
            ),
        ];
        for (who, token, allowed) in callers {
            // The operator has no account: its refusals on account routes are tenants' tests.
            if who == "operator" && !matches!(rule, Rule::Operator) {
                continue;
            }
            let url = concrete(&team, path).await;
            let (status, body) = app
                .call_as(Some(token), m.clone(), &url, body_for(method, path))
                .await;
            let what = format!("{who}: {} {url}: {status} {body}", method.to_uppercase());
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN
                        && status != StatusCode::UNAUTHORIZED
                        && !status.is_server_error(),
                    "allowed, yet {what}"
                );
            } else {
                assert!(
                    refused(status, &body, *rule),
                    "not refused as it should be: {what}"
                );
            }
        }
    }
}

/// A form fit for the web route.
fn form_for(path: &str, number: &str) -> Vec<(String, String)> {
    let pairs: Vec<(&str, &str)> = match path {
        "/webhooks" | "/webhooks/{id}" => vec![
            ("name", "w"),
            ("trigger", "call_received"),
            ("url", "https://crm.example.com/hook"),
            ("method", "POST"),
            ("content_type", "application/json"),
            ("call_types", "inbound"),
            ("time_zone", "UTC"),
        ],
        "/numbers" => vec![("number", number), ("label", "Sales")],
        "/numbers/label" => vec![("number", number), ("label", "Sales")],
        "/numbers/remove" => vec![("number", number)],
        "/api-keys" => vec![("name", "k"), ("role", "viewer")],
        "/calls/click-to-call" => {
            vec![
                ("agent_extension", "101"),
                ("customer_number", "+919812345678"),
            ]
        }
        "/users" => vec![("role", "viewer")],
        "/users/{id}/role" => vec![("role", "admin")],
        "/alerts" => vec![
            ("alert_url", "https://ops.example.com/alerts"),
            ("alert_after", "5m"),
        ],
        _ => vec![],
    };
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn each_user_role_against_every_page_and_form() {
    let team = Team::new().await;
    let (_, owner) = team.member("owner", "owner").await;
    let (_, admin) = team.member("admin", "admin").await;
    let (_, viewer) = team.member("viewer", "viewer").await;
    for (method, path, rule) in WEB {
        if matches!(rule, Rule::Public | Rule::Own) {
            continue;
        }
        for (who, b, role) in [
            ("owner", &owner, "owner"),
            ("admin", &admin, "admin"),
            ("viewer", &viewer, "viewer"),
        ] {
            let allowed = match rule {
                Rule::Read => true,
                Rule::Change | Rule::Secrets | Rule::Audit => role != "viewer",
                Rule::Users => role == "owner",
                _ => unreachable!(),
            };
            let url = concrete(&team, path).await;
            let number = if path.starts_with("/numbers/") {
                team.number().await
            } else {
                fresh_number()
            };
            let mut fields = form_for(path, &number);
            if *path == "/users" {
                fields.push(("email".into(), fresh_email("web")));
            }
            let (status, location, page) = if *method == "get" {
                let (s, p) = team.page(b, &url).await;
                (s, None, p)
            } else {
                let fields: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                team.form(b, &url, &fields).await
            };
            let what = format!(
                "{who}: {} {url}: {status} {location:?}",
                method.to_uppercase()
            );
            assert!(
                location
                    .as_deref()
                    .is_none_or(|l| !l.starts_with("/signin")),
                "{what}: the session ended"
            );
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN && !status.is_server_error(),
                    "allowed, yet {what}\n{page}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "not refused: {what}\n{page}");
                let names_it = match rule {
                    Rule::Users => page.contains("Managing users needs an owner"),
                    _ => page.contains("the admin or owner role"),
                };
                assert!(
                    names_it,
                    "{what}: the refusal says which role it needs\n{page}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_viewer_sees_no_secret_and_no_button_to_change_anything() {
    let team = Team::new().await;
    let app = &team.app;
    let rx = crate::receiver::Receiver::start().await;
    let id = app
        .hook(json!({"url": rx.url("/hook"),
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t-header-value", "secret": false}]}))
        .await;
    let secret = app.secret_of(&id).await;
    let (s, w) = app
        .call_as(
            Some(&team.viewer_key),
            Method::GET,
            &format!("/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["headers"][0]["key"], "X-Api-Key");
    assert_ne!(w["headers"][0]["value"], "s3cr3t-header-value");
    let (_, list) = app
        .call_as(Some(&team.viewer_key), Method::GET, "/v1/webhooks", None)
        .await;
    assert!(!list.to_string().contains("s3cr3t"), "{list}");
    let (s, w) = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(
        (s, &w["headers"][0]["value"]),
        (StatusCode::OK, &json!("s3cr3t-header-value"))
    );

    // The attempt a delivery made shows the header's value to admins only.
    let (_, viewer) = team.member("viewer", "viewer").await;
    let (_, admin) = team.member("admin", "admin").await;
    let (s, attempt) = app
        .post(&format!("/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{attempt}");
    let delivery = id_of(&attempt);
    let (_, as_viewer) = app
        .call_as(
            Some(&team.viewer_key),
            Method::GET,
            &format!("/v1/deliveries/{delivery}"),
            None,
        )
        .await;
    let (_, as_admin) = app.get(&format!("/v1/deliveries/{delivery}")).await;
    let sent = sent_header;
    assert_eq!(
        sent(&as_admin, "x-api-key").as_deref(),
        Some("s3cr3t-header-value")
    );
    assert!(!as_viewer.to_string().contains("s3cr3t"), "{as_viewer}");
    assert!(
        sent(&as_viewer, "x-api-key").is_some(),
        "the header is listed, masked"
    );
    assert_eq!(
        sent(&as_viewer, "webhook-id"),
        sent(&as_admin, "webhook-id")
    );

    // The web page: no secret, no edit buttons for the viewer; both for an admin.
    for path in [
        format!("/webhooks/{id}"),
        "/webhooks".into(),
        "/numbers".into(),
        "/calls".into(),
        format!("/deliveries/{delivery}"),
    ] {
        let (s, html) = team.page(&viewer, &path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        for never in [
            "s3cr3t",
            secret.as_str(),
            "Add Webhook",
            ">Edit<",
            ">Delete<",
            ">Disable<",
            "Send test",
            "Rotate secret",
            ">Reveal<",
            ">Resend<",
            "Add number",
            "Place call",
            "href=\"/users\"",
            "href=\"/audit\"",
            "href=\"/api-keys\"",
        ] {
            assert!(!html.contains(never), "the viewer sees {never:?} on {path}");
        }
    }
    let (_, html) = team.page(&admin, &format!("/webhooks/{id}")).await;
    for shown in [
        "s3cr3t-header-value",
        ">Edit<",
        "Send test",
        "Rotate secret",
        "href=\"/audit\"",
        "href=\"/api-keys\"",
    ] {
        assert!(html.contains(shown), "an admin sees {shown:?}");
    }
    assert!(!html.contains("href=\"/users\""), "users are for owners");
}
