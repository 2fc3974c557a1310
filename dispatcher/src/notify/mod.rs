//! Reaching people outside the app: the escalation ladder (push, SMS,
//! voice) of the policy file, climbed per person and subject until they
//! answer, through the SMS and voice gateways of the deployment, with the
//! gateways' receipts and people's replies taken in through a signed
//! inbound webhook.
//!
//! Who gets what. A notice starts for each person an offer, a call-up or
//! an operator's message goes to (`offer_sent`, `callup_issued`,
//! `message_sent`), unless the grade's ladder is empty, or the person is
//! off duty in normal mode. Each rung waits `after_s` from the start for a
//! person without a live session, `if_connected_after_s` for one with a
//! session who has not answered (offers go only to connected people, so
//! an offer's SMS is "no answer after N s"); a rung without that wait is
//! not for them. The notice ends when the person answers (accepts,
//! declines, checks in, reads or replies, in the app or by SMS) or the
//! subject ends (the offer expires or is withdrawn, the call-up stands
//! down).
//!
//! Every rung tried is a `notified` event (sent, delivered, failed,
//! answered, skipped; channel; rung), never with a phone number; a post
//! refused by the inbound webhook is an `inbound_refused` event. Each rung
//! has an idempotency key (person + subject + rung), kept durably before
//! the gateway is asked and sent to it, so a restart or a kill -9 never
//! sends a rung twice under two keys.
//!
//! # Layout
//! - `config`: gateways, retries, rate limits, the inbound secret.
//! - `gateway`: the generic webhook and Twilio request formats.
//! - `push`: the push channel interface (`crate::push` implements it).
//! - `store`: cursor, open notices and rungs tried (SQLite, Redis, memory).
//! - `shared`: what the tasks and the inbound webhook share.
//! - `ladder`: the task that reads the journal and schedules rungs.
//! - `send`: the workers that send a rung, with retries and rate limits.
//! - `inbound`: the signed inbound webhook: receipts and replies.
//! - `notifier`: [`Notifier`], which starts and stops the tasks.

mod config;
mod gateway;
mod inbound;
mod ladder;
mod notifier;
mod push;
mod send;
mod shared;
mod store;

pub use config::NotifyConfig;
pub use gateway::{DEFAULT_TEMPLATE, Gateway, TWILIO_INBOUND_PATH, twilio_signature};
pub use inbound::{GATEWAY_HEADER, INBOUND_PATH};
pub use notifier::Notifier;
pub use push::{NoPush, PushChannel, PushFuture, PushNotice, PushOutcome};
pub use store::{MemoryNotifyStore, NotifyStore, RedisNotifyStore, SqliteNotifyStore, StoreError};
