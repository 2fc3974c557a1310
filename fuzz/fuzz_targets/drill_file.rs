//! A drill file (TOML), read as if it sat beside the sample drills so that
//! it can name the sample map and roster: a drill or a message, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/drills/fuzz.toml"));
    if let Err(message) = pingji_scenarios::drill::parse(path, text) {
        assert!(!message.is_empty(), "an error without a message");
    }
});
