//! The `WatchAgents` stream: the people a live view shows, pushed rather
//! than polled.
//!
//! Live locations are soft state, not events, so the stream does not follow
//! the event broadcast: every [`PUSH_EVERY`] it reads the people again,
//! masks them for the caller's role as `ListAgents` does, and sends only
//! what changed (new or changed people, the ids of those gone; with
//! `compact_moves`, people who only moved as an id and a position). The read is
//! audited when the stream opens and whenever the set of people shown
//! changes (aggregated in [`ReadAudits`]), not at every move; and the
//! caller's token is checked again at every round, so a rotation,
//! revocation, expiry or removal ends the stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pingji_engine::engine::Rejection;
use pingji_engine::engine::queries::AgentQuery;
use pingji_engine::ids::quote;
use pingji_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::audit::{self, ReadAudits};
use super::auth::{self, Caller};
use super::error::{self, rejection_status};
use super::sharding::Sharding;
use crate::convert;
use crate::runtime::Dispatcher;

/// How often a stream reads its people again: as often as `pingji watch`
/// polled them before it had the stream.
pub const PUSH_EVERY: Duration = Duration::from_secs(2);
/// People in one message at most; a larger change comes in several.
const CHUNK: usize = 1000;
/// Moves in one message at most (about 30 bytes each: 300 KB).
const MOVES_CHUNK: usize = 10_000;
/// People one stream shows at most: its copy of them costs about 0.5 KiB
/// each, and every round reads them all on the task that owns the engine.
pub const MAX_WATCHED: usize = 100_000;
/// Messages queued for a slow client before the stream waits for it.
const STREAM_QUEUE: usize = 8;

/// One `WatchAgents` stream: who asked, about whom.
pub struct AgentWatch {
    pub dispatcher: Dispatcher,
    pub sharding: Option<Arc<Sharding>>,
    pub audited: ReadAudits,
    pub caller: Caller,
    /// Whom to show (its `limit` one over [`MAX_WATCHED`], to tell a set
    /// too large).
    pub query: AgentQuery,
    /// Send people who only moved as moves, not whole records.
    pub compact_moves: bool,
}

impl AgentWatch {
    /// Checks the query (an unknown area fails the call itself), then
    /// streams the people and their changes until the client leaves, the
    /// caller's token stops working or the dispatcher shuts down.
    pub async fn start(self) -> Result<ReceiverStream<Result<pb::AgentsChanged, Status>>, Status> {
        let first = self.read().await?;
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        tokio::spawn(self.run(first, sender));
        Ok(ReceiverStream::new(receiver))
    }

    /// What the audit calls this stream: its query, and "(coarse)" for a
    /// role that sees masked people.
    fn subject(&self) -> String {
        let area = self.query.area.as_ref().map(quote).unwrap_or_default();
        let coarse = if self.caller.role.sees_precise_personal_data() { "" } else { " (coarse)" };
        format!("watch: area \"{area}\", connected only {}{coarse}", self.query.connected_only)
    }

    /// The people shown now, masked for the caller's role, by id.
    async fn read(&self) -> Result<BTreeMap<String, pb::Agent>, Status> {
        let query = self.query.clone();
        let people = self
            .dispatcher
            .query(move |engine, now| -> Result<Vec<pb::Agent>, Rejection> {
                Ok(engine.agents(&query)?.into_iter().map(|record| convert::agent_to_pb(engine, record, now)).collect())
            })
            .await?
            .map_err(rejection_status)?;
        if people.len() > MAX_WATCHED {
            return Err(error::status(
                Code::ResourceExhausted,
                pb::ErrorReason::LimitExceeded,
                format!("more than {MAX_WATCHED} people match; watch one area at a time (area_id)"),
            ));
        }
        let precise = self.caller.role.sees_precise_personal_data();
        Ok(people
            .into_iter()
            .map(|mut agent| {
                if !precise {
                    convert::mask_agent(&mut agent);
                }
                let id = agent.spec.as_ref().map(|spec| spec.id.clone()).unwrap_or_default();
                (id, agent)
            })
            .collect())
    }

    async fn run(self, first: BTreeMap<String, pb::Agent>, sender: mpsc::Sender<Result<pb::AgentsChanged, Status>>) {
        let mut closing = self.dispatcher.closing();
        let mut shown = BTreeMap::new();
        let mut now_shown = first;
        let mut opening = true;
        let mut rounds = tokio::time::interval(PUSH_EVERY);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the people read at the start go out.
        rounds.tick().await;
        loop {
            let same_people = !opening && shown.len() == now_shown.len() && shown.keys().eq(now_shown.keys());
            if !same_people {
                self.audit(&now_shown).await;
            }
            for message in changes(&shown, &now_shown, opening, self.compact_moves) {
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            shown = now_shown;
            opening = false;
            tokio::select! {
                _ = rounds.tick() => {}
                () = sender.closed() => return,
                () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                    let message = "the dispatcher is shutting down; open the stream again (at another dispatcher, or after the restart)";
                    let _ = sender.send(Err(error::retry_later(pb::ErrorReason::ShuttingDown, message))).await;
                    return;
                }
            }
            let checked = auth::still_holds(&self.dispatcher, self.sharding.as_deref(), &self.caller).await;
            let read = match checked {
                Ok(()) => self.read().await,
                Err(refusal) => Err(refusal),
            };
            now_shown = match read {
                Ok(people) => people,
                Err(status) => {
                    let _ = sender.send(Err(status)).await;
                    return;
                }
            };
        }
    }

    /// Journals the read of `people`, unless the same operator's same
    /// watch showed the same people within the audit's window.
    async fn audit(&self, people: &BTreeMap<String, pb::Agent>) {
        let subject = self.subject();
        if !self.audited.is_new(&self.caller.name, "WatchAgents", &subject, people.keys().map(String::as_str)) {
            return;
        }
        audit::record_read(&self.dispatcher, &self.caller, "WatchAgents", subject, people.len()).await;
    }
}

/// The messages that take a client from `shown` to `now_shown`: with
/// `opening`, a reset and everyone (one message even when nobody is shown,
/// so the client knows the stream is live); then only new and changed people
/// and the ids of those gone, in messages of at most [`CHUNK`] people. With
/// `compact_moves`, a person whose only change is their location (and its
/// time) goes as a move, [`MOVES_CHUNK`] to a message.
fn changes(
    shown: &BTreeMap<String, pb::Agent>,
    now_shown: &BTreeMap<String, pb::Agent>,
    opening: bool,
    compact_moves: bool,
) -> Vec<pb::AgentsChanged> {
    let mut changed: Vec<pb::Agent> = Vec::new();
    let mut moved: Vec<&pb::Agent> = Vec::new();
    for (id, agent) in now_shown {
        match shown.get(id) {
            Some(before) if before == agent => {}
            Some(before)
                if compact_moves && before.location.is_some() && agent.location.is_some() && only_moved(before, agent) =>
            {
                moved.push(agent)
            }
            _ => changed.push(agent.clone()),
        }
    }
    let gone_ids: Vec<String> = shown.keys().filter(|id| !now_shown.contains_key(*id)).cloned().collect();
    let mut messages: Vec<pb::AgentsChanged> =
        changed.chunks(CHUNK).map(|agents| pb::AgentsChanged { agents: agents.to_vec(), ..Default::default() }).collect();
    for moves in moved.chunks(MOVES_CHUNK) {
        let mut message = pb::AgentsChanged::default();
        for agent in moves {
            let (Some(spec), Some(location)) = (&agent.spec, &agent.location) else { continue };
            message.moved_ids.push(spec.id.clone());
            message.moved_lons.push(location.lon);
            message.moved_lats.push(location.lat);
            message.moved_at_ms.push(agent.location_at_ms);
        }
        messages.push(message);
    }
    if !gone_ids.is_empty() {
        match messages.last_mut() {
            Some(last) => last.gone_ids = gone_ids,
            None => messages.push(pb::AgentsChanged { gone_ids, ..Default::default() }),
        }
    }
    if opening {
        match messages.first_mut() {
            Some(first) => first.reset = true,
            None => messages.push(pb::AgentsChanged { reset: true, ..Default::default() }),
        }
    }
    messages
}

/// Whether `after` differs from `before` in its location and its time only.
fn only_moved(before: &pb::Agent, after: &pb::Agent) -> bool {
    let mut moved_back = after.clone();
    moved_back.location = before.location;
    moved_back.location_at_ms = before.location_at_ms;
    &moved_back == before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, lon: f64) -> (String, pb::Agent) {
        let spec = pb::AgentSpec { id: id.to_string(), ..Default::default() };
        (id.to_string(), pb::Agent { spec: Some(spec), location: Some(pb::Location::wgs84(lon, 30.0)), ..Default::default() })
    }

    #[test]
    fn a_stream_opens_with_everyone_then_sends_only_changes() {
        let empty = BTreeMap::new();
        let opened = changes(&empty, &empty, true, false);
        assert_eq!(opened.len(), 1);
        assert!(opened[0].reset && opened[0].agents.is_empty(), "an empty set still opens the stream");

        let before: BTreeMap<_, _> = [agent("a", 120.0), agent("b", 120.0)].into();
        let after: BTreeMap<_, _> = [agent("b", 120.1), agent("c", 120.0)].into();
        assert!(changes(&before, &before, false, false).is_empty(), "nothing changed, nothing sent");
        let diff = changes(&before, &after, false, false);
        assert_eq!(diff.len(), 1);
        let ids: Vec<&str> = diff[0].agents.iter().filter_map(|agent| agent.spec.as_ref()).map(|spec| spec.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"], "b moved, c is new");
        assert_eq!(diff[0].gone_ids, ["a"]);
        assert!(!diff[0].reset);
    }

    #[test]
    fn large_changes_come_in_chunks_with_the_reset_first() {
        let many: BTreeMap<_, _> = (0..2500).map(|index| agent(&format!("p{index:05}"), 120.0)).collect();
        let opened = changes(&BTreeMap::new(), &many, true, false);
        assert_eq!(opened.iter().map(|message| message.agents.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
        assert_eq!(opened.iter().filter(|message| message.reset).count(), 1);
        assert!(opened[0].reset);
        let gone = changes(&many, &BTreeMap::new(), false, false);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].gone_ids.len(), 2500);
    }

    #[test]
    fn with_compact_moves_a_person_who_only_moved_is_a_move() {
        let before: BTreeMap<_, _> = [agent("a", 120.0), agent("b", 120.0)].into();
        let mut after: BTreeMap<_, _> = [agent("a", 120.5), agent("b", 120.0)].into();
        if let Some(a) = after.get_mut("a") {
            a.location_at_ms = 5;
        }
        if let Some(b) = after.get_mut("b") {
            b.connected = true;
        }
        let diff = changes(&before, &after, false, true);
        let ids: Vec<&str> = diff
            .iter()
            .flat_map(|message| &message.agents)
            .filter_map(|agent| agent.spec.as_ref())
            .map(|spec| spec.id.as_str())
            .collect();
        assert_eq!(ids, ["b"], "b changed more than its place: a whole record");
        let moves = diff.iter().find(|message| !message.moved_ids.is_empty()).expect("a move");
        assert_eq!(
            (moves.moved_ids.as_slice(), moves.moved_lons.as_slice(), moves.moved_lats.as_slice(), moves.moved_at_ms.as_slice()),
            (&["a".to_string()][..], &[120.5][..], &[30.0][..], &[5][..])
        );
        let whole = changes(&before, &after, false, false);
        assert!(whole.iter().all(|message| message.moved_ids.is_empty()), "moves only when asked for");
        assert_eq!(whole[0].agents.len(), 2);
        let opened = changes(&BTreeMap::new(), &after, true, true);
        assert_eq!(opened[0].agents.len(), 2, "a stream opens with whole records");
        assert!(opened[0].moved_ids.is_empty());
    }
}
