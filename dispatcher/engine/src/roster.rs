//! The roster: the people who can be dispatched, their roles, skills and status.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use crate::policy::Speeds;
use crate::spatial::Position;

/// Roles from DOMAIN.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CommunityWorker,
    GridLeader,
    BuildingLeader,
    UnitLeader,
    RegisteredMember,
    SunkCadre,
    Volunteer,
    NewEmployment,
    PropertyStaff,
    OwnersCommittee,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CommunityWorker,
        Role::GridLeader,
        Role::BuildingLeader,
        Role::UnitLeader,
        Role::RegisteredMember,
        Role::SunkCadre,
        Role::Volunteer,
        Role::NewEmployment,
        Role::PropertyStaff,
        Role::OwnersCommittee,
    ];
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TravelMode {
    #[default]
    Walk,
    Bike,
    Car,
}

impl TravelMode {
    pub fn speed_mps(self, speeds: &Speeds) -> f64 {
        match self {
            TravelMode::Walk => speeds.walk_mps,
            TravelMode::Bike => speeds.bike_mps,
            TravelMode::Car => speeds.car_mps,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Available,
    Busy,
    OffDuty,
}

impl AgentStatus {
    pub fn name(self) -> &'static str {
        match self {
            AgentStatus::Available => "available",
            AgentStatus::Busy => "busy",
            AgentStatus::OffDuty => "off duty",
        }
    }
}

/// Who a person is, as the roster records them. Phone and home are personal
/// data: they never go into logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub id: AgentId,
    pub name: String,
    pub role: Role,
    pub skills: BTreeSet<String>,
    pub phone: String,
    pub home_area: Option<AreaId>,
    pub travel_mode: TravelMode,
    /// The status a new person starts with: available when true.
    pub on_duty: bool,
    pub home: Option<Position>,
}

/// A person's durable dispatch state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub profile: AgentProfile,
    pub status: AgentStatus,
    /// The one assignment a person may hold.
    pub current_incident: Option<IncidentId>,
    /// The one offer a person may be answering.
    pub open_offer: Option<(OfferId, IncidentId)>,
    /// When recent assignments were made (pruned to the workload window).
    pub recent_assignments: Vec<Millis>,
}

impl AgentRecord {
    pub fn new(profile: AgentProfile) -> Self {
        let status = if profile.on_duty { AgentStatus::Available } else { AgentStatus::OffDuty };
        AgentRecord { profile, status, current_incident: None, open_offer: None, recent_assignments: Vec::new() }
    }

    pub fn has_skills(&self, required: &BTreeSet<String>) -> bool {
        required.is_subset(&self.profile.skills)
    }

    /// Free to take an offer: available, holding nothing, answering nothing.
    pub fn is_free(&self) -> bool {
        self.status == AgentStatus::Available && self.current_incident.is_none() && self.open_offer.is_none()
    }
}

/// Normalises skill names: trimmed, lowercase, no empties.
pub fn normalise_skills<'a>(skills: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    skills.into_iter().map(|skill| skill.trim().to_lowercase()).filter(|skill| !skill.is_empty()).collect()
}
