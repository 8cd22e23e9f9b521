//! Samples of what a receiver gets: the trigger sample endpoint and the web form's live
//! preview render through here, with the same renderer as real deliveries.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::core::render::{Context, WebhookRequest, build};
use crate::core::sample::sample_event;
use crate::core::sign::Secret;
use crate::core::trigger::Trigger;
use crate::core::validate::FieldErrors;
use crate::core::webhook::WebhookSpec;

/// How to render a sample: the fields of a webhook that shape its requests. Empty or absent
/// fields take their defaults.
#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    pub method: Option<String>,
    pub content_type: Option<String>,
    pub time_zone: Option<String>,
    /// The receiver's URL (default `https://receiver.example.com/webhook`).
    pub url: Option<String>,
    pub time_format: Option<String>,
}

/// A sample spec for `trigger` from `options`, validated like a webhook.
pub fn sample_spec(trigger: Trigger, options: &SampleOptions) -> Result<WebhookSpec, FieldErrors> {
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), json!("sample"));
    obj.insert("trigger".into(), json!(trigger.id()));
    obj.insert(
        "url".into(),
        json!(
            options
                .url
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or("https://receiver.example.com/webhook")
        ),
    );
    for (key, v) in [
        ("method", &options.method),
        ("content_type", &options.content_type),
        ("time_zone", &options.time_zone),
        ("time_format", &options.time_format),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            obj.insert(key.into(), json!(v));
        }
    }
    WebhookSpec::from_json(&obj)
}

/// What a receiver would get for one sample event of a trigger.
#[derive(Debug, Clone)]
pub struct Sample {
    pub trigger: Trigger,
    /// The parameters as JSON, in order.
    pub parameters: Value,
    /// The whole request, signed with a throwaway secret.
    pub request: WebhookRequest,
}

/// Renders and signs (with a throwaway secret) one sample event for `spec`; nothing is sent.
pub fn render_sample(spec: &WebhookSpec) -> Sample {
    let event = sample_event(spec.trigger);
    let ctx = Context::of(spec, spec.trigger, &event, "evt_sample");
    let secret = Secret::generate();
    let request = build(spec, &ctx, "dlv_sample", Timestamp::now(), &[&secret]);
    Sample {
        trigger: spec.trigger,
        parameters: Value::Object(ctx.json()),
        request,
    }
}

/// A preview of an unsaved webhook: what its receiver would get for a sample event, and the
/// fields that were left at their defaults because they are not valid yet.
#[derive(Debug, Clone)]
pub struct Preview {
    /// `None` when not even the defaults made a webhook (it does not happen with the
    /// fields callhook knows).
    pub request: Option<WebhookRequest>,
    /// The fields shown with their defaults (`url`, `time_zone`, `headers[1]`, …).
    pub skipped: Vec<String>,
}

/// Renders a sample request for a webhook body as it stands, half-typed or not: each field
/// that is not valid yet falls back to its default (a bad header or body row is left out),
/// and says so. The web form's live preview shows this.
pub fn preview(body: &serde_json::Map<String, Value>) -> Preview {
    let mut obj = body.clone();
    // Which numbers the account owns is not the preview's business; the sample has its own.
    obj.remove("numbers");
    if obj
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty() || n.chars().count() > 100)
    {
        obj.insert("name".into(), json!("preview"));
    }
    let mut skipped = Vec::new();
    // Each round drops what the last one found wrong; a handful of rounds always suffices
    // (a dropped trigger, say, can only make templates wrong once more).
    for _ in 0..4 {
        let errors = match WebhookSpec::from_json(&obj) {
            Ok(spec) => {
                return Preview {
                    request: Some(render_sample(&spec).request),
                    skipped,
                };
            }
            Err(errors) => errors,
        };
        let mut rows: Vec<(String, usize)> = Vec::new();
        for e in &errors.0 {
            let top = e.field.split(['.', '[']).next().unwrap_or("").to_owned();
            let index = e
                .field
                .strip_prefix(&format!("{top}["))
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok());
            match (top.as_str(), index) {
                ("headers" | "body_fields", Some(i)) => rows.push((top.clone(), i)),
                ("url", _) => {
                    obj.insert("url".into(), json!("https://receiver.example.com/webhook"));
                }
                ("trigger", _) => {
                    obj.insert("trigger".into(), json!(Trigger::CallReceived.id()));
                }
                ("body_fields", None) => {
                    obj.remove("payload");
                    obj.remove("body_fields");
                }
                ("", _) => {}
                (other, _) => {
                    obj.remove(other);
                }
            }
            if !skipped.contains(&top) && !top.is_empty() {
                skipped.push(top);
            }
        }
        rows.sort();
        rows.dedup();
        for (list, i) in rows.into_iter().rev() {
            if let Some(Value::Array(a)) = obj.get_mut(&list)
                && i < a.len()
            {
                a.remove(i);
            }
        }
    }
    Preview {
        request: None,
        skipped,
    }
}
