//! Shelters in the engine: deciding shelter commands into events, folding
//! the events into [`ShelterState`], and what follows other changes (an
//! ended incident's places released, a plan's shelters opened, alerts at
//! the policy's threshold and when full). The domain types are in
//! `crate::shelters`.

use std::collections::{BTreeMap, BTreeSet};

use super::decide::check_text;
use super::{Engine, Rejection};
use crate::event::{DISPATCHER, Event, EventKind};
use crate::ids::{ActivationId, AreaId, IncidentId, Millis, check_id, quote};
use crate::plans::PlanSpec;
use crate::shelters::{
    Evacuation, EvacuationId, Facility, MAX_HISTORY, OccupancySample, Shelter, ShelterChoice, ShelterCommand, ShelterEvent,
    ShelterId, ShelterLevel, ShelterSpec, ShelterState,
};
use crate::spatial::Position;
use crate::travel::TravelMode;

/// Rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 20_000;
/// The most places one shelter may have.
pub const MAX_CAPACITY: u32 = 100_000;
/// The largest group one evacuation may move.
pub const MAX_GROUP: u32 = 10_000;
/// Names one check-in may give.
pub const MAX_NAMES: usize = 200;

fn invalid(message: String) -> Rejection {
    Rejection::InvalidArgument(message)
}

impl Engine {
    pub fn shelters(&self) -> &ShelterState {
        &self.state.shelters
    }

    /// Seconds from `from` to `to` for a group of residents: by car (a bus
    /// or the residents' own), at the policy's speed.
    pub fn evacuation_travel_s(&self, from: Position, to: Position) -> f64 {
        from.distance_m(to) / TravelMode::Car.speed_mps(&self.policy.speeds)
    }

    /// The open shelters with the facilities `needs`, nearest to the
    /// incident first, each saying whether `residents` fit.
    pub fn shelter_candidates(
        &self,
        incident: &IncidentId,
        residents: u32,
        needs: &[Facility],
    ) -> Result<Vec<ShelterChoice>, Rejection> {
        let Some(record) = self.state.incidents.get(incident) else {
            return Err(Rejection::NotFound(format!("incident {} does not exist; check the id", quote(incident.as_str()))));
        };
        let from = record.spec.at;
        Ok(self.state.shelters.candidates(residents, needs, |at| self.evacuation_travel_s(from, at)))
    }

    pub fn shelter(&self, shelter: &ShelterId) -> Result<&Shelter, Rejection> {
        self.state.shelters.shelters.get(shelter).ok_or_else(|| {
            Rejection::NotFound(format!("shelter {} does not exist; list shelters to find its id", quote(shelter.as_str())))
        })
    }

    pub fn evacuation(&self, evacuation: &EvacuationId) -> Result<&Evacuation, Rejection> {
        self.state.shelters.evacuations.get(evacuation).ok_or_else(|| {
            Rejection::NotFound(format!(
                "evacuation {} does not exist; list a shelter's evacuations to find its id",
                quote(evacuation.as_str())
            ))
        })
    }

    /// Whether a shelter lies in `area` (its own area or one below it).
    pub fn shelter_in_area(&self, shelter: &Shelter, area: &AreaId) -> bool {
        let Some(level) = self.state.areas.get(area).map(|spec| spec.level) else { return false };
        let Some(own) = &shelter.spec.area else { return false };
        own == area || self.state.areas.area_placement(own).is_some_and(|placement| placement.within(level, area))
    }

    pub(super) fn decide_shelters(&self, command: &ShelterCommand) -> Result<Vec<EventKind>, Rejection> {
        let event = match command {
            ShelterCommand::Import(shelters) => self.decide_shelter_import(shelters)?,
            ShelterCommand::Open { shelter } => {
                if self.shelter(shelter)?.open {
                    return Ok(Vec::new());
                }
                ShelterEvent::ShelterOpened { shelter: shelter.clone(), activation: None }
            }
            ShelterCommand::Close { shelter, reason } => {
                check_text("the reason", reason, false)?;
                if !self.shelter(shelter)?.open {
                    return Ok(Vec::new());
                }
                ShelterEvent::ShelterClosed { shelter: shelter.clone(), reason: reason.trim().to_string() }
            }
            ShelterCommand::Evacuate { id, incident, residents, needs, shelter } => {
                if let Some(id) = id
                    && self.repeated_evacuation(id, incident, *residents, needs, shelter.as_ref())?
                {
                    return Ok(Vec::new());
                }
                self.decide_evacuate(id.as_ref(), incident, *residents, needs, shelter.as_ref())?
            }
            ShelterCommand::CheckIn { shelter, evacuation, count, names } => {
                self.decide_arrivals(shelter.as_ref(), evacuation.as_ref(), *count, names)?
            }
            ShelterCommand::CheckOut { shelter, count } => {
                let record = self.shelter(shelter)?;
                if *count == 0 || *count > record.occupied {
                    return Err(invalid(format!(
                        "{count} people leaving shelter {shelter}, which has {} checked in; give 1 to {}",
                        record.occupied, record.occupied
                    )));
                }
                ShelterEvent::ResidentsLeft { shelter: shelter.clone(), count: *count }
            }
            ShelterCommand::Release { evacuation, reason } => {
                check_text("the reason", reason, false)?;
                let record = self.evacuation(evacuation)?;
                if record.held() == 0 {
                    return Err(Rejection::FailedPrecondition(format!(
                        "evacuation {evacuation} holds no places (all {} arrived or were released)",
                        record.residents
                    )));
                }
                ShelterEvent::PlacesReleased {
                    evacuation: evacuation.clone(),
                    incident: record.incident.clone(),
                    shelter: record.shelter.clone(),
                    places: record.held(),
                    reason: reason.trim().to_string(),
                }
            }
        };
        Ok(vec![EventKind::Shelters(event)])
    }

    fn decide_shelter_import(&self, shelters: &[ShelterSpec]) -> Result<ShelterEvent, Rejection> {
        if shelters.is_empty() {
            return Err(invalid("the import is empty; give at least one shelter".to_string()));
        }
        if shelters.len() > MAX_IMPORT_ROWS {
            return Err(invalid(format!(
                "{} shelters given; at most {MAX_IMPORT_ROWS} per import: split the file",
                shelters.len()
            )));
        }
        let mut seen = BTreeSet::new();
        let mut checked = Vec::with_capacity(shelters.len());
        for (index, shelter) in shelters.iter().enumerate() {
            let row = |message: String| invalid(format!("shelter row {}: {message}", index + 1));
            check_id("shelter id", shelter.id.as_str()).map_err(row)?;
            if !seen.insert(&shelter.id) {
                return Err(row(format!("shelter {} is given twice", shelter.id)));
            }
            if shelter.name.trim().is_empty() || shelter.name.chars().count() > 100 || shelter.name.chars().any(char::is_control)
            {
                return Err(row("the name is empty, longer than 100 characters or has control characters".to_string()));
            }
            if shelter.capacity == 0 || shelter.capacity > MAX_CAPACITY {
                return Err(row(format!("capacity {} is out of range; give 1 to {MAX_CAPACITY} places", shelter.capacity)));
            }
            let at = Position::checked(shelter.at.lon, shelter.at.lat).map_err(row)?;
            let area = match &shelter.area {
                Some(area) if !self.state.areas.contains(area) => {
                    return Err(row(format!("area {} is not on the map; list areas to find its id", quote(area.as_str()))));
                }
                Some(area) => Some(area.clone()),
                None => {
                    let placement = self.state.areas.place(at);
                    placement.deepest().and_then(|level| placement.at(level).cloned())
                }
            };
            if let Some(existing) = self.state.shelters.shelters.get(&shelter.id)
                && shelter.capacity < existing.taken()
            {
                return Err(Rejection::FailedPrecondition(format!(
                    "shelter row {}: shelter {} has {} people checked in and {} places reserved; a capacity of {} would \
                     leave less than that: check people out or release places first",
                    index + 1,
                    shelter.id,
                    existing.occupied,
                    existing.reserved,
                    shelter.capacity
                )));
            }
            let mut facilities = shelter.facilities.clone();
            facilities.sort();
            facilities.dedup();
            checked.push(ShelterSpec {
                id: shelter.id.clone(),
                name: shelter.name.trim().to_string(),
                at,
                area,
                capacity: shelter.capacity,
                facilities,
            });
        }
        Ok(ShelterEvent::SheltersImported { shelters: checked })
    }

    /// Whether `id` names an evacuation made before with the same group (a
    /// retry); refused when it was made for another.
    fn repeated_evacuation(
        &self,
        id: &EvacuationId,
        incident: &IncidentId,
        residents: u32,
        needs: &[Facility],
        chosen: Option<&ShelterId>,
    ) -> Result<bool, Rejection> {
        check_id("evacuation id", id.as_str()).map_err(invalid)?;
        let Some(made) = self.state.shelters.evacuations.get(id) else { return Ok(false) };
        let (mut asked, mut kept) = (needs.to_vec(), made.needs.clone());
        asked.sort();
        kept.sort();
        if &made.incident == incident
            && made.residents == residents
            && asked == kept
            && chosen.is_none_or(|to| to == &made.shelter)
        {
            return Ok(true);
        }
        Err(Rejection::AlreadyExists(format!(
            "evacuation {id} was made before for another group, incident or shelter; give a new id for a new evacuation"
        )))
    }

    fn decide_evacuate(
        &self,
        id: Option<&EvacuationId>,
        incident: &IncidentId,
        residents: u32,
        needs: &[Facility],
        chosen: Option<&ShelterId>,
    ) -> Result<ShelterEvent, Rejection> {
        let Some(record) = self.state.incidents.get(incident) else {
            return Err(Rejection::NotFound(format!("incident {} does not exist; check the id", quote(incident.as_str()))));
        };
        if !record.is_open() {
            return Err(Rejection::FailedPrecondition(format!(
                "incident {incident} has ended; evacuations go with open incidents"
            )));
        }
        if residents == 0 || residents > MAX_GROUP {
            return Err(Rejection::InvalidField {
                field: "residents",
                message: format!("{residents} residents is out of range; give 1 to {MAX_GROUP} (split a larger group)"),
            });
        }
        let mut needs = needs.to_vec();
        needs.sort();
        needs.dedup();
        let candidates = self.shelter_candidates(incident, residents, &needs)?;
        let (shelter, passed_over) = match chosen {
            Some(shelter) => {
                let record = self.shelter(shelter)?;
                if !record.open {
                    return Err(Rejection::FailedPrecondition(format!(
                        "shelter {shelter} is closed; open it first or let the dispatcher choose"
                    )));
                }
                if !record.spec.has_all(&needs) {
                    let missing: Vec<&str> =
                        needs.iter().filter(|need| !record.spec.facilities.contains(need)).map(|need| need.name()).collect();
                    return Err(Rejection::FailedPrecondition(format!(
                        "shelter {shelter} has no {}; choose another or let the dispatcher choose",
                        missing.join(", ")
                    )));
                }
                if record.free() < residents {
                    return Err(Rejection::FailedPrecondition(format!(
                        "shelter {shelter} has {} places free, fewer than the {residents} residents; nothing was reserved: \
                         choose another or let the dispatcher choose",
                        record.free()
                    )));
                }
                (shelter.clone(), Vec::new())
            }
            None => {
                let Some(position) = candidates.iter().position(|choice| choice.fits) else {
                    let free: u32 = candidates.iter().map(|choice| choice.free).sum();
                    let needs_text = if needs.is_empty() {
                        String::new()
                    } else {
                        format!(" with {}", needs.iter().map(|need| need.name()).collect::<Vec<_>>().join(", "))
                    };
                    return Err(Rejection::FailedPrecondition(format!(
                        "no open shelter{needs_text} has room for {residents} residents ({} such shelters, {free} places \
                         free in all); nothing was reserved: open a shelter, or split the group",
                        candidates.len()
                    )));
                };
                let passed_over = candidates[..position].iter().map(|choice| choice.shelter.clone()).collect();
                (candidates[position].shelter.clone(), passed_over)
            }
        };
        let evacuation = match id {
            Some(id) => id.clone(),
            None => (self.state.shelters.evacuations_made + 1..)
                .map(|number| EvacuationId::new(format!("eva-{number:06}")))
                .find(|id| !self.state.shelters.evacuations.contains_key(id))
                .expect("a free number"),
        };
        Ok(ShelterEvent::EvacuationAssigned { evacuation, incident: incident.clone(), shelter, residents, needs, passed_over })
    }

    fn decide_arrivals(
        &self,
        shelter: Option<&ShelterId>,
        evacuation: Option<&EvacuationId>,
        count: u32,
        names: &[String],
    ) -> Result<ShelterEvent, Rejection> {
        if count == 0 || count > MAX_GROUP {
            return Err(Rejection::InvalidField {
                field: "count",
                message: format!("{count} arrivals is out of range; give 1 to {MAX_GROUP}"),
            });
        }
        if names.len() > MAX_NAMES || names.len() > count as usize {
            return Err(Rejection::InvalidField {
                field: "names",
                message: format!(
                    "{} names for {count} arrivals; give at most one name per person (and at most {MAX_NAMES})",
                    names.len()
                ),
            });
        }
        for name in names {
            // The message does not repeat the name: it is personal data.
            if name.trim().is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
                return Err(Rejection::InvalidField {
                    field: "names",
                    message: "a name is empty, longer than 50 characters or has control characters".to_string(),
                });
            }
        }
        let names: Vec<String> = names.iter().map(|name| name.trim().to_string()).collect();
        match evacuation {
            Some(evacuation) => {
                let record = self.evacuation(evacuation)?;
                if let Some(shelter) = shelter
                    && shelter != &record.shelter
                {
                    return Err(invalid(format!(
                        "evacuation {evacuation} goes to shelter {}, not {shelter}; check them in there",
                        record.shelter
                    )));
                }
                if count > record.held() {
                    return Err(Rejection::FailedPrecondition(format!(
                        "evacuation {evacuation} holds {} places, fewer than the {count} arrivals; nothing was checked in: \
                         check the others in as walk-ins (without the evacuation) if the shelter has room",
                        record.held()
                    )));
                }
                Ok(ShelterEvent::ArrivalsCheckedIn {
                    shelter: record.shelter.clone(),
                    evacuation: Some(evacuation.clone()),
                    incident: Some(record.incident.clone()),
                    count,
                    names,
                })
            }
            None => {
                let Some(shelter) = shelter else {
                    return Err(Rejection::InvalidField {
                        field: "shelter_id",
                        message: "name the shelter, or the evacuation the arrivals belong to".to_string(),
                    });
                };
                let record = self.shelter(shelter)?;
                if !record.open {
                    return Err(Rejection::FailedPrecondition(format!(
                        "shelter {shelter} is closed; walk-ins go to open shelters (open it first)"
                    )));
                }
                if count > record.free() {
                    return Err(Rejection::FailedPrecondition(format!(
                        "shelter {shelter} has {} places free, fewer than the {count} arrivals; nothing was checked in: send \
                         them to the next shelter",
                        record.free()
                    )));
                }
                Ok(ShelterEvent::ArrivalsCheckedIn { shelter: shelter.clone(), evacuation: None, incident: None, count, names })
            }
        }
    }

    /// What follows a command's events: places of evacuations whose
    /// incident ended are released, and the alert level of every shelter
    /// the events touched is brought up to date.
    pub(super) fn follow_shelters(&mut self, now: Millis, out: &mut Vec<Event>) {
        if self.state.shelters.shelters.is_empty() {
            return;
        }
        let ended: Vec<IncidentId> = out
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::IncidentCancelled { incident, .. }
                | EventKind::IncidentClosed { incident, .. }
                | EventKind::ReportMerged { incident, .. }
                | EventKind::ReportRejected { incident, .. } => Some(incident.clone()),
                _ => None,
            })
            .collect();
        for incident in ended {
            let holding: Vec<(EvacuationId, ShelterId, u32)> = self
                .state
                .shelters
                .evacuations
                .values()
                .filter(|evacuation| evacuation.incident == incident && evacuation.held() > 0)
                .map(|evacuation| (evacuation.id.clone(), evacuation.shelter.clone(), evacuation.held()))
                .collect();
            for (evacuation, shelter, places) in holding {
                let released = ShelterEvent::PlacesReleased {
                    evacuation,
                    incident: incident.clone(),
                    shelter,
                    places,
                    reason: "the incident ended before they all arrived".to_string(),
                };
                self.emit(out, DISPATCHER, now, EventKind::Shelters(released));
            }
        }
        let mut touched: BTreeSet<ShelterId> = BTreeSet::new();
        for event in out.iter() {
            let EventKind::Shelters(shelter_event) = &event.kind else { continue };
            match shelter_event {
                ShelterEvent::SheltersImported { shelters } => touched.extend(shelters.iter().map(|spec| spec.id.clone())),
                ShelterEvent::ShelterLevelChanged { .. } => {}
                other => touched.extend(other.shelter_id().cloned()),
            }
        }
        let percent = self.policy.shelters.alert_percent;
        for shelter in touched {
            let Some(record) = self.state.shelters.shelters.get(&shelter) else { continue };
            let level = ShelterLevel::of(record.taken(), record.spec.capacity, percent);
            if level == record.level {
                continue;
            }
            let changed = ShelterEvent::ShelterLevelChanged {
                shelter,
                level,
                occupied: record.occupied,
                reserved: record.reserved,
                capacity: record.spec.capacity,
            };
            self.emit(out, DISPATCHER, now, EventKind::Shelters(changed));
        }
    }

    /// A plan's shelters opened when it activates (those that exist and are closed).
    pub(super) fn open_plan_shelters(
        &mut self,
        plan: &PlanSpec,
        activation: &ActivationId,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) {
        for shelter in &plan.shelters {
            if self.state.shelters.shelters.get(shelter).is_none_or(|record| record.open) {
                continue;
            }
            let opened = ShelterEvent::ShelterOpened { shelter: shelter.clone(), activation: Some(activation.clone()) };
            self.emit(out, actor, now, EventKind::Shelters(opened));
        }
    }

    pub(super) fn apply_shelters(&mut self, event: &ShelterEvent, at: Millis, actor: &str) {
        let shelters = &mut self.state.shelters;
        match event {
            ShelterEvent::SheltersImported { shelters: specs } => {
                for spec in specs {
                    shelters.shelters.entry(spec.id.clone()).and_modify(|record| record.spec = spec.clone()).or_insert_with(
                        || Shelter {
                            spec: spec.clone(),
                            open: false,
                            occupied: 0,
                            reserved: 0,
                            level: ShelterLevel::Normal,
                            opened_by: None,
                            history: Vec::new(),
                        },
                    );
                }
            }
            ShelterEvent::ShelterOpened { shelter, activation } => {
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    record.open = true;
                    record.opened_by = activation.clone();
                }
            }
            ShelterEvent::ShelterClosed { shelter, .. } => {
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    record.open = false;
                }
            }
            ShelterEvent::EvacuationAssigned { evacuation, incident, shelter, residents, needs, passed_over } => {
                shelters.evacuations_made += 1;
                shelters.evacuations.insert(
                    evacuation.clone(),
                    Evacuation {
                        id: evacuation.clone(),
                        incident: incident.clone(),
                        shelter: shelter.clone(),
                        residents: *residents,
                        needs: needs.clone(),
                        passed_over: passed_over.clone(),
                        arrived: 0,
                        released: 0,
                        assigned_at: at,
                        assigned_by: actor.to_string(),
                    },
                );
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    debug_assert!(record.free() >= *residents, "places reserved beyond capacity");
                    record.reserved += residents;
                    sample(record, at);
                }
            }
            ShelterEvent::ArrivalsCheckedIn { shelter, evacuation, count, .. } => {
                if let Some(evacuation) = evacuation.as_ref().and_then(|id| shelters.evacuations.get_mut(id)) {
                    debug_assert!(evacuation.held() >= *count, "more arrivals than places held");
                    evacuation.arrived += count;
                }
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    if evacuation.is_some() {
                        record.reserved = record.reserved.saturating_sub(*count);
                    }
                    record.occupied += count;
                    sample(record, at);
                }
            }
            ShelterEvent::ResidentsLeft { shelter, count } => {
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    record.occupied = record.occupied.saturating_sub(*count);
                    sample(record, at);
                }
            }
            ShelterEvent::PlacesReleased { evacuation, shelter, places, .. } => {
                if let Some(evacuation) = shelters.evacuations.get_mut(evacuation) {
                    evacuation.released += places;
                }
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    record.reserved = record.reserved.saturating_sub(*places);
                    sample(record, at);
                }
            }
            ShelterEvent::ShelterLevelChanged { shelter, level, .. } => {
                if let Some(record) = shelters.shelters.get_mut(shelter) {
                    record.level = *level;
                }
            }
        }
    }
}

/// Occupancy after a change, one sample per instant (a later change at the
/// same time replaces it).
fn sample(shelter: &mut Shelter, at: Millis) {
    let now = OccupancySample { at, occupied: shelter.occupied, reserved: shelter.reserved };
    match shelter.history.last_mut() {
        Some(last) if last.at == at => *last = now,
        _ => shelter.history.push(now),
    }
    if shelter.history.len() > MAX_HISTORY {
        let excess = shelter.history.len() - MAX_HISTORY;
        shelter.history.drain(..excess);
    }
}

/// Occupancy plus reserved places never above capacity, and every place
/// given once: a shelter's reserved places are exactly those its
/// evacuations still hold, and no evacuation uses more than its group.
pub(super) fn check_shelters(shelters: &ShelterState) -> Result<(), String> {
    let mut held: BTreeMap<&ShelterId, u32> = BTreeMap::new();
    for evacuation in shelters.evacuations.values() {
        if evacuation.arrived + evacuation.released > evacuation.residents {
            return Err(format!(
                "evacuation {} has {} arrived and {} released of {} residents",
                evacuation.id, evacuation.arrived, evacuation.released, evacuation.residents
            ));
        }
        *held.entry(&evacuation.shelter).or_default() += evacuation.held();
    }
    for (id, shelter) in &shelters.shelters {
        if shelter.taken() > shelter.spec.capacity {
            return Err(format!(
                "shelter {id} has {} checked in and {} reserved, above its capacity of {}",
                shelter.occupied, shelter.reserved, shelter.spec.capacity
            ));
        }
        let by_evacuations = held.get(id).copied().unwrap_or(0);
        if by_evacuations != shelter.reserved {
            return Err(format!(
                "shelter {id} has {} places reserved but its evacuations hold {by_evacuations}",
                shelter.reserved
            ));
        }
    }
    if let Some((id, _)) = held.iter().find(|(id, places)| **places > 0 && !shelters.shelters.contains_key(**id)) {
        return Err(format!("evacuations hold places at shelter {id}, which does not exist"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
