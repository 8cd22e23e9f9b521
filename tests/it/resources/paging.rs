//! Paging: every list pages with `limit` and `next`.

use super::*;

#[tokio::test]
async fn lists_page_with_limit_and_next() {
    let app = spawn_app().await;
    let mut made = Vec::new();
    for i in 0..7 {
        let w = app
            .create_webhook(json!({"name": format!("hook {i}")}))
            .await;
        made.push(id_of(&w));
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/webhooks?limit=3".to_owned();
    loop {
        let (s, page) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["data"].as_array().unwrap();
        pages.push(items.len());
        seen.extend(items.iter().map(id_of));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/webhooks?limit=3&after={next}"),
            None => {
                assert_eq!(page["next"], Value::Null);
                break;
            }
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, made, "every webhook once, oldest first");

    let (_, all) = app.get("/v1/webhooks").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 7);
    assert_eq!(all["next"], Value::Null);
}

#[tokio::test]
async fn a_full_last_page_has_no_next() {
    let app = spawn_app().await;
    for _ in 0..6 {
        app.create_webhook(json!({})).await;
    }
    let (_, first) = app.get("/v1/webhooks?limit=3").await;
    let next = first["next"].as_str().unwrap();
    let (_, second) = app.get(&format!("/v1/webhooks?limit=3&after={next}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 3);
    assert_eq!(second["next"], Value::Null);
}

#[tokio::test]
async fn numbers_page_in_number_order() {
    let app = spawn_app().await;
    let numbers = ["+919812345678", "+14155550100", OWNED, "+442079460958"];
    for n in numbers {
        app.add_number(n).await;
    }
    let mut want = numbers.to_vec();
    want.sort();
    let (_, first) = app.get("/v1/numbers?limit=2").await;
    let next = first["next"].as_str().expect("a next page").to_owned();
    // The cursor as a client may paste it (`+` unencoded), and encoded.
    for after in [next.clone(), next.replace('+', "%2B")] {
        let (s, second) = app.get(&format!("/v1/numbers?limit=2&after={after}")).await;
        assert_eq!(s, StatusCode::OK, "{second}");
        assert_eq!(second["next"], Value::Null, "after={after}: {second}");
        let seen: Vec<&str> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["data"].as_array().unwrap())
            .map(|n| n["number"].as_str().unwrap())
            .collect();
        assert_eq!(
            seen, want,
            "every number once, in number order (after={after})"
        );
    }
}

#[tokio::test]
async fn a_limit_out_of_range_is_a_422_naming_limit() {
    let app = spawn_app().await;
    for path in ["/v1/webhooks", "/v1/numbers", "/v1/api-keys"] {
        for limit in ["0", "1001"] {
            send(
                &app,
                Some(&app.key),
                Method::GET,
                &format!("{path}?limit={limit}"),
                None,
            )
            .await
            .invalid(&["limit"]);
        }
        let a = send(
            &app,
            Some(&app.key),
            Method::GET,
            &format!("{path}?limit=1000"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let resp = app
        .http
        .get(app.url("/v1/accounts?limit=0"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    Answer::read(resp).await.invalid(&["limit"]);
}
