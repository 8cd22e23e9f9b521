//! What a security review tries from outside (issue 16): NUL in every string field of every
//! route, on both databases; and the other hardening that only shows over real HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The schema `s` points at, following `$ref`s into `components.schemas`.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = s["$ref"].as_str() else {
            return s;
        };
        let name = r.trim_start_matches("#/components/schemas/");
        s = &doc["components"]["schemas"][name];
    }
    s
}

/// The JSON types a schema allows (`"type": "string"` or `"type": ["string", "null"]`).
fn types(s: &Value) -> Vec<&str> {
    match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The path of every string field a request schema has (`call.call_id`, `headers[0].value`).
fn string_fields(doc: &Value, schema: &Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
    if depth > 8 {
        return;
    }
    let s = resolve(doc, schema);
    for combo in ["oneOf", "anyOf", "allOf"] {
        for sub in s[combo].as_array().into_iter().flatten() {
            string_fields(doc, sub, prefix, depth + 1, out);
        }
    }
    let t = types(s);
    if t.contains(&"string") && !prefix.is_empty() && !out.iter().any(|p| p == prefix) {
        out.push(prefix.to_owned());
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, sub) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            string_fields(doc, sub, &path, depth + 1, out);
        }
    }
    if t.contains(&"array") {
        string_fields(doc, &s["items"], &format!("{prefix}[0]"), depth + 1, out);
    }
}

/// A body holding `leaf` at `path` (`a.b[0].c`) and nothing else.
fn body_at(path: &str, leaf: Value) -> Value {
    let mut steps: Vec<Result<String, ()>> = Vec::new();
    for part in path.split('.') {
        let (name, arrays) = part
            .split_once('[')
            .map_or((part, ""), |(n, _)| (n, &part[n.len()..]));
        if !name.is_empty() {
            steps.push(Ok(name.to_owned()));
        }
        for _ in 0..arrays.matches('[').count() {
            steps.push(Err(()));
        }
    }
    steps
        .into_iter()
        .rev()
        .fold(leaf, |inner, step| match step {
            Ok(key) => json!({ key: inner }),
            Err(()) => json!([inner]),
        })
}

/// Every operation of the document: method, path template, and the operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// `/v1/webhooks/{id}/test` with every parameter `x`, or `nul` for the one named `with`.
fn fill(template: &str, with: Option<&str>) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == with => "a%00b".to_owned(),
                Some(_) => "x".to_owned(),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method: Method = method.to_uppercase().parse().unwrap();
    // The operator routes take the operator token, the rest the account's key: NUL must be
    // refused whoever sends it.
    let token = if path.starts_with("/v1/accounts") {
        OPERATOR_TOKEN
    } else {
        app.key.as_str()
    };
    app.call_as(Some(token), method, path, body).await
}

#[tokio::test]
async fn nul_is_refused_in_every_string_field_of_every_route() {
    let app = spawn_app().await;
    let (_, doc) = app.call_as(None, Method::GET, "/openapi.json", None).await;
    let mut tried = 0;
    let mut failures = Vec::new();
    for (method, template, op) in operations(&doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            let path = match p["in"].as_str() {
                Some("path") => fill(&template, Some(name)),
                Some("query") => format!("{}?{name}=a%00b", fill(&template, None)),
                _ => continue,
            };
            let (status, body) = send(&app, &method, &path, None).await;
            tried += 1;
            if status != StatusCode::UNPROCESSABLE_ENTITY
                || !problem_fields(&body).contains(&name.to_owned())
            {
                failures.push(format!("{method} {path}: {status} {body}"));
            }
        }
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            continue;
        }
        let mut fields = Vec::new();
        string_fields(&doc, schema, "", 0, &mut fields);
        assert!(!fields.is_empty(), "{method} {template} has string fields");
        for field in fields {
            let body = body_at(&field, json!("a\u{0}b"));
            let (status, answer) = send(&app, &method, &fill(&template, None), Some(body)).await;
            tried += 1;
            if status != StatusCode::UNPROCESSABLE_ENTITY
                || !problem_fields(&answer).contains(&field)
            {
                failures.push(format!("{method} {template} {field}: {status} {answer}"));
            }
        }
    }
    assert!(tried > 50, "only {tried} fields tried");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fields a review found answered 500 on PostgreSQL, one by one with otherwise valid
/// requests: each is a 422 naming the field, and nothing is stored.
#[tokio::test]
async fn nul_in_ids_labels_and_names_is_a_422_naming_the_field() {
    let app = spawn_app().await;
    app.add_number("+918065251305").await;
    let event = |id: &str, call_id: &str| {
        json!({"id": id, "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
               "call": {"call_id": call_id, "call_type": "inbound", "did_number": "+918065251305"}})
    };
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/v1/events".into(),
            Some(event("e\u{0}1", "c1")),
            "id",
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(event("e1", "c\u{0}1")),
            "call.call_id",
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!([event("e2", "c2"), event("e3", "c\u{0}3")])),
            "[1].call.call_id",
        ),
        (
            Method::POST,
            "/v1/numbers".into(),
            Some(json!({"number": "+918065251306", "label": "Sa\u{0}les"})),
            "label",
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "k\u{0}"})),
            "name",
        ),
        (Method::GET, "/v1/calls/a%00b".into(), None, "call_id"),
        (Method::GET, "/v1/webhooks?after=%00".into(), None, "after"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = app.call(method, &path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(problem_fields(&answer), [field], "{path}: {answer}");
    }
    let (status, answer) = app
        .operator(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "A\u{0}"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(problem_fields(&answer), ["name"]);
    // Nothing of the refused requests was stored; the same requests without NUL go through.
    let (status, answer) = app.post("/v1/events", event("e1", "c1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let (status, _) = app.get("/v1/calls/c1").await;
    assert_eq!(status, StatusCode::OK);
}

/// Per-account quotas: one more webhook, number or key than the settings allow is a 422
/// naming the limit; another account is not affected.
#[tokio::test]
async fn quotas_refuse_one_more_naming_the_limit() {
    let app = spawn_app_with(|s| {
        s.max_webhooks_per_account = 2;
        s.max_numbers_per_account = 1;
        // The account's first key counts.
        s.max_api_keys_per_account = 2;
    })
    .await;
    app.create_webhook(json!({})).await;
    app.create_webhook(json!({})).await;
    let (status, body) = app
        .post(
            "/v1/webhooks",
            json!({"name": "third", "trigger": "call_received", "url": "https://crm.example.com/h"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_webhooks_per_account = 2"),
        "{body}"
    );
    app.add_number("+918065251305").await;
    let (status, body) = app
        .post("/v1/numbers", json!({"number": "+918065251306"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_numbers_per_account = 1"),
        "{body}"
    );
    let (status, _) = app.post("/v1/api-keys", json!({"name": "second"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post("/v1/api-keys", json!({"name": "third"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_api_keys_per_account = 2"),
        "{body}"
    );
    // Removing one makes room again.
    let (_, list) = app.get("/v1/webhooks").await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.create_webhook(json!({})).await;
    // Quotas are per account.
    let (_, other_key) = app.other_account("Other").await;
    let (status, body) = app
        .call_as(
            Some(&other_key),
            Method::POST,
            "/v1/numbers",
            Some(json!({"number": "+918065251306"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// One post may create at most `max_deliveries_per_post` deliveries; beyond, nothing of it is
/// stored.
#[tokio::test]
async fn one_post_makes_at_most_max_deliveries_per_post() {
    let app = spawn_app_with(|s| s.max_deliveries_per_post = 5).await;
    app.add_number("+918065251305").await;
    for _ in 0..3 {
        app.create_webhook(json!({})).await;
    }
    let event = |i: usize| {
        json!({"id": format!("e{i}"), "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
               "call": {"call_id": format!("c{i}"), "call_type": "inbound", "did_number": "+918065251305"}})
    };
    let (status, body) = app.post("/v1/events", json!([event(1), event(2)])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("6 deliveries"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_deliveries_per_post = 5"),
        "{body}"
    );
    let (status, _) = app.get("/v1/calls/c1").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of the refused post is stored"
    );
    let (status, body) = app.post("/v1/events", event(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["deliveries"], 3, "{body}");
}

/// A key may not revoke itself when it is the account's last (admin) key; it may once there
/// is another, and another key may revoke it.
#[tokio::test]
async fn the_last_api_key_cannot_revoke_itself() {
    let app = spawn_app().await;
    let (_, keys) = app.get("/v1/api-keys").await;
    let own = keys["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{own}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("last admin API key"),
        "{body}"
    );
    let (status, second) = app.post("/v1/api-keys", json!({"name": "second"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(Method::DELETE, &format!("/v1/api-keys/{own}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let second_key = second["key"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    let (status, _) = app
        .call_as(
            Some(second_key),
            Method::DELETE,
            &format!("/v1/api-keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// API answers, those with secrets above all, are never kept by a cache.
#[tokio::test]
async fn api_answers_with_secrets_are_not_stored_by_caches() {
    let app = spawn_app().await;
    let hook = app.create_webhook(json!({})).await;
    let id = hook["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "k"})),
        ),
        (Method::GET, format!("/v1/webhooks/{id}/secret"), None),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/secret/rotate"),
            None,
        ),
        (
            Method::POST,
            "/v1/accounts".to_owned(),
            Some(json!({"name": "A"})),
        ),
        (Method::GET, "/v1/webhooks/nope".to_owned(), None),
    ] {
        let token = if path == "/v1/accounts" {
            OPERATOR_TOKEN
        } else {
            app.key.as_str()
        };
        let mut req = app.http.request(method, app.url(&path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Connections, on real sockets

use std::net::SocketAddr;
use std::time::Duration;

use callhook::config::Dur;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr_of(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the server closes the connection: what it sent. Panics if it is still open
/// after a long while (the limits under test are configured far shorter).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection is still open");
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads one whole answer of a kept-alive connection (headers and a `Content-Length` body).
async fn one_answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// `GET /healthz` on a new connection from `from`: the status line.
async fn healthz_from(from: &str, to: SocketAddr) -> String {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    answer.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_half_sent_request_and_an_idle_connection_are_closed() {
    let app = spawn_app_with(|s| s.header_read_timeout = Dur(Duration::from_millis(300))).await;
    let to = addr_of(&app);
    // Headers never finished.
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // Nothing sent at all.
    let mut s = TcpStream::connect(to).await.unwrap();
    until_closed(&mut s).await;
    // A kept-alive connection is answered, then closed once it idles.
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = one_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    until_closed(&mut s).await;
    // A whole request on a new connection is answered as ever.
    assert_eq!(healthz_from("127.0.0.1", to).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn a_trickled_body_that_stops_is_closed() {
    let app = spawn_app_with(|s| s.idle_timeout = Dur(Duration::from_millis(300))).await;
    let mut s = TcpStream::connect(addr_of(&app)).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"type\"",
        app.key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    until_closed(&mut s).await;
    assert_eq!(
        healthz_from("127.0.0.1", addr_of(&app)).await,
        "HTTP/1.1 200 OK"
    );
}

/// A client may close its sending side once its request is sent (an HTTP/1.1 half-close): it
/// still gets its answer, and what it posted is stored.
#[tokio::test]
async fn a_client_that_closes_its_sending_side_still_gets_its_answer() {
    let app = spawn_app().await;
    app.add_number("+918065251305").await;
    let event = json!({"id": "half", "type": "call.received", "occurred_at": "2026-11-27T04:00:00Z",
        "call": {"call_id": "c-half", "call_type": "inbound", "did_number": "+918065251305"}});
    let body = event.to_string();
    let mut s = TcpStream::connect(addr_of(&app)).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.key,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let again = app.accept(event).await;
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone()),
        (json!(0), json!(1))
    );
}

/// A new connection from `from` (a loopback address of its own, apart from the test's own
/// HTTP client on 127.0.0.1).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test]
async fn one_client_address_cannot_hold_every_connection() {
    let app = spawn_app_with(|s| s.max_connections_per_client = 3).await;
    let to = addr_of(&app);
    let client = "127.0.0.3";
    // Three kept-alive connections from one address, each answered once and then held open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from(client, to).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(one_answer(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // A fourth from the same address is closed without an answer.
    let mut extra = connect_from(client, to).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let answer = until_closed(&mut extra).await;
    assert!(answer.is_empty(), "{answer}");
    // Another client address is served meanwhile.
    assert_eq!(healthz_from("127.0.0.2", to).await, "HTTP/1.1 200 OK");
    // Once one of the three closes, the address may connect again.
    drop(held.pop());
    let mut answered = false;
    for _ in 0..50 {
        if healthz_from(client, to).await == "HTTP/1.1 200 OK" {
            answered = true;
            break;
        }
        // The server may not have seen the close yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "a freed place is given to the next connection");
}
