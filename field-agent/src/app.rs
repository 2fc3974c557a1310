//! The terminal view's state ([`App`]) and what each key does. No I/O:
//! events from the session go in with [`App::apply`], keys with
//! [`App::handle_key`], which answers with the [`Action`] to carry out.
//!
//! Keys: `a` accept the offer, `d` decline it (then a reason: `1` too far,
//! `2` busy, `3` lacking skill, `4` unwell, `5` other, typed), `r` report
//! arrival, `c` report completion (then type feedback, Enter sends), `k`
//! check in to a call-up, `f` report what you see (then type
//! `category: text`, Enter sends), `v` go available, `o` go off duty, `q` or
//! Ctrl-C quit. Esc cancels a prompt.

use std::collections::VecDeque;
use std::time::Duration;

use pingji_proto::v1 as pb;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::event::{AgentEvent, IncidentId, Offer, OfferId, mode_name, status_name};

/// The reasons offered when declining, in the order of their keys 1 to 5.
pub const DECLINE_REASONS: [&str; 5] = ["too far", "busy", "lacking skill", "unwell", "other"];

/// Notices kept for the messages pane.
const NOTICES_KEPT: usize = 50;
/// The longest typed feedback or reason, in characters.
const MAX_TYPED: usize = 500;

/// The connection as the person sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    /// Trying to connect; `attempt` 0 is the first try.
    Connecting {
        attempt: u32,
    },
    Connected,
    /// Lost; the next attempt starts at `retry_at_ms`.
    WaitingToRetry {
        retry_at_ms: i64,
        error: String,
    },
    /// Over for good; `error` says why when it was not the person's choice.
    Stopped {
        error: Option<String>,
    },
}

/// The assignment the person holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub incident_id: IncidentId,
    pub category: String,
    pub priority: i32,
    pub description: String,
    pub arrived: bool,
}

/// A question on the screen waiting for keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    None,
    /// Choosing why to decline; `selected` indexes [`DECLINE_REASONS`].
    DeclineReason {
        offer_id: OfferId,
        selected: usize,
    },
    /// Typing the reason for "other".
    DeclineOther {
        offer_id: OfferId,
        text: String,
    },
    /// Typing what was found and done.
    Feedback {
        incident_id: IncidentId,
        text: String,
    },
    /// Typing a field report: `category: text`.
    FieldReport {
        text: String,
    },
    /// 求助 pressed: y or Enter sends it, any other key cancels (against
    /// pocket presses).
    ConfirmHelp,
}

/// The question of the help confirmation.
pub const HELP_QUESTION: &str = "求助 send a help call? y / Enter: yes, any other key: no";

/// The question of the field report prompt.
pub const FIELD_REPORT_QUESTION: &str = "what do you see? (category: text)";

/// What a key asks the program to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
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
    SetStatus(pb::AgentStatus),
    /// Check in to a call-up.
    CheckIn(String),
    /// Report a problem seen in the field, at the person's location.
    FieldReport {
        category: String,
        text: String,
    },
    /// "I'm OK" (报平安) on the assignment.
    SafetyCheckIn,
    /// 求助, confirmed.
    Help,
    Quit,
}

/// Reads a field report written as `category: text` (or `category:text`),
/// e.g. `flooding: water over the road at gate 3`. The category is one word
/// or a few; the text says what is seen.
pub fn parse_field_report(input: &str) -> Result<(String, String), String> {
    let example = "e.g. flooding: water over the road at gate 3";
    let Some((category, text)) = input.split_once([':', '：']) else {
        return Err(format!("write it as category: text, {example}"));
    };
    let category = category.trim();
    let text = text.trim();
    if category.is_empty() {
        return Err(format!("the category before ':' is empty; {example}"));
    }
    if text.is_empty() {
        return Err(format!("say what you see after '{category}:'; {example}"));
    }
    Ok((category.to_string(), text.to_string()))
}

/// Everything the screen shows.
#[derive(Clone, Debug)]
pub struct App {
    pub agent_id: String,
    pub server: String,
    pub name: String,
    pub connection: Connection,
    pub status: pb::AgentStatus,
    pub mode: pb::Mode,
    pub location_interval: Duration,
    /// How the location is fed, e.g. "fixed point" or "track walk.gpx".
    pub location_note: String,
    /// The offer waiting for an answer (the dispatcher makes one at a time).
    pub offer: Option<Offer>,
    /// True once accept was sent for the current offer.
    pub accepting: bool,
    pub assignment: Option<Assignment>,
    /// A call-up waiting for this person's check-in.
    pub callup: Option<String>,
    /// When the next safety check-in is due on the assignment (ms since
    /// the epoch), and check-ins missed in a row so far.
    pub safety_due: Option<(i64, u32)>,
    pub prompt: Prompt,
    /// Recent notices, newest last.
    pub notices: VecDeque<String>,
    /// Wall-clock time in milliseconds since the epoch, for countdowns.
    pub now_ms: i64,
}

impl App {
    pub fn new(agent_id: &str, server: &str, location_note: &str) -> App {
        App {
            agent_id: agent_id.to_string(),
            server: server.to_string(),
            name: String::new(),
            connection: Connection::Connecting { attempt: 0 },
            status: pb::AgentStatus::Unspecified,
            mode: pb::Mode::Unspecified,
            location_interval: Duration::ZERO,
            location_note: location_note.to_string(),
            offer: None,
            accepting: false,
            assignment: None,
            callup: None,
            safety_due: None,
            prompt: Prompt::None,
            notices: VecDeque::new(),
            now_ms: 0,
        }
    }

    /// Adds a notice; the same notice again (a retry that failed the same
    /// way) counts up on the last line instead of filling the pane.
    pub fn notice(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Some(last) = self.notices.back_mut() {
            if *last == text {
                *last = format!("{text} (2 times)");
                return;
            }
            if let Some(count) = last
                .strip_prefix(text.as_str())
                .and_then(|rest| rest.strip_prefix(" ("))
                .and_then(|rest| rest.strip_suffix(" times)"))
                .and_then(|count| count.parse::<u32>().ok())
            {
                *last = format!("{text} ({} times)", count.saturating_add(1));
                return;
            }
        }
        self.notices.push_back(text);
        while self.notices.len() > NOTICES_KEPT {
            self.notices.pop_front();
        }
    }

    /// Takes an event from the session.
    pub fn apply(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::Connecting => self.connection = Connection::Connecting { attempt: 0 },
            AgentEvent::Reconnecting { attempt } => self.connection = Connection::Connecting { attempt: *attempt },
            AgentEvent::Welcome(welcome) => {
                self.connection = Connection::Connected;
                self.name = welcome.name.clone();
                self.status = welcome.status;
                self.mode = welcome.mode;
                self.location_interval = welcome.location_interval;
                self.assignment = welcome.current_incident.as_ref().map(|incident| Assignment {
                    incident_id: incident.incident_id.clone(),
                    category: incident.category.clone(),
                    priority: incident.priority,
                    description: incident.description.clone(),
                    arrived: incident.arrived,
                });
                self.notice(if welcome.resumed { "reconnected" } else { "connected" });
            }
            AgentEvent::Offer(offer) => {
                self.notice(format!(
                    "new offer: {} (priority {}), {}",
                    offer.category,
                    offer.priority,
                    distance_text(offer.distance_m)
                ));
                self.offer = Some(offer.clone());
                self.accepting = false;
            }
            AgentEvent::OfferWithdrawn { offer_id, reason, .. } => {
                if self.clear_offer(offer_id) {
                    self.notice(format!("offer withdrawn: {reason}"));
                }
            }
            AgentEvent::AssignmentConfirmed(offer) => {
                self.clear_offer(&offer.offer_id);
                self.assignment = Some(Assignment {
                    incident_id: offer.incident_id.clone(),
                    category: offer.category.clone(),
                    priority: offer.priority,
                    description: offer.description.clone(),
                    arrived: false,
                });
                self.status = pb::AgentStatus::Busy;
                self.notice(format!("assigned to {} ({}); press r when you arrive", offer.incident_id, offer.category));
            }
            AgentEvent::NoLongerNeeded { offer_id, .. } => {
                if self.clear_offer(offer_id) {
                    self.notice("offer no longer needed: others accepted first, thank you");
                }
            }
            AgentEvent::AssignmentEnded { incident_id, reason } => {
                if self.assignment.as_ref().is_some_and(|assignment| &assignment.incident_id == incident_id) {
                    self.assignment = None;
                    self.safety_due = None;
                    if self.status == pb::AgentStatus::Busy {
                        self.status = pb::AgentStatus::Available;
                    }
                    if matches!(&self.prompt, Prompt::Feedback { incident_id: prompted, .. } if prompted == incident_id) {
                        self.prompt = Prompt::None;
                    }
                }
                self.notice(format!("assignment {incident_id} ended: {reason}"));
            }
            AgentEvent::ModeChanged { mode, reason, location_interval, .. } => {
                self.mode = *mode;
                self.location_interval = *location_interval;
                self.notice(format!("mode now {}: {reason}", mode_name(*mode)));
            }
            AgentEvent::CallUp { callup_id, area_id, reason, deadline_ms } => {
                self.callup = Some(callup_id.clone());
                let minutes = (deadline_ms.saturating_sub(self.now_ms) / 60_000).max(0);
                self.notice(format!("CALLED UP ({area_id}): {reason}; press k to check in within {minutes} min"));
            }
            AgentEvent::Message { from, text, .. } => {
                self.notice(format!("message from {from}: {text}"));
            }
            AgentEvent::SafetyCheckDue { due_ms, misses, .. } => {
                self.safety_due = (*due_ms != 0).then_some((*due_ms, *misses));
                if *misses > 0 && *due_ms != 0 {
                    self.notice(format!("SAFETY CHECK-IN MISSED ({misses}): press s to say you are safe (报平安)"));
                }
            }
            AgentEvent::HelpCall { agent_id, name, incident_id, text } => {
                let text = if text.is_empty() { String::new() } else { format!(": {text}") };
                self.notice(format!("求助 HELP CALL from {name} ({agent_id}){text}; incident {incident_id}"));
            }
            AgentEvent::StandDown { callup_id, reason, .. } => {
                if self.callup.as_ref() == Some(callup_id) {
                    self.callup = None;
                }
                self.notice(format!("stood down: {reason}; thank you"));
            }
            AgentEvent::ReportOutcome { report_id, outcome, incident_id, reason, feedback } => {
                let detail = [reason.as_str(), feedback.as_str()]
                    .into_iter()
                    .filter(|text| !text.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.notice(format!("your report {report_id} ({incident_id}): {outcome} {detail}"));
            }
            AgentEvent::Refused(refusal) => {
                if refusal.offer_id.is_some() && refusal.offer_id.as_ref() == self.offer.as_ref().map(|offer| &offer.offer_id) {
                    self.accepting = false;
                }
                if refusal.offer_id.is_none() && refusal.incident_id.is_none() {
                    // About the session as a whole, e.g. the dispatcher shutting down.
                    self.notice(format!("dispatcher: {}", refusal.message));
                } else {
                    self.notice(format!("not done: {}", refusal.message));
                }
            }
            AgentEvent::ConnectionLost { error, retry_in } => {
                self.connection = Connection::WaitingToRetry {
                    retry_at_ms: self.now_ms.saturating_add(retry_in.as_millis() as i64),
                    error: error.clone(),
                };
                self.notice(format!("connection lost: {error}"));
            }
            AgentEvent::Stopped { error } => {
                if let Some(error) = error {
                    self.notice(format!("stopped: {error}"));
                }
                self.connection = Connection::Stopped { error: error.clone() };
            }
        }
    }

    /// Forgets the current offer if it is `offer_id`; true if it was.
    fn clear_offer(&mut self, offer_id: &OfferId) -> bool {
        if self.offer.as_ref().is_none_or(|offer| &offer.offer_id != offer_id) {
            return false;
        }
        self.offer = None;
        self.accepting = false;
        if matches!(&self.prompt, Prompt::DeclineReason { offer_id: prompted, .. } | Prompt::DeclineOther { offer_id: prompted, .. } if prompted == offer_id)
        {
            self.prompt = Prompt::None;
        }
        true
    }

    /// Notes that an action was handed to the session.
    pub fn action_sent(&mut self, action: &Action) {
        match action {
            Action::CheckIn(_) => {
                self.callup = None;
                self.notice("checked in: you are available at your reported location");
            }
            Action::FieldReport { category, .. } => {
                self.notice(format!("report sent ({category}); you will hear what becomes of it"));
            }
            Action::SafetyCheckIn => self.notice("报平安 sent: you checked in safe"),
            Action::Help => self.notice("求助 sent: help is on the way; your team and the operators are told"),
            Action::Accept(_) => {
                self.accepting = true;
                self.notice("accept sent; waiting for confirmation");
            }
            Action::Decline { offer_id, reason } => {
                self.clear_offer(offer_id);
                self.notice(format!("declined: {reason}"));
            }
            Action::Arrived(incident_id) => {
                if let Some(assignment) = self.assignment.as_mut().filter(|assignment| &assignment.incident_id == incident_id) {
                    assignment.arrived = true;
                }
                self.notice("arrival reported");
            }
            Action::Completed { incident_id, .. } => {
                if self.assignment.as_ref().is_some_and(|assignment| &assignment.incident_id == incident_id) {
                    self.assignment = None;
                    self.safety_due = None;
                    self.status = pb::AgentStatus::Available;
                }
                self.notice(format!("completion of {incident_id} reported, thank you"));
            }
            Action::SetStatus(status) => {
                self.status = *status;
                self.notice(format!("status set to {}", status_name(*status)));
            }
            Action::Quit => {}
        }
    }

    /// What a key does. Releases are ignored; Ctrl-C quits from anywhere.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return Some(Action::Quit);
        }
        match std::mem::replace(&mut self.prompt, Prompt::None) {
            Prompt::None => self.key_without_prompt(key),
            Prompt::ConfirmHelp => match key.code {
                KeyCode::Enter | KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Help),
                _ => {
                    self.notice("help call not sent");
                    None
                }
            },
            Prompt::DeclineReason { offer_id, selected } => self.key_choosing_reason(key, offer_id, selected),
            Prompt::DeclineOther { offer_id, text } => self.key_typing(
                key,
                text,
                |text| {
                    let reason = if text.trim().is_empty() { "other".to_string() } else { format!("other: {}", text.trim()) };
                    Some(Action::Decline { offer_id: offer_id.clone(), reason })
                },
                |text| Prompt::DeclineOther { offer_id: offer_id.clone(), text },
            ),
            Prompt::FieldReport { text } => {
                if key.code == KeyCode::Enter
                    && let Err(problem) = parse_field_report(&text)
                {
                    self.notice(problem);
                    self.prompt = Prompt::FieldReport { text };
                    return None;
                }
                self.key_typing(
                    key,
                    text,
                    |text| parse_field_report(&text).ok().map(|(category, text)| Action::FieldReport { category, text }),
                    |text| Prompt::FieldReport { text },
                )
            }
            Prompt::Feedback { incident_id, text } => {
                if key.code == KeyCode::Enter && text.trim().is_empty() {
                    self.notice("type what you found and did, then press Enter");
                    self.prompt = Prompt::Feedback { incident_id, text };
                    return None;
                }
                self.key_typing(
                    key,
                    text,
                    |text| Some(Action::Completed { incident_id: incident_id.clone(), feedback: text.trim().to_string() }),
                    |text| Prompt::Feedback { incident_id: incident_id.clone(), text },
                )
            }
        }
    }

    fn key_without_prompt(&mut self, key: KeyEvent) -> Option<Action> {
        let KeyCode::Char(character) = key.code else {
            return None;
        };
        match character.to_ascii_lowercase() {
            'q' => Some(Action::Quit),
            'a' => match &self.offer {
                Some(_) if self.accepting => {
                    self.notice("accept already sent; waiting for confirmation");
                    None
                }
                Some(offer) => Some(Action::Accept(offer.offer_id.clone())),
                None => {
                    self.notice("no offer to accept");
                    None
                }
            },
            'd' => match &self.offer {
                Some(offer) => {
                    self.prompt = Prompt::DeclineReason { offer_id: offer.offer_id.clone(), selected: 0 };
                    None
                }
                None => {
                    self.notice("no offer to decline");
                    None
                }
            },
            'r' => match &self.assignment {
                Some(assignment) if assignment.arrived => {
                    self.notice("arrival already reported; press c when done");
                    None
                }
                Some(assignment) => Some(Action::Arrived(assignment.incident_id.clone())),
                None => {
                    self.notice("no assignment to report arrival for");
                    None
                }
            },
            'c' => match &self.assignment {
                Some(assignment) => {
                    self.prompt = Prompt::Feedback { incident_id: assignment.incident_id.clone(), text: String::new() };
                    None
                }
                None => {
                    self.notice("no assignment to complete");
                    None
                }
            },
            'v' => Some(Action::SetStatus(pb::AgentStatus::Available)),
            'o' => Some(Action::SetStatus(pb::AgentStatus::OffDuty)),
            'f' => {
                self.prompt = Prompt::FieldReport { text: String::new() };
                None
            }
            's' => match &self.assignment {
                Some(_) => Some(Action::SafetyCheckIn),
                None => {
                    self.notice("no assignment: safety check-ins are for people on one");
                    None
                }
            },
            'h' | '!' => {
                self.prompt = Prompt::ConfirmHelp;
                None
            }
            'k' => match &self.callup {
                Some(callup) => Some(Action::CheckIn(callup.clone())),
                None => {
                    self.notice("no call-up to check in to");
                    None
                }
            },
            _ => None,
        }
    }

    fn key_choosing_reason(&mut self, key: KeyEvent, offer_id: OfferId, selected: usize) -> Option<Action> {
        let last = DECLINE_REASONS.len() - 1;
        let chosen = match key.code {
            KeyCode::Esc => return None,
            KeyCode::Up | KeyCode::Char('k') => {
                self.prompt = Prompt::DeclineReason { offer_id, selected: selected.saturating_sub(1) };
                return None;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.prompt = Prompt::DeclineReason { offer_id, selected: (selected + 1).min(last) };
                return None;
            }
            KeyCode::Enter => selected,
            KeyCode::Char(digit @ '1'..='5') => usize::from(digit as u8 - b'1'),
            _ => {
                self.prompt = Prompt::DeclineReason { offer_id, selected };
                return None;
            }
        };
        if chosen == last {
            self.prompt = Prompt::DeclineOther { offer_id, text: String::new() };
            return None;
        }
        Some(Action::Decline { offer_id, reason: DECLINE_REASONS[chosen].to_string() })
    }

    /// Text entry: characters and Backspace edit, Enter finishes, Esc cancels.
    fn key_typing(
        &mut self,
        key: KeyEvent,
        mut text: String,
        finish: impl FnOnce(String) -> Option<Action>,
        keep: impl FnOnce(String) -> Prompt,
    ) -> Option<Action> {
        match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => finish(text),
            KeyCode::Backspace => {
                text.pop();
                self.prompt = keep(text);
                None
            }
            KeyCode::Char(character) => {
                if text.chars().count() < MAX_TYPED {
                    text.push(character);
                }
                self.prompt = keep(text);
                None
            }
            _ => {
                self.prompt = keep(text);
                None
            }
        }
    }

    /// Whole seconds until the next connection attempt, when waiting for one.
    pub fn retry_in_s(&self) -> Option<i64> {
        match &self.connection {
            Connection::WaitingToRetry { retry_at_ms, .. } => Some((retry_at_ms.saturating_sub(self.now_ms).max(0) + 999) / 1000),
            _ => None,
        }
    }
}

/// "350 m" or "1.2 km".
pub fn distance_text(metres: f64) -> String {
    if metres < 1000.0 { format!("{metres:.0} m") } else { format!("{:.1} km", metres / 1000.0) }
}

/// "under a minute" or "about 4 min".
pub fn eta_text(eta: Duration) -> String {
    let seconds = eta.as_secs();
    if seconds < 60 { "under a minute".to_string() } else { format!("about {} min", seconds.div_ceil(60)) }
}

/// "4:05" left to answer, or "time is up".
pub fn countdown_text(offer: &Offer, now_ms: i64) -> String {
    let left = offer.time_left(now_ms).as_secs();
    if left == 0 { "time is up".to_string() } else { format!("{}:{:02}", left / 60, left % 60) }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyEventState;

    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent { code, modifiers: KeyModifiers::NONE, kind: KeyEventKind::Press, state: KeyEventState::NONE }
    }

    fn press(app: &mut App, code: KeyCode) -> Option<Action> {
        app.handle_key(key(code))
    }

    fn type_text(app: &mut App, text: &str) {
        for character in text.chars() {
            assert_eq!(press(app, KeyCode::Char(character)), None);
        }
    }

    pub(crate) fn sample_offer() -> Offer {
        Offer {
            offer_id: OfferId::new("inc-000001-o1"),
            incident_id: IncidentId::new("inc-000001"),
            category: "medical".to_string(),
            priority: 1,
            location: None,
            distance_m: 350.0,
            eta: Duration::from_secs(250),
            deadline_ms: 1_000_000 + 272_000,
            required_skills: vec!["first_aid".to_string()],
            description: "elderly man fell on the stairs".to_string(),
        }
    }

    fn app_with_offer() -> App {
        let mut app = App::new("p0001", "http://127.0.0.1:50051", "fixed point");
        app.apply(&AgentEvent::Offer(sample_offer()));
        app
    }

    #[test]
    fn a_accepts_the_offer_once() {
        let mut app = app_with_offer();
        let action = press(&mut app, KeyCode::Char('a'));
        assert_eq!(action, Some(Action::Accept(OfferId::new("inc-000001-o1"))));
        app.action_sent(&Action::Accept(OfferId::new("inc-000001-o1")));
        assert_eq!(press(&mut app, KeyCode::Char('a')), None, "a second accept is not sent");
    }

    #[test]
    fn keys_without_an_offer_or_assignment_only_explain() {
        let mut app = App::new("p0001", "server", "fixed point");
        for character in ['a', 'd', 'r', 'c'] {
            assert_eq!(press(&mut app, KeyCode::Char(character)), None);
        }
        assert_eq!(app.notices.len(), 4);
        assert_eq!(app.prompt, Prompt::None);
    }

    #[test]
    fn decline_with_a_reason_by_number_or_arrows() {
        let mut app = app_with_offer();
        assert_eq!(press(&mut app, KeyCode::Char('d')), None);
        assert!(matches!(app.prompt, Prompt::DeclineReason { selected: 0, .. }));
        assert_eq!(
            press(&mut app, KeyCode::Char('3')),
            Some(Action::Decline { offer_id: OfferId::new("inc-000001-o1"), reason: "lacking skill".to_string() })
        );
        assert_eq!(app.prompt, Prompt::None);

        let mut app = app_with_offer();
        press(&mut app, KeyCode::Char('d'));
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Up);
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Some(Action::Decline { offer_id: OfferId::new("inc-000001-o1"), reason: "busy".to_string() })
        );
    }

    #[test]
    fn decline_other_takes_typed_text_and_esc_cancels() {
        let mut app = app_with_offer();
        press(&mut app, KeyCode::Char('d'));
        press(&mut app, KeyCode::Char('5'));
        assert!(matches!(app.prompt, Prompt::DeclineOther { .. }));
        type_text(&mut app, "car brokee");
        press(&mut app, KeyCode::Backspace);
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Some(Action::Decline { offer_id: OfferId::new("inc-000001-o1"), reason: "other: car broke".to_string() })
        );

        let mut app = app_with_offer();
        press(&mut app, KeyCode::Char('d'));
        assert_eq!(press(&mut app, KeyCode::Esc), None);
        assert_eq!(app.prompt, Prompt::None);
        assert!(app.offer.is_some(), "cancelling keeps the offer");
    }

    #[test]
    fn a_withdrawn_offer_closes_the_decline_prompt() {
        let mut app = app_with_offer();
        press(&mut app, KeyCode::Char('d'));
        app.apply(&AgentEvent::OfferWithdrawn {
            offer_id: OfferId::new("inc-000001-o1"),
            incident_id: IncidentId::new("inc-000001"),
            reason: "the offer timed out".to_string(),
        });
        assert_eq!(app.prompt, Prompt::None);
        assert!(app.offer.is_none());
    }

    #[test]
    fn arrival_then_completion_with_feedback() {
        let mut app = app_with_offer();
        app.apply(&AgentEvent::AssignmentConfirmed(sample_offer()));
        assert!(app.offer.is_none());
        assert_eq!(app.status, pb::AgentStatus::Busy);
        let arrived = press(&mut app, KeyCode::Char('r'));
        assert_eq!(arrived, Some(Action::Arrived(IncidentId::new("inc-000001"))));
        app.action_sent(&Action::Arrived(IncidentId::new("inc-000001")));
        assert_eq!(press(&mut app, KeyCode::Char('r')), None, "arrival is reported once");

        assert_eq!(press(&mut app, KeyCode::Char('c')), None);
        assert_eq!(press(&mut app, KeyCode::Enter), None, "empty feedback is not sent");
        assert!(matches!(app.prompt, Prompt::Feedback { .. }));
        type_text(&mut app, "helped him up; ambulance not needed ");
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Some(Action::Completed {
                incident_id: IncidentId::new("inc-000001"),
                feedback: "helped him up; ambulance not needed".to_string()
            })
        );
    }

    #[test]
    fn typing_q_in_feedback_is_text_not_quit() {
        let mut app = app_with_offer();
        app.apply(&AgentEvent::AssignmentConfirmed(sample_offer()));
        press(&mut app, KeyCode::Char('c'));
        assert_eq!(press(&mut app, KeyCode::Char('q')), None);
        assert!(matches!(&app.prompt, Prompt::Feedback { text, .. } if text == "q"));
    }

    #[test]
    fn status_and_quit_keys() {
        let mut app = App::new("p0001", "server", "fixed point");
        assert_eq!(press(&mut app, KeyCode::Char('v')), Some(Action::SetStatus(pb::AgentStatus::Available)));
        assert_eq!(press(&mut app, KeyCode::Char('o')), Some(Action::SetStatus(pb::AgentStatus::OffDuty)));
        assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Action::Quit));
        let control_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        press(&mut app, KeyCode::Char('d'));
        assert_eq!(app.handle_key(control_c), Some(Action::Quit));
        let release = KeyEvent { kind: KeyEventKind::Release, ..key(KeyCode::Char('q')) };
        assert_eq!(app.handle_key(release), None);
    }

    #[test]
    fn connection_lost_counts_down_to_the_retry() {
        let mut app = App::new("p0001", "server", "fixed point");
        app.now_ms = 10_000;
        app.apply(&AgentEvent::ConnectionLost {
            error: "connection refused".to_string(),
            retry_in: Duration::from_millis(3_600),
        });
        assert_eq!(app.retry_in_s(), Some(4));
        app.now_ms = 13_000;
        assert_eq!(app.retry_in_s(), Some(1));
        app.now_ms = 20_000;
        assert_eq!(app.retry_in_s(), Some(0));
    }

    #[test]
    fn a_repeated_notice_counts_up_instead_of_filling_the_pane() {
        let mut app = App::new("p0001", "server", "fixed point");
        let lost = AgentEvent::ConnectionLost { error: "connection refused".to_string(), retry_in: Duration::from_secs(1) };
        for _ in 0..3 {
            app.apply(&lost);
        }
        app.notice("reconnected");
        assert_eq!(app.notices, ["connection lost: connection refused (3 times)", "reconnected"]);
    }

    #[test]
    fn f_opens_a_field_report_prompt_that_needs_category_and_text() {
        let mut app = App::new("p0001", "server", "fixed point");
        assert_eq!(press(&mut app, KeyCode::Char('f')), None);
        assert_eq!(app.prompt, Prompt::FieldReport { text: String::new() });
        type_text(&mut app, "water over the road");
        assert_eq!(press(&mut app, KeyCode::Enter), None, "no category yet");
        assert!(app.notices.back().is_some_and(|notice| notice.contains("category: text")), "{:?}", app.notices);
        assert!(matches!(app.prompt, Prompt::FieldReport { .. }), "the prompt stays open");
        for _ in 0.."water over the road".len() {
            press(&mut app, KeyCode::Backspace);
        }
        type_text(&mut app, "Flooding: 积水没过脚踝 ");
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Some(Action::FieldReport { category: "Flooding".to_string(), text: "积水没过脚踝".to_string() })
        );
        assert_eq!(app.prompt, Prompt::None);
        // 'q' in the prompt is text; Esc cancels.
        press(&mut app, KeyCode::Char('f'));
        assert_eq!(press(&mut app, KeyCode::Char('q')), None);
        assert_eq!(press(&mut app, KeyCode::Esc), None);
        assert_eq!(app.prompt, Prompt::None);
    }

    #[test]
    fn h_asks_before_sending_help_and_s_checks_in_safe_only_on_an_assignment() {
        let mut app = App::new("p0001", "server", "fixed point");
        assert_eq!(press(&mut app, KeyCode::Char('h')), None, "the first press only asks");
        assert_eq!(app.prompt, Prompt::ConfirmHelp);
        assert_eq!(press(&mut app, KeyCode::Char('x')), None, "any other key cancels (a pocket press)");
        assert_eq!(app.prompt, Prompt::None);
        press(&mut app, KeyCode::Char('h'));
        assert_eq!(press(&mut app, KeyCode::Enter), Some(Action::Help));
        press(&mut app, KeyCode::Char('!'));
        assert_eq!(press(&mut app, KeyCode::Char('y')), Some(Action::Help));

        assert_eq!(press(&mut app, KeyCode::Char('s')), None, "no assignment, no check-in");
        app.apply(&AgentEvent::AssignmentConfirmed(sample_offer()));
        app.apply(&AgentEvent::SafetyCheckDue {
            incident_id: "inc-000001".into(),
            due_ms: 1_600_000,
            interval_s: 600,
            misses: 0,
        });
        assert_eq!(app.safety_due, Some((1_600_000, 0)));
        assert_eq!(press(&mut app, KeyCode::Char('s')), Some(Action::SafetyCheckIn));
        app.apply(&AgentEvent::SafetyCheckDue {
            incident_id: "inc-000001".into(),
            due_ms: 2_200_000,
            interval_s: 600,
            misses: 1,
        });
        assert!(app.notices.back().is_some_and(|notice| notice.contains("MISSED")), "{:?}", app.notices);
    }

    #[test]
    fn k_checks_in_to_the_call_up() {
        let mut app = App::new("p0001", "server", "fixed point");
        assert_eq!(press(&mut app, KeyCode::Char('k')), None);
        app.apply(&AgentEvent::CallUp {
            callup_id: "callup-0001".to_string(),
            area_id: "d1".to_string(),
            reason: "台风".to_string(),
            deadline_ms: 1_800_000,
        });
        assert_eq!(press(&mut app, KeyCode::Char('k')), Some(Action::CheckIn("callup-0001".to_string())));
        app.action_sent(&Action::CheckIn("callup-0001".to_string()));
        assert_eq!(app.callup, None);
        assert_eq!(press(&mut app, KeyCode::Char('k')), None);
    }

    #[test]
    fn field_reports_read_category_then_text() {
        assert_eq!(parse_field_report("flooding:water at gate 3"), Ok(("flooding".to_string(), "water at gate 3".to_string())));
        assert_eq!(parse_field_report(" fire ： 浓烟 "), Ok(("fire".to_string(), "浓烟".to_string())));
        assert_eq!(parse_field_report("road: blocked: tree down"), Ok(("road".to_string(), "blocked: tree down".to_string())));
        assert!(parse_field_report("no colon").unwrap_err().contains("category: text"));
        assert!(parse_field_report(": text").unwrap_err().contains("category"));
        assert!(parse_field_report("flooding:  ").unwrap_err().contains("flooding"));
    }

    #[test]
    fn texts() {
        assert_eq!(distance_text(349.6), "350 m");
        assert_eq!(distance_text(1250.0), "1.2 km");
        assert_eq!(eta_text(Duration::from_secs(30)), "under a minute");
        assert_eq!(eta_text(Duration::from_secs(250)), "about 5 min");
        assert_eq!(countdown_text(&sample_offer(), 1_000_000), "4:32");
        assert_eq!(countdown_text(&sample_offer(), 2_000_000), "time is up");
    }
}
