//! Command intake and group commit: a batch of requests is applied to the
//! engine, its events appended to the journal in one transaction, and only
//! then are callers answered, events broadcast and sessions told.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{Instrument, debug, error, info, warn};

use super::handle::{Deliver, Request};
use super::{DispatchError, Owner, STORE_DOWN, STORE_PROBE_EVERY, Session};
use crate::convert;
use crate::journal::StoredEvent;
use crate::tokens::Credentials;
use pingji_engine::engine::{Command, Rejection};
use pingji_engine::event::Event;
use pingji_engine::ids::AgentId;

impl Owner {
    pub(super) async fn process(&mut self, batch: Vec<Request>) -> anyhow::Result<()> {
        if self.store_down.is_some() {
            self.process_while_store_down(batch);
            return Ok(());
        }
        let mut events = Vec::new();
        let mut deliveries: Vec<Deliver> = Vec::new();
        for request in batch {
            let now = self.now();
            match request {
                Request::Execute { respond, .. } if self.config.read_only.is_some() => {
                    let reason = self.config.read_only.clone().unwrap_or_default();
                    deliveries.push(respond(Err(Rejection::FailedPrecondition(reason))));
                }
                Request::OpenSession { reply, .. } if self.config.read_only.is_some() => {
                    let reason = self.config.read_only.clone().unwrap_or_default();
                    let _ = reply.send(Err(DispatchError::Rejected(Rejection::FailedPrecondition(reason))));
                }
                Request::TakeIn { events: taken, reply } => {
                    for event in &taken {
                        if let Err(problem) = self.engine.replay(event) {
                            // The state took in what came before: stop, as for a journal that fails.
                            let _ = reply.send(Err(DispatchError::Unavailable(problem.clone())));
                            return Err(anyhow::anyhow!("cannot take in event {}: {problem}", event.seq));
                        }
                    }
                    events.extend(taken);
                    deliveries.push(Box::new(move |committed: Result<(), DispatchError>| {
                        let _ = reply.send(committed);
                    }));
                }
                Request::Execute { command, actor, respond, session } => {
                    if let Err(not_open) = session_open(&self.sessions, session) {
                        // No rejection: the delivery carries why.
                        let deliver = respond(Err(Rejection::FailedPrecondition(String::new())));
                        deliveries.push(Box::new(move |_| deliver(Err(not_open))));
                        continue;
                    }
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
                Request::Query { respond, session } => {
                    let deliver = respond(&self.engine, now);
                    match session_open(&self.sessions, session) {
                        Ok(()) => deliveries.push(deliver),
                        Err(not_open) => deliveries.push(Box::new(move |_| deliver(Err(not_open)))),
                    }
                }
                Request::OpenSession { agent, outbox, reply } => {
                    events.extend(self.open_session(agent, outbox, reply, &mut deliveries, now));
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
    pub(super) async fn commit(&mut self, events: Vec<Event>, deliveries: Vec<Deliver>) -> anyhow::Result<()> {
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
            // Sessions that could not keep up were closed while routing;
            // disconnecting them makes events of their own.
            events = self.disconnect_stuck_sessions();
            if events.is_empty() {
                break;
            }
        }
        if self.since_snapshot >= self.config.snapshot_every {
            self.snapshot().await?;
        }
        Ok(())
    }

    /// Journaled events change what calls are checked against.
    pub(super) fn follow_credentials(&self, events: &[Event]) {
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

/// Why a call naming session `id` is refused: it is not the person's open one.
/// Whether `session` (a person's call made in a session) is still their
/// open session; `None`: a call made outside any session.
pub(super) fn session_open(sessions: &HashMap<AgentId, Session>, session: Option<(AgentId, u64)>) -> Result<(), DispatchError> {
    match session {
        Some((agent, id)) if sessions.get(&agent).is_none_or(|open| open.id != id) => {
            Err(DispatchError::NotInSession(not_in_session(&agent, id)))
        }
        _ => Ok(()),
    }
}

fn not_in_session(agent: &AgentId, id: u64) -> String {
    format!(
        "session {id} is not agent {agent}'s open session (it was replaced by a sign-in elsewhere, or has ended); \
         nothing was changed: open Listen again and send with the new session_id"
    )
}
