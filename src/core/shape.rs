//! Shaping the request (SPEC §11): which parameters a request carries ([`Payload`]), the
//! admin's own body rows ([`BodyField`]), and how timestamps are written ([`TimeFormat`]).
//! The rows' values are [`Template`]s, parsed when the webhook is saved.

use serde_json::{Map, Value};

use super::event::str_enum;
use super::render::ParamValue;
use super::template::{Escape, Template};
use super::trigger::{Param, Trigger};
use super::validate::Fields;

pub const MAX_BODY_FIELDS: usize = 50;
pub const MAX_BODY_KEY: usize = 100;
pub const MAX_BODY_VALUE: usize = 2000;

str_enum!(
    /// What a request carries: every parameter then the body rows, or only the rows.
    Payload { Standard = "standard", Custom = "custom" }
);
str_enum!(
    /// How every timestamp a request carries is written: RFC 3339 with the zone's offset,
    /// local wall-clock time without an offset, or Unix seconds.
    TimeFormat { Rfc3339 = "rfc3339", Local = "local", Unix = "unix" }
);

/// One row of the body: a key as the receiver wants it and a template for its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyField {
    /// As written; in JSON bodies its dots nest (`lead.phone`).
    pub key: String,
    /// The value's text as the admin wrote it.
    pub value: String,
    pub template: Template,
}

impl BodyField {
    /// The keys of one body row.
    pub const KEYS: &[&str] = &["key", "value"];
}

impl BodyField {
    /// The key's parts, for nesting in JSON.
    pub fn path(&self) -> impl Iterator<Item = &str> {
        self.key.split('.')
    }

    /// The value a JSON body gets (see [`Template::render_json`]).
    pub fn json_value<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>) -> Value {
        self.template.render_json(value)
    }

    /// The value a form body or query gets.
    pub fn form_value<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>) -> String {
        self.template.render(value, Escape::None)
    }
}

/// Reads `body_fields` (an array of `{key, value}`), checking every rule of SPEC §11 against
/// `trigger` (when it is known) and `payload`. Errors go into `f`, named
/// `body_fields[i].key` / `body_fields[i].value`.
pub fn parse_body_fields(
    f: &mut Fields,
    trigger: Option<Trigger>,
    payload: Option<Payload>,
) -> Option<Vec<BodyField>> {
    let list = match f.array("body_fields") {
        None => return (!f.errors.0.iter().any(|e| e.field == "body_fields")).then(Vec::new),
        Some(l) => l,
    };
    if list.len() > MAX_BODY_FIELDS {
        f.error(
            "body_fields",
            format!("may hold at most {MAX_BODY_FIELDS} rows"),
        );
        return None;
    }
    let mut out: Vec<BodyField> = Vec::with_capacity(list.len());
    // Every well-formed key so far, valid value or not: a repeat is named even when the
    // first row has another problem.
    let mut keys: Vec<&str> = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, item) in list.iter().enumerate() {
        let at = format!("body_fields[{i}]");
        let Value::Object(o) = item else {
            f.error(&at, "must be an object {\"key\": …, \"value\": …}");
            ok = false;
            continue;
        };
        let mut rf = Fields::new(&f.path(&at), o, BodyField::KEYS);
        let key = rf.req_str("key").and_then(|k| match check_key(k) {
            Ok(()) => Some(k),
            Err(e) => {
                rf.error("key", e);
                None
            }
        });
        if let Some(k) = key {
            if keys.contains(&k) {
                rf.error("key", format!("{k:?} is given twice"));
            } else if let Some(other) = keys.iter().find(|o| nests(o, k) || nests(k, o)) {
                rf.error(
                    "key",
                    format!(
                        "{k:?} and {other:?} cannot both be sent: in JSON one would be both a value and an object"
                    ),
                );
            } else if payload == Some(Payload::Standard)
                && let Some(t) = trigger
                && let Some(p) = t
                    .params()
                    .find(|p| p.name() == k.split('.').next().unwrap_or(k))
            {
                rf.error(
                    "key",
                    format!(
                        "{:?} is already a parameter of {}; choose another key, or send only your rows with payload custom",
                        p.name(),
                        t.id()
                    ),
                );
            }
        }
        let value = rf.req_str("value").and_then(|v| {
            if v.chars().count() > MAX_BODY_VALUE {
                rf.error(
                    "value",
                    format!("must be at most {MAX_BODY_VALUE} characters"),
                );
                return None;
            }
            let t = trigger?;
            match Template::parse(v, t) {
                Ok(template) => Some((v, template)),
                Err(e) => {
                    rf.error("value", e.to_string());
                    None
                }
            }
        });
        if let Some(k) = key {
            keys.push(k);
        }
        let e = rf.finish();
        ok &= e.is_empty();
        f.errors.0.extend(e.0);
        if let (Some(key), Some((value, template))) = (key, value) {
            out.push(BodyField {
                key: key.to_owned(),
                value: value.to_owned(),
                template,
            });
        }
    }
    ok.then_some(out)
}

/// Whether `inner` sits inside `outer` once dots nest (`lead` and `lead.phone`).
fn nests(outer: &str, inner: &str) -> bool {
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'.'
}

fn check_key(k: &str) -> Result<(), String> {
    let n = k.chars().count();
    if n == 0 || n > MAX_BODY_KEY {
        return Err(format!("must be 1 to {MAX_BODY_KEY} characters"));
    }
    if k.split('.').any(str::is_empty) {
        return Err(format!(
            "{k:?} has an empty part: dots separate nested keys (lead.phone), so a key may not start or end with one or hold two in a row"
        ));
    }
    if k.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Puts `value` at the dotted `key` in `obj`, making the objects on the way. Keys were
/// checked at save so that no leaf is also an object; should one be all the same, the later
/// row wins rather than anything panicking.
pub fn insert_nested(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut cur = obj;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_owned(), value);
            return;
        }
        let slot = cur
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        cur = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(rows: Value, payload: Payload) -> Vec<(String, String)> {
        let obj = json!({ "body_fields": rows });
        let mut f = Fields::new("", obj.as_object().unwrap(), &["body_fields"]);
        let _ = parse_body_fields(&mut f, Some(Trigger::CallMissed), Some(payload));
        f.errors
            .0
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn every_rule_names_its_row() {
        let e = errors(
            json!([
                {"key": "phone", "value": "$customer_number"},
                {"key": "phone", "value": "x"},
                {"key": "lead", "value": "x"},
                {"key": "lead.source", "value": "pbx"},
                {"key": "a..b", "value": "x"},
                {"key": "", "value": "x"},
                {"key": "k", "value": "$nope"},
                {"key": "call_id", "value": "x"},
                {"key": "v", "value": "x".repeat(2001)},
                "row"
            ]),
            Payload::Standard,
        );
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "body_fields[1].key",
                "body_fields[3].key",
                "body_fields[4].key",
                "body_fields[5].key",
                "body_fields[6].value",
                "body_fields[7].key",
                "body_fields[8].value",
                "body_fields[9]"
            ],
            "{e:?}"
        );
        assert!(
            e[5].1.contains("already a parameter of call_missed"),
            "{e:?}"
        );
        assert!(e[4].1.contains("$nope is not a parameter"), "{e:?}");
        // With a custom payload, parameter names are free to use as keys.
        assert!(
            errors(
                json!([{"key": "call_id", "value": "$call_id"}]),
                Payload::Custom
            )
            .is_empty()
        );
        // A custom payload without rows sends an empty body (a GET may carry all in its URL).
        assert!(errors(json!([]), Payload::Custom).is_empty());
        let many: Vec<Value> = (0..51)
            .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
            .collect();
        assert_eq!(
            errors(Value::Array(many), Payload::Custom)[0].0,
            "body_fields"
        );
    }

    #[test]
    fn dotted_keys_nest() {
        let mut m = Map::new();
        insert_nested(&mut m, "lead.phone", json!("+91"));
        insert_nested(&mut m, "lead.source", json!("pbx"));
        insert_nested(&mut m, "a.b.c", json!(1));
        insert_nested(&mut m, "flat", json!(null));
        assert_eq!(
            Value::Object(m),
            json!({"lead": {"phone": "+91", "source": "pbx"}, "a": {"b": {"c": 1}}, "flat": null})
        );
        // A clash that save-time checks prevent still cannot panic.
        let mut m = Map::new();
        insert_nested(&mut m, "x", json!(1));
        insert_nested(&mut m, "x.y", json!(2));
        assert_eq!(Value::Object(m), json!({"x": {"y": 2}}));
    }

    #[test]
    fn nesting_is_by_whole_parts() {
        assert!(nests("lead", "lead.phone"));
        assert!(!nests("lead", "leader"));
        assert!(!nests("lead.phone", "lead"));
    }
}
