//! Tenant isolation and authentication: an account sees only its own rows; the operator token
//! and account keys each reach only their own routes; a missing or wrong token is a 401.

use super::*;

#[tokio::test]
async fn another_accounts_webhook_is_a_404() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let (_, other_key) = app.other_account("Other").await;
    let path = format!("/v1/webhooks/{}", id_of(&w));
    let b = Some(other_key.as_str());
    send(&app, b, Method::GET, &path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PATCH, &path, Some(json!({"name": "mine"})))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PUT, &path, Some(webhook_body(&json!({}))))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::GET, &format!("{path}/secret"), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        b,
        Method::POST,
        &format!("{path}/secret/rotate"),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::DELETE, &path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let a = send(&app, b, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"], json!([]));

    // Untouched for its owner.
    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["name"], w["name"]);
    let (_, secret) = app.get(&format!("{path}/secret")).await;
    assert_eq!(secret["secret"], w["secret"]);
    assert_eq!(secret["previous"], json!([]));
}

#[tokio::test]
async fn accounts_see_only_their_own_rows() {
    let app = spawn_app().await;
    let (_, b_key) = app.other_account("B").await;
    let b = Some(b_key.as_str());
    app.add_number(OWNED).await;
    let wa = app.create_webhook(json!({"name": "of A"})).await;
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/numbers",
        Some(json!({"number": "+14155550100"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/webhooks",
        Some(webhook_body(&json!({"name": "of B"}))),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let wb = a.body;
    let a = send(
        &app,
        b,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "B's ci"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    let (_, list) = app.get("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], wa["id"]);
    let list = send(&app, b, Method::GET, "/v1/webhooks", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], wb["id"]);

    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], OWNED);
    let list = send(&app, b, Method::GET, "/v1/numbers", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["number"], "+14155550100");

    let (_, list) = app.get("/v1/api-keys").await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default"]);
    let list = send(&app, b, Method::GET, "/v1/api-keys", None).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn another_accounts_numbers_are_a_404_and_cannot_be_used() {
    let app = spawn_app().await;
    app.add_number(OWNED).await;
    let (_, b_key) = app.other_account("B").await;
    let b = Some(b_key.as_str());
    let path = "/v1/numbers/%2B918065251305";
    send(&app, b, Method::GET, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::PATCH, path, Some(json!({"label": "mine"})))
        .await
        .problem(StatusCode::NOT_FOUND);
    send(&app, b, Method::DELETE, path, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    send(
        &app,
        b,
        Method::POST,
        "/v1/webhooks",
        Some(webhook_body(&json!({"numbers": [OWNED]}))),
    )
    .await
    .invalid(&["numbers[0]"]);
    let (s, n) = app.get(path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["label"], Value::Null);
}

#[tokio::test]
async fn another_accounts_api_key_cannot_be_revoked() {
    let app = spawn_app().await;
    let (_, b_key) = app.other_account("B").await;
    let (_, keys) = app.get("/v1/api-keys").await;
    let a_key_id = id_of(&keys["data"][0]);
    let a = send(
        &app,
        Some(&b_key),
        Method::DELETE,
        &format!("/v1/api-keys/{a_key_id}"),
        None,
    )
    .await;
    a.problem(StatusCode::NOT_FOUND);
    let (s, _) = app.get("/v1/webhooks").await;
    assert_eq!(s, StatusCode::OK, "A's key still works");
}

#[tokio::test]
async fn account_keys_cannot_use_operator_routes() {
    let app = spawn_app().await;
    let k = Some(app.key.as_str());
    send(&app, k, Method::GET, "/v1/accounts", None)
        .await
        .problem(StatusCode::FORBIDDEN);
    send(
        &app,
        k,
        Method::POST,
        "/v1/accounts",
        Some(json!({"name": "Evil"})),
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    send(
        &app,
        k,
        Method::GET,
        &format!("/v1/accounts/{}", app.account_id),
        None,
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    let (s, list) = app.operator(Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&app.account_id.as_str()), "{list}");
    assert!(
        !ids.iter().any(|id| id.contains("Evil")) && !list.to_string().contains("Evil"),
        "the refused create made nothing: {list}"
    );
}

#[tokio::test]
async fn the_operator_creates_and_reads_accounts() {
    let app = spawn_app().await;
    let (s, created) = app
        .operator(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "Globex"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(id_of(&created).starts_with("acct_"));
    assert!(
        created["api_key"]["key"]
            .as_str()
            .unwrap()
            .starts_with("chk_")
    );
    let (s, got) = app
        .operator(
            Method::GET,
            &format!("/v1/accounts/{}", id_of(&created)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let mut want = created.clone();
    want.as_object_mut().unwrap().remove("api_key");
    assert_eq!(got, want, "GET shows what the create answered");
    let a = send(
        &app,
        Some(OPERATOR_TOKEN),
        Method::GET,
        "/v1/accounts/acct_nope",
        None,
    )
    .await;
    a.problem(StatusCode::NOT_FOUND);
    for bad in [
        json!({"name": ""}),
        json!({}),
        json!({"name": "x", "plan": "gold"}),
    ] {
        let a = send(
            &app,
            Some(OPERATOR_TOKEN),
            Method::POST,
            "/v1/accounts",
            Some(bad),
        )
        .await;
        a.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Its key sees its own, empty account.
    let key = created["api_key"]["key"].as_str().unwrap();
    let a = send(&app, Some(key), Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"], json!([]));
}

#[tokio::test]
async fn the_operator_token_cannot_use_account_routes() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let wh = format!("/v1/webhooks/{}", id_of(&w));
    let op = Some(OPERATOR_TOKEN);
    for (method, path, body) in [
        (Method::GET, "/v1/webhooks".to_owned(), None),
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            Some(webhook_body(&json!({}))),
        ),
        (Method::GET, wh.clone(), None),
        (Method::PATCH, wh.clone(), Some(json!({"name": "x"}))),
        (Method::DELETE, wh.clone(), None),
        (Method::GET, format!("{wh}/secret"), None),
        (Method::POST, format!("{wh}/secret/rotate"), None),
        (Method::GET, "/v1/numbers".to_owned(), None),
        (
            Method::POST,
            "/v1/numbers".to_owned(),
            Some(json!({"number": OWNED})),
        ),
        (Method::GET, "/v1/api-keys".to_owned(), None),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "x"})),
        ),
    ] {
        let a = send(&app, op, method.clone(), &path, body).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.body
        );
        a.problem(StatusCode::FORBIDDEN);
    }
    let (s, _) = app.get(&wh).await;
    assert_eq!(s, StatusCode::OK, "the webhook is still there");
}

#[tokio::test]
async fn no_token_or_a_wrong_token_is_a_401() {
    let app = spawn_app().await;
    let wrong = [
        None,
        Some("chk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        Some("garbage".to_owned()),
        Some(format!("{OPERATOR_TOKEN}x")),
        Some(format!("{}x", app.key)),
        Some(String::new()),
    ];
    for token in &wrong {
        for (method, path) in [
            (Method::GET, "/v1/webhooks"),
            (Method::POST, "/v1/webhooks"),
            (Method::GET, "/v1/numbers"),
            (Method::GET, "/v1/api-keys"),
            (Method::GET, "/v1/accounts"),
            (Method::POST, "/v1/accounts"),
            (Method::GET, "/v1/triggers"),
        ] {
            let body = (method == Method::POST).then(|| json!({"name": "x"}));
            let a = send(&app, token.as_deref(), method.clone(), path, body).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{token:?} {method} {path}"
            );
            a.problem(StatusCode::UNAUTHORIZED);
            assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"));
        }
    }
    // The key in another scheme is no bearer token.
    let resp = app
        .http
        .get(app.url("/v1/webhooks"))
        .header("Authorization", format!("Basic {}", app.key))
        .send()
        .await
        .unwrap();
    Answer::read(resp).await.problem(StatusCode::UNAUTHORIZED);
}
