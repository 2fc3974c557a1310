//! Duty rosters in drills: the shifts a drill file declares (`[[shift]]`),
//! worked by named people or by the first `count` people of a role living
//! in the shift's area (in id order, so runs compare), and the report's
//! figure: the share of offers that went to people on shift.

use pingji_engine::areas::AreaMap;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId};
use pingji_engine::roster::{AgentProfile, Role};
use pingji_engine::rosters::{MINUTES_PER_DAY, RosterState, ShiftId, ShiftSpec};
use serde::{Deserialize, Serialize};

/// A shift of the drill: `start` local time (HH:MM), `hours` long, on
/// `days` (ISO weekdays, every day by default); worked by `people`, or by
/// `count` people of `role` living in `area`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftEntry {
    pub id: String,
    pub area: String,
    pub duty: String,
    #[serde(default = "every_day")]
    pub days: Vec<u8>,
    pub start: String,
    pub hours: f64,
    #[serde(default)]
    pub people: Vec<String>,
    /// A role's snake_case name, as in the roster: `community_worker`.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub count: usize,
}

fn every_day() -> Vec<u8> {
    (1..=7).collect()
}

/// The drill's shifts over its roster and map.
pub fn shifts(entries: &[ShiftEntry], people: &[AgentProfile], areas: &AreaMap) -> Result<Vec<ShiftSpec>, String> {
    let mut shifts = Vec::with_capacity(entries.len());
    for entry in entries {
        let area = AreaId::new(&entry.area);
        let Some(level) = areas.get(&area).map(|spec| spec.level) else {
            return Err(format!("shift {}: area {} is not on the drill's map", entry.id, entry.area));
        };
        let (hours, minutes) = entry
            .start
            .split_once(':')
            .and_then(|(hours, minutes)| Some((hours.parse::<u32>().ok()?, minutes.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("shift {}: start {:?} is not HH:MM", entry.id, entry.start))?;
        let length_minutes = (entry.hours * 60.0).round() as u32;
        if length_minutes == 0 || length_minutes > MINUTES_PER_DAY {
            return Err(format!("shift {}: hours = {} is out of range; give up to 24", entry.id, entry.hours));
        }
        let mut workers: Vec<AgentId> = entry.people.iter().map(AgentId::new).collect();
        if let Some(role) = entry.role {
            let mut living: Vec<&AgentProfile> = people
                .iter()
                .filter(|person| person.role == role)
                .filter(|person| {
                    person.home_area.as_ref().is_some_and(|home| {
                        home == &area || areas.area_placement(home).is_some_and(|placement| placement.within(level, &area))
                    })
                })
                .collect();
            living.sort_by(|a, b| a.id.cmp(&b.id));
            workers.extend(living.into_iter().take(entry.count).map(|person| person.id.clone()));
        }
        shifts.push(ShiftSpec {
            id: ShiftId::new(&entry.id),
            area,
            duty: entry.duty.clone(),
            days: entry.days.clone(),
            start_minute: hours * 60 + minutes,
            length_minutes,
            people: workers,
        });
    }
    Ok(shifts)
}

/// Offers made, and those to people on shift when sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShiftFigures {
    pub shifts: usize,
    pub offers: u32,
    pub to_people_on_shift: u32,
}

impl ShiftFigures {
    pub fn share(&self) -> Option<f64> {
        (self.offers > 0).then(|| f64::from(self.to_people_on_shift) / f64::from(self.offers))
    }
}

/// The figures from the events, `None` when the drill had no roster.
pub fn figures(events: &[Event], utc_offset_minutes: i32) -> Option<ShiftFigures> {
    let mut rosters = RosterState::default();
    let mut figures = ShiftFigures::default();
    for event in events {
        match &event.kind {
            EventKind::Rosters(roster) => rosters.apply(roster, event.at, &event.actor),
            EventKind::OfferSent { offer } if !rosters.shifts.is_empty() => {
                figures.offers += 1;
                if rosters.on_shift_at(offer.sent_at, utc_offset_minutes).contains(&offer.agent) {
                    figures.to_people_on_shift += 1;
                }
            }
            _ => {}
        }
    }
    figures.shifts = rosters.shifts.len();
    (figures.shifts > 0).then_some(figures)
}

/// The report's section, or nothing when the drill had no roster.
pub fn markdown(figures: Option<&ShiftFigures>) -> String {
    let Some(figures) = figures else { return String::new() };
    let share = figures.share().map_or("–".to_string(), |share| format!("{:.1}%", share * 100.0));
    format!(
        "## Duty rosters\n\n{} shifts declared; of {} offers, {} went to people on shift when sent ({share}). \
         In normal mode people on shift are offered first; at grade I and II everyone mobilisable is eligible.\n\n",
        figures.shifts, figures.offers, figures.to_people_on_shift
    )
}
