//! Safety on scene (PAR, 报平安) and help calls (求助).
//!
//! People holding an assignment (accepted, on the way, on scene) check in
//! every `safety.interval_min` minutes of the grade in force at their
//! incident. The engine owns the clock: [`SafetyClock`] is durable state,
//! started by `Assigned`, reset by `SafetyCheckIn`, moved on by
//! `SafetyCheckMissed` and dropped when the assignment ends; `tick` fires
//! the misses (so drills on a virtual clock see the same ones every run).
//! The second miss in a row reports a welfare check, a priority-1
//! incident at the person's last known position offered by the normal
//! search, so that it is journaled and explainable like any incident.
//!
//! A help call reports a priority-1 incident at the person's position (or
//! the best one known) and tells their team: the people whose home is in
//! the requester's home grid (else the grid where the help is), who get it
//! on their phones; operators see the event.

use super::{Engine, Rejection};
use crate::areas::AreaLevel;
use crate::event::{DISPATCHER, Event, EventKind, HelpPosition};
use crate::ids::{AgentId, AreaId, IncidentId, Millis};
use crate::incident::IncidentSpec;
use crate::safety::{HELP_CATEGORY, MAX_HELP_TEAM, MISSES_BEFORE_WELFARE_CHECK, SafetyClock, SafetyDue, WELFARE_CHECK_CATEGORY};
use crate::spatial::Position;

impl Engine {
    /// Minutes between check-ins for people on `incident` now (the grade
    /// in force where it is), if the policy asks for any.
    pub fn safety_interval_s(&self, incident: &IncidentId) -> Option<u64> {
        let record = self.state.incidents.get(incident)?;
        let mode = self.state.effective_mode(&record.placement).0;
        self.policy.safety.interval_min.for_mode(mode).map(|minutes| u64::from(minutes) * 60)
    }

    /// When `agent` must next check in, if they hold an assignment that
    /// asks for check-ins (and no welfare check is out for them already).
    pub fn safety_due(&self, agent: &AgentId) -> Option<SafetyDue> {
        let clock = self.state.safety.get(agent)?;
        if clock.misses >= MISSES_BEFORE_WELFARE_CHECK {
            return None;
        }
        let holds = self.state.agents.get(agent).and_then(|record| record.current_incident.as_ref());
        if holds != Some(&clock.incident) {
            return None;
        }
        let interval_s = self
            .safety_interval_s(&clock.incident)
            .or_else(|| self.held_across(agent, &clock.incident)?.view.safety_interval_s)?;
        Some(SafetyDue {
            incident: clock.incident.clone(),
            due: clock.since.plus_seconds(interval_s),
            interval_s,
            misses: clock.misses,
        })
    }

    /// The earliest check-in due, for `next_deadline`.
    pub(super) fn safety_deadline(&self) -> Option<Millis> {
        self.state.safety.keys().filter_map(|agent| self.safety_due(agent)).map(|due| due.due).min()
    }

    /// Missed check-ins due at `now`, and the welfare checks of second misses.
    pub(super) fn fire_safety_deadlines(&mut self, now: Millis, out: &mut Vec<Event>) {
        let missed: Vec<(AgentId, SafetyDue)> = self
            .state
            .safety
            .keys()
            .filter_map(|agent| self.safety_due(agent).map(|due| (agent.clone(), due)))
            .filter(|(_, due)| due.due <= now)
            .collect();
        for (agent, due) in missed {
            let miss = due.misses + 1;
            let welfare =
                if miss >= MISSES_BEFORE_WELFARE_CHECK { self.report_welfare_check(&agent, &due, now, out) } else { None };
            let event =
                EventKind::SafetyCheckMissed { agent, incident: due.incident, miss, due: due.due, welfare: welfare.clone() };
            self.emit(out, DISPATCHER, now, event);
            if let Some(welfare) = welfare {
                self.dispatch_incident(&welfare, now, out);
            }
        }
    }

    /// Reports the welfare check for a person who missed a second check-in:
    /// at their last known position, else their incident's place.
    fn report_welfare_check(
        &mut self,
        agent: &AgentId,
        due: &SafetyDue,
        now: Millis,
        out: &mut Vec<Event>,
    ) -> Option<IncidentId> {
        let at = match self.last_position(agent) {
            Some(at) => at,
            None => match self.state.incidents.get(&due.incident) {
                Some(incident) => incident.spec.at,
                None => self.held_across(agent, &due.incident)?.view.at,
            },
        };
        let name = self.state.agents.get(agent).map(|record| record.profile.name.clone()).unwrap_or_default();
        let description = format!(
            "welfare check: {name} ({agent}) on incident {} missed two safety check-ins in a row; go and look, last known position",
            due.incident
        );
        let spec = IncidentSpec {
            at,
            category: WELFARE_CHECK_CATEGORY.to_string(),
            priority: 1,
            skills: Default::default(),
            headcount: 1,
            description,
            source_id: String::new(),
        };
        Some(self.report_for_safety(spec, now, out))
    }

    /// Reports an incident the dispatcher makes itself (a welfare check, a
    /// help call), wherever it is: on or off the map.
    fn report_for_safety(&mut self, spec: IncidentSpec, now: Millis, out: &mut Vec<Event>) -> IncidentId {
        let incident = self.next_incident_id();
        let placement = self.state.areas.place(spec.at);
        let scope = match placement.deepest() {
            Some(deepest) => deepest.min(AreaLevel::Grid),
            None => AreaLevel::City,
        };
        let reported = EventKind::IncidentReported { incident: incident.clone(), spec, placement, scope, activation: None };
        self.emit(out, DISPATCHER, now, reported);
        incident
    }

    /// A person's check-in: they must hold an assignment.
    pub(super) fn decide_safety_check_in(&self, agent: &AgentId) -> Result<Vec<EventKind>, Rejection> {
        let Some(record) = self.state.agents.get(agent) else {
            return Err(Rejection::NotFound(format!("agent {agent} is not on the roster")));
        };
        let Some(incident) = record.current_incident.clone() else {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {agent} holds no assignment; safety check-ins are for people on one (answer a call-up with CheckIn)"
            )));
        };
        let misses = self.state.safety.get(agent).filter(|clock| clock.incident == incident).map_or(0, |clock| clock.misses);
        Ok(vec![EventKind::SafetyCheckIn { agent: agent.clone(), incident, misses }])
    }

    /// A help call: checked here, carried out by [`Engine::request_help`].
    pub(super) fn check_help(
        &self,
        agent: &AgentId,
        at: Option<Position>,
        text: &str,
    ) -> Result<(Position, HelpPosition), Rejection> {
        super::decide::check_text("the help text", text, false)?;
        let Some(record) = self.state.agents.get(agent) else {
            return Err(Rejection::NotFound(format!("agent {agent} is not on the roster")));
        };
        if let Some(at) = at {
            let at =
                Position::checked(at.lon, at.lat).map_err(|message| Rejection::InvalidField { field: "location", message })?;
            return Ok((at, HelpPosition::Sent));
        }
        if let Some(at) = self.last_position(agent) {
            return Ok((at, HelpPosition::Live));
        }
        if let Some(at) =
            record.current_incident.as_ref().and_then(|id| self.state.incidents.get(id)).map(|incident| incident.spec.at)
        {
            return Ok((at, HelpPosition::Assignment));
        }
        if let Some(at) = record.profile.home {
            return Ok((at, HelpPosition::Home));
        }
        Err(Rejection::FailedPrecondition(format!(
            "no position is known for agent {agent}: send the help call with your location (or report it first)"
        )))
    }

    /// Where the person was last reported: live, or from before their
    /// session ended (or a help call's position).
    fn last_position(&self, agent: &AgentId) -> Option<Position> {
        self.live.agents.get(agent).and_then(|live| live.location).or_else(|| self.live.last_known.get(agent).map(|(at, _)| *at))
    }

    /// 求助: a priority-1 incident at the person's position, and their team told.
    pub(super) fn request_help(
        &mut self,
        agent: &AgentId,
        at: Option<Position>,
        text: &str,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let (at, from) = self.check_help(agent, at, text)?;
        if from == HelpPosition::Sent {
            // Where the person said they are: the best known position from now on.
            self.live.last_known.insert(agent.clone(), (at, now));
        }
        let name = self.state.agents.get(agent).map(|record| record.profile.name.clone()).unwrap_or_default();
        let mut description = format!("求助 help call from {name} ({agent})");
        if !text.trim().is_empty() {
            description.push_str(": ");
            description.push_str(text.trim());
        }
        let spec = IncidentSpec {
            at,
            category: HELP_CATEGORY.to_string(),
            priority: 1,
            skills: Default::default(),
            headcount: 1,
            description,
            source_id: String::new(),
        };
        let incident = self.report_for_safety(spec, now, out);
        let team = self.help_team(agent, at);
        let event = EventKind::HelpRequested {
            agent: agent.clone(),
            incident: incident.clone(),
            at,
            from,
            text: text.trim().to_string(),
            team,
        };
        self.emit(out, actor, now, event);
        self.dispatch_incident(&incident, now, out);
        Ok(())
    }

    /// The people a help call tells: those at home in the requester's home
    /// grid, else in the grid where the help is; never the requester.
    fn help_team(&self, agent: &AgentId, at: Position) -> Vec<AgentId> {
        let home_grid = self
            .state
            .agents
            .get(agent)
            .and_then(|record| record.profile.home_area.as_ref())
            .and_then(|home| self.state.areas.placement_of_area(home).at(AreaLevel::Grid).cloned());
        let grid: Option<AreaId> = home_grid.or_else(|| self.state.areas.place(at).at(AreaLevel::Grid).cloned());
        let Some(grid) = grid else {
            return Vec::new();
        };
        let mut team: Vec<AgentId> = self
            .state
            .areas
            .area_and_descendants(&grid)
            .into_iter()
            .flat_map(|area| self.homes.residents(area))
            .filter(|person| *person != agent)
            .cloned()
            .collect();
        team.sort();
        team.dedup();
        team.truncate(MAX_HELP_TEAM);
        team
    }

    /// Follows an event in the safety clocks (called from evolve).
    pub(super) fn apply_safety(&mut self, event: &Event) {
        match &event.kind {
            // A person of another shard (a border offer) checks in at home:
            // their clock starts there when they accept, at the interval the
            // incident's shard told (see `safety_due`).
            EventKind::Assigned { incident, agent, .. } | EventKind::BorderAccepted { incident, agent, .. }
                if self.state.agents.contains_key(agent) =>
            {
                let clock = SafetyClock { incident: incident.clone(), since: event.at, misses: 0, welfare: None };
                self.state.safety.insert(agent.clone(), clock);
            }
            EventKind::SafetyCheckIn { agent, incident, .. } => {
                let clock = SafetyClock { incident: incident.clone(), since: event.at, misses: 0, welfare: None };
                self.state.safety.insert(agent.clone(), clock);
            }
            EventKind::SafetyCheckMissed { agent, incident, miss, due, welfare } => {
                if let Some(clock) = self.state.safety.get_mut(agent).filter(|clock| &clock.incident == incident) {
                    clock.since = *due;
                    clock.misses = *miss;
                    clock.welfare = welfare.clone();
                }
                // The person who is looked for is not asked to go and look.
                if let Some(record) = welfare.as_ref().and_then(|id| self.state.incidents.get_mut(id)) {
                    record.excluded.insert(agent.clone());
                }
            }
            EventKind::HelpRequested { agent, incident, .. } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.excluded.insert(agent.clone());
                }
            }
            _ => {}
        }
    }

    /// The reservation by which `agent` of this shard holds `incident` of
    /// another shard (accepted or confirmed there).
    fn held_across(&self, agent: &AgentId, incident: &IncidentId) -> Option<&crate::border::BorderReservation> {
        self.state.border.values().find(|held| {
            &held.agent == agent && &held.incident == incident && held.state != crate::border::ReservationState::Offered
        })
    }

    /// The person's assignment ended: no more check-ins.
    pub(super) fn stop_safety_clock(&mut self, agent: &AgentId) {
        self.state.safety.remove(agent);
    }
}

#[cfg(test)]
mod tests;
