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
//! - `push`: the push channel interface (no push service on this branch).
//! - `store`: cursor, open notices and rungs tried (SQLite, Redis, memory).
//! - `ladder`: the task that reads the journal and schedules rungs.
//! - `send`: the workers that send a rung, with retries and rate limits.
//! - `inbound`: the signed inbound webhook: receipts and replies.

mod config;
mod gateway;
mod inbound;
mod ladder;
mod push;
mod send;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::NotifyConfig;
pub use gateway::{DEFAULT_TEMPLATE, Gateway};
pub use inbound::{GATEWAY_HEADER, INBOUND_PATH, inbound_route};
pub use push::{NoPush, PushChannel, PushNotice, PushOutcome};
pub use store::{MemoryNotifyStore, NotifyStore, RedisNotifyStore, SqliteNotifyStore, StoreError};

use crate::runtime::{Clock, Dispatcher};
use crate::webhooks::signature;
use hyper::body::Bytes;
use pingji_engine::policy::Ladder;
use store::{Notice, SharedStore};

/// The signature headers of a body signed now under `secret`.
fn signing_header_values(secret: &str, body: &Bytes) -> [(&'static str, String); 2] {
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
    let signed = signature(secret, &timestamp, body);
    [(crate::webhooks::TIMESTAMP_HEADER, timestamp), (crate::webhooks::SIGNATURE_HEADER, signed)]
}

/// The running notifier: its tasks, and what the inbound webhook shares
/// with them.
pub struct Notifier {
    dispatcher: Dispatcher,
    config: Arc<NotifyConfig>,
    ladder: Ladder,
    store: SharedStore,
    push: Arc<dyn PushChannel>,
    clock: Clock,
    /// The open notices by key. A sync lock, never held across an `.await`.
    open: Mutex<HashMap<String, Notice>>,
    /// Signatures of inbound posts taken, for refusing replays.
    seen_signatures: Mutex<HashMap<String, std::time::Instant>>,
    /// Inbound refusals journaled in the current minute (a flood of forged
    /// posts must not flood the journal).
    refusals: Mutex<(std::time::Instant, u32)>,
    /// SMS and calls per person in the last hour.
    per_person: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
    /// When the next request to each gateway may go.
    gateway_slots: Mutex<HashMap<String, std::time::Instant>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Notifier {
    /// Starts the notifier when the policy has a ladder; `None` otherwise
    /// (today's behaviour: nobody is notified outside the app).
    pub async fn start(
        dispatcher: Dispatcher,
        store: Box<dyn NotifyStore>,
        config: NotifyConfig,
        push: Arc<dyn PushChannel>,
        clock: Clock,
    ) -> anyhow::Result<Option<Arc<Notifier>>> {
        let Some(ladder) = dispatcher.query(|engine, _| engine.policy().ladder.clone()).await? else {
            return Ok(None);
        };
        let (stop, _) = watch::channel(false);
        let notifier = Arc::new(Notifier {
            dispatcher,
            config: Arc::new(config),
            ladder,
            store: Arc::new(Mutex::new(store)),
            push,
            clock,
            open: Mutex::default(),
            seen_signatures: Mutex::default(),
            refusals: Mutex::new((std::time::Instant::now(), 0)),
            per_person: Mutex::default(),
            gateway_slots: Mutex::default(),
            stop,
            tasks: Mutex::default(),
        });
        let (jobs, receiver) = tokio::sync::mpsc::channel(send::QUEUE);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let mut tasks = Vec::new();
        for _ in 0..notifier.config.concurrency.max(1) {
            tasks.push(tokio::spawn(send::work(notifier.clone(), receiver.clone(), notifier.stop.subscribe())));
        }
        tasks.push(tokio::spawn(ladder::run(notifier.clone(), jobs, notifier.stop.subscribe())));
        *notifier.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = tasks;
        Ok(Some(notifier))
    }

    /// Stops the tasks and waits for them.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Aborts the tasks at once (serving ended some other way).
    pub fn abort(&self) {
        let _ = self.stop.send(true);
        for task in self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            task.abort();
        }
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Notice>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
