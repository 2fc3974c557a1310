//! Soft state: who is connected and where they are now. Kept in memory,
//! refreshed by the people's sessions, never journaled one by one.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::areas::{AreaLevel, AreaMap};
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
    /// The deepest area the live location lies in, by its number in the
    /// map (`Engine::live_placement` gives the placement): a number, not
    /// the placement's six area ids, which every person would copy. Placed
    /// again whenever the map changes, which renumbers the areas.
    pub placed_in: Option<u32>,
    /// The travel mode the person is in the spatial index under (their
    /// profile's when they last reported a location).
    pub indexed_as: TravelMode,
    /// The person's skills while located, as bits (`SkillBits`): a copy of
    /// the roster's, so that the candidate search rejects the unskilled
    /// without a roster look-up. (Bits, not the names: a set of strings
    /// was a B-tree leaf of about 300 bytes for everyone with a skill.)
    pub skills: u64,
    /// Whether some of the person's skills have no bit (beyond the first
    /// 64 skills seen): then the roster says whether they hold those.
    pub skills_beyond_bits: bool,
    /// A copy of the roster's "free to take an offer" (available, holding
    /// nothing, answering nothing), kept in step by evolve.
    pub free: bool,
    /// What else the search reads of the roster record, copied while
    /// located so that a search looks up nobody on the roster (a
    /// `BTreeMap` keyed by strings: at a million people, a dozen cache
    /// misses a look-up). `None`: not on the roster.
    pub roster: Option<RosterCopy>,
}

impl LiveAgent {
    /// What the index holds of a located person.
    pub fn indexed(&self) -> Indexed {
        Indexed { slot: self.slot, skills: self.skills, free: self.free }
    }
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
    /// Everyone who ever connected, with their live record.
    pub agents: LiveAgents,
    /// A buffer placing a location reuses (`AreaMap::locate`), so that a
    /// location update allocates nothing.
    pub area_candidates: Vec<(AreaLevel, u32)>,
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
    /// Each person's last reported location and when, kept after their
    /// session ends: where a welfare check or a help call goes when no
    /// live location is left. Personal data.
    pub last_known: HashMap<AgentId, (crate::spatial::Position, Millis)>,
    /// People whose session ended while their phone takes notifications,
    /// by when their location goes stale: until then they stay located
    /// (in the search, keeping an open offer) though not connected.
    pub reachable_until: BTreeSet<(Millis, AgentId)>,
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
    /// The bits of `skills`, numbering the skills seen for the first time,
    /// and whether some of them got no bit.
    pub fn of(&mut self, skills: &BTreeSet<String>) -> (u64, bool) {
        let mut beyond = false;
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
            } else {
                beyond = true;
            }
        }
        (mask, beyond)
    }

    /// The bits of `skills` as [`SkillBits::of`] gave them, without
    /// numbering anything: `None` when one of them was never numbered.
    pub fn known(&self, skills: &BTreeSet<String>) -> Option<(u64, bool)> {
        let mut mask = 0;
        let mut beyond = false;
        for skill in skills {
            let bit = *self.bits.get(skill)?;
            if bit < 64 {
                mask |= 1 << bit;
            } else {
                beyond = true;
            }
        }
        Some((mask, beyond))
    }

    /// Whether a located person with skill bits `held` (and
    /// `beyond_bits`) has every one of `skills`: `None` when the bits
    /// cannot tell (a skill asked for has no bit and the person has skills
    /// without one).
    pub fn holds(&self, skills: &BTreeSet<String>, held: u64, beyond_bits: bool) -> Option<bool> {
        for skill in skills {
            match self.bits.get(skill) {
                // Every located person's skills are numbered: a skill never
                // numbered is held by nobody located.
                None => return Some(false),
                Some(bit) if *bit < 64 => {
                    if held & (1 << bit) == 0 {
                        return Some(false);
                    }
                }
                Some(_) if beyond_bits => return None,
                Some(_) => return Some(false),
            }
        }
        Some(true)
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

/// The live records, by dense number (`LiveAgent::slot`, given at a
/// person's first connection and kept), and the one map from id to
/// number: an update finds its record with one hash, and the search goes
/// from an index entry to its record and id with none.
#[derive(Default)]
pub struct LiveAgents {
    /// Each person's dense number, found by the hash of their id and
    /// checked against `ids`: the id is kept once, there (a map keyed by
    /// the id would keep a second copy, and 32-byte buckets for 4-byte
    /// numbers).
    slots: HashTable<u32>,
    hasher: RandomState,
    records: Vec<LiveAgent>,
    ids: Vec<AgentId>,
}

impl LiveAgents {
    /// The live record of `agent`, made (with the next dense number) if
    /// they never connected.
    pub fn record_for(&mut self, agent: &AgentId) -> &mut LiveAgent {
        let slot = match self.slot(agent) {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.ids.len()).expect("fewer than 4 billion people");
                self.ids.push(agent.clone());
                self.records.push(LiveAgent { slot, ..LiveAgent::default() });
                let (hasher, ids) = (&self.hasher, &self.ids);
                self.slots.insert_unique(hasher.hash_one(agent), slot, |slot| hasher.hash_one(&ids[*slot as usize]));
                slot
            }
        };
        &mut self.records[slot as usize]
    }

    /// The dense number of `agent`, if they ever connected.
    fn slot(&self, agent: &AgentId) -> Option<u32> {
        self.slots.find(self.hasher.hash_one(agent), |slot| &self.ids[*slot as usize] == agent).copied()
    }

    /// The live record of `agent`, if they ever connected.
    pub fn get(&self, agent: &AgentId) -> Option<&LiveAgent> {
        self.slot(agent).map(|slot| &self.records[slot as usize])
    }

    pub fn get_mut(&mut self, agent: &AgentId) -> Option<&mut LiveAgent> {
        self.slot(agent).map(|slot| &mut self.records[slot as usize])
    }

    pub fn contains_key(&self, agent: &AgentId) -> bool {
        self.slot(agent).is_some()
    }

    /// The live record of dense number `slot`, as the index gives it.
    pub fn by_slot(&self, slot: u32) -> &LiveAgent {
        &self.records[slot as usize]
    }

    /// The id of dense number `slot`.
    pub fn id(&self, slot: u32) -> &AgentId {
        &self.ids[slot as usize]
    }

    /// Everyone who ever connected with their live record, by dense number.
    pub fn iter(&self) -> impl Iterator<Item = (&AgentId, &LiveAgent)> {
        self.ids.iter().zip(&self.records)
    }

    pub fn values(&self) -> impl Iterator<Item = &LiveAgent> {
        self.records.iter()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut LiveAgent> {
        self.records.iter_mut()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&AgentId, &mut LiveAgent)> {
        self.ids.iter().zip(&mut self.records)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl<'a> IntoIterator for &'a LiveAgents {
    type Item = (&'a AgentId, &'a LiveAgent);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, AgentId>, std::slice::Iter<'a, LiveAgent>>;

    fn into_iter(self) -> Self::IntoIter {
        self.ids.iter().zip(&self.records)
    }
}

impl std::ops::Index<&AgentId> for LiveAgents {
    type Output = LiveAgent;

    /// Panics when `agent` never connected, as a map's index does.
    fn index(&self, agent: &AgentId) -> &LiveAgent {
        self.get(agent).expect("a live record of someone who connected")
    }
}

impl Live {
    /// Places everyone again after the map changed.
    pub fn replace_everyone(&mut self, areas: &AreaMap) {
        for live in self.agents.values_mut() {
            if let Some(at) = live.location {
                live.placed_in = areas.locate(at, &mut self.area_candidates);
            }
        }
    }

    pub fn connected_count(&self) -> usize {
        self.agents.values().filter(|live| live.connected).count()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::SkillBits;

    fn set(skills: &[&str]) -> BTreeSet<String> {
        skills.iter().map(|skill| skill.to_string()).collect()
    }

    #[test]
    fn skills_beyond_the_64_bits_are_left_to_the_roster() {
        let mut bits = SkillBits::default();
        let many: Vec<String> = (0..70).map(|n| format!("skill{n:02}")).collect();
        let everyone = many.iter().cloned().collect::<BTreeSet<String>>();
        let (mask, beyond) = bits.of(&everyone);
        assert_eq!(mask, u64::MAX);
        assert!(beyond, "70 skills: six have no bit");
        let (first_only, beyond_first) = bits.of(&set(&["skill00"]));
        assert_eq!((first_only, beyond_first), (1, false));
        assert_eq!(bits.holds(&set(&["skill00"]), first_only, beyond_first), Some(true));
        assert_eq!(bits.holds(&set(&["skill01"]), first_only, beyond_first), Some(false));
        assert_eq!(bits.holds(&set(&["nobody"]), mask, beyond), Some(false), "never numbered: nobody located holds it");
        assert_eq!(bits.holds(&set(&["skill69"]), first_only, false), Some(false), "no skill beyond the bits at all");
        assert_eq!(bits.holds(&set(&["skill69"]), mask, true), None, "the bits cannot tell");
        assert_eq!(bits.known(&everyone), Some((mask, true)));
        assert_eq!(bits.required(&set(&["skill69"])), None);
    }
}
