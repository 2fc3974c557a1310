//! Pingji dispatcher: the server around the dispatch engine (`pingji-engine`):
//! its durable journal, the gRPC services, tokens, metrics and shards.
//!
//! # Layout
//! - [`tokens`]: making tokens, their hashes, the table calls are checked against.
//! - [`journal`]: the durable event journal (SQLite, Redis, or memory).
//! - [`shard`]: a shard of the city on Redis: its id, key names, connections.
//! - [`lease`]: the shard lease and fencing token: one owner at a time.
//! - [`locations`]: live locations written to Redis in batches.
//! - [`convert`]: wire (proto) types to and from domain types.
//! - [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
//! - [`lifecycle`]: tracing spans for each incident's life and each offer.
//! - [`observer`]: one observer of the journaled events feeding both.
//! - [`telemetry`]: logs (text or JSON) and OpenTelemetry export over OTLP.
//! - [`open_files`]: the process's open-file limit, raised at start; what
//!   it leaves for client connections.
//! - [`eido`]: NENA EIDO documents: an incident exported, another system's imported.
//! - [`photos`]: people's photos, checked, stripped of EXIF, stored by their hash.
//! - [`photo_retention`]: how long photos are kept, and the task deleting them.
//! - `photo_bucket` (feature `s3`): photos in an S3-compatible bucket.
//! - [`sessions`]: people's session queues, bounded in messages and bytes;
//!   sessions whose app stopped reading.
//! - [`runtime`]: the task that owns the engine and journal; handles for callers.
//! - [`settings`]: the dispatcher's TOML settings, flags over them, validation.
//! - [`server`]: the gRPC services and `run`.
//! - [`cap`]: CAP 1.2 alerts out (XML, Atom, webhooks) and in (`/cap/inbound`).
//! - [`push`]: Web Push to the installed phone app (VAPID, RFC 8291
//!   encryption), and the subscriptions the app registers.
//! - [`webhooks`]: outbound webhooks for partner systems (CloudEvents,
//!   signed, in order, retried, dead letters, replay).
//! - [`notify`]: the escalation ladder (push, SMS, voice) through the
//!   deployment's gateways, and their signed inbound webhook.

#![forbid(unsafe_code)]

pub mod cap;
pub mod convert;
pub mod eido;
pub mod journal;
pub mod lease;
pub mod lifecycle;
pub mod locations;
pub mod metrics;
pub mod notify;
pub mod observer;
pub mod open_files;
#[cfg(feature = "s3")]
pub mod photo_bucket;
pub mod photo_retention;
pub mod photos;
pub mod posting;
pub mod push;
pub mod runtime;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod shard;
pub mod side_store;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;
