//! The OpenAPI document: it parses, it is OpenAPI 3, it lists every route, every `$ref` in it
//! points at a schema that is there, and the schema of every request body has exactly the keys
//! its parser takes.

use std::collections::BTreeSet;

use callhook::api::accounts::NAME_KEYS;
use callhook::core::event::{AnsweredBy, Call, CallEvent, Dialed, Dtmf, Ended};
use callhook::core::shape::BodyField;
use callhook::core::webhook::{Header, WebhookSpec};
use callhook::service::alerts;
use callhook::service::api_keys::NEW_KEY_KEYS;
use callhook::service::click_to_call::REQUEST_KEYS;
use callhook::service::deliveries::{RETRY_KEYS, Replay};
use callhook::service::numbers::{NEW_NUMBER_KEYS, NUMBER_PATCH_KEYS};
use callhook::service::users::{INVITE_KEYS, USER_PATCH_KEYS};
use reqwest::Method;
use serde_json::{Map, Value, json};

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
    ("post", "/v1/users"),
    ("get", "/v1/users"),
    ("patch", "/v1/users/{id}"),
    ("delete", "/v1/users/{id}"),
    ("post", "/v1/users/{id}/reset"),
    ("get", "/v1/audit"),
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
    ("post", "/v1/click-to-call"),
    ("get", "/v1/click-to-call/{request_id}"),
    ("get", "/v1/connectors"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn document() -> Value {
    document_of(&spawn_app().await).await
}

async fn document_of(app: &TestApp) -> Value {
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

/// One object of a request body and the keys its parser takes: where it is (`""` the body
/// itself, `call` the object under a key, `headers[]` the objects of an array), what the body
/// must also hold for the parser to read that object, and the parser's key list.
struct Part {
    at: &'static str,
    context: Value,
    keys: &'static [&'static str],
}

fn part(at: &'static str, keys: &'static [&'static str]) -> Part {
    Part {
        at,
        context: json!({}),
        keys,
    }
}

/// A detail object of an event, read only for events of its `type`.
fn detail(at: &'static str, event_type: &str, keys: &'static [&'static str]) -> Part {
    Part {
        at,
        context: json!({ "type": event_type }),
        keys,
    }
}

/// Every route with a JSON body, with the parts of its body. A new route with a body is one
/// more row here, or the tests below fail.
fn request_bodies() -> Vec<(&'static str, &'static str, Vec<Part>)> {
    let webhook = || {
        vec![
            part("", WebhookSpec::KEYS),
            part("headers[]", Header::KEYS),
            part("body_fields[]", BodyField::KEYS),
        ]
    };
    vec![
        ("post", "/v1/accounts", vec![part("", NAME_KEYS)]),
        ("post", "/v1/api-keys", vec![part("", NEW_KEY_KEYS)]),
        ("post", "/v1/users", vec![part("", INVITE_KEYS)]),
        ("patch", "/v1/users/{id}", vec![part("", USER_PATCH_KEYS)]),
        ("post", "/v1/numbers", vec![part("", NEW_NUMBER_KEYS)]),
        ("patch", "/v1/account", vec![part("", alerts::PATCH_KEYS)]),
        (
            "patch",
            "/v1/numbers/{number}",
            vec![part("", NUMBER_PATCH_KEYS)],
        ),
        ("post", "/v1/webhooks", webhook()),
        ("post", "/v1/webhooks/test", webhook()),
        ("put", "/v1/webhooks/{id}", webhook()),
        ("patch", "/v1/webhooks/{id}", webhook()),
        (
            "post",
            "/v1/webhooks/{id}/replay",
            vec![part("", Replay::KEYS)],
        ),
        (
            "post",
            "/v1/webhooks/{id}/deliveries/retry",
            vec![part("", RETRY_KEYS)],
        ),
        ("post", "/v1/click-to-call", vec![part("", REQUEST_KEYS)]),
        (
            "post",
            "/v1/events",
            vec![
                part("", CallEvent::KEYS),
                part("call", Call::KEYS),
                detail("answered_by", "call.answered", AnsweredBy::KEYS),
                detail("dialed", "call.dialed", Dialed::KEYS),
                detail("dtmf", "call.dtmf", Dtmf::KEYS),
                detail("ended", "call.ended", Ended::KEYS),
            ],
        ),
    ]
}

/// The object schema `schema` stands for: through `$ref`, the non-null branch of a `oneOf`,
/// and the items of an array.
fn object_schema<'a>(doc: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/")?;
        return object_schema(doc, &doc["components"]["schemas"][name]);
    }
    if schema["properties"].is_object() {
        return Some(schema);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(found) = schema[key]
            .as_array()
            .and_then(|branches| branches.iter().find_map(|b| object_schema(doc, b)))
        {
            return Some(found);
        }
    }
    if schema["items"].is_object() {
        return object_schema(doc, &schema["items"]);
    }
    None
}

/// The object schema of `part` of the body of `method path`.
fn part_schema<'a>(doc: &'a Value, method: &str, path: &str, at: &str) -> &'a Value {
    let body = &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    let body = object_schema(doc, body)
        .unwrap_or_else(|| panic!("{method} {path}: the body's schema is no object"));
    if at.is_empty() {
        return body;
    }
    let key = at.trim_end_matches("[]");
    object_schema(doc, &body["properties"][key])
        .unwrap_or_else(|| panic!("{method} {path}: {key} is no object in the schema"))
}

fn property_names(schema: &Value) -> BTreeSet<&str> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_request_schema_has_exactly_the_keys_its_parser_takes() {
    let doc = document().await;
    let table = request_bodies();
    // Every route with a body is in the table, and every row is a route with a body.
    let mut with_body = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                with_body.insert((method.clone(), path.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        with_body, listed,
        "the routes with a JSON body, and the table of their parsers"
    );
    for (method, path, parts) in &table {
        let mut compared = BTreeSet::new();
        for part in parts {
            let schema = part_schema(&doc, method, path, part.at);
            let in_schema = property_names(schema);
            let in_parser: BTreeSet<&str> = part.keys.iter().copied().collect();
            let where_ = format!("{method} {path} {:?}", part.at);
            assert_eq!(
                in_schema.difference(&in_parser).collect::<Vec<_>>(),
                Vec::<&&str>::new(),
                "{where_}: keys the schema has and the parser refuses"
            );
            assert_eq!(
                in_parser.difference(&in_schema).collect::<Vec<_>>(),
                Vec::<&&str>::new(),
                "{where_}: keys the parser takes and the schema lacks"
            );
            compared.insert(part.at.trim_end_matches("[]"));
        }
        // An object inside the body has its own row, so its keys are compared too.
        let body = part_schema(&doc, method, path, "");
        for (key, prop) in body["properties"].as_object().unwrap() {
            assert!(
                object_schema(&doc, prop).is_none() || compared.contains(key.as_str()),
                "{method} {path}: {key} holds an object; give it a row in request_bodies()"
            );
        }
    }
}

/// `part`'s object with `key` set (to null: what counts is whether the key is known), inside
/// a body that makes the parser read that object.
fn probe(part: &Part, key: &str) -> (Value, String) {
    let mut obj = Map::new();
    obj.insert(key.to_owned(), Value::Null);
    let mut body = part.context.clone();
    let field = match part.at {
        "" => {
            body[key] = Value::Null;
            key.to_owned()
        }
        at => match at.strip_suffix("[]") {
            Some(list) => {
                body[list] = json!([obj]);
                format!("{list}[0].{key}")
            }
            None => {
                body[at] = Value::Object(obj);
                format!("{at}.{key}")
            }
        },
    };
    (body, field)
}

/// Whether the answer says `field` is not a known field.
fn refused_as_unknown(answer: &Value, field: &str) -> bool {
    answer["errors"].as_array().is_some_and(|errors| {
        errors
            .iter()
            .any(|e| e["field"] == field && e["message"] == "is not a known field")
    })
}

#[tokio::test]
async fn every_key_of_a_request_schema_is_taken_and_an_unknown_one_refused() {
    let app = spawn_app().await;
    let doc = document_of(&app).await;
    app.add_number("+918065251305").await;
    let webhook = app.create_webhook(json!({})).await;
    let id = webhook["id"].as_str().unwrap();
    let (s, invited) = app
        .post(
            "/v1/users",
            json!({"email": "probe@acme.example", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{invited}");
    let user_id = invited["id"].as_str().unwrap();
    for (name, path, parts) in request_bodies() {
        let id = if path.starts_with("/v1/users/") {
            user_id
        } else {
            id
        };
        let url = path
            .replace("{id}", id)
            .replace("{number}", "%2B918065251305");
        let token = if path == "/v1/accounts" {
            OPERATOR_TOKEN
        } else {
            app.key.as_str()
        };
        let method = Method::from_bytes(name.to_uppercase().as_bytes()).unwrap();
        for part in &parts {
            let schema = part_schema(&doc, name, path, part.at);
            // The control: an unknown key here is refused, so this body reaches the parser.
            let (body, field) = probe(part, "not_a_field");
            let (s, answer) = app
                .call_as(Some(token), method.clone(), &url, Some(body.clone()))
                .await;
            assert!(
                refused_as_unknown(&answer, &field),
                "{method} {path} with {body}: {s} {answer}"
            );
            for key in property_names(schema) {
                let (body, field) = probe(part, key);
                let (s, answer) = app
                    .call_as(Some(token), method.clone(), &url, Some(body.clone()))
                    .await;
                assert!(
                    s.is_success() || s.is_client_error(),
                    "{method} {path} with {body}: {s} {answer}"
                );
                assert!(
                    !refused_as_unknown(&answer, &field),
                    "{method} {path}: the schema has {field}, the parser refuses it: {answer}"
                );
            }
        }
    }
}

#[tokio::test]
async fn click_to_call_documents_every_answer_as_problem_json() {
    let doc = document().await;
    for (method, path, statuses) in [
        (
            "post",
            "/v1/click-to-call",
            &[
                "202", "400", "401", "403", "409", "413", "415", "422", "503", "500",
            ][..],
        ),
        (
            "get",
            "/v1/click-to-call/{request_id}",
            &["200", "401", "403", "404", "422", "500", "503"][..],
        ),
    ] {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"));
        let got: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(got, statuses, "{method} {path}");
        for (status, r) in responses {
            let content = r["content"].as_object().unwrap();
            let want = if status.starts_with('2') {
                "application/json"
            } else {
                "application/problem+json"
            };
            assert!(content.contains_key(want), "{method} {path} {status}: {r}");
        }
    }
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
