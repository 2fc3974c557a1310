//! What must hold of the engine after any sequence of commands: nobody holds
//! two assignments or two offers, nobody is assigned twice or beyond the
//! headcount, a staffed or ended incident has no offers out, a report
//! waiting for triage is not dispatched, and the live copies the candidate
//! search relies on (free, skills, travel mode) and the skill index follow
//! the roster; no stock below zero (nothing reserved beyond what a depot
//! holds) and no unit held by two requests, or held as its request says;
//! no shelter place given twice or beyond capacity; and nothing reserved
//! for an incident that has ended (its waiting requests cancelled, its
//! evacuations' places given back). The engine's property tests and the
//! fuzz target (`fuzz/`) check it after every step.

use std::collections::BTreeSet;

use super::Engine;
use crate::roster::AgentStatus;

/// The first broken invariant, said plainly.
pub fn check(engine: &Engine) -> Result<(), String> {
    let state = engine.state();
    if let Some(stranger) = state.agent_tokens.keys().find(|agent| !state.agents.contains_key(*agent)) {
        return Err(format!("{stranger} has a token but is not on the roster"));
    }
    if *engine.skills() != crate::roster::SkillIndex::of(state.agents.values().map(|record| &record.profile)) {
        return Err("the skill index does not follow the roster".to_string());
    }
    for (id, live) in &engine.live().agents {
        if live.location.is_some()
            && let Some(record) = state.agents.get(id)
            && (live.free != record.is_free()
                || engine.live().skill_bits.known(&record.profile.skills) != Some((live.skills, live.skills_beyond_bits))
                || live.indexed_as != record.profile.travel_mode
                || live.roster.as_ref() != Some(&super::live::RosterCopy::of(record)))
        {
            return Err(format!(
                "the live copy of {id} (free, skills, travel mode, role, recent assignments) does not follow the roster"
            ));
        }
        if let Some(at) = live.location {
            if live.placed_in != state.areas.locate(at, &mut Vec::new()) {
                return Err(format!("the live placement of {id} does not follow the map"));
            }
            let indexed = engine.live().index.entry(live.slot, at, live.indexed_as);
            if engine.live().agents.id(live.slot) != id
                || indexed.is_none_or(|indexed| indexed.free != live.free || indexed.skills != live.skills)
            {
                return Err(format!("the index's entry of {id} (number, free, skills) does not follow its live copy"));
            }
        }
    }
    let free_skills: usize = engine
        .live()
        .agents
        .values()
        .filter(|live| live.location.is_some() && live.free)
        .map(|live| live.skills.count_ones() as usize)
        .sum();
    engine.live().index.check()?;
    let in_classes: usize = (0..64).map(|class| engine.live().index.class_len(class)).sum();
    if in_classes != free_skills {
        return Err(format!(
            "the index's classes hold {in_classes} skills of free people, the located free people have {free_skills}"
        ));
    }
    for (id, record) in &state.agents {
        let holding: Vec<_> = state
            .incidents
            .values()
            .filter(|incident| incident.is_open())
            .filter(|incident| incident.assignments.iter().any(|a| &a.agent == id && a.completed_at.is_none()))
            .map(|incident| &incident.id)
            .collect();
        if holding.len() > 1 {
            return Err(format!("{id} holds {} assignments: {holding:?}", holding.len()));
        }
        // A person of this shard serving another shard's incident (a border
        // reservation accepted here) is held by no incident of this shard.
        let held_across_border = holding.is_empty()
            && record.current_incident.as_ref().is_some_and(|incident| {
                state.border.values().any(|reservation| {
                    &reservation.agent == id
                        && &reservation.incident == incident
                        && reservation.state != crate::border::ReservationState::Offered
                })
            });
        if !held_across_border && holding.first().copied() != record.current_incident.as_ref() {
            return Err(format!("{id} is recorded at {:?} but assigned to {holding:?}", record.current_incident));
        }
        let offered =
            state.incidents.values().flat_map(|incident| incident.open_offers.values()).filter(|offer| &offer.agent == id);
        let offered = offered.count();
        if offered > 1 {
            return Err(format!("{id} has {offered} open offers"));
        }
        if record.current_incident.is_some() && (record.status != AgentStatus::Busy || offered > 0) {
            return Err(format!("{id} is assigned but {:?} with {offered} open offer(s)", record.status));
        }
    }
    for incident in state.incidents.values() {
        let id = &incident.id;
        if incident.assignments.len() as u32 > incident.spec.headcount {
            return Err(format!("{id} has {} people for a headcount of {}", incident.assignments.len(), incident.spec.headcount));
        }
        let staffed = incident.status() == crate::incident::IncidentStatus::Staffed;
        if (staffed || !incident.is_open()) && !incident.open_offers.is_empty() {
            return Err(format!("{id} is {:?} with offers out", incident.status()));
        }
        if incident.triage_pending && !(incident.open_offers.is_empty() && incident.assignments.is_empty()) {
            return Err(format!("{id} waits for triage but was dispatched"));
        }
        if let Some(offer) = incident.open_offers.values().find(|offer| incident.excluded.contains(&offer.agent)) {
            return Err(format!("{id} offered to {}, who is excluded from it", offer.agent));
        }
        let mut served = BTreeSet::new();
        if let Some(twice) = incident.assignments.iter().find(|assignment| !served.insert(&assignment.agent)) {
            return Err(format!("{} assigned twice to {id}", twice.agent));
        }
    }
    check_supplies(&state.supplies)?;
    super::shelters::check_shelters(&state.shelters)?;
    check_released_on_end(state)
}

/// An incident that ended holds nothing back: no supply request of it
/// waits or keeps stock reserved (what left the depot is settled as
/// usual), and none of its evacuations keeps places in a shelter.
fn check_released_on_end(state: &super::State) -> Result<(), String> {
    use crate::supplies::RequestStatus;
    let ended = |incident: &crate::ids::IncidentId| state.incidents.get(incident).is_some_and(|record| !record.is_open());
    if let Some(request) =
        state.supplies.requests.values().find(|request| {
            ended(&request.incident) && matches!(request.status, RequestStatus::Requested | RequestStatus::Reserved)
        })
    {
        return Err(format!(
            "supply request {} is still {} though its incident {} has ended",
            request.id,
            request.status.name(),
            request.incident
        ));
    }
    if let Some(evacuation) =
        state.shelters.evacuations.values().find(|evacuation| ended(&evacuation.incident) && evacuation.held() > 0)
    {
        return Err(format!(
            "evacuation {} holds {} places though its incident {} has ended",
            evacuation.id,
            evacuation.held(),
            evacuation.incident
        ));
    }
    Ok(())
}

/// Stock never below zero, and every unit held by at most one request:
/// the one whose allocations name it, reserved or out as that request is.
fn check_supplies(supplies: &crate::supplies::SupplyState) -> Result<(), String> {
    use crate::supplies::{RequestStatus, UnitStatus};
    let mut reserved: std::collections::BTreeMap<(&str, &str), u64> = std::collections::BTreeMap::new();
    let mut holders: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for request in supplies.requests.values() {
        for allocation in &request.allocations {
            if request.status == RequestStatus::Reserved && allocation.units.is_empty() {
                *reserved.entry((allocation.depot.as_str(), allocation.item.as_str())).or_default() += allocation.quantity;
            }
        }
        for unit in request.held_units() {
            if let Some(other) = holders.insert(unit.as_str(), request.id.as_str()) {
                return Err(format!("unit {unit} is held by requests {other} and {}", request.id));
            }
        }
    }
    for depot in supplies.depots.values() {
        for (item, stock) in &depot.stock {
            if stock.reserved > stock.on_hand {
                return Err(format!("depot {} has {} {item} reserved of {} held", depot.spec.id, stock.reserved, stock.on_hand));
            }
            let by_requests = reserved.get(&(depot.spec.id.as_str(), item.as_str())).copied().unwrap_or(0);
            if by_requests != stock.reserved {
                return Err(format!(
                    "depot {} has {} {item} reserved but its requests hold {by_requests}",
                    depot.spec.id, stock.reserved
                ));
            }
        }
    }
    for (id, unit) in &supplies.units {
        let holder = holders.get(id.as_str()).copied();
        if unit.held_by.as_ref().map(|request| request.as_str()) != holder {
            return Err(format!("unit {id} is recorded as held by {:?} but its requests say {holder:?}", unit.held_by));
        }
        let expected = match holder.and_then(|request| supplies.requests.get(&crate::supplies::SupplyRequestId::new(request))) {
            Some(request) if request.status == RequestStatus::Reserved => Some(UnitStatus::Reserved),
            Some(_) => Some(UnitStatus::Dispatched),
            None => None,
        };
        match expected {
            Some(status) if unit.status != status => {
                return Err(format!("unit {id} is {} but its request has it {}", unit.status.name(), status.name()));
            }
            None if matches!(unit.status, UnitStatus::Reserved | UnitStatus::Dispatched) => {
                return Err(format!("unit {id} is {} for no request", unit.status.name()));
            }
            _ => {}
        }
    }
    Ok(())
}
