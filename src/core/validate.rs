//! Field-level validation errors, collected so that one response can name every bad field.

use serde::Serialize;
use serde_json::{Map, Value};

/// One bad field: where it is (`call.did_number`, `headers[2].key`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was wrong, else every error found.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Moves `other`'s errors in, each field prefixed with `prefix` (`[3]` + `call.did_number`).
    pub fn absorb(&mut self, prefix: &str, other: FieldErrors) {
        for e in other.0 {
            let field = match (prefix.is_empty(), e.field.starts_with('[')) {
                (true, _) => e.field,
                (false, true) => format!("{prefix}{}", e.field),
                (false, false) => format!("{prefix}.{}", e.field),
            };
            self.0.push(FieldError {
                field,
                message: e.message,
            });
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Reads the fields of one JSON object, recording a [`FieldError`] for every missing, mistyped
/// or unknown field instead of stopping at the first.
///
/// Each parser declares the keys it takes (a `KEYS` list beside it), and `finish` refuses every
/// key that is not declared or that the parser never read. So a parser takes exactly its
/// declared keys, and the API's test holds each list to the OpenAPI schema of its body
/// (`tests/it/openapi.rs`).
pub struct Fields<'a> {
    prefix: String,
    obj: &'a Map<String, Value>,
    keys: &'static [&'static str],
    seen: Vec<&'static str>,
    pub errors: FieldErrors,
}

impl<'a> Fields<'a> {
    /// The fields of `obj` (at `prefix` in the body) for a parser that takes `keys`.
    pub fn new(prefix: &str, obj: &'a Map<String, Value>, keys: &'static [&'static str]) -> Self {
        Fields {
            prefix: prefix.to_owned(),
            obj,
            keys,
            seen: Vec::new(),
            errors: FieldErrors::default(),
        }
    }

    /// The full path of `key` inside this object.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let field = self.path(key);
        self.errors.push(field, message);
    }

    /// The raw value, `None` when absent or `null`.
    pub fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn str(&mut self, key: &'static str) -> Option<&'a str> {
        match self.value(key)? {
            Value::String(s) if s.contains('\0') => {
                self.error(key, NUL_MESSAGE);
                None
            }
            Value::String(s) => Some(s),
            other => {
                self.error(key, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    /// A string that must be present.
    pub fn req_str(&mut self, key: &'static str) -> Option<&'a str> {
        if self.obj.get(key).is_none_or(Value::is_null) {
            self.seen.push(key);
            self.error(key, "is required");
            return None;
        }
        self.str(key)
    }

    pub fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(key, format!("must be true or false, not {}", kind(other)));
                None
            }
        }
    }

    pub fn f64(&mut self, key: &'static str) -> Option<f64> {
        match self.value(key)? {
            Value::Number(n) => n.as_f64(),
            other => {
                self.error(key, format!("must be a number, not {}", kind(other)));
                None
            }
        }
    }

    /// A non-negative whole number of seconds.
    pub fn seconds(&mut self, key: &'static str) -> Option<i64> {
        match self.value(key)? {
            Value::Number(n) => match n.as_i64() {
                Some(i) if i >= 0 => Some(i),
                _ => {
                    self.error(key, "must be a whole, non-negative number of seconds");
                    None
                }
            },
            other => {
                self.error(
                    key,
                    format!("must be a number of seconds, not {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn array(&mut self, key: &'static str) -> Option<&'a Vec<Value>> {
        match self.value(key)? {
            Value::Array(a) => Some(a),
            other => {
                self.error(key, format!("must be an array, not {}", kind(other)));
                None
            }
        }
    }

    /// An array of strings; each element that is not a string is an error of its own.
    pub fn str_array(&mut self, key: &'static str) -> Option<Vec<&'a str>> {
        let arr = self.array(key)?;
        let mut out = Vec::with_capacity(arr.len());
        let mut ok = true;
        for (i, v) in arr.iter().enumerate() {
            match v {
                Value::String(s) if s.contains('\0') => {
                    ok = false;
                    self.error(&format!("{key}[{i}]"), NUL_MESSAGE);
                }
                Value::String(s) => out.push(s.as_str()),
                other => {
                    ok = false;
                    self.error(
                        &format!("{key}[{i}]"),
                        format!("must be a string, not {}", kind(other)),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    pub fn object(&mut self, key: &'static str) -> Option<&'a Map<String, Value>> {
        match self.value(key)? {
            Value::Object(o) => Some(o),
            other => {
                self.error(key, format!("must be an object, not {}", kind(other)));
                None
            }
        }
    }

    /// Records an error for every key that is not declared or was never read, then returns
    /// all errors.
    pub fn finish(mut self) -> FieldErrors {
        let mut unknown: Vec<&String> = self
            .obj
            .keys()
            .filter(|k| !(self.keys.contains(&k.as_str()) && self.seen.contains(&k.as_str())))
            .collect();
        unknown.sort();
        for k in unknown {
            let field = self.path(k);
            self.errors.push(field, "is not a known field");
        }
        self.errors
    }
}

/// A field whose value is one of a fixed set of spellings (the enums of `str_enum!`).
pub trait Choice: Sized {
    fn parse(s: &str) -> Option<Self>;
    /// The accepted spellings, for error messages: `a, b or c`.
    fn choices() -> String;
}

impl Fields<'_> {
    /// One of `T`'s spellings, if present; a wrong one is an error that lists the right ones.
    pub fn opt_choice<T: Choice>(&mut self, key: &'static str) -> Option<T> {
        let s = self.str(key)?;
        let v = T::parse(s);
        if v.is_none() {
            self.error(key, format!("{s:?} is not allowed; use {}", T::choices()));
        }
        v
    }

    /// One of `T`'s spellings, which must be present.
    pub fn req_choice<T: Choice>(&mut self, key: &'static str) -> Option<T> {
        self.req_str(key)?;
        self.opt_choice(key)
    }

    /// One of `T`'s spellings, or `default` when absent; `None` only when it is wrong.
    pub fn choice_or<T: Choice>(&mut self, key: &'static str, default: T) -> Option<T> {
        if self.obj.get(key).is_none_or(Value::is_null) {
            self.seen.push(key);
            return Some(default);
        }
        self.opt_choice(key)
    }
}

/// What a field holding NUL is told. NUL is nothing a person types, and PostgreSQL cannot
/// store it in text (SQLite can), so it is refused at the edge, for both databases alike.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// Every string (and object key) holding NUL in a JSON body, named like other field errors
/// (`call.call_id`, `[3].id`, `headers[0].value`).
pub fn nul_fields(v: &Value) -> FieldErrors {
    /// One step of the way to a value: an object's key or an array's index.
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    /// The way named as a field (`call.call_id`, `[3].id`); made only for a value holding NUL,
    /// so a clean body (every post's) costs no string per field.
    fn name(path: &[Step]) -> String {
        let mut out = String::new();
        for step in path {
            match step {
                Step::Key(k) if out.is_empty() => out.push_str(k),
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
    fn walk<'a>(v: &'a Value, path: &mut Vec<Step<'a>>, out: &mut FieldErrors) {
        match v {
            Value::String(s) if s.contains('\0') => out.push(name(path), NUL_MESSAGE),
            Value::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    walk(item, path, out);
                    path.pop();
                }
            }
            Value::Object(o) => {
                for (k, item) in o {
                    path.push(Step::Key(k));
                    if k.contains('\0') {
                        out.push(name(path).replace('\0', "\\u0000"), NUL_MESSAGE);
                    } else {
                        walk(item, path, out);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = FieldErrors::default();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Path parameters and query fields holding NUL (`%00`) or bytes that are not UTF-8, named by
/// the route's parameter (`{call_id}` in `route`) or the query field's own name.
pub fn bad_request_line(route: Option<&str>, path: &str, query: Option<&str>) -> FieldErrors {
    let mut out = FieldErrors::default();
    if let Some(route) = route {
        for (pattern, raw) in route.split('/').zip(path.split('/')) {
            let Some(name) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
                continue;
            };
            let name = name.trim_start_matches('*');
            match percent_decode(raw) {
                Some(text) if text.contains('\0') => out.push(name, NUL_MESSAGE),
                Some(_) => {}
                None => out.push(name, "must be UTF-8 text (percent-encoded)"),
            }
        }
    }
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k.contains('\0') {
            out.push(k.replace('\0', "\\u0000"), NUL_MESSAGE);
        } else if v.contains('\0') {
            out.push(k, NUL_MESSAGE);
        }
    }
    out
}

/// `%41b` as `Ab`; `None` when the bytes are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                bytes.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// The JSON kind of a value, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn unknown(body: Value, read: &[&'static str]) -> Vec<String> {
        let obj = body.as_object().unwrap().clone();
        let mut f = Fields::new("", &obj, &["name", "label"]);
        for key in read {
            let _ = f.value(key);
        }
        f.finish()
            .0
            .into_iter()
            .filter(|e| e.message == "is not a known field")
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_key_is_taken_only_when_declared_and_read() {
        let body = json!({"name": "a", "label": "b", "extra": 1});
        assert_eq!(unknown(body.clone(), &["name", "label"]), ["extra"]);
        // Declared but never read: refused (the parser does nothing with it).
        assert_eq!(unknown(body.clone(), &["name"]), ["extra", "label"]);
        // Read but not declared: refused too (the declared list is what the parser takes).
        assert_eq!(unknown(body, &["name", "label", "extra"]), ["extra"]);
    }

    fn fields(e: &FieldErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_string_field_or_list_item_with_nul_is_refused() {
        let obj = json!({"name": "a\u{0}", "list": ["a", "b\u{0}"]});
        let obj = obj.as_object().unwrap().clone();
        let mut f = Fields::new("", &obj, &["name", "list"]);
        assert!(f.str("name").is_none());
        assert!(f.str_array("list").is_none());
        assert_eq!(fields(&f.finish()), ["name", "list[1]"]);
    }

    #[test]
    fn nul_is_found_in_every_string_of_a_body() {
        let body = json!([
            {"id": "ok", "call": {"call_id": "a\u{0}b", "extensions": ["1", "2\u{0}"]}},
            {"name": "x", "k\u{0}": 1, "n": 5, "t": true}
        ]);
        assert_eq!(
            fields(&nul_fields(&body)),
            ["[0].call.call_id", "[0].call.extensions[1]", "[1].k\\u0000"]
        );
        assert!(nul_fields(&json!({"a": "no nul", "b": [1, null]})).is_empty());
    }

    #[test]
    fn nul_is_found_in_path_parameters_and_query_fields() {
        let e = bad_request_line(
            Some("/v1/calls/{call_id}"),
            "/v1/calls/a%00b",
            Some("after=%00&limit=5&x%00=1"),
        );
        assert_eq!(fields(&e), ["call_id", "after", "x\\u0000"]);
        let e = bad_request_line(
            Some("/v1/webhooks/{id}/test"),
            "/v1/webhooks/%ff/test",
            None,
        );
        assert_eq!(fields(&e), ["id"]);
        assert!(
            bad_request_line(
                Some("/v1/calls/{call_id}"),
                "/v1/calls/a%20b",
                Some("a=%41")
            )
            .is_empty()
        );
        assert!(bad_request_line(None, "/x%00", None).is_empty());
    }
}
