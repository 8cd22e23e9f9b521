//! Parameters → the HTTP request a receiver gets (SPEC §5, §6, §11): values in the webhook's
//! time zone and time format, the standard parameters and the admin's body rows in JSON /
//! form / query encodings, the URL and custom headers with their references filled in, and
//! the signature headers. Previews, samples, test sends and deliveries all come through
//! [`build`].

use std::borrow::Cow;

use jiff::Timestamp;
use serde_json::Value;

use super::event::{AnswerKind, CallEvent, DialVia, EventDetail};
use super::shape::{Payload, TimeFormat, insert_nested};
use super::sign::{Secret, signature_header};
use super::trigger::{Param, Trigger};
use super::webhook::{ContentType, Method, TimeZone, WebhookSpec};

pub const USER_AGENT: &str = concat!("callhook/", env!("CARGO_PKG_VERSION"));

/// One parameter's value, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    List(&'a [String]),
}

impl<'a> ParamValue<'a> {
    fn opt_str(s: &'a Option<String>) -> Self {
        s.as_deref()
            .map_or(ParamValue::Null, |s| ParamValue::Str(Cow::Borrowed(s)))
    }

    fn opt_int(i: Option<i64>) -> Self {
        i.map_or(ParamValue::Null, ParamValue::Int)
    }

    fn opt_list(l: &'a Option<Vec<String>>) -> Self {
        l.as_deref().map_or(ParamValue::Null, ParamValue::List)
    }

    fn stamp(t: Option<Timestamp>, tz: &TimeZone, format: TimeFormat) -> Self {
        t.map_or(ParamValue::Null, |t| match format {
            TimeFormat::Rfc3339 => ParamValue::Str(Cow::Owned(format_stamp(t, tz))),
            TimeFormat::Local => ParamValue::Str(Cow::Owned(format_local(t, tz))),
            TimeFormat::Unix => ParamValue::Int(t.as_second()),
        })
    }

    /// The JSON value: strings, numbers, arrays of strings, or null.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Null => Value::Null,
            ParamValue::Str(s) => Value::String(s.to_string()),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::List(l) => Value::from(l.to_vec()),
        }
    }

    /// The form / query spelling: empty when unknown, lists comma-joined.
    pub fn to_form(&self) -> Cow<'_, str> {
        match self {
            ParamValue::Null => Cow::Borrowed(""),
            ParamValue::Str(s) => Cow::Borrowed(s),
            ParamValue::Int(i) => Cow::Owned(i.to_string()),
            ParamValue::List(l) => Cow::Owned(l.join(",")),
        }
    }
}

/// RFC 3339 in `tz` with its offset: `2026-11-27T09:30:05+05:30`; fractional seconds only when
/// the event had them.
pub fn format_stamp(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.tz().clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
        .to_string()
}

/// Wall-clock time in `tz` without an offset: `2026-11-27 09:30:05` (SPEC §11, `local`).
pub fn format_local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.tz().clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Everything a parameter's value can come from.
pub struct Context<'a> {
    pub trigger: Trigger,
    pub event: &'a CallEvent,
    /// The event's id as posted, or the one callhook gave it.
    pub event_id: &'a str,
    pub time_zone: &'a TimeZone,
    pub time_format: TimeFormat,
}

impl<'a> Context<'a> {
    /// The values `spec`'s requests carry for `event`, as trigger `trigger` sees it.
    pub fn of(
        spec: &'a WebhookSpec,
        trigger: Trigger,
        event: &'a CallEvent,
        event_id: &'a str,
    ) -> Context<'a> {
        Context {
            trigger,
            event,
            event_id,
            time_zone: &spec.time_zone,
            time_format: spec.time_format,
        }
    }

    /// The value of one parameter (SPEC §5, "Values").
    pub fn value(&self, p: Param) -> ParamValue<'a> {
        use ParamValue as V;
        let ev = self.event;
        let (tz, tf) = (self.time_zone, self.time_format);
        let (answered, dialed, dtmf, ended) = match &ev.detail {
            EventDetail::Received => (None, None, None, None),
            EventDetail::Answered(a) => (Some(a), None, None, None),
            EventDetail::Dialed(d) => (None, Some(d), None, None),
            EventDetail::Dtmf(d) => (None, None, Some(d), None),
            EventDetail::Ended(e) => (None, None, None, Some(e)),
        };
        // The id and name of what answered (IVR, ring group, queue), when that is what we want.
        let answered_by_id = answered.map_or(V::Null, |a| V::opt_str(&a.id));
        let answered_by_name = answered.map_or(V::Null, |a| V::opt_str(&a.name));
        match p {
            Param::EventId => V::Str(Cow::Borrowed(self.event_id)),
            Param::Trigger => V::Str(Cow::Borrowed(self.trigger.id())),
            Param::CallId => V::Str(Cow::Borrowed(ev.call.call_id.as_str())),
            Param::LegId => V::opt_str(&ev.call.leg_id),
            Param::CallType => V::Str(Cow::Borrowed(ev.call.call_type.as_str())),
            Param::DidNumber => V::Str(Cow::Borrowed(ev.call.did_number.as_str())),
            Param::CustomerNumber => ev
                .call
                .customer_number
                .as_ref()
                .map_or(V::Null, |n| V::Str(Cow::Borrowed(n.as_str()))),
            Param::OccurredAt | Param::PressedAt | Param::DialedAt => {
                V::stamp(Some(ev.occurred_at), tz, tf)
            }
            Param::TimeZone => V::Str(Cow::Borrowed(tz.name())),
            Param::StartStamp => V::stamp(ev.call.started_at, tz, tf),
            Param::AnswerStamp => match (answered, ended) {
                (Some(_), _) => V::stamp(Some(ev.occurred_at), tz, tf),
                (None, Some(e)) => V::stamp(e.answered_at, tz, tf),
                (None, None) => V::Null,
            },
            Param::EndStamp => V::stamp(ended.and_then(|e| e.ended_at), tz, tf),
            Param::IvrId => match dtmf {
                Some(d) => V::opt_str(&d.ivr_id),
                None => answered_by_id,
            },
            Param::IvrName => match dtmf {
                Some(d) => V::opt_str(&d.ivr_name),
                None => answered_by_name,
            },
            Param::RingGroupId | Param::QueueId => answered_by_id,
            Param::RingGroupName | Param::QueueName => answered_by_name,
            Param::Extension => answered.map_or(V::Null, |a| V::opt_str(&a.extension)),
            Param::ExtensionName => answered.map_or(V::Null, |a| V::opt_str(&a.extension_name)),
            Param::Via => match (answered, dialed) {
                (Some(a), _) => match a.kind {
                    AnswerKind::Extension => V::Str(Cow::Borrowed(DialVia::Direct.as_str())),
                    AnswerKind::RingGroup | AnswerKind::Queue => {
                        V::Str(Cow::Borrowed(a.kind.as_str()))
                    }
                    AnswerKind::Ivr | AnswerKind::Customer => V::Null,
                },
                (None, Some(d)) => V::Str(Cow::Borrowed(d.via.as_str())),
                (None, None) => V::Null,
            },
            Param::ViaId | Param::ViaName => match (answered, dialed) {
                (Some(a), _) => match a.kind {
                    AnswerKind::RingGroup | AnswerKind::Queue if p == Param::ViaId => {
                        answered_by_id
                    }
                    AnswerKind::RingGroup | AnswerKind::Queue => answered_by_name,
                    AnswerKind::Ivr | AnswerKind::Extension | AnswerKind::Customer => V::Null,
                },
                (None, Some(d)) => V::opt_str(if p == Param::ViaId { &d.id } else { &d.name }),
                (None, None) => V::Null,
            },
            Param::RingTime => answered.map_or(V::Null, |a| V::opt_int(a.ring_time)),
            Param::HoldTime => answered.map_or(V::Null, |a| V::opt_int(a.hold_time)),
            Param::RefId => answered.map_or(V::Null, |a| V::opt_str(&a.ref_id)),
            Param::Duration => ended.map_or(V::Null, |e| V::opt_int(e.duration)),
            Param::Billsec => ended.map_or(V::Null, |e| V::opt_int(e.billsec)),
            Param::CallStatus => {
                ended.map_or(V::Null, |e| V::Str(Cow::Borrowed(e.status.as_str())))
            }
            Param::AnsweredExtension => {
                ended.map_or(V::Null, |e| V::opt_str(&e.answered_extension))
            }
            Param::AnsweredExtensionName => {
                ended.map_or(V::Null, |e| V::opt_str(&e.answered_extension_name))
            }
            Param::MissedExtensions => ended.map_or(V::Null, |e| V::opt_list(&e.missed_extensions)),
            Param::LastStage => ended
                .and_then(|e| e.last_stage)
                .map_or(V::Null, |s| V::Str(Cow::Borrowed(s.as_str()))),
            Param::HangupCause => ended.map_or(V::Null, |e| V::opt_str(&e.hangup_cause)),
            Param::HangupBy => ended
                .and_then(|e| e.hangup_by)
                .map_or(V::Null, |h| V::Str(Cow::Borrowed(h.as_str()))),
            Param::RecordingUrl => ended.map_or(V::Null, |e| V::opt_str(&e.recording_url)),
            Param::Digit => dtmf.map_or(V::Null, |d| V::Str(Cow::Borrowed(&d.digit))),
            Param::Digits => dtmf.map_or(V::Null, |d| V::opt_str(&d.digits)),
            Param::Extensions => dialed.map_or(V::Null, |d| V::List(&d.extensions)),
        }
    }

    /// Every parameter of the trigger with its value, in the documented order.
    pub fn params(&self) -> Vec<(&'static str, ParamValue<'a>)> {
        self.trigger
            .params()
            .map(|p| (p.name(), self.value(p)))
            .collect()
    }

    /// The parameters as one JSON object.
    pub fn json(&self) -> serde_json::Map<String, Value> {
        self.params()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_json()))
            .collect()
    }

    /// The parameters form-encoded (`a=1&b=`), for form bodies and GET queries.
    pub fn form(&self) -> String {
        let params = self.params();
        let mut ser = url::form_urlencoded::Serializer::new(String::with_capacity(512));
        for (k, v) in &params {
            ser.append_pair(k, &v.to_form());
        }
        ser.finish()
    }
}

/// A request ready to send (and to show in the delivery log).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRequest {
    pub method: Method,
    pub url: String,
    /// In the order they are sent.
    pub headers: Vec<(String, String)>,
    /// `None` for GET.
    pub body: Option<String>,
}

/// The `(key, value)` pairs a form body or query carries: the parameters (for a standard
/// payload) then the body rows, keys as written.
fn form_pairs(spec: &WebhookSpec, ctx: &Context) -> String {
    let value = |p: Param| ctx.value(p);
    let mut ser = url::form_urlencoded::Serializer::new(String::with_capacity(512));
    if spec.payload == Payload::Standard {
        for p in ctx.trigger.params() {
            ser.append_pair(p.name(), &ctx.value(p).to_form());
        }
    }
    for row in &spec.body_fields {
        ser.append_pair(&row.key, &row.form_value(&value));
    }
    ser.finish()
}

/// The JSON body: the parameters (for a standard payload) then the body rows, dotted keys
/// nested.
fn json_body(spec: &WebhookSpec, ctx: &Context) -> String {
    let value = |p: Param| ctx.value(p);
    let mut m = match spec.payload {
        Payload::Standard => ctx.json(),
        Payload::Custom => serde_json::Map::new(),
    };
    for row in &spec.body_fields {
        insert_nested(&mut m, &row.key, row.json_value(&value));
    }
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

/// The body (or, for GET, the query we append) and the final URL, unsigned.
pub fn encode(spec: &WebhookSpec, ctx: &Context) -> (String, Option<String>, String) {
    let url = spec.url.render(&|p| ctx.value(p));
    match spec.method {
        Method::Get => {
            let query = form_pairs(spec, ctx);
            let url = match url::Url::parse(&url) {
                Ok(_) if query.is_empty() => url,
                Ok(mut u) => {
                    let joined = match u.query() {
                        Some(q) if !q.is_empty() => format!("{q}&{query}"),
                        _ => query.clone(),
                    };
                    u.set_query(Some(&joined));
                    u.to_string()
                }
                // Cannot happen for a URL checked at save (values are percent-encoded); kept
                // well-formed anyway, without the fragment logic.
                Err(_) => {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}{query}")
                }
            };
            (url, None, query)
        }
        Method::Post => {
            let body = match spec.content_type {
                ContentType::Json => json_body(spec, ctx),
                ContentType::Form => form_pairs(spec, ctx),
            };
            (url, Some(body.clone()), body)
        }
    }
}

/// Builds the whole signed request for one attempt of delivery `delivery_id`, sent at `now`.
pub fn build(
    spec: &WebhookSpec,
    ctx: &Context,
    delivery_id: &str,
    now: Timestamp,
    secrets: &[&Secret],
) -> WebhookRequest {
    let (url, body, content) = encode(spec, ctx);
    let ts = now.as_second();
    let mut headers = Vec::with_capacity(spec.headers.len() + 5);
    headers.push(("User-Agent".to_owned(), USER_AGENT.to_owned()));
    if body.is_some() {
        headers.push((
            "Content-Type".to_owned(),
            spec.content_type.as_str().to_owned(),
        ));
    }
    for h in &spec.headers {
        headers.push((h.key.clone(), h.render(&|p| ctx.value(p))));
    }
    headers.push(("webhook-id".to_owned(), delivery_id.to_owned()));
    headers.push(("webhook-timestamp".to_owned(), ts.to_string()));
    headers.push((
        "webhook-signature".to_owned(),
        signature_header(secrets, delivery_id, ts, content.as_bytes()),
    ));
    WebhookRequest {
        method: spec.method,
        url,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::sample_event;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// For any template and any trigger's event, rendering never panics, and a JSON body
        /// always parses back with the expected keys in order.
        #[test]
        fn custom_and_standard_json_bodies_parse_back_with_their_keys(
            t in 0..Trigger::ALL.len(),
            custom in any::<bool>(),
            rows in proptest::collection::vec(
                (
                    "(a|b|lead|lead\\.x|lead\\.y|c\\.d\\.e|z)",
                    proptest::collection::vec(
                        prop_oneof![
                            "[a-z .{}0-9]{0,5}",
                            Just("$$".to_owned()),
                            Just("${call_id}".to_owned()),
                            Just("$customer_number".to_owned()),
                            Just("$occurred_at".to_owned()),
                            Just("$leg_id".to_owned()),
                            "[$a-z_{}]{0,6}",
                        ],
                        0..4,
                    )
                    .prop_map(|parts| parts.concat()),
                ),
                0..8,
            ),
        ) {
            let trigger = Trigger::ALL[t];
            let body: Vec<Value> = rows.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
            let Value::Object(m) = json!({"name": "n", "trigger": trigger.id(),
                "url": "https://x.example/$call_id", "payload": if custom { "custom" } else { "standard" },
                "body_fields": body, "headers": [{"key": "X-V", "value": rows.first().map_or("v", |r| r.1.as_str())}]})
            else { unreachable!() };
            let Ok(spec) = WebhookSpec::from_json(&m) else { return Ok(()) };
            let ev = sample_event(trigger);
            let ctx = Context::of(&spec, trigger, &ev, "ev");
            let req = build(&spec, &ctx, "dlv_1", Timestamp::UNIX_EPOCH, &[&Secret::generate()]);
            let parsed: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
            let keys: Vec<&str> = parsed.as_object().unwrap().keys().map(String::as_str).collect();
            let mut want: Vec<&str> = if custom { Vec::new() } else { trigger.params().map(Param::name).collect() };
            for r in &spec.body_fields {
                let top = r.key.split('.').next().unwrap();
                if !want.contains(&top) {
                    want.push(top);
                }
            }
            prop_assert_eq!(keys, want);
            prop_assert!(!req.headers.iter().any(|(_, v)| v.chars().any(char::is_control)));
        }
    }

    fn ctx_json(trigger: Trigger, ev: &CallEvent, tz: &str) -> serde_json::Map<String, Value> {
        let tz = TimeZone::parse(tz).unwrap();
        Context {
            trigger,
            event: ev,
            event_id: "ev-1",
            time_zone: &tz,
            time_format: TimeFormat::Rfc3339,
        }
        .json()
    }

    #[test]
    fn every_trigger_renders_every_key_in_order() {
        for t in Trigger::ALL {
            let ev = sample_event(t);
            let m = ctx_json(t, &ev, "Asia/Kolkata");
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            let want: Vec<&str> = t.params().map(Param::name).collect();
            assert_eq!(keys, want, "{t}");
            assert_eq!(m["trigger"], t.id());
            assert!(
                t.fires_for(&ev),
                "{t}: the sample must fire its own trigger"
            );
        }
    }

    #[test]
    fn timestamps_use_the_zone_and_its_offset() {
        let ev = sample_event(Trigger::AnsweredOnIvr);
        let at = ev.occurred_at;
        assert_eq!(
            format_stamp(at, &TimeZone::parse("Asia/Kolkata").unwrap()),
            "2026-11-27T09:30:05+05:30"
        );
        assert_eq!(
            format_stamp(at, &TimeZone::parse("UTC").unwrap()),
            "2026-11-27T04:00:05+00:00"
        );
        assert_eq!(
            format_stamp(at, &TimeZone::parse("Asia/Kathmandu").unwrap()),
            "2026-11-27T09:45:05+05:45"
        );
        // Europe/London across the October 2026 switch (25 October, 01:00 UTC).
        let london = TimeZone::parse("Europe/London").unwrap();
        let before: Timestamp = "2026-10-25T00:59:59Z".parse().unwrap();
        let after: Timestamp = "2026-10-25T01:00:00Z".parse().unwrap();
        assert_eq!(format_stamp(before, &london), "2026-10-25T01:59:59+01:00");
        assert_eq!(format_stamp(after, &london), "2026-10-25T01:00:00+00:00");
        let frac: Timestamp = "2026-11-27T04:00:05.25Z".parse().unwrap();
        assert_eq!(
            format_stamp(frac, &TimeZone::utc()),
            "2026-11-27T04:00:05.25+00:00"
        );
    }

    #[test]
    fn answered_by_extension_reports_the_route() {
        let mut ev = sample_event(Trigger::AnsweredOnQueue);
        let m = ctx_json(Trigger::AnsweredByExtension, &ev, "UTC");
        assert_eq!(m["via"], "queue");
        assert_eq!(m["via_id"], "q_support");
        let EventDetail::Answered(a) = &mut ev.detail else {
            panic!()
        };
        a.kind = AnswerKind::Extension;
        let m = ctx_json(Trigger::AnsweredByExtension, &ev, "UTC");
        assert_eq!(m["via"], "direct");
        assert_eq!(m["via_id"], Value::Null);
    }

    #[test]
    fn form_encoding_joins_lists_and_blanks_nulls() {
        let ev = sample_event(Trigger::DialedOnExtension);
        let tz = TimeZone::utc();
        let ctx = Context {
            trigger: Trigger::DialedOnExtension,
            event: &ev,
            event_id: "e 1",
            time_zone: &tz,
            time_format: TimeFormat::Rfc3339,
        };
        let form = ctx.form();
        assert!(
            form.starts_with("event_id=e+1&trigger=dialed_on_extension&"),
            "{form}"
        );
        assert!(form.contains("&extensions=101%2C102&"), "{form}");
        assert!(form.contains("&leg_id=&"), "{form}");
        let json = ctx.json();
        assert_eq!(json["extensions"], json!(["101", "102"]));
        assert_eq!(json["leg_id"], Value::Null);
    }

    #[test]
    fn get_appends_to_the_urls_own_query_and_signs_only_what_it_appended() {
        let Value::Object(m) = json!({"name": "n", "trigger": "dtmf_option", "method": "GET",
            "url": "https://crm.example.com/hook?src=pbx#frag"})
        else {
            unreachable!()
        };
        let spec = WebhookSpec::from_json(&m).unwrap();
        let ev = sample_event(Trigger::DtmfOption);
        let ctx = Context::of(&spec, Trigger::DtmfOption, &ev, "ev");
        let (url, body, content) = encode(&spec, &ctx);
        assert!(body.is_none());
        assert!(
            url.starts_with("https://crm.example.com/hook?src=pbx&event_id=ev&"),
            "{url}"
        );
        assert!(url.ends_with("#frag"), "{url}");
        assert!(content.starts_with("event_id=ev&"));
        assert!(url.contains(&content));
    }

    #[test]
    fn headers_carry_agent_type_custom_and_signature() {
        let Value::Object(m) = json!({"name": "n", "trigger": "call_received", "url": "https://x.example/",
            "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}]})
        else {
            unreachable!()
        };
        let spec = WebhookSpec::from_json(&m).unwrap();
        let ev = sample_event(Trigger::CallReceived);
        let ctx = Context::of(&spec, Trigger::CallReceived, &ev, "ev");
        let secret = Secret::generate();
        let req = build(
            &spec,
            &ctx,
            "dlv_1",
            "2026-11-27T04:00:05Z".parse().unwrap(),
            &[&secret],
        );
        let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "User-Agent",
                "Content-Type",
                "X-Api-Key",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature"
            ]
        );
        assert_eq!(req.headers[0].1, USER_AGENT);
        assert_eq!(req.headers[4].1, "1795752005");
        assert!(secret.verify(
            "dlv_1",
            1795752005,
            req.body.as_deref().unwrap().as_bytes(),
            &req.headers[5].1
        ));
    }
}
