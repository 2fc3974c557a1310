//! CAP in the engine: the alerts a public plan's activation, a later
//! switch of its area and its end issue (Alert, Update, Cancel), and the
//! suggestions made of received alerts, approved (switching and activating
//! through the same steps as `SetMode` and `ActivatePlan`) or dismissed.

use super::decide::check_text;
use super::mobilise::PlanStart;
use super::{Command, Engine, Rejection};
use crate::cap::{
    self, CapMsgType, CapReference, CapSuggestion, CapSuggestionSpec, IssuedCapAlert, ReceivedCapAlert, SuggestionState,
};
use crate::event::{Event, EventKind};
use crate::ids::{ActivationId, AreaId, Millis, PlanId, quote};
use crate::plans::PlanSpec;
use crate::policy::Mode;

/// Received alerts with these statuses become suggestions; Test, System
/// and Draft are journaled only.
const SUGGESTING_STATUSES: [&str; 2] = ["Actual", "Exercise"];

impl Engine {
    pub(super) fn decide_cap(&self, command: &Command) -> Result<Vec<EventKind>, Rejection> {
        match command {
            Command::ReceiveCapAlert { alert } => self.decide_receive(alert),
            Command::ApproveCapSuggestion { suggestion } => {
                let pending = self.pending_suggestion(suggestion)?;
                if let Some(plan) = &pending.spec.plan
                    && !self.state.plans.contains_key(plan)
                {
                    return Err(Rejection::FailedPrecondition(format!(
                        "suggestion {suggestion} names plan {plan}, which is no longer imported; dismiss it and switch by hand"
                    )));
                }
                if let Some(missing) = pending.spec.areas.iter().find(|area| !self.state.areas.contains(area)) {
                    return Err(Rejection::FailedPrecondition(format!(
                        "suggestion {suggestion} names area {missing}, which is no longer on the map; dismiss it and switch by hand"
                    )));
                }
                Ok(vec![EventKind::CapSuggestionApproved { suggestion: suggestion.clone() }])
            }
            Command::DismissCapSuggestion { suggestion, reason } => {
                check_text("the reason for dismissing", reason, false)?;
                self.pending_suggestion(suggestion)?;
                Ok(vec![EventKind::CapSuggestionDismissed { suggestion: suggestion.clone(), reason: reason.trim().to_string() }])
            }
            _ => Ok(vec![]),
        }
    }

    fn pending_suggestion(&self, id: &str) -> Result<&CapSuggestion, Rejection> {
        let suggestion = self.state.cap.suggestions.get(id).ok_or_else(|| {
            Rejection::NotFound(format!("suggestion {} does not exist; list CAP suggestions to find its id", quote(id)))
        })?;
        if suggestion.state != SuggestionState::Pending {
            return Err(Rejection::FailedPrecondition(format!(
                "suggestion {id} is already {}; nothing to do",
                suggestion.state.name()
            )));
        }
        Ok(suggestion)
    }

    fn decide_receive(&self, alert: &ReceivedCapAlert) -> Result<Vec<EventKind>, Rejection> {
        let key = cap::received_key(&alert.sender, &alert.identifier);
        if self.state.cap.received.contains_key(&key) {
            return Err(Rejection::AlreadyExists(format!(
                "alert {} from {} was received already; it is not suggested twice",
                quote(&alert.identifier),
                quote(&alert.sender)
            )));
        }
        // A Cancel or an Update withdraws what the alerts it refers to suggested.
        let withdrawn: Vec<String> = if alert.msg_type == "Alert" {
            Vec::new()
        } else {
            alert
                .references
                .iter()
                .filter_map(|identifier| self.state.cap.received.get(&cap::received_key(&alert.sender, identifier)))
                .flatten()
                .filter(|id| self.state.cap.suggestions.get(*id).is_some_and(|s| s.state == SuggestionState::Pending))
                .cloned()
                .collect()
        };
        let grade = cap::suggested_grade(&alert.severity, &alert.urgency, &alert.certainty);
        let suggestion = match grade {
            Some(mode) if alert.msg_type != "Cancel" && SUGGESTING_STATUSES.contains(&alert.status.as_str()) => {
                let areas = cap::covered_areas(&self.state.areas, &alert.polygons, &alert.circles);
                let areas: Vec<AreaId> = match &self.scope {
                    // A district shard suggests for its own district's streets.
                    Some(district) => areas
                        .into_iter()
                        .filter(|area| {
                            self.state.areas.placement_of_area(area).at(crate::areas::AreaLevel::District) == Some(district)
                        })
                        .collect(),
                    None => areas,
                };
                (!areas.is_empty()).then(|| CapSuggestionSpec {
                    id: format!("cap-{:04}", self.state.cap.suggestions.len() + 1),
                    plan: match_plan(self.state.plans.values(), &alert.event, &alert.category, mode),
                    areas,
                    mode,
                })
            }
            _ => None,
        };
        Ok(vec![EventKind::CapAlertReceived { alert: alert.clone(), suggestion, withdrawn }])
    }

    pub(super) fn apply_cap(&mut self, event: &Event) {
        let at = event.at;
        let cap_state = &mut self.state.cap;
        match &event.kind {
            EventKind::CapAlertIssued { alert } => {
                cap_state.sent_at.insert(alert.identifier.clone(), at);
                cap_state.chains.entry(alert.activation.clone()).or_default().push(alert.identifier.clone());
                cap_state.issued.push(alert.clone());
            }
            EventKind::CapAlertReceived { alert, suggestion, withdrawn } => {
                cap_state.received_log.push((at, alert.clone()));
                cap_state
                    .received
                    .insert(cap::received_key(&alert.sender, &alert.identifier), suggestion.as_ref().map(|spec| spec.id.clone()));
                for id in withdrawn {
                    if let Some(withdrawn) = cap_state.suggestions.get_mut(id) {
                        withdrawn.state = SuggestionState::Withdrawn;
                        withdrawn.decided_by = event.actor.clone();
                        withdrawn.reason = format!("{} {} from the sender", alert.msg_type, alert.identifier);
                        withdrawn.decided_at = Some(at);
                    }
                }
                if let Some(spec) = suggestion {
                    cap_state.suggestions.insert(
                        spec.id.clone(),
                        CapSuggestion {
                            spec: spec.clone(),
                            alert: alert.clone(),
                            received_at: at,
                            state: SuggestionState::Pending,
                            decided_by: String::new(),
                            reason: String::new(),
                            decided_at: None,
                        },
                    );
                }
            }
            EventKind::CapSuggestionApproved { suggestion } => {
                if let Some(approved) = cap_state.suggestions.get_mut(suggestion) {
                    approved.state = SuggestionState::Approved;
                    approved.decided_by = event.actor.clone();
                    approved.decided_at = Some(at);
                }
            }
            EventKind::CapSuggestionDismissed { suggestion, reason } => {
                if let Some(dismissed) = cap_state.suggestions.get_mut(suggestion) {
                    dismissed.state = SuggestionState::Dismissed;
                    dismissed.decided_by = event.actor.clone();
                    dismissed.reason = reason.clone();
                    dismissed.decided_at = Some(at);
                }
            }
            _ => {}
        }
    }

    /// An approved suggestion: each area switched to the suggested grade
    /// (unless it is in that grade already) with what a switch sets in
    /// motion, then the plan activated where the switch did not activate it.
    pub(super) fn approve_suggestion(&mut self, id: &str, actor: &str, now: Millis, out: &mut Vec<Event>) {
        let Some(suggestion) = self.state.cap.suggestions.get(id).cloned() else { return };
        // The sender's words become the switch's reason: kept to what a
        // reason may hold, so that the switch is not refused for them.
        let reason: String =
            format!("CAP {} from {}: {}", suggestion.alert.identifier, suggestion.alert.sender, suggestion.alert.headline)
                .chars()
                .map(|character| if character.is_control() { ' ' } else { character })
                .take(500)
                .collect();
        for area in &suggestion.spec.areas {
            let switch = Command::SetMode { area: area.clone(), mode: suggestion.spec.mode, reason: reason.clone() };
            if let Ok(events) = self.decide(&switch, now) {
                for kind in events {
                    self.emit(out, actor, now, kind);
                }
                self.after_switch(area, suggestion.spec.mode, &reason, actor, now, out);
            }
            if let Some(plan) = &suggestion.spec.plan
                && self.open_activation(plan, area).is_none()
                && self.state.plans.contains_key(plan)
            {
                let start = PlanStart { plan, area, reason: &reason, automatic: false };
                self.activate_plan(&start, actor, now, out);
            }
        }
        self.dispatch_waiting(now, out);
    }

    /// Issues the CAP alert of an activation whose plan has a public part:
    /// `Alert` at activation, `Update` when its area's grade changes,
    /// `Cancel` when it ends (both referring to every earlier one).
    pub(super) fn issue_cap_alert(
        &mut self,
        activation_id: &ActivationId,
        msg_type: CapMsgType,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) {
        let Some(activation) = self.state.activations.get(activation_id) else { return };
        let Some(plan) = self.state.plans.get(&activation.plan) else { return };
        let Some(public) = &plan.public else { return };
        let earlier = self.state.cap.chains.get(activation_id).cloned().unwrap_or_default();
        if msg_type != CapMsgType::Alert && earlier.is_empty() {
            return;
        }
        let (area_name, polygons) = self
            .state
            .areas
            .get_any(&activation.area)
            .map(|spec| (spec.name.clone(), spec.polygons.clone()))
            .unwrap_or_else(|| (activation.area.to_string(), Vec::new()));
        let effective = self.state.area_modes(&activation.area).1;
        let mode = if effective.is_emergency() { effective } else { plan.grade };
        let (urgency, severity, certainty) = public.terms(mode);
        let references = earlier
            .iter()
            .map(|identifier| CapReference {
                identifier: identifier.clone(),
                sent: self.state.cap.sent_at.get(identifier).copied().unwrap_or(now),
            })
            .collect();
        let alert = IssuedCapAlert {
            identifier: format!("pingji-cap-{:06}", self.state.cap.issued.len() + 1),
            msg_type,
            references,
            activation: activation_id.clone(),
            plan: plan.id.clone(),
            area: activation.area.clone(),
            area_name,
            mode,
            headline: public.headline.clone(),
            description: public.description.clone(),
            instruction: public.instruction.clone(),
            category: public.category.clone(),
            event: public.event.clone(),
            urgency,
            severity,
            certainty,
            polygons,
        };
        self.emit(out, actor, now, EventKind::CapAlertIssued { alert });
    }

    /// Open activations on `area` whose plan has a public part: they get an
    /// Update when the area's grade changes.
    pub(super) fn public_activations_on(&self, area: &AreaId) -> Vec<ActivationId> {
        self.state
            .activations
            .values()
            .filter(|activation| activation.ended.is_none() && &activation.area == area)
            .filter(|activation| self.state.plans.get(&activation.plan).is_some_and(|plan| plan.public.is_some()))
            .map(|activation| activation.id.clone())
            .collect()
    }
}

/// The plan suggested for an inbound alert: one whose public `event` (or
/// one of its `inbound_events`) is the alert's event, else one whose
/// public `category` is the alert's category; among those, the plan made
/// for the suggested grade, else the nearest grade (the stricter on a tie).
fn match_plan<'a>(plans: impl Iterator<Item = &'a PlanSpec> + Clone, event: &str, category: &str, grade: Mode) -> Option<PlanId> {
    let event = event.trim().to_lowercase();
    let by_event = |plan: &&PlanSpec| {
        plan.public.as_ref().is_some_and(|public| {
            public.event.trim().to_lowercase() == event
                || public.inbound_events.iter().any(|name| name.trim().to_lowercase() == event)
        })
    };
    let by_category = |plan: &&PlanSpec| plan.public.as_ref().is_some_and(|public| public.category == category);
    let mut candidates: Vec<&PlanSpec> = plans.clone().filter(by_event).collect();
    if candidates.is_empty() {
        candidates = plans.filter(by_category).collect();
    }
    candidates
        .sort_by_key(|plan| ((plan.grade as i32 - grade as i32).abs(), std::cmp::Reverse(plan.grade as i32), plan.id.clone()));
    candidates.first().map(|plan| plan.id.clone())
}
