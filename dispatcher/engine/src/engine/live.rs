//! Soft state: who is connected and where they are now. Kept in memory,
//! refreshed by the people's sessions, never journaled one by one.

use std::collections::{BTreeSet, HashMap};

use crate::areas::{AreaMap, Placement};
use crate::ids::{AgentId, IncidentId, Millis};
use crate::roster::TravelMode;
use crate::spatial::{PeopleIndex, Position};

#[derive(Clone, Debug, Default)]
pub struct LiveAgent {
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
}

#[derive(Default)]
pub struct Live {
    pub agents: HashMap<AgentId, LiveAgent>,
    /// Connected people with a location.
    pub index: PeopleIndex,
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

impl Live {
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
