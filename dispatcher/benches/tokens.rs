//! Tokens: what issuing and checking one costs (issue #7). A person's hello
//! and an operator's first call verify an argon2id hash; imports hash one
//! token per person.
//!
//! Run with `cargo bench -p pingji-dispatcher --bench tokens` (release
//! build). Prints figures; asserts nothing about speed.

use std::time::Instant;

use pingji_dispatcher::tokens::{hash_token, new_agent_token, verify_token};

const ROUNDS: u32 = 2_000;

fn main() {
    let tokens: Vec<String> = (0..ROUNDS).map(|_| new_agent_token()).collect();
    let started = Instant::now();
    let hashes: Vec<String> = tokens.iter().map(|token| hash_token(token).unwrap_or_default()).collect();
    let hash_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    let started = Instant::now();
    let valid = tokens.iter().zip(&hashes).filter(|(token, hash)| verify_token(token, hash)).count();
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    let started = Instant::now();
    let wrong = tokens.iter().zip(hashes.iter().rev()).filter(|(token, hash)| verify_token(token, hash)).count();
    let refuse_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("{ROUNDS} tokens, argon2id (256 KiB, 1 pass), one core:");
    println!("  issue (random + hash)  {hash_us:8.0} µs each   ({:.0} people/s in an import)", 1e6 / hash_us);
    println!("  verify a right token   {verify_us:8.0} µs each   ({:.0} reconnects/s per core; {valid} valid)", 1e6 / verify_us);
    println!("  refuse a wrong token   {refuse_us:8.0} µs each   ({wrong} wrongly valid)");
}
