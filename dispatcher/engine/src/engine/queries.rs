//! The questions the services ask of the state, typed: what to look for
//! goes in as a query struct, domain records come back (the server turns
//! them into wire messages and masks them by role). Reading never changes
//! the state; an area that is not on the map is `NotFound`.

use crate::accounts::Operator;
use crate::areas::{AreaLevel, AreaSpec, ServiceCentreSpec};
use crate::ids::{ActivationId, AgentId, AreaId, CallupId, IncidentId, Millis, PlanId};
use crate::incident::Incident;
use crate::plans::PlanSpec;
use crate::roster::{AgentRecord, AgentStatus};

use super::mobilise::{CommunityCoverage, GridStaffing};
use super::{Activation, Callup, Engine, Rejection};

/// Which people to list: all filters apply together, ordered by id.
#[derive(Clone, Debug, Default)]
pub struct AgentQuery {
    pub status: Option<AgentStatus>,
    /// People whose home area is this area or lies within it.
    pub area: Option<AreaId>,
    pub connected_only: bool,
    /// Only people whose id comes after this one (the previous page's last).
    pub after: Option<AgentId>,
    pub limit: usize,
}

/// Which incidents to list, ordered by id.
#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    pub open_only: bool,
    /// Only incidents whose id comes after this one.
    pub after: Option<IncidentId>,
    pub limit: usize,
}

/// Which call-ups to list.
#[derive(Clone, Debug, Default)]
pub struct CallupQuery {
    pub open_only: bool,
    /// Call-ups of this area or of areas within it.
    pub area: Option<AreaId>,
}

/// Service coverage of an area (or the whole map): each community's share
/// of grids within 15 minutes of a service centre, and each grid's staffing.
#[derive(Clone, Debug, PartialEq)]
pub struct CoverageReport {
    pub communities: Vec<CommunityCoverage>,
    pub grids: Vec<GridStaffing>,
}

impl Engine {
    pub fn agent(&self, id: &AgentId) -> Option<&AgentRecord> {
        self.state.agents.get(id)
    }

    pub fn agents(&self, query: &AgentQuery) -> Result<Vec<&AgentRecord>, Rejection> {
        let state = &self.state;
        let area_level = match &query.area {
            Some(area) => Some((self.known_area(area)?.level, area)),
            None => None,
        };
        let from = query.after.clone().unwrap_or_else(|| AgentId::new(""));
        Ok(state
            .agents
            .range(from..)
            .map(|(_, record)| record)
            .filter(|record| query.after.as_ref().is_none_or(|after| &record.profile.id != after))
            .filter(|record| query.status.is_none_or(|status| record.status == status))
            .filter(|record| !query.connected_only || self.live_agent(&record.profile.id).is_some_and(|live| live.connected))
            .filter(|record| match area_level {
                None => true,
                Some((level, area)) => {
                    record.profile.home_area.as_ref().is_some_and(|home| {
                        state.areas.area_placement(home).is_some_and(|placement| placement.within(level, area))
                    })
                }
            })
            .take(query.limit)
            .collect())
    }

    pub fn incident(&self, id: &IncidentId) -> Option<&Incident> {
        self.state.incidents.get(id)
    }

    pub fn incidents(&self, query: &IncidentQuery) -> Vec<&Incident> {
        let state = &self.state;
        let from = query.after.clone().unwrap_or_else(|| IncidentId::new(""));
        let ids: Box<dyn Iterator<Item = &IncidentId>> = if query.open_only {
            Box::new(state.open_incidents.range(from..))
        } else {
            Box::new(state.incidents.range(from..).map(|(id, _)| id))
        };
        ids.filter(|id| query.after.as_ref().is_none_or(|after| *id != after))
            .filter_map(|id| state.incidents.get(id))
            .take(query.limit)
            .collect()
    }

    /// Areas of one level (all with `None`), in the map's order.
    pub fn areas_at(&self, level: Option<AreaLevel>) -> impl Iterator<Item = &AreaSpec> {
        self.state.areas.areas().filter(move |area| level.is_none_or(|level| area.level == level))
    }

    pub fn service_centres(&self) -> impl Iterator<Item = &ServiceCentreSpec> {
        self.state.areas.service_centres()
    }

    pub fn area(&self, id: &AreaId) -> Option<&AreaSpec> {
        self.state.areas.get(id)
    }

    /// The first of `areas` that is not on the map.
    pub fn first_unknown_area<'a>(&self, areas: impl IntoIterator<Item = &'a AreaId>) -> Option<&'a AreaId> {
        areas.into_iter().find(|area| !self.state.areas.contains(area))
    }

    pub fn callups(&self, query: &CallupQuery) -> Result<Vec<&Callup>, Rejection> {
        let state = &self.state;
        if let Some(area) = &query.area {
            self.known_area(area)?;
        }
        Ok(state
            .callups
            .values()
            .filter(|callup| !query.open_only || callup.is_open())
            .filter(|callup| {
                query.area.as_ref().is_none_or(|area| {
                    &callup.area == area
                        || state
                            .areas
                            .area_placement(&callup.area)
                            .is_some_and(|placement| placement.areas().any(|(_, ancestor)| ancestor == area))
                })
            })
            .collect())
    }

    /// Coverage of `area` (the whole map with `None`) at `now`.
    pub fn coverage_report(&self, area: Option<&AreaId>, now: Millis) -> Result<CoverageReport, Rejection> {
        if let Some(area) = area {
            self.known_area(area)?;
        }
        let within = |grid: &AreaId| {
            area.is_none_or(|area| {
                self.state
                    .areas
                    .area_placement(grid)
                    .is_some_and(|placement| placement.areas().any(|(_, ancestor)| ancestor == area))
            })
        };
        Ok(CoverageReport {
            communities: self.coverage(area),
            grids: self.grid_staffing(now).into_iter().filter(|staffing| within(&staffing.grid)).collect(),
        })
    }

    /// The hash of the person's current token.
    pub fn agent_token_hash(&self, id: &AgentId) -> Option<&str> {
        self.state.agent_tokens.get(id).map(String::as_str)
    }

    /// People on the roster without a token (those loaded from a roster
    /// file at start, say), in id order.
    pub fn agents_without_token(&self) -> impl Iterator<Item = &AgentId> {
        self.state.agents.keys().filter(|id| !self.state.agent_tokens.contains_key(*id))
    }

    pub fn plans(&self) -> impl Iterator<Item = &PlanSpec> {
        self.state.plans.values()
    }

    pub fn plan(&self, id: &PlanId) -> Option<&PlanSpec> {
        self.state.plans.get(id)
    }

    pub fn activations(&self) -> impl Iterator<Item = &Activation> {
        self.state.activations.values()
    }

    pub fn activation(&self, id: &ActivationId) -> Option<&Activation> {
        self.state.activations.get(id)
    }

    pub fn callup(&self, id: &CallupId) -> Option<&Callup> {
        self.state.callups.get(id)
    }

    pub fn operator(&self, name: &str) -> Option<&Operator> {
        self.state.operators.get(name)
    }

    /// Operator accounts by name.
    pub fn operators(&self) -> impl Iterator<Item = (&String, &Operator)> {
        self.state.operators.iter()
    }

    fn known_area(&self, area: &AreaId) -> Result<&AreaSpec, Rejection> {
        self.state.areas.get(area).ok_or_else(|| {
            Rejection::NotFound(format!("area {} is not on the map; list areas to find its id", crate::ids::quote(area.as_str())))
        })
    }
}
