//! The session ledger: what the person has been shown and what they asked
//! for, kept across connections so that a new session resumes where the old
//! one broke off.
//!
//! The dispatcher's welcome is the truth after a reconnect: its open offers
//! are how the dispatcher re-delivers offers, and its current incident says
//! which assignment the person holds. The ledger compares the two and
//! - surfaces an offer once only (dedupe by offer id and deadline, so that
//!   a re-delivered offer is not shown twice);
//! - says an offer that vanished while the connection was down is withdrawn;
//! - sends again the answers, arrival and completion that may have been
//!   lost with the old connection, if the welcome shows they did not land;
//! - sends again the last location (the dispatcher keeps live locations in
//!   memory only) and the status the person chose, if the dispatcher's
//!   record differs.
//!
//! Pure: no I/O and no clock; the caller passes the time in.

use std::collections::HashMap;
use std::time::Duration;

use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use tracing::debug;

use crate::event::{AgentEvent, IncidentId, Location, Offer, OfferId, Refusal, Welcome, mode_from_wire};

/// How long a finished offer is remembered after its deadline, so that a
/// late re-delivery of it is still recognised.
const REMEMBER_AFTER_DEADLINE_MS: i64 = 10 * 60 * 1000;

/// What the person asks their session to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Location(Location),
    Status(pb::AgentStatus),
    Accept(OfferId),
    Decline {
        offer_id: OfferId,
        reason: String,
    },
    Arrived(IncidentId),
    Completed {
        incident_id: IncidentId,
        feedback: String,
    },
    /// Answer a call-up (an empty id: the open one).
    CheckIn(String),
    /// Report a problem seen in the field.
    FieldReport {
        at: Location,
        category: String,
        text: String,
        photo_ref: String,
    },
    /// "I'm OK" (报平安) while on an assignment.
    SafetyCheckIn,
    /// 求助: kept until a session takes it (sent on the next welcome when
    /// the connection is down).
    Help {
        at: Option<Location>,
        text: String,
    },
}

/// The person's answer to an offer, until the dispatcher has acted on it.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Unanswered,
    Accept,
    Decline(String),
}

#[derive(Clone, Debug)]
struct OfferEntry {
    offer: Offer,
    answer: Answer,
    /// Still waiting for an answer as far as this client knows.
    open: bool,
}

/// What a welcome led to: events for the person and messages for the dispatcher.
#[derive(Debug, Default)]
pub struct Resumption {
    pub events: Vec<AgentEvent>,
    pub send: Vec<pb::AgentMessage>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Ledger {
    agent_id: String,
    offers: HashMap<OfferId, OfferEntry>,
    /// The incident the person holds, as far as this client knows.
    assignment: Option<IncidentId>,
    arrival_requested: Option<IncidentId>,
    completion_requested: Option<(IncidentId, String)>,
    location: Option<Location>,
    /// The status the person chose, until a welcome shows it applied.
    chosen_status: Option<pb::AgentStatus>,
    /// The best knowledge of the person's status.
    status: pb::AgentStatus,
    location_interval: Duration,
    welcomes: u32,
    /// A help call made while the connection was down: sent on the next welcome.
    help_pending: Option<(Option<Location>, String)>,
}

fn message(body: Outgoing) -> pb::AgentMessage {
    pb::AgentMessage { body: Some(body) }
}

fn help_message(at: Option<Location>, text: String) -> pb::AgentMessage {
    message(Outgoing::Help(pb::HelpRequest { location: at.map(|at| pb::Location::wgs84(at.lon, at.lat)), text }))
}

impl Ledger {
    pub fn new(agent_id: &str) -> Self {
        Ledger {
            agent_id: agent_id.to_string(),
            offers: HashMap::new(),
            assignment: None,
            arrival_requested: None,
            completion_requested: None,
            location: None,
            chosen_status: None,
            status: pb::AgentStatus::Unspecified,
            location_interval: Duration::ZERO,
            welcomes: 0,
            help_pending: None,
        }
    }

    /// How often the dispatcher wants a location report (zero before the first welcome).
    pub fn location_interval(&self) -> Duration {
        self.location_interval
    }

    /// The last location the person reported.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The person's status as far as this client knows.
    pub fn status(&self) -> pb::AgentStatus {
        self.status
    }

    /// Offers surfaced and not yet finished, for tests and diagnostics.
    pub fn open_offer_ids(&self) -> Vec<OfferId> {
        let mut ids: Vec<OfferId> = self.offers.iter().filter(|(_, entry)| entry.open).map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids
    }

    /// The periodic location report: the last location, unless the person
    /// is off duty (DOMAIN.md: locations are reported only while on duty).
    pub fn location_report(&self) -> Option<pb::AgentMessage> {
        if self.status == pb::AgentStatus::OffDuty {
            return None;
        }
        self.location.map(|at| message(Outgoing::Location(at.to_pb())))
    }

    /// Records a request; returns what to send now when `connected`.
    pub fn request(&mut self, request: Request, connected: bool) -> Vec<pb::AgentMessage> {
        let mut send = Vec::new();
        match request {
            Request::Location(at) => {
                self.location = Some(at);
                send.extend(self.location_report());
            }
            Request::Status(status) => {
                self.chosen_status = Some(status);
                // The dispatcher refuses anything but busy while an
                // assignment is held; the refusal will say so.
                if self.assignment.is_none() || status == pb::AgentStatus::Busy {
                    self.status = status;
                }
                send.push(message(Outgoing::Status(status as i32)));
                // Nothing was reported while off duty.
                send.extend(self.location_report());
            }
            Request::Accept(offer_id) => {
                if let Some(entry) = self.offers.get_mut(&offer_id) {
                    entry.answer = Answer::Accept;
                }
                send.push(message(Outgoing::Accept(pb::Accept { offer_id: offer_id.to_string() })));
            }
            Request::Decline { offer_id, reason } => {
                if let Some(entry) = self.offers.get_mut(&offer_id) {
                    entry.answer = Answer::Decline(reason.clone());
                }
                send.push(message(Outgoing::Decline(pb::Decline { offer_id: offer_id.to_string(), reason })));
            }
            Request::Arrived(incident_id) => {
                send.push(message(Outgoing::Arrived(pb::Arrived { incident_id: incident_id.to_string() })));
                self.arrival_requested = Some(incident_id);
            }
            Request::Completed { incident_id, feedback } => {
                send.push(message(Outgoing::Completed(pb::Completed {
                    incident_id: incident_id.to_string(),
                    feedback: feedback.clone(),
                    photo_refs: Vec::new(),
                })));
                self.completion_requested = Some((incident_id, feedback));
            }
            Request::CheckIn(callup_id) => {
                send.extend(self.location_report());
                send.push(message(Outgoing::CheckIn(pb::CheckIn { callup_id })));
            }
            Request::FieldReport { at, category, text, photo_ref } => {
                send.push(message(Outgoing::FieldReport(pb::FieldReport {
                    location: Some(pb::Location::wgs84(at.lon, at.lat)),
                    category,
                    text,
                    photo_ref,
                    photo_refs: Vec::new(),
                })));
            }
            Request::SafetyCheckIn => send.push(message(Outgoing::SafetyCheckIn(pb::SafetyCheckIn {}))),
            Request::Help { at, text } => {
                if !connected {
                    self.help_pending = Some((at, text));
                    return Vec::new();
                }
                send.push(help_message(at, text));
            }
        }
        if connected { send } else { Vec::new() }
    }

    /// Takes the first message of a session.
    pub fn welcome(&mut self, welcome: &pb::Welcome, now_ms: i64) -> Resumption {
        self.prune(now_ms);
        let resumed = self.welcomes > 0;
        self.welcomes = self.welcomes.saturating_add(1);
        let summary = Welcome::from_pb(welcome, &self.agent_id, resumed);
        self.location_interval = summary.location_interval;
        self.status = summary.status;
        let held = summary.current_incident.as_ref().map(|incident| incident.incident_id.clone());
        let arrived = summary.current_incident.as_ref().is_some_and(|incident| incident.arrived);
        let mut resumption = Resumption { events: vec![AgentEvent::Welcome(summary)], send: Vec::new() };
        if let Some(due) = &welcome.safety_check_due {
            resumption.events.push(safety_due_event(due));
        }
        if let Some((at, text)) = self.help_pending.take() {
            resumption.send.push(help_message(at, text));
        }
        // Call-ups still waiting for a check-in are shown again on every welcome.
        for call in &welcome.call_ups {
            resumption.events.push(AgentEvent::CallUp {
                callup_id: call.callup_id.clone(),
                area_id: call.area_id.clone(),
                reason: call.reason.clone(),
                deadline_ms: call.deadline_ms,
            });
        }

        // The status the person chose: done when the record shows it, sent
        // again when it does not and can apply.
        if let Some(chosen) = self.chosen_status {
            if chosen == self.status {
                self.chosen_status = None;
            } else if held.is_none() || chosen == pb::AgentStatus::Busy {
                resumption.send.push(message(Outgoing::Status(chosen as i32)));
                self.status = chosen;
            }
        }
        resumption.send.extend(self.location_report());

        // Offers the dispatcher still has open for the person.
        let open_now: HashMap<OfferId, Offer> =
            welcome.open_offers.iter().map(Offer::from_pb).map(|offer| (offer.offer_id.clone(), offer)).collect();
        let mut offered: Vec<&Offer> = open_now.values().collect();
        offered.sort_by(|a, b| a.offer_id.cmp(&b.offer_id));
        for offer in offered {
            match self.offers.get(&offer.offer_id) {
                Some(entry) if same_offer(&entry.offer, offer) => {
                    if entry.open {
                        match &entry.answer {
                            Answer::Unanswered => {}
                            Answer::Accept => resumption
                                .send
                                .push(message(Outgoing::Accept(pb::Accept { offer_id: offer.offer_id.to_string() }))),
                            Answer::Decline(reason) => resumption.send.push(message(Outgoing::Decline(pb::Decline {
                                offer_id: offer.offer_id.to_string(),
                                reason: reason.clone(),
                            }))),
                        }
                    } else {
                        debug!(offer_id = %offer.offer_id, "welcome lists an offer this client saw finish; not shown again");
                    }
                }
                _ => {
                    self.offers.insert(
                        offer.offer_id.clone(),
                        OfferEntry { offer: offer.clone(), answer: Answer::Unanswered, open: true },
                    );
                    resumption.events.push(AgentEvent::Offer(offer.clone()));
                }
            }
        }
        // Offers this client showed as open that the dispatcher no longer has.
        let mut vanished: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(id, entry)| entry.open && !open_now.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        vanished.sort();
        for offer_id in vanished {
            let Some(entry) = self.offers.get_mut(&offer_id) else {
                continue;
            };
            entry.open = false;
            let incident_id = entry.offer.incident_id.clone();
            match entry.answer {
                // The accept landed before the connection broke.
                Answer::Accept if held.as_ref() == Some(&incident_id) => {
                    let mut confirmed = entry.offer.clone();
                    confirmed.deadline_ms = 0;
                    if self.assignment.as_ref() != Some(&incident_id) {
                        resumption.events.push(AgentEvent::AssignmentConfirmed(confirmed));
                    }
                }
                // Declined: gone either way, and the person knows.
                Answer::Decline(_) => {}
                _ => resumption.events.push(AgentEvent::OfferWithdrawn {
                    offer_id,
                    incident_id,
                    reason: "no longer open after reconnecting".to_string(),
                }),
            }
        }

        // The assignment, and the reports about it that may not have landed.
        if let Some(previous) = self.assignment.take()
            && held.as_ref() != Some(&previous)
        {
            let completed = self.completion_requested.as_ref().is_some_and(|(incident, _)| incident == &previous);
            if !completed {
                resumption.events.push(AgentEvent::AssignmentEnded {
                    incident_id: previous,
                    reason: "ended while the connection was down".to_string(),
                });
            }
        }
        self.assignment = held.clone();
        match (&held, &self.arrival_requested) {
            (Some(holding), Some(requested)) if holding == requested && !arrived => {
                resumption.send.push(message(Outgoing::Arrived(pb::Arrived { incident_id: holding.to_string() })));
            }
            _ => self.arrival_requested = None,
        }
        match (&held, &self.completion_requested) {
            (Some(holding), Some((requested, feedback))) if holding == requested => {
                resumption.send.push(message(Outgoing::Completed(pb::Completed {
                    incident_id: holding.to_string(),
                    feedback: feedback.clone(),
                    photo_refs: Vec::new(),
                })));
            }
            _ => self.completion_requested = None,
        }
        resumption
    }

    /// Takes a message after the welcome; returns what to tell the person.
    pub fn message(&mut self, body: Incoming, now_ms: i64) -> Vec<AgentEvent> {
        match body {
            Incoming::Welcome(_) => {
                debug!("a second welcome in one session; ignored");
                Vec::new()
            }
            Incoming::Offer(offer) => {
                let offer = Offer::from_pb(&offer);
                if self.offers.get(&offer.offer_id).is_some_and(|entry| same_offer(&entry.offer, &offer)) {
                    debug!(offer_id = %offer.offer_id, "offer already shown; not shown again");
                    return Vec::new();
                }
                self.prune(now_ms);
                self.offers
                    .insert(offer.offer_id.clone(), OfferEntry { offer: offer.clone(), answer: Answer::Unanswered, open: true });
                vec![AgentEvent::Offer(offer)]
            }
            Incoming::OfferWithdrawn(withdrawn) => {
                let offer_id = OfferId::new(withdrawn.offer_id);
                if !self.close_offer(&offer_id) {
                    return Vec::new();
                }
                vec![AgentEvent::OfferWithdrawn {
                    offer_id,
                    incident_id: IncidentId::new(withdrawn.incident_id),
                    reason: withdrawn.reason,
                }]
            }
            Incoming::AssignmentConfirmed(confirmed) => {
                let Some(offer) = confirmed.offer.as_ref().map(Offer::from_pb) else {
                    debug!("assignment confirmation without an offer; ignored");
                    return Vec::new();
                };
                if let Some(entry) = self.offers.get_mut(&offer.offer_id) {
                    entry.open = false;
                }
                self.assignment = Some(offer.incident_id.clone());
                self.status = pb::AgentStatus::Busy;
                vec![AgentEvent::AssignmentConfirmed(offer)]
            }
            Incoming::NoLongerNeeded(void) => {
                let offer_id = OfferId::new(void.offer_id);
                if !self.close_offer(&offer_id) {
                    return Vec::new();
                }
                vec![AgentEvent::NoLongerNeeded { offer_id, incident_id: IncidentId::new(void.incident_id) }]
            }
            Incoming::AssignmentEnded(ended) => {
                let incident_id = IncidentId::new(ended.incident_id);
                self.forget_assignment(&incident_id);
                vec![AgentEvent::AssignmentEnded { incident_id, reason: ended.reason }]
            }
            Incoming::ModeChanged(changed) => {
                self.location_interval = Duration::from_secs(u64::from(changed.location_interval_s));
                vec![AgentEvent::ModeChanged {
                    area_id: changed.area_id,
                    mode: mode_from_wire(changed.mode),
                    reason: changed.reason,
                    location_interval: self.location_interval,
                }]
            }
            Incoming::CallUp(call) => vec![AgentEvent::CallUp {
                callup_id: call.callup_id,
                area_id: call.area_id,
                reason: call.reason,
                deadline_ms: call.deadline_ms,
            }],
            Incoming::StandDown(stand_down) => vec![AgentEvent::StandDown {
                callup_id: stand_down.callup_id,
                area_id: stand_down.area_id,
                reason: stand_down.reason,
            }],
            Incoming::ReportOutcome(outcome) => vec![AgentEvent::ReportOutcome {
                report_id: outcome.report_id,
                outcome: outcome.outcome,
                incident_id: outcome.incident_id,
                reason: outcome.reason,
                feedback: outcome.feedback,
            }],
            Incoming::SafetyCheckDue(due) => vec![safety_due_event(&due)],
            Incoming::HelpCall(call) => vec![AgentEvent::HelpCall {
                agent_id: call.agent_id,
                name: call.name,
                incident_id: call.incident_id,
                text: call.text,
            }],
            Incoming::Message(message) => {
                vec![AgentEvent::Message { message_id: message.id, from: message.from, text: message.text }]
            }
            Incoming::Refused(refused) => {
                let offer_id = Some(refused.offer_id).filter(|id| !id.is_empty()).map(OfferId::new);
                let incident_id = Some(refused.incident_id).filter(|id| !id.is_empty()).map(IncidentId::new);
                if let Some(entry) = offer_id.as_ref().and_then(|id| self.offers.get_mut(id)) {
                    // The answer did not land; the person may answer again.
                    entry.answer = Answer::Unanswered;
                }
                if let Some(incident) = &incident_id {
                    if self.arrival_requested.as_ref() == Some(incident) {
                        self.arrival_requested = None;
                    }
                    if self.completion_requested.as_ref().is_some_and(|(requested, _)| requested == incident) {
                        self.completion_requested = None;
                    }
                }
                vec![AgentEvent::Refused(Refusal { code: refused.code, message: refused.message, offer_id, incident_id })]
            }
        }
    }

    /// Notes that a completion was sent on a live session: the person is
    /// free again once the dispatcher takes it.
    pub fn completion_sent(&mut self, incident_id: &IncidentId) {
        if self.assignment.as_ref() == Some(incident_id) && self.status == pb::AgentStatus::Busy {
            self.status = pb::AgentStatus::Available;
        }
    }

    /// Marks an offer finished. False when it was already reported
    /// finished: a dispatcher that replaced a stale session sends the
    /// withdrawal after a welcome that already left the offer out.
    fn close_offer(&mut self, offer_id: &OfferId) -> bool {
        match self.offers.get_mut(offer_id) {
            Some(entry) if !entry.open => {
                debug!(%offer_id, "offer already reported finished");
                false
            }
            Some(entry) => {
                entry.open = false;
                true
            }
            None => true,
        }
    }

    fn forget_assignment(&mut self, incident_id: &IncidentId) {
        if self.assignment.as_ref() == Some(incident_id) {
            self.assignment = None;
            if self.status == pb::AgentStatus::Busy {
                self.status = pb::AgentStatus::Available;
            }
        }
        if self.arrival_requested.as_ref() == Some(incident_id) {
            self.arrival_requested = None;
        }
        if self.completion_requested.as_ref().is_some_and(|(requested, _)| requested == incident_id) {
            self.completion_requested = None;
        }
    }

    /// Forgets offers whose deadline is long past: the dispatcher timed them
    /// out and will not deliver them again.
    fn prune(&mut self, now_ms: i64) {
        self.offers.retain(|_, entry| entry.offer.deadline_ms.saturating_add(REMEMBER_AFTER_DEADLINE_MS) > now_ms);
    }
}

/// The same offer delivered again, not a new offer that reuses the id (a
/// dispatcher restarted without its journal numbers offers from 1 again).
fn same_offer(known: &Offer, incoming: &Offer) -> bool {
    known.incident_id == incoming.incident_id && known.deadline_ms == incoming.deadline_ms
}

fn safety_due_event(due: &pb::SafetyCheckDue) -> AgentEvent {
    AgentEvent::SafetyCheckDue {
        incident_id: due.incident_id.clone(),
        due_ms: due.due_ms,
        interval_s: due.interval_s,
        misses: due.misses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn wire_offer(offer_id: &str, incident_id: &str, deadline_ms: i64) -> pb::Offer {
        pb::Offer {
            offer_id: offer_id.to_string(),
            incident_id: incident_id.to_string(),
            category: "medical".to_string(),
            priority: 2,
            deadline_ms,
            agent_id: "p0001".to_string(),
            ..Default::default()
        }
    }

    fn welcome(status: pb::AgentStatus, open: Vec<pb::Offer>, holding: Option<pb::Incident>) -> pb::Welcome {
        pb::Welcome {
            agent: Some(pb::Agent {
                spec: Some(pb::AgentSpec { id: "p0001".to_string(), name: "test".to_string(), ..Default::default() }),
                status: status as i32,
                ..Default::default()
            }),
            mode: pb::Mode::Normal as i32,
            location_interval_s: 180,
            open_offers: open,
            current_incident: holding,
            call_ups: Vec::new(),
            ..Default::default()
        }
    }

    fn holding(incident_id: &str, arrived: bool) -> pb::Incident {
        pb::Incident {
            id: incident_id.to_string(),
            category: "medical".to_string(),
            assignments: vec![pb::Assignment {
                agent_id: "p0001".to_string(),
                arrived_at_ms: if arrived { NOW } else { 0 },
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn offers_in(events: &[AgentEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|event| match event {
                AgentEvent::Offer(offer) => Some(offer.offer_id.to_string()),
                _ => None,
            })
            .collect()
    }

    fn bodies(messages: &[pb::AgentMessage]) -> Vec<Outgoing> {
        messages.iter().filter_map(|message| message.body.clone()).collect()
    }

    #[test]
    fn an_offer_seen_live_is_not_surfaced_again_by_the_welcome_after_a_reconnect() {
        let mut ledger = Ledger::new("p0001");
        let first = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        assert!(matches!(&first.events[..], [AgentEvent::Welcome(Welcome { resumed: false, .. })]));
        let live = ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        assert_eq!(offers_in(&live), vec!["inc-000001-o1"]);
        // The same offer again on the live stream is not shown twice either.
        assert!(ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW).is_empty());

        let again = ledger.welcome(
            &welcome(pb::AgentStatus::Available, vec![wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)], None),
            NOW + 5_000,
        );
        assert!(
            matches!(&again.events[..], [AgentEvent::Welcome(Welcome { resumed: true, open_offers: 1, .. })]),
            "{:?}",
            again.events
        );
        assert_eq!(ledger.open_offer_ids(), vec![OfferId::new("inc-000001-o1")]);
    }

    #[test]
    fn an_offer_made_while_disconnected_is_surfaced_once_from_the_welcome() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        let open = vec![wire_offer("inc-000002-o1", "inc-000002", NOW + 300_000)];
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Available, open.clone(), None), NOW + 1_000);
        assert_eq!(offers_in(&resumed.events), vec!["inc-000002-o1"]);
        let twice = ledger.welcome(&welcome(pb::AgentStatus::Available, open, None), NOW + 2_000);
        assert!(offers_in(&twice.events).is_empty());
    }

    #[test]
    fn a_reused_offer_id_with_another_deadline_is_a_new_offer() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        let fresh = ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 900_000)), NOW + 600_000);
        assert_eq!(offers_in(&fresh), vec!["inc-000001-o1"]);
    }

    #[test]
    fn an_offer_gone_after_a_reconnect_is_reported_withdrawn() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + 1_000);
        assert!(
            resumed.events.iter().any(
                |event| matches!(event, AgentEvent::OfferWithdrawn { offer_id, .. } if offer_id.as_str() == "inc-000001-o1")
            ),
            "{:?}",
            resumed.events
        );
        assert!(ledger.open_offer_ids().is_empty());
        // A withdrawal that arrives after such a welcome is not reported twice.
        let late = ledger.message(
            Incoming::OfferWithdrawn(pb::OfferWithdrawn {
                offer_id: "inc-000001-o1".to_string(),
                incident_id: "inc-000001".to_string(),
                reason: "your session ended".to_string(),
                cause: pb::WithdrawReason::Disconnected as i32,
            }),
            NOW + 1_500,
        );
        assert!(late.is_empty(), "{late:?}");
        // Withdrawn for good: a later welcome does not bring it back.
        let later = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + 2_000);
        assert_eq!(later.events.len(), 1);
    }

    #[test]
    fn an_accept_lost_with_the_connection_is_sent_again() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        // Accepted while the connection is down: nothing to send yet.
        assert!(ledger.request(Request::Accept(OfferId::new("inc-000001-o1")), false).is_empty());
        let resumed = ledger.welcome(
            &welcome(pb::AgentStatus::Available, vec![wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)], None),
            NOW + 1_000,
        );
        assert!(offers_in(&resumed.events).is_empty());
        assert_eq!(bodies(&resumed.send), vec![Outgoing::Accept(pb::Accept { offer_id: "inc-000001-o1".to_string() })]);
    }

    #[test]
    fn an_accept_that_landed_before_the_break_is_confirmed_from_the_welcome() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        ledger.request(Request::Accept(OfferId::new("inc-000001-o1")), true);
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", false))), NOW + 1_000);
        assert!(
            resumed.events.iter().any(
                |event| matches!(event, AgentEvent::AssignmentConfirmed(offer) if offer.incident_id.as_str() == "inc-000001")
            ),
            "{:?}",
            resumed.events
        );
        assert!(!resumed.events.iter().any(|event| matches!(event, AgentEvent::OfferWithdrawn { .. })));
    }

    #[test]
    fn location_and_chosen_status_are_sent_again_after_a_reconnect() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::OffDuty, vec![], None), NOW);
        let at = Location::new(120.1, 30.2);
        assert!(ledger.request(Request::Location(at), true).is_empty(), "no location while off duty");
        let sent = bodies(&ledger.request(Request::Status(pb::AgentStatus::Available), true));
        assert_eq!(sent, vec![Outgoing::Status(pb::AgentStatus::Available as i32), Outgoing::Location(at.to_pb())]);
        // The status message was lost with the connection: the record still says off duty.
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::OffDuty, vec![], None), NOW + 1_000);
        assert_eq!(
            bodies(&resumed.send),
            vec![Outgoing::Status(pb::AgentStatus::Available as i32), Outgoing::Location(at.to_pb())]
        );
        // Once the record shows it, only the location is sent again.
        let applied = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + 2_000);
        assert_eq!(bodies(&applied.send), vec![Outgoing::Location(at.to_pb())]);
    }

    #[test]
    fn a_chosen_status_is_not_pushed_over_an_assignment() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.request(Request::Status(pb::AgentStatus::Available), true);
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", false))), NOW + 1_000);
        assert!(bodies(&resumed.send).is_empty(), "{:?}", resumed.send);
    }

    #[test]
    fn arrival_and_completion_are_sent_again_until_the_welcome_shows_them() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", false))), NOW);
        ledger.request(Request::Arrived(IncidentId::new("inc-000001")), false);
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", false))), NOW + 1_000);
        assert_eq!(bodies(&resumed.send), vec![Outgoing::Arrived(pb::Arrived { incident_id: "inc-000001".to_string() })]);
        let arrived = ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", true))), NOW + 2_000);
        assert!(bodies(&arrived.send).is_empty());

        ledger.request(Request::Completed { incident_id: IncidentId::new("inc-000001"), feedback: "done".to_string() }, true);
        let still_held = ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", true))), NOW + 3_000);
        assert_eq!(
            bodies(&still_held.send),
            vec![Outgoing::Completed(pb::Completed {
                incident_id: "inc-000001".to_string(),
                feedback: "done".to_string(),
                photo_refs: Vec::new()
            })]
        );
        // Completed: no longer held, and that is not reported as "ended".
        let released = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + 4_000);
        assert!(bodies(&released.send).is_empty());
        assert_eq!(released.events.len(), 1, "{:?}", released.events);
    }

    #[test]
    fn an_assignment_that_ended_while_disconnected_is_reported() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Busy, vec![], Some(holding("inc-000001", false))), NOW);
        let resumed = ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + 1_000);
        assert!(resumed.events.iter().any(
            |event| matches!(event, AgentEvent::AssignmentEnded { incident_id, .. } if incident_id.as_str() == "inc-000001")
        ));
    }

    #[test]
    fn a_refused_answer_can_be_given_again() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)), NOW);
        ledger.request(Request::Accept(OfferId::new("inc-000001-o1")), true);
        let refused = ledger.message(
            Incoming::Refused(pb::Refused {
                code: "failed_precondition".to_string(),
                message: "already holds an assignment".to_string(),
                offer_id: "inc-000001-o1".to_string(),
                incident_id: String::new(),
                reason: pb::ErrorReason::FailedPrecondition as i32,
            }),
            NOW,
        );
        assert!(matches!(&refused[..], [AgentEvent::Refused(Refusal { offer_id: Some(_), incident_id: None, .. })]));
        // Unanswered again: a reconnect does not re-send the accept.
        let resumed = ledger.welcome(
            &welcome(pb::AgentStatus::Available, vec![wire_offer("inc-000001-o1", "inc-000001", NOW + 300_000)], None),
            NOW + 1_000,
        );
        assert!(bodies(&resumed.send).is_empty());
    }

    #[test]
    fn finished_offers_are_forgotten_long_after_their_deadline() {
        let mut ledger = Ledger::new("p0001");
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW);
        ledger.message(Incoming::Offer(wire_offer("inc-000001-o1", "inc-000001", NOW + 1_000)), NOW);
        ledger.welcome(&welcome(pb::AgentStatus::Available, vec![], None), NOW + REMEMBER_AFTER_DEADLINE_MS + 2_000);
        assert!(ledger.offers.is_empty());
    }
}
