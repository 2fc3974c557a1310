//! Dispatching: who is offered an incident, when offers widen, and what
//! happens when deadlines pass.
//!
//! Candidates are free people (available, holding no assignment, answering no
//! other offer) who are connected, have a fresh live location, have every
//! required skill, have not declined or let this incident's offer lapse, and
//! are inside the scope: the incident's current level in normal mode (grid,
//! then community, street, district, city), or in flat mode (an emergency)
//! the emergency's area together with every area in emergency at the same
//! grade or stricter that touches it, directly or through others, so that
//! help crosses district borders inside one emergency; plus the areas a
//! mutual-aid rule of the policy (对口支援) names for it, with the roles it
//! allows. A neighbour not in that emergency sends nobody without a rule. They are ranked by estimated arrival time (great-circle
//! distance / speed of their travel mode), then by fewer recent assignments,
//! then by id so that results are deterministic.
//!
//! Surges: with batch assignment (the default, see `Policy`), an incident
//! that arrives in a quiet moment is offered at once and opens a short batch
//! window; incidents wanting offers while the window is open wait for its end
//! and are then matched to people together as a min-cost assignment
//! ([`crate::assignment`]) on ETA, skills as hard constraints and recent
//! workload as a penalty. What the matching cannot place (too many incidents,
//! the step budget spent, nobody in scope) goes the greedy way, which also
//! widens and records that nobody fits.
//!
//! When a search comes up short at an incident's widest level, the whole
//! roster is counted too (from the skill index, not by walking everyone):
//! if fewer people than it needs could ever take it, that is recorded as
//! `incident_unstaffable`, so that it does not wait in silence.

use std::collections::{BTreeSet, HashMap};

use super::live::BatchWindow;
use super::{Command, Engine};
use crate::areas::{AreaLevel, Placement};
use crate::assignment::{self, Options};
use crate::event::{DISPATCHER, EventKind, WidenReason, WithdrawReason};
use crate::ids::{AgentId, AreaId, IncidentId, Millis};
use crate::incident::{Incident, OfferRecord, RosterShortfall};
use crate::policy::{Assignment, Mode};
use crate::roster::{AgentStatus, Role};
use crate::spatial::{PeopleIndex, Position};

/// A person who could take an incident, with how far away they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub agent: AgentId,
    pub distance_m: f64,
    pub eta_s: f64,
    pub recent_assignments: u32,
    /// The area of the incident's reach the person was found in (its own
    /// area, a touching area in the same emergency, a mutual-aid area);
    /// `None` for a look-up without a reach.
    pub via: Option<AreaId>,
}

/// An area whose people an incident may be offered to, and which of them:
/// all, or only `roles` (mutual aid may name roles).
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeArea {
    pub level: AreaLevel,
    pub area: AreaId,
    pub roles: Option<Vec<Role>>,
}

pub struct CandidateQuery<'a> {
    pub at: Position,
    pub skills: &'a BTreeSet<String>,
    /// The areas people must be in (their live location); `None`: anywhere.
    pub scope: Option<&'a [ScopeArea]>,
    pub excluded: Option<&'a BTreeSet<AgentId>>,
    /// Only people free to take an offer (otherwise anyone connected).
    pub free_only: bool,
    /// The mode the offer is made under: who is eligible and how far they may
    /// travel. None: anyone, any distance (an operator's look-up).
    pub mode: Option<Mode>,
    pub k: usize,
    pub now: Millis,
    /// People who hold an open offer of the incident asked about: counted
    /// as free for it (an explanation ranks them with everyone else; the
    /// search itself never sets this).
    pub holds_offer_of: Option<&'a BTreeSet<AgentId>>,
    /// Only these people (on shift now, see `super::rosters`); `None`: anyone.
    pub on_shift: Option<&'a BTreeSet<AgentId>>,
}

/// The first check of [`Engine::qualify`] a person failed: why they are
/// not a candidate. Cheap to return (no data); the explanation adds the
/// details (which incident, since when, which skill).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exclusion {
    /// Farther than the mode's longest travel allows.
    BeyondTravelLimit,
    /// Not inside the areas the incident may be offered to at its level
    /// (or a mutual-aid area that lends other roles).
    OutsideArea,
    /// No session or no live location.
    NotConnected,
    /// Their live location is older than the policy allows.
    LocationStale,
    /// They declined, let an offer lapse, or already serve the incident.
    Excluded,
    /// Busy, off duty, on another task or answering another offer.
    NotFree,
    /// They lack a skill the incident requires.
    LacksSkill,
    /// A reserve, not offered tasks in the mode in force.
    NotEligible,
    /// Off shift where the area has a duty roster (normal mode).
    OffShift,
}

impl<'a> CandidateQuery<'a> {
    /// The `k` best people free to be offered `incident` within `reach`.
    pub(super) fn offer(incident: &'a Incident, reach: &'a Reach, k: usize, now: Millis) -> Self {
        CandidateQuery {
            at: incident.spec.at,
            skills: &incident.spec.skills,
            scope: reach.scope.as_deref(),
            excluded: Some(&incident.excluded),
            free_only: true,
            mode: Some(reach.mode),
            k,
            now,
            holds_offer_of: None,
            on_shift: None,
        }
    }
}

/// Above this many holders of the rarest skill asked for, the search walks
/// the index outward instead of looking at each holder: with the index's
/// copies of skills the walk passes the unskilled at a few nanoseconds
/// each and stops at the k-th best, while looking at each holder costs a
/// hash look-up and a distance per holder (100,000 holders of a skill
/// held by a tenth of a million people: about 10 ms a search). What the
/// holders' way still saves is the walk out to the travel limit when
/// nobody near holds a rare skill. (Only where no class walk applies: a
/// look-up of people who need not be free, or a skill without a bit.)
const FEW_HOLDERS_AT_MOST: usize = 4096;

/// The search steps one batch matching may take before the slots it has not
/// reached go greedy: a bound on compute that does not depend on the clock,
/// so that the same input always gives the same offers. About 30 ms of one
/// core on the 2-core development machine (docs/PERFORMANCE.md).
const MAX_MATCHING_STEPS: u64 = 3_000_000;

/// The cost of leaving one slot of a priority-1 incident without an offer,
/// far above any ETA: the matching staffs as many slots as it can, most
/// urgent first, before it minimises travel.
const UNMATCHED_COST: i64 = 1_000_000_000;

/// Where an incident's offers may go and under which mode.
pub(super) struct Reach {
    pub(super) mode: Mode,
    /// The incident's own area first (its level is the offer's level).
    pub(super) scope: Option<Vec<ScopeArea>>,
}

impl Reach {
    pub(super) fn level(&self) -> AreaLevel {
        self.scope.as_ref().and_then(|areas| areas.first()).map_or(AreaLevel::City, |first| first.level)
    }
}

impl Engine {
    /// The people nearest to `at`, by estimated arrival time.
    pub fn nearby(&self, at: Position, k: usize, skills: &BTreeSet<String>, available_only: bool, now: Millis) -> Vec<Candidate> {
        let query = CandidateQuery {
            at,
            skills,
            scope: None,
            excluded: None,
            free_only: available_only,
            mode: None,
            k,
            now,
            holds_offer_of: None,
            on_shift: None,
        };
        self.find_candidates(&query)
    }
}

impl Engine {
    /// The best `k` candidates, best first.
    pub(super) fn find_candidates(&self, query: &CandidateQuery<'_>) -> Vec<Candidate> {
        if query.k == 0 {
            return Vec::new();
        }
        let speeds = &self.policy.speeds;
        let stale_before = query.now.0 - (self.policy.location_stale_s as i64) * 1000;
        let scope_extent_m = match query.scope {
            None => None,
            Some(areas) => {
                areas.iter().filter_map(|scope| self.state.areas.farthest_extent_m(&scope.area, query.at)).reduce(f64::max)
            }
        };
        let max_travel_s = query.mode.map(|mode| self.policy.for_mode(mode).max_travel_s as f64);
        let mut best: Vec<Candidate> = Vec::with_capacity(query.k + 1);
        // The index's copies say who surely fails the skill or "free"
        // check: those are passed over from the tree's leaves alone, and
        // only the rest are looked up and checked in full.
        let required_skills = self.live.skill_bits.required(query.skills);
        let free_required = query.free_only && query.holds_offer_of.is_none();
        // Free people with some skill: the walk skips whole subtrees holding
        // no free person with every skill asked for (the index's summaries).
        let holders_walk = free_required && required_skills.is_some_and(|required| required != 0);
        // Such a walk reaches only the free holders and stops at the k-th
        // best, so it never looks at more people than the holders' way.
        if !holders_walk && let Some(holders) = self.few_holders(query.skills) {
            // Few people hold the rarest skill asked for: looking at each of
            // them is cheaper than walking everyone nearer than the first
            // who qualifies (with 50,000 people and an incident nobody in
            // reach can take, that walk visits all of them, at every retry).
            // The same checks and ranking as the walk below, so the same
            // people come out: the walk's early stops only skip people who
            // could not rank among the best `k`.
            for agent in holders {
                let Some(live) = self.live.agents.get(agent) else {
                    continue;
                };
                let Some(at) = live.location else {
                    continue;
                };
                let distance_m = PeopleIndex::distance_m(query.at, at);
                if scope_extent_m.is_some_and(|extent| distance_m > extent) {
                    continue;
                }
                let speed = live.indexed_as.speed_mps(speeds);
                if let Some(candidate) = self.candidate(query, agent, live, distance_m, speed, stale_before, max_travel_s, &best)
                {
                    let position = best.partition_point(|other| rank(other) <= rank(&candidate));
                    best.insert(position, candidate);
                    best.truncate(query.k);
                }
            }
            return best;
        }
        // One walk through the three travel modes' trees, soonest first:
        // it stops once nobody after could beat the k-th best so far.
        let filter = (required_skills.unwrap_or(0), free_required);
        let within_m = scope_extent_m.unwrap_or(f64::INFINITY);
        let within_s = max_travel_s.unwrap_or(f64::INFINITY);
        for found in self.live.index.soonest_with(query.at, speeds, filter, within_m, within_s) {
            if best.len() == query.k && best.last().is_some_and(|worst| found.at_least_s.round() > worst.eta_s) {
                break;
            }
            let (indexed, distance_m) = (found.person, found.metres);
            let speed = found.mode.speed_mps(speeds);
            if scope_extent_m.is_some_and(|extent| distance_m > extent) {
                continue;
            }
            if max_travel_s.is_some_and(|max_travel_s| distance_m / speed > max_travel_s) {
                continue;
            }
            let agent = self.live.agents.id(indexed.slot);
            let lacks_skill = required_skills.is_some_and(|required| required & !indexed.skills != 0);
            if lacks_skill || (free_required && !indexed.free) {
                debug_assert!(
                    self.qualify(query, agent, distance_m, speed, stale_before, max_travel_s).is_err(),
                    "the index's copies pass over only people the checks refuse"
                );
                continue;
            }
            // By number, from the index's entry: no look-up by id.
            let live = self.live.agents.by_slot(indexed.slot);
            let Some(candidate) = self.candidate(query, agent, live, distance_m, speed, stale_before, max_travel_s, &best) else {
                continue;
            };
            let position = best.partition_point(|other| rank(other) <= rank(&candidate));
            best.insert(position, candidate);
            best.truncate(query.k);
        }
        best
    }

    /// `agent` (whose live record is `live`) as a candidate for `query` at
    /// `distance_m` (travelling at `speed`), or `None` when a check rules
    /// them out or they could not rank among the best so far.
    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        query: &CandidateQuery<'_>,
        agent: &AgentId,
        live: &super::LiveAgent,
        distance_m: f64,
        speed: f64,
        stale_before: i64,
        max_travel_s: Option<f64>,
        best: &[Candidate],
    ) -> Option<Candidate> {
        // Ranked in whole seconds on purpose (docs/policy.md): an ETA
        // from distance and an average speed is not good to a second,
        // so people within the same second are equally near and the
        // one with less recent work goes first.
        let eta_s = (distance_m / speed).round();
        if best.len() == query.k && best.last().is_some_and(|worst| eta_s > worst.eta_s) {
            return None;
        }
        self.qualify_live(query, agent, Some(live), distance_m, speed, stale_before, max_travel_s).ok()
    }

    /// Every check a person must pass to be offered what `query` asks for,
    /// in one place: the search calls it to decide and the explanation
    /// (`super::explain`) calls it to say why someone was passed over, so
    /// the two cannot drift apart. The first check that fails is the
    /// reason; where people are (travel limit, area) comes before what
    /// they are doing, so that a shortfall counts "within reach" first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn qualify(
        &self,
        query: &CandidateQuery<'_>,
        agent: &AgentId,
        distance_m: f64,
        speed: f64,
        stale_before: i64,
        max_travel_s: Option<f64>,
    ) -> Result<Candidate, Exclusion> {
        let live = self.live.agents.get(agent);
        self.qualify_live(query, agent, live, distance_m, speed, stale_before, max_travel_s)
    }

    /// [`Engine::qualify`] with the person's live copy looked up already.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn qualify_live(
        &self,
        query: &CandidateQuery<'_>,
        agent: &AgentId,
        live: Option<&super::LiveAgent>,
        distance_m: f64,
        speed: f64,
        stale_before: i64,
        max_travel_s: Option<f64>,
    ) -> Result<Candidate, Exclusion> {
        // The travel limit is on the exact ETA: nobody beyond it is offered.
        let exact_eta_s = distance_m / speed;
        let eta_s = exact_eta_s.round();
        if max_travel_s.is_some_and(|max_travel_s| exact_eta_s > max_travel_s) {
            return Err(Exclusion::BeyondTravelLimit);
        }
        // Cheap checks on the live copy first; the roster look-up last.
        let Some(live) = live.filter(|live| live.location.is_some()) else {
            return Err(Exclusion::NotConnected);
        };
        let (via, roles_allowed) = match query.scope {
            None => (None, None),
            Some(areas) => {
                let Some(scope) = areas.iter().find(|scope| self.live_placement(live).within(scope.level, &scope.area)) else {
                    return Err(Exclusion::OutsideArea);
                };
                (Some(&scope.area), scope.roles.as_ref())
            }
        };
        if live.located_at.0 < stale_before {
            return Err(Exclusion::LocationStale);
        }
        if query.excluded.is_some_and(|excluded| excluded.contains(agent)) {
            return Err(Exclusion::Excluded);
        }
        if query.free_only && !live.free && !query.holds_offer_of.is_some_and(|offered| offered.contains(agent)) {
            return Err(Exclusion::NotFree);
        }
        let holds_skills = self.live.skill_bits.holds(query.skills, live.skills, live.skills_beyond_bits).unwrap_or_else(|| {
            // Skills beyond the bits (more than 64 skills on the roster): ask the roster.
            self.state.agents.get(agent).is_some_and(|record| record.has_skills(query.skills))
        });
        if !holds_skills {
            return Err(Exclusion::LacksSkill);
        }
        // The roster's role and recent assignments, from the live copy.
        let Some(roster) = live.roster.as_ref() else {
            return Err(Exclusion::NotConnected);
        };
        debug_assert!(
            self.state.agents.get(agent).is_some_and(|record| record.has_skills(query.skills)
                && live.free == record.is_free()
                && record.profile.travel_mode == live.indexed_as
                && roster == &super::live::RosterCopy::of(record)),
            "the live copies follow the roster"
        );
        if let Some(mode) = query.mode
            && !self.policy.eligible(mode, roster.role)
        {
            return Err(Exclusion::NotEligible);
        }
        if roles_allowed.is_some_and(|roles| !roles.contains(&roster.role)) {
            return Err(Exclusion::OutsideArea);
        }
        if query.on_shift.is_some_and(|on_shift| !on_shift.contains(agent)) {
            return Err(Exclusion::OffShift);
        }
        Ok(Candidate {
            agent: agent.clone(),
            distance_m,
            eta_s,
            recent_assignments: self.assignments_since_window(&roster.recent_assignments, query.now),
            via: via.cloned(),
        })
    }

    /// The holders of the rarest of `skills` when they are few against the
    /// people located (an eighth or fewer) and few in number (at most
    /// [`FEW_HOLDERS_AT_MOST`]), else `None`: no skill asked for, or a
    /// common one.
    pub(super) fn few_holders(&self, skills: &BTreeSet<String>) -> Option<&BTreeSet<AgentId>> {
        static EMPTY: BTreeSet<AgentId> = BTreeSet::new();
        if skills.is_empty() {
            return None;
        }
        // A skill nobody holds: nobody qualifies.
        let rarest =
            skills.iter().map(|skill| self.skills.holders(skill).unwrap_or(&EMPTY)).min_by_key(|holders| holders.len())?;
        (rarest.len() <= self.live.index.len() / 8 && rarest.len() <= FEW_HOLDERS_AT_MOST).then_some(rarest)
    }

    pub(super) fn reach(&self, incident: &Incident) -> Reach {
        let (mode, emergency_area) = self.state.effective_mode(&incident.placement);
        if let (true, Some((level, area))) = (mode.is_emergency(), emergency_area) {
            return Reach { mode, scope: Some(self.flat_area(&incident.placement, mode, level, area)) };
        }
        // One meaning of "city" in both modes: the city area, when the
        // incident lies in it. Only an incident off the map (forced) is
        // offered to anyone by distance.
        let level = incident.scope;
        let scope = incident.placement.at(level).map(|area| vec![ScopeArea { level, area: area.clone(), roles: None }]);
        Reach { mode, scope }
    }

    /// The flat area of an emergency: `area` (in `mode`), every area in
    /// emergency at `mode` or stricter that touches it directly or through
    /// others, then the areas mutual-aid rules add for any of those or for
    /// an area the incident lies in.
    pub(super) fn flat_area(&self, placement: &Placement, mode: Mode, level: AreaLevel, area: AreaId) -> Vec<ScopeArea> {
        let areas = &self.state.areas;
        let mut joined = vec![ScopeArea { level, area, roles: None }];
        let mut others: Vec<(AreaLevel, AreaId)> = self
            .state
            .modes
            .iter()
            .filter(|(other, setting)| setting.mode >= mode && **other != joined[0].area)
            .filter_map(|(other, _)| areas.get(other).map(|spec| (spec.level, other.clone())))
            .collect();
        let mut next = 0;
        while next < joined.len() {
            let (touching, apart): (Vec<_>, Vec<_>) =
                others.into_iter().partition(|(_, other)| areas.touch(&joined[next].area, other));
            joined.extend(touching.into_iter().map(|(level, area)| ScopeArea { level, area, roles: None }));
            others = apart;
            next += 1;
        }
        let helped =
            |to: &AreaId| joined.iter().any(|scope| &scope.area == to) || placement.areas().any(|(_, within)| within == to);
        let aid: Vec<ScopeArea> = self
            .policy
            .mutual_aid
            .iter()
            .filter(|rule| helped(&rule.to))
            .flat_map(|rule| {
                let roles = Some(rule.roles.clone()).filter(|roles| !roles.is_empty());
                rule.from.iter().filter_map(move |from| {
                    areas.get(from).map(|spec| ScopeArea { level: spec.level, area: from.clone(), roles: roles.clone() })
                })
            })
            .collect();
        joined.extend(aid);
        joined
    }

    /// The next level an incident can widen to, if any.
    fn wider_level(incident: &Incident) -> Option<AreaLevel> {
        let mut level = incident.scope.wider()?;
        while level != AreaLevel::City && incident.placement.at(level).is_none() {
            level = level.wider()?;
        }
        Some(level)
    }

    /// Makes the offers an incident still lacks, or, with batch assignment
    /// while a batch window is open, queues it for the end of the window.
    pub(super) fn dispatch_incident(&mut self, incident_id: &IncidentId, now: Millis, out: &mut Vec<super::Event>) {
        if self.held_for_batch(incident_id, now) {
            return;
        }
        self.dispatch_incident_now(incident_id, now, out);
    }

    /// Batch assignment: true when the incident waits for the open window's
    /// matching; opens a window when none is open (the incident itself is
    /// then offered at once).
    fn held_for_batch(&mut self, incident_id: &IncidentId, now: Millis) -> bool {
        let Some(incident) = self.state.incidents.get(incident_id).filter(|incident| incident.is_dispatchable()) else {
            return false;
        };
        let mode_policy = self.policy.for_mode(self.reach(incident).mode);
        if mode_policy.assignment != Assignment::Batch {
            return false;
        }
        if self.live.batch.as_ref().is_some_and(|window| now <= window.until && window.opened_by.as_ref() != Some(incident_id)) {
            self.live.batch_queue.insert(incident_id.clone());
            return true;
        }
        if self.live.batch.as_ref().is_some_and(|window| now <= window.until) {
            return false;
        }
        self.live.batch = Some(BatchWindow {
            until: Millis(now.0 + mode_policy.batch_window_ms as i64),
            opened_by: Some(incident_id.clone()),
            window_ms: mode_policy.batch_window_ms,
            max_incidents: mode_policy.batch_max_incidents,
        });
        false
    }

    /// When the queued incidents are matched, if any wait.
    pub(super) fn batch_due(&self) -> Option<Millis> {
        if self.live.batch_queue.is_empty() {
            return None;
        }
        self.live.batch.as_ref().map(|window| window.until)
    }

    /// The end of a batch window: matches every queued incident's missing
    /// offers to people at once, then lets the greedy path fill what the
    /// matching left (widening, recording that nobody fits, retries).
    fn dispatch_batch(&mut self, now: Millis, out: &mut Vec<super::Event>) {
        let Some(window) = self.live.batch.clone() else {
            return;
        };
        let queued = std::mem::take(&mut self.live.batch_queue);
        let order: Vec<IncidentId> = self.incidents_lacking_offers().into_iter().filter(|id| queued.contains(id)).collect();
        let batch = &order[..order.len().min(window.max_incidents as usize)];

        // One slot per offer still to make; candidates per incident.
        let mut slot_incident: Vec<usize> = Vec::new();
        let mut options: Vec<Options> = Vec::new();
        let mut unmatched_cost: Vec<i64> = Vec::new();
        let mut people: Vec<AgentId> = Vec::new();
        let mut column_of: HashMap<AgentId, usize> = HashMap::new();
        let mut reaches: Vec<Reach> = Vec::new();
        let mut candidates_of: Vec<Vec<Candidate>> = Vec::new();
        for (position, incident_id) in batch.iter().enumerate() {
            let incident = &self.state.incidents[incident_id];
            let reach = self.reach(incident);
            let mode_policy = self.policy.for_mode(reach.mode);
            let slots =
                ((incident.still_needed() * mode_policy.parallel_offers) as usize).saturating_sub(incident.open_offers.len());
            let candidates = self.offer_candidates(incident, &reach, slots + self.policy.batch_spare_candidates as usize, now);
            let mut incident_options = Options::with_capacity(candidates.len());
            for candidate in &candidates {
                let cost =
                    candidate.eta_s as i64 + self.policy.workload_penalty_s as i64 * i64::from(candidate.recent_assignments);
                let column = *column_of.entry(candidate.agent.clone()).or_insert_with(|| {
                    people.push(candidate.agent.clone());
                    people.len() - 1
                });
                incident_options.push((column, cost));
            }
            candidates_of.push(candidates);
            // Priority 1 is the most urgent: its slots cost the most to leave empty.
            let urgency = 16 - i64::from(incident.spec.priority.min(15));
            for _ in 0..slots {
                slot_incident.push(position);
                options.push(incident_options.clone());
                unmatched_cost.push(UNMATCHED_COST / 16 * urgency);
            }
            reaches.push(reach);
        }
        let matching = assignment::min_cost_matching(&options, &unmatched_cost, people.len(), MAX_MATCHING_STEPS);
        for (slot, column) in matching.slot_to_person.iter().enumerate() {
            let Some(column) = column else {
                continue;
            };
            let position = slot_incident[slot];
            let Some(candidate) = candidates_of[position].iter().find(|candidate| candidate.agent == people[*column]).cloned()
            else {
                debug_assert!(false, "a slot is matched only to a candidate of its incident");
                continue;
            };
            self.send_offer(&batch[position].clone(), candidate, &reaches[position], now, out);
        }
        for incident_id in &order {
            self.dispatch_incident_now(incident_id, now, out);
        }
        self.live.batch = Some(BatchWindow { until: Millis(now.0 + window.window_ms as i64), opened_by: None, ..window });
    }

    /// Emits one offer of an incident to a candidate.
    fn send_offer(
        &mut self,
        incident_id: &IncidentId,
        candidate: Candidate,
        reach: &Reach,
        now: Millis,
        out: &mut Vec<super::Event>,
    ) {
        let level = reach.level();
        let deadline = now.plus_seconds(self.policy.for_mode(reach.mode).offer_timeout_s);
        let incident = &self.state.incidents[incident_id];
        let origin = self.live.agents.get(&candidate.agent).and_then(|live| live.location).map(Position::approximate);
        let offer = OfferRecord {
            id: incident.next_offer_id(),
            incident: incident_id.clone(),
            agent: candidate.agent,
            sent_at: now,
            deadline,
            distance_m: candidate.distance_m.round(),
            eta_s: candidate.eta_s,
            level,
            flat: reach.mode.is_emergency(),
            origin,
            from_area: candidate.via,
        };
        self.emit(out, DISPATCHER, now, EventKind::OfferSent { offer });
    }

    /// Makes the offers an incident still lacks, widening in normal mode when
    /// nobody at the current level fits.
    fn dispatch_incident_now(&mut self, incident_id: &IncidentId, now: Millis, out: &mut Vec<super::Event>) {
        loop {
            let Some(incident) = self.state.incidents.get(incident_id).filter(|incident| incident.is_dispatchable()) else {
                return;
            };
            let reach = self.reach(incident);
            let mode_policy = self.policy.for_mode(reach.mode);
            let wanted = (incident.still_needed() * mode_policy.parallel_offers) as usize;
            let outstanding = incident.open_offers.len();
            if outstanding >= wanted {
                return;
            }
            let candidates = self.offer_candidates(incident, &reach, wanted - outstanding, now);
            let short = candidates.len() < wanted - outstanding;
            if !candidates.is_empty() {
                for candidate in candidates {
                    self.send_offer(incident_id, candidate, &reach, now, out);
                }
                if !short {
                    return;
                }
            }
            // Nobody (or too few) at this level fit: widen in normal mode.
            let incident = &self.state.incidents[incident_id];
            let outstanding = incident.open_offers.len();
            if !reach.mode.is_emergency()
                && let Some(to) = Self::wider_level(incident)
            {
                let from = incident.scope;
                let widened = EventKind::Widened { incident: incident_id.clone(), from, to, reason: WidenReason::NoCandidates };
                self.emit(out, DISPATCHER, now, widened);
                continue;
            }
            if outstanding == 0 && !incident.waiting_noted {
                let level = reach.level();
                let shortfall = Some(self.shortfall(incident, &reach, now));
                self.emit(out, DISPATCHER, now, EventKind::NoCandidates { incident: incident_id.clone(), level, shortfall });
            }
            self.note_unstaffable(incident_id, &reach, now, out);
            let retry_at = now.plus_seconds(self.policy.waiting_retry_s);
            if self.live.next_retry.is_none_or(|at| at > retry_at) {
                self.live.next_retry = Some(retry_at);
            }
            return;
        }
    }

    /// Raises `incident_unstaffable` when nobody on the whole roster could
    /// staff the incident, unless this very shortfall was raised already.
    fn note_unstaffable(&mut self, incident_id: &IncidentId, reach: &Reach, now: Millis, out: &mut Vec<super::Event>) {
        let Some(incident) = self.state.incidents.get(incident_id) else {
            return;
        };
        let Some(shortfall) = self.roster_shortfall(incident) else {
            return;
        };
        if incident.unstaffable.as_ref() == Some(&shortfall) {
            return;
        }
        let in_reach = Some(self.shortfall(incident, reach, now));
        let RosterShortfall { needed, possible, missing_skills, beyond_reach } = shortfall;
        let event = EventKind::IncidentUnstaffable {
            incident: incident_id.clone(),
            needed,
            possible,
            missing_skills,
            beyond_reach,
            shortfall: in_reach,
        };
        self.emit(out, DISPATCHER, now, event);
    }

    /// How short of people the whole roster leaves `incident`, if it does
    /// (see `EventKind::IncidentUnstaffable`): `None` while enough people
    /// on the roster could take it, and for an incident not dispatched
    /// (ended, staffed, waiting for triage).
    pub fn roster_shortfall(&self, incident: &Incident) -> Option<RosterShortfall> {
        let needed = incident.still_needed();
        if needed == 0 || !incident.is_dispatchable() {
            return None;
        }
        let missing_skills: BTreeSet<String> =
            incident.spec.skills.iter().filter(|skill| !self.skills.knows(skill)).cloned().collect();
        let beyond_reach = incident.placement.deepest().is_none() && self.beyond_reach(incident.spec.at);
        let possible = if missing_skills.is_empty() && !beyond_reach { self.possible_people(incident, needed) } else { 0 };
        (possible < needed).then_some(RosterShortfall { needed, possible, missing_skills, beyond_reach })
    }

    /// Whether `at` is farther from the map (its bounding box) than anyone
    /// may travel to a task: the longest `max_travel_s` of any mode at the
    /// fastest travel speed. The roster's people live and work on the map,
    /// so nobody there could ever be offered it. Never with no map.
    pub fn beyond_reach(&self, at: Position) -> bool {
        let Some((south_west, north_east)) = self.state.areas.bounds() else {
            return false;
        };
        let nearest_on_map =
            Position { lon: at.lon.clamp(south_west.lon, north_east.lon), lat: at.lat.clamp(south_west.lat, north_east.lat) };
        let modes = [Mode::Normal, Mode::EmergencyIv, Mode::EmergencyIii, Mode::EmergencyIi, Mode::EmergencyI];
        let longest_travel_s = modes.iter().map(|mode| self.policy.for_mode(*mode).max_travel_s).max().unwrap_or(0);
        let speeds = &self.policy.speeds;
        let fastest_mps = speeds.walk_mps.max(speeds.bike_mps).max(speeds.car_mps);
        at.distance_m(nearest_on_map) > longest_travel_s as f64 * fastest_mps
    }

    /// People on the roster who could take `incident` (every skill it
    /// requires, not excluded from it), counted up to `enough`. Walks the
    /// holders of its rarest skill only, not the whole roster.
    fn possible_people(&self, incident: &Incident, enough: u32) -> u32 {
        let required = &incident.spec.skills;
        let rarest = required.iter().filter_map(|skill| self.skills.holders(skill)).min_by_key(|holders| holders.len());
        let Some(rarest) = rarest else {
            // No skill required: everyone on the roster not excluded.
            let excluded = incident.excluded.iter().filter(|agent| self.state.agents.contains_key(*agent)).count();
            let possible = self.state.agents.len().saturating_sub(excluded);
            return u32::try_from(possible).unwrap_or(u32::MAX).min(enough);
        };
        let mut possible = 0;
        for agent in rarest.iter().filter(|agent| !incident.excluded.contains(*agent)) {
            if self.state.agents.get(agent).is_some_and(|record| record.has_skills(required)) {
                possible += 1;
                if possible >= enough {
                    break;
                }
            }
        }
        possible
    }

    /// Open incidents that still lack offers, most urgent first.
    fn incidents_lacking_offers(&self) -> Vec<IncidentId> {
        let mut lacking: Vec<&Incident> = self
            .state
            .open_incidents
            .iter()
            .filter_map(|id| self.state.incidents.get(id))
            .filter(|incident| incident.is_dispatchable())
            .filter(|incident| {
                let mode = self.state.effective_mode(&incident.placement).0;
                let wanted = incident.still_needed() * self.policy.for_mode(mode).parallel_offers;
                (incident.open_offers.len() as u32) < wanted
            })
            .collect();
        lacking.sort_by_key(|incident| (incident.spec.priority, incident.reported_at, incident.id.clone()));
        lacking.into_iter().map(|incident| incident.id.clone()).collect()
    }

    /// Someone became free or a mode changed: try every incident that lacks offers.
    pub(super) fn dispatch_waiting(&mut self, now: Millis, out: &mut Vec<super::Event>) {
        for incident in self.incidents_lacking_offers() {
            self.dispatch_incident(&incident, now, out);
        }
    }

    /// `agent` was located (first, or again after their location went
    /// stale): only the incidents lacking offers whose skills they have can
    /// gain from it. The others would find the same people as at their last
    /// search; trying them all again made each person coming on line cost
    /// a search per waiting incident (10,000 people and 1,000 open
    /// incidents: ten million searches, and commands waiting behind them).
    pub(super) fn dispatch_waiting_for(&mut self, agent: &AgentId, now: Millis, out: &mut Vec<super::Event>) {
        if !self.live.agents.contains_key(agent) {
            return;
        }
        let Some(skills) = self.state.agents.get(agent).map(|record| record.profile.skills.clone()) else {
            return;
        };
        for incident in self.incidents_lacking_offers() {
            if self.state.incidents.get(&incident).is_some_and(|found| found.spec.skills.is_subset(&skills)) {
                self.dispatch_incident(&incident, now, out);
            }
        }
    }

    pub(super) fn withdraw_open_offer(
        &mut self,
        agent: &AgentId,
        reason: WithdrawReason,
        now: Millis,
        out: &mut Vec<super::Event>,
    ) {
        let Some((offer, incident)) = self.state.agents.get(agent).and_then(|record| record.open_offer.clone()) else {
            return;
        };
        let event = EventKind::OfferWithdrawn { offer, incident: incident.clone(), agent: agent.clone(), reason };
        self.emit(out, DISPATCHER, now, event);
        self.dispatch_incident(&incident, now, out);
    }

    /// The dispatcher's reaction to a command that was carried out.
    pub(super) fn react(&mut self, command: &Command, actor: &str, now: Millis, out: &mut Vec<super::Event>) {
        match command {
            Command::CreateIncident { .. } => {
                if let Some(incident) = out.iter().find_map(|event| match &event.kind {
                    EventKind::IncidentReported { incident, .. } => Some(incident.clone()),
                    _ => None,
                }) {
                    self.dispatch_incident(&incident, now, out);
                }
            }
            Command::Accept { offer, .. } | Command::BorderAnswer { offer, .. } => {
                let Some(incident_id) = out.iter().find_map(|event| match &event.kind {
                    EventKind::Assigned { incident, .. } => Some(incident.clone()),
                    _ => None,
                }) else {
                    return;
                };
                let incident = &self.state.incidents[&incident_id];
                if incident.still_needed() > 0 {
                    return;
                }
                let spare: Vec<_> = incident.open_offers.values().map(|spare| (spare.id.clone(), spare.agent.clone())).collect();
                for (spare_offer, agent) in spare {
                    debug_assert_ne!(&spare_offer, offer);
                    let event = EventKind::OfferWithdrawn {
                        offer: spare_offer,
                        incident: incident_id.clone(),
                        agent,
                        reason: WithdrawReason::Filled,
                    };
                    self.emit(out, DISPATCHER, now, event);
                }
                self.emit(out, DISPATCHER, now, EventKind::IncidentStaffed { incident: incident_id });
            }
            Command::Decline { .. } => {
                let declined = out.iter().find_map(|event| match &event.kind {
                    EventKind::OfferDeclined { incident, .. } => Some(incident.clone()),
                    _ => None,
                });
                if let Some(incident) = declined {
                    self.dispatch_incident(&incident, now, out);
                }
            }
            Command::SetStatus { agent, status } => {
                let withdrawn_from = out.iter().find_map(|event| match &event.kind {
                    EventKind::OfferWithdrawn { incident, .. } => Some(incident.clone()),
                    _ => None,
                });
                if let Some(incident) = withdrawn_from {
                    self.dispatch_incident(&incident, now, out);
                }
                let located = self.live.agents.get(agent).is_some_and(|live| live.location.is_some());
                if *status == AgentStatus::Available && located {
                    self.dispatch_waiting(now, out);
                }
            }
            Command::Complete { .. }
            | Command::CancelIncident { .. }
            | Command::CloseIncident { .. }
            | Command::MergeIncidents { .. } => {
                // People were freed: incidents that lack offers may now find them.
                self.dispatch_waiting(now, out);
            }
            Command::SetMode { area, mode, reason } => {
                // Public plans already running on the area tell the public
                // of the new grade (an Update); those the switch ends or
                // starts issue their own Cancel or Alert.
                let public = self.public_activations_on(area);
                self.after_switch(area, *mode, reason, actor, now, out);
                for activation in public {
                    if self.state.activations.get(&activation).is_some_and(|activation| activation.ended.is_none()) {
                        self.issue_cap_alert(&activation, crate::cap::CapMsgType::Update, actor, now, out);
                    }
                }
                self.dispatch_waiting(now, out);
            }
            Command::ApproveCapSuggestion { suggestion } => self.approve_suggestion(suggestion, actor, now, out),
            Command::ActivatePlan { plan, area, reason } => {
                let start = super::mobilise::PlanStart { plan, area, reason, automatic: false };
                self.activate_plan(&start, actor, now, out);
                self.dispatch_waiting(now, out);
            }
            Command::DeactivatePlan { activation, reason } => {
                self.deactivate_plan(activation, reason, actor, now, out);
                self.dispatch_waiting(now, out);
            }
            Command::ImportAreas(_)
            | Command::ReplaceAreas(_)
            | Command::RetireArea { .. }
            | Command::UpsertAgents { .. }
            | Command::CheckIn { .. }
            | Command::CheckInByReply { .. }
            | Command::RecordNotice(_)
            | Command::SafetyCheckIn { .. }
            | Command::RecordInboundRefused { .. }
            | Command::FieldReport { .. }
            | Command::TriageAccept { .. }
            | Command::BorderRelease { .. }
            | Command::BorderWithdraw { .. }
            | Command::ExpireBorderReservations => self.dispatch_waiting(now, out),
            Command::Arrive { .. }
            | Command::Connect { .. }
            | Command::Disconnect { .. }
            | Command::ReportLocation { .. }
            | Command::ImportPlans(_)
            | Command::CallUp { .. }
            | Command::TriageMerge { .. }
            | Command::ReportDuplicate { .. }
            | Command::TriageReject { .. }
            | Command::IssueAgentToken { .. }
            | Command::IssueAgentTokens { .. }
            | Command::AddOperator { .. }
            | Command::RotateOperatorToken { .. }
            | Command::RevokeOperatorToken { .. }
            | Command::RemoveOperator { .. }
            | Command::SendMessage { .. }
            | Command::ReplyToMessage { .. }
            | Command::MarkMessageRead { .. }
            | Command::RecordRead { .. }
            | Command::ReceiveCapAlert { .. }
            | Command::RequestHelp { .. }
            | Command::DismissCapSuggestion { .. }
            | Command::Supplies(_)
            | Command::BorderReserve(_)
            | Command::BorderConfirm { .. }
            | Command::BorderOffer { .. }
            | Command::Rosters(_)
            | Command::Shelters(_) => {}
        }
    }

    /// Offer timeouts, widening waits and retries due at `now`.
    pub(super) fn fire_deadlines(&mut self, now: Millis, out: &mut Vec<super::Event>) {
        self.forget_stale_reachable(now);
        let mut touched = BTreeSet::new();
        let open: Vec<IncidentId> = self.state.open_incidents.iter().cloned().collect();
        for incident_id in open {
            let incident = &self.state.incidents[&incident_id];
            let expired: Vec<_> = incident
                .open_offers
                .values()
                .filter(|offer| offer.deadline <= now)
                .map(|offer| (offer.id.clone(), offer.agent.clone()))
                .collect();
            for (offer, agent) in expired {
                touched.insert(incident_id.clone());
                self.emit(out, DISPATCHER, now, EventKind::OfferTimedOut { offer, incident: incident_id.clone(), agent });
            }
            let incident = &self.state.incidents[&incident_id];
            if let Some(due) = self.widening_due(incident)
                && due <= now
                && let Some(to) = Self::wider_level(incident)
            {
                touched.insert(incident_id.clone());
                let from = incident.scope;
                let widened = EventKind::Widened { incident: incident_id.clone(), from, to, reason: WidenReason::WaitExpired };
                self.emit(out, DISPATCHER, now, widened);
            }
        }
        self.fire_callup_deadlines(now, out);
        self.fire_safety_deadlines(now, out);
        self.check_staffing(now, out);
        let retry_due = self.live.next_retry.is_some_and(|at| at <= now);
        if retry_due {
            self.live.next_retry = None;
        }
        for incident in self.incidents_lacking_offers() {
            if retry_due || touched.contains(&incident) {
                self.dispatch_incident(&incident, now, out);
            }
        }
        // Last, so that incidents touched above join the batch that is due.
        if self.batch_due().is_some_and(|due| due <= now) {
            self.dispatch_batch(now, out);
        }
    }

    /// When an unstaffed incident in normal mode widens if nobody accepts.
    fn widening_due(&self, incident: &Incident) -> Option<Millis> {
        if !incident.is_dispatchable() || incident.still_needed() == 0 || Self::wider_level(incident).is_none() {
            return None;
        }
        if self.state.effective_mode(&incident.placement).0.is_emergency() {
            return None;
        }
        Some(incident.scope_since.plus_seconds(self.policy.widen_after(incident.scope)))
    }

    pub(super) fn earliest_deadline(&self) -> Option<Millis> {
        let mut earliest = self.live.next_retry;
        if let Some(due) = self.batch_due() {
            earliest = Some(earliest.map_or(due, |current: Millis| current.min(due)));
        }
        let reachable_stale = self.live.reachable_until.first().map(|(due, _)| *due);
        for deadline in self.mobilisation_deadlines().into_iter().chain(self.safety_deadline()).chain(reachable_stale) {
            earliest = Some(earliest.map_or(deadline, |current: Millis| current.min(deadline)));
        }
        for incident in self.state.open_incidents.iter().filter_map(|id| self.state.incidents.get(id)) {
            let offer_deadlines = incident.open_offers.values().map(|offer| offer.deadline);
            for deadline in offer_deadlines.chain(self.widening_due(incident)) {
                earliest = Some(earliest.map_or(deadline, |current: Millis| current.min(deadline)));
            }
        }
        earliest
    }
}

pub(super) fn rank(candidate: &Candidate) -> (u64, u32, &AgentId) {
    // ETA is whole seconds, so the conversion is exact and orders like the float.
    (candidate.eta_s as u64, candidate.recent_assignments, &candidate.agent)
}
