//! Talking to Pingji dispatchers from Rust: what the console, the field
//! agent and live drills share, built on the `.proto` contract alone
//! (`pingji-proto` and tonic; no engine, no server).
//!
//! # Layout
//! - [`auth`]: the operator's token (and the shard a call is for) on every call.
//! - [`tls`]: TLS settings from `--ca`, `--client-cert`, `--client-key`, and advice on a failed handshake.
//! - [`owner`]: reading a redirect to the dispatcher that owns the shard; server lists.
//! - [`errors`]: what an error status says, from its details (reason, bad fields, owner, retry).
//! - [`events`]: events told in words from their typed bodies; unknown kinds shown, never dropped.
//! - [`labels`]: names of the API's enums, times and ages.
//! - [`roster_csv`]: reading the roster (who can be dispatched) from CSV into `AgentSpec`s.

#![forbid(unsafe_code)]

pub mod auth;
pub mod errors;
pub mod events;
pub mod labels;
pub mod owner;
pub mod roster_csv;
pub mod tls;
