//! What the notifier's tasks and the inbound webhook share: the
//! dispatcher, the settings and ladder, the store, the open notices, and
//! the rate limits' counts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::config::NotifyConfig;
use super::push::PushChannel;
use super::store::{Notice, SharedStore};
use crate::runtime::{Clock, Dispatcher};
use pingji_engine::policy::Ladder;

pub struct Shared {
    pub dispatcher: Dispatcher,
    pub config: Arc<NotifyConfig>,
    pub ladder: Ladder,
    pub store: SharedStore,
    pub push: Arc<dyn PushChannel>,
    pub clock: Clock,
    /// The open notices by key. A sync lock, never held across an `.await`.
    pub open: Mutex<HashMap<String, Notice>>,
    /// Signatures of inbound posts taken, for refusing replays.
    pub seen_signatures: Mutex<HashMap<String, Instant>>,
    /// Inbound refusals journaled in the current minute (a flood of forged
    /// posts must not flood the journal).
    pub refusals: Mutex<(Instant, u32)>,
    /// SMS and calls per person in the last hour.
    pub per_person: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// When the next request to each gateway may go.
    pub gateway_slots: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    pub fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Notice>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
