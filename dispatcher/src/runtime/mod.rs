//! The runtime around the engine: one task owns the engine and the journal
//! and takes requests over a bounded channel. It applies a batch of requests,
//! appends their events to the journal in one transaction, and only then
//! answers the callers, broadcasts the events and tells people's sessions.
//!
//! With a store that can be out of reach for a while (Redis), a failed
//! append does not stop the process: the state goes back to what was
//! journaled (kept as `Committed`: the last snapshot and the events since),
//! writes are refused with `unavailable` and reads are answered from memory
//! until the store answers again; then the events of the failed append that
//! did land after all are taken in, and writing resumes.
//!
//! Callers hold a [`Dispatcher`] (a cheap clone): `execute` for commands,
//! `query` for reads, `open_session` / `close_session` for agents, and
//! `subscribe` + `read_events` for the event stream.
//!
//! After each snapshot, events older than the retention limit that the
//! snapshot covers are deleted from the journal, in the background and a
//! chunk at a time, so that appends wait for the journal's lock at most one
//! chunk's deletion. A reader asking for deleted events (`read_events`
//! below the first event kept) is told so rather than given a gap.
//!
//! # Layout
//! One task, the `Owner`, holds the state; its work is split by concern:
//! - `handle`: the [`Dispatcher`] handle callers hold, and the requests it sends.
//! - `owner`: the owner task's loop: what it waits for (requests, the next
//!   offer deadline, a probe of the store, shutdown).
//! - `intake`: a batch of requests applied, then committed to the journal
//!   in one append (group commit), answered and told.
//! - `sessions`: people's live sessions and the messages fanned out to them.
//! - `snapshots`: snapshots, the retention limit, and recovery at start.
//! - `store`: riding out a store that is out of reach (Redis).
//!
//! Which process owns a shard (the lease, fencing, taking over) is not
//! here: see `server::ownership`.

mod handle;
mod intake;
mod owner;
mod sessions;
mod snapshots;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, watch};

use crate::journal::Journal;
use crate::locations::LocationWriter;
use crate::push::Reachable;
use crate::sessions::Outbox;
use crate::tokens::{Credentials, SharedCredentials};
use pingji_engine::engine::{Engine, Rejection};
use pingji_engine::event::Event;
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::policy::Policy;

pub use handle::Dispatcher;
pub use snapshots::{FORGET_CHUNK, recover, recover_from};

/// The journal, shared by the owner (appends) and event readers.
pub type SharedJournal = Arc<Mutex<Box<dyn Journal>>>;

/// Most requests taken into one batch (one journal transaction).
const MAX_BATCH: usize = 256;
/// Requests waiting for the owner before callers wait.
const REQUEST_QUEUE: usize = 4096;
/// Events kept for subscribers that fall behind before they re-read the journal.
const BROADCAST_CAPACITY: usize = 8192;
/// How often an unreachable store is asked whether it is back.
const STORE_PROBE_EVERY: Duration = Duration::from_millis(500);
/// What a write is told while the store is out of reach.
const STORE_DOWN: &str =
    "the journal's store cannot be reached, so nothing can be changed now (reads still work); retry in a moment";

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the dispatcher is unavailable: {0}")]
    Unavailable(String),
    /// A call of a session that is not the person's current one.
    #[error("{0}")]
    NotInSession(String),
}

/// Wall-clock time in milliseconds.
pub fn system_now() -> Millis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Millis(since_epoch.as_millis() as i64)
}

/// The dispatcher's time source, in milliseconds since the Unix epoch, and
/// how fast it runs: the system clock; a test's own, moved by hand, to see
/// tokens expire without waiting; or a live drill's, running as many times
/// faster than real time as the drill, so that offers time out and
/// incidents widen at the drill's pace.
#[derive(Clone)]
pub struct Clock {
    now: Arc<dyn Fn() -> Millis + Send + Sync>,
    /// Clock milliseconds per real millisecond.
    speed: f64,
    /// A replay's pace, which its viewer may change while it runs.
    pace: Option<Arc<Pace>>,
}

/// The pace of a clock that can be paused, sped up or slowed down and moved
/// ahead while it runs: a replay's (`dispatcher --replay`).
pub struct Pace {
    state: Mutex<PaceState>,
    changed: watch::Sender<()>,
}

#[derive(Clone, Copy)]
struct PaceState {
    /// The clock showed `at` at the real instant `since`, then ran at `speed`.
    at: Millis,
    since: std::time::Instant,
    speed: f64,
    paused: bool,
}

impl PaceState {
    fn now(&self) -> Millis {
        if self.paused {
            return self.at;
        }
        Millis(self.at.0 + (self.since.elapsed().as_secs_f64() * 1000.0 * self.speed) as i64)
    }
}

impl Pace {
    pub fn new(from: Millis, speed: f64) -> Arc<Pace> {
        let state = PaceState { at: from, since: std::time::Instant::now(), speed, paused: false };
        Arc::new(Pace { state: Mutex::new(state), changed: watch::channel(()).0 })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn now(&self) -> Millis {
        self.state().now()
    }

    pub fn speed(&self) -> f64 {
        self.state().speed
    }

    pub fn paused(&self) -> bool {
        self.state().paused
    }

    /// Changes the speed, pauses or plays on, and moves the clock ahead to
    /// `skip_to` (never back): each `None` leaves that as it is.
    pub fn set(&self, speed: Option<f64>, paused: Option<bool>, skip_to: Option<Millis>) {
        {
            let mut state = self.state();
            let now = state.now();
            state.at = skip_to.map_or(now, |skip_to| Millis(skip_to.0.max(now.0)));
            state.since = std::time::Instant::now();
            state.speed = speed.unwrap_or(state.speed);
            state.paused = paused.unwrap_or(state.paused);
        }
        self.changed.send_replace(());
    }

    /// Changes when [`Pace::set`] is called.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

impl Clock {
    /// A clock read from `now`, running at real speed (or standing still
    /// until its owner moves it).
    pub fn new(now: impl Fn() -> Millis + Send + Sync + 'static) -> Clock {
        Clock { now: Arc::new(now), speed: 1.0, pace: None }
    }

    /// A clock that shows the system time now and then runs `speed` times
    /// faster than real time (`speed` is at least 1).
    pub fn faster(speed: f64) -> Clock {
        Clock::running(system_now(), speed.max(1.0))
    }

    /// A clock that shows `from` now and then runs `speed` times as fast as
    /// real time (a replay's).
    pub fn running(from: Millis, speed: f64) -> Clock {
        let started = std::time::Instant::now();
        Clock {
            now: Arc::new(move || Millis(from.0 + (started.elapsed().as_secs_f64() * 1000.0 * speed) as i64)),
            speed,
            pace: None,
        }
    }

    /// A clock that follows `pace` (a replay's), whose viewer may change it.
    pub fn paced(pace: Arc<Pace>) -> Clock {
        let reading = pace.clone();
        Clock { now: Arc::new(move || reading.now()), speed: pace.speed(), pace: Some(pace) }
    }

    /// The pace of a replay's clock; `None` for every other clock.
    pub fn pace(&self) -> Option<&Arc<Pace>> {
        self.pace.as_ref()
    }

    pub fn now(&self) -> Millis {
        (self.now)()
    }

    /// Clock milliseconds per real millisecond: 1 but for a drill's or a replay's clock.
    pub fn speed(&self) -> f64 {
        self.pace.as_ref().map_or(self.speed, |pace| pace.speed())
    }

    /// How long to wait in real time until the clock has moved on by `clock_ms`.
    pub fn real_wait(&self, clock_ms: i64) -> Duration {
        Duration::from_secs_f64(clock_ms.max(0) as f64 / 1000.0 / self.speed())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(system_now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now = {}, speed = {})", self.now().0, self.speed)
    }
}

pub type AppendObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// How the runtime is set up.
pub struct RuntimeConfig {
    pub policy: Policy,
    /// Take a snapshot after this many events.
    pub snapshot_every: u64,
    pub clock: Clock,
    /// Where accepted live locations are copied (Redis, for a process that
    /// takes the shard over); `None` with SQLite and memory.
    pub locations: Option<LocationWriter>,
    /// When the store is out of reach (Redis down or cut off), refuse writes
    /// and serve reads until it is back, instead of stopping. For a store
    /// whose failures pass (Redis); a SQLite failure stops the process.
    pub wait_for_store: bool,
    /// Told how long each journal append took (the metrics' timer); the
    /// runtime does not know who listens.
    pub append_timer: Option<AppendObserver>,
    /// Journaled events older than this (by the clock above) are deleted
    /// once a snapshot covers them; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// Why nothing may change, when nothing may (a replay of another
    /// journal, told by [`Dispatcher::take_in`]): every command and session
    /// is refused with this, and no deadline fires, since the events that
    /// deadlines made are in the journal being replayed.
    pub read_only: Option<String>,
}

/// Starts the owner task. It runs until `shutdown` turns true or every
/// handle is dropped, and returns an error if the journal fails.
pub fn start(
    engine: Engine,
    journal: SharedJournal,
    config: RuntimeConfig,
    shutdown: watch::Receiver<bool>,
) -> (Dispatcher, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let (requests, inbox) = mpsc::channel(REQUEST_QUEUE);
    let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
    let (closing_sender, closing) = watch::channel(false);
    let (store_reachable_sender, store_reachable) = watch::channel(true);
    let state = engine.state();
    let credentials = Arc::new(RwLock::new(Credentials::new(&state.operators, &state.agent_tokens)));
    let reachable = Reachable::default();
    // Counted from the journal's latest snapshot, not from this start: a
    // dispatcher restarted more often than every `snapshot_every` events
    // still snapshots, and trims its journal.
    let since_snapshot = state.last_seq.saturating_sub(engine.restored_seq());
    let dispatcher = Dispatcher {
        requests,
        events: events.clone(),
        journal: journal.clone(),
        closing,
        store_reachable,
        credentials: credentials.clone(),
        reachable: reachable.clone(),
    };
    let owner = Owner {
        reachable,
        credentials,
        closing: closing_sender,
        store_reachable: store_reachable_sender,
        stuck: Vec::new(),
        committed: None,
        store_down: None,
        probing: false,
        engine,
        journal,
        events,
        sessions: HashMap::new(),
        next_session: 1,
        since_snapshot,
        forgetting: None,
        config,
    };
    let task = tokio::spawn(owner.run(inbox, shutdown));
    (dispatcher, task)
}

struct Session {
    id: u64,
    outbox: Outbox,
}

/// The journaled state, for going back to it when an append fails: the
/// state at the last snapshot (JSON) and the events journaled since.
struct Committed {
    snapshot: Vec<u8>,
    events: Vec<Event>,
}

struct Owner {
    /// What calls are checked against, as journaled.
    credentials: SharedCredentials,
    /// Who has a push subscription: they stay candidates after their
    /// session ends.
    reachable: Reachable,
    closing: watch::Sender<bool>,
    /// Kept when `wait_for_store` is set.
    committed: Option<Committed>,
    /// Set while the store is out of reach (writes are refused): when to
    /// ask it next.
    store_down: Option<tokio::time::Instant>,
    /// Tells handles whether the store is reachable.
    store_reachable: watch::Sender<bool>,
    /// Sessions closed while routing (their queue was full or gone), to be
    /// disconnected after the batch.
    stuck: Vec<AgentId>,
    /// A probe of the store is running.
    probing: bool,
    engine: Engine,
    journal: SharedJournal,
    events: broadcast::Sender<Arc<pb::Event>>,
    sessions: HashMap<AgentId, Session>,
    next_session: u64,
    since_snapshot: u64,
    /// Old events being deleted for the retention limit, in the background.
    forgetting: Option<Forgetting>,
    config: RuntimeConfig,
}

/// A background deletion of old events: joined before a next one starts
/// and at shutdown, where `stop` makes it end after the chunk in progress.
struct Forgetting {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Owner {
    fn now(&self) -> Millis {
        self.config.clock.now()
    }
}
