//! The OpenAPI document: it parses, it is OpenAPI 3, it lists every route, and every `$ref`
//! in it points at a schema that is there.

use serde_json::Value;

use crate::helpers::*;

/// Every route the document must list: method and path as OpenAPI writes them. A new route
/// is one more line here.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/accounts"),
    ("get", "/v1/accounts"),
    ("get", "/v1/accounts/{id}"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("post", "/v1/numbers"),
    ("get", "/v1/numbers"),
    ("get", "/v1/numbers/{number}"),
    ("patch", "/v1/numbers/{number}"),
    ("delete", "/v1/numbers/{number}"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("put", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/secret"),
    ("post", "/v1/webhooks/{id}/secret/rotate"),
    ("get", "/v1/triggers"),
    ("get", "/v1/triggers/{id}/sample"),
    ("post", "/v1/events"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("get", "/v1/deliveries/{id}"),
    ("post", "/v1/deliveries/{id}/resend"),
    ("post", "/v1/webhooks/{id}/replay"),
    ("post", "/v1/webhooks/{id}/test"),
    ("get", "/v1/calls/{call_id}"),
    ("get", "/v1/connectors"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn document() -> Value {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("callhook answers");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

#[tokio::test]
async fn the_document_is_openapi_3() {
    let doc = document().await;
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    assert!(doc["paths"].is_object());
}

#[tokio::test]
async fn the_document_lists_every_route() {
    let doc = document().await;
    let paths = doc["paths"].as_object().expect("paths");
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(method, path)| !paths.get(*path).is_some_and(|p| p[*method].is_object()))
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(missing.is_empty(), "not in /openapi.json: {missing:?}");
    for (method, path) in ROUTES {
        let op = &paths[*path][*method];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} documents its answers"
        );
    }
}

/// Every `"$ref"` string anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_ref_resolves_to_a_schema() {
    let doc = document().await;
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty(), "the document uses $ref");
    let broken: Vec<&str> = found
        .into_iter()
        .filter(|r| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|name| !schemas.contains_key(name))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "$refs that resolve to nothing: {broken:?}"
    );
}

/// What schemathesis checks in depth (scripts/test), in brief: problems are documented as
/// problem+json, every route names the answers every route can give, enums are spelled as on
/// the wire, and limits are in the schemas.
#[tokio::test]
async fn the_document_tells_the_truth_about_answers_and_limits() {
    let doc = document().await;
    for (method, path) in ROUTES {
        let op = &doc["paths"][*path][*method];
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("500"), "{method} {path}");
        let secured = op["security"]
            .as_array()
            .is_none_or(|r| r.iter().any(|o| !o.as_object().unwrap().is_empty()));
        if secured {
            for s in ["401", "403", "503"] {
                assert!(responses.contains_key(s), "{method} {path} documents {s}");
            }
        }
        for (status, r) in responses {
            let content = r["content"].as_object();
            let json_problem = content
                .and_then(|c| c.get("application/json"))
                .and_then(|c| c["schema"]["$ref"].as_str())
                == Some("#/components/schemas/Problem");
            assert!(
                !json_problem,
                "{method} {path} {status}: problem as application/json"
            );
            if status.starts_with('4') || status.starts_with('5') {
                if *path == "/readyz" {
                    continue;
                }
                assert!(
                    content.is_some_and(|c| c.contains_key("application/problem+json")),
                    "{method} {path} {status}"
                );
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["CallType"]["enum"],
        serde_json::json!(["inbound", "outbound", "click_to_call"])
    );
    assert_eq!(
        schemas["TimeFormat"]["enum"],
        serde_json::json!(["rfc3339", "local", "unix"])
    );
    let limit = doc["paths"]["/v1/webhooks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 1000);
    assert_eq!(
        schemas["WebhookInput"]["properties"]["name"]["maxLength"],
        100
    );
    assert_eq!(schemas["WebhookInput"]["additionalProperties"], false);
    let zones = schemas["WebhookInput"]["properties"]["time_zone"]["enum"]
        .as_array()
        .unwrap();
    assert!(zones.contains(&serde_json::json!("Asia/Kolkata")));
}
