//! Evolving: applying one event to the state. Total: an event that was
//! decided always applies; invariants are checked with `debug_assert!`.

use std::collections::{BTreeMap, BTreeSet};

use super::{Engine, ModeSetting};
use crate::event::{Event, EventKind};
use crate::ids::{AgentId, Millis};
use crate::incident::{AssignmentRecord, Ending, Incident};
use crate::policy::Mode;
use crate::roster::{AgentRecord, AgentStatus};

impl Engine {
    pub(super) fn evolve(&mut self, event: &Event) {
        debug_assert_eq!(event.seq, self.state.last_seq + 1, "events apply in sequence");
        self.state.last_seq = event.seq;
        let at = event.at;
        match &event.kind {
            EventKind::AreasImported { import } => {
                self.state.areas.apply_import(import);
                self.live.replace_everyone(&self.state.areas);
            }
            EventKind::AgentsUpserted { agents } => {
                for profile in agents {
                    match self.state.agents.get_mut(&profile.id) {
                        Some(record) => record.profile = profile.clone(),
                        None => {
                            self.state.agents.insert(profile.id.clone(), AgentRecord::new(profile.clone()));
                        }
                    }
                }
            }
            EventKind::AgentStatusChanged { agent, status } => {
                if let Some(record) = self.state.agents.get_mut(agent) {
                    record.status = *status;
                }
            }
            EventKind::IncidentReported { incident, spec, placement, scope } => {
                self.state.incidents_reported += 1;
                self.state.open_incidents.insert(incident.clone());
                self.state.incidents.insert(
                    incident.clone(),
                    Incident {
                        id: incident.clone(),
                        spec: spec.clone(),
                        reported_at: at,
                        reported_by: event.actor.clone(),
                        placement: placement.clone(),
                        scope: *scope,
                        scope_since: at,
                        open_offers: BTreeMap::new(),
                        assignments: Vec::new(),
                        excluded: BTreeSet::new(),
                        offers_made: 0,
                        waiting_noted: false,
                        ending: None,
                        feedback: None,
                    },
                );
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
            EventKind::IncidentStaffed { .. } => {}
            EventKind::AgentArrived { incident, agent } => {
                if let Some(assignment) = self.assignment_mut(incident, agent) {
                    assignment.arrived_at = Some(at);
                }
            }
            EventKind::AssignmentCompleted { incident, agent, feedback } => {
                if let Some(assignment) = self.assignment_mut(incident, agent) {
                    assignment.completed_at = Some(at);
                    assignment.feedback = Some(feedback.clone());
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
}
