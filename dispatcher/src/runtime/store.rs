//! Riding out a store that is out of reach (Redis down or cut off): the
//! state goes back to what was journaled, writes are refused and reads
//! answered from memory, and the store is probed until it answers.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::info;

use super::handle::Request;
use super::{DispatchError, Owner, STORE_DOWN, STORE_PROBE_EVERY};
use crate::convert;
use crate::journal::{JournalError, StoredEvent};
use crate::tokens::Credentials;
use pingji_engine::engine::{Engine, Rejection, State};
use pingji_engine::ids::AgentId;

impl Owner {
    /// Asks the store, in the background, for the events after the last
    /// one journaled: an answer means it is back.
    pub(super) fn probe_store(&mut self, answer: &mpsc::Sender<Result<Vec<StoredEvent>, JournalError>>) {
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
    pub(super) async fn store_answered(&mut self, tail: Result<Vec<StoredEvent>, JournalError>) -> anyhow::Result<()> {
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
    pub(super) fn process_while_store_down(&mut self, batch: Vec<Request>) {
        for request in batch {
            match request {
                Request::Execute { respond, .. } => {
                    // No rejection: the delivery carries the store's failure.
                    let deliver = respond(Err(Rejection::FailedPrecondition(String::new())));
                    deliver(Err(DispatchError::Unavailable(STORE_DOWN.to_string())));
                }
                Request::Query { respond, session } => {
                    respond(&self.engine, self.now())(super::intake::session_open(&self.sessions, session));
                }
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
                Request::TakeIn { reply, .. } => {
                    let _ = reply.send(Err(DispatchError::Unavailable(STORE_DOWN.to_string())));
                }
            }
        }
    }

    /// Goes back to the journaled state after an append failed, keeping
    /// who is connected and where.
    pub(super) fn rewind(&mut self) -> anyhow::Result<()> {
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
}
