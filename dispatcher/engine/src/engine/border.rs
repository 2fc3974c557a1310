//! Across a shard border (see [`crate::border`]): deciding and applying
//! reservations at a person's home shard, border offers and their answers
//! at an incident's shard, and the neighbour's side of the candidate
//! search. The search is the engine's own ([`Engine::find_candidates`]
//! and [`Engine::qualify`]) over the flat area of the asking incident.

use std::collections::BTreeSet;

use super::dispatch::{Candidate, CandidateQuery};
use super::{Command, Engine, Rejection};
use crate::areas::AreaLevel;
use crate::border::{BorderReservation, ReservationEnd, ReservationState};
use crate::event::{EventKind, WithdrawReason};
use crate::ids::{AgentId, AreaId, IncidentId, Millis, quote};
use crate::policy::Mode;
use crate::roster::AgentStatus;
use crate::spatial::Position;

/// What a neighbouring shard is asked: its best people for an incident of
/// another shard in emergency.
#[derive(Clone, Debug, PartialEq)]
pub struct BorderQuery {
    pub at: Position,
    pub skills: BTreeSet<String>,
    /// The incident's mode (its grade) and the area in emergency that set
    /// it; in normal mode, the level of the ladder the incident has widened
    /// to (only the city is asked across borders) and its area there.
    pub mode: Mode,
    pub emergency_level: AreaLevel,
    pub emergency_area: AreaId,
    /// People the incident must not be offered to (declined, served, offered).
    pub excluded: BTreeSet<AgentId>,
    pub k: usize,
    pub now: Millis,
}

impl Engine {
    /// This shard's best people for another shard's incident, by the same
    /// rules as for its own: the incident's flat area as this shard sees
    /// it (the asking area in emergency, this shard's areas in emergency at
    /// that grade or stricter touching it, mutual aid), the incident's
    /// grade for eligibility and travel, free people only.
    /// In normal mode, the ladder's step: an incident at the district step
    /// is offered to this shard's people standing in that district (across
    /// the border from home), one widened to the city to anyone free in
    /// the city, as within one dispatcher.
    pub fn border_candidates(&self, query: &BorderQuery) -> Vec<Candidate> {
        let scope = if query.mode.is_emergency() {
            let placement = self.state.areas.place(query.at);
            // The asking area included: this shard's people standing in it
            // (across the border from home) are found there too. Only this
            // shard's people are in its index.
            self.flat_area(&placement, query.mode, query.emergency_level, query.emergency_area.clone())
        } else if matches!(query.emergency_level, AreaLevel::District | AreaLevel::City) {
            let step =
                super::dispatch::ScopeArea { level: query.emergency_level, area: query.emergency_area.clone(), roles: None };
            vec![step]
        } else {
            return Vec::new();
        };
        let search = CandidateQuery {
            at: query.at,
            skills: &query.skills,
            scope: Some(&scope),
            excluded: Some(&query.excluded),
            free_only: true,
            mode: Some(query.mode),
            k: query.k,
            now: query.now,
            holds_offer_of: None,
            // In an emergency shifts do not narrow who is offered; nor,
            // at the last level of normal mode, do another shard's rosters.
            on_shift: None,
        };
        self.find_candidates(&search)
    }

    pub(super) fn decide_border(&self, command: &Command, now: Millis) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::BorderReserve(reservation) => self.decide_reserve(reservation),
            Command::BorderConfirm { offer } => {
                let Some(reservation) = self.state.border.get(offer) else {
                    return Err(Rejection::OfferNotOpen(format!(
                        "border offer {} is not reserved here (it expired or was released)",
                        quote(offer)
                    )));
                };
                match reservation.state {
                    ReservationState::Confirmed => Ok(Vec::new()),
                    ReservationState::Accepted => Ok(vec![EventKind::BorderConfirmed {
                        offer: offer.clone(),
                        incident: reservation.incident.clone(),
                        agent: reservation.agent.clone(),
                    }]),
                    ReservationState::Offered => Err(Rejection::FailedPrecondition(format!(
                        "border offer {} has not been accepted by {}",
                        quote(offer),
                        reservation.agent
                    ))),
                }
            }
            Command::BorderRelease { offer, end, reason } => {
                super::decide::check_text("the reason", reason, false)?;
                // Released already (or never reserved): nothing to do.
                let Some(reservation) = self.state.border.get(offer) else {
                    return Ok(Vec::new());
                };
                // A withdrawal ends only an unanswered offer: once the
                // person accepted, the incident's shard's answer to that
                // acceptance decides (assigned, or refused), and a late or
                // repeated withdrawal must not free someone it assigned
                // (found by pingji-sim, seed 244).
                if *end == ReservationEnd::Withdrawn && reservation.state != ReservationState::Offered {
                    return Ok(Vec::new());
                }
                Ok(vec![EventKind::BorderReleased {
                    offer: offer.clone(),
                    incident: reservation.incident.clone(),
                    agent: reservation.agent.clone(),
                    end: *end,
                    reason: reason.clone(),
                }])
            }
            // Only unanswered offers expire. An acceptance waits for the
            // incident's shard to say whether it assigned the person: it may
            // have (its answer lost, or this shard's owner replaced before it
            // arrived), and freeing them here would let them be assigned twice
            // (found by pingji-sim, seed 27).
            Command::ExpireBorderReservations => Ok(self
                .state
                .border
                .values()
                .filter(|reservation| reservation.state == ReservationState::Offered && reservation.expires_at <= now)
                .map(|reservation| EventKind::BorderReleased {
                    offer: reservation.offer.clone(),
                    incident: reservation.incident.clone(),
                    agent: reservation.agent.clone(),
                    end: ReservationEnd::Expired,
                    reason: String::new(),
                })
                .collect()),
            Command::BorderOffer { offer } => {
                let incident = self.open_incident(&offer.incident)?;
                if incident.open_offers.contains_key(&offer.id) {
                    return Ok(Vec::new());
                }
                if self.state.agents.contains_key(&offer.agent) {
                    return Err(Rejection::InvalidArgument(format!(
                        "agent {} lives in this shard; a border offer is for another shard's people",
                        offer.agent
                    )));
                }
                if incident.excluded.contains(&offer.agent) || incident.open_offers.values().any(|open| open.agent == offer.agent)
                {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} was offered incident {} already",
                        offer.agent, offer.incident
                    )));
                }
                let offered = incident.open_offers.len() as u32;
                if incident.still_needed() == 0 || incident.triage_pending || offered >= incident.still_needed() * 2 + 2 {
                    return Err(Rejection::FailedPrecondition(format!("incident {} needs no more offers now", offer.incident)));
                }
                Ok(vec![EventKind::OfferSent { offer: offer.clone() }])
            }
            Command::BorderWithdraw { offer } => {
                let open = self.state.open_incidents.iter().filter_map(|id| self.state.incidents.get(id)).find_map(|incident| {
                    incident.open_offers.get(offer).filter(|open| !self.state.agents.contains_key(&open.agent))
                });
                // Timed out, answered or withdrawn already: nothing to do.
                Ok(open
                    .map(|open| EventKind::OfferWithdrawn {
                        offer: offer.clone(),
                        incident: open.incident.clone(),
                        agent: open.agent.clone(),
                        reason: WithdrawReason::Unavailable,
                    })
                    .into_iter()
                    .collect())
            }
            Command::BorderAnswer { offer, agent, accepted, reason } => {
                super::decide::check_text("the decline reason", reason, false)?;
                let incident = self
                    .state
                    .incidents
                    .values()
                    .find(|incident| {
                        incident.open_offers.get(offer).is_some_and(|open| &open.agent == agent)
                            || incident
                                .assignments
                                .iter()
                                .any(|assignment| &assignment.offer == offer && &assignment.agent == agent)
                    })
                    .ok_or_else(|| {
                        Rejection::OfferNotOpen(format!(
                            "border offer {} is not open here (timed out, withdrawn or filled)",
                            quote(offer)
                        ))
                    })?;
                // Asked again after an answer was lost: the same outcome.
                if !incident.open_offers.contains_key(offer) {
                    return if *accepted {
                        Ok(Vec::new())
                    } else {
                        Err(Rejection::FailedPrecondition(format!("{agent} holds incident {} already", incident.id)))
                    };
                }
                if *accepted {
                    Ok(vec![EventKind::Assigned { offer: offer.clone(), incident: incident.id.clone(), agent: agent.clone() }])
                } else {
                    Ok(vec![EventKind::OfferDeclined {
                        offer: offer.clone(),
                        incident: incident.id.clone(),
                        agent: agent.clone(),
                        reason: reason.clone(),
                    }])
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    fn decide_reserve(&self, reservation: &BorderReservation) -> Result<Vec<EventKind>, Rejection> {
        if let Some(held) = self.state.border.get(&reservation.offer) {
            if held.agent == reservation.agent && held.incident == reservation.incident {
                return Ok(Vec::new());
            }
            return Err(Rejection::AlreadyExists(format!(
                "border offer {} is reserved for another person or incident",
                quote(&reservation.offer)
            )));
        }
        let record =
            self.state.agents.get(&reservation.agent).ok_or_else(|| {
                Rejection::NotFound(format!("agent {} is not on this shard's roster", quote(&reservation.agent)))
            })?;
        let located = self.live.agents.get(&reservation.agent).is_some_and(|live| live.location.is_some());
        if !record.is_free() || !located {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {} is not free to be offered anything now",
                reservation.agent
            )));
        }
        if reservation.expires_at <= reservation.sent_at || reservation.deadline > reservation.expires_at {
            return Err(Rejection::InvalidArgument("a border reservation must expire after its offer's deadline".to_owned()));
        }
        let mut reserved = reservation.clone();
        reserved.state = ReservationState::Offered;
        Ok(vec![EventKind::BorderReserved { reservation: reserved }])
    }

    /// Accept or decline of an offer that is a border reservation here.
    pub(super) fn answer_border_offer(&self, command: &Command) -> Option<EventKind> {
        let (Command::Accept { agent, offer } | Command::Decline { agent, offer, .. }) = command else {
            return None;
        };
        let reservation = self
            .state
            .border
            .get(offer)
            .filter(|reservation| &reservation.agent == agent && reservation.state == ReservationState::Offered)?;
        let record = self.state.agents.get(agent)?;
        if record.open_offer.as_ref().is_none_or(|(open, _)| open != offer) {
            return None;
        }
        Some(match command {
            Command::Decline { reason, .. } => EventKind::BorderReleased {
                offer: offer.clone(),
                incident: reservation.incident.clone(),
                agent: agent.clone(),
                end: ReservationEnd::Declined,
                reason: reason.clone(),
            },
            _ => EventKind::BorderAccepted { offer: offer.clone(), incident: reservation.incident.clone(), agent: agent.clone() },
        })
    }

    /// After a border answer at an incident's shard: a decline offers the
    /// incident again, as a decline of its own people does.
    pub(super) fn react_border(&mut self, command: &Command, now: Millis, out: &mut Vec<super::Event>) {
        let Command::BorderAnswer { accepted: false, .. } = command else {
            return;
        };
        let declined: Option<IncidentId> = out.iter().find_map(|event| match &event.kind {
            EventKind::OfferDeclined { incident, .. } => Some(incident.clone()),
            _ => None,
        });
        if let Some(incident) = declined {
            self.dispatch_incident(&incident, now, out);
        }
    }

    pub(super) fn apply_border(&mut self, kind: &EventKind, at: Millis) {
        match kind {
            EventKind::BorderReserved { reservation } => {
                if let Some(record) = self.state.agents.get_mut(&reservation.agent) {
                    debug_assert!(record.open_offer.is_none(), "a person answers one offer at a time");
                    record.open_offer = Some((reservation.offer.clone(), reservation.incident.clone()));
                }
                self.state.border.insert(reservation.offer.clone(), reservation.clone());
            }
            EventKind::BorderAccepted { offer, incident, agent } => {
                if let Some(reservation) = self.state.border.get_mut(offer) {
                    reservation.state = ReservationState::Accepted;
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
            EventKind::BorderConfirmed { offer, .. } => {
                if let Some(reservation) = self.state.border.get_mut(offer) {
                    reservation.state = ReservationState::Confirmed;
                }
            }
            EventKind::BorderReleased { offer, incident, agent, .. } => {
                let Some(reservation) = self.state.border.remove(offer) else {
                    return;
                };
                let Some(record) = self.state.agents.get_mut(agent) else {
                    return;
                };
                if record.open_offer.as_ref().is_some_and(|(open, _)| open == offer) {
                    record.open_offer = None;
                }
                if reservation.state != ReservationState::Offered && record.current_incident.as_ref() == Some(incident) {
                    record.current_incident = None;
                    if record.status == AgentStatus::Busy {
                        record.status = AgentStatus::Available;
                    }
                    self.stop_safety_clock(agent);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
