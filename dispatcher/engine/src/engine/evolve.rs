//! Evolving: applying one event to the state. Total: an event that was
//! decided always applies; invariants are checked with `debug_assert!`.

use super::{Activation, Callup, Engine, ModeSetting};
use crate::accounts::Operator;
use crate::areas::AreaLevel;
use crate::event::{Event, EventKind};
use crate::ids::{AgentId, Millis};
use crate::incident::{AssignmentRecord, Ending, FieldReport, Incident, RosterShortfall};
use crate::policy::Mode;
use crate::roster::{AgentRecord, AgentStatus};

impl Engine {
    pub(super) fn evolve(&mut self, event: &Event) {
        self.apply(event);
        self.apply_safety(event);
        self.refresh_free_copies(&event.kind);
    }

    /// The live copy of "free to take an offer" follows every event that can
    /// change it, so that the candidate search need not look up the roster
    /// of everyone it walks past. (During a replay nobody is live: a no-op.)
    fn refresh_free_copies(&mut self, kind: &EventKind) {
        let touched: &[AgentId] = match kind {
            EventKind::AgentStatusChanged { agent, .. }
            | EventKind::Assigned { agent, .. }
            | EventKind::OfferDeclined { agent, .. }
            | EventKind::OfferTimedOut { agent, .. }
            | EventKind::OfferWithdrawn { agent, .. }
            | EventKind::AssignmentCompleted { agent, .. } => std::slice::from_ref(agent),
            EventKind::OfferSent { offer } => std::slice::from_ref(&offer.agent),
            EventKind::BorderAccepted { agent, .. } | EventKind::BorderReleased { agent, .. } => std::slice::from_ref(agent),
            EventKind::BorderReserved { reservation } => std::slice::from_ref(&reservation.agent),
            EventKind::IncidentCancelled { released, .. } | EventKind::IncidentClosed { released, .. } => released,
            _ => &[],
        };
        for agent in touched {
            if let (Some(live), Some(record)) = (self.live.agents.get_mut(agent), self.state.agents.get(agent)) {
                let free = record.is_free();
                if let Some(at) = live.location
                    && live.free != free
                {
                    self.live.index.update(live.slot, at, live.indexed_as, |indexed| indexed.free = free);
                }
                live.free = free;
                // Assigned adds to the recent assignments.
                if let Some(copy) = live.roster.as_mut().filter(|copy| copy.recent_assignments != record.recent_assignments) {
                    copy.recent_assignments.clone_from(&record.recent_assignments);
                }
            }
        }
    }

    fn apply(&mut self, event: &Event) {
        debug_assert_eq!(event.seq, self.state.last_seq + 1, "events apply in sequence");
        self.state.last_seq = event.seq;
        let at = event.at;
        match &event.kind {
            EventKind::AreasImported { import } => {
                self.state.areas.apply_import(import);
                self.live.replace_everyone(&self.state.areas);
            }
            EventKind::AreasRetired { areas, service_centres } => self.retire_areas(areas, service_centres),
            EventKind::AgentsUpserted { agents } => {
                for profile in agents {
                    // A located person's copy of the roster follows the change; a
                    // new travel mode moves them to that mode's tree.
                    if let Some(live) = self.live.agents.get_mut(&profile.id)
                        && let Some(at) = live.location
                    {
                        (live.skills, live.skills_beyond_bits) = self.live.skill_bits.of(&profile.skills);
                        if let Some(copy) = live.roster.as_mut() {
                            copy.role = profile.role;
                        }
                        self.live.index.remove(live.slot, at, live.indexed_as);
                        live.indexed_as = profile.travel_mode;
                        let indexed = live.indexed();
                        self.live.index.insert(indexed, at, live.indexed_as);
                    }
                    match self.state.agents.get_mut(&profile.id) {
                        Some(record) => {
                            self.skills.remove(&record.profile);
                            self.homes.remove(&record.profile);
                            record.profile = profile.clone();
                        }
                        None => {
                            self.state.agents.insert(profile.id.clone(), AgentRecord::new(profile.clone()));
                        }
                    }
                    self.skills.add(profile);
                    self.homes.add(profile);
                }
            }
            EventKind::AgentStatusChanged { agent, status } => {
                if let Some(record) = self.state.agents.get_mut(agent) {
                    record.status = *status;
                }
            }
            EventKind::IncidentReported { incident, spec, placement, scope, activation } => {
                let mut record = Incident::new(incident.clone(), spec.clone(), at, &event.actor, placement.clone(), *scope);
                record.activation = activation.clone();
                // Derived, not journaled: the modes are part of the state
                // this event is applied to, so replay finds the same.
                record.reported_mode = Some(self.state.effective_mode(placement).0);
                if let Some(activation) = activation.as_ref().and_then(|id| self.state.activations.get_mut(id)) {
                    activation.incidents.push(incident.clone());
                }
                self.state.incidents_reported += 1;
                self.state.open_incidents.insert(incident.clone());
                self.state.incidents.insert(incident.clone(), record);
            }
            EventKind::FieldReported { incident, agent, spec, placement, text, photo_ref, photo_refs } => {
                let mut record =
                    Incident::new(incident.clone(), spec.clone(), at, &event.actor, placement.clone(), AreaLevel::Grid);
                record.triage_pending = true;
                record.reported_mode = Some(self.state.effective_mode(placement).0);
                record.report = Some(FieldReport {
                    agent: agent.clone(),
                    text: text.clone(),
                    photo_ref: photo_ref.clone(),
                    photo_refs: photo_refs.clone(),
                });
                record.reporters.push(agent.clone());
                self.state.incidents_reported += 1;
                self.state.open_incidents.insert(incident.clone());
                self.state.incidents.insert(incident.clone(), record);
            }
            EventKind::ReportAccepted { incident, priority, headcount, skills, scope } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.triage_pending = false;
                    record.spec.priority = *priority;
                    record.spec.headcount = *headcount;
                    record.spec.skills = skills.clone();
                    record.scope = *scope;
                    record.scope_since = at;
                }
            }
            EventKind::ReportMerged { incident, into } => {
                let reporters = self.state.incidents.get(incident).map(|record| record.reporters.clone()).unwrap_or_default();
                if let Some(target) = self.state.incidents.get_mut(into) {
                    target.reporters.extend(reporters);
                    target.merged_from.push(incident.clone());
                }
                self.end_incident(incident, Ending::Merged, at, &format!("merged into {into}"), &[]);
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.merged_into = Some(into.clone());
                }
            }
            EventKind::ReportRejected { incident, reason } => {
                self.end_incident(incident, Ending::Rejected, at, reason, &[]);
            }
            EventKind::PlansImported { plans } => {
                for plan in plans {
                    self.state.plans.insert(plan.id.clone(), plan.clone());
                }
            }
            EventKind::PlanActivated { activation, plan, area, reason, automatic } => {
                self.state.activations.insert(
                    activation.clone(),
                    Activation {
                        id: activation.clone(),
                        plan: plan.clone(),
                        area: area.clone(),
                        at,
                        by: event.actor.clone(),
                        reason: reason.clone(),
                        automatic: *automatic,
                        incidents: Vec::new(),
                        callup: None,
                        ended: None,
                    },
                );
            }
            EventKind::PlanDeactivated { activation, .. } => {
                if let Some(record) = self.state.activations.get_mut(activation) {
                    record.ended = Some(at);
                }
            }
            EventKind::CallupIssued { callup, area, roles, reason, deadline, people, by_switch, activation } => {
                if let Some(record) = activation.as_ref().and_then(|id| self.state.activations.get_mut(id)) {
                    record.callup = Some(callup.clone());
                }
                self.state.callups.insert(
                    callup.clone(),
                    Callup {
                        id: callup.clone(),
                        area: area.clone(),
                        roles: roles.clone(),
                        reason: reason.clone(),
                        by: event.actor.clone(),
                        issued_at: at,
                        deadline: *deadline,
                        people: people.iter().map(|agent| (agent.clone(), None)).collect(),
                        deadline_passed: false,
                        reached: std::collections::BTreeMap::new(),
                        by_switch: *by_switch,
                        ended: None,
                    },
                );
            }
            EventKind::CheckedIn { callup, agent } => {
                if let Some(record) = self.state.callups.get_mut(callup) {
                    record.people.insert(agent.clone(), Some(at));
                }
            }
            EventKind::CallupDeadlinePassed { callup, .. } => {
                if let Some(record) = self.state.callups.get_mut(callup) {
                    record.deadline_passed = true;
                }
            }
            EventKind::CallupStoodDown { callup, .. } => {
                if let Some(record) = self.state.callups.get_mut(callup) {
                    record.ended = Some(at);
                }
            }
            EventKind::GridStaffingLow { grid, .. } => {
                self.state.low_grids.insert(grid.clone());
            }
            EventKind::GridStaffingRestored { grid, .. } => {
                self.state.low_grids.remove(grid);
            }
            EventKind::AgentTokensIssued { tokens } => {
                for token in tokens {
                    self.state.agent_tokens.insert(token.agent.clone(), token.token_hash.clone());
                }
            }
            EventKind::OperatorAdded { name, role, token_hash, expires_at } => {
                let operator = Operator {
                    role: *role,
                    token_hash: token_hash.clone(),
                    created_at: at,
                    token_expires_at: *expires_at,
                    token_revoked_at: None,
                };
                self.state.operators.insert(name.clone(), operator);
            }
            EventKind::OperatorTokenRotated { name, token_hash, expires_at } => {
                if let Some(operator) = self.state.operators.get_mut(name) {
                    operator.token_hash = token_hash.clone();
                    operator.token_expires_at = *expires_at;
                    operator.token_revoked_at = None;
                }
            }
            EventKind::OperatorTokenRevoked { name } => {
                if let Some(operator) = self.state.operators.get_mut(name) {
                    operator.token_revoked_at = Some(at);
                }
            }
            EventKind::OperatorRemoved { name } => {
                self.state.operators.remove(name);
            }
            EventKind::PersonalDataRead { .. } | EventKind::InboundRefused { .. } => {}
            // Safety clocks and help calls: see `apply_safety`.
            EventKind::SafetyCheckIn { .. } | EventKind::SafetyCheckMissed { .. } | EventKind::HelpRequested { .. } => {}
            EventKind::Notified(step) => {
                if let Some(callup) = &step.callup
                    && let Some(record) = self.state.callups.get_mut(callup)
                    && record.people.contains_key(&step.agent)
                {
                    record.reached.insert(step.agent.clone(), (step.channel, step.outcome));
                }
            }
            EventKind::CapAlertIssued { .. }
            | EventKind::CapAlertReceived { .. }
            | EventKind::CapSuggestionApproved { .. }
            | EventKind::CapSuggestionDismissed { .. } => self.apply_cap(event),
            EventKind::Supplies(supply) => self.apply_supplies(supply, at, &event.actor),
            EventKind::BorderReserved { .. }
            | EventKind::BorderAccepted { .. }
            | EventKind::BorderConfirmed { .. }
            | EventKind::BorderReleased { .. } => self.apply_border(&event.kind, at),
            EventKind::Rosters(roster) => self.apply_rosters(roster, at, &event.actor),
            EventKind::Shelters(shelter) => self.apply_shelters(shelter, at, &event.actor),
            EventKind::MessageSent { .. } | EventKind::MessageReplied { .. } | EventKind::MessageRead { .. } => {
                self.apply_message(&event.kind, at, &event.actor);
            }
            EventKind::OfferSent { offer } => {
                if let Some(incident) = self.state.incidents.get_mut(&offer.incident) {
                    incident.offers_made += 1;
                    incident.waiting_noted = false;
                    incident.open_offers.insert(offer.id.clone(), offer.clone());
                }
                if let Some(record) = self.state.agents.get_mut(&offer.agent) {
                    debug_assert!(record.open_offer.is_none(), "a person answers one offer at a time");
                    record.open_offer = Some((offer.id.clone(), offer.incident.clone()));
                }
            }
            EventKind::Assigned { offer, incident, agent } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.open_offers.remove(offer);
                    // One person serves an incident once, even after completing their part.
                    record.excluded.insert(agent.clone());
                    record.assignments.push(AssignmentRecord {
                        agent: agent.clone(),
                        offer: offer.clone(),
                        assigned_at: at,
                        arrived_at: None,
                        completed_at: None,
                        feedback: None,
                        photo_refs: Vec::new(),
                    });
                    debug_assert!(record.assignments.len() as u32 <= record.spec.headcount, "never more accepted than needed");
                }
                let window_start = Millis(at.0 - (self.policy.workload_window_s as i64) * 1000);
                if let Some(record) = self.state.agents.get_mut(agent) {
                    debug_assert!(record.current_incident.is_none(), "a person holds one assignment at a time");
                    record.open_offer = None;
                    record.current_incident = Some(incident.clone());
                    record.status = AgentStatus::Busy;
                    record.recent_assignments.retain(|earlier| *earlier > window_start);
                    record.recent_assignments.push(at);
                }
            }
            EventKind::OfferDeclined { offer, incident, agent, .. } | EventKind::OfferTimedOut { offer, incident, agent } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.open_offers.remove(offer);
                    record.excluded.insert(agent.clone());
                }
                self.clear_open_offer(agent, offer);
            }
            EventKind::OfferWithdrawn { offer, incident, agent, .. } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.open_offers.remove(offer);
                }
                self.clear_open_offer(agent, offer);
            }
            EventKind::Widened { incident, to, .. } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.scope = *to;
                    record.scope_since = at;
                }
            }
            EventKind::NoCandidates { incident, .. } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.waiting_noted = true;
                }
            }
            EventKind::IncidentUnstaffable { incident, needed, possible, missing_skills, beyond_reach, .. } => {
                if let Some(record) = self.state.incidents.get_mut(incident) {
                    record.unstaffable = Some(RosterShortfall {
                        needed: *needed,
                        possible: *possible,
                        missing_skills: missing_skills.clone(),
                        beyond_reach: *beyond_reach,
                    });
                }
            }
            EventKind::IncidentStaffed { .. } => {}
            EventKind::AgentArrived { incident, agent } => {
                if let Some(assignment) = self.assignment_mut(incident, agent) {
                    assignment.arrived_at = Some(at);
                }
            }
            EventKind::AssignmentCompleted { incident, agent, feedback, photo_refs } => {
                if let Some(assignment) = self.assignment_mut(incident, agent) {
                    assignment.completed_at = Some(at);
                    assignment.feedback = Some(feedback.clone());
                    assignment.photo_refs = photo_refs.clone();
                }
                self.release(agent);
            }
            EventKind::IncidentCancelled { incident, released, reason } => {
                self.end_incident(incident, Ending::Cancelled, at, reason, released);
            }
            EventKind::IncidentClosed { incident, released, feedback } => {
                self.end_incident(incident, Ending::Closed, at, feedback, released);
            }
            EventKind::ModeSwitched { area, mode, reason, .. } => {
                if *mode == Mode::Normal {
                    self.state.modes.remove(area);
                } else {
                    let setting = ModeSetting { mode: *mode, reason: reason.clone(), actor: event.actor.clone(), since: at };
                    self.state.modes.insert(area.clone(), setting);
                }
            }
        }
    }

    fn clear_open_offer(&mut self, agent: &AgentId, offer: &crate::ids::OfferId) {
        if let Some(record) = self.state.agents.get_mut(agent)
            && record.open_offer.as_ref().is_some_and(|(open, _)| open == offer)
        {
            record.open_offer = None;
        }
    }

    fn assignment_mut(&mut self, incident: &crate::ids::IncidentId, agent: &AgentId) -> Option<&mut AssignmentRecord> {
        self.state.incidents.get_mut(incident)?.assignments.iter_mut().find(|assignment| &assignment.agent == agent)
    }

    /// The person's assignment is over: free again.
    fn release(&mut self, agent: &AgentId) {
        self.stop_safety_clock(agent);
        if let Some(record) = self.state.agents.get_mut(agent) {
            record.current_incident = None;
            if record.status == AgentStatus::Busy {
                record.status = AgentStatus::Available;
            }
        }
    }

    fn end_incident(&mut self, incident: &crate::ids::IncidentId, ending: Ending, at: Millis, text: &str, released: &[AgentId]) {
        self.state.open_incidents.remove(incident);
        if let Some(record) = self.state.incidents.get_mut(incident) {
            debug_assert!(record.open_offers.is_empty(), "offers are withdrawn before an incident ends");
            record.ending = Some((ending, at));
            record.feedback = Some(text.to_string());
        }
        for agent in released {
            self.release(agent);
        }
    }

    /// Retires areas: people at home in one move to the area of the same
    /// level (else the deepest) where their home position lies, else to the
    /// nearest area above that stays; everyone is placed again.
    fn retire_areas(&mut self, areas: &[crate::ids::AreaId], service_centres: &[crate::ids::AreaId]) {
        let map = &self.state.areas;
        let fallback: std::collections::BTreeMap<_, _> = areas
            .iter()
            .map(|id| {
                let level = map.get(id).map(|spec| spec.level);
                let above = map.lineage(id).into_iter().map(|spec| spec.id.clone()).find(|area| !areas.contains(area));
                (id.clone(), (level, above))
            })
            .collect();
        self.state.areas.retire(areas, service_centres);
        // Nobody is placed in a retired area, and the map's numbers changed.
        self.live.replace_everyone(&self.state.areas);
        for id in areas {
            self.state.low_grids.remove(id);
            self.state.modes.remove(id);
        }
        for record in self.state.agents.values_mut() {
            let Some((level, above)) = record.profile.home_area.as_ref().and_then(|home| fallback.get(home)) else {
                continue;
            };
            let placed = record.profile.home.map(|at| self.state.areas.place(at));
            let by_position = placed.and_then(|placement| {
                let level = level.filter(|level| placement.at(*level).is_some()).or(placement.deepest())?;
                placement.at(level).cloned()
            });
            self.homes.remove(&record.profile);
            record.profile.home_area = by_position.or_else(|| above.clone());
            self.homes.add(&record.profile);
        }
        self.live.replace_everyone(&self.state.areas);
    }
}
