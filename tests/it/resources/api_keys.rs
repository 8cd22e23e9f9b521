//! API keys: shown once, working at once, revoked at once; their names are checked.

use super::*;

#[tokio::test]
async fn an_api_key_is_shown_once_works_and_is_revoked_at_once() {
    let app = spawn_app().await;
    let w = app.create_webhook(json!({})).await;
    let (s, created) = app.post("/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("chk_"), "{key}");
    assert!(id_of(&created).starts_with("key_"));
    assert_eq!(created["name"], "ci");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let (s, list) = app.get("/v1/api-keys").await;
    assert_eq!(s, StatusCode::OK);
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the default key and the new one: {list}");
    let listed = items
        .iter()
        .find(|k| k["id"] == created["id"])
        .expect("the new key is listed");
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().remove("key");
    assert_eq!(
        listed, &shown,
        "the list shows what the create answered, but the secret"
    );
    for k in items {
        assert!(k.get("key").is_none(), "no secret in a list: {k}");
    }
    let text = list.to_string();
    assert!(!text.contains(&key), "the new secret is never listed again");
    assert!(!text.contains(&app.key), "nor the first one");

    // The new key works, on the same account.
    let a = send(&app, Some(&key), Method::GET, "/v1/webhooks", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["data"][0]["id"], w["id"]);

    let a = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&created)),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    send(&app, Some(&key), Method::GET, "/v1/webhooks", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let (s, list) = app.get("/v1/api-keys").await;
    assert_eq!(s, StatusCode::OK, "the other key still works");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&created)),
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_can_revoke_itself_unless_it_is_the_last() {
    let app = spawn_app().await;
    let (_, keys) = app.get("/v1/api-keys").await;
    let last = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&keys["data"][0])),
        None,
    )
    .await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    let (status, _) = app.post("/v1/api-keys", json!({"name": "spare"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let a = send(
        &app,
        Some(&app.key),
        Method::DELETE,
        &format!("/v1/api-keys/{}", id_of(&keys["data"][0])),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    send(&app, Some(&app.key), Method::GET, "/v1/api-keys", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_key_names_are_validated() {
    let app = spawn_app().await;
    for bad in [json!(""), json!("k".repeat(101)), json!(null), json!(7)] {
        send_json(&app, Method::POST, "/v1/api-keys", json!({"name": bad}))
            .await
            .invalid(&["name"]);
    }
    let (_, list) = app.get("/v1/api-keys").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}
