//! My Numbers: E.164 numbers, their labels, and the rules for adding and deleting them.

use super::*;

#[tokio::test]
async fn numbers_are_stored_in_e164() {
    let app = spawn_app().await;
    let (s, n) = app
        .post(
            "/v1/numbers",
            json!({"number": "+91 80652 51305", "label": "Sales"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(n["number"], OWNED);
    assert_eq!(n["label"], "Sales");
    let (s, list) = app.get("/v1/numbers").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], OWNED);
    let (s, got) = app.get("/v1/numbers/%2B918065251305").await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["number"], OWNED);
    assert_eq!(got["label"], "Sales");
}

#[tokio::test]
async fn bad_numbers_are_a_422_naming_number() {
    let app = spawn_app().await;
    for bad in [
        json!("918065251305"),
        json!("+91 80652 5130x"),
        json!("+123"),
        json!("+1234567890123456"),
        json!("+0918065251305"),
        json!(""),
        json!(null),
        json!(918065251305u64),
    ] {
        let a = send_json(&app, Method::POST, "/v1/numbers", json!({"number": bad})).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            a.body
        );
        a.invalid(&["number"]);
    }
    send_json(
        &app,
        Method::POST,
        "/v1/numbers",
        json!({"number": OWNED, "label": "l".repeat(101)}),
    )
    .await
    .invalid(&["label"]);
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_number_added_twice_is_a_409() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    for spelling in [OWNED, "+91 80652-51305"] {
        send_json(
            &app,
            Method::POST,
            "/v1/numbers",
            json!({"number": spelling}),
        )
        .await
        .problem(StatusCode::CONFLICT);
    }
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_numbers_label_can_be_changed_and_removed() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let path = "/v1/numbers/%2B918065251305";
    let (s, n) = app
        .call(Method::PATCH, path, Some(json!({"label": "Sales line"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["number"], OWNED);
    assert_eq!(n["label"], "Sales line");
    let (_, got) = app.get(path).await;
    assert_eq!(got["label"], "Sales line");

    let (s, n) = app.call(Method::PATCH, path, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["label"], "Sales line", "a PATCH without label keeps it");

    send_json(&app, Method::PATCH, path, json!({"label": "l".repeat(101)}))
        .await
        .invalid(&["label"]);
    send_json(&app, Method::PATCH, path, json!({"lable": "typo"}))
        .await
        .invalid(&["lable"]);
    let (_, got) = app.get(path).await;
    assert_eq!(got["label"], "Sales line");

    let (s, n) = app
        .call(Method::PATCH, path, Some(json!({"label": null})))
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["label"], Value::Null);

    send_json(
        &app,
        Method::PATCH,
        "/v1/numbers/%2B14155550100",
        json!({"label": "x"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_number_can_be_deleted() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    app.add_number("+14155550100").await;
    let path = "/v1/numbers/%2B918065251305";
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    send(&app, Some(&app.key), Method::GET, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, Some(&app.key), Method::DELETE, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], "+14155550100");
    // Once gone, it can be added again.
    app.add_number(OWNED).await;
}

#[tokio::test]
async fn a_number_a_webhook_uses_cannot_be_deleted() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let w = app.create_webhook(json!({"numbers": [OWNED]})).await;
    let path = "/v1/numbers/%2B918065251305";
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    a.problem(StatusCode::CONFLICT);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(&id_of(&w)), "names the webhook: {detail}");
    let (s, _) = app.get(path).await;
    assert_eq!(s, StatusCode::OK, "the number is still there");

    // Once no webhook names it, it goes.
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", id_of(&w)),
            Some(json!({"numbers": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let a = send(&app, Some(&app.key), Method::DELETE, path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
}
