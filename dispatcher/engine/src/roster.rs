//! The roster: the people who can be dispatched, their roles, skills and status.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AreaId, IncidentId, Millis, OfferId, check_id};
use crate::spatial::Position;
pub use crate::travel::TravelMode;

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

pub use pingji_rules::{MAX_NAME_CHARS, MAX_PHONE_CHARS, MAX_SKILL_CHARS, MAX_SKILLS, check_name, check_phone, check_skills};

/// Every limit on a person's record; the problem names the field.
pub fn check_profile(profile: &AgentProfile) -> Result<(), String> {
    check_id("id", profile.id.as_str())?;
    check_name("name", &profile.name)?;
    check_skills(&profile.skills)?;
    check_phone(&profile.phone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skills(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn skills_are_short_lowercase_words_and_few() {
        assert_eq!(check_skills(&skills(&["first_aid", "elder_care", "level2"])), Ok(()));
        let many: BTreeSet<String> = (0..33).map(|n| format!("skill_{n}")).collect();
        assert!(check_skills(&many).expect_err("33").contains("33 skills given; at most 32"));
        assert!(check_skills(&skills(&[&"a".repeat(33)])).expect_err("long").contains("33 characters long"));
        assert!(check_skills(&skills(&["first aid"])).expect_err("space").contains("' ', which skills may not have"));
        assert!(check_skills(&skills(&["急救"])).expect_err("han").contains("a-z"));
    }

    #[test]
    fn a_phone_is_digits_plus_dashes_and_spaces_and_is_never_repeated() {
        for good in ["", "13912345678", "+86 139-1234-5678"] {
            assert_eq!(check_phone(good), Ok(()), "{good}");
        }
        for bad in ["17066554433abc", "+-", "1".repeat(33).as_str()] {
            let problem = check_phone(bad).expect_err(bad);
            assert!(problem.contains("phone is not a phone number") && !problem.contains("1706"), "{problem}");
        }
    }

    #[test]
    fn names_are_up_to_100_characters_without_control_characters() {
        assert_eq!(check_name("name", &"王".repeat(100)), Ok(()));
        assert!(check_name("name", " ").expect_err("blank").contains("name is empty"));
        assert!(check_name("name", &"王".repeat(101)).expect_err("long").contains("101 characters long; at most 100"));
        assert!(check_name("name", "li\u{1b}[31m").expect_err("escape").contains("control character ('\\u{1b}')"));
    }
}
