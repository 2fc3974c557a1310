//! What must hold of the engine after any sequence of commands: nobody holds
//! two assignments or two offers, nobody is assigned twice or beyond the
//! headcount, a staffed or ended incident has no offers out, a report
//! waiting for triage is not dispatched, and the live copies the candidate
//! search relies on (free, skills, travel mode) and the skill index follow
//! the roster. The engine's property test and the
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
            let indexed = engine.live().index.entry(live.slot, at, live.indexed_as);
            if engine.live().ids.get(live.slot as usize) != Some(id)
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
        if holding.first().copied() != record.current_incident.as_ref() {
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
    Ok(())
}
