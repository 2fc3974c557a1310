//! The headless mode for scripts and drills: offers are answered by a rule
//! (`accept`, `decline` or `ignore`) after a delay; with `accept`, arrival
//! and completion are reported after their own delays, and call-ups are
//! checked in to after the same delay as offers. A field report given on the
//! command line is sent once, after the first welcome. Every event and every
//! action is one line on the output, as text or as JSON.
//!
//! [`AutoPilot`] decides (no I/O); [`run`] carries it out against a session.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{distance_text, eta_text};
use crate::client::AgentClient;
use crate::event::{AgentEvent, IncidentId, OfferId, mode_name, status_name};
use crate::track::TrackPlayer;

/// How offers are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoAnswer {
    Accept,
    Decline,
    Ignore,
}

#[derive(Clone, Debug)]
pub struct AutoOptions {
    pub answer: AutoAnswer,
    /// Wait this long before answering an offer.
    pub delay: Duration,
    /// After an assignment is confirmed, report arrival this much later.
    pub arrive_after: Duration,
    /// After arrival, report completion this much later.
    pub complete_after: Duration,
    pub feedback: String,
    pub decline_reason: String,
    /// Stop after this many completions.
    pub exit_after_tasks: Option<u32>,
    /// A field report to send once, after the first welcome.
    pub report: Option<FieldReportText>,
    /// Check in safe (报平安) halfway through each interval while on an
    /// assignment that asks for check-ins.
    pub safety_check_in: bool,
    /// A help call (求助) to send once, after the first welcome, with this text.
    pub help: Option<String>,
}

/// What a field report says: its category and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldReportText {
    pub category: String,
    pub text: String,
}

impl std::str::FromStr for FieldReportText {
    type Err = String;

    /// `CATEGORY:TEXT`, e.g. `flooding:water over the road at gate 3`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (category, text) = crate::app::parse_field_report(input)?;
        Ok(FieldReportText { category, text })
    }
}

/// Something the autopilot will do at a time.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Accept(OfferId),
    Decline(OfferId),
    Arrive(IncidentId),
    Complete(IncidentId),
    /// Check in to this call-up.
    CheckIn(String),
    /// Send the field report, at the person's location.
    Report(FieldReportText),
    /// "I'm OK" (报平安) on the assignment.
    SafetyCheckIn,
    /// 求助, with its text, at the person's location.
    Help(String),
}

/// Decides what to do and when.
#[derive(Debug)]
pub struct AutoPilot {
    options: AutoOptions,
    planned: Vec<(Instant, Step)>,
    completed: u32,
    /// The field report, until the first welcome plans it.
    report: Option<FieldReportText>,
    /// The help call, until the first welcome plans it.
    help: Option<String>,
}

impl AutoPilot {
    pub fn new(options: AutoOptions) -> AutoPilot {
        AutoPilot { report: options.report.clone(), help: options.help.clone(), options, planned: Vec::new(), completed: 0 }
    }

    pub fn options(&self) -> &AutoOptions {
        &self.options
    }

    fn plan(&mut self, at: Instant, step: Step) {
        if !self.planned.iter().any(|(_, planned)| planned == &step) {
            self.planned.push((at, step));
        }
    }

    fn forget(&mut self, keep: impl Fn(&Step) -> bool) {
        self.planned.retain(|(_, step)| keep(step));
    }

    fn holds_plans_for(&self, incident_id: &IncidentId) -> bool {
        self.planned.iter().any(|(_, step)| matches!(step, Step::Arrive(id) | Step::Complete(id) if id == incident_id))
    }

    /// Plans for an event that arrived at `now`.
    pub fn on_event(&mut self, event: &AgentEvent, now: Instant) {
        if let AgentEvent::Welcome(_) = event
            && let Some(report) = self.report.take()
        {
            self.plan(now, Step::Report(report));
        }
        if let AgentEvent::Welcome(_) = event
            && let Some(help) = self.help.take()
        {
            self.plan(now, Step::Help(help));
        }
        match event {
            AgentEvent::SafetyCheckDue { due_ms, interval_s, .. } if self.options.safety_check_in => {
                self.forget(|step| *step != Step::SafetyCheckIn);
                if *due_ms != 0 {
                    // Halfway through the interval: the next due time then follows the check-in.
                    self.plan(now + Duration::from_secs(u64::from(*interval_s) / 2), Step::SafetyCheckIn);
                }
            }
            AgentEvent::CallUp { callup_id, .. } if self.options.answer == AutoAnswer::Accept => {
                self.plan(now + self.options.delay, Step::CheckIn(callup_id.clone()));
            }
            AgentEvent::StandDown { callup_id, .. } => {
                self.forget(|step| !matches!(step, Step::CheckIn(id) if id == callup_id));
            }
            AgentEvent::Offer(offer) => match self.options.answer {
                AutoAnswer::Accept => self.plan(now + self.options.delay, Step::Accept(offer.offer_id.clone())),
                AutoAnswer::Decline => self.plan(now + self.options.delay, Step::Decline(offer.offer_id.clone())),
                AutoAnswer::Ignore => {}
            },
            AgentEvent::OfferWithdrawn { offer_id, .. } | AgentEvent::NoLongerNeeded { offer_id, .. } => {
                self.forget(|step| !matches!(step, Step::Accept(id) | Step::Decline(id) if id == offer_id));
            }
            AgentEvent::AssignmentConfirmed(offer) => {
                self.forget(|step| !matches!(step, Step::Accept(id) if id == &offer.offer_id));
                if self.options.answer == AutoAnswer::Accept {
                    self.plan(now + self.options.arrive_after, Step::Arrive(offer.incident_id.clone()));
                }
            }
            AgentEvent::AssignmentEnded { incident_id, .. } => {
                self.forget(|step| *step != Step::SafetyCheckIn);
                self.forget(|step| !matches!(step, Step::Arrive(id) | Step::Complete(id) if id == incident_id));
            }
            // A program started while the person holds an assignment carries on with it.
            AgentEvent::Welcome(welcome) if self.options.answer == AutoAnswer::Accept => {
                if let Some(incident) = &welcome.current_incident
                    && !self.holds_plans_for(&incident.incident_id)
                {
                    let step = if incident.arrived {
                        Step::Complete(incident.incident_id.clone())
                    } else {
                        Step::Arrive(incident.incident_id.clone())
                    };
                    let after = if incident.arrived { self.options.complete_after } else { self.options.arrive_after };
                    self.plan(now + after, step);
                }
            }
            _ => {}
        }
    }

    /// When the next step is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.planned.iter().map(|(at, _)| *at).min()
    }

    /// Takes the steps due at `now`, in time order, and plans what follows them.
    pub fn take_due(&mut self, now: Instant) -> Vec<Step> {
        let mut due: Vec<(Instant, Step)> = Vec::new();
        let mut index = 0;
        while index < self.planned.len() {
            if self.planned[index].0 <= now {
                due.push(self.planned.remove(index));
            } else {
                index += 1;
            }
        }
        due.sort_by_key(|(at, _)| *at);
        let steps: Vec<Step> = due.into_iter().map(|(_, step)| step).collect();
        for step in &steps {
            match step {
                Step::Arrive(incident_id) => self.plan(now + self.options.complete_after, Step::Complete(incident_id.clone())),
                Step::Complete(_) => {
                    self.completed = self.completed.saturating_add(1);
                    self.forget(|step| *step != Step::SafetyCheckIn);
                }
                Step::Accept(_) | Step::Decline(_) | Step::CheckIn(_) | Step::Report(_) | Step::SafetyCheckIn | Step::Help(_) => {
                }
            }
        }
        steps
    }

    /// True once the wanted number of completions is reached.
    pub fn done(&self) -> bool {
        self.options.exit_after_tasks.is_some_and(|wanted| self.completed >= wanted)
    }
}

/// One output line for an event: text, or a JSON object.
pub fn event_line(event: &AgentEvent, now_ms: i64, as_json: bool) -> String {
    let (text, record) = match event {
        AgentEvent::Connecting => ("connecting".to_string(), json!({"event": "connecting"})),
        AgentEvent::Reconnecting { attempt } => {
            (format!("reconnecting (attempt {attempt})"), json!({"event": "reconnecting", "attempt": attempt}))
        }
        AgentEvent::Welcome(welcome) => (
            format!(
                "{} as {}: status {}, mode {}, location every {} s, {} open offer(s){}",
                if welcome.resumed { "reconnected" } else { "connected" },
                welcome.agent_id,
                status_name(welcome.status),
                mode_name(welcome.mode),
                welcome.location_interval.as_secs(),
                welcome.open_offers,
                welcome
                    .current_incident
                    .as_ref()
                    .map(|incident| format!(", holding {}", incident.incident_id))
                    .unwrap_or_default(),
            ),
            json!({
                "event": "welcome",
                "agent_id": welcome.agent_id,
                "resumed": welcome.resumed,
                "status": status_name(welcome.status),
                "mode": mode_name(welcome.mode),
                "location_interval_s": welcome.location_interval.as_secs(),
                "open_offers": welcome.open_offers,
                "current_incident": welcome.current_incident.as_ref().map(|incident| incident.incident_id.to_string()),
            }),
        ),
        AgentEvent::Offer(offer) => (
            format!(
                "offer {} for {}: {} priority {}, {} away, {}, answer within {} s",
                offer.offer_id,
                offer.incident_id,
                offer.category,
                offer.priority,
                distance_text(offer.distance_m),
                eta_text(offer.eta),
                offer.time_left(now_ms).as_secs()
            ),
            json!({
                "event": "offer",
                "offer_id": offer.offer_id.to_string(),
                "incident_id": offer.incident_id.to_string(),
                "category": offer.category,
                "priority": offer.priority,
                "distance_m": offer.distance_m.round(),
                "eta_s": offer.eta.as_secs(),
                "deadline_ms": offer.deadline_ms,
                "required_skills": offer.required_skills,
            }),
        ),
        AgentEvent::OfferWithdrawn { offer_id, incident_id, reason } => (
            format!("offer {offer_id} withdrawn: {reason}"),
            json!({"event": "offer_withdrawn", "offer_id": offer_id.to_string(), "incident_id": incident_id.to_string(), "reason": reason}),
        ),
        AgentEvent::AssignmentConfirmed(offer) => (
            format!("assigned to {} (offer {})", offer.incident_id, offer.offer_id),
            json!({"event": "assignment_confirmed", "offer_id": offer.offer_id.to_string(), "incident_id": offer.incident_id.to_string()}),
        ),
        AgentEvent::NoLongerNeeded { offer_id, incident_id } => (
            format!("offer {offer_id} no longer needed"),
            json!({"event": "no_longer_needed", "offer_id": offer_id.to_string(), "incident_id": incident_id.to_string()}),
        ),
        AgentEvent::AssignmentEnded { incident_id, reason } => (
            format!("assignment {incident_id} ended: {reason}"),
            json!({"event": "assignment_ended", "incident_id": incident_id.to_string(), "reason": reason}),
        ),
        AgentEvent::ModeChanged { area_id, mode, reason, location_interval } => (
            format!("mode {} in {area_id}: {reason}; location every {} s", mode_name(*mode), location_interval.as_secs()),
            json!({
                "event": "mode_changed",
                "area_id": area_id,
                "mode": mode_name(*mode),
                "reason": reason,
                "location_interval_s": location_interval.as_secs(),
            }),
        ),
        AgentEvent::CallUp { callup_id, area_id, reason, deadline_ms } => (
            format!(
                "called up ({callup_id}) in {area_id}: {reason}; check in within {} s",
                deadline_ms.saturating_sub(now_ms).max(0) / 1000
            ),
            json!({"event": "call_up", "callup_id": callup_id, "area_id": area_id, "reason": reason, "deadline_ms": deadline_ms}),
        ),
        AgentEvent::StandDown { callup_id, area_id, reason } => (
            format!("stood down ({callup_id}) in {area_id}: {reason}"),
            json!({"event": "stand_down", "callup_id": callup_id, "area_id": area_id, "reason": reason}),
        ),
        AgentEvent::ReportOutcome { report_id, outcome, incident_id, reason, feedback } => {
            let handled_by =
                if incident_id.is_empty() || incident_id == report_id { String::new() } else { format!(" ({incident_id})") };
            let detail: Vec<&str> = [reason.as_str(), feedback.as_str()].into_iter().filter(|text| !text.is_empty()).collect();
            let detail = if detail.is_empty() { String::new() } else { format!(": {}", detail.join("; ").replace('\n', "; ")) };
            (
                format!("report {report_id} {outcome}{handled_by}{detail}"),
                json!({"event": "report_outcome", "report_id": report_id, "outcome": outcome, "incident_id": incident_id, "reason": reason, "feedback": feedback}),
            )
        }
        AgentEvent::SafetyCheckDue { incident_id, due_ms, interval_s, misses } => (
            match due_ms {
                0 => "no safety check-in due".to_string(),
                due => format!(
                    "safety check-in (报平安) on {incident_id} due in {} s (every {interval_s} s; missed {misses})",
                    due.saturating_sub(now_ms) / 1000
                ),
            },
            json!({"event": "safety_check_due", "incident_id": incident_id, "due_ms": due_ms, "interval_s": interval_s, "misses": misses}),
        ),
        AgentEvent::HelpCall { agent_id, name, incident_id, text } => (
            format!("求助 help call from {name} ({agent_id}): {text}; incident {incident_id}"),
            json!({"event": "help_call", "agent_id": agent_id, "name": name, "incident_id": incident_id, "text": text}),
        ),
        AgentEvent::Message { message_id, from, text } => (
            format!("message {message_id} from {from}: {text}"),
            json!({"event": "message", "message_id": message_id, "from": from, "text": text}),
        ),
        AgentEvent::Refused(refusal) => (
            format!("refused ({}): {}", refusal.code, refusal.message),
            json!({
                "event": "refused",
                "code": refusal.code,
                "message": refusal.message,
                "offer_id": refusal.offer_id.as_ref().map(ToString::to_string),
                "incident_id": refusal.incident_id.as_ref().map(ToString::to_string),
            }),
        ),
        AgentEvent::ConnectionLost { error, retry_in } => (
            format!("connection lost: {error}; reconnecting in {:.1} s", retry_in.as_secs_f64()),
            json!({"event": "connection_lost", "error": error, "retry_in_ms": retry_in.as_millis() as u64}),
        ),
        AgentEvent::Stopped { error } => (
            match error {
                Some(error) => format!("stopped: {error}"),
                None => "stopped".to_string(),
            },
            json!({"event": "stopped", "error": error}),
        ),
    };
    if as_json { record.to_string() } else { text }
}

/// One output line for a step the autopilot took.
pub fn step_line(step: &Step, options: &AutoOptions, as_json: bool) -> String {
    let (text, record) = match step {
        Step::Accept(offer_id) => {
            (format!("accepting {offer_id}"), json!({"event": "accept_sent", "offer_id": offer_id.to_string()}))
        }
        Step::Decline(offer_id) => (
            format!("declining {offer_id}: {}", options.decline_reason),
            json!({"event": "decline_sent", "offer_id": offer_id.to_string(), "reason": options.decline_reason}),
        ),
        Step::Arrive(incident_id) => {
            (format!("arrived at {incident_id}"), json!({"event": "arrival_sent", "incident_id": incident_id.to_string()}))
        }
        Step::Complete(incident_id) => (
            format!("completed {incident_id}: {}", options.feedback),
            json!({"event": "completion_sent", "incident_id": incident_id.to_string(), "feedback": options.feedback}),
        ),
        Step::CheckIn(callup_id) => {
            (format!("checking in to {callup_id}"), json!({"event": "check_in_sent", "callup_id": callup_id}))
        }
        Step::Report(report) => (
            format!("reporting {}: {}", report.category, report.text),
            json!({"event": "field_report_sent", "category": report.category, "text": report.text}),
        ),
        Step::SafetyCheckIn => ("checking in safe (报平安)".to_string(), json!({"event": "safety_check_in_sent"})),
        Step::Help(text) => (format!("求助 help call sent: {text}"), json!({"event": "help_sent", "text": text})),
    };
    if as_json { record.to_string() } else { text }
}

/// How the headless run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadlessEnd {
    /// Closed by a signal or after the wanted number of tasks.
    Finished,
    /// The session was refused for good (not on the roster ...).
    Failed(String),
}

/// Runs the autopilot until `stop` resolves, the wanted number of tasks are
/// done, or the session stops. Writes one line per event and step to `out`.
pub async fn run(
    client: AgentClient,
    mut events: mpsc::Receiver<AgentEvent>,
    mut pilot: AutoPilot,
    mut track: Option<TrackPlayer>,
    as_json: bool,
    out: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> std::io::Result<HeadlessEnd> {
    let mut stop = std::pin::pin!(stop);
    let far = Duration::from_secs(24 * 3600);
    loop {
        if pilot.done() {
            client.close().await;
            return Ok(HeadlessEnd::Finished);
        }
        let step_at = pilot.next_at().unwrap_or_else(|| Instant::now() + far);
        let point_at = track.as_ref().and_then(TrackPlayer::next_at).unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            () = &mut stop => {
                client.close().await;
                return Ok(HeadlessEnd::Finished);
            }
            event = events.recv() => {
                let Some(event) = event else {
                    return Ok(HeadlessEnd::Failed("the session ended without saying why".to_string()));
                };
                writeln!(out, "{}", event_line(&event, now_ms(), as_json))?;
                out.flush()?;
                if let AgentEvent::Stopped { error } = &event {
                    return Ok(match error {
                        Some(error) => HeadlessEnd::Failed(error.clone()),
                        None => HeadlessEnd::Finished,
                    });
                }
                pilot.on_event(&event, Instant::now());
            }
            () = tokio::time::sleep_until(step_at) => {
                for step in pilot.take_due(Instant::now()) {
                    let sent = match &step {
                        Step::Accept(offer_id) => client.accept(offer_id),
                        Step::Decline(offer_id) => client.decline(offer_id, &pilot.options().decline_reason),
                        Step::Arrive(incident_id) => client.arrived(incident_id),
                        Step::Complete(incident_id) => client.completed(incident_id, &pilot.options().feedback),
                        Step::CheckIn(callup_id) => client.check_in(callup_id),
                        Step::SafetyCheckIn => client.safety_check_in(),
                        // Where the track has the person, else the dispatcher's last known position.
                        Step::Help(text) => client.help(track.as_ref().and_then(|track| track.location_at(Instant::now())), text),
                        Step::Report(report) => {
                            match track.as_ref().and_then(|track| track.location_at(Instant::now())) {
                                Some(at) => client.field_report(at, &report.category, &report.text, ""),
                                None => {
                                    let problem = "no location to report from; give --at or --track";
                                    let line = if as_json {
                                        json!({"event": "not_sent", "error": problem}).to_string()
                                    } else {
                                        format!("not sent: {problem}")
                                    };
                                    writeln!(out, "{line}")?;
                                    continue;
                                }
                            }
                        }
                    };
                    match sent {
                        Ok(()) => writeln!(out, "{}", step_line(&step, pilot.options(), as_json))?,
                        Err(error) => {
                            let line = if as_json {
                                json!({"event": "not_sent", "error": error.to_string()}).to_string()
                            } else {
                                format!("not sent: {error}")
                            };
                            writeln!(out, "{line}")?;
                        }
                    }
                }
                out.flush()?;
            }
            () = tokio::time::sleep_until(point_at) => {
                if let Some(at) = track.as_mut().and_then(|track| track.due(Instant::now())) {
                    // A full queue only delays this point; the next one follows.
                    let _ = client.report_location(at);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Offer;

    fn options(answer: AutoAnswer) -> AutoOptions {
        AutoOptions {
            answer,
            delay: Duration::from_secs(2),
            arrive_after: Duration::from_secs(5),
            complete_after: Duration::from_secs(7),
            feedback: "done".to_string(),
            decline_reason: "busy".to_string(),
            exit_after_tasks: Some(1),
            report: None,
            safety_check_in: false,
            help: None,
        }
    }

    fn offer() -> Offer {
        Offer {
            offer_id: OfferId::new("inc-000001-o1"),
            incident_id: IncidentId::new("inc-000001"),
            category: "medical".to_string(),
            priority: 2,
            location: None,
            distance_m: 120.0,
            eta: Duration::from_secs(90),
            deadline_ms: 300_000,
            required_skills: Vec::new(),
            description: String::new(),
        }
    }

    #[test]
    fn accept_then_arrive_then_complete_at_their_delays() {
        let mut pilot = AutoPilot::new(options(AutoAnswer::Accept));
        let start = Instant::now();
        pilot.on_event(&AgentEvent::Offer(offer()), start);
        assert_eq!(pilot.next_at(), Some(start + Duration::from_secs(2)));
        assert!(pilot.take_due(start + Duration::from_secs(1)).is_empty());
        assert_eq!(pilot.take_due(start + Duration::from_secs(2)), vec![Step::Accept(OfferId::new("inc-000001-o1"))]);
        let confirmed_at = start + Duration::from_secs(3);
        pilot.on_event(&AgentEvent::AssignmentConfirmed(offer()), confirmed_at);
        assert_eq!(pilot.next_at(), Some(confirmed_at + Duration::from_secs(5)));
        let arrived_at = confirmed_at + Duration::from_secs(5);
        assert_eq!(pilot.take_due(arrived_at), vec![Step::Arrive(IncidentId::new("inc-000001"))]);
        assert!(!pilot.done());
        assert_eq!(pilot.take_due(arrived_at + Duration::from_secs(7)), vec![Step::Complete(IncidentId::new("inc-000001"))]);
        assert!(pilot.done());
    }

    #[test]
    fn a_withdrawn_offer_is_not_answered() {
        let mut pilot = AutoPilot::new(options(AutoAnswer::Decline));
        let start = Instant::now();
        pilot.on_event(&AgentEvent::Offer(offer()), start);
        pilot.on_event(
            &AgentEvent::OfferWithdrawn {
                offer_id: OfferId::new("inc-000001-o1"),
                incident_id: IncidentId::new("inc-000001"),
                reason: "timed out".to_string(),
            },
            start,
        );
        assert_eq!(pilot.next_at(), None);
    }

    fn call_up() -> AgentEvent {
        AgentEvent::CallUp {
            callup_id: "callup-0001".to_string(),
            area_id: "d1".to_string(),
            reason: "台风".to_string(),
            deadline_ms: 1_800_000,
        }
    }

    fn welcome() -> AgentEvent {
        AgentEvent::Welcome(crate::event::Welcome {
            agent_id: "p0001".to_string(),
            name: String::new(),
            status: pingji_proto::v1::AgentStatus::Available,
            mode: pingji_proto::v1::Mode::Normal,
            location_interval: Duration::from_secs(180),
            open_offers: 0,
            current_incident: None,
            resumed: false,
        })
    }

    #[test]
    fn accept_checks_in_to_a_call_up_after_the_delay_unless_stood_down() {
        let mut pilot = AutoPilot::new(options(AutoAnswer::Accept));
        let start = Instant::now();
        pilot.on_event(&call_up(), start);
        assert!(pilot.take_due(start + Duration::from_secs(1)).is_empty());
        assert_eq!(pilot.take_due(start + Duration::from_secs(2)), vec![Step::CheckIn("callup-0001".to_string())]);
        assert!(!pilot.done(), "a check-in is not a task");

        pilot.on_event(&call_up(), start);
        pilot.on_event(
            &AgentEvent::StandDown {
                callup_id: "callup-0001".to_string(),
                area_id: "d1".to_string(),
                reason: "解除".to_string(),
            },
            start,
        );
        assert_eq!(pilot.next_at(), None);

        let mut declining = AutoPilot::new(options(AutoAnswer::Decline));
        declining.on_event(&call_up(), start);
        assert_eq!(declining.next_at(), None, "only accept checks in");
    }

    #[test]
    fn a_field_report_is_sent_once_after_the_first_welcome() {
        let mut with_report = options(AutoAnswer::Ignore);
        with_report.report = Some("flooding:water at gate 3".parse().expect("parses"));
        let mut pilot = AutoPilot::new(with_report);
        let start = Instant::now();
        assert_eq!(pilot.next_at(), None, "not before the welcome");
        pilot.on_event(&welcome(), start);
        let report = FieldReportText { category: "flooding".to_string(), text: "water at gate 3".to_string() };
        assert_eq!(pilot.take_due(start), vec![Step::Report(report.clone())]);
        pilot.on_event(&welcome(), start);
        assert_eq!(pilot.next_at(), None, "a reconnect does not send it again");
        let line: serde_json::Value =
            serde_json::from_str(&step_line(&Step::Report(report), pilot.options(), true)).expect("json");
        assert_eq!(line["event"], "field_report_sent");
        assert_eq!(line["category"], "flooding");
        assert!("no colon".parse::<FieldReportText>().is_err());
    }

    #[test]
    fn call_ups_and_report_outcomes_are_one_line_each() {
        assert_eq!(event_line(&call_up(), 600_000, false), "called up (callup-0001) in d1: 台风; check in within 1200 s");
        let closed = AgentEvent::ReportOutcome {
            report_id: "inc-000002".to_string(),
            outcome: "closed".to_string(),
            incident_id: "inc-000002".to_string(),
            reason: String::new(),
            feedback: "p0003: pumped out\np0004: road open".to_string(),
        };
        assert_eq!(event_line(&closed, 0, false), "report inc-000002 closed: p0003: pumped out; p0004: road open");
        let merged = AgentEvent::ReportOutcome {
            report_id: "inc-000005".to_string(),
            outcome: "merged".to_string(),
            incident_id: "inc-000002".to_string(),
            reason: "merged into inc-000002".to_string(),
            feedback: String::new(),
        };
        assert_eq!(event_line(&merged, 0, false), "report inc-000005 merged (inc-000002): merged into inc-000002");
        let record: serde_json::Value = serde_json::from_str(&event_line(&merged, 0, true)).expect("json");
        assert_eq!(record["event"], "report_outcome");
        assert_eq!(record["outcome"], "merged");
    }

    #[test]
    fn ignore_plans_nothing() {
        let mut pilot = AutoPilot::new(options(AutoAnswer::Ignore));
        pilot.on_event(&AgentEvent::Offer(offer()), Instant::now());
        assert_eq!(pilot.next_at(), None);
    }

    #[test]
    fn lines_as_text_and_json() {
        let line = event_line(&AgentEvent::Offer(offer()), 0, false);
        assert_eq!(line, "offer inc-000001-o1 for inc-000001: medical priority 2, 120 m away, about 2 min, answer within 300 s");
        let record: serde_json::Value = serde_json::from_str(&event_line(&AgentEvent::Offer(offer()), 0, true)).expect("json");
        assert_eq!(record["event"], "offer");
        assert_eq!(record["offer_id"], "inc-000001-o1");
        let lost = AgentEvent::ConnectionLost { error: "refused".to_string(), retry_in: Duration::from_millis(1500) };
        assert_eq!(event_line(&lost, 0, false), "connection lost: refused; reconnecting in 1.5 s");
        let step: serde_json::Value =
            serde_json::from_str(&step_line(&Step::Complete(IncidentId::new("inc-000001")), &options(AutoAnswer::Accept), true))
                .expect("json");
        assert_eq!(step["event"], "completion_sent");
        assert_eq!(step["feedback"], "done");
    }
}
