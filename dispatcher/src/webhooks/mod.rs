//! Outbound webhooks for partner systems (110/119/120 dispatch, partner
//! platforms): an admin registers a subscriber (a URL, the event kinds and
//! areas it wants, a signing secret), and the dispatcher posts every
//! journaled event that matches to it as a CloudEvents 1.0 JSON document,
//! HMAC-SHA256 signed, strictly in seq order, at least once.
//!
//! Each subscriber has one delivery task and a durable cursor (the next
//! seq to consider), kept beside the journal: a restart, a kill -9 or a
//! subscriber down for a while resumes from the cursor, so nothing is lost
//! and events delivered just before a crash may come again with the same
//! id (receivers dedupe by `id`). An event that fails `max_attempts` times
//! goes to the subscriber's dead letters and delivery goes on; an admin
//! replays from a seq once the partner is fixed.
//!
//! # Layout
//! - `config`: retries, timeouts, the kinds partners may have.
//! - `signing`: HMAC-SHA256 over the timestamp and the body.
//! - `cloudevent`: one journaled event as a partner sees it.
//! - `store`: subscribers, cursors and dead letters (SQLite, Redis, memory).
//! - `http`: the HTTP/1.1 client (plain or rustls), one connection per subscriber.
//! - `delivery`: one subscriber's task: read, filter, post, retry, advance.
//! - `api`: `WebhookService`, admin only, and [`Webhooks`], which runs the tasks.

mod api;
mod cloudevent;
mod config;
mod delivery;
mod signing;
mod store;

pub use api::{WebhookApi, Webhooks};
pub use cloudevent::{SIGNATURE_HEADER, TIMESTAMP_HEADER, cloud_event, event_type};
pub use config::{DEFAULT_SOURCE, PARTNER_KINDS, WebhookConfig};
pub use signing::{hmac_sha256, signature};
pub use store::{DeadLetter, MemoryStore, RedisWebhookStore, SqliteStore, StoreError, Subscriber, WebhookStore};
