//! Deciding: a command is checked against the state and either refused with a
//! reason (nothing changes) or turned into the events it causes.

use std::collections::BTreeSet;

use super::{Command, Engine, Rejection};
use crate::accounts::{AgentTokenHash, Operator, OperatorRole, TokenStanding, check_operator_name, check_token_lifetime};
use crate::areas::{AreaLevel, Placement};
use crate::event::{EventKind, WithdrawReason};
use crate::ids::{AgentId, AreaId, IncidentId, Millis, check_id, quote};
use crate::incident::IncidentSpec;
use crate::policy::Mode;
use crate::roster::{AgentStatus, check_name, check_profile, check_skills};
use crate::spatial::Position;

const MAX_HEADCOUNT: u32 = 500;
/// The longest free text a client may send: a description, a reason,
/// feedback, a field report (docs/security.md#input-limits).
const MAX_TEXT_CHARS: usize = 2000;

fn invalid(message: String) -> Rejection {
    Rejection::InvalidArgument(message)
}

/// A map refused: an id used twice already exists, anything else is invalid.
fn map_rejection(message: String) -> Rejection {
    if message.contains("twice") { Rejection::AlreadyExists(message) } else { invalid(message) }
}

/// Free text: at most 2,000 characters, no control characters but line
/// breaks and tabs.
pub(crate) fn check_text(what: &str, text: &str, required: bool) -> Result<(), Rejection> {
    if required && text.trim().is_empty() {
        return Err(invalid(format!("{what} is empty; say it in a few words")));
    }
    let length = text.chars().count();
    if length > MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "{what} is {length} characters long; at most {MAX_TEXT_CHARS} characters are allowed: shorten it"
        )));
    }
    if let Some(control) = text.chars().find(|character| character.is_control() && !matches!(character, '\n' | '\r' | '\t')) {
        return Err(invalid(format!("{what} has a control character ({control:?}); remove it (line breaks and tabs are fine)")));
    }
    Ok(())
}

impl Engine {
    pub(super) fn decide(&self, command: &Command, now: Millis) -> Result<Vec<EventKind>, Rejection> {
        self.check_scope(command)?;
        match command {
            Command::ImportAreas(import) => {
                self.state.areas.validate_import(import).map_err(map_rejection)?;
                Ok(vec![EventKind::AreasImported { import: import.clone() }])
            }
            Command::ReplaceAreas(import) => {
                self.state.areas.validate_replacement(import).map_err(map_rejection)?;
                let diff = self.state.areas.diff(import, true);
                self.check_retirement(&diff.retired)?;
                let mut events = vec![EventKind::AreasImported { import: import.clone() }];
                if !diff.retired.is_empty() || !diff.service_centres_removed.is_empty() {
                    events.push(EventKind::AreasRetired { areas: diff.retired, service_centres: diff.service_centres_removed });
                }
                Ok(events)
            }
            Command::RetireArea { area, with_children } => {
                if !self.state.areas.contains(area) {
                    return Err(Rejection::NotFound(format!(
                        "area {} is not on the map (it may be retired already); see `pingji areas list`",
                        quote(area)
                    )));
                }
                let areas: Vec<AreaId> = self.state.areas.area_and_descendants(area).into_iter().cloned().collect();
                if areas.len() > 1 && !with_children {
                    return Err(Rejection::FailedPrecondition(format!(
                        "area {area} has {} areas below it ({}{}); retire them with it (--with-children), or import \
                         a map without them (--replace)",
                        areas.len() - 1,
                        areas[1..].iter().take(3).map(|id| id.as_str()).collect::<Vec<_>>().join(", "),
                        if areas.len() > 4 { ", …" } else { "" }
                    )));
                }
                self.check_retirement(&areas)?;
                let service_centres = self
                    .state
                    .areas
                    .service_centres()
                    .filter(|centre| areas.contains(&centre.area))
                    .map(|centre| centre.id.clone());
                Ok(vec![EventKind::AreasRetired { service_centres: service_centres.collect(), areas }])
            }
            Command::UpsertAgents { agents, all_new, tokens } => {
                let mut seen = BTreeSet::new();
                for profile in agents {
                    check_profile(profile).map_err(|problem| match profile.id.as_str() {
                        "" => invalid(format!("agent {problem}")),
                        id => invalid(format!("agent {}: {problem}", quote(id))),
                    })?;
                    if !seen.insert(&profile.id) {
                        return Err(Rejection::AlreadyExists(format!(
                            "agent {} appears twice in the request; give each person once",
                            profile.id
                        )));
                    }
                    if *all_new && self.state.agents.contains_key(&profile.id) {
                        return Err(Rejection::AlreadyExists(format!(
                            "agent {} is already on the roster; use UpsertAgent to change them or remove the row",
                            profile.id
                        )));
                    }
                    if let Some(home) = &profile.home_area
                        && !self.state.areas.contains(home)
                    {
                        return Err(Rejection::NotFound(format!(
                            "agent {} has home area {} which is not on the map; import the areas first or fix the id",
                            profile.id,
                            quote(home)
                        )));
                    }
                    if let Some(home) = profile.home {
                        Position::checked(home.lon, home.lat)
                            .map_err(|message| invalid(format!("agent {} home location: {message}", profile.id)))?;
                    }
                }
                if agents.is_empty() {
                    return Err(invalid("no agents given; send at least one".to_string()));
                }
                // Only people new to the roster get a token here; the others
                // keep theirs (a rotation is its own command).
                let new_people: BTreeSet<&AgentId> =
                    agents.iter().map(|profile| &profile.id).filter(|id| !self.state.agents.contains_key(*id)).collect();
                let tokens: Vec<_> = tokens.iter().filter(|token| new_people.contains(&token.agent)).cloned().collect();
                let mut events = vec![EventKind::AgentsUpserted { agents: agents.clone() }];
                if !tokens.is_empty() {
                    events.push(EventKind::AgentTokensIssued { tokens });
                }
                Ok(events)
            }
            Command::CreateIncident { id, spec, force } => self.decide_create_incident(id.as_ref(), spec, *force),
            Command::CancelIncident { incident, reason } => {
                check_text("the cancellation reason", reason, true)?;
                let open = self.open_incident(incident)?;
                Ok(Self::ending_events(open, |released| EventKind::IncidentCancelled {
                    incident: incident.clone(),
                    reason: reason.clone(),
                    released,
                }))
            }
            Command::CloseIncident { incident, feedback } => {
                check_text("the feedback", feedback, true)?;
                let open = self.open_incident(incident)?;
                Ok(Self::ending_events(open, |released| EventKind::IncidentClosed {
                    incident: incident.clone(),
                    feedback: feedback.clone(),
                    released,
                }))
            }
            Command::SetMode { area, mode, reason } => {
                check_text("the reason for the switch", reason, true)?;
                if !self.state.areas.contains(area) {
                    return Err(Rejection::NotFound(format!(
                        "area {} is not on the map; list areas to find its id",
                        quote(area)
                    )));
                }
                let previous = self.state.modes.get(area).map_or(Mode::Normal, |setting| setting.mode);
                if previous == *mode {
                    return Err(Rejection::FailedPrecondition(format!("area {area} is already in {} mode", mode.name())));
                }
                Ok(vec![EventKind::ModeSwitched { area: area.clone(), mode: *mode, previous, reason: reason.clone() }])
            }
            Command::SetStatus { agent, status } => {
                let record = self.known_agent(agent)?;
                if record.status == *status {
                    return Ok(vec![]);
                }
                if let Some(incident) = &record.current_incident
                    && *status != AgentStatus::Busy
                {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {agent} holds an assignment on incident {incident}; report completion first, or ask an operator to release you"
                    )));
                }
                let mut events = Vec::new();
                if let Some((offer, incident)) = &record.open_offer {
                    events.push(EventKind::OfferWithdrawn {
                        offer: offer.clone(),
                        incident: incident.clone(),
                        agent: agent.clone(),
                        reason: WithdrawReason::Unavailable,
                    });
                }
                events.push(EventKind::AgentStatusChanged { agent: agent.clone(), status: *status });
                Ok(events)
            }
            Command::BorderReserve(_)
            | Command::BorderConfirm { .. }
            | Command::BorderRelease { .. }
            | Command::ExpireBorderReservations
            | Command::BorderOffer { .. }
            | Command::BorderWithdraw { .. }
            | Command::BorderAnswer { .. } => self.decide_border(command, now),
            Command::Accept { .. } | Command::Decline { .. } if self.answer_border_offer(command).is_some() => {
                Ok(self.answer_border_offer(command).into_iter().collect())
            }
            Command::Accept { agent, offer } => {
                let record = self.known_agent(agent)?;
                let Some((open_offer, incident)) = record.open_offer.as_ref().filter(|(open, _)| open == offer) else {
                    return Err(Rejection::OfferNotOpen(format!(
                        "offer {} is not open for agent {agent} (it expired, was withdrawn or was already answered); wait for a new offer",
                        quote(offer)
                    )));
                };
                if let Some(holding) = &record.current_incident {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {agent} already holds an assignment on incident {holding}; complete it first"
                    )));
                }
                Ok(vec![EventKind::Assigned { offer: open_offer.clone(), incident: incident.clone(), agent: agent.clone() }])
            }
            Command::Decline { agent, offer, reason } => {
                check_text("the decline reason", reason, false)?;
                let record = self.known_agent(agent)?;
                let Some((open_offer, incident)) = record.open_offer.as_ref().filter(|(open, _)| open == offer) else {
                    return Err(Rejection::OfferNotOpen(format!(
                        "offer {} is not open for agent {agent} (it expired, was withdrawn or was already answered); nothing to decline",
                        quote(offer)
                    )));
                };
                Ok(vec![EventKind::OfferDeclined {
                    offer: open_offer.clone(),
                    incident: incident.clone(),
                    agent: agent.clone(),
                    reason: reason.clone(),
                }])
            }
            Command::Arrive { agent, incident } => {
                let assignment = self.held_assignment(agent, incident)?;
                if assignment.arrived_at.is_some() {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {agent} already reported arrival at incident {incident}"
                    )));
                }
                Ok(vec![EventKind::AgentArrived { incident: incident.clone(), agent: agent.clone() }])
            }
            Command::Complete { agent, incident, feedback, photo_refs } => {
                check_text("the feedback", feedback, true)?;
                Engine::check_photo_refs(photo_refs)?;
                self.held_assignment(agent, incident)?;
                let mut events = vec![EventKind::AssignmentCompleted {
                    incident: incident.clone(),
                    agent: agent.clone(),
                    feedback: feedback.clone(),
                    photo_refs: photo_refs.clone(),
                }];
                let record = &self.state.incidents[incident];
                let others_done = record.assignments.iter().all(|a| &a.agent == agent || a.completed_at.is_some());
                if record.still_needed() == 0 && others_done {
                    let mut all_feedback: Vec<String> = record
                        .assignments
                        .iter()
                        .filter(|a| &a.agent != agent)
                        .filter_map(|a| a.feedback.as_ref().map(|text| format!("{}: {text}", a.agent)))
                        .collect();
                    all_feedback.push(format!("{agent}: {feedback}"));
                    events.push(EventKind::IncidentClosed {
                        incident: incident.clone(),
                        feedback: all_feedback.join("\n"),
                        released: vec![],
                    });
                }
                Ok(events)
            }
            Command::ImportPlans(plans) => self.decide_import_plans(plans),
            Command::ActivatePlan { plan, area, reason } => {
                check_text("the reason for activating the plan", reason, true)?;
                self.decide_activate(plan, area)?;
                // The tasks are created in `react`: their ids follow one another.
                Ok(vec![])
            }
            Command::DeactivatePlan { activation, reason } => {
                self.decide_deactivate(activation, reason)?;
                Ok(vec![])
            }
            Command::CallUp { area, roles, reason, deadline_s } => self.decide_callup(area, roles, reason, *deadline_s, now),
            Command::CheckIn { agent, callup } => self.decide_check_in(agent, callup.as_ref(), now, true),
            Command::CheckInByReply { agent, callup } => self.decide_check_in(agent, callup.as_ref(), now, false),
            Command::RecordNotice(step) => {
                self.known_agent(&step.agent)?;
                check_text("the notice detail", &step.detail, false)?;
                Ok(vec![EventKind::Notified(step.clone())])
            }
            Command::RecordInboundRefused { gateway, reason } => {
                check_text("the refusal reason", reason, true)?;
                Ok(vec![EventKind::InboundRefused { gateway: gateway.clone(), reason: reason.clone() }])
            }
            Command::FieldReport { agent, at, category, text, photo_ref, photo_refs } => {
                self.decide_field_report(agent, *at, category, text, photo_ref, photo_refs)
            }
            Command::TriageAccept { incident, priority, headcount, skills } => {
                self.decide_triage_accept(incident, *priority, *headcount, skills.as_ref())
            }
            Command::TriageMerge { incident, into } => self.decide_triage_merge(incident, into),
            Command::MergeIncidents { incident, into } => self.decide_merge(incident, into),
            Command::ReportDuplicate { id, spec, into } => self.decide_report_duplicate(id.as_ref(), spec, into),
            Command::TriageReject { incident, reason } => self.decide_triage_reject(incident, reason),
            Command::IssueAgentToken { agent, token_hash } => {
                if !self.state.agents.contains_key(agent) {
                    return Err(Rejection::NotFound(format!(
                        "agent {} is not on the roster; list agents to find the id",
                        quote(agent)
                    )));
                }
                let token = AgentTokenHash { agent: agent.clone(), token_hash: token_hash.clone() };
                Ok(vec![EventKind::AgentTokensIssued { tokens: vec![token] }])
            }
            Command::IssueAgentTokens { tokens, replace } => {
                let strangers: Vec<&AgentId> =
                    tokens.iter().map(|token| &token.agent).filter(|agent| !self.state.agents.contains_key(*agent)).collect();
                if let Some(first) = strangers.first() {
                    return Err(Rejection::NotFound(format!(
                        "agent {} is not on the roster{}; list agents to find the ids, nobody got a token",
                        quote(first),
                        match strangers.len() {
                            1 => String::new(),
                            more => format!(" (nor are {} others)", more - 1),
                        }
                    )));
                }
                let mut seen = BTreeSet::new();
                let tokens: Vec<AgentTokenHash> = tokens
                    .iter()
                    .filter(|token| seen.insert(token.agent.clone()))
                    .filter(|token| *replace || !self.state.agent_tokens.contains_key(&token.agent))
                    .cloned()
                    .collect();
                if tokens.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![EventKind::AgentTokensIssued { tokens }])
            }
            Command::AddOperator { name, role, token_hash, lifetime_ms } => {
                check_operator_name(name).map_err(invalid)?;
                check_token_lifetime(*lifetime_ms).map_err(invalid)?;
                if self.state.operators.contains_key(name) {
                    return Err(Rejection::AlreadyExists(format!(
                        "operator {name} already exists; rotate their token, or remove them first to change the role"
                    )));
                }
                Ok(vec![EventKind::OperatorAdded {
                    name: name.clone(),
                    role: *role,
                    token_hash: token_hash.clone(),
                    expires_at: Some(Millis(now.0.saturating_add(*lifetime_ms))),
                }])
            }
            Command::RotateOperatorToken { name, token_hash, lifetime_ms } => {
                self.existing_operator(name)?;
                check_token_lifetime(*lifetime_ms).map_err(invalid)?;
                Ok(vec![EventKind::OperatorTokenRotated {
                    name: name.clone(),
                    token_hash: token_hash.clone(),
                    expires_at: Some(Millis(now.0.saturating_add(*lifetime_ms))),
                }])
            }
            Command::RevokeOperatorToken { name } => {
                let operator = self.existing_operator(name)?;
                if let TokenStanding::Revoked { at } = operator.token_standing(now) {
                    return Err(Rejection::FailedPrecondition(format!(
                        "operator {name}'s token was revoked already (at {at}); issue them a new one if they need it"
                    )));
                }
                let working_admins = self
                    .state
                    .operators
                    .values()
                    .filter(|operator| {
                        operator.role == OperatorRole::Admin && operator.token_standing(now) == TokenStanding::Works
                    })
                    .count();
                if operator.role == OperatorRole::Admin
                    && operator.token_standing(now) == TokenStanding::Works
                    && working_admins == 1
                {
                    return Err(Rejection::FailedPrecondition(format!(
                        "{name} holds the last admin token that works; add another admin first, or nobody could manage \
                         accounts"
                    )));
                }
                Ok(vec![EventKind::OperatorTokenRevoked { name: name.clone() }])
            }
            Command::RemoveOperator { name } => {
                let operator = self.existing_operator(name)?;
                let admins = self.state.operators.values().filter(|operator| operator.role == OperatorRole::Admin).count();
                if operator.role == OperatorRole::Admin && admins == 1 {
                    return Err(Rejection::FailedPrecondition(format!(
                        "{name} is the last admin; add another admin first, or nobody could manage accounts"
                    )));
                }
                Ok(vec![EventKind::OperatorRemoved { name: name.clone() }])
            }
            Command::SendMessage { to, text } => self.decide_send_message(to, text),
            Command::ReplyToMessage { agent, message, text } => self.decide_reply(agent, message, text),
            Command::MarkMessageRead { agent, message } => self.decide_read(agent, message),
            Command::RecordRead { rpc, subject, people } => {
                Ok(vec![EventKind::PersonalDataRead { rpc: rpc.clone(), subject: subject.clone(), people: *people }])
            }
            Command::ReceiveCapAlert { .. } | Command::ApproveCapSuggestion { .. } | Command::DismissCapSuggestion { .. } => {
                self.decide_cap(command)
            }
            Command::SafetyCheckIn { agent } => self.decide_safety_check_in(agent),
            Command::RequestHelp { agent, at, text } => {
                // A dry run only: `execute` carries it out (it reports an
                // incident with an id of its own, then tells the team).
                self.check_help(agent, *at, text)?;
                Ok(Vec::new())
            }
            Command::Supplies(supply) => self.decide_supplies(supply),
            Command::Rosters(roster) => self.decide_rosters(roster, now),
            Command::Shelters(shelter) => self.decide_shelters(shelter),
            Command::Connect { .. } | Command::Disconnect { .. } | Command::ReportLocation { .. } => {
                debug_assert!(false, "soft commands change live state only and are not decided");
                Ok(vec![])
            }
        }
    }

    fn existing_operator(&self, name: &str) -> Result<&Operator, Rejection> {
        self.state.operators.get(name).ok_or_else(|| {
            Rejection::NotFound(format!("operator {} does not exist; list operators to find the name", quote(name)))
        })
    }

    pub(super) fn decide_create_incident(
        &self,
        id: Option<&IncidentId>,
        spec: &IncidentSpec,
        force: bool,
    ) -> Result<Vec<EventKind>, Rejection> {
        let at = Position::checked(spec.at.lon, spec.at.lat).map_err(invalid)?;
        if spec.category.trim().is_empty() {
            return Err(invalid("category is empty; give one such as fire, flood, medical, elder_care".to_string()));
        }
        check_name("the category", &spec.category).map_err(invalid)?;
        check_text("the description", &spec.description, false)?;
        check_skills(&spec.skills).map_err(invalid)?;
        if !(1..=4).contains(&spec.priority) {
            return Err(invalid(format!("priority {} is out of range; use 1 (most urgent) to 4", spec.priority)));
        }
        if spec.headcount == 0 || spec.headcount > MAX_HEADCOUNT {
            return Err(invalid(format!("headcount {} is out of range; ask for 1 to {MAX_HEADCOUNT} people", spec.headcount)));
        }
        let incident = match id {
            Some(id) => {
                check_id("incident id", id.as_str()).map_err(invalid)?;
                if self.state.incidents.contains_key(id) {
                    return Err(Rejection::AlreadyExists(format!(
                        "incident {id} already exists; choose another id or leave it empty"
                    )));
                }
                id.clone()
            }
            None => self.next_incident_id(),
        };
        if !spec.source_id.is_empty() {
            check_text("the source id", &spec.source_id, false)?;
            // Only imports carry a source id, so a scan here is rare.
            if let Some(existing) = self.state.incidents.values().find(|known| known.spec.source_id == spec.source_id) {
                return Err(Rejection::AlreadyExists(format!(
                    "the source incident {} was imported before as incident {}; read that one instead",
                    quote(&spec.source_id),
                    existing.id
                )));
            }
        }
        let placement = self.state.areas.place(at);
        if let Some(district) = self.other_district(placement.at(AreaLevel::District)) {
            return Err(other_shard(district, "the incident's location", self.scope.as_ref()));
        }
        if !force {
            self.check_reachable(at, &placement, &spec.skills)?;
        }
        let scope = match placement.deepest() {
            Some(deepest) => deepest.min(AreaLevel::Grid),
            None => AreaLevel::City,
        };
        let spec = IncidentSpec { at, ..spec.clone() };
        Ok(vec![EventKind::IncidentReported { incident, spec, placement, scope, activation: None }])
    }

    /// Refuses what is almost always a typing mistake, which would leave an
    /// incident waiting that nobody is ever offered: a place outside every
    /// area of the map (lon and lat swapped, a point in another city), and
    /// a skill nobody on the roster has (misspelt). A map with no areas yet
    /// places nothing, so there is no "outside" to refuse. The operator can
    /// report it anyway with `force`.
    fn check_reachable(&self, at: Position, placement: &Placement, skills: &BTreeSet<String>) -> Result<(), Rejection> {
        const ANYWAY: &str = "or, to report it anyway, pass --force (force: true in the request)";
        if placement.deepest().is_none()
            && let Some((south_west, north_east)) = self.state.areas.bounds()
        {
            return Err(Rejection::InvalidField {
                field: "location",
                message: format!(
                    "location {:.5},{:.5} is outside every area of the map (which spans lon {:.3} to {:.3}, lat {:.3} \
                     to {:.3}), so it is in no grid and nobody would be offered it; check the point (LON,LAT: longitude \
                     first), {ANYWAY}",
                    at.lon, at.lat, south_west.lon, north_east.lon, south_west.lat, north_east.lat
                ),
            });
        }
        let unknown: Vec<String> = skills
            .iter()
            .filter(|skill| !self.skills.knows(skill))
            .map(|skill| {
                let nearest = self.skills.nearest(skill, 3);
                if nearest.is_empty() {
                    format!("{skill:?}")
                } else {
                    format!("{skill:?} (nearest known: {})", nearest.join(", "))
                }
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let noun = if unknown.len() == 1 { "skill" } else { "skills" };
        let message = if self.state.agents.is_empty() {
            format!("the roster is empty, so nobody has the {noun} {}; add people first, {ANYWAY}", unknown.join(", "))
        } else {
            format!("nobody on the roster has the {noun} {}; check the spelling, {ANYWAY}", unknown.join(", "))
        };
        Err(Rejection::InvalidField { field: "required_skills", message })
    }

    /// `inc-000042`; in a district shard `d1-inc-000042`, so that ids made
    /// by different shards never meet.
    pub(super) fn next_incident_id(&self) -> IncidentId {
        let prefix = self.scope.as_ref().map(|district| format!("{district}-")).unwrap_or_default();
        let mut number = self.state.incidents_reported + 1;
        loop {
            let id = IncidentId::new(format!("{prefix}inc-{number:06}"));
            if !self.state.incidents.contains_key(&id) {
                return id;
            }
            number += 1;
        }
    }

    /// `district` when this engine serves another one.
    fn other_district(&self, district: Option<&AreaId>) -> Option<AreaId> {
        let scope = self.scope.as_ref()?;
        district.filter(|district| *district != scope).cloned()
    }

    /// In a district shard, refuses switches, plans and call-ups of another
    /// district's areas, and people who live in another district. (Incidents
    /// are checked where their place is found.) Areas off the map and people
    /// without a home area are left to the usual checks.
    /// Areas in emergency are not retired: their command would lose its area.
    fn check_retirement(&self, areas: &[AreaId]) -> Result<(), Rejection> {
        for area in areas {
            if let Some(setting) = self.state.modes.get(area)
                && setting.mode.is_emergency()
            {
                return Err(Rejection::FailedPrecondition(format!(
                    "area {area} is in {}; switch it back to normal before retiring it",
                    setting.mode.name()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn check_scope(&self, command: &Command) -> Result<(), Rejection> {
        if self.scope.is_none() {
            return Ok(());
        }
        let district_of = |area: &AreaId| self.state.areas.placement_of_area(area).at(AreaLevel::District).cloned();
        match command {
            Command::SetMode { area, .. } | Command::ActivatePlan { area, .. } | Command::CallUp { area, .. } => {
                match self.other_district(district_of(area).as_ref()) {
                    Some(district) => Err(other_shard(district, &format!("area {area}"), self.scope.as_ref())),
                    None => Ok(()),
                }
            }
            Command::UpsertAgents { agents, .. } => {
                let outside: Vec<(&AgentId, AreaId)> = agents
                    .iter()
                    .filter_map(|profile| {
                        let district = profile.home_area.as_ref().and_then(district_of);
                        self.other_district(district.as_ref()).map(|district| (&profile.id, district))
                    })
                    .collect();
                let Some((first, district)) = outside.first() else {
                    return Ok(());
                };
                if outside.len() == agents.len() && outside.iter().all(|(_, other)| other == district) {
                    return Err(other_shard(
                        district.clone(),
                        &format!("the home of agent {}", quote(first)),
                        self.scope.as_ref(),
                    ));
                }
                let named: Vec<String> =
                    outside.iter().take(5).map(|(id, district)| format!("{} ({district})", quote(id))).collect();
                let more = outside.len().saturating_sub(named.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                Err(Rejection::FailedPrecondition(format!(
                    "{}{more} live in other districts, which this dispatcher (shard {}) does not serve; nothing was \
                     changed: add each district's people at its own shard (pingji --shard DISTRICT roster import FILE \
                     takes the whole file and keeps that district's people)",
                    named.join(", "),
                    self.scope.as_ref().map_or("", |scope| scope.as_str()),
                )))
            }
            _ => Ok(()),
        }
    }

    fn known_agent(&self, agent: &AgentId) -> Result<&crate::roster::AgentRecord, Rejection> {
        self.state
            .agents
            .get(agent)
            .ok_or_else(|| Rejection::NotFound(format!("agent {} is not on the roster; check the id", quote(agent))))
    }

    pub(super) fn open_incident(&self, incident: &IncidentId) -> Result<&crate::incident::Incident, Rejection> {
        let record = self.state.incidents.get(incident).ok_or_else(|| {
            Rejection::NotFound(format!("incident {} does not exist; list incidents to find its id", quote(incident)))
        })?;
        match record.ending {
            None => Ok(record),
            Some(_) => {
                let status = record.status().name();
                Err(Rejection::FailedPrecondition(format!(
                    "incident {incident} is already {status}; a {status} incident cannot be changed, create a new one if needed"
                )))
            }
        }
    }

    fn held_assignment(&self, agent: &AgentId, incident: &IncidentId) -> Result<&crate::incident::AssignmentRecord, Rejection> {
        // A person of another district's shard, assigned here across the
        // border: their home shard forwards their reports (not on this
        // roster, so held by the incident's record alone).
        if !self.state.agents.contains_key(agent)
            && let Some(held) = self
                .state
                .incidents
                .get(incident)
                .filter(|record| self.state.open_incidents.contains(&record.id))
                .and_then(|record| record.assignment_of(agent))
                .filter(|held| held.completed_at.is_none())
        {
            return Ok(held);
        }
        let record = self.known_agent(agent)?;
        if record.current_incident.as_ref() != Some(incident) {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {agent} holds no assignment on incident {}; only the assigned person can report on it",
                quote(incident)
            )));
        }
        let incident_record = self.open_incident(incident)?;
        incident_record.assignment_of(agent).ok_or_else(|| {
            Rejection::FailedPrecondition(format!("agent {agent} holds no assignment on incident {}", quote(incident)))
        })
    }

    /// Ending an incident: its open offers are withdrawn, then `ending` (a
    /// cancellation or a closing) releases the people still assigned.
    pub(super) fn ending_events(
        incident: &crate::incident::Incident,
        ending: impl FnOnce(Vec<AgentId>) -> EventKind,
    ) -> Vec<EventKind> {
        let mut events: Vec<EventKind> = incident
            .open_offers
            .values()
            .map(|offer| EventKind::OfferWithdrawn {
                offer: offer.id.clone(),
                incident: incident.id.clone(),
                agent: offer.agent.clone(),
                reason: WithdrawReason::IncidentEnded,
            })
            .collect();
        let released = incident.assignments.iter().filter(|a| a.completed_at.is_none()).map(|a| a.agent.clone()).collect();
        events.push(ending(released));
        events
    }
}

/// `what` is in `district`, which another shard serves.
fn other_shard(district: AreaId, what: &str, scope: Option<&AreaId>) -> Rejection {
    let mine = scope.map_or("", |scope| scope.as_str());
    Rejection::OtherShard {
        message: format!(
            "{what} is in district {district}, which shard {district} serves; this dispatcher serves shard {mine}: \
             send it to shard {district}'s owner (the Pingji clients follow x-pingji-owner there by themselves)"
        ),
        shard: district.to_string(),
    }
}
