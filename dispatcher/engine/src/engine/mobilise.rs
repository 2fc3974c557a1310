//! What a mode switch sets in motion (平急转换): call-ups of reserves with a
//! check-in deadline and a roll-call, emergency plans that create their tasks
//! at once, and grid staffing checked against each mode's minimum.
//!
//! A switch back to normal ends what the switch started: its call-ups are
//! stood down and the plans it activated are deactivated (their open tasks
//! cancelled, their people released).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::decide::check_text;
use super::{Activation, Callup, Engine, Rejection};
use crate::areas::{AreaLevel, Placement};
use crate::event::{Event, EventKind};
use crate::ids::{ActivationId, AgentId, AreaId, CallupId, Millis, PlanId, quote};
use crate::incident::IncidentSpec;
use crate::plans::{PlanSpec, TaskPlace};
use crate::policy::Mode;
use crate::roster::{AgentStatus, Role};
use crate::spatial::Position;

/// Coverage of one community by the 15-minute walk to a service centre.
#[derive(Clone, Debug, PartialEq)]
pub struct CommunityCoverage {
    pub community: AreaId,
    pub grids: u32,
    pub grids_within_15_min: u32,
}

/// Available people in one grid now, against its minimum.
#[derive(Clone, Debug, PartialEq)]
pub struct GridStaffing {
    pub grid: AreaId,
    pub available: u32,
    pub minimum: u32,
}

const FIFTEEN_MINUTES_S: f64 = 900.0;

/// Which plan to start where, and why.
#[derive(Clone, Copy)]
pub struct PlanStart<'a> {
    pub plan: &'a PlanId,
    pub area: &'a AreaId,
    pub reason: &'a str,
    /// Started by a mode switch rather than by an operator.
    pub automatic: bool,
}

impl Engine {
    /// Is `area` the area at `level` of `other`'s lineage, or `other` itself?
    pub(super) fn area_within(&self, other: &AreaId, area: &AreaId) -> bool {
        let Some(level) = self.state.areas.get(area).map(|spec| spec.level) else {
            return false;
        };
        self.state.areas.area_placement(other).is_some_and(|placement| placement.within(level, area))
    }

    /// People whose home is in `area` with one of `roles`, not already in an
    /// open call-up.
    fn reserves_in(&self, area: &AreaId, roles: &[Role]) -> Vec<AgentId> {
        let Some(level) = self.state.areas.get(area).map(|spec| spec.level) else {
            return Vec::new();
        };
        let already: BTreeSet<&AgentId> =
            self.state.callups.values().filter(|callup| callup.is_open()).flat_map(|callup| callup.people.keys()).collect();
        // The residents of the area and of every area under it, rather than
        // the whole roster: a grid's call-up reads a grid's people.
        let mut reserves: Vec<AgentId> = self
            .state
            .areas
            .area_and_descendants(area)
            .into_iter()
            .flat_map(|home| self.homes.residents(home))
            .filter(|agent| self.state.agents.get(*agent).is_some_and(|record| roles.contains(&record.profile.role)))
            .filter(|agent| !already.contains(agent))
            .cloned()
            .collect();
        let lives_in_area =
            |home: &AreaId| self.state.areas.area_placement(home).is_some_and(|placement| placement.within(level, area));
        debug_assert!(
            reserves.iter().all(|agent| self.state.agents[agent].profile.home_area.as_ref().is_some_and(lives_in_area)),
            "the areas under an area are those whose lineage holds it"
        );
        // In roster order, as a walk of the roster gives them.
        reserves.sort();
        reserves
    }

    fn next_callup_id(&self) -> CallupId {
        CallupId::new(format!("callup-{:04}", self.state.callups.len() + 1))
    }

    fn callup_event(
        &self,
        area: &AreaId,
        roles: &[Role],
        reason: &str,
        deadline_s: Option<u64>,
        now: Millis,
    ) -> Option<EventKind> {
        let people = self.reserves_in(area, roles);
        if people.is_empty() {
            return None;
        }
        let mode = self.area_mode(area);
        let deadline = now.plus_seconds(deadline_s.unwrap_or(self.policy.for_mode(mode).checkin_deadline_s));
        Some(EventKind::CallupIssued {
            callup: self.next_callup_id(),
            area: area.clone(),
            roles: roles.to_vec(),
            reason: reason.to_string(),
            deadline,
            people,
            by_switch: false,
            activation: None,
        })
    }

    /// A call-up issued by a switch (stood down when the area goes back to normal).
    fn switch_callup_event(&self, area: &AreaId, roles: &[Role], reason: &str, now: Millis) -> Option<EventKind> {
        let mut event = self.callup_event(area, roles, reason, None, now)?;
        if let EventKind::CallupIssued { by_switch, .. } = &mut event {
            *by_switch = true;
        }
        Some(event)
    }

    /// An operator's call-up: checked, nothing changed when refused.
    pub(super) fn decide_callup(
        &self,
        area: &AreaId,
        roles: &[Role],
        reason: &str,
        deadline_s: Option<u64>,
        now: Millis,
    ) -> Result<Vec<EventKind>, Rejection> {
        if !self.state.areas.contains(area) {
            return Err(Rejection::NotFound(format!("area {} is not on the map; list areas to find its id", quote(area))));
        }
        check_text("the reason for the call-up", reason, true)?;
        if deadline_s.is_some_and(|seconds| seconds == 0 || seconds > 24 * 3600) {
            return Err(Rejection::InvalidArgument("the check-in deadline must be 1 to 86400 seconds".to_string()));
        }
        let roles: Vec<Role> = if roles.is_empty() { self.policy.reserve_roles.clone() } else { roles.to_vec() };
        match self.callup_event(area, &roles, reason, deadline_s, now) {
            Some(event) => Ok(vec![event]),
            None => Err(Rejection::FailedPrecondition(format!(
                "nobody with those roles lives in area {area}, or all of them are already called up; check the roster or the roles"
            ))),
        }
    }

    pub(super) fn decide_check_in(
        &self,
        agent: &AgentId,
        callup: Option<&CallupId>,
        now: Millis,
        needs_location: bool,
    ) -> Result<Vec<EventKind>, Rejection> {
        let record = self
            .state
            .agents
            .get(agent)
            .ok_or_else(|| Rejection::NotFound(format!("agent {} is not on the roster; check the id", quote(agent))))?;
        let open = self
            .state
            .callups
            .values()
            .filter(|candidate| candidate.is_open())
            .filter(|candidate| callup.is_none_or(|id| &candidate.id == id))
            .find(|candidate| candidate.people.get(agent).is_some_and(Option::is_none));
        let Some(open) = open else {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {agent} has no open call-up to check in to (not called, already checked in, or stood down)"
            )));
        };
        let fresh = self.live.agents.get(agent).is_some_and(|live| {
            live.connected && live.location.is_some() && now.seconds_since(live.located_at) <= self.policy.location_stale_s as f64
        });
        if needs_location && !fresh {
            return Err(Rejection::FailedPrecondition(format!("agent {agent}: report your location first, then check in")));
        }
        let mut events = vec![EventKind::CheckedIn { callup: open.id.clone(), agent: agent.clone() }];
        if record.status == AgentStatus::OffDuty {
            events.push(EventKind::AgentStatusChanged { agent: agent.clone(), status: AgentStatus::Available });
        }
        Ok(events)
    }

    pub(super) fn decide_activate(&self, plan: &PlanId, area: &AreaId) -> Result<(), Rejection> {
        if !self.state.plans.contains_key(plan) {
            return Err(Rejection::NotFound(format!(
                "plan {} is not loaded; import it or list plans to find its id",
                quote(plan)
            )));
        }
        if !self.state.areas.contains(area) {
            return Err(Rejection::NotFound(format!("area {} is not on the map; list areas to find its id", quote(area))));
        }
        if self.open_activation(plan, area).is_some() {
            return Err(Rejection::AlreadyExists(format!("plan {plan} is already active on area {area}")));
        }
        Ok(())
    }

    pub(super) fn decide_deactivate(&self, activation: &ActivationId, reason: &str) -> Result<(), Rejection> {
        check_text("the reason the plan ends", reason, true)?;
        match self.state.activations.get(activation) {
            None => Err(Rejection::NotFound(format!(
                "plan activation {} does not exist; list plans to see the active ones",
                quote(activation)
            ))),
            Some(record) if record.ended.is_some() => {
                Err(Rejection::FailedPrecondition(format!("plan activation {activation} has already ended")))
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) fn decide_import_plans(&self, plans: &[PlanSpec]) -> Result<Vec<EventKind>, Rejection> {
        if plans.is_empty() {
            return Err(Rejection::InvalidArgument("no plans given; send at least one plan file".to_string()));
        }
        let mut seen = BTreeSet::new();
        for plan in plans {
            if !seen.insert(&plan.id) {
                return Err(Rejection::AlreadyExists(format!("plan {} appears twice in the request", quote(&plan.id))));
            }
            for task in &plan.tasks {
                if let TaskPlace::Areas(areas) = &task.place
                    && let Some(missing) = areas.iter().find(|area| !self.state.areas.contains(area))
                {
                    return Err(Rejection::NotFound(format!(
                        "plan {}: task {} names area {} which is not on the map; import the areas first or fix the id",
                        quote(&plan.id),
                        quote(&task.category),
                        quote(missing)
                    )));
                }
            }
        }
        Ok(vec![EventKind::PlansImported { plans: plans.to_vec() }])
    }

    pub(super) fn open_activation(&self, plan: &PlanId, area: &AreaId) -> Option<&Activation> {
        self.state
            .activations
            .values()
            .find(|activation| activation.ended.is_none() && &activation.plan == plan && &activation.area == area)
    }

    /// Where a plan's tasks go on `area`.
    fn task_points(&self, place: &TaskPlace, area: &AreaId) -> Vec<Position> {
        let centroid = self.state.areas.inside_point(area);
        match place {
            TaskPlace::ServiceCentres => {
                let centres: Vec<Position> = self
                    .state
                    .areas
                    .service_centres()
                    .filter(|centre| self.area_within(&centre.area, area))
                    .map(|centre| centre.at)
                    .collect();
                if centres.is_empty() { centroid.into_iter().collect() } else { centres }
            }
            TaskPlace::Centroid => centroid.into_iter().collect(),
            TaskPlace::At(at) => vec![*at],
            TaskPlace::Areas(areas) => areas.iter().filter_map(|listed| self.state.areas.inside_point(listed)).collect(),
        }
    }

    /// Activates a plan: its tasks become incidents at once, and its call-up goes out.
    pub(super) fn activate_plan(&mut self, start: &PlanStart<'_>, actor: &str, now: Millis, out: &mut Vec<Event>) {
        let PlanStart { plan: plan_id, area, reason, automatic } = *start;
        let Some(plan) = self.state.plans.get(plan_id).cloned() else { return };
        let activation = ActivationId::new(format!("{plan_id}@{area}-{}", self.state.activations.len() + 1));
        let activated = EventKind::PlanActivated {
            activation: activation.clone(),
            plan: plan_id.clone(),
            area: area.clone(),
            reason: reason.to_string(),
            automatic,
        };
        self.emit(out, actor, now, activated);
        self.issue_cap_alert(&activation, crate::cap::CapMsgType::Alert, actor, now, out);
        self.preposition_supplies(&plan, &activation, actor, now, out);
        self.open_plan_shelters(&plan, &activation, actor, now, out);
        for task in &plan.tasks {
            for at in self.task_points(&task.place, area) {
                let spec = IncidentSpec {
                    at,
                    category: task.category.clone(),
                    priority: task.priority,
                    skills: task.skills.clone(),
                    headcount: task.need,
                    description: if task.description.is_empty() { plan.name.clone() } else { task.description.clone() },
                    source_id: String::new(),
                };
                let placement = self.state.areas.place(at);
                let scope = placement.deepest().map_or(AreaLevel::City, |deepest| deepest.min(AreaLevel::Grid));
                let incident = self.next_incident_id();
                let reported =
                    EventKind::IncidentReported { incident, spec, placement, scope, activation: Some(activation.clone()) };
                self.emit(out, actor, now, reported);
            }
        }
        if !plan.call_up.is_empty()
            && let Some(mut callup) = self.callup_event(area, &plan.call_up, &format!("plan {}: {reason}", plan.name), None, now)
        {
            if let EventKind::CallupIssued { by_switch, activation: belongs_to, .. } = &mut callup {
                *by_switch = automatic;
                *belongs_to = Some(activation.clone());
            }
            self.emit(out, actor, now, callup);
        }
    }

    /// Ends a plan activation: its open tasks are cancelled and their people
    /// released, its call-up stood down.
    pub(super) fn deactivate_plan(
        &mut self,
        activation_id: &ActivationId,
        reason: &str,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) {
        let Some(activation) = self.state.activations.get(activation_id).cloned() else { return };
        for incident_id in &activation.incidents {
            let Some(incident) = self.state.incidents.get(incident_id).filter(|incident| incident.is_open()).cloned() else {
                continue;
            };
            let events = Self::ending_events(&incident, |released| EventKind::IncidentCancelled {
                incident: incident_id.clone(),
                reason: format!("plan ended: {reason}"),
                released,
            });
            for event in events {
                self.emit(out, actor, now, event);
            }
        }
        if let Some(callup) = activation.callup.as_ref().filter(|id| self.state.callups.get(*id).is_some_and(Callup::is_open)) {
            self.emit(
                out,
                actor,
                now,
                EventKind::CallupStoodDown { callup: callup.clone(), reason: format!("plan ended: {reason}") },
            );
        }
        self.emit(out, actor, now, EventKind::PlanDeactivated { activation: activation_id.clone(), reason: reason.to_string() });
        self.issue_cap_alert(activation_id, crate::cap::CapMsgType::Cancel, actor, now, out);
    }

    /// What a switch sets in motion, or ends.
    pub(super) fn after_switch(
        &mut self,
        area: &AreaId,
        mode: Mode,
        reason: &str,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) {
        if mode == Mode::Normal {
            let back_to_normal = format!("{area} back to normal: {reason}");
            let callups: Vec<CallupId> = self
                .state
                .callups
                .values()
                .filter(|callup| callup.is_open() && callup.by_switch && &callup.area == area)
                .map(|callup| callup.id.clone())
                .collect();
            for callup in callups {
                self.emit(out, actor, now, EventKind::CallupStoodDown { callup, reason: back_to_normal.clone() });
            }
            let activations: Vec<ActivationId> = self
                .state
                .activations
                .values()
                .filter(|activation| activation.ended.is_none() && activation.automatic && &activation.area == area)
                .map(|activation| activation.id.clone())
                .collect();
            for activation in activations {
                self.deactivate_plan(&activation, &back_to_normal, actor, now, out);
            }
            return;
        }
        let roles = self.policy.for_mode(mode).call_up.clone();
        if !roles.is_empty()
            && let Some(callup) = self.switch_callup_event(area, &roles, reason, now)
        {
            self.emit(out, actor, now, callup);
        }
        let plans: Vec<PlanId> = self
            .state
            .plans
            .values()
            .filter(|plan| plan.auto_activate && plan.grade == mode)
            .map(|plan| plan.id.clone())
            .filter(|plan| self.open_activation(plan, area).is_none())
            .collect();
        for plan in plans {
            self.activate_plan(&PlanStart { plan: &plan, area, reason, automatic: true }, actor, now, out);
        }
    }

    /// The roll-call at each call-up's deadline: who is missing is an event.
    pub(super) fn fire_callup_deadlines(&mut self, now: Millis, out: &mut Vec<Event>) {
        let due: Vec<(CallupId, Vec<AgentId>)> = self
            .state
            .callups
            .values()
            .filter(|callup| callup.is_open() && !callup.deadline_passed && callup.deadline <= now)
            .map(|callup| (callup.id.clone(), callup.missing()))
            .collect();
        for (callup, missing) in due {
            self.emit(out, crate::event::DISPATCHER, now, EventKind::CallupDeadlinePassed { callup, missing });
        }
    }

    /// The strictest mode over an area and its ancestors.
    fn area_mode(&self, area: &AreaId) -> Mode {
        match self.state.areas.area_placement(area) {
            Some(placement) => self.state.effective_mode(placement).0,
            None => self.state.effective_mode(&Placement::default()).0,
        }
    }

    /// Available people per grid now: connected, available and free, with a
    /// fresh location inside the grid.
    pub fn available_by_grid(&self, now: Millis) -> BTreeMap<AreaId, u32> {
        self.available_in_grids(now).into_iter().map(|(grid, count)| (grid.clone(), count)).collect()
    }

    /// As [`Engine::available_by_grid`], the grids borrowed: asked every
    /// staffing check, for every person.
    fn available_in_grids(&self, now: Millis) -> HashMap<&AreaId, u32> {
        let mut counts = HashMap::new();
        for (agent, live) in &self.live.agents {
            let fresh = live.connected
                && live.location.is_some()
                && now.seconds_since(live.located_at) <= self.policy.location_stale_s as f64;
            if !fresh || !self.state.agents.get(agent).is_some_and(|record| record.is_free()) {
                continue;
            }
            if let Some(grid) = self.live_placement(live).at(AreaLevel::Grid) {
                *counts.entry(grid).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn grid_staffing(&self, now: Millis) -> Vec<GridStaffing> {
        let available = self.available_in_grids(now);
        self.state
            .areas
            .grids()
            .iter()
            .map(|grid| GridStaffing {
                grid: grid.clone(),
                available: available.get(grid).copied().unwrap_or(0),
                minimum: self.policy.for_mode(self.area_mode(grid)).grid_minimum,
            })
            .collect()
    }

    /// Grids crossing their minimum are events; in modes that say so, a grid
    /// falling short calls up its reserves.
    pub(super) fn check_staffing(&mut self, now: Millis, out: &mut Vec<Event>) {
        if self.policy.staffing_check_s == 0 || self.live.next_staffing_check.is_some_and(|at| at > now) {
            return;
        }
        self.live.next_staffing_check = Some(now.plus_seconds(self.policy.staffing_check_s));
        for staffing in self.grid_staffing(now) {
            let low = staffing.available < staffing.minimum;
            let marked = self.state.low_grids.contains(&staffing.grid);
            if low && !marked {
                let event = EventKind::GridStaffingLow {
                    grid: staffing.grid.clone(),
                    available: staffing.available,
                    minimum: staffing.minimum,
                };
                self.emit(out, crate::event::DISPATCHER, now, event);
                if self.policy.for_mode(self.area_mode(&staffing.grid)).call_up_when_grid_low {
                    let roles = self.policy.reserve_roles.clone();
                    let reason =
                        format!("grid {} has {} of {} people available", staffing.grid, staffing.available, staffing.minimum);
                    if let Some(callup) = self.switch_callup_event(&staffing.grid, &roles, &reason, now) {
                        self.emit(out, crate::event::DISPATCHER, now, callup);
                    }
                }
            } else if !low && marked {
                let event = EventKind::GridStaffingRestored { grid: staffing.grid.clone(), available: staffing.available };
                self.emit(out, crate::event::DISPATCHER, now, event);
            }
        }
    }

    pub(super) fn mobilisation_deadlines(&self) -> Vec<Millis> {
        let mut deadlines: Vec<Millis> = self
            .state
            .callups
            .values()
            .filter(|callup| callup.is_open() && !callup.deadline_passed)
            .map(|callup| callup.deadline)
            .collect();
        let has_grids = !self.state.areas.grids().is_empty();
        if self.policy.staffing_check_s > 0 && has_grids {
            // Before the first check its time is unknown: check at once.
            deadlines.push(self.live.next_staffing_check.unwrap_or(Millis(0)));
        }
        deadlines
    }

    /// For each community under `area` (or everywhere): how many of its grids
    /// have their centroid within 15 minutes' walk of a service centre.
    pub fn coverage(&self, area: Option<&AreaId>) -> Vec<CommunityCoverage> {
        let walk_m = self.policy.speeds.walk_mps * FIFTEEN_MINUTES_S;
        let centres: Vec<Position> = self.state.areas.service_centres().map(|centre| centre.at).collect();
        let under = |id: &AreaId| area.is_none_or(|area| self.area_within(id, area) || self.area_within(area, id));
        // Grids by parent, once, rather than every grid for every community.
        let mut grids_of: HashMap<&AreaId, Vec<&AreaId>> = HashMap::new();
        for grid in self.state.areas.grids() {
            if let Some(parent) = self.state.areas.get(grid).and_then(|spec| spec.parent.as_ref()) {
                grids_of.entry(parent).or_default().push(grid);
            }
        }
        self.state
            .areas
            .areas()
            .filter(|spec| spec.level == AreaLevel::Community && under(&spec.id))
            .map(|community| {
                let grids: &[&AreaId] = grids_of.get(&community.id).map_or(&[], Vec::as_slice);
                let covered = grids
                    .iter()
                    .filter_map(|grid| self.state.areas.centroid(grid))
                    .filter(|centroid| centres.iter().any(|centre| centre.distance_m(*centroid) <= walk_m))
                    .count();
                CommunityCoverage {
                    community: community.id.clone(),
                    grids: grids.len() as u32,
                    grids_within_15_min: covered as u32,
                }
            })
            .collect()
    }
}
