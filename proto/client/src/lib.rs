//! Talking to Pingji dispatchers from Rust: what the console, the field
//! agent and live drills share, built on the `.proto` contract alone
//! (`pingji-proto` and tonic; no engine, no server).
//!
//! # Layout
//! - [`errors`]: what an error status says, from its details (reason, bad fields, owner, retry).
//! - [`events`]: events told in words from their typed bodies; unknown kinds shown, never dropped.
//! - [`labels`]: names of the API's enums, times and ages.
//! - [`roster_csv`]: reading the roster (who can be dispatched) from CSV into `AgentSpec`s.

#![forbid(unsafe_code)]

pub mod errors;
pub mod events;
pub mod labels;
pub mod roster_csv;
