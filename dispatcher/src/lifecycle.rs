//! Tracing spans that follow an incident's life and each of its offers.
//!
//! An incident lives for minutes across many engine batches, so its span
//! is not a scope of code: it is opened when the `incident_reported` event is
//! journaled and closed when the incident ends (`incident_closed`,
//! `incident_cancelled`, a merged or rejected field report), each a root of
//! its own trace. Every offer is a child span of its incident's, closed by
//! the answer (accepted, declined, timed out, withdrawn). Milestones
//! (widened, staffed, arrived) are events inside the incident span. Each
//! field is recorded once (`outcome` at the end): an OpenTelemetry exporter
//! would keep every recorded value of a field as a separate attribute.
//!
//! Fields are ids, levels, priority and category: never names, phone numbers
//! or locations.

use std::collections::HashMap;

use tracing::field::Empty;
use tracing::{Span, debug, info, info_span};

use pingji_engine::engine::Engine;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{IncidentId, OfferId};
use pingji_engine::incident::Incident;

/// The open spans.
#[derive(Default)]
pub struct Lifecycle {
    incidents: HashMap<IncidentId, Span>,
    offers: HashMap<OfferId, Span>,
}

fn incident_span(incident: &IncidentId, grid: &str, priority: u8, category: &str, recovered: bool) -> Span {
    info_span!(
        parent: None,
        "incident",
        incident_id = %incident,
        grid = %grid,
        priority,
        category = %category,
        recovered,
        outcome = Empty,
    )
}

fn grid_of(incident: &Incident) -> String {
    incident.placement.deepest().and_then(|level| incident.placement.at(level)).map_or_else(String::new, |area| area.to_string())
}

impl Lifecycle {
    /// Spans for the incidents and offers already open (after a restart or
    /// a takeover), marked `recovered`.
    pub fn of(engine: &Engine) -> Lifecycle {
        let state = engine.state();
        let mut lifecycle = Lifecycle::default();
        for id in &state.open_incidents {
            let Some(incident) = state.incidents.get(id) else { continue };
            let span = incident_span(id, &grid_of(incident), incident.spec.priority, &incident.spec.category, true);
            info!(parent: &span, status = incident.status().name(), "incident open at start");
            for (offer, record) in &incident.open_offers {
                let offer_span = info_span!(
                    parent: &span,
                    "offer",
                    offer_id = %offer,
                    incident_id = %id,
                    agent_id = %record.agent,
                    level = record.level.name(),
                    flat = record.flat,
                    outcome = Empty,
                );
                lifecycle.offers.insert(offer.clone(), offer_span);
            }
            lifecycle.incidents.insert(id.clone(), span);
        }
        lifecycle
    }

    pub fn on_event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::IncidentReported { incident, spec, placement, scope, .. } => {
                let grid =
                    placement.deepest().and_then(|level| placement.at(level)).map_or_else(String::new, |area| area.to_string());
                let span = incident_span(incident, &grid, spec.priority, &spec.category, false);
                // The command already logs "incident reported"; this is for the trace.
                debug!(parent: &span, seq = event.seq, scope = scope.name(), "incident reported");
                self.incidents.insert(incident.clone(), span);
            }
            EventKind::FieldReported { incident, spec, placement, .. } => {
                let grid =
                    placement.deepest().and_then(|level| placement.at(level)).map_or_else(String::new, |area| area.to_string());
                let span = incident_span(incident, &grid, spec.priority, &spec.category, false);
                info!(parent: &span, seq = event.seq, "field report waiting for triage");
                self.incidents.insert(incident.clone(), span);
            }
            EventKind::ReportAccepted { incident, priority, .. } => {
                if let Some(span) = self.incidents.get(incident) {
                    info!(parent: span, seq = event.seq, priority, "field report accepted for dispatch");
                }
            }
            EventKind::OfferSent { offer } => {
                let Some(incident_span) = self.incidents.get(&offer.incident) else { return };
                let span = info_span!(
                    parent: incident_span,
                    "offer",
                    offer_id = %offer.id,
                    incident_id = %offer.incident,
                    agent_id = %offer.agent,
                    level = offer.level.name(),
                    flat = offer.flat,
                    outcome = Empty,
                );
                debug!(parent: &span, seq = event.seq, "offer sent");
                self.offers.insert(offer.id.clone(), span);
            }
            EventKind::Assigned { offer, .. } => self.end_offer(offer, "accepted"),
            EventKind::OfferDeclined { offer, .. } => self.end_offer(offer, "declined"),
            EventKind::OfferTimedOut { offer, .. } => self.end_offer(offer, "timed_out"),
            EventKind::OfferWithdrawn { offer, reason, .. } => {
                let outcome = match reason {
                    pingji_engine::event::WithdrawReason::Disconnected => "withdrawn_disconnected",
                    pingji_engine::event::WithdrawReason::Unavailable => "withdrawn_unavailable",
                    pingji_engine::event::WithdrawReason::IncidentEnded => "withdrawn_incident_ended",
                    pingji_engine::event::WithdrawReason::Filled => "withdrawn_filled",
                };
                self.end_offer(offer, outcome);
            }
            EventKind::Widened { incident, from, to, .. } => {
                if let Some(span) = self.incidents.get(incident) {
                    info!(parent: span, seq = event.seq, from = from.name(), to = to.name(), "incident widened");
                }
            }
            EventKind::NoCandidates { incident, level, .. } => {
                if let Some(span) = self.incidents.get(incident) {
                    debug!(parent: span, seq = event.seq, level = level.name(), "nobody fits yet");
                }
            }
            EventKind::IncidentStaffed { incident } => {
                if let Some(span) = self.incidents.get(incident) {
                    info!(parent: span, seq = event.seq, "incident staffed");
                }
            }
            EventKind::AgentArrived { incident, .. } => {
                if let Some(span) = self.incidents.get(incident) {
                    debug!(parent: span, seq = event.seq, "a person arrived");
                }
            }
            EventKind::IncidentClosed { incident, .. } => self.end_incident(incident, "closed", event.seq),
            EventKind::IncidentCancelled { incident, .. } => self.end_incident(incident, "cancelled", event.seq),
            EventKind::ReportMerged { incident, .. } => self.end_incident(incident, "merged", event.seq),
            EventKind::ReportRejected { incident, .. } => self.end_incident(incident, "rejected", event.seq),
            _ => {}
        }
    }

    fn end_offer(&mut self, offer: &OfferId, outcome: &'static str) {
        if let Some(span) = self.offers.remove(offer) {
            span.record("outcome", outcome);
            debug!(parent: &span, outcome, "offer answered");
        }
    }

    fn end_incident(&mut self, incident: &IncidentId, outcome: &'static str, seq: u64) {
        if let Some(span) = self.incidents.remove(incident) {
            span.record("outcome", outcome);
            info!(parent: &span, seq, outcome, "incident ended");
        }
    }

    /// Closes every open span with `outcome` (the dispatcher stops).
    pub fn end_all(&mut self, outcome: &'static str) {
        for (_, span) in self.offers.drain() {
            span.record("outcome", outcome);
        }
        for (_, span) in self.incidents.drain() {
            span.record("outcome", outcome);
        }
    }

    /// Open incident spans (for tests and a sanity check on memory).
    pub fn open_incidents(&self) -> usize {
        self.incidents.len()
    }
}
