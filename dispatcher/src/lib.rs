//! Pingji dispatcher: the dispatch engine (a deterministic state machine with
//! no I/O), its durable journal, and the gRPC server around them.
//!
//! # Layout
//! - [`ids`]: identifier newtypes and time.
//! - [`accounts`]: operator roles, the command-to-role table, tokens and their hashes.
//! - [`spatial`]: positions, great-circle distance, the spatial index of people.
//! - [`areas`]: the area hierarchy, GeoJSON import and point-in-polygon placement.
//! - [`policy`]: per-mode dispatch rules (timeouts, parallel offers, widening, surge assignment).
//! - [`assignment`]: min-cost matching of many waiting slots to people at once (surges).
//! - [`roster`]: people, roles, skills, status.
//! - [`roster_csv`]: reading the roster from CSV.
//! - [`incident`]: incidents, offers and assignments.
//! - [`plans`]: emergency plans (应急预案) and their files.
//! - [`event`]: the events that are the system of record.
//! - [`engine`]: decide / evolve / tick: the dispatch state machine.
//! - [`journal`]: the durable event journal (SQLite, Redis, or memory).
//! - [`shard`]: a shard of the city on Redis: its id, key names, connections.
//! - [`lease`]: the shard lease and fencing token: one owner at a time.
//! - [`locations`]: live locations written to Redis in batches.
//! - [`convert`]: wire (proto) types to and from domain types.
//! - [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
//! - [`lifecycle`]: tracing spans for each incident's life and each offer.
//! - [`observer`]: one observer of the journaled events feeding both.
//! - [`telemetry`]: logs (text or JSON) and OpenTelemetry export over OTLP.
//! - [`runtime`]: the task that owns the engine and journal; handles for callers.
//! - [`settings`]: the dispatcher's TOML settings, flags over them, validation.
//! - [`server`]: the gRPC services and `run`.
//! - [`redis_test_server`]: a real `redis-server` for tests and benches.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod areas;
pub mod assignment;
pub mod convert;
pub mod engine;
pub mod event;
pub mod ids;
pub mod incident;
pub mod journal;
pub mod lease;
pub mod lifecycle;
pub mod locations;
pub mod metrics;
pub mod observer;
pub mod plans;
pub mod policy;
pub mod redis_test_server;
pub mod roster;
pub mod roster_csv;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod shard;
pub mod spatial;
pub mod telemetry;
