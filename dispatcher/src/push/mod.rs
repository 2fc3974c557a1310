//! Web Push to the installed phone app (RFC 8030, 8291, 8292): an offer, a
//! call-up or an operator's message arrives as a notification when the app
//! is closed, and the notification's actions answer through the normal
//! `FieldService` calls.
//!
//! The app asks for the dispatcher's VAPID public key (`GetPushKey`),
//! subscribes with it in the browser and registers the subscription
//! (`RegisterPush`, on the person's own token). [`Pusher::send`] encrypts a
//! [`PushNotice`] for each of the person's subscriptions and posts it to
//! their push service with a VAPID token; a subscription the push service
//! says is gone (404, 410) is forgotten.
//!
//! # Layout
//! - `ece`: RFC 8291 `aes128gcm` encryption (and the user agent's side, for tests).
//! - `vapid`: the ES256 key and the `Authorization: vapid` header (and its check).
//! - `subscription`: a subscription and the checks it passes.
//! - `store`: the key and the subscriptions (SQLite, Redis, memory).
//! - `notice`: what a push says, and its TTL, Urgency and Topic.
//! - `reachable`: who has a subscription, for the runtime to ask at the end of a session.
//! - `http`: the HTTP/1.1 client posting to push services.
//! - `sender`: [`Pusher`], which registers subscriptions and sends notices.
//! - `follow`: pushes offers, call-ups and messages as they are journaled
//!   (when the policy has no escalation ladder).
//! - `rung`: the ladder's push rung, when it has one.

pub mod ece;
mod follow;
mod notice;
mod reachable;
mod rung;
mod sender;
mod store;
mod subscription;
pub mod vapid;

pub use follow::{Following, follow};
pub use notice::{NoticeKind, PushNotice};
pub use reachable::Reachable;
pub use sender::{DEFAULT_SUBJECT, PushConfig, PushError, PushOutcome, Pusher};
pub use store::{MemoryPushStore, PushStore, RedisPushStore, SqlitePushStore, StoreError};
pub use subscription::{MAX_PER_PERSON, Refused, Subscription};
pub use vapid::VapidKey;
