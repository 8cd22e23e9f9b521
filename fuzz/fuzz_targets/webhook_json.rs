//! A webhook as created (SPEC §3): any JSON object is refused with field errors or read,
//! never a panic; a webhook that is read reads back the same from its own JSON.
#![no_main]

use callhook::core::webhook::WebhookSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(data) else {
        return;
    };
    if let Ok(spec) = WebhookSpec::from_json(&obj) {
        let json = spec.to_json();
        let again = WebhookSpec::from_json(&json).expect("a webhook reads back");
        assert_eq!(again.to_json(), json);
    }
});
