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
    let ctx = Context {
        trigger: spec.trigger,
        event: &event,
        event_id: "evt_sample",
        time_zone: &spec.time_zone,
    };
    let secret = Secret::generate();
    let request = build(spec, &ctx, "dlv_sample", Timestamp::now(), &[&secret]);
    Sample {
        trigger: spec.trigger,
        parameters: Value::Object(ctx.json()),
        request,
    }
}
