//! Webhooks (SPEC §3) and the types their fields are parsed into: [`WebhookUrl`], [`TimeZone`],
//! [`Header`], and the request's shape (SPEC §11, [`super::shape`]). A [`WebhookSpec`] is
//! everything an admin sets; it is valid by construction, its templates already parsed.

use std::fmt;

use serde_json::{Map, Value, json};

use super::event::{CallEvent, CallType, str_enum};
use super::number::E164;
use super::render::ParamValue;
use super::shape::{BodyField, Payload, TimeFormat, parse_body_fields};
use super::template::{Escape, Template};
use super::trigger::{Param, Trigger};
use super::validate::{FieldErrors, Fields};

pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_URL: usize = 2048;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_KEY: usize = 256;
pub const MAX_HEADER_VALUE: usize = 4096;
pub const MAX_NUMBERS: usize = 1000;
pub const RATE_LIMIT_MIN: f64 = 0.1;
pub const RATE_LIMIT_MAX: f64 = 1000.0;

str_enum!(
    /// How the request is sent.
    Method { Get = "GET", Post = "POST" }
);
str_enum!(
    /// How a POST body is encoded.
    ContentType { Json = "application/json", Form = "application/x-www-form-urlencoded" }
);

/// An absolute `http`/`https` URL without userinfo, at most 2048 characters, whose path and
/// query may hold references to the trigger's parameters (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// As shown and stored: normalised when it holds no reference, else as typed.
    text: String,
    template: Template,
}

/// Checks an absolute URL's parts that SPEC §3 rules on.
fn check_url(url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must use http or https, not {:?}", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain a user name or password; send credentials in a custom header".into(),
        );
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    Ok(())
}

impl WebhookUrl {
    /// A URL without references (as the sample and tests use).
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        Self::parse_for(s, None)
    }

    /// A URL whose references are checked against `trigger`'s parameters; without a trigger,
    /// `$` is taken literally.
    pub fn parse_for(s: &str, trigger: Option<Trigger>) -> Result<WebhookUrl, String> {
        if s.len() > MAX_URL {
            return Err(format!("must be at most {MAX_URL} characters"));
        }
        let s = s.trim();
        let template = match trigger {
            Some(t) => Template::parse(s, t).map_err(|e| e.to_string())?,
            None => Template::literal(s),
        };
        if !template.has_references() {
            let plain = template.render(&|_| ParamValue::Null, Escape::None);
            let url = url::Url::parse(&plain)
                .map_err(|e| format!("{s:?} is not an absolute URL ({e})"))?;
            check_url(&url)?;
            if url.as_str().len() > MAX_URL {
                return Err(format!(
                    "must be at most {MAX_URL} characters once normalised"
                ));
            }
            let template = Template::literal(url.as_str());
            return Ok(WebhookUrl {
                text: if trigger.is_some() {
                    template.source()
                } else {
                    url.to_string()
                },
                template,
            });
        }
        // References may stand in the path and the query only: the scheme and host before
        // the first one must be complete, so a value can never change where the request goes.
        let lead = template.leading_literal();
        let authority_ends = lead
            .split_once("://")
            .is_some_and(|(_, rest)| rest.contains(['/', '?']) && !rest.starts_with(['/', '?']));
        if !authority_ends {
            return Err(
                "parameters may only stand in the URL's path or query, after the host and a /"
                    .into(),
            );
        }
        let example = template.render(&|_| ParamValue::Str("x".into()), Escape::Url);
        let url = url::Url::parse(&example)
            .map_err(|e| format!("{s:?} is not an absolute URL once filled in ({e})"))?;
        check_url(&url)?;
        Ok(WebhookUrl {
            text: s.to_owned(),
            template,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL of one request: references filled in, their values percent-encoded.
    pub fn render<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>) -> String {
        self.template.render(value, Escape::Url)
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IANA time zone (`Asia/Kolkata`), kept with the name it was given in canonical case.
#[derive(Debug, Clone)]
pub struct TimeZone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl TimeZone {
    pub fn parse(s: &str) -> Result<TimeZone, String> {
        let tz = jiff::tz::db().get(s).map_err(|_| {
            format!("{s:?} is not an IANA time zone, like Asia/Kolkata, Europe/London or UTC")
        })?;
        let name = tz.iana_name().unwrap_or(s).to_owned();
        // Names are written as the database spells them (the OpenAPI document lists them),
        // so one zone has one spelling everywhere.
        if name != s {
            return Err(format!("{s:?} is written {name:?}"));
        }
        Ok(TimeZone { name, tz })
    }

    pub fn utc() -> TimeZone {
        TimeZone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A custom header the admin adds to every request. Its value may hold references to the
/// trigger's parameters (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Header {
    pub key: String,
    /// As written, references included.
    pub value: String,
    /// Write-only: API answers, the web page (until an admin reveals it) and the attempt log
    /// show the value as `********` (SPEC §14). Defaults by the name, see
    /// [`Header::secret_by_default`].
    pub secret: bool,
    /// The value parsed.
    #[serde(skip)]
    pub template: Template,
}

/// What a secret header's value reads as wherever it is not revealed; sent back in a PUT or
/// PATCH for a secret header, it keeps the stored value.
pub const MASK: &str = "********";

/// Parts of a header name that make it secret unless told otherwise.
pub const SECRET_NAME_PARTS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "cookie",
    "session",
    "signature",
    "credential",
];

impl Header {
    /// The keys of one header row.
    pub const KEYS: &[&str] = &["key", "value", "secret"];

    /// Whether a header named `key` is secret when the admin does not say: its name (in any
    /// case) contains one of [`SECRET_NAME_PARTS`] (`Authorization`, `X-Api-Key`,
    /// `X-Auth-Token`, `Cookie`…).
    pub fn secret_by_default(key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        SECRET_NAME_PARTS.iter().any(|p| lower.contains(p))
    }

    /// The value as whoever may not see it reads it.
    pub fn shown_value(&self) -> &str {
        if self.secret { MASK } else { &self.value }
    }
}

/// A new spec's headers that were sent back masked take the stored value of the secret header
/// of the same name in `old`, and stay secret (so a GET then PUT, or the web form saved as
/// shown, keeps every secret header as it was; only a value sent again may be made visible).
pub fn keep_masked_values(old: &[Header], new: &mut [Header]) {
    for h in new.iter_mut().filter(|h| h.value == MASK) {
        if let Some(o) = old
            .iter()
            .find(|o| o.secret && o.key.eq_ignore_ascii_case(&h.key))
        {
            h.value = o.value.clone();
            h.template = o.template.clone();
            h.secret = true;
        }
    }
}

/// A request's headers with the values of `spec_headers`' secret ones masked: what an
/// attempt's record keeps.
pub fn mask_secret_headers(spec_headers: &[Header], sent: &mut [(String, String)]) {
    if !spec_headers.iter().any(|h| h.secret) {
        return;
    }
    for (name, value) in sent.iter_mut() {
        if spec_headers
            .iter()
            .any(|h| h.secret && h.key.eq_ignore_ascii_case(name))
        {
            *value = MASK.to_owned();
        }
    }
}

impl Header {
    /// The value of one request: references filled in, control characters never sent.
    pub fn render<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>) -> String {
        self.template.render(value, Escape::Header)
    }
}

/// Headers callhook sets itself (or that HTTP itself owns), so an admin may not.
fn reserved_header(lower: &str) -> Option<&'static str> {
    match lower {
        "host" | "content-length" | "content-type" | "transfer-encoding" | "connection"
        | "user-agent" => Some("is set by callhook and cannot be overridden"),
        "te" | "trailer" | "upgrade" | "keep-alive" | "proxy-connection" | "expect" => {
            Some("is a hop-by-hop header and cannot be set")
        }
        _ if lower.starts_with("webhook-") => {
            Some("is reserved for the Standard Webhooks signature headers")
        }
        _ => None,
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

impl Header {
    /// Checks one header, its value's references against `trigger` (taken literally without
    /// one); errors are keyed `key` or `value`.
    pub fn parse(
        key: &str,
        value: &str,
        trigger: Option<Trigger>,
    ) -> Result<Header, Vec<(&'static str, String)>> {
        let mut errs = Vec::new();
        if key.is_empty() {
            errs.push(("key", "must not be empty".to_string()));
        } else if key.len() > MAX_HEADER_KEY {
            errs.push((
                "key",
                format!("must be at most {MAX_HEADER_KEY} characters"),
            ));
        } else if let Some(bad) = key.chars().find(|c| !is_token_char(*c)) {
            errs.push((
                "key",
                format!("{key:?} is not a valid header name: {bad:?} is not allowed"),
            ));
        } else if let Some(why) = reserved_header(&key.to_ascii_lowercase()) {
            errs.push(("key", format!("{key:?} {why}")));
        }
        if value.len() > MAX_HEADER_VALUE {
            errs.push(("value", format!("must be at most {MAX_HEADER_VALUE} bytes")));
        } else if value.contains(['\r', '\n', '\0']) {
            errs.push(("value", "must not contain CR, LF or NUL".to_string()));
        } else if value.chars().any(|c| c.is_control() && c != '\t') {
            errs.push(("value", "must not contain control characters".to_string()));
        }
        let value = value.trim();
        let template = match trigger {
            Some(t) => match Template::parse(value, t) {
                Ok(template) => Some(template),
                Err(e) => {
                    errs.push(("value", e.to_string()));
                    None
                }
            },
            None => Some(Template::literal(value)),
        };
        match template {
            Some(template) if errs.is_empty() => Ok(Header {
                key: key.to_owned(),
                value: value.to_owned(),
                secret: Header::secret_by_default(key),
                template,
            }),
            _ => Err(errs),
        }
    }
}

/// Everything an admin configures on a webhook, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub name: String,
    pub description: String,
    pub trigger: Trigger,
    pub url: WebhookUrl,
    pub method: Method,
    /// Never empty; kept in canonical order without repeats.
    pub call_types: Vec<CallType>,
    pub content_type: ContentType,
    /// Empty means every number of the account.
    pub numbers: Vec<E164>,
    pub time_zone: TimeZone,
    pub headers: Vec<Header>,
    /// Every parameter then the body rows, or only the rows.
    pub payload: Payload,
    pub body_fields: Vec<BodyField>,
    pub time_format: TimeFormat,
    /// Requests per second, or `None` for no limit.
    pub rate_limit: Option<f64>,
    pub enabled: bool,
}

/// Fields of a webhook the server owns; a client may send them back unchanged (GET, edit, PUT).
const READ_ONLY: &[&str] = &[
    "id",
    "disabled_reason",
    "created_at",
    "updated_at",
    "health",
];

impl WebhookSpec {
    /// The keys a create, replace or patch body takes: [`READ_ONLY`] and the spec's own.
    pub const KEYS: &[&str] = &[
        "id",
        "disabled_reason",
        "created_at",
        "updated_at",
        "health",
        "name",
        "description",
        "trigger",
        "url",
        "method",
        "call_types",
        "content_type",
        "numbers",
        "time_zone",
        "headers",
        "payload",
        "body_fields",
        "time_format",
        "rate_limit",
        "enabled",
    ];

    /// Parses a create (POST) or replace (PUT) body. Absent optional fields take their
    /// defaults: `POST`, every call type, JSON, all numbers, `UTC`, no headers, no rate limit,
    /// enabled. Numbers are only checked for form here; the API checks they are the account's.
    pub fn from_json(obj: &Map<String, Value>) -> Result<WebhookSpec, FieldErrors> {
        let mut f = Fields::new("", obj, WebhookSpec::KEYS);
        for key in READ_ONLY {
            let _ = f.value(key);
        }
        let name = f.req_str("name").map(str::trim).and_then(|s| {
            let n = s.chars().count();
            if n == 0 || n > MAX_NAME {
                f.error("name", format!("must be 1 to {MAX_NAME} characters"));
                None
            } else {
                Some(s.to_owned())
            }
        });
        let description = f.str("description").unwrap_or("").trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION {
            f.error(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        let trigger: Option<Trigger> = f.req_str("trigger").and_then(|s| {
            let t = Trigger::parse(s);
            if t.is_none() {
                let ids: Vec<&str> = Trigger::ALL.iter().map(|t| t.id()).collect();
                f.error(
                    "trigger",
                    format!("{s:?} is not a trigger; use one of {}", ids.join(", ")),
                );
            }
            t
        });
        let url = f
            .req_str("url")
            .and_then(|s| match WebhookUrl::parse_for(s, trigger) {
                Ok(u) => Some(u),
                Err(e) => {
                    f.error("url", e);
                    None
                }
            });
        let method = f.choice_or("method", Method::Post);
        let call_types = match f.str_array("call_types") {
            None if obj.get("call_types").is_some_and(|v| !v.is_null()) => None,
            None => Some(CallType::ALL.to_vec()),
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, s) in list.iter().enumerate() {
                    match CallType::parse(s) {
                        Some(t) => out.push(t),
                        None => {
                            ok = false;
                            f.error(
                                &format!("call_types[{i}]"),
                                format!("{s:?} is not a call type; use {}", CallType::choices()),
                            );
                        }
                    }
                }
                out.sort();
                out.dedup();
                if ok && out.is_empty() {
                    f.error("call_types", "must name at least one call type");
                    ok = false;
                }
                ok.then_some(out)
            }
        };
        let content_type = f.choice_or("content_type", ContentType::Json);
        let numbers = match f.str_array("numbers") {
            None if obj.get("numbers").is_some_and(|v| !v.is_null()) => None,
            None => Some(Vec::new()),
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                if list.len() > MAX_NUMBERS {
                    f.error("numbers", format!("may hold at most {MAX_NUMBERS} numbers"));
                    ok = false;
                }
                for (i, s) in list.iter().enumerate() {
                    match E164::parse(s) {
                        Ok(n) => out.push(n),
                        Err(e) => {
                            ok = false;
                            f.error(&format!("numbers[{i}]"), e);
                        }
                    }
                }
                out.sort();
                out.dedup();
                ok.then_some(out)
            }
        };
        let time_zone = match f.str("time_zone") {
            None => Some(TimeZone::utc()),
            Some(s) => match TimeZone::parse(s) {
                Ok(tz) => Some(tz),
                Err(e) => {
                    f.error("time_zone", e);
                    None
                }
            },
        };
        let headers = parse_headers(&mut f, trigger);
        let payload = f.choice_or("payload", Payload::Standard);
        let body_fields = parse_body_fields(&mut f, trigger, payload);
        let time_format = f.choice_or("time_format", TimeFormat::Rfc3339);
        let rate_limit = match f.value("rate_limit") {
            None => Some(None),
            Some(_) => match f.f64("rate_limit") {
                Some(r) if (RATE_LIMIT_MIN..=RATE_LIMIT_MAX).contains(&r) => Some(Some(r)),
                Some(_) => {
                    f.error(
                        "rate_limit",
                        format!("must be null (no limit) or {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX} requests per second"),
                    );
                    None
                }
                None => None,
            },
        };
        let enabled = f.bool("enabled").unwrap_or(true);
        let errors = f.finish();
        match (
            name,
            trigger,
            url,
            method,
            call_types,
            content_type,
            numbers,
            time_zone,
            headers,
            payload,
            body_fields,
            time_format,
            rate_limit,
        ) {
            (
                Some(name),
                Some(trigger),
                Some(url),
                Some(method),
                Some(call_types),
                Some(content_type),
                Some(numbers),
                Some(time_zone),
                Some(headers),
                Some(payload),
                Some(body_fields),
                Some(time_format),
                Some(rate_limit),
            ) if errors.is_empty() => Ok(WebhookSpec {
                name,
                description,
                trigger,
                url,
                method,
                call_types,
                content_type,
                numbers,
                time_zone,
                headers,
                payload,
                body_fields,
                time_format,
                rate_limit,
                enabled,
            }),
            _ => Err(errors),
        }
    }

    /// The admin-set fields as JSON, in the order of SPEC §3.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert("trigger".into(), json!(self.trigger.id()));
        m.insert("url".into(), json!(self.url.as_str()));
        m.insert("method".into(), json!(self.method.as_str()));
        m.insert("call_types".into(), json!(self.call_types));
        m.insert("content_type".into(), json!(self.content_type.as_str()));
        m.insert(
            "numbers".into(),
            json!(self.numbers.iter().map(E164::as_str).collect::<Vec<_>>()),
        );
        m.insert("time_zone".into(), json!(self.time_zone.name()));
        m.insert("headers".into(), json!(self.headers));
        m.insert("payload".into(), json!(self.payload.as_str()));
        let rows: Vec<Value> = self
            .body_fields
            .iter()
            .map(|r| json!({"key": r.key, "value": r.value}))
            .collect();
        m.insert("body_fields".into(), Value::Array(rows));
        m.insert("time_format".into(), json!(self.time_format.as_str()));
        m.insert("rate_limit".into(), json!(self.rate_limit));
        m.insert("enabled".into(), json!(self.enabled));
        m
    }

    /// Applies a PATCH: the given fields replace the current ones, then the whole is validated
    /// again, so a patch can never produce a webhook that a PUT would refuse.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<WebhookSpec, FieldErrors> {
        let mut merged = self.to_json();
        for (k, v) in patch {
            merged.insert(k.clone(), v.clone());
        }
        WebhookSpec::from_json(&merged)
    }

    /// Whether this webhook fires for `event`, trigger aside (SPEC §2): the call type is one of
    /// ours and the DID is one of our numbers (or we take all numbers). Enabled-ness and the
    /// account are the caller's to check.
    pub fn accepts_call(&self, event: &CallEvent) -> bool {
        self.call_types.contains(&event.call.call_type)
            && (self.numbers.is_empty() || self.numbers.contains(&event.call.did_number))
    }
}

fn parse_headers(f: &mut Fields, trigger: Option<Trigger>) -> Option<Vec<Header>> {
    let list = match f.array("headers") {
        None => return (!f.errors.0.iter().any(|e| e.field == "headers")).then(Vec::new),
        Some(l) => l,
    };
    if list.len() > MAX_HEADERS {
        f.error("headers", format!("may hold at most {MAX_HEADERS} headers"));
        return None;
    }
    let mut out: Vec<Header> = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, item) in list.iter().enumerate() {
        let Value::Object(o) = item else {
            f.error(
                &format!("headers[{i}]"),
                "must be an object {\"key\": …, \"value\": …}",
            );
            ok = false;
            continue;
        };
        let mut hf = Fields::new(&f.path(&format!("headers[{i}]")), o, Header::KEYS);
        let key = hf.req_str("key");
        let value = hf.req_str("value");
        let secret = hf.bool("secret");
        if let (Some(key), Some(value)) = (key, value) {
            match Header::parse(key, value, trigger) {
                Ok(mut h) => {
                    if let Some(secret) = secret {
                        h.secret = secret;
                    }
                    if out.iter().any(|o| o.key.eq_ignore_ascii_case(&h.key)) {
                        hf.error("key", format!("{key:?} is given twice"));
                    }
                    out.push(h);
                }
                Err(errs) => {
                    for (field, msg) in errs {
                        hf.error(field, msg);
                    }
                }
            }
        }
        let e = hf.finish();
        ok &= e.is_empty();
        f.errors.0.extend(e.0);
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid() -> Map<String, Value> {
        let Value::Object(m) = json!({
            "name": "CRM: missed calls",
            "description": "Creates a callback task",
            "trigger": "call_missed",
            "url": "https://crm.example.com/hooks/calls?src=pbx",
            "method": "POST",
            "call_types": ["inbound", "click_to_call"],
            "content_type": "application/json",
            "numbers": ["+918065251305"],
            "time_zone": "Asia/Kolkata",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}],
            "rate_limit": null,
            "enabled": true
        }) else {
            unreachable!()
        };
        m
    }

    fn errors_for(key: &str, value: Value) -> Vec<(String, String)> {
        let mut m = valid();
        m.insert(key.into(), value);
        match WebhookSpec::from_json(&m) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        }
    }

    #[test]
    fn the_spec_example_is_valid_and_round_trips() {
        let spec = WebhookSpec::from_json(&valid()).unwrap();
        assert_eq!(spec.trigger, Trigger::CallMissed);
        assert_eq!(spec.call_types, [CallType::Inbound, CallType::ClickToCall]);
        assert_eq!(WebhookSpec::from_json(&spec.to_json()).unwrap(), spec);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let Value::Object(m) =
            json!({"name": "n", "trigger": "call_received", "url": "http://x.example"})
        else {
            unreachable!()
        };
        let spec = WebhookSpec::from_json(&m).unwrap();
        assert_eq!(spec.method, Method::Post);
        assert_eq!(spec.call_types, CallType::ALL);
        assert_eq!(spec.content_type, ContentType::Json);
        assert_eq!(spec.time_zone.name(), "UTC");
        assert!(spec.numbers.is_empty() && spec.headers.is_empty() && spec.enabled);
    }

    #[test]
    fn each_rule_names_its_field() {
        let long = "x".repeat(101);
        for (key, value, field) in [
            ("name", json!(""), "name"),
            ("name", json!(long), "name"),
            ("name", json!(5), "name"),
            ("description", json!("d".repeat(1001)), "description"),
            ("trigger", json!("call_ended"), "trigger"),
            ("method", json!("PUT"), "method"),
            ("content_type", json!("text/plain"), "content_type"),
            ("call_types", json!([]), "call_types"),
            (
                "call_types",
                json!(["inbound", "sideways"]),
                "call_types[1]",
            ),
            ("call_types", json!("inbound"), "call_types"),
            ("url", json!("ftp://x.example/"), "url"),
            ("url", json!("/relative"), "url"),
            ("url", json!("https://user:pw@x.example/"), "url"),
            (
                "url",
                json!(format!("https://x.example/{}", "a".repeat(2048))),
                "url",
            ),
            ("numbers", json!(["8065251305"]), "numbers[0]"),
            ("time_zone", json!("Mars/Olympus"), "time_zone"),
            ("rate_limit", json!(0.05), "rate_limit"),
            ("rate_limit", json!(1001), "rate_limit"),
            ("rate_limit", json!("fast"), "rate_limit"),
            (
                "headers",
                json!([{"key": "Bad Key", "value": "v"}]),
                "headers[0].key",
            ),
            (
                "headers",
                json!([{"key": "X-A", "value": "a\r\nb"}]),
                "headers[0].value",
            ),
            (
                "headers",
                json!([{"key": "Host", "value": "v"}]),
                "headers[0].key",
            ),
            (
                "headers",
                json!([{"key": "Webhook-Signature", "value": "v"}]),
                "headers[0].key",
            ),
            (
                "headers",
                json!([{"key": "X-A", "value": "1"}, {"key": "x-a", "value": "2"}]),
                "headers[1].key",
            ),
            ("headers", json!([{"key": "X-A"}]), "headers[0].value"),
            (
                "headers",
                json!(
                    (0..21)
                        .map(|i| json!({"key": format!("X-{i}"), "value": "v"}))
                        .collect::<Vec<_>>()
                ),
                "headers",
            ),
            ("enabled", json!("yes"), "enabled"),
            ("colour", json!("blue"), "colour"),
        ] {
            let errs = errors_for(key, value.clone());
            assert_eq!(errs.len(), 1, "{key}={value}: {errs:?}");
            assert_eq!(errs[0].0, field, "{key}={value}: {errs:?}");
        }
    }

    #[test]
    fn masked_values_sent_back_keep_the_stored_secret_and_masks_stay_out_of_records() {
        let old = vec![
            Header::parse("Authorization", "Bearer a", None).unwrap(),
            Header::parse("X-Tenant", "acme", None).unwrap(),
        ];
        assert!(old[0].secret && !old[1].secret, "secret by name only");
        let mut new = vec![
            Header::parse("authorization", MASK, None).unwrap(),
            Header::parse("X-Tenant", MASK, None).unwrap(),
        ];
        new[0].secret = false;
        keep_masked_values(&old, &mut new);
        assert_eq!((new[0].value.as_str(), new[0].secret), ("Bearer a", true));
        assert_eq!(new[1].value, MASK, "only a secret header's value is kept");
        let mut sent = vec![
            ("AUTHORIZATION".to_owned(), "Bearer a".to_owned()),
            ("X-Tenant".to_owned(), "acme".to_owned()),
        ];
        mask_secret_headers(&old, &mut sent);
        assert_eq!(sent[0].1, MASK);
        assert_eq!(sent[1].1, "acme");
        for name in [
            "X-Api-Key",
            "X-Auth-Token",
            "Cookie",
            "x-client-secret",
            "Proxy-Authorization",
        ] {
            assert!(Header::secret_by_default(name), "{name}");
        }
        for name in ["X-Tenant", "Accept", "X-Request-Id"] {
            assert!(!Header::secret_by_default(name), "{name}");
        }
    }

    #[test]
    fn reserved_headers_are_refused_in_any_case() {
        for key in [
            "host",
            "Content-Length",
            "CONTENT-TYPE",
            "Transfer-Encoding",
            "connection",
            "User-Agent",
            "webhook-id",
            "Webhook-Timestamp",
        ] {
            assert!(Header::parse(key, "v", None).is_err(), "{key}");
        }
        assert!(Header::parse("X-Api-Key", "s3cr3t", None).is_ok());
        assert!(Header::parse("Authorization", "Bearer abc", None).is_ok());
    }

    #[test]
    fn patch_revalidates_the_whole() {
        let spec = WebhookSpec::from_json(&valid()).unwrap();
        let Value::Object(p) = json!({"method": "GET", "time_zone": "Europe/London"}) else {
            unreachable!()
        };
        let patched = spec.patched(&p).unwrap();
        assert_eq!(patched.method, Method::Get);
        assert_eq!(patched.name, spec.name);
        let Value::Object(bad) = json!({"url": "nope"}) else {
            unreachable!()
        };
        assert_eq!(spec.patched(&bad).unwrap_err().0[0].field, "url");
    }

    #[test]
    fn time_zones_resolve() {
        for tz in [
            "Asia/Kolkata",
            "Europe/London",
            "UTC",
            "America/St_Johns",
            "Asia/Kathmandu",
        ] {
            assert_eq!(TimeZone::parse(tz).unwrap().name(), tz);
        }
        assert!(TimeZone::parse("Not/AZone").is_err());
        assert!(TimeZone::parse("").is_err());
    }

    proptest! {
        #[test]
        fn header_values_with_line_breaks_never_pass(prefix in "[a-z]{0,5}", br in "[\r\n\0]", suffix in "[a-z]{0,5}") {
            let value = format!("{prefix}{br}{suffix}");
            prop_assert!(Header::parse("X-Test", &value, None).is_err());
        }

        #[test]
        fn header_keys_are_tokens(key in "\\PC{1,20}") {
            if Header::parse(&key, "v", None).is_ok() {
                prop_assert!(key.chars().all(is_token_char));
                prop_assert!(http::HeaderName::from_bytes(key.as_bytes()).is_ok());
            }
        }

        #[test]
        fn urls_that_pass_are_http_and_have_no_userinfo(s in "\\PC{0,60}") {
            for trigger in [None, Some(Trigger::CallMissed)] {
                if let Ok(u) = WebhookUrl::parse_for(&s, trigger) {
                    let sent = url::Url::parse(&u.render(&|_| ParamValue::Str("a b/@:?#".into())));
                    prop_assert!(sent.is_ok(), "{s:?}");
                    let sent = sent.unwrap();
                    prop_assert!(matches!(sent.scheme(), "http" | "https"));
                    prop_assert!(sent.username().is_empty() && sent.password().is_none());
                    prop_assert!(sent.host().is_some());
                }
            }
        }

        #[test]
        fn url_parse_never_panics(scheme in "(https?|ftp)", host in "[a-z0-9.@:\\[\\]-]{0,30}", path in "[ -~]{0,40}") {
            let _ = WebhookUrl::parse(&format!("{scheme}://{host}/{path}"));
        }
    }
}
