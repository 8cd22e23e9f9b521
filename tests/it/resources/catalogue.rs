//! The trigger catalogue: the eleven triggers in order, each with a sample of its parameters.

use super::*;

#[tokio::test]
async fn the_catalogue_lists_the_eleven_triggers_in_order() {
    let app = spawn_app().await;
    let (s, list) = app.get("/v1/triggers").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = spec::TRIGGERS.iter().map(|t| t.id).collect();
    assert_eq!(ids, want);
    for (t, want) in data.iter().zip(&spec::TRIGGERS) {
        let id = want.id;
        assert_eq!(t["label"], want.label, "{id}");
        assert_eq!(t["fires_on"], want.fires_on, "{id}");
        let params = t["parameters"].as_array().unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, want.params(), "{id}");
        for (i, p) in params.iter().enumerate() {
            assert_eq!(p["common"], i < spec::COMMON.len(), "{id}: {p}");
            let name = p["name"].as_str().unwrap();
            assert_eq!(p["kind"], spec::kind_of(name), "{id}: {p}");
            // SPEC §11: a type, a one-line meaning and an example of that type.
            let json_type = match spec::kind_of(name) {
                "seconds" => "integer",
                "list" => "array",
                _ => "string",
            };
            assert_eq!(p["type"], json_type, "{id}: {p}");
            let description = p["description"].as_str().unwrap_or_default();
            assert!(
                !description.is_empty() && !description.contains('\n'),
                "{id}: {p}"
            );
            let example = &p["example"];
            let typed = match json_type {
                "integer" => example.is_i64(),
                "array" => example
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string)),
                _ => example.as_str().is_some_and(|s| !s.is_empty()),
            };
            assert!(typed, "{id}: {p}");
        }
    }
    assert_eq!(list["next"], Value::Null);
}

#[tokio::test]
async fn every_trigger_has_a_sample_with_its_parameters() {
    let app = spawn_app().await;
    for t in &spec::TRIGGERS {
        let id = t.id;
        let (s, sample) = app.get(&format!("/v1/triggers/{id}/sample")).await;
        assert_eq!(s, StatusCode::OK, "{id}: {sample}");
        assert_eq!(sample["trigger"], id);
        let keys: Vec<&str> = sample["parameters"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, t.params(), "{id}");
        assert_eq!(sample["parameters"]["trigger"], id);
        assert_eq!(sample["request"]["method"], "POST");
        let body: Value =
            serde_json::from_str(sample["request"]["body"].as_str().unwrap()).expect("a JSON body");
        assert_eq!(body, sample["parameters"], "{id}");
    }
}

#[tokio::test]
async fn a_sample_follows_the_query() {
    let app = spawn_app().await;
    let (s, sample) = app
        .get("/v1/triggers/call_received/sample?method=GET&time_zone=Asia/Kolkata")
        .await;
    assert_eq!(s, StatusCode::OK, "{sample}");
    assert_eq!(sample["parameters"]["time_zone"], "Asia/Kolkata");
    let at = sample["parameters"]["occurred_at"].as_str().unwrap();
    assert!(at.ends_with("+05:30"), "{at}");
    assert_eq!(sample["request"]["method"], "GET");
    assert_eq!(sample["request"]["body"], Value::Null);
    assert!(
        sample["request"]["url"]
            .as_str()
            .unwrap()
            .contains("trigger=call_received"),
        "{sample}"
    );
}

#[tokio::test]
async fn a_bad_sample_request_is_refused() {
    let app = spawn_app().await;
    send(
        &app,
        Some(&app.key),
        Method::GET,
        "/v1/triggers/call_ended/sample",
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    for (query, field) in [
        ("method=PUT", "method"),
        ("content_type=text/plain", "content_type"),
        ("time_zone=Mars/Olympus", "time_zone"),
        ("url=ftp://x.example.com/", "url"),
    ] {
        send(
            &app,
            Some(&app.key),
            Method::GET,
            &format!("/v1/triggers/call_missed/sample?{query}"),
            None,
        )
        .await
        .invalid(&[field]);
    }
}
