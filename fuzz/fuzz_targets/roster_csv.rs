//! A roster file: every row is a person or a numbered problem, never a panic;
//! the strict and lenient readers agree on the good rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingji_client::roster_csv::{parse_roster_csv, parse_roster_csv_lenient};

fuzz_target!(|text: &str| {
    let (people, problems) = parse_roster_csv_lenient(text);
    match parse_roster_csv(text) {
        Ok(strict) => {
            assert!(problems.is_empty(), "strict accepted what lenient flagged");
            assert_eq!(strict.len(), people.len());
        }
        Err(errors) => assert!(!errors.to_string().is_empty(), "an error without a message"),
    }
});
