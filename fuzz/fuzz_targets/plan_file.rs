//! An emergency plan file (TOML): a plan or a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingji_engine::plans::parse_plan;

fuzz_target!(|text: &str| {
    if let Err(message) = parse_plan(text) {
        assert!(!message.is_empty(), "an error without a message");
    }
});
