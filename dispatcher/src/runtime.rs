//! The runtime around the engine: one task owns the engine and the journal
//! and takes requests over a bounded channel. It applies a batch of requests,
//! appends their events to the journal in one transaction, and only then
//! answers the callers, broadcasts the events and tells people's sessions.
//!
//! Callers hold a [`Dispatcher`] (a cheap clone): `execute` for commands,
//! `query` for reads, `open_session` / `close_session` for agents, and
//! `subscribe` + `read_events` for the event stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::convert;
use crate::engine::{Command, Engine, Rejection, State};
use crate::event::Event;
use crate::ids::{AgentId, Millis};
use crate::journal::{Journal, JournalError, StoredEvent};
use crate::locations::LocationWriter;
use crate::policy::Policy;

/// The journal, shared by the owner (appends) and event readers.
pub type SharedJournal = Arc<Mutex<Box<dyn Journal>>>;

/// Most requests taken into one batch (one journal transaction).
const MAX_BATCH: usize = 256;
/// Requests waiting for the owner before callers wait.
const REQUEST_QUEUE: usize = 4096;
/// Events kept for subscribers that fall behind before they re-read the journal.
const BROADCAST_CAPACITY: usize = 8192;
/// Messages queued to one person's session before it counts as stuck.
pub const SESSION_QUEUE: usize = 256;

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
        outbox: mpsc::Sender<pb::DispatchMessage>,
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
}

impl Dispatcher {
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
    pub async fn open_session(&self, agent: AgentId, outbox: mpsc::Sender<pb::DispatchMessage>) -> Result<u64, DispatchError> {
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

    /// Up to `limit` journaled events from `from_seq`.
    pub async fn read_events(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, DispatchError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.read_from(from_seq, limit)
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

/// How the runtime is set up.
pub struct RuntimeConfig {
    pub policy: Policy,
    /// Take a snapshot after this many events.
    pub snapshot_every: u64,
    pub clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    /// Where accepted live locations are copied (Redis, for a process that
    /// takes the shard over); `None` with SQLite and memory.
    pub locations: Option<LocationWriter>,
    /// Times each journal append, for the metrics.
    pub append_timer: Option<crate::metrics::AppendTimer>,
}

/// Loads the state from the journal (snapshot, then the events after it).
pub async fn recover(journal: &SharedJournal, policy: Policy) -> anyhow::Result<Engine> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Engine> {
        let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
    })
    .await?
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
    let dispatcher = Dispatcher { requests, events: events.clone(), journal: journal.clone(), closing };
    let owner = Owner {
        closing: closing_sender,
        engine,
        journal,
        events,
        sessions: HashMap::new(),
        next_session: 1,
        since_snapshot: 0,
        config,
    };
    let task = tokio::spawn(owner.run(inbox, shutdown));
    (dispatcher, task)
}

struct Session {
    id: u64,
    outbox: mpsc::Sender<pb::DispatchMessage>,
}

struct Owner {
    closing: watch::Sender<bool>,
    engine: Engine,
    journal: SharedJournal,
    events: broadcast::Sender<Arc<pb::Event>>,
    sessions: HashMap<AgentId, Session>,
    next_session: u64,
    since_snapshot: u64,
    config: RuntimeConfig,
}

impl Owner {
    fn now(&self) -> Millis {
        (self.config.clock)()
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Request>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        // Offers whose deadline passed while the dispatcher was down time out now.
        let now = self.now();
        let events = self.engine.tick(now);
        self.commit(events, Vec::new()).await?;
        loop {
            let wait = match self.engine.next_deadline() {
                Some(deadline) => Duration::from_millis(deadline.0.saturating_sub(self.now().0).max(0) as u64),
                None => Duration::from_secs(3600),
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
                () = tokio::time::sleep(wait) => {
                    let now = self.now();
                    let events = self.engine.tick(now);
                    self.commit(events, Vec::new()).await?;
                }
            }
        }
        self.snapshot().await?;
        info!("dispatcher owner stopped");
        Ok(())
    }

    async fn process(&mut self, batch: Vec<Request>) -> anyhow::Result<()> {
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
                            events.extend(new_events);
                        }
                        Err(rejection) => {
                            debug!(%actor, reason = %rejection, "command rejected");
                            deliveries.push(respond(Err(rejection)));
                        }
                    }
                }
                Request::Query { respond } => deliveries.push(respond(&self.engine, now)),
                Request::OpenSession { agent, outbox, reply } => {
                    // A session whose client has gone (its stream dropped) but
                    // whose close has not arrived yet is replaced, not refused.
                    if self.sessions.get(&agent).is_some_and(|open| open.outbox.is_closed()) {
                        self.sessions.remove(&agent);
                        let actor = format!("agent:{agent}");
                        if let Ok(new_events) = self.engine.execute(Command::Disconnect { agent: agent.clone() }, &actor, now) {
                            events.extend(new_events);
                        }
                    }
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
                Request::CloseStreams => {
                    // Shutting down is not the people leaving: their offers stay
                    // open (as after a crash) and are re-sent when they reconnect.
                    let _ = self.closing.send(true);
                    for (_, session) in self.sessions.drain() {
                        let refused = pb::Refused {
                            code: "unavailable".to_string(),
                            message: "the dispatcher is shutting down; reconnect in a moment".to_string(),
                            ..pb::Refused::default()
                        };
                        let _ = session
                            .outbox
                            .try_send(pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Refused(refused)) });
                    }
                }
                Request::CloseSession { agent, session } => {
                    if self.sessions.get(&agent).is_some_and(|open| open.id == session) {
                        self.sessions.remove(&agent);
                        info!(agent_id = %agent, session, "session closed");
                        if let Ok(new_events) =
                            self.engine.execute(Command::Disconnect { agent: agent.clone() }, &format!("agent:{agent}"), now)
                        {
                            events.extend(new_events);
                        }
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
                if let Some(timer) = &self.config.append_timer {
                    timer.observe(started.elapsed());
                }
                let stored = match appended {
                    Ok(stored) => stored,
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
                self.since_snapshot += stored.len() as u64;
                for (event, stored) in events.iter().zip(&stored) {
                    let _ = self.events.send(Arc::new(convert::event_to_pb(stored)));
                    self.route(event);
                }
            }
            for deliver in deliveries.drain(..) {
                deliver(Ok(()));
            }
            // Sessions that could not keep up were closed while routing.
            let stuck: Vec<AgentId> =
                self.sessions.iter().filter(|(_, session)| session.outbox.is_closed()).map(|(agent, _)| agent.clone()).collect();
            events = Vec::new();
            let now = self.now();
            for agent in stuck {
                self.sessions.remove(&agent);
                warn!(agent_id = %agent, "session gone; disconnecting");
                if let Ok(new_events) =
                    self.engine.execute(Command::Disconnect { agent: agent.clone() }, &format!("agent:{agent}"), now)
                {
                    events.extend(new_events);
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

    fn route(&mut self, event: &Event) {
        for (agent, message) in convert::messages_for_agents(&self.engine, event) {
            let Some(session) = self.sessions.get(&agent) else { continue };
            if let Err(error) = session.outbox.try_send(message) {
                // A full queue means the client stopped reading: end its session
                // rather than queue without bound; its offers are re-made.
                warn!(agent_id = %agent, reason = %error, "session cannot take messages; closing it");
                if let Some(session) = self.sessions.get_mut(&agent) {
                    let (closed, _) = mpsc::channel(1);
                    session.outbox = closed;
                }
            }
        }
    }

    async fn snapshot(&mut self) -> anyhow::Result<()> {
        if self.since_snapshot == 0 {
            return Ok(());
        }
        let seq = self.engine.state().last_seq;
        let bytes = serde_json::to_vec(self.engine.state())?;
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.save_snapshot(seq, &bytes)
        })
        .await??;
        self.since_snapshot = 0;
        info!(seq, "snapshot saved");
        Ok(())
    }
}
