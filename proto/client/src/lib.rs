//! Talking to Pingji dispatchers from Rust: what the console, the field
//! agent and live drills share, built on the `.proto` contract alone
//! (`pingji-proto` and tonic; no engine, no server).
//!
//! # Layout
//! - [`connect`]: [`connect::ConnectOptions`] (servers, TLS, token,
//!   timeouts), [`connect::Connection`] and its `call`, through which every
//!   command call follows a redirect to the shard's owner, and
//!   [`connect::Route`], the one place a redirect is acted on.
//! - [`backoff`]: capped exponential backoff with jitter, for every reconnect.
//! - [`event_stream`]: `WatchEvents` that resumes after the last event seen.
//! - [`field`]: `FieldService`, a person's session in the browser's shape
//!   (server stream + unary actions with session id and idempotency key).
//! - [`agent_stream`]: `WatchAgents`, the people a live view shows, pushed
//!   and kept whole; opened again after a break.
//! - [`args`] (feature `clap`): [`args::ConnectArgs`], the connection flags
//!   of every client binary.
//! - [`auth`]: the operator's token (and the shard a call is for) on every call.
//! - [`tls`]: TLS settings from `--ca`, `--client-cert`, `--client-key`, and
//!   advice on a failed handshake.
//! - [`owner`]: reading a redirect to the dispatcher that owns the shard; server lists.
//! - [`errors`]: what an error status says, from its details (reason, bad fields, owner, retry).
//! - [`events`]: events told in words from their typed bodies; unknown kinds shown, never dropped.
//! - [`labels`]: names of the API's enums, times and ages.
//! - [`svg`]: SVG charts as text (axes, legends, text widths), shared with
//!   the drill report, and the activity report's charts.
//! - [`roster_csv`]: reading the roster (who can be dispatched) from CSV into `AgentSpec`s.
//! - [`supplies`]: depots and stock to and from CSV, supply events in words.
//! - [`rosters`]: duty roster events, weekdays and local times in words.
//! - [`shelters`]: shelters to and from CSV, shelter events in words.

#![forbid(unsafe_code)]

pub mod agent_stream;
#[cfg(feature = "clap")]
pub mod args;
pub mod auth;
pub mod backoff;
pub mod connect;
pub mod errors;
pub mod event_stream;
pub mod events;
pub mod field;
pub mod labels;
pub mod owner;
pub mod roster_csv;
pub mod rosters;
pub mod shelters;
pub mod supplies;
pub mod svg;
pub mod tls;
