//! Shelters in drills: the shelters a drill file declares (`[[shelter]]`),
//! the evacuations its timeline scripts (`evacuate = { category,
//! residents, needs, arrive_after_s }`), and the report's figures of
//! shelter occupancy over time (a table; the picture, `shelters.svg`, is
//! drawn by `svg::shelters`),
//! from the events.

use std::collections::BTreeMap;

use pingji_engine::areas::AreaMap;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AreaId, Millis};
use pingji_engine::shelters::{Facility, ShelterEvent, ShelterId, ShelterLevel, ShelterSpec};
use pingji_engine::spatial::Position;
use serde::{Deserialize, Serialize};

/// A shelter of the drill: at a point, or inside an area; its places, its
/// facilities (`["accessible", "medical"]`), and whether it is open from
/// the start (else a plan's `open_shelters` or nobody opens it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelterEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub at: Option<[f64; 2]>,
    pub area: Option<String>,
    pub capacity: u32,
    #[serde(default)]
    pub facilities: Vec<String>,
    #[serde(default = "open_from_the_start")]
    pub open: bool,
}

fn open_from_the_start() -> bool {
    true
}

/// A timeline entry's evacuations: every open incident of `category` moves
/// a group of `residents` needing `needs` to the nearest open shelter with
/// room; they arrive (are checked in) `arrive_after_s` later.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvacuateEntry {
    pub category: String,
    pub residents: u32,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default = "twenty_minutes")]
    pub arrive_after_s: u64,
}

fn twenty_minutes() -> u64 {
    1200
}

impl EvacuateEntry {
    pub fn facilities(&self) -> Result<Vec<Facility>, String> {
        Facility::parse_list(&self.needs.join(";"))
    }
}

/// The import of a drill's shelters (a shelter in an area stands at the
/// area's inside point), and those to open at the start.
pub fn import(shelters: &[ShelterEntry], areas: &AreaMap) -> Result<(Vec<ShelterSpec>, Vec<ShelterId>), String> {
    let mut specs = Vec::new();
    let mut open = Vec::new();
    for shelter in shelters {
        let at = match (shelter.at, &shelter.area) {
            (Some([lon, lat]), _) => Position { lon, lat },
            (None, Some(area)) => areas
                .inside_point(&AreaId::new(area))
                .ok_or_else(|| format!("shelter {}: area {area} is not on the drill's map", shelter.id))?,
            (None, None) => return Err(format!("shelter {}: give at = [lon, lat] or area", shelter.id)),
        };
        let facilities = Facility::parse_list(&shelter.facilities.join(";"))
            .map_err(|problem| format!("shelter {}: {problem}", shelter.id))?;
        let id = ShelterId::new(&shelter.id);
        specs.push(ShelterSpec {
            id: id.clone(),
            name: if shelter.name.is_empty() { shelter.id.clone() } else { shelter.name.clone() },
            at,
            area: shelter.area.as_ref().map(AreaId::new),
            capacity: shelter.capacity,
            facilities,
        });
        if shelter.open {
            open.push(id);
        }
    }
    Ok((specs, open))
}

/// Occupancy at one time: people checked in, places reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OccupancyPoint {
    pub at_s: u64,
    pub occupied: u32,
    pub reserved: u32,
}

/// One shelter's figures over the drill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShelterFigures {
    pub shelter: String,
    pub capacity: u32,
    /// Groups sent there, and their residents.
    pub evacuations: u32,
    pub residents: u32,
    pub arrived: u32,
    /// Places given back unused (incidents that ended first).
    pub released: u32,
    /// Groups that passed it over for want of room (overflow to another).
    pub overflowed: u32,
    pub peak_occupied: u32,
    /// The most places taken at once (checked in plus reserved).
    pub peak_taken: u32,
    /// When it first reached the alert threshold, and when it was first full.
    pub nearly_full_at_s: Option<u64>,
    pub full_at_s: Option<u64>,
    pub occupancy: Vec<OccupancyPoint>,
}

/// Each shelter's figures and occupancy over time, from the events.
pub fn figures(events: &[Event], started_at: Millis) -> Vec<ShelterFigures> {
    let mut shelters: BTreeMap<String, ShelterFigures> = BTreeMap::new();
    let seconds = |at: Millis| ((at.0 - started_at.0).max(0) / 1000) as u64;
    fn of<'a>(shelters: &'a mut BTreeMap<String, ShelterFigures>, id: &ShelterId) -> &'a mut ShelterFigures {
        shelters.entry(id.to_string()).or_insert_with(|| ShelterFigures { shelter: id.to_string(), ..ShelterFigures::default() })
    }
    fn point(figures: &mut ShelterFigures, at_s: u64, occupied: i64, reserved: i64) {
        let last = figures.occupancy.last().copied().unwrap_or_default();
        let next = OccupancyPoint {
            at_s,
            occupied: (i64::from(last.occupied) + occupied).max(0) as u32,
            reserved: (i64::from(last.reserved) + reserved).max(0) as u32,
        };
        figures.peak_occupied = figures.peak_occupied.max(next.occupied);
        figures.peak_taken = figures.peak_taken.max(next.occupied + next.reserved);
        match figures.occupancy.last_mut() {
            Some(last) if last.at_s == at_s => *last = next,
            _ => figures.occupancy.push(next),
        }
    }
    for event in events {
        let EventKind::Shelters(shelter_event) = &event.kind else { continue };
        let at_s = seconds(event.at);
        match shelter_event {
            ShelterEvent::SheltersImported { shelters: specs } => {
                for spec in specs {
                    of(&mut shelters, &spec.id).capacity = spec.capacity;
                }
            }
            ShelterEvent::EvacuationAssigned { shelter, residents, passed_over, .. } => {
                let figures = of(&mut shelters, shelter);
                figures.evacuations += 1;
                figures.residents += residents;
                point(figures, at_s, 0, i64::from(*residents));
                for passed in passed_over {
                    of(&mut shelters, passed).overflowed += 1;
                }
            }
            ShelterEvent::ArrivalsCheckedIn { shelter, evacuation, count, .. } => {
                let figures = of(&mut shelters, shelter);
                figures.arrived += count;
                let from_reserved = if evacuation.is_some() { -i64::from(*count) } else { 0 };
                point(figures, at_s, i64::from(*count), from_reserved);
            }
            ShelterEvent::ResidentsLeft { shelter, count } => point(of(&mut shelters, shelter), at_s, -i64::from(*count), 0),
            ShelterEvent::PlacesReleased { shelter, places, .. } => {
                let figures = of(&mut shelters, shelter);
                figures.released += places;
                point(figures, at_s, 0, -i64::from(*places));
            }
            ShelterEvent::ShelterLevelChanged { shelter, level, .. } => {
                let figures = of(&mut shelters, shelter);
                match level {
                    ShelterLevel::NearlyFull => {
                        figures.nearly_full_at_s.get_or_insert(at_s);
                    }
                    ShelterLevel::Full => {
                        figures.nearly_full_at_s.get_or_insert(at_s);
                        figures.full_at_s.get_or_insert(at_s);
                    }
                    ShelterLevel::Normal => {}
                }
            }
            ShelterEvent::ShelterOpened { .. } | ShelterEvent::ShelterClosed { .. } => {}
        }
    }
    shelters.into_values().collect()
}

fn minutes(at_s: Option<u64>) -> String {
    at_s.map_or("-".to_string(), |at_s| format!("{}", at_s / 60))
}

/// The report's section, or nothing when the drill had no shelters.
pub fn markdown(figures: &[ShelterFigures]) -> String {
    if figures.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Shelters\n\nGroups of residents sent to each shelter, arrived and released (their incident ended first); \
         overflowed: groups that passed it over for want of room; peak taken: people in plus places reserved; nearly \
         full and full: minute of the drill each alert first went out.\n\n\
         | shelter | capacity | groups | residents | arrived | released | overflowed | peak in | peak taken | nearly full | full |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for shelter in figures {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            shelter.shelter,
            shelter.capacity,
            shelter.evacuations,
            shelter.residents,
            shelter.arrived,
            shelter.released,
            shelter.overflowed,
            shelter.peak_occupied,
            shelter.peak_taken,
            minutes(shelter.nearly_full_at_s),
            minutes(shelter.full_at_s)
        ));
    }
    out.push_str("\nOccupancy over time (minute: people in + places reserved):\n\n");
    for shelter in figures.iter().filter(|shelter| !shelter.occupancy.is_empty()) {
        let points: Vec<String> =
            shelter.occupancy.iter().map(|point| format!("{}: {}+{}", point.at_s / 60, point.occupied, point.reserved)).collect();
        out.push_str(&format!("- {} (of {}): {}\n", shelter.shelter, shelter.capacity, points.join(", ")));
    }
    out.push_str("\n![shelter occupancy](shelters.svg)\n\n");
    out
}
