//! Shelters and evacuation points (避难场所), and the evacuations that
//! move groups of residents to them.
//!
//! A shelter has a position, an area, a capacity and facilities (accessible,
//! medical, ...), and is open or closed: opened by hand or by a plan when it
//! activates. An evacuation is a task on an incident (category `evacuation`
//! by convention, so people are offered to it as to any incident): a group
//! of residents, with their needs, sent to the nearest open shelter with
//! room and the facilities they need, by travel time. Its places are
//! reserved when the evacuation is assigned to that shelter; a nearer
//! shelter without room is passed over (the overflow goes to the next).
//! Arrivals are checked in as counts (names are optional and personal
//! data); places not yet used are released when the incident ends.
//!
//! Two rules always hold (checked by `engine::invariants`): occupancy plus
//! reserved places is never above a shelter's capacity, and a place is
//! never given twice (a shelter's reserved places are exactly those its
//! evacuations still hold). The engine's part is in `engine::shelters`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ActivationId, AreaId, IncidentId, Millis};
use crate::spatial::Position;

crate::ids::string_id!(
    /// A shelter or evacuation point, e.g. `school-3`.
    ShelterId
);
crate::ids::string_id!(
    /// One evacuation of a group of residents, e.g. `eva-000001`.
    EvacuationId
);

/// Samples of a shelter's occupancy kept (the oldest go first).
pub const MAX_HISTORY: usize = 1000;

/// What a shelter offers, and what a group of residents may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    /// Step-free, for wheelchairs.
    Accessible,
    /// A first-aid post or medical staff.
    Medical,
    Kitchen,
    /// Power for medical devices and phones.
    Power,
    Pets,
}

impl Facility {
    pub const ALL: [Facility; 5] = [Facility::Accessible, Facility::Medical, Facility::Kitchen, Facility::Power, Facility::Pets];

    pub fn name(self) -> &'static str {
        match self {
            Facility::Accessible => "accessible",
            Facility::Medical => "medical",
            Facility::Kitchen => "kitchen",
            Facility::Power => "power",
            Facility::Pets => "pets",
        }
    }

    /// A facility by name; `wheelchair` is read as `accessible`.
    pub fn parse(text: &str) -> Option<Facility> {
        match text.trim().to_ascii_lowercase().as_str() {
            "accessible" | "wheelchair" => Some(Facility::Accessible),
            "medical" => Some(Facility::Medical),
            "kitchen" => Some(Facility::Kitchen),
            "power" => Some(Facility::Power),
            "pets" => Some(Facility::Pets),
            _ => None,
        }
    }

    /// Facilities from a list such as `accessible;medical` (`;`, `,` or
    /// spaces between them), sorted and without repeats.
    pub fn parse_list(text: &str) -> Result<Vec<Facility>, String> {
        let mut facilities = Vec::new();
        for name in text.split([';', ',', ' ']).map(str::trim).filter(|name| !name.is_empty()) {
            let facility = Facility::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Facility::ALL.iter().map(|facility| facility.name()).collect();
                format!("facility \"{name}\" is not one of {}", known.join(", "))
            })?;
            facilities.push(facility);
        }
        facilities.sort();
        facilities.dedup();
        Ok(facilities)
    }
}

/// A shelter as imported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShelterSpec {
    pub id: ShelterId,
    pub name: String,
    pub at: Position,
    /// The area it belongs to (the deepest area at its position when the
    /// import gives none).
    pub area: Option<AreaId>,
    /// Places for residents (at least 1).
    pub capacity: u32,
    /// Sorted, without repeats.
    pub facilities: Vec<Facility>,
}

impl ShelterSpec {
    pub fn has_all(&self, needs: &[Facility]) -> bool {
        needs.iter().all(|need| self.facilities.contains(need))
    }
}

/// How full a shelter is, as last alerted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShelterLevel {
    #[default]
    Normal,
    /// Places taken (occupied and reserved) at or above the policy's
    /// threshold of capacity.
    NearlyFull,
    Full,
}

impl ShelterLevel {
    pub fn name(self) -> &'static str {
        match self {
            ShelterLevel::Normal => "normal",
            ShelterLevel::NearlyFull => "nearly_full",
            ShelterLevel::Full => "full",
        }
    }

    /// The level of `taken` places of `capacity` with the alert at `percent`.
    pub fn of(taken: u32, capacity: u32, percent: u8) -> ShelterLevel {
        if capacity == 0 || taken >= capacity {
            ShelterLevel::Full
        } else if u64::from(taken) * 100 >= u64::from(capacity) * u64::from(percent) {
            ShelterLevel::NearlyFull
        } else {
            ShelterLevel::Normal
        }
    }
}

/// A shelter's occupancy after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancySample {
    pub at: Millis,
    pub occupied: u32,
    pub reserved: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shelter {
    pub spec: ShelterSpec,
    pub open: bool,
    /// People checked in and still there.
    pub occupied: u32,
    /// Places held for evacuations on their way.
    pub reserved: u32,
    pub level: ShelterLevel,
    /// The plan activation that opened it, if a plan did.
    pub opened_by: Option<ActivationId>,
    /// Occupancy after each change, oldest first (at most [`MAX_HISTORY`]).
    pub history: Vec<OccupancySample>,
}

impl Shelter {
    pub fn taken(&self) -> u32 {
        self.occupied + self.reserved
    }

    pub fn free(&self) -> u32 {
        self.spec.capacity.saturating_sub(self.taken())
    }
}

/// A group of residents sent to a shelter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evacuation {
    pub id: EvacuationId,
    pub incident: IncidentId,
    pub shelter: ShelterId,
    pub residents: u32,
    pub needs: Vec<Facility>,
    /// Nearer shelters that had no room for the group (the overflow).
    pub passed_over: Vec<ShelterId>,
    pub arrived: u32,
    /// Places given back unused (the incident ended, or by hand).
    pub released: u32,
    pub assigned_at: Millis,
    pub assigned_by: String,
}

impl Evacuation {
    /// Places this evacuation still holds at its shelter.
    pub fn held(&self) -> u32 {
        self.residents.saturating_sub(self.arrived + self.released)
    }
}

/// A shelter the dispatcher could send a group to, with its travel time.
#[derive(Clone, Debug, PartialEq)]
pub struct ShelterChoice {
    pub shelter: ShelterId,
    pub travel_s: f64,
    pub free: u32,
    /// Room for the whole group.
    pub fits: bool,
}

/// The shelters part of the durable state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShelterState {
    pub shelters: BTreeMap<ShelterId, Shelter>,
    pub evacuations: BTreeMap<EvacuationId, Evacuation>,
    /// Evacuations made so far: the next one's number.
    pub evacuations_made: u64,
}

impl ShelterState {
    /// The open shelters with every facility in `needs`, nearest first by
    /// `travel_s(position)` (ties to the id, so it is deterministic), each
    /// saying whether `residents` fit. The first that fits is the choice;
    /// those before it are the overflow.
    pub fn candidates(&self, residents: u32, needs: &[Facility], travel_s: impl Fn(Position) -> f64) -> Vec<ShelterChoice> {
        let mut choices: Vec<ShelterChoice> = self
            .shelters
            .values()
            .filter(|shelter| shelter.open && shelter.spec.has_all(needs))
            .map(|shelter| ShelterChoice {
                shelter: shelter.spec.id.clone(),
                travel_s: travel_s(shelter.spec.at),
                free: shelter.free(),
                fits: shelter.free() >= residents,
            })
            .collect();
        choices.sort_by(|a, b| a.travel_s.total_cmp(&b.travel_s).then_with(|| a.shelter.cmp(&b.shelter)));
        choices
    }
}

/// The shelter commands (`Command::Shelters`).
#[derive(Clone, Debug, PartialEq)]
pub enum ShelterCommand {
    /// Adds or changes shelters (a new one starts closed).
    Import(Vec<ShelterSpec>),
    Open {
        shelter: ShelterId,
    },
    /// No new evacuations go there; people inside and groups on their way stay.
    Close {
        shelter: ShelterId,
        reason: String,
    },
    /// Sends `residents` of an open incident, with `needs`, to `shelter`
    /// (which must be open, have them and have room) or, when `None`, to
    /// the nearest that does. Their places are reserved.
    Evacuate {
        /// The caller's id: a retry that asks the same again changes
        /// nothing, the evacuation made stands. `None`: one is given.
        id: Option<EvacuationId>,
        incident: IncidentId,
        residents: u32,
        needs: Vec<Facility>,
        shelter: Option<ShelterId>,
    },
    /// `count` people arrived: of `evacuation` (using its places), or
    /// walk-ins at `shelter` (using free places). `names` are optional.
    CheckIn {
        shelter: Option<ShelterId>,
        evacuation: Option<EvacuationId>,
        count: u32,
        names: Vec<String>,
    },
    /// `count` people left the shelter.
    CheckOut {
        shelter: ShelterId,
        count: u32,
    },
    /// Gives back the places an evacuation still holds.
    Release {
        evacuation: EvacuationId,
        reason: String,
    },
}

/// The shelter events (Event.body tags 120 to 129 on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shelter_event", rename_all = "snake_case")]
pub enum ShelterEvent {
    /// Shelters added or changed; a shelter's area is the one given, else
    /// the deepest at its position.
    SheltersImported {
        shelters: Vec<ShelterSpec>,
    },
    /// By hand, or by a plan's activation (its id set).
    ShelterOpened {
        shelter: ShelterId,
        activation: Option<ActivationId>,
    },
    ShelterClosed {
        shelter: ShelterId,
        reason: String,
    },
    /// The group's places are reserved at `shelter`; `passed_over` are the
    /// nearer open shelters with the facilities but no room.
    EvacuationAssigned {
        evacuation: EvacuationId,
        incident: IncidentId,
        shelter: ShelterId,
        residents: u32,
        needs: Vec<Facility>,
        passed_over: Vec<ShelterId>,
    },
    /// `count` people checked in at `shelter`, of `evacuation` or walk-ins.
    /// `names` are personal data: masked on every stream.
    ArrivalsCheckedIn {
        shelter: ShelterId,
        evacuation: Option<EvacuationId>,
        incident: Option<IncidentId>,
        count: u32,
        names: Vec<String>,
    },
    ResidentsLeft {
        shelter: ShelterId,
        count: u32,
    },
    /// Places an evacuation held, given back unused.
    PlacesReleased {
        evacuation: EvacuationId,
        incident: IncidentId,
        shelter: ShelterId,
        places: u32,
        reason: String,
    },
    /// A shelter's places taken (occupied and reserved) crossed the
    /// policy's threshold or filled it, or fell back below.
    ShelterLevelChanged {
        shelter: ShelterId,
        level: ShelterLevel,
        occupied: u32,
        reserved: u32,
        capacity: u32,
    },
}

impl ShelterEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ShelterEvent::SheltersImported { .. } => "shelters_imported",
            ShelterEvent::ShelterOpened { .. } => "shelter_opened",
            ShelterEvent::ShelterClosed { .. } => "shelter_closed",
            ShelterEvent::EvacuationAssigned { .. } => "evacuation_assigned",
            ShelterEvent::ArrivalsCheckedIn { .. } => "arrivals_checked_in",
            ShelterEvent::ResidentsLeft { .. } => "residents_left",
            ShelterEvent::PlacesReleased { .. } => "places_released",
            ShelterEvent::ShelterLevelChanged { .. } => "shelter_level_changed",
        }
    }

    pub fn incident_id(&self) -> Option<&IncidentId> {
        match self {
            ShelterEvent::EvacuationAssigned { incident, .. } | ShelterEvent::PlacesReleased { incident, .. } => Some(incident),
            ShelterEvent::ArrivalsCheckedIn { incident, .. } => incident.as_ref(),
            _ => None,
        }
    }

    /// The shelter an event is about (every kind but an import).
    pub fn shelter_id(&self) -> Option<&ShelterId> {
        match self {
            ShelterEvent::SheltersImported { .. } => None,
            ShelterEvent::ShelterOpened { shelter, .. }
            | ShelterEvent::ShelterClosed { shelter, .. }
            | ShelterEvent::EvacuationAssigned { shelter, .. }
            | ShelterEvent::ArrivalsCheckedIn { shelter, .. }
            | ShelterEvent::ResidentsLeft { shelter, .. }
            | ShelterEvent::PlacesReleased { shelter, .. }
            | ShelterEvent::ShelterLevelChanged { shelter, .. } => Some(shelter),
        }
    }
}

/// A resident's name as anyone but the shelter's own records sees it: the
/// first character, the rest starred ("王小明" becomes "王**").
pub fn mask_name(name: &str) -> String {
    let mut characters = name.trim().chars();
    match characters.next() {
        None => String::new(),
        Some(first) => {
            let rest = characters.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelter(id: &str, lon: f64, capacity: u32, facilities: &[Facility], open: bool) -> Shelter {
        Shelter {
            spec: ShelterSpec {
                id: ShelterId::new(id),
                name: id.to_string(),
                at: Position { lon, lat: 30.0 },
                area: None,
                capacity,
                facilities: facilities.to_vec(),
            },
            open,
            occupied: 0,
            reserved: 0,
            level: ShelterLevel::Normal,
            opened_by: None,
            history: Vec::new(),
        }
    }

    #[test]
    fn the_nearest_open_shelter_with_the_facilities_comes_first_and_the_full_are_marked() {
        let mut state = ShelterState::default();
        for shelter in [
            shelter("near-closed", 120.001, 100, &[Facility::Accessible], false),
            shelter("near-no-ramp", 120.002, 100, &[], true),
            shelter("small", 120.01, 5, &[Facility::Accessible, Facility::Medical], true),
            shelter("far", 120.1, 100, &[Facility::Accessible], true),
        ] {
            state.shelters.insert(shelter.spec.id.clone(), shelter);
        }
        let from = Position { lon: 120.0, lat: 30.0 };
        let choices = state.candidates(20, &[Facility::Accessible], |at| at.distance_m(from) / 10.0);
        let order: Vec<(&str, bool)> = choices.iter().map(|choice| (choice.shelter.as_str(), choice.fits)).collect();
        assert_eq!(order, [("small", false), ("far", true)]);
    }

    #[test]
    fn levels_and_masks() {
        assert_eq!(ShelterLevel::of(89, 100, 90), ShelterLevel::Normal);
        assert_eq!(ShelterLevel::of(90, 100, 90), ShelterLevel::NearlyFull);
        assert_eq!(ShelterLevel::of(100, 100, 90), ShelterLevel::Full);
        assert_eq!(mask_name("王小明"), "王**");
        assert_eq!(mask_name("A"), "A*");
        assert_eq!(Facility::parse_list("medical; wheelchair,medical").unwrap(), [Facility::Accessible, Facility::Medical]);
        assert!(Facility::parse_list("sauna").is_err());
    }
}
