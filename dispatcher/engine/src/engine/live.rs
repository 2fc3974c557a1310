//! Soft state: who is connected and where they are now. Kept in memory,
//! refreshed by the people's sessions, never journaled one by one.

use std::collections::{BTreeSet, HashMap};

use crate::areas::{AreaMap, Placement};
use crate::ids::{AgentId, IncidentId, Millis};
use crate::roster::{AgentRecord, Role, TravelMode};
use crate::spatial::{Indexed, PeopleIndex, Position};

#[derive(Clone, Debug, Default)]
pub struct LiveAgent {
    /// The person's dense number, given at their first connection and
    /// kept: the spatial index holds it instead of the id.
    pub slot: u32,
    pub connected: bool,
    /// Last reported location while connected; personal data.
    pub location: Option<Position>,
    pub located_at: Millis,
    /// Where the live location places the person.
    pub placement: Placement,
    /// The travel mode the person is in the spatial index under (their
    /// profile's when they last reported a location).
    pub indexed_as: TravelMode,
    /// The person's skills while located: a copy of the roster's, so that
    /// the candidate search rejects the unskilled without a roster look-up.
    pub skills: BTreeSet<String>,
    /// A copy of the roster's "free to take an offer" (available, holding
    /// nothing, answering nothing), kept in step by evolve.
    pub free: bool,
    /// What else the search reads of the roster record, copied while
    /// located so that a search looks up nobody on the roster (a
    /// `BTreeMap` keyed by strings: at a million people, a dozen cache
    /// misses a look-up). `None`: not on the roster.
    pub roster: Option<RosterCopy>,
}

/// The role and recent assignments of a located person, kept in step by
/// evolve like the other live copies.
#[derive(Clone, Debug, PartialEq)]
pub struct RosterCopy {
    pub role: Role,
    pub recent_assignments: Vec<Millis>,
}

impl RosterCopy {
    pub fn of(record: &AgentRecord) -> RosterCopy {
        RosterCopy { role: record.profile.role, recent_assignments: record.recent_assignments.clone() }
    }
}

#[derive(Default)]
pub struct Live {
    pub agents: HashMap<AgentId, LiveAgent>,
    /// Everyone who ever connected, by their dense number (`LiveAgent::slot`).
    pub ids: Vec<AgentId>,
    /// Connected people with a location, with the copies the search filters on.
    pub index: PeopleIndex,
    /// The bit of each skill in the index's copies.
    pub skill_bits: SkillBits,
    /// When incidents nobody fits are tried again.
    pub next_retry: Option<Millis>,
    /// When grid staffing is next checked against the minimum.
    pub next_staffing_check: Option<Millis>,
    /// Batch assignment: the window opened by the last dispatch, if any.
    pub batch: Option<BatchWindow>,
    /// Batch assignment: incidents waiting for the end of the window.
    pub batch_queue: BTreeSet<IncidentId>,
}

/// A batch window: incidents wanting offers before `until` wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchWindow {
    pub until: Millis,
    /// The incident whose dispatch opened the window: it alone is not held
    /// (a decline or timeout of its own offer is re-offered at once).
    pub opened_by: Option<IncidentId>,
    pub window_ms: u64,
    pub max_incidents: u32,
}

/// Skills numbered as bits for the index's copies, in the order they were
/// first seen on a located person. Only the first 64 get a bit; a search
/// for a skill without one does not filter on skills in the index (the
/// full check still runs on everyone it finds).
#[derive(Default)]
pub struct SkillBits {
    bits: HashMap<String, u32>,
}

impl SkillBits {
    /// The bits of `skills`, numbering the skills seen for the first time.
    pub fn of(&mut self, skills: &BTreeSet<String>) -> u64 {
        let mut mask = 0;
        for skill in skills {
            let bit = match self.bits.get(skill) {
                Some(bit) => *bit,
                None => {
                    let next = self.bits.len() as u32;
                    self.bits.insert(skill.clone(), next);
                    next
                }
            };
            if bit < 64 {
                mask |= 1 << bit;
            }
        }
        mask
    }

    /// The bits a person must hold to have every one of `skills`, or `None`
    /// when one of them has no bit (then the index cannot tell).
    pub fn required(&self, skills: &BTreeSet<String>) -> Option<u64> {
        let mut mask = 0;
        for skill in skills {
            // A skill no located person was ever seen with: nobody in the
            // index holds it, but say "cannot tell" and let the checks say no.
            let bit = *self.bits.get(skill)?;
            if bit >= 64 {
                return None;
            }
            mask |= 1 << bit;
        }
        Some(mask)
    }
}

impl Live {
    /// The live record of `agent`, made (with the next dense number) if
    /// they never connected.
    pub fn record_for(&mut self, agent: &AgentId) -> &mut LiveAgent {
        let ids = &mut self.ids;
        self.agents.entry(agent.clone()).or_insert_with(|| {
            let slot = u32::try_from(ids.len()).expect("fewer than 4 billion people");
            ids.push(agent.clone());
            LiveAgent { slot, ..LiveAgent::default() }
        })
    }

    /// What the index holds of a located person.
    pub fn indexed(live: &LiveAgent, skill_bits: &mut SkillBits) -> Indexed {
        Indexed { slot: live.slot, skills: skill_bits.of(&live.skills), free: live.free }
    }

    /// Places everyone again after the map changed.
    pub fn replace_everyone(&mut self, areas: &AreaMap) {
        for live in self.agents.values_mut() {
            if let Some(at) = live.location {
                live.placement = areas.place(at);
            }
        }
    }

    pub fn connected_count(&self) -> usize {
        self.agents.values().filter(|live| live.connected).count()
    }
}
