//! The runtime around the engine: one task owns the engine and the journal
//! and takes requests over a bounded channel. It applies a batch of requests,
//! appends their events to the journal in one transaction, and only then
//! answers the callers, broadcasts the events and tells people's sessions.
//!
//! With a store that can be out of reach for a while (Redis), a failed
//! append does not stop the process: the state goes back to what was
//! journaled (kept as [`Committed`]: the last snapshot and the events since),
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::convert;
use crate::journal::{Journal, JournalError, StoredEvent};
use crate::locations::LocationWriter;
use crate::sessions::Outbox;
use crate::tokens::{Credentials, SharedCredentials};
use pingji_engine::accounts::OperatorRole;
use pingji_engine::engine::{Command, Engine, Rejection, State};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::policy::Policy;

/// The journal, shared by the owner (appends) and event readers.
pub type SharedJournal = Arc<Mutex<Box<dyn Journal>>>;

/// Most requests taken into one batch (one journal transaction).
const MAX_BATCH: usize = 256;
/// Requests waiting for the owner before callers wait.
const REQUEST_QUEUE: usize = 4096;
/// Events kept for subscribers that fall behind before they re-read the journal.
const BROADCAST_CAPACITY: usize = 8192;
/// Most events deleted per journal call for the retention limit: the lock
/// is released between chunks, so appends wait at most one chunk's
/// deletion (SQLite: p50 9.5 ms, max 24 ms on the 2-core VM, from
/// `cargo bench --bench replay`).
pub const FORGET_CHUNK: u64 = 5_000;
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
}

/// Wall-clock time in milliseconds.
pub fn system_now() -> Millis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Millis(since_epoch.as_millis() as i64)
}

/// Sends the answer once the batch is durable.
type Deliver = Box<dyn FnOnce(Result<(), DispatchError>) + Send>;
/// Builds a command's answer from the state right after it.
type RespondToCommand = Box<dyn FnOnce(Result<(&Engine, &[Event]), Rejection>) -> Deliver + Send>;
/// Builds a query's answer.
type RespondToQuery = Box<dyn FnOnce(&Engine, Millis) -> Deliver + Send>;

enum Request {
    Execute {
        command: Command,
        actor: String,
        respond: RespondToCommand,
    },
    Query {
        respond: RespondToQuery,
    },
    OpenSession {
        agent: AgentId,
        outbox: Outbox,
        reply: oneshot::Sender<Result<u64, DispatchError>>,
    },
    CloseSession {
        agent: AgentId,
        session: u64,
    },
    /// The server is shutting down: end every session and event stream.
    CloseStreams,
}

/// A handle to the running dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Arc<pb::Event>>,
    journal: SharedJournal,
    closing: watch::Receiver<bool>,
    store_reachable: watch::Receiver<bool>,
    credentials: SharedCredentials,
}

impl Dispatcher {
    /// Whether `other` is a handle on the same running dispatcher.
    pub fn is_same(&self, other: &Dispatcher) -> bool {
        self.requests.same_channel(&other.requests)
    }

    /// The operator's role and token hash, as journaled; read without
    /// waiting for the owner task.
    pub fn operator_credentials(&self, name: &str) -> Option<(OperatorRole, String)> {
        self.credentials.read().ok()?.operators.get(name).cloned()
    }

    /// The person's token hash, as journaled; read without waiting for the
    /// owner task.
    pub fn agent_token_hash(&self, agent: &AgentId) -> Option<String> {
        self.credentials.read().ok()?.agents.get(agent).cloned()
    }

    /// False while the journal's store is out of reach and writes are
    /// refused (Redis down; see the module notes).
    pub fn store_reachable(&self) -> bool {
        *self.store_reachable.borrow()
    }

    /// Turns false and back to true as the journal's store goes out of
    /// reach and comes back.
    pub fn store_reachable_changes(&self) -> watch::Receiver<bool> {
        self.store_reachable.clone()
    }

    /// Carries out a command; `view` builds the answer from the state right
    /// after it, and the answer arrives once the events are durable.
    pub async fn execute<T: Send + 'static>(
        &self,
        command: Command,
        actor: String,
        view: impl FnOnce(&Engine, &[Event]) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let respond = Box::new(move |result: Result<(&Engine, &[Event]), Rejection>| -> Deliver {
            let value = result.map(|(engine, events)| view(engine, events));
            Box::new(move |committed: Result<(), DispatchError>| {
                let _ = reply.send(committed.and_then(|()| value.map_err(DispatchError::Rejected)));
            })
        });
        self.send(Request::Execute { command, actor, respond }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Reads the state.
    pub async fn query<T: Send + 'static>(
        &self,
        view: impl FnOnce(&Engine, Millis) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let respond = Box::new(move |engine: &Engine, now: Millis| -> Deliver {
            let value = view(engine, now);
            Box::new(move |committed: Result<(), DispatchError>| {
                let _ = reply.send(committed.map(|()| value));
            })
        });
        self.send(Request::Query { respond }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Opens a person's session; the welcome is the first message in `outbox`.
    pub async fn open_session(&self, agent: AgentId, outbox: Outbox) -> Result<u64, DispatchError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::OpenSession { agent, outbox, reply }).await?;
        answer.await.map_err(|_| stopped())?
    }

    pub async fn close_session(&self, agent: AgentId, session: u64) {
        let _ = self.send(Request::CloseSession { agent, session }).await;
    }

    /// Ends every session and event stream (at shutdown), telling each why.
    pub async fn close_streams(&self) {
        let _ = self.send(Request::CloseStreams).await;
    }

    /// Turns true when streams should end because the server is shutting down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.clone()
    }

    /// Live events; pair with `read_events` to catch up first.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<pb::Event>> {
        self.events.subscribe()
    }

    /// Up to `limit` journaled events from `from_seq` (0 reads from the
    /// first event kept). Refused with `FailedPrecondition` when `from_seq`
    /// was deleted for the retention limit: the caller would otherwise get
    /// a gap it cannot see.
    pub async fn read_events(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, DispatchError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let page = journal.read_from(from_seq, limit)?;
            // Held events have no holes, so a held `from_seq` comes first;
            // only otherwise is it worth asking whether it was deleted.
            if from_seq == 0 || limit == 0 || page.first().is_some_and(|event| event.seq == from_seq) {
                return Ok(Ok(page));
            }
            let first_kept = match journal.first_seq()? {
                Some(first) => first,
                None => journal.last_seq()? + 1,
            };
            if from_seq < first_kept {
                return Ok(Err(DispatchError::Rejected(Rejection::FailedPrecondition(format!(
                    "events before seq {first_kept} are no longer kept (the journal's retention limit, \
                     journal.retention_days); ask from seq {first_kept} on, or 0 for new events only"
                )))));
            }
            Ok(Ok(page))
        })
        .await
        .map_err(|_| stopped())?
        .map_err(journal_unavailable)?
    }

    /// The first sequence number the journal still holds and the last one
    /// (the first is the last + 1 while it holds none).
    pub async fn kept_seqs(&self) -> Result<(u64, u64), DispatchError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let last = journal.last_seq()?;
            Ok((journal.first_seq()?.unwrap_or(last + 1), last))
        })
        .await
        .map_err(|_| stopped())?
        .map_err(journal_unavailable)
    }

    /// Requests waiting for the owner task.
    pub fn queue_depth(&self) -> usize {
        self.requests.max_capacity() - self.requests.capacity()
    }

    async fn send(&self, request: Request) -> Result<(), DispatchError> {
        // Draining: what is in flight finishes, what comes now is refused
        // with a status clients retry (elsewhere or after the restart).
        if *self.closing.borrow() {
            return Err(stopped());
        }
        self.requests.send(request).await.map_err(|_| stopped())
    }
}

fn stopped() -> DispatchError {
    DispatchError::Unavailable("the dispatcher is shutting down; retry in a moment".to_string())
}

fn journal_unavailable(error: JournalError) -> DispatchError {
    error!(%error, "journal failure");
    DispatchError::Unavailable("the journal could not be written or read; the dispatcher is stopping".to_string())
}

/// Told how long each journal append took.
pub type AppendObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// How the runtime is set up.
pub struct RuntimeConfig {
    pub policy: Policy,
    /// Take a snapshot after this many events.
    pub snapshot_every: u64,
    pub clock: Arc<dyn Fn() -> Millis + Send + Sync>,
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
}

/// Deletes the journal's events up to `snapshot_seq` older than
/// `older_than_ms`, [`FORGET_CHUNK`] at a time, taking the journal's lock
/// for each chunk only. Logs counts and sequence numbers, nothing personal.
fn forget_in_chunks(journal: &SharedJournal, snapshot_seq: u64, older_than_ms: i64, stop: &AtomicBool) {
    let mut removed_total = 0;
    loop {
        let removed = {
            let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.first_seq().and_then(|first| match first {
                Some(first) => journal.forget_before(snapshot_seq.min(first.saturating_add(FORGET_CHUNK - 1)), older_than_ms),
                None => Ok(0),
            })
        };
        match removed {
            Ok(removed) => {
                removed_total += removed;
                if removed < FORGET_CHUNK || stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Err(error) => {
                warn!(%error, "cannot delete old events from the journal now; trying again after the next snapshot");
                break;
            }
        }
    }
    if removed_total > 0 {
        info!(
            removed = removed_total,
            up_to_seq = snapshot_seq,
            older_than_ms,
            "old events deleted from the journal (retention limit)"
        );
    }
}

/// Loads the state from the journal (snapshot, then the events after it).
pub async fn recover(journal: &SharedJournal, policy: Policy) -> anyhow::Result<Engine> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Engine> {
        let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        recover_from(journal.as_ref(), policy)
    })
    .await?
}

/// [`recover`], blocking.
pub fn recover_from(journal: &dyn Journal, policy: Policy) -> anyhow::Result<Engine> {
    let mut engine = match journal.load_snapshot()? {
        Some((seq, bytes)) => {
            let state: State = serde_json::from_slice(&bytes)
                .map_err(|error| anyhow::anyhow!("the snapshot at event {seq} cannot be read: {error}"))?;
            anyhow::ensure!(state.last_seq == seq, "the snapshot says event {} but is stored as {seq}", state.last_seq);
            Engine::restore(policy, state)
        }
        None => Engine::new(policy),
    };
    let from_snapshot = engine.state().last_seq;
    loop {
        let batch = journal.read_from(engine.state().last_seq + 1, 10_000)?;
        if batch.is_empty() {
            break;
        }
        for stored in &batch {
            let event = convert::event_from_stored(stored).map_err(anyhow::Error::msg)?;
            engine.replay(&event).map_err(anyhow::Error::msg)?;
        }
    }
    info!(snapshot_seq = from_snapshot, last_seq = engine.state().last_seq, "state recovered from the journal");
    Ok(engine)
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
    };
    let owner = Owner {
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
        (self.config.clock)()
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Request>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        if self.config.wait_for_store {
            self.committed = Some(Committed { snapshot: serde_json::to_vec(self.engine.state())?, events: Vec::new() });
        }
        let (probe_sender, mut probes) = mpsc::channel(1);
        // Offers whose deadline passed while the dispatcher was down time out now.
        let now = self.now();
        let events = self.engine.tick(now);
        self.commit(events, Vec::new()).await?;
        loop {
            let wait = match (&self.store_down, self.engine.next_deadline()) {
                (Some(probe_at), _) => probe_at.saturating_duration_since(tokio::time::Instant::now()),
                (None, Some(deadline)) => Duration::from_millis(deadline.0.saturating_sub(self.now().0).max(0) as u64),
                (None, None) => Duration::from_secs(3600),
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                request = inbox.recv() => {
                    let Some(first) = request else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match inbox.try_recv() {
                            Ok(request) => batch.push(request),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await?;
                }
                Some(tail) = probes.recv() => {
                    self.probing = false;
                    self.store_answered(tail).await?;
                }
                () = tokio::time::sleep(wait) => {
                    if self.store_down.is_some() {
                        self.probe_store(&probe_sender);
                    } else {
                        let now = self.now();
                        let events = self.engine.tick(now);
                        self.commit(events, Vec::new()).await?;
                    }
                }
            }
        }
        if self.store_down.is_none() {
            self.snapshot().await?;
        }
        if let Some(forgetting) = self.forgetting.take() {
            forgetting.stop.store(true, Ordering::Relaxed);
            let _ = forgetting.task.await;
        }
        info!("dispatcher owner stopped");
        Ok(())
    }

    /// Asks the store, in the background, for the events after the last
    /// one journaled: an answer means it is back.
    fn probe_store(&mut self, answer: &mpsc::Sender<Result<Vec<StoredEvent>, JournalError>>) {
        if let Some(probe_at) = &mut self.store_down {
            *probe_at = tokio::time::Instant::now() + STORE_PROBE_EVERY;
        }
        if self.probing {
            return;
        }
        self.probing = true;
        let journal = self.journal.clone();
        let after = self.engine.state().last_seq;
        let answer = answer.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = answer.blocking_send(journal.read_from(after + 1, usize::MAX));
        });
    }

    /// The store answered a probe. Events after the last journaled one are
    /// those of the append that failed but landed after all (the failure
    /// was the answer getting lost): they are taken in and told as if just
    /// committed. Then writes resume: sessions that ended meanwhile are
    /// closed, and deadlines that passed fire.
    async fn store_answered(&mut self, tail: Result<Vec<StoredEvent>, JournalError>) -> anyhow::Result<()> {
        let landed = match tail {
            Ok(landed) => landed,
            Err(error) if error.is_unreachable() => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        for stored in &landed {
            let event = convert::event_from_stored(stored).map_err(anyhow::Error::msg)?;
            self.engine.replay(&event).map_err(anyhow::Error::msg)?;
            if let Some(committed) = &mut self.committed {
                committed.events.push(event.clone());
            }
            self.since_snapshot += 1;
            self.follow_credentials(std::slice::from_ref(&event));
            let _ = self.events.send(Arc::new(convert::event::event_to_pb(&event)));
            self.route(&event);
        }
        self.store_down = None;
        let _ = self.store_reachable.send(true);
        info!(landed = landed.len(), last_seq = self.engine.state().last_seq, "the journal's store is back; writes resume");
        let now = self.now();
        let mut events = Vec::new();
        let gone: Vec<AgentId> = self
            .engine
            .live()
            .agents
            .iter()
            .filter(|(agent, live)| live.connected && self.sessions.get(*agent).is_none_or(|session| session.outbox.is_closed()))
            .map(|(agent, _)| agent.clone())
            .collect();
        for agent in gone {
            events.extend(self.end_session(&agent, now));
        }
        events.extend(self.engine.tick(now));
        self.commit(events, Vec::new()).await
    }

    /// Answers a batch while the store is out of reach: reads from memory,
    /// every change refused.
    fn process_while_store_down(&mut self, batch: Vec<Request>) {
        for request in batch {
            match request {
                Request::Execute { respond, .. } => {
                    // No rejection: the delivery carries the store's failure.
                    let deliver = respond(Err(Rejection::FailedPrecondition(String::new())));
                    deliver(Err(DispatchError::Unavailable(STORE_DOWN.to_string())));
                }
                Request::Query { respond } => respond(&self.engine, self.now())(Ok(())),
                Request::OpenSession { reply, .. } => {
                    let _ = reply.send(Err(DispatchError::Unavailable(STORE_DOWN.to_string())));
                }
                // The engine hears of it once the store is back.
                Request::CloseSession { agent, session } => {
                    if self.sessions.get(&agent).is_some_and(|open| open.id == session) {
                        self.sessions.remove(&agent);
                    }
                }
                Request::CloseStreams => self.close_streams(),
            }
        }
    }

    /// Shutting down is not the people leaving: their offers stay open (as
    /// after a crash) and are re-sent when they reconnect.
    fn close_streams(&mut self) {
        let _ = self.closing.send(true);
        for (_, session) in self.sessions.drain() {
            let refused = pb::Refused {
                code: "unavailable".to_string(),
                message: "the dispatcher is shutting down; reconnect in a moment".to_string(),
                reason: pb::ErrorReason::ShuttingDown as i32,
                ..pb::Refused::default()
            };
            let _ = session.outbox.try_send(pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Refused(refused)) });
        }
    }

    async fn process(&mut self, batch: Vec<Request>) -> anyhow::Result<()> {
        if self.store_down.is_some() {
            self.process_while_store_down(batch);
            return Ok(());
        }
        let mut events = Vec::new();
        let mut deliveries: Vec<Deliver> = Vec::new();
        for request in batch {
            let now = self.now();
            match request {
                Request::Execute { command, actor, respond } => {
                    let reported_location = match (&command, &self.config.locations) {
                        (Command::ReportLocation { agent, at }, Some(_)) => Some((agent.clone(), *at)),
                        _ => None,
                    };
                    match self.engine.execute(command, &actor, now) {
                        Ok(new_events) => {
                            if let (Some(writer), Some((agent, at))) = (&self.config.locations, reported_location) {
                                writer.record(&agent, at, now);
                            }
                            deliveries.push(respond(Ok((&self.engine, &new_events))));
                            let ended = self.end_sessions_of_replaced_tokens(&new_events, now);
                            events.extend(new_events);
                            events.extend(ended);
                        }
                        Err(rejection) => {
                            debug!(%actor, reason = %rejection, "command rejected");
                            deliveries.push(respond(Err(rejection)));
                        }
                    }
                }
                Request::Query { respond } => deliveries.push(respond(&self.engine, now)),
                Request::OpenSession { agent, outbox, reply } => {
                    // One live session per person: a new one (its token was
                    // checked) replaces the old, which is told why. A client
                    // that has gone but whose close has not arrived yet is
                    // replaced the same way.
                    events.extend(self.end_session_saying(
                        &agent,
                        "replaced",
                        pb::ErrorReason::SessionReplaced,
                        "a newer session for this person was opened, so this one is closed; if that was not you, \
                         ask an admin to rotate your token",
                        now,
                    ));
                    let result = self.engine.execute(Command::Connect { agent: agent.clone() }, &format!("agent:{agent}"), now);
                    match result {
                        Ok(new_events) => {
                            events.extend(new_events);
                            let id = self.next_session;
                            self.next_session += 1;
                            if let Some(welcome) = convert::welcome(&self.engine, &agent, now) {
                                let _ = outbox.try_send(welcome);
                            }
                            self.sessions.insert(agent.clone(), Session { id, outbox });
                            info!(agent_id = %agent, session = id, "session opened");
                            deliveries.push(Box::new(move |committed| {
                                let _ = reply.send(committed.map(|()| id));
                            }));
                        }
                        Err(rejection) => {
                            let _ = reply.send(Err(DispatchError::Rejected(rejection)));
                        }
                    }
                }
                Request::CloseStreams => self.close_streams(),
                Request::CloseSession { agent, session } => {
                    if self.sessions.get(&agent).is_some_and(|open| open.id == session) {
                        info!(agent_id = %agent, session, "session closed");
                        events.extend(self.end_session(&agent, now));
                    }
                }
            }
        }
        self.commit(events, deliveries).await
    }

    /// Makes events durable, then answers, broadcasts and tells sessions.
    async fn commit(&mut self, events: Vec<Event>, deliveries: Vec<Deliver>) -> anyhow::Result<()> {
        let mut events = events;
        let mut deliveries = deliveries;
        loop {
            if !events.is_empty() {
                let stored: Vec<StoredEvent> = events.iter().map(convert::stored_event).collect();
                let journal = self.journal.clone();
                let span = tracing::info_span!("journal_append", events = stored.len(), first_seq = stored[0].seq);
                let started = std::time::Instant::now();
                let appended = tokio::task::spawn_blocking(move || {
                    let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    journal.append(&stored).map(|()| stored)
                })
                .instrument(span)
                .await?;
                if let Some(observe) = &self.config.append_timer {
                    observe(started.elapsed());
                }
                let stored = match appended {
                    Ok(stored) => stored,
                    Err(error) if self.config.wait_for_store && error.is_unreachable() => {
                        for deliver in deliveries {
                            deliver(Err(DispatchError::Unavailable(STORE_DOWN.to_string())));
                        }
                        // The state in memory is ahead of the journal: go back.
                        self.rewind()?;
                        warn!(%error, "the journal's store is out of reach; refusing writes and serving reads until it is back");
                        self.store_down = Some(tokio::time::Instant::now() + STORE_PROBE_EVERY);
                        let _ = self.store_reachable.send(false);
                        return Ok(());
                    }
                    Err(error) => {
                        for deliver in deliveries {
                            deliver(Err(DispatchError::Unavailable(
                                "the journal could not be written; nothing was changed".into(),
                            )));
                        }
                        // The state in memory is now ahead of the journal: stop, and let a restart recover.
                        error!(%error, "journal append failed; stopping");
                        return Err(error.into());
                    }
                };
                if let Some(committed) = &mut self.committed {
                    committed.events.extend(events.iter().cloned());
                }
                self.since_snapshot += stored.len() as u64;
                self.follow_credentials(&events);
                for event in &events {
                    let _ = self.events.send(Arc::new(convert::event::event_to_pb(event)));
                    self.route(event);
                }
            }
            for deliver in deliveries.drain(..) {
                deliver(Ok(()));
            }
            // Sessions that could not keep up were closed while routing
            // (only those: scanning every session after each batch cost
            // 41 % of the CPU with 5,000 sessions; a client that goes away
            // ends its own session through `CloseSession`).
            events = Vec::new();
            let now = self.now();
            for agent in std::mem::take(&mut self.stuck) {
                if self.sessions.contains_key(&agent) {
                    warn!(agent_id = %agent, "session gone; disconnecting");
                    events.extend(self.end_session(&agent, now));
                }
            }
            if events.is_empty() {
                break;
            }
        }
        if self.since_snapshot >= self.config.snapshot_every {
            self.snapshot().await?;
        }
        Ok(())
    }

    /// A person whose token was just replaced (rotated by an admin) loses
    /// the session the old token opened.
    fn end_sessions_of_replaced_tokens(&mut self, new_events: &[Event], now: Millis) -> Vec<Event> {
        let mut ended = Vec::new();
        for event in new_events {
            let EventKind::AgentTokensIssued { tokens } = &event.kind else { continue };
            for token in tokens {
                ended.extend(self.end_session_saying(
                    &token.agent,
                    "unauthenticated",
                    pb::ErrorReason::TokenInvalid,
                    "your token was replaced by an admin, so this session is closed; sign in again with the new token",
                    now,
                ));
            }
        }
        ended
    }

    /// Ends `agent`'s session, if open, telling the client why (`code`: the
    /// client does not reconnect by itself).
    fn end_session_saying(
        &mut self,
        agent: &AgentId,
        code: &str,
        reason: pb::ErrorReason,
        message: &str,
        now: Millis,
    ) -> Vec<Event> {
        let Some(open) = self.sessions.get(agent) else {
            return Vec::new();
        };
        info!(agent_id = %agent, session = open.id, code, "session ended by the dispatcher");
        let _ = open.outbox.try_send(convert::session_ended(code, reason, message));
        self.end_session(agent, now)
    }

    /// Ends `agent`'s session: the engine disconnects them (withdrawing an
    /// open offer) and forgets their location, and so does the Redis copy.
    fn end_session(&mut self, agent: &AgentId, now: Millis) -> Vec<Event> {
        self.sessions.remove(agent);
        if let Some(writer) = &self.config.locations {
            writer.forget(agent);
        }
        let actor = format!("agent:{agent}");
        self.engine.execute(Command::Disconnect { agent: agent.clone() }, &actor, now).unwrap_or_default()
    }

    fn route(&mut self, event: &Event) {
        for (agent, message) in convert::messages_for_agents(&self.engine, event) {
            let Some(session) = self.sessions.get(&agent) else { continue };
            if let Err(error) = session.outbox.try_send(message) {
                // A full queue means the client stopped reading (the outbox
                // has emptied and ended it): end its session rather than
                // queue without bound; its offers are re-made.
                debug!(agent_id = %agent, reason = %error, "session cannot take messages; closing it");
                self.stuck.push(agent);
            }
        }
    }

    async fn snapshot(&mut self) -> anyhow::Result<()> {
        if self.since_snapshot == 0 {
            return Ok(());
        }
        let seq = self.engine.state().last_seq;
        let bytes = Arc::new(serde_json::to_vec(self.engine.state())?);
        let journal = self.journal.clone();
        let saving = bytes.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.save_snapshot(seq, &saving)
        })
        .await?;
        match saved {
            Ok(()) => {
                info!(seq, "snapshot saved");
                self.forget_old_events(seq);
            }
            // The events are journaled; the snapshot is only a shortcut for
            // the next recovery: try again after the next events.
            Err(error) if self.config.wait_for_store && error.is_unreachable() => {
                warn!(%error, seq, "cannot save a snapshot now; trying again later");
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(committed) = &mut self.committed {
            committed.snapshot = Arc::unwrap_or_clone(bytes);
            committed.events.clear();
        }
        self.since_snapshot = 0;
        Ok(())
    }

    /// Starts deleting, in the background, the events up to `snapshot_seq`
    /// that are older than the retention limit, unless the last deletion
    /// is still running (the next snapshot takes over its work).
    fn forget_old_events(&mut self, snapshot_seq: u64) {
        let Some(retention) = self.config.retention else {
            return;
        };
        if self.forgetting.as_ref().is_some_and(|forgetting| !forgetting.task.is_finished()) {
            return;
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let older_than_ms = self.now().0.saturating_sub(retention_ms);
        let journal = self.journal.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::task::spawn_blocking(move || forget_in_chunks(&journal, snapshot_seq, older_than_ms, &stopping));
        self.forgetting = Some(Forgetting { task, stop });
    }

    /// Goes back to the journaled state after an append failed, keeping
    /// who is connected and where.
    fn rewind(&mut self) -> anyhow::Result<()> {
        let Some(committed) = &self.committed else {
            anyhow::bail!("the journaled state was not kept, so the state cannot go back to it");
        };
        let state: State = serde_json::from_slice(&committed.snapshot)?;
        let mut journaled = Engine::restore(self.engine.policy().clone(), state);
        for event in &committed.events {
            journaled.replay(event).map_err(anyhow::Error::msg)?;
        }
        self.engine.rewind(journaled.into_state());
        let state = self.engine.state();
        let journaled_credentials = Credentials::new(&state.operators, &state.agent_tokens);
        if let Ok(mut credentials) = self.credentials.write() {
            *credentials = journaled_credentials;
        }
        Ok(())
    }

    /// Journaled events change what calls are checked against.
    fn follow_credentials(&self, events: &[Event]) {
        let mut changing = events.iter().filter(|event| Credentials::changed_by(&event.kind)).peekable();
        if changing.peek().is_none() {
            return;
        }
        let Ok(mut credentials) = self.credentials.write() else { return };
        let state = self.engine.state();
        for event in changing {
            credentials.refresh(&event.kind, &state.operators, &state.agent_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::journal::{SqliteJournal, SqliteReader};
    use pingji_engine::roster::{AgentProfile, Role, TravelMode};

    const DAY_MS: i64 = 86_400_000;
    const START_MS: i64 = 1_773_563_445_000;

    fn profile(id: &str) -> AgentProfile {
        AgentProfile {
            id: AgentId::new(id),
            name: format!("person {id}"),
            role: Role::Volunteer,
            skills: BTreeSet::new(),
            phone: "13900000000".to_string(),
            home_area: None,
            travel_mode: TravelMode::Walk,
            on_duty: true,
            home: None,
        }
    }

    async fn add_people(dispatcher: &Dispatcher, ids: std::ops::RangeInclusive<u32>) {
        for number in ids {
            let command =
                Command::UpsertAgents { agents: vec![profile(&format!("p{number:04}"))], all_new: true, tokens: Vec::new() };
            dispatcher.execute(command, "operator:test".to_string(), |_, _| ()).await.expect("person added");
        }
    }

    async fn last_seq(dispatcher: &Dispatcher) -> u64 {
        dispatcher.query(|engine, _| engine.state().last_seq).await.expect("query")
    }

    fn open_shared(path: &std::path::Path) -> SharedJournal {
        Arc::new(Mutex::new(Box::new(SqliteJournal::open(path).expect("open journal")) as Box<dyn Journal>))
    }

    /// Events older than the retention limit go once a snapshot covers
    /// them; recent ones stay; readers asking for deleted ones are told;
    /// and a restart recovers the same state from what is left.
    #[tokio::test]
    async fn old_events_are_deleted_after_a_snapshot_and_the_state_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.sqlite");
        let journal = open_shared(&path);
        let clock_ms = Arc::new(AtomicI64::new(START_MS));
        let clock = clock_ms.clone();
        let config = RuntimeConfig {
            policy: Policy::default(),
            snapshot_every: 5,
            clock: Arc::new(move || Millis(clock.load(Ordering::Relaxed))),
            locations: None,
            wait_for_store: false,
            append_timer: None,
            retention: Some(Duration::from_millis(DAY_MS as u64)),
        };
        let (stop, shutdown) = watch::channel(false);
        let (dispatcher, owner) = start(Engine::new(Policy::default()), journal.clone(), config, shutdown);

        // Snapshots are taken on the first day: nothing is old enough yet.
        add_people(&dispatcher, 1..=6).await;
        let last_old_seq = last_seq(&dispatcher).await;
        let reader = SqliteReader::open(&path).expect("reader");
        assert_eq!(reader.first_seq().expect("first_seq"), Some(1));

        // Two days later, the next snapshot lets the first day's events go.
        clock_ms.fetch_add(2 * DAY_MS, Ordering::Relaxed);
        add_people(&dispatcher, 7..=12).await;
        let last_recent_seq = last_seq(&dispatcher).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reader.first_seq().expect("first_seq") != Some(last_old_seq + 1) {
            assert!(std::time::Instant::now() < deadline, "the first day's events are still there: {:?}", reader.first_seq());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let kept = reader.read_from(0, 1_000).expect("read");
        assert_eq!(kept.first().map(|event| event.seq), Some(last_old_seq + 1));
        assert_eq!(kept.last().map(|event| event.seq), Some(last_recent_seq), "recent events are all kept");
        assert!(kept.iter().all(|event| event.at_ms >= START_MS + 2 * DAY_MS));

        // A reader asking for deleted events is told where history starts.
        let error = dispatcher.read_events(1, 100).await.expect_err("seq 1 was deleted");
        let message = error.to_string();
        assert!(matches!(&error, DispatchError::Rejected(Rejection::FailedPrecondition(_))), "unexpected error: {message}");
        assert!(message.contains(&format!("events before seq {} are no longer kept", last_old_seq + 1)), "{message}");
        let from_head = dispatcher.read_events(last_old_seq + 1, 100).await.expect("read from the first kept event");
        assert_eq!(from_head, kept);
        assert_eq!(dispatcher.read_events(0, 100).await.expect("read from 0"), kept);
        assert!(dispatcher.read_events(last_recent_seq + 1, 100).await.expect("read past the end").is_empty());

        // A restart recovers the same state from the snapshot and what is left.
        let before = dispatcher.query(|engine, _| engine.state().clone()).await.expect("state");
        assert_eq!(before.agents.len(), 12);
        stop.send(true).expect("stop the owner");
        owner.await.expect("owner task").expect("owner stopped cleanly");
        drop(dispatcher);
        drop(journal);
        let recovered = recover(&open_shared(&path), Policy::default()).await.expect("recover");
        assert_eq!(recovered.state(), &before);
    }

    /// The count toward the next snapshot goes on from the journal's last
    /// snapshot across restarts, so a dispatcher restarted (or killed)
    /// more often than every `snapshot_every` events still snapshots.
    #[tokio::test]
    async fn restarts_more_often_than_the_snapshot_interval_still_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.sqlite");
        let config = || RuntimeConfig {
            policy: Policy::default(),
            snapshot_every: 5,
            clock: Arc::new(|| Millis(START_MS)),
            locations: None,
            wait_for_store: false,
            append_timer: None,
            retention: None,
        };
        for (round, people) in [(1, 1..=3), (2, 4..=6)] {
            let journal = open_shared(&path);
            let engine = recover(&journal, Policy::default()).await.expect("recover");
            let (stop, shutdown) = watch::channel(false);
            let (dispatcher, owner) = start(engine, journal, config(), shutdown);
            add_people(&dispatcher, people).await;
            let reader = SqliteReader::open(&path).expect("reader");
            let snapshot_seq = || reader.load_snapshot().expect("snapshot").map(|(seq, _)| seq);
            if round == 2 {
                // 6 events since the journal began, over two runs: a snapshot.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while snapshot_seq().is_none() {
                    assert!(std::time::Instant::now() < deadline, "no snapshot after 6 events over two runs");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // Killed, not stopped: no snapshot at shutdown.
            owner.abort();
            let _ = owner.await;
            drop((dispatcher, stop));
            if round == 1 {
                assert_eq!(snapshot_seq(), None, "3 events are fewer than 5");
            }
        }
    }

    /// Without a retention limit nothing is deleted, however old.
    #[tokio::test]
    async fn without_a_retention_limit_every_event_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.sqlite");
        let clock_ms = Arc::new(AtomicI64::new(START_MS));
        let clock = clock_ms.clone();
        let config = RuntimeConfig {
            policy: Policy::default(),
            snapshot_every: 2,
            clock: Arc::new(move || Millis(clock.load(Ordering::Relaxed))),
            locations: None,
            wait_for_store: false,
            append_timer: None,
            retention: None,
        };
        let (stop, shutdown) = watch::channel(false);
        let (dispatcher, owner) = start(Engine::new(Policy::default()), open_shared(&path), config, shutdown);
        add_people(&dispatcher, 1..=3).await;
        clock_ms.fetch_add(3_650 * DAY_MS, Ordering::Relaxed);
        add_people(&dispatcher, 4..=6).await;
        stop.send(true).expect("stop the owner");
        owner.await.expect("owner task").expect("owner stopped cleanly");
        let reader = SqliteReader::open(&path).expect("reader");
        assert_eq!(reader.first_seq().expect("first_seq"), Some(1));
        assert!(reader.load_snapshot().expect("snapshot").is_some(), "snapshots were taken");
        drop(dispatcher);
    }
}
