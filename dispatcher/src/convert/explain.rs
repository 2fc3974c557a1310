//! Explanations, shortfalls and possible duplicates on the wire.

use std::collections::BTreeMap;

use pingji_engine::engine::Engine;
use pingji_engine::engine::duplicates::PossibleDuplicate;
use pingji_engine::engine::explain::{Explanation, PassedOver, Reason, Shortfall};
use pingji_engine::ids::Millis;
use pingji_proto::v1 as pb;

use super::{incident_to_pb, level_to_pb, mode_to_pb, travel_mode_to_pb};

/// Every reason's stable name (`Reason::kind`) and its wire value.
const KINDS: [(&str, pb::PassOverReason); 12] = [
    ("lacks_skill", pb::PassOverReason::LacksSkill),
    ("busy", pb::PassOverReason::Busy),
    ("off_duty", pb::PassOverReason::OffDuty),
    ("reserve", pb::PassOverReason::Reserve),
    ("location_stale", pb::PassOverReason::LocationStale),
    ("beyond_travel_limit", pb::PassOverReason::BeyondTravelLimit),
    ("declined", pb::PassOverReason::Declined),
    ("already_assigned", pb::PassOverReason::AlreadyAssigned),
    ("outside_area", pb::PassOverReason::OutsideArea),
    ("holds_offer", pb::PassOverReason::HoldsOffer),
    ("not_connected", pb::PassOverReason::NotConnected),
    ("off_shift", pb::PassOverReason::OffShift),
];

pub fn reason_kind_to_pb(kind: &str) -> pb::PassOverReason {
    KINDS.iter().find(|(name, _)| *name == kind).map_or(pb::PassOverReason::Unspecified, |(_, reason)| *reason)
}

fn reason_kind_from_pb(reason: i32) -> Option<&'static str> {
    let reason = pb::PassOverReason::try_from(reason).ok()?;
    KINDS.iter().find(|(_, known)| *known == reason).map(|(name, _)| *name)
}

pub fn shortfall_to_pb(shortfall: &Shortfall) -> pb::Shortfall {
    pb::Shortfall {
        level: level_to_pb(shortfall.level) as i32,
        within_m: shortfall.within_m,
        in_reach: shortfall.in_reach,
        qualified: shortfall.qualified,
        reasons: shortfall
            .reasons
            .iter()
            .map(|(kind, people)| pb::ReasonCount { reason: reason_kind_to_pb(kind) as i32, people: *people })
            .collect(),
        lacking: shortfall
            .lacking
            .iter()
            .map(|(skill, people)| pb::SkillCount { skill: skill.clone(), people: *people })
            .collect(),
    }
}

pub fn shortfall_from_pb(shortfall: &pb::Shortfall) -> Result<Shortfall, String> {
    let level = super::level_from_pb(shortfall.level).ok_or("shortfall.level is not an area level")?;
    let mut reasons = BTreeMap::new();
    for count in &shortfall.reasons {
        let kind = reason_kind_from_pb(count.reason).ok_or("shortfall.reasons has an unknown reason")?;
        reasons.insert(kind.to_string(), count.people);
    }
    Ok(Shortfall {
        level,
        within_m: shortfall.within_m,
        in_reach: shortfall.in_reach,
        qualified: shortfall.qualified,
        reasons,
        lacking: shortfall.lacking.iter().map(|count| (count.skill.clone(), count.people)).collect(),
    })
}

fn passed_over_to_pb(passed: &PassedOver) -> pb::PassedOverAgent {
    let mut out = pb::PassedOverAgent {
        agent_id: passed.agent.to_string(),
        reason: reason_kind_to_pb(passed.reason.kind()) as i32,
        located: passed.distance_m.is_some(),
        distance_m: passed.distance_m.map_or(0.0, f64::round),
        ..Default::default()
    };
    match &passed.reason {
        Reason::LacksSkill { skills } => out.lacking_skills = skills.clone(),
        Reason::Busy { incident } => out.incident_id = incident.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        Reason::HoldsOffer { incident } => out.incident_id = incident.to_string(),
        Reason::Reserve { mode } => out.mode = mode_to_pb(*mode) as i32,
        Reason::LocationStale { since } => out.located_at_ms = since.0,
        Reason::BeyondTravelLimit { max_travel_s } => out.max_travel_s = *max_travel_s as u32,
        Reason::OutsideArea { level } => out.level = level_to_pb(*level) as i32,
        Reason::OffDuty | Reason::Declined | Reason::AlreadyAssigned | Reason::NotConnected | Reason::OffShift => {}
    }
    out
}

pub fn explanation_to_pb(explanation: &Explanation, now: Millis) -> pb::ExplainIncidentResponse {
    pb::ExplainIncidentResponse {
        incident_id: explanation.incident.to_string(),
        mode: mode_to_pb(explanation.mode) as i32,
        level: level_to_pb(explanation.level) as i32,
        still_needed: explanation.still_needed,
        dispatchable: explanation.dispatchable,
        max_travel_s: explanation.max_travel_s as u32,
        candidates: explanation
            .candidates
            .iter()
            .map(|ranked| pb::ExplainedCandidate {
                rank: ranked.rank,
                agent_id: ranked.candidate.agent.to_string(),
                distance_m: ranked.candidate.distance_m.round(),
                eta_s: ranked.candidate.eta_s,
                travel_mode: travel_mode_to_pb(ranked.travel_mode) as i32,
                via_area_id: ranked.candidate.via.as_ref().map(|area| area.to_string()).unwrap_or_default(),
                recent_assignments: ranked.candidate.recent_assignments,
                offered: ranked.offered,
                off_shift: ranked.off_shift,
            })
            .collect(),
        candidates_total: explanation.candidates_total,
        passed_over: explanation.passed_over.iter().map(passed_over_to_pb).collect(),
        reason_counts: explanation
            .reason_counts
            .iter()
            .map(|(kind, people)| pb::ReasonCount { reason: reason_kind_to_pb(kind) as i32, people: *people })
            .collect(),
        now_ms: now.0,
    }
}

/// What a viewer sees of an explanation: reasons and distances banded to
/// the kilometre as `NearbyAgents` gives them; no ETAs and no ranks, and
/// both lists in the order of the bands, then by id (the precise order
/// would tell who is nearer, and with several incidents, where).
pub fn mask_explanation(response: &mut pb::ExplainIncidentResponse) {
    for candidate in &mut response.candidates {
        let mut eta_s = 0.0;
        super::band(&mut candidate.distance_m, &mut eta_s);
        candidate.eta_s = 0.0;
        candidate.rank = 0;
    }
    response.candidates.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then_with(|| a.agent_id.cmp(&b.agent_id)));
    for passed in &mut response.passed_over {
        if passed.located {
            let mut eta_s = 0.0;
            super::band(&mut passed.distance_m, &mut eta_s);
        }
    }
    response.passed_over.sort_by(|a, b| {
        (!a.located, a.distance_m, &a.agent_id)
            .partial_cmp(&(!b.located, b.distance_m, &b.agent_id))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

pub fn duplicate_to_pb(engine: &Engine, duplicate: &PossibleDuplicate<'_>) -> pb::PossibleDuplicate {
    pb::PossibleDuplicate {
        incident: Some(incident_to_pb(engine, duplicate.incident)),
        distance_m: duplicate.distance_m.round(),
        minutes_ago: duplicate.minutes_ago,
        same_category: duplicate.same_category,
    }
}
