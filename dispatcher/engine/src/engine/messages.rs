//! Operators' messages: deciding who a message reaches, replies and read
//! receipts, and folding them into the state.

use std::collections::BTreeMap;

use super::decide::check_text;
use super::{Engine, Rejection};
use crate::event::EventKind;
use crate::ids::{AgentId, Millis, quote};
use crate::message::{Audience, MAX_PHOTOS, MessageRecord, Reply};

/// Unread messages a welcome lists at most: a person away for long gets
/// the newest, not every area broadcast since.
pub const MAX_UNREAD_SHOWN: usize = 50;

impl Engine {
    pub(super) fn decide_send_message(&self, to: &Audience, text: &str) -> Result<Vec<EventKind>, Rejection> {
        check_text("the message", text, true)?;
        let recipients = self.recipients(to)?;
        if recipients.is_empty() {
            return Err(Rejection::FailedPrecondition(format!(
                "nobody is in {} now, so the message would reach nobody; nothing was sent",
                audience_words(to)
            )));
        }
        let message = format!("msg-{:06}", self.messages_sent() + 1);
        Ok(vec![EventKind::MessageSent { message, to: to.clone(), text: text.trim().to_string(), recipients }])
    }

    pub(super) fn decide_reply(&self, agent: &AgentId, message: &str, text: &str) -> Result<Vec<EventKind>, Rejection> {
        check_text("the reply", text, true)?;
        self.message_for(agent, message)?;
        Ok(vec![EventKind::MessageReplied { message: message.to_string(), agent: agent.clone(), text: text.trim().to_string() }])
    }

    pub(super) fn decide_read(&self, agent: &AgentId, message: &str) -> Result<Vec<EventKind>, Rejection> {
        let record = self.message_for(agent, message)?;
        if record.read_by.contains_key(agent) {
            return Ok(Vec::new());
        }
        Ok(vec![EventKind::MessageRead { message: message.to_string(), agent: agent.clone() }])
    }

    /// At most [`MAX_PHOTOS`] photo references, each a short line.
    pub(super) fn check_photo_refs(photo_refs: &[String]) -> Result<(), Rejection> {
        if photo_refs.len() > MAX_PHOTOS {
            return Err(Rejection::InvalidArgument(format!(
                "{} photos given; at most {MAX_PHOTOS} are allowed: choose the ones that show most",
                photo_refs.len()
            )));
        }
        for photo_ref in photo_refs {
            if photo_ref.trim().is_empty() || photo_ref.chars().count() > 100 || photo_ref.contains(char::is_whitespace) {
                return Err(Rejection::InvalidArgument(format!(
                    "photo reference {} is not one UploadPhoto returned (sha256: and 64 hex digits)",
                    quote(photo_ref)
                )));
            }
        }
        Ok(())
    }

    fn message_for(&self, agent: &AgentId, message: &str) -> Result<&MessageRecord, Rejection> {
        match self.state.messages.get(message) {
            Some(record) if record.recipients.contains(agent) => Ok(record),
            _ => Err(Rejection::NotFound(format!(
                "message {} was not sent to agent {agent}; check the id in the message you got",
                quote(message)
            ))),
        }
    }

    /// Who a message to `to` reaches now.
    fn recipients(&self, to: &Audience) -> Result<Vec<AgentId>, Rejection> {
        let state = &self.state;
        match to {
            Audience::Agent(agent) => {
                if !state.agents.contains_key(agent) {
                    return Err(Rejection::NotFound(format!("agent {} is not on the roster; check the id", quote(agent))));
                }
                Ok(vec![agent.clone()])
            }
            Audience::Incident(incident) => {
                let Some(record) = state.incidents.get(incident) else {
                    return Err(Rejection::NotFound(format!("incident {} does not exist; check the id", quote(incident))));
                };
                let mut people: Vec<AgentId> = record
                    .assignments
                    .iter()
                    .filter(|assignment| assignment.completed_at.is_none())
                    .map(|assignment| assignment.agent.clone())
                    .chain(record.open_offers.values().map(|offer| offer.agent.clone()))
                    .collect();
                people.sort();
                people.dedup();
                Ok(people)
            }
            Audience::Area(area) => {
                let Some(spec) = state.areas.get(area) else {
                    return Err(Rejection::NotFound(format!(
                        "area {} is not on the map; list areas to find its id",
                        quote(area.as_str())
                    )));
                };
                let level = spec.level;
                Ok(state
                    .agents
                    .values()
                    .filter(|record| {
                        let at_home = record.profile.home_area.as_ref().is_some_and(|home| {
                            state.areas.area_placement(home).is_some_and(|placement| placement.within(level, area))
                        });
                        let located = self
                            .live
                            .agents
                            .get(&record.profile.id)
                            .is_some_and(|live| self.live_placement(live).within(level, area));
                        at_home || located
                    })
                    .map(|record| record.profile.id.clone())
                    .collect())
            }
        }
    }

    /// Messages sent so far (numbers are never reused, even when old
    /// messages are forgotten).
    fn messages_sent(&self) -> u64 {
        self.state.messages_sent.max(u64::try_from(self.state.messages.len()).unwrap_or(u64::MAX))
    }

    /// Forgets the messages whose last sign of life (sent, replied to, read)
    /// is before `before`, with their replies and read receipts: the
    /// journal's retention limit applied to messages, which live in the
    /// state (and each snapshot) beyond the events that made them. Not an
    /// event: like deleting old events from the journal, it is
    /// housekeeping the runtime does just before it saves a snapshot, so a
    /// recovery from that snapshot has the same messages. Returns how many
    /// were forgotten.
    pub fn forget_messages_before(&mut self, before: Millis) -> usize {
        let messages_sent = self.messages_sent();
        let kept_before = self.state.messages.len();
        self.state.messages.retain(|_, record| {
            let last_reply = record.replies.iter().map(|reply| reply.at).max();
            let last_read = record.read_by.values().copied().max();
            let last = [Some(record.sent_at), last_reply, last_read].into_iter().flatten().max().unwrap_or(record.sent_at);
            last >= before
        });
        self.state.messages_sent = messages_sent;
        kept_before - self.state.messages.len()
    }

    pub(super) fn apply_message(&mut self, kind: &EventKind, at: Millis, actor: &str) {
        match kind {
            EventKind::MessageSent { message, to, text, recipients } => {
                self.state.messages_sent = self.messages_sent() + 1;
                let record = MessageRecord {
                    id: message.clone(),
                    sent_at: at,
                    from: actor.to_string(),
                    to: to.clone(),
                    text: text.clone(),
                    recipients: recipients.clone(),
                    replies: Vec::new(),
                    read_by: BTreeMap::new(),
                };
                self.state.messages.insert(message.clone(), record);
            }
            EventKind::MessageReplied { message, agent, text } => {
                if let Some(record) = self.state.messages.get_mut(message) {
                    record.replies.push(Reply { agent: agent.clone(), text: text.clone(), at });
                }
            }
            EventKind::MessageRead { message, agent } => {
                if let Some(record) = self.state.messages.get_mut(message) {
                    record.read_by.entry(agent.clone()).or_insert(at);
                }
            }
            _ => {}
        }
    }

    /// The newest [`MAX_UNREAD_SHOWN`] messages that reached `agent` and
    /// they have not marked read, oldest first.
    pub fn unread_messages(&self, agent: &AgentId) -> Vec<&MessageRecord> {
        self.messages(MAX_UNREAD_SHOWN, |record| record.recipients.contains(agent) && !record.read_by.contains_key(agent))
    }

    /// The newest `limit` messages that pass `keep`, oldest first.
    pub fn messages(&self, limit: usize, keep: impl Fn(&MessageRecord) -> bool) -> Vec<&MessageRecord> {
        let mut newest: Vec<&MessageRecord> =
            self.state.messages.values().rev().filter(|record| keep(record)).take(limit).collect();
        newest.reverse();
        newest
    }
}

fn audience_words(to: &Audience) -> String {
    match to {
        Audience::Agent(agent) => format!("agent {agent}"),
        Audience::Incident(incident) => format!("incident {incident}'s team"),
        Audience::Area(area) => format!("area {area}"),
    }
}
