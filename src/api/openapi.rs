//! The OpenAPI document as served: what the route annotations say, plus every answer that the
//! shared parts of the API can give to any route (a malformed body or query, a missing key, a
//! NUL in a path parameter, …), so that the document lists every status a route can answer.
//! Problems are documented as `application/problem+json`, which is what they are sent as.
//!
//! Request schemas say what the edge refuses for every field alike: no string holds NUL, and
//! a `time_zone` is one of the zone names callhook knows, as it spells them.

use serde_json::{Map, Value, json};

const PROBLEM_REF: &str = "#/components/schemas/Problem";
const PROBLEM_TYPE: &str = "application/problem+json";

/// The document as JSON, completed.
pub fn document(doc: &utoipa::openapi::OpenApi) -> anyhow::Result<String> {
    let mut doc = serde_json::to_value(doc)?;
    complete(&mut doc);
    Ok(serde_json::to_string(&doc)?)
}

/// Strings the edge accepts: no NUL anywhere ([`crate::core::validate::NUL_MESSAGE`]).
const NO_NUL: &str = "^[^\\u0000]*$";

/// Adds to every operation the answers the shared parts give, writes problem answers as
/// `application/problem+json`, and marks what request strings may hold.
pub fn complete(doc: &mut Value) {
    let zones: Vec<Value> = jiff::tz::db()
        .available()
        .map(|n| Value::String(n.as_str().to_owned()))
        .collect();
    // The components request bodies use, directly or inside one another.
    let mut requested: Vec<String> = Vec::new();
    let mut todo: Vec<Value> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|op| op.pointer("/requestBody/content/application~1json/schema"))
        .cloned()
        .collect();
    while let Some(v) = todo.pop() {
        let mut refs = Vec::new();
        refs_in(&v, &mut refs);
        for r in refs {
            if !requested.contains(&r) {
                todo.push(doc["components"]["schemas"][&r].clone());
                requested.push(r);
            }
        }
    }
    for name in &requested {
        if let Some(s) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            harden_strings(s, "", &zones);
        }
    }
    let schemas = doc["components"]["schemas"].clone();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            complete_operation(op);
            for p in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = p["name"].as_str().unwrap_or("").to_owned();
                let in_query = p["in"] == "query";
                if let Some(schema) = p.get_mut("schema") {
                    harden_strings(schema, &name, &zones);
                    if in_query {
                        empty_means_default(schema, &schemas);
                    }
                }
            }
            if let Some(schema) = op.pointer_mut("/requestBody/content/application~1json/schema") {
                harden_strings(schema, "", &zones);
            }
        }
    }
}

/// A query field of fixed spellings also takes an empty value (`?status=`), which means the
/// same as leaving it out, as HTML forms send it.
fn empty_means_default(schema: &mut Value, schemas: &Value) {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        let target = &schemas[name];
        if target.get("enum").is_some() {
            *schema = json!({"type": "string", "enum": target["enum"].clone()});
        }
    }
    if let Some(list) = schema.get_mut("enum").and_then(Value::as_array_mut)
        && !list.contains(&json!(""))
    {
        list.push(json!(""));
    }
}

/// The names of the components `v` refers to.
fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => refs_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// Marks every string schema in `s` (the field named `name`): a `time_zone` takes the zone
/// names, any other free string refuses NUL.
fn harden_strings(s: &mut Value, name: &str, zones: &[Value]) {
    let Some(obj) = s.as_object_mut() else {
        return;
    };
    let is_string = match obj.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let free = !obj.contains_key("enum") && !obj.contains_key("format");
    if is_string && free {
        if name == "time_zone" {
            let mut names = zones.to_vec();
            if matches!(obj.get("type"), Some(Value::Array(ts)) if ts.iter().any(|t| t == "null")) {
                names.push(Value::Null);
            }
            obj.insert("enum".into(), Value::Array(names));
        } else if !obj.contains_key("pattern") {
            obj.insert("pattern".into(), Value::String(NO_NUL.to_owned()));
        }
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, v) in props.iter_mut() {
            harden_strings(v, k, zones);
        }
    }
    if let Some(items) = obj.get_mut("items") {
        harden_strings(items, name, zones);
    }
    for combo in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = obj.get_mut(combo).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(|v| harden_strings(v, name, zones));
        }
    }
}

fn complete_operation(op: &mut Value) {
    // `security: [{}]` is a route that needs no key; no `security` inherits the bearer key.
    let secured = match op.get("security").and_then(Value::as_array) {
        None => true,
        Some(reqs) => reqs
            .iter()
            .any(|r| r.as_object().is_some_and(|o| !o.is_empty())),
    };
    let has_body = op.get("requestBody").is_some();
    let params: Vec<String> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("in").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let has_path = params.iter().any(|p| p == "path");
    let has_query = params.iter().any(|p| p == "query");
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if has_body || has_query {
        shared.push(("400", "The body or the query string could not be read"));
    }
    if secured {
        shared.push(("401", "No bearer key, or one callhook does not know"));
        shared.push((
            "403",
            "The key may not do this: its role does not allow it (a viewer key on a change or a \
             secret; the problem says which role it needs), or it is the wrong kind of key (an \
             account key on an operator route, or the reverse)",
        ));
    }
    if has_path {
        shared.push(("404", "Nothing by that id in the caller's account"));
    }
    if has_body {
        shared.push(("413", "The body is too large"));
        shared.push(("415", "The body is not sent as application/json"));
    }
    if has_body || has_path || has_query {
        shared.push((
            "422",
            "A field breaks the rules (each bad field is named in `errors`)",
        ));
    }
    shared.push(("500", "Something broke on callhook's side (logged)"));
    if secured {
        shared.push(("503", "callhook is shutting down or overloaded"));
    }
    let Some(responses) = op.as_object_mut().and_then(|o| {
        o.entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    }) else {
        return;
    };
    for (status, description) in shared {
        responses
            .entry(status)
            .or_insert_with(|| problem_response(description));
    }
    for r in responses.values_mut() {
        problem_as_problem_json(r);
    }
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    })
}

/// A response whose JSON body is a Problem is documented as `application/problem+json`.
fn problem_as_problem_json(r: &mut Value) {
    let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let is_problem = content
        .get("application/json")
        .and_then(|c| c.pointer("/schema/$ref"))
        .and_then(Value::as_str)
        == Some(PROBLEM_REF);
    if is_problem && let Some(c) = content.remove("application/json") {
        let mut moved = Map::new();
        moved.insert(PROBLEM_TYPE.to_owned(), c);
        moved.extend(std::mem::take(content));
        *content = moved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_answers_are_added_and_problems_are_problem_json() {
        let mut doc = json!({"paths": {
            "/v1/things/{id}": {"post": {
                "parameters": [{"name": "id", "in": "path"}],
                "requestBody": {"content": {}},
                "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"description": "gone", "content": {"application/json": {"schema": {"$ref": PROBLEM_REF}}}}
                }
            }},
            "/healthz": {"get": {"security": [{}], "responses": {"200": {"description": "ok"}}}}
        }});
        complete(&mut doc);
        let op = &doc["paths"]["/v1/things/{id}"]["post"]["responses"];
        let statuses: Vec<&str> = op.as_object().unwrap().keys().map(String::as_str).collect();
        for s in [
            "200", "400", "401", "403", "404", "413", "415", "422", "500", "503",
        ] {
            assert!(statuses.contains(&s), "{s} in {statuses:?}");
        }
        assert_eq!(
            op["404"]["description"], "gone",
            "an annotated answer is kept"
        );
        assert!(op["404"]["content"][PROBLEM_TYPE].is_object());
        assert!(op["404"]["content"]["application/json"].is_null());
        assert!(op["200"]["content"]["application/json"].is_object());
        let health = &doc["paths"]["/healthz"]["get"]["responses"];
        let statuses: Vec<&str> = health
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(statuses, ["200", "500"]);
    }
}
