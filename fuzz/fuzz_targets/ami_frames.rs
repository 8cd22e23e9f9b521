//! The Asterisk manager interface's frames: any bytes, cut anywhere, parse without a panic
//! and into the same items as when they arrive in one piece.
#![no_main]

use callhook::connectors::ami::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    Parser::new().feed(bytes, &mut whole);
    let mut pieces = Vec::new();
    let mut p = Parser::new();
    for chunk in bytes.chunks(usize::from(cut).max(1)) {
        p.feed(chunk, &mut pieces);
    }
    assert_eq!(whole, pieces);
});
