//! A call event as posted (SPEC §4): any JSON is refused with field errors or read, never a
//! panic; an event that is read reads back the same from its own JSON.
#![no_main]

use callhook::core::event::CallEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(event) = CallEvent::from_json(&value) {
        let again = CallEvent::from_json(&event.to_json()).expect("an event reads back");
        assert_eq!(again.to_json(), event.to_json());
    }
});
