//! Malformed input is a 4xx naming the problem, never a 500: bad JSON, empty or non-object
//! bodies, wrong types, unknown fields, oversized bodies, other media types.

use super::*;

/// The routes that take a JSON body, for the app's account key.
fn json_routes(webhook: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/webhooks".to_owned()),
        (Method::PUT, webhook.to_owned()),
        (Method::PATCH, webhook.to_owned()),
        (Method::POST, "/v1/numbers".to_owned()),
        (Method::PATCH, "/v1/numbers/%2B918065251305".to_owned()),
        (Method::POST, "/v1/api-keys".to_owned()),
    ]
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (method, path) in json_routes(&wh) {
        for body in [
            "{\"name\": ".to_owned(),
            "{name: 'x'}".to_owned(),
            "{\"name\": \"x\"} trailing".to_owned(),
            "\u{FEFF}".to_owned(),
            deep.clone(),
        ] {
            let a = send_raw(
                &app,
                method.clone(),
                &path,
                Some("application/json"),
                body.clone(),
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {:?}: {}",
                &body[..body.len().min(20)],
                a.body
            );
            a.problem(StatusCode::BAD_REQUEST);
        }
        let a = send_raw(
            &app,
            method.clone(),
            &path,
            Some("application/json"),
            vec![0xff, 0xfe, b'{'],
        )
        .await;
        a.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn an_empty_body_is_a_400() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path) in json_routes(&wh) {
        let a = send_raw(&app, method.clone(), &path, Some("application/json"), "").await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            a.body
        );
        a.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path) in json_routes(&wh) {
        for body in [
            json!([]),
            json!([{"name": "x"}]),
            json!("a string"),
            json!(5),
            json!(null),
        ] {
            let a = send_json(&app, method.clone(), &path, body.clone()).await;
            assert_eq!(
                a.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {body}: {}",
                a.body
            );
            a.problem(StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
}

#[tokio::test]
async fn wrong_types_are_a_422_naming_the_field() {
    let app = spawn_app().await;
    for (over, field) in [
        (json!({"name": 5}), "name"),
        (json!({"name": ["a"]}), "name"),
        (json!({"description": {}}), "description"),
        (json!({"trigger": 1}), "trigger"),
        (json!({"url": []}), "url"),
        (json!({"method": true}), "method"),
        (json!({"content_type": 1}), "content_type"),
        (json!({"call_types": "inbound"}), "call_types"),
        (json!({"call_types": [1]}), "call_types[0]"),
        (json!({"numbers": "+918065251305"}), "numbers"),
        (json!({"numbers": [918065251305u64]}), "numbers[0]"),
        (json!({"time_zone": 5.5}), "time_zone"),
        (json!({"headers": {"X-A": "1"}}), "headers"),
        (json!({"headers": ["X-A: 1"]}), "headers[0]"),
        (
            json!({"headers": [{"key": 1, "value": "v"}]}),
            "headers[0].key",
        ),
        (
            json!({"headers": [{"key": "X-A", "value": 1}]}),
            "headers[0].value",
        ),
        (json!({"headers": [{"key": "X-A"}]}), "headers[0].value"),
        (
            json!({"headers": [{"key": "X-A", "value": "v", "extra": 1}]}),
            "headers[0].extra",
        ),
        (json!({"rate_limit": true}), "rate_limit"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"enabled": 1}), "enabled"),
    ] {
        let a = send_json(&app, Method::POST, "/v1/webhooks", webhook_body(&over)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{over}: {}",
            a.body
        );
        a.invalid(&[field]);
    }
}

#[tokio::test]
async fn an_unknown_field_is_a_422_naming_it() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            webhook_body(&json!({"colour": "blue"})),
        ),
        (
            Method::PUT,
            wh.clone(),
            webhook_body(&json!({"colour": "blue"})),
        ),
        (Method::PATCH, wh.clone(), json!({"colour": "blue"})),
        (
            Method::POST,
            "/v1/numbers".to_owned(),
            json!({"number": "+14155550100", "colour": "blue"}),
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            json!({"name": "k", "colour": "blue"}),
        ),
    ] {
        let a = send_json(&app, method.clone(), &path, body).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {}",
            a.body
        );
        a.invalid(&["colour"]);
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["name"], "hook");
}

#[tokio::test]
async fn a_body_over_a_mebibyte_is_a_413() {
    let app = spawn_app().await;
    let body = json!({"name": "n", "description": "d".repeat(1024 * 1024)}).to_string();
    assert!(body.len() > 1024 * 1024);
    for path in ["/v1/webhooks", "/v1/numbers", "/v1/api-keys"] {
        let a = send_raw(
            &app,
            Method::POST,
            path,
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            a.body
        );
        a.problem(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Just under the limit is read (and then refused for what it says, not for its size).
    let mut small = json!({"name": "n", "trigger": "call_received", "url": "https://crm.example.com/h", "description": ""})
        .to_string();
    let pad = 1024 * 1024 - small.len();
    small = small.replace(
        "\"description\":\"\"",
        &format!("\"description\":\"{}\"", "d".repeat(pad)),
    );
    assert_eq!(small.len(), 1024 * 1024);
    let a = send_raw(
        &app,
        Method::POST,
        "/v1/webhooks",
        Some("application/json"),
        small,
    )
    .await;
    a.invalid(&["description"]);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let wh = format!(
        "/v1/webhooks/{}",
        id_of(&app.create_webhook(json!({})).await)
    );
    let valid = webhook_body(&json!({})).to_string();
    for (method, path) in json_routes(&wh) {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let a = send_raw(&app, method.clone(), &path, ct, valid.clone()).await;
            assert_eq!(
                a.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} {ct:?}: {}",
                a.body
            );
            a.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    // A charset parameter is fine.
    let a = send_raw(
        &app,
        Method::POST,
        "/v1/webhooks",
        Some("application/json; charset=utf-8"),
        valid,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}
