//! Soft state: who is connected and where they are now. Kept in memory,
//! refreshed by the people's sessions, never journaled one by one.

use std::collections::HashMap;

use crate::areas::{AreaMap, Placement};
use crate::ids::{AgentId, Millis};
use crate::spatial::{PeopleIndex, Position};

#[derive(Clone, Debug, Default)]
pub struct LiveAgent {
    pub connected: bool,
    /// Last reported location while connected; personal data.
    pub location: Option<Position>,
    pub located_at: Millis,
    /// Where the live location places the person.
    pub placement: Placement,
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
