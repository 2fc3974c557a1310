//! The handle callers hold: it sends requests to the owner task and reads
//! the journal for event streams.

use std::sync::Arc;

use pingji_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::error;

use super::{DispatchError, SharedJournal};
use crate::journal::{JournalError, StoredEvent};
use crate::push::Reachable;
use crate::sessions::Outbox;
use crate::tokens::SharedCredentials;
use pingji_engine::accounts::OperatorRole;
use pingji_engine::engine::{Command, Engine, Rejection};
use pingji_engine::event::Event;
use pingji_engine::ids::{AgentId, Millis};

/// Sends the answer once the batch is durable.
pub(super) type Deliver = Box<dyn FnOnce(Result<(), DispatchError>) + Send>;
/// Builds a command's answer from the state right after it.
pub(super) type RespondToCommand = Box<dyn FnOnce(Result<(&Engine, &[Event]), Rejection>) -> Deliver + Send>;
/// Builds a query's answer.
pub(super) type RespondToQuery = Box<dyn FnOnce(&Engine, Millis) -> Deliver + Send>;

pub(super) enum Request {
    Execute {
        command: Command,
        actor: String,
        respond: RespondToCommand,
        /// Carried out only while this is the person's open session (a
        /// browser's unary call); `None`: whatever sessions are open.
        session: Option<(AgentId, u64)>,
    },
    Query {
        respond: RespondToQuery,
        /// Answered only while this is the person's open session.
        session: Option<(AgentId, u64)>,
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
    /// Events journaled elsewhere, to take in as they are (a replay).
    TakeIn {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<(), DispatchError>>,
    },
}

/// A handle to the running dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    pub(super) requests: mpsc::Sender<Request>,
    pub(super) events: broadcast::Sender<Arc<pb::Event>>,
    pub(super) journal: SharedJournal,
    pub(super) closing: watch::Receiver<bool>,
    pub(super) store_reachable: watch::Receiver<bool>,
    pub(super) credentials: SharedCredentials,
    pub(super) reachable: Reachable,
}

impl Dispatcher {
    /// Who can be reached without a session, asked when one ends: for the
    /// pusher to keep in step.
    pub fn reachable_by_push(&self) -> Reachable {
        self.reachable.clone()
    }

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
        self.execute_guarded(command, actor, None, view).await
    }

    /// Carries out a person's command only while `session` is their open
    /// session: refused with [`DispatchError::NotInSession`] otherwise (it
    /// was replaced by a newer one, or has ended).
    pub async fn execute_in_session(&self, command: Command, agent: AgentId, session: u64) -> Result<(), DispatchError> {
        let actor = format!("agent:{agent}");
        self.execute_guarded(command, actor, Some((agent, session)), |_, _| ()).await
    }

    async fn execute_guarded<T: Send + 'static>(
        &self,
        command: Command,
        actor: String,
        session: Option<(AgentId, u64)>,
        view: impl FnOnce(&Engine, &[Event]) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let respond = Box::new(move |result: Result<(&Engine, &[Event]), Rejection>| -> Deliver {
            let value = result.map(|(engine, events)| view(engine, events));
            Box::new(move |committed: Result<(), DispatchError>| {
                let _ = reply.send(committed.and_then(|()| value.map_err(DispatchError::Rejected)));
            })
        });
        self.send(Request::Execute { command, actor, respond, session }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Reads the state.
    pub async fn query<T: Send + 'static>(
        &self,
        view: impl FnOnce(&Engine, Millis) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        self.query_guarded(None, view).await
    }

    /// Reads the state for a person's call, only while `session` is their
    /// open session: refused with [`DispatchError::NotInSession`] otherwise,
    /// as [`Dispatcher::execute_in_session`] is.
    pub async fn query_in_session<T: Send + 'static>(
        &self,
        agent: AgentId,
        session: u64,
        view: impl FnOnce(&Engine, Millis) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        self.query_guarded(Some((agent, session)), view).await
    }

    async fn query_guarded<T: Send + 'static>(
        &self,
        session: Option<(AgentId, u64)>,
        view: impl FnOnce(&Engine, Millis) -> T + Send + 'static,
    ) -> Result<T, DispatchError> {
        let (reply, answer) = oneshot::channel();
        let respond = Box::new(move |engine: &Engine, now: Millis| -> Deliver {
            let value = view(engine, now);
            Box::new(move |committed: Result<(), DispatchError>| {
                let _ = reply.send(committed.map(|()| value));
            })
        });
        self.send(Request::Query { respond, session }).await?;
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

    /// Takes in `events` journaled elsewhere, in order and continuing the
    /// state's sequence (a replay of another journal): the state follows
    /// them, this dispatcher's journal keeps them and watchers are told,
    /// as if they had just happened here.
    pub async fn take_in(&self, events: Vec<Event>) -> Result<(), DispatchError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::TakeIn { events, reply }).await?;
        answer.await.map_err(|_| stopped())?
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

    /// Up to `limit` journaled events of one incident from `from_seq`, and
    /// where the next page starts (`None`: the journal's end was reached).
    pub async fn read_incident_events(
        &self,
        incident_id: String,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<u64>), DispatchError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.read_incident(&incident_id, from_seq, limit)
        })
        .await
        .map_err(|_| stopped())?
        .map_err(journal_unavailable)
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
