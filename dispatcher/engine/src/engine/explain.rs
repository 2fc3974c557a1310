//! Why this person, why not X: an incident's candidates as the search would
//! rank them now, and for everyone else the first check they fail.
//!
//! The checks are the search's own ([`Engine::qualify`] in `dispatch`) and
//! the ranking its own (`dispatch::rank`), so an explanation cannot say
//! something the decision did not do. Reading changes nothing.
//!
//! The shortfall of an incident nobody fits (`crate::incident::Shortfall`, in `NoCandidates` and
//! `IncidentUnstaffable`) is counted the same way, over the people the
//! search could reach: in the incident's area at its level and within the
//! travel limit.

use std::collections::{BTreeMap, BTreeSet};

use super::dispatch::{Candidate, CandidateQuery, Exclusion, Reach, rank};
use super::{Engine, LiveAgent, Rejection};
use crate::areas::AreaLevel;
use crate::ids::{AgentId, IncidentId, Millis, quote};
use crate::incident::Incident;
pub use crate::incident::Shortfall;
use crate::policy::Mode;
use crate::roster::{AgentRecord, AgentStatus, TravelMode};
use crate::spatial::PeopleIndex;

/// What to explain: one incident, optionally for one person, with bounds
/// on the answer's size.
#[derive(Clone, Debug)]
pub struct ExplainQuery {
    pub incident: IncidentId,
    /// Only this person's entry (a candidate's rank, or their reason).
    pub agent: Option<AgentId>,
    /// At most this many candidates, best first.
    pub candidates: usize,
    /// At most this many people passed over, nearest first.
    pub passed_over: usize,
}

/// A person the search would offer the incident to, in its order.
#[derive(Clone, Debug, PartialEq)]
pub struct RankedCandidate {
    /// 1 for the best.
    pub rank: u32,
    pub candidate: Candidate,
    pub travel_mode: TravelMode,
    /// They hold an open offer of this incident already.
    pub offered: bool,
    /// Off shift where the area has a duty roster: ranked after everyone
    /// on shift (`[rosters] off_shift_in_normal = "after_on_shift"`).
    pub off_shift: bool,
}

/// Why a person is not a candidate, with what the operator needs to act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Skills the incident requires that they lack.
    LacksSkill {
        skills: Vec<String>,
    },
    /// Busy (by their own status, or on an assignment of `incident`).
    Busy {
        incident: Option<IncidentId>,
    },
    OffDuty,
    /// A reserve, not offered tasks in the mode in force.
    Reserve {
        mode: Mode,
    },
    /// Their live location is older than the policy allows.
    LocationStale {
        since: Millis,
    },
    /// Farther than the mode's longest travel.
    BeyondTravelLimit {
        max_travel_s: u64,
    },
    /// They declined this incident or let its offer lapse.
    Declined,
    /// They are assigned to this incident already.
    AlreadyAssigned,
    /// Outside the areas the incident may be offered to at `level`.
    OutsideArea {
        level: AreaLevel,
    },
    /// They are answering an offer of another incident.
    HoldsOffer {
        incident: IncidentId,
    },
    /// No session, or no live location yet.
    NotConnected,
    /// Off shift where the area has a duty roster, and the policy offers
    /// tasks in normal mode to people on shift only.
    OffShift,
}

impl Reason {
    /// A short stable name: counts are keyed by it and clients translate it.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::LacksSkill { .. } => "lacks_skill",
            Reason::Busy { .. } => "busy",
            Reason::OffDuty => "off_duty",
            Reason::Reserve { .. } => "reserve",
            Reason::LocationStale { .. } => "location_stale",
            Reason::BeyondTravelLimit { .. } => "beyond_travel_limit",
            Reason::Declined => "declined",
            Reason::AlreadyAssigned => "already_assigned",
            Reason::OutsideArea { .. } => "outside_area",
            Reason::HoldsOffer { .. } => "holds_offer",
            Reason::NotConnected => "not_connected",
            Reason::OffShift => "off_shift",
        }
    }
}

/// A person passed over and why.
#[derive(Clone, Debug, PartialEq)]
pub struct PassedOver {
    pub agent: AgentId,
    /// From their live location; `None` without one.
    pub distance_m: Option<f64>,
    pub reason: Reason,
}

/// The answer to an [`ExplainQuery`].
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub incident: IncidentId,
    pub mode: Mode,
    pub level: AreaLevel,
    pub still_needed: u32,
    /// Whether the incident is being dispatched (not ended, not awaiting
    /// triage): for one that is not, the ranking is what it would be.
    pub dispatchable: bool,
    pub max_travel_s: u64,
    /// Best first; the first `ExplainQuery::candidates`.
    pub candidates: Vec<RankedCandidate>,
    /// Everyone who qualifies (the list above may be cut).
    pub candidates_total: u32,
    /// Nearest first; the first `ExplainQuery::passed_over`.
    pub passed_over: Vec<PassedOver>,
    /// How many of everyone on the roster each reason passed over, by
    /// [`Reason::kind`].
    pub reason_counts: BTreeMap<&'static str, u32>,
}

impl Engine {
    /// Explains an incident's dispatch at `now`; `NotFound` for an
    /// incident or a person that does not exist.
    pub fn explain(&self, query: &ExplainQuery, now: Millis) -> Result<Explanation, Rejection> {
        let Some(incident) = self.state.incidents.get(&query.incident) else {
            return Err(Rejection::NotFound(format!(
                "incident {} does not exist; list incidents to find its id",
                quote(query.incident.as_str())
            )));
        };
        let chosen = match &query.agent {
            None => None,
            Some(agent) => Some(self.state.agents.get_key_value(agent).ok_or_else(|| {
                Rejection::NotFound(format!("agent {} is not on the roster; list agents to find their id", quote(agent.as_str())))
            })?),
        };
        let reach = self.reach(incident);
        let max_travel_s = self.policy.for_mode(reach.mode).max_travel_s;
        let offered: BTreeSet<AgentId> = incident.open_offers.values().map(|offer| offer.agent.clone()).collect();
        let mut candidate_query = CandidateQuery::offer(incident, &reach, usize::MAX, now);
        candidate_query.holds_offer_of = Some(&offered);
        let stale_before = now.0 - (self.policy.location_stale_s as i64) * 1000;

        let mut qualified: Vec<Candidate> = Vec::new();
        // Everyone passed over, as references and the cheap verdict: the
        // full reason (with its allocations) is made only for the nearest
        // few kept in the answer.
        let mut passed_refs: Vec<(f64, &AgentId, Exclusion)> = Vec::new();
        let mut reason_counts: BTreeMap<&'static str, u32> = BTreeMap::new();
        let speeds = &self.policy.speeds;
        let judge = |agent: &'_ AgentId, live: Option<&LiveAgent>, fallback_speed: f64| {
            let distance_m = live.and_then(|live| live.location).map(|at| PeopleIndex::distance_m(incident.spec.at, at));
            let speed = live.map_or(fallback_speed, |live| live.indexed_as.speed_mps(speeds));
            let verdict = self.qualify_live(
                &candidate_query,
                agent,
                live,
                distance_m.unwrap_or(0.0),
                speed,
                stale_before,
                Some(max_travel_s as f64),
            );
            verdict.map_err(|exclusion| (distance_m.unwrap_or(f64::INFINITY), exclusion))
        };
        let mut located = 0usize;
        // The entries of `passed_refs` still to count by reason (the
        // unlocated people added from the roster last are counted at once).
        let to_count;
        match chosen {
            Some((agent, record)) => {
                let fallback_speed = record.profile.travel_mode.speed_mps(speeds);
                match judge(agent, self.live.agents.get(agent), fallback_speed) {
                    Ok(candidate) => qualified.push(candidate),
                    Err((distance_m, exclusion)) => passed_refs.push((distance_m, agent, exclusion)),
                }
                to_count = passed_refs.len();
            }
            None => {
                // The located people from the live copy (no roster look-up
                // for each: only people on the roster connect), then the
                // rest of the roster, who are all "not connected".
                for (agent, live) in self.live.agents.iter().filter(|(_, live)| live.location.is_some()) {
                    located += 1;
                    match judge(agent, Some(live), 0.0) {
                        Ok(candidate) => qualified.push(candidate),
                        Err((distance_m, exclusion)) => passed_refs.push((distance_m, agent, exclusion)),
                    }
                }
                to_count = passed_refs.len();
                let unlocated = self.state.agents.len().saturating_sub(located);
                if unlocated > 0 {
                    *reason_counts.entry("not_connected").or_default() += unlocated as u32;
                }
                if passed_refs.len() < query.passed_over {
                    let wanted = query.passed_over - passed_refs.len();
                    let not_located = self
                        .state
                        .agents
                        .keys()
                        .filter(|agent| self.live.agents.get(agent).is_none_or(|live| live.location.is_none()))
                        .take(wanted)
                        .map(|agent| (f64::INFINITY, agent, Exclusion::NotConnected));
                    passed_refs.extend(not_located.collect::<Vec<_>>());
                }
            }
        }
        // The duty roster's rule: people off shift are passed over
        // ("never") or ranked after everyone on shift ("after_on_shift").
        let shift_rule = self.shift_rule(incident, &reach, now);
        let off_shift = |candidate: &Candidate| shift_rule.as_ref().is_some_and(|rule| !rule.on_shift.contains(&candidate.agent));
        if shift_rule.as_ref().is_some_and(|rule| rule.off_shift == crate::policy::OffShift::Never) {
            let (on, off): (Vec<Candidate>, Vec<Candidate>) = qualified.into_iter().partition(|candidate| !off_shift(candidate));
            qualified = on;
            for candidate in off {
                if let Some((agent, _)) = self.state.agents.get_key_value(&candidate.agent) {
                    passed_refs.push((candidate.distance_m, agent, Exclusion::OffShift));
                    *reason_counts.entry("off_shift").or_default() += 1;
                }
            }
        }
        for (_, agent, exclusion) in &passed_refs[..to_count] {
            let kind = self.reason_kind(*exclusion, incident, agent);
            *reason_counts.entry(kind).or_default() += 1;
        }
        // Nearest first; people without a location after everyone located.
        let nearest =
            |a: &(f64, &AgentId, Exclusion), b: &(f64, &AgentId, Exclusion)| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1));
        if passed_refs.len() > query.passed_over && query.passed_over > 0 {
            passed_refs.select_nth_unstable_by(query.passed_over - 1, nearest);
        }
        passed_refs.truncate(query.passed_over);
        passed_refs.sort_by(nearest);
        let passed: Vec<PassedOver> = passed_refs
            .into_iter()
            .filter_map(|(distance_m, agent, exclusion)| {
                let record = self.state.agents.get(agent)?;
                Some(PassedOver {
                    agent: agent.clone(),
                    distance_m: distance_m.is_finite().then_some(distance_m),
                    reason: self.reason(exclusion, incident, record, &reach, max_travel_s),
                })
            })
            .collect();
        qualified.sort_by(|a, b| (off_shift(a), rank(a)).cmp(&(off_shift(b), rank(b))));
        let candidates_total = qualified.len() as u32;
        let candidates = qualified
            .into_iter()
            .take(query.candidates)
            .enumerate()
            .map(|(position, candidate)| {
                let travel_mode =
                    self.state.agents.get(&candidate.agent).map(|record| record.profile.travel_mode).unwrap_or_default();
                let offered = offered.contains(&candidate.agent);
                let off_shift = off_shift(&candidate);
                RankedCandidate { rank: position as u32 + 1, candidate, travel_mode, offered, off_shift }
            })
            .collect::<Vec<_>>();
        let candidates = match &query.agent {
            // One person's rank is among everyone who qualifies, which an
            // unfiltered call would give; work it out the same way.
            Some(_) if !candidates.is_empty() => {
                let on_shift = shift_rule.as_ref().map(|rule| &rule.on_shift);
                self.rank_of(incident, candidates, &candidate_query, on_shift, stale_before, max_travel_s)
            }
            _ => candidates,
        };
        Ok(Explanation {
            incident: incident.id.clone(),
            mode: reach.mode,
            level: reach.level(),
            still_needed: incident.still_needed(),
            dispatchable: incident.is_dispatchable(),
            max_travel_s,
            candidates,
            candidates_total,
            passed_over: passed,
            reason_counts,
        })
    }

    /// The rank of the one candidate in `found` among everyone who
    /// qualifies for `incident`.
    fn rank_of(
        &self,
        incident: &Incident,
        mut found: Vec<RankedCandidate>,
        query: &CandidateQuery<'_>,
        on_shift: Option<&BTreeSet<AgentId>>,
        stale_before: i64,
        max_travel_s: u64,
    ) -> Vec<RankedCandidate> {
        // Off shift ranks after on shift where a roster applies.
        let tier = |agent: &AgentId| on_shift.is_some_and(|on_shift| !on_shift.contains(agent));
        let Some(mut entry) = found.pop() else {
            return found;
        };
        // Only located people qualify: the live copy is enough to find them.
        let ahead = self
            .live
            .agents
            .iter()
            .filter(|(agent, _)| **agent != entry.candidate.agent)
            .filter_map(|(agent, live)| {
                let at = live.location?;
                let distance_m = PeopleIndex::distance_m(incident.spec.at, at);
                let speed = live.indexed_as.speed_mps(&self.policy.speeds);
                self.qualify_live(query, agent, Some(live), distance_m, speed, stale_before, Some(max_travel_s as f64)).ok()
            })
            .filter(|other| (tier(&other.agent), rank(other)) < (tier(&entry.candidate.agent), rank(&entry.candidate)))
            .count();
        entry.rank = ahead as u32 + 1;
        vec![entry]
    }

    /// `Reason::kind` of what [`Engine::reason`] would say, without
    /// making it (no allocation: it is counted for everyone).
    fn reason_kind(&self, exclusion: Exclusion, incident: &Incident, agent: &AgentId) -> &'static str {
        let kind = match exclusion {
            Exclusion::BeyondTravelLimit => "beyond_travel_limit",
            Exclusion::OutsideArea => "outside_area",
            Exclusion::NotConnected => "not_connected",
            Exclusion::LocationStale => "location_stale",
            Exclusion::Excluded if incident.assignment_of(agent).is_some() => "already_assigned",
            Exclusion::Excluded => "declined",
            // Only here is the roster looked up: few people get this far.
            Exclusion::NotFree => match self
                .state
                .agents
                .get(agent)
                .map(|record| (record.status, record.open_offer.is_some(), record.current_incident.is_some()))
            {
                Some((AgentStatus::OffDuty, _, _)) => "off_duty",
                Some((AgentStatus::Available, true, false)) => "holds_offer",
                _ => "busy",
            },
            Exclusion::LacksSkill => "lacks_skill",
            Exclusion::NotEligible => "reserve",
            Exclusion::OffShift => "off_shift",
        };
        debug_assert!(
            self.state
                .agents
                .get(agent)
                .is_none_or(|record| { kind == self.reason(exclusion, incident, record, &self.reach(incident), 0).kind() }),
            "the count's kind is the reason's"
        );
        kind
    }

    /// The details of why `record` failed `exclusion` for `incident`.
    fn reason(
        &self,
        exclusion: Exclusion,
        incident: &Incident,
        record: &AgentRecord,
        reach: &Reach,
        max_travel_s: u64,
    ) -> Reason {
        let agent = &record.profile.id;
        match exclusion {
            Exclusion::BeyondTravelLimit => Reason::BeyondTravelLimit { max_travel_s },
            Exclusion::OutsideArea => Reason::OutsideArea { level: reach.level() },
            Exclusion::NotConnected => Reason::NotConnected,
            Exclusion::LocationStale => {
                Reason::LocationStale { since: self.live.agents.get(agent).map_or(Millis(0), |live| live.located_at) }
            }
            Exclusion::Excluded if incident.assignment_of(agent).is_some() => Reason::AlreadyAssigned,
            Exclusion::Excluded => Reason::Declined,
            Exclusion::NotFree => match (&record.status, &record.current_incident, &record.open_offer) {
                (AgentStatus::OffDuty, _, _) => Reason::OffDuty,
                (_, Some(on), _) => Reason::Busy { incident: Some(on.clone()) },
                (AgentStatus::Busy, None, _) => Reason::Busy { incident: None },
                (_, None, Some((_, other))) => Reason::HoldsOffer { incident: other.clone() },
                // The live copy of "free" follows the roster, so this is not
                // reached; say busy rather than nothing.
                (AgentStatus::Available, None, None) => Reason::Busy { incident: None },
            },
            Exclusion::LacksSkill => {
                Reason::LacksSkill { skills: incident.spec.skills.difference(&record.profile.skills).cloned().collect() }
            }
            Exclusion::NotEligible => Reason::Reserve { mode: reach.mode },
            Exclusion::OffShift => Reason::OffShift,
        }
    }

    /// The shortfall of `incident` at `reach`: everyone the search could
    /// reach and what ruled them out. Walks the people index out to the
    /// same bounds as the search (the area's extent, the travel limit).
    pub(super) fn shortfall(&self, incident: &Incident, reach: &Reach, now: Millis) -> Shortfall {
        let query = CandidateQuery::offer(incident, reach, usize::MAX, now);
        let stale_before = now.0 - (self.policy.location_stale_s as i64) * 1000;
        let max_travel_s = self.policy.for_mode(reach.mode).max_travel_s;
        let scope_extent_m = query.scope.and_then(|areas| {
            areas.iter().filter_map(|scope| self.state.areas.farthest_extent_m(&scope.area, query.at)).reduce(f64::max)
        });
        let mut shortfall = Shortfall {
            level: reach.level(),
            within_m: 0,
            in_reach: 0,
            qualified: 0,
            reasons: BTreeMap::new(),
            lacking: BTreeMap::new(),
        };
        let mut farthest_m: f64 = 0.0;
        for travel_mode in PeopleIndex::MODES {
            let speed = travel_mode.speed_mps(&self.policy.speeds);
            for (indexed, distance_m) in self.live.index.nearest(query.at, travel_mode) {
                let agent = self.live.agents.id(indexed.slot);
                if scope_extent_m.is_some_and(|extent| distance_m > extent) || distance_m / speed > max_travel_s as f64 {
                    break;
                }
                let verdict = self.qualify(&query, agent, distance_m, speed, stale_before, Some(max_travel_s as f64));
                let exclusion = match verdict {
                    Ok(_) => None,
                    Err(Exclusion::BeyondTravelLimit | Exclusion::OutsideArea) => continue,
                    Err(exclusion) => Some(exclusion),
                };
                shortfall.in_reach += 1;
                farthest_m = farthest_m.max(distance_m);
                let Some(exclusion) = exclusion else {
                    shortfall.qualified += 1;
                    continue;
                };
                let Some(record) = self.state.agents.get(agent) else {
                    continue;
                };
                let reason = self.reason(exclusion, incident, record, reach, max_travel_s);
                if let Reason::LacksSkill { skills } = &reason {
                    for skill in skills {
                        *shortfall.lacking.entry(skill.clone()).or_default() += 1;
                    }
                }
                *shortfall.reasons.entry(reason.kind().to_string()).or_default() += 1;
            }
        }
        shortfall.within_m = ((farthest_m / 500.0).ceil() * 500.0) as u32;
        shortfall
    }
}
