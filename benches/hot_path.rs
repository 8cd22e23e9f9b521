//! Micro-benchmarks of the pure hot path, per delivery: match an event against an account's
//! webhooks, render the receiver's parameters in the webhook's zone, encode and sign.
//!
//!     cargo bench --bench hot_path

use callhook::core::render::{Context, build};
use callhook::core::sample::sample_event;
use callhook::core::sign::Secret;
use callhook::core::trigger::Trigger;
use callhook::core::webhook::WebhookSpec;
use jiff::Timestamp;
use serde_json::json;

fn main() {
    divan::main();
}

fn spec(trigger: Trigger, method: &str, content_type: &str) -> WebhookSpec {
    let v = json!({"name": "bench", "trigger": trigger.id(), "url": "https://crm.example.com/hooks?src=pbx",
                   "method": method, "content_type": content_type, "time_zone": "Asia/Kolkata",
                   "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}]});
    WebhookSpec::from_json(v.as_object().unwrap()).unwrap()
}

/// Match + render + sign one `call_hangup` delivery, as the dispatcher does per attempt.
#[divan::bench(args = [("POST", "application/json"), ("POST", "application/x-www-form-urlencoded"), ("GET", "application/json")])]
fn match_render_sign(bencher: divan::Bencher, (method, content_type): (&str, &str)) {
    let event = sample_event(Trigger::CallHangup);
    let hooks: Vec<WebhookSpec> = Trigger::ALL
        .iter()
        .map(|t| spec(*t, method, content_type))
        .collect();
    let secret = Secret::generate();
    let now = Timestamp::now();
    bencher.bench(|| {
        let mut n = 0;
        for w in hooks
            .iter()
            .filter(|w| w.trigger.fires_for(&event) && w.accepts_call(&event))
        {
            let ctx = Context::of(w, w.trigger, &event, "evt_01");
            let req = build(w, &ctx, "dlv_01JDXAAAAAAAAAAAAAAAAAAAAA", now, &[&secret]);
            n += req.headers.len();
        }
        divan::black_box(n)
    });
}

/// Render + sign one `call_hangup` delivery with the standard body, and with a custom body of
/// ten rows (SPEC §11): the custom one may cost at most twice the standard one.
#[divan::bench(args = ["standard", "custom"])]
fn render_body(bencher: divan::Bencher, payload: &str) {
    let event = sample_event(Trigger::CallHangup);
    let rows = json!([
        {"key": "phone", "value": "$customer_number"},
        {"key": "lead.phone", "value": "${customer_number}"},
        {"key": "lead.source", "value": "pbx"},
        {"key": "lead.call", "value": "lead-${call_id}"},
        {"key": "duration", "value": "$duration"},
        {"key": "talk", "value": "$billsec"},
        {"key": "agent", "value": "$answered_extension_name ($answered_extension)"},
        {"key": "started", "value": "$start_stamp"},
        {"key": "ended", "value": "$end_stamp"},
        {"key": "note", "value": "Call $call_id from $customer_number to $did_number, $call_status"}
    ]);
    let v = if payload == "custom" {
        json!({"name": "bench", "trigger": "call_hangup", "url": "https://crm.example.com/hooks?src=pbx",
               "time_zone": "Asia/Kolkata", "payload": "custom", "body_fields": rows,
               "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}]})
    } else {
        json!({"name": "bench", "trigger": "call_hangup", "url": "https://crm.example.com/hooks?src=pbx",
               "time_zone": "Asia/Kolkata", "headers": [{"key": "X-Api-Key", "value": "s3cr3t"}]})
    };
    let w = WebhookSpec::from_json(v.as_object().unwrap()).unwrap();
    let secret = Secret::generate();
    let now = Timestamp::now();
    bencher.bench(|| {
        let ctx = Context::of(&w, w.trigger, &event, "evt_01");
        let req = build(&w, &ctx, "dlv_01JDXAAAAAAAAAAAAAAAAAAAAA", now, &[&secret]);
        divan::black_box(req.body.map_or(0, |b| b.len()))
    });
}

/// Parsing a stored event back (done once per attempt).
#[divan::bench]
fn parse_stored_event(bencher: divan::Bencher) {
    let stored = sample_event(Trigger::CallMissedOrAnswered).to_json();
    bencher
        .bench(|| callhook::core::event::CallEvent::from_json(divan::black_box(&stored)).unwrap());
}

/// Opening one sealed signing secret (SPEC §14): paid once per webhook loaded by a claim,
/// never per delivery.
#[divan::bench]
fn open_sealed_secret(bencher: divan::Bencher) {
    use callhook::core::seal::{Key, Keyring, webhook_secret_ad};
    let keys = Keyring::new(Key::generate(), vec![]);
    let ad = webhook_secret_ad("wh_01JDXAAAAAAAAAAAAAAAAAAAAA");
    let sealed = keys.seal_str(&ad, &Secret::generate().expose()).unwrap();
    bencher.bench(|| divan::black_box(keys.open_str(&ad, &sealed).unwrap()));
}

/// Masking the secret header values of one attempt's request before it is recorded.
#[divan::bench]
fn mask_secret_headers(bencher: divan::Bencher) {
    use callhook::core::webhook::mask_secret_headers;
    let w = spec(Trigger::CallHangup, "POST", "application/json");
    let event = sample_event(Trigger::CallHangup);
    let ctx = Context::of(&w, w.trigger, &event, "evt_01");
    let secret = Secret::generate();
    let req = build(
        &w,
        &ctx,
        "dlv_01JDXAAAAAAAAAAAAAAAAAAAAA",
        Timestamp::now(),
        &[&secret],
    );
    bencher.bench(|| {
        let mut headers = req.headers.clone();
        mask_secret_headers(&w.headers, &mut headers);
        divan::black_box(headers)
    });
}
