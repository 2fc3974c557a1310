//! The invariants, checked after every step against what is durable: the
//! journals in the Redis model, folded by the real engine (`Engine::replay`)
//! into one state per shard, independent of any process's memory.
//!
//! - No person holds two assignments: across every shard's open incidents,
//!   each person is assigned (and not done) at most once.
//! - No acknowledged change is lost: every batch an owner appended and then
//!   acted on (told a client, a peer, a person) is in the journal at its
//!   sequence numbers, unchanged (checked in the step it was acknowledged
//!   and for all of them at the end); and an owner that recovers a shard
//!   holds every acknowledged incident of it and ends where the journal ends.
//! - At most one writer per shard per epoch: every append is made by the
//!   process holding that epoch, and no append carries an epoch older than
//!   one already written (a stale owner writing after a takeover).
//! - At the end, after a quiet period with no faults: every incident
//!   reported was offered to someone (`offer_sent`) or found nobody
//!   (`no_candidates`, the escalation to the operator), and no border
//!   reservation is left held past its expiry unconfirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pingji_dispatcher::convert;
use pingji_dispatcher::journal::StoredEvent;
use pingji_engine::border::ReservationState;
use pingji_engine::engine::{Engine, State};
use pingji_engine::event::EventKind;
use pingji_engine::ids::{AgentId, IncidentId, Millis};
use pingji_engine::policy::Policy;

use crate::redis::{ProcessId, RedisModel};

/// One shard as the journal says it is.
struct Folded {
    engine: Engine,
    applied: u64,
    acknowledged: Vec<StoredEvent>,
    /// How many of the last acknowledged events are not checked yet.
    unverified: usize,
    /// Acknowledged `incident_reported` ids.
    acknowledged_incidents: BTreeSet<IncidentId>,
    /// Every incident reported, and whether it was offered or escalated.
    reported: BTreeMap<IncidentId, bool>,
    /// Which process wrote with each epoch, and the newest epoch written.
    writers: BTreeMap<u64, ProcessId>,
    newest_epoch: u64,
}

#[derive(Default)]
pub struct Checker {
    shards: BTreeMap<String, Folded>,
}

impl Checker {
    pub fn add_shard(&mut self, shard: &str, policy: Policy, state: Arc<State>) {
        let applied = state.last_seq;
        let folded = Folded {
            engine: Engine::restore(policy, (*state).clone()),
            applied,
            acknowledged: Vec::new(),
            unverified: 0,
            acknowledged_incidents: BTreeSet::new(),
            reported: BTreeMap::new(),
            writers: BTreeMap::new(),
            newest_epoch: 0,
        };
        self.shards.insert(shard.to_owned(), folded);
    }

    pub fn acknowledged(&self) -> usize {
        self.shards.values().map(|folded| folded.acknowledged.len()).sum()
    }

    /// One writer per epoch, and never an older epoch after a newer one.
    pub fn appended(&mut self, shard: &str, epoch: u64, process: ProcessId, events: &[StoredEvent]) -> Result<(), String> {
        let Some(folded) = self.shards.get_mut(shard) else { return Ok(()) };
        let first_seq = events.first().map_or(0, |event| event.seq);
        if let Some(writer) = folded.writers.get(&epoch)
            && *writer != process
        {
            return Err(format!("two writers on {shard} with epoch {epoch}: p{writer} and p{process} (seq {first_seq})"));
        }
        if epoch < folded.newest_epoch {
            return Err(format!(
                "a stale owner wrote to {shard}: p{process} appended seq {first_seq} with epoch {epoch} after epoch {} had written",
                folded.newest_epoch
            ));
        }
        folded.writers.insert(epoch, process);
        folded.newest_epoch = epoch;
        Ok(())
    }

    pub fn acknowledge(&mut self, shard: &str, events: &[StoredEvent]) {
        let Some(folded) = self.shards.get_mut(shard) else { return };
        for event in events {
            if event.kind == "incident_reported"
                && let Some(incident) = &event.incident_id
            {
                folded.acknowledged_incidents.insert(IncidentId::new(incident));
            }
        }
        folded.acknowledged.extend_from_slice(events);
        folded.unverified += events.len();
    }

    /// A new owner's engine after recovery holds every acknowledged incident.
    pub fn recovered(&self, shard: &str, engine: &Engine, journaled: u64) -> Result<(), String> {
        let Some(folded) = self.shards.get(shard) else { return Ok(()) };
        if engine.state().last_seq != journaled {
            return Err(format!(
                "the owner of {shard} recovered to seq {} but the journal ends at {journaled}",
                engine.state().last_seq
            ));
        }
        match folded.acknowledged_incidents.iter().find(|incident| engine.incident(incident).is_none()) {
            Some(lost) => Err(format!("acknowledged incident {lost} is missing from {shard} after recovery")),
            None => Ok(()),
        }
    }

    /// Open incidents across shards, with how many people hold them.
    pub fn open_incidents(&self) -> Vec<(IncidentId, usize)> {
        self.shards
            .values()
            .flat_map(|folded| {
                let state = folded.engine.state();
                state
                    .open_incidents
                    .iter()
                    .filter_map(|id| state.incidents.get(id))
                    .map(|incident| (incident.id.clone(), incident.assignments.len()))
            })
            .collect()
    }

    pub fn after_step(&mut self, redis: &RedisModel, _now: i64) -> Result<(), String> {
        for (shard, folded) in &mut self.shards {
            // Fold what was appended since the last step.
            let appended = redis.read_from(shard, folded.applied + 1);
            for stored in &appended {
                let event = convert::event_from_stored(stored)?;
                folded
                    .engine
                    .replay(&event)
                    .map_err(|problem| format!("{shard}'s journal does not replay at seq {}: {problem}", event.seq))?;
                folded.applied = event.seq;
                match &event.kind {
                    EventKind::IncidentReported { incident, .. } => {
                        folded.reported.insert(incident.clone(), false);
                    }
                    EventKind::OfferSent { offer } => {
                        folded.reported.insert(offer.incident.clone(), true);
                    }
                    EventKind::NoCandidates { incident, .. } => {
                        folded.reported.insert(incident.clone(), true);
                    }
                    _ => {}
                }
            }
            // Events acknowledged in this step are where they were
            // acknowledged (all of them again at the end: the model's stream
            // cannot rewrite an entry, so once is enough in between).
            let from = folded.acknowledged.len() - folded.unverified;
            folded.unverified = 0;
            Self::in_journal(redis, shard, &folded.acknowledged[from..])?;
        }
        self.no_one_assigned_twice()
    }

    fn in_journal(redis: &RedisModel, shard: &str, acknowledged: &[StoredEvent]) -> Result<(), String> {
        let Some(first) = acknowledged.first() else { return Ok(()) };
        let journal = redis.read_from(shard, first.seq);
        for event in acknowledged {
            let index = usize::try_from(event.seq - first.seq).unwrap_or(usize::MAX);
            if journal.get(index) != Some(event) {
                return Err(format!("acknowledged event {} ({}) of {shard} is not in its journal", event.seq, event.kind));
            }
        }
        Ok(())
    }

    fn no_one_assigned_twice(&self) -> Result<(), String> {
        let mut holding: BTreeMap<&AgentId, Vec<&IncidentId>> = BTreeMap::new();
        for folded in self.shards.values() {
            let state = folded.engine.state();
            for incident in state.open_incidents.iter().filter_map(|id| state.incidents.get(id)) {
                for assignment in incident.assignments.iter().filter(|assignment| assignment.completed_at.is_none()) {
                    holding.entry(&assignment.agent).or_default().push(&incident.id);
                }
            }
        }
        match holding.iter().find(|(_, incidents)| incidents.len() > 1) {
            Some((agent, incidents)) => Err(format!("{agent} holds two assignments at once: {incidents:?}")),
            None => Ok(()),
        }
    }

    /// After the quiet period.
    pub fn at_the_end(&self, redis: &RedisModel, now: i64) -> Result<(), String> {
        for (shard, folded) in &self.shards {
            Self::in_journal(redis, shard, &folded.acknowledged)?;
            if let Some((incident, _)) = folded.reported.iter().find(|(_, handled)| !**handled) {
                return Err(format!("incident {incident} of {shard} was never offered nor escalated"));
            }
            let left = folded
                .engine
                .state()
                .border
                .values()
                .find(|held| held.state != ReservationState::Confirmed && held.expires_at <= Millis(now));
            if let Some(held) = left {
                return Err(format!("{shard} still holds {} for {} past its expiry", held.agent, held.offer));
            }
        }
        Ok(())
    }
}
