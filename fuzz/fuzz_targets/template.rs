//! `$name` templates (SPEC §11): any text, for any trigger, is refused with a reason or
//! parsed, never a panic.
#![no_main]

use callhook::core::template::Template;
use callhook::core::trigger::Trigger;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    let trigger = Trigger::ALL[pick as usize % Trigger::ALL.len()];
    let _ = Template::parse(src, trigger);
});
