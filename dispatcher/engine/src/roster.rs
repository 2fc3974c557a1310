//! The roster: the people who can be dispatched, their roles, skills and status.

use std::collections::{BTreeMap, BTreeSet};

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

/// Who on the roster lives in each area (their `home_area`), so that a
/// call-up finds an area's reserves without walking the whole roster.
#[derive(Clone, Debug, Default)]
pub struct HomeIndex {
    residents: BTreeMap<AreaId, BTreeSet<AgentId>>,
}

impl HomeIndex {
    pub fn of<'a>(profiles: impl IntoIterator<Item = &'a AgentProfile>) -> HomeIndex {
        let mut index = HomeIndex::default();
        for profile in profiles {
            index.add(profile);
        }
        index
    }

    pub fn add(&mut self, profile: &AgentProfile) {
        if let Some(home) = &profile.home_area {
            self.residents.entry(home.clone()).or_default().insert(profile.id.clone());
        }
    }

    pub fn remove(&mut self, profile: &AgentProfile) {
        if let Some(home) = &profile.home_area
            && let Some(residents) = self.residents.get_mut(home)
        {
            residents.remove(&profile.id);
            if residents.is_empty() {
                self.residents.remove(home);
            }
        }
    }

    /// The people whose home area is `area` itself (not its sub-areas).
    pub fn residents(&self, area: &AreaId) -> impl Iterator<Item = &AgentId> {
        self.residents.get(area).into_iter().flatten()
    }
}

/// Who on the roster has each skill: to tell a misspelt skill from a real
/// one when an incident is reported, and to count who on the whole roster
/// could ever take an incident, without walking everyone. Derived from the
/// roster, never journaled; the engine keeps it in step with every change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkillIndex {
    holders: BTreeMap<String, BTreeSet<AgentId>>,
}

impl SkillIndex {
    pub fn of<'a>(profiles: impl IntoIterator<Item = &'a AgentProfile>) -> SkillIndex {
        let mut index = SkillIndex::default();
        for profile in profiles {
            index.add(profile);
        }
        index
    }

    pub fn add(&mut self, profile: &AgentProfile) {
        for skill in &profile.skills {
            self.holders.entry(skill.clone()).or_default().insert(profile.id.clone());
        }
    }

    pub fn remove(&mut self, profile: &AgentProfile) {
        for skill in &profile.skills {
            if let Some(holders) = self.holders.get_mut(skill) {
                holders.remove(&profile.id);
                if holders.is_empty() {
                    self.holders.remove(skill);
                }
            }
        }
    }

    /// Whether anyone on the roster has `skill`.
    pub fn knows(&self, skill: &str) -> bool {
        self.holders.contains_key(skill)
    }

    /// The people with `skill` (none for a skill nobody has).
    pub fn holders(&self, skill: &str) -> Option<&BTreeSet<AgentId>> {
        self.holders.get(skill)
    }

    /// The known skills nearest to `unknown` by edit distance, nearest
    /// first (then by name), at most `limit`: what the operator probably
    /// meant.
    pub fn nearest(&self, unknown: &str, limit: usize) -> Vec<&str> {
        let mut ranked: Vec<(usize, &str)> =
            self.holders.keys().map(|known| (edit_distance(unknown, known), known.as_str())).collect();
        ranked.sort();
        ranked.into_iter().take(limit).map(|(_, known)| known).collect()
    }
}

/// Levenshtein distance between two words, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, a_char) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
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

    fn profile(id: &str, skills: &[&str]) -> AgentProfile {
        AgentProfile {
            id: AgentId::new(id),
            name: id.to_string(),
            role: Role::Volunteer,
            skills: skills.iter().map(|skill| skill.to_string()).collect(),
            phone: String::new(),
            home_area: None,
            travel_mode: TravelMode::Walk,
            on_duty: true,
            home: None,
        }
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("firstaid", "first_aid"), 1);
        assert_eq!(edit_distance("diving", "driving"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("急救", "急救"), 0);
    }

    #[test]
    fn the_index_follows_the_roster_and_names_the_nearest_skills() {
        let medic = profile("p1", &["first_aid", "driving"]);
        let mut index = SkillIndex::of([&medic, &profile("p2", &["elder_care"])]);
        assert!(index.knows("first_aid") && !index.knows("firstaid"));
        assert_eq!(index.nearest("firstaid", 2), ["first_aid", "driving"]);
        index.remove(&medic);
        index.add(&profile("p1", &["electrician"]));
        assert!(!index.knows("first_aid"), "a skill nobody has any more is forgotten");
        assert_eq!(index.holders("electrician").map(BTreeSet::len), Some(1));
    }

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
