//! People's live sessions: opened and closed, one per person, and the
//! messages fanned out to them after each commit. A session that cannot
//! keep up is closed rather than queued for without bound.

use pingji_proto::v1 as pb;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::handle::Deliver;
use super::{DispatchError, Owner, Session};
use crate::convert;
use crate::sessions::Outbox;
use pingji_engine::engine::Command;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, Millis};

impl Owner {
    /// Opens a person's session: one live session per person, so a new one
    /// (its token was checked) replaces the old, which is told why. A client
    /// that has gone but whose close has not arrived yet is replaced the
    /// same way. The reply waits for the batch to be durable.
    pub(super) fn open_session(
        &mut self,
        agent: AgentId,
        outbox: Outbox,
        reply: oneshot::Sender<Result<u64, DispatchError>>,
        deliveries: &mut Vec<Deliver>,
        now: Millis,
    ) -> Vec<Event> {
        let mut events = self.end_session_saying(
            &agent,
            "replaced",
            pb::ErrorReason::SessionReplaced,
            "a newer session for this person was opened, so this one is closed; if that was not you, \
             ask an admin to rotate your token",
            now,
        );
        let result = self.engine.execute(Command::Connect { agent: agent.clone() }, &format!("agent:{agent}"), now);
        match result {
            Ok(new_events) => {
                events.extend(new_events);
                let id = self.next_session;
                self.next_session += 1;
                if let Some(welcome) = convert::welcome(&self.engine, &agent, id, now) {
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
        events
    }

    /// Shutting down is not the people leaving: their offers stay open (as
    /// after a crash) and are re-sent when they reconnect.
    pub(super) fn close_streams(&mut self) {
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

    /// A person whose token was just replaced (rotated by an admin) loses
    /// the session the old token opened.
    pub(super) fn end_sessions_of_replaced_tokens(&mut self, new_events: &[Event], now: Millis) -> Vec<Event> {
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
    pub(super) fn end_session_saying(
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

    /// Ends `agent`'s session: the engine disconnects them and, unless
    /// their phone takes Web Push, withdraws an open offer and forgets their
    /// location; the Redis copy is forgotten either way.
    pub(super) fn end_session(&mut self, agent: &AgentId, now: Millis) -> Vec<Event> {
        self.sessions.remove(agent);
        if let Some(writer) = &self.config.locations {
            writer.forget(agent);
        }
        let actor = format!("agent:{agent}");
        let reachable = self.reachable.contains(agent.as_str());
        self.engine.execute(Command::Disconnect { agent: agent.clone(), reachable }, &actor, now).unwrap_or_default()
    }

    pub(super) fn route(&mut self, event: &Event) {
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

    /// Disconnects the sessions closed while routing because they could not
    /// keep up (only those: scanning every session after each batch cost
    /// 41 % of the CPU with 5,000 sessions; a client that goes away ends its
    /// own session through `CloseSession`).
    pub(super) fn disconnect_stuck_sessions(&mut self) -> Vec<Event> {
        let now = self.now();
        let mut events = Vec::new();
        for agent in std::mem::take(&mut self.stuck) {
            if self.sessions.contains_key(&agent) {
                warn!(agent_id = %agent, "session gone; disconnecting");
                events.extend(self.end_session(&agent, now));
            }
        }
        events
    }
}
