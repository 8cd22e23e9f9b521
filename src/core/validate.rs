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
}
