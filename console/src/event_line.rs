//! An event told in one line, for `pingji events` and the live view's feed.
//!
//! The event's `json` is the dispatcher's own record of it, so it is read
//! with the dispatcher's type ([`EventKind`]); an event this console does not
//! know (a newer dispatcher) is shown by its kind and ids alone. Personal
//! data in the record (phones, home locations) is never shown.

use pingji_dispatcher::event::{EventKind, WidenReason, WithdrawReason};
use pingji_dispatcher::policy::Mode;
use pingji_proto::v1 as pb;

use crate::labels;

/// The event's record read back, when this console knows its kind.
pub fn kind_of(event: &pb::Event) -> Option<EventKind> {
    serde_json::from_str(&event.json).ok()
}

/// What happened, in words, without the sequence number, time or actor.
pub fn summary(event: &pb::Event) -> String {
    summary_with(event, kind_of(event).as_ref())
}

/// [`summary`] for an event whose record was already read (`None`: not a
/// kind this console knows).
pub fn summary_with(event: &pb::Event, kind: Option<&EventKind>) -> String {
    match kind {
        Some(kind) => summary_of(kind),
        None => redacted_summary(event).unwrap_or_else(|| fallback(event)),
    }
}

/// Events about tokens come with their hashes removed, so they no longer
/// read as [`EventKind`]: told from the fields that are left.
fn redacted_summary(event: &pb::Event) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&event.json).ok()?;
    let text = |field: &str| value.get(field).and_then(serde_json::Value::as_str).map(str::to_string);
    match event.kind.as_str() {
        "agent_tokens_issued" => {
            let agents: Vec<&str> =
                value.get("tokens")?.as_array()?.iter().filter_map(|token| token.get("agent")?.as_str()).collect();
            Some(match agents.as_slice() {
                [one] => format!("new token issued for {one}"),
                many => format!("new tokens issued for {} people", many.len()),
            })
        }
        "operator_added" => Some(format!("operator {} added as {}", text("name")?, text("role")?)),
        "operator_token_rotated" => Some(format!("operator {} has a new token", text("name")?)),
        _ => None,
    }
}

/// A whole line: `#12  2025-05-01 08:00:00Z  operator:li  incident_reported  ...`.
pub fn line(event: &pb::Event) -> String {
    format!("#{:<6} {}  {:<18} {:<22} {}", event.seq, labels::utc_time(event.at_ms), event.actor, event.kind, summary(event))
        .trim_end()
        .to_string()
}

fn fallback(event: &pb::Event) -> String {
    [("incident", &event.incident_id), ("agent", &event.agent_id), ("area", &event.area_id), ("offer", &event.offer_id)]
        .iter()
        .filter(|(_, id)| !id.is_empty())
        .map(|(what, id)| format!("{what} {id}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mode_words(mode: Mode) -> &'static str {
    labels::mode_text(pingji_dispatcher::convert::mode_to_pb(mode) as i32)
}

fn withdraw_words(reason: WithdrawReason) -> &'static str {
    match reason {
        WithdrawReason::Disconnected => "session ended",
        WithdrawReason::Unavailable => "no longer available",
        WithdrawReason::IncidentEnded => "incident ended",
        WithdrawReason::Filled => "no longer needed",
    }
}

fn summary_of(kind: &EventKind) -> String {
    match kind {
        EventKind::AreasImported { import } => {
            format!("{} areas, {} service centres", import.areas.len(), import.service_centres.len())
        }
        EventKind::AgentsUpserted { agents } => match agents.as_slice() {
            [one] => format!("person {} ({})", one.id, one.name),
            many => format!("{} people", many.len()),
        },
        EventKind::AgentStatusChanged { agent, status } => {
            format!("{agent} is now {}", status.name())
        }
        EventKind::IncidentReported { incident, spec, scope, .. } => {
            let skills = if spec.skills.is_empty() {
                String::new()
            } else {
                format!(" needs {}", spec.skills.iter().cloned().collect::<Vec<_>>().join("+"))
            };
            format!(
                "{incident} {} P{} x{}{skills} at {:.5},{:.5} (offered from {})",
                spec.category,
                spec.priority,
                spec.headcount,
                spec.at.lon,
                spec.at.lat,
                scope.name()
            )
        }
        EventKind::OfferSent { offer } => format!(
            "{} offered to {} ({:.0} m, ETA {:.0} s, {})",
            offer.incident,
            offer.agent,
            offer.distance_m,
            offer.eta_s,
            if offer.flat { "flat" } else { offer.level.name() }
        ),
        EventKind::Assigned { incident, agent, .. } => format!("{agent} accepted {incident}"),
        EventKind::OfferDeclined { incident, agent, reason, .. } => {
            if reason.trim().is_empty() {
                format!("{agent} declined {incident}")
            } else {
                format!("{agent} declined {incident}: {reason}")
            }
        }
        EventKind::OfferTimedOut { incident, agent, .. } => format!("{agent} did not answer {incident} in time"),
        EventKind::OfferWithdrawn { incident, agent, reason, .. } => {
            format!("offer of {incident} to {agent} withdrawn: {}", withdraw_words(*reason))
        }
        EventKind::Widened { incident, from, to, reason } => format!(
            "{incident} widened {} -> {} ({})",
            from.name(),
            to.name(),
            match reason {
                WidenReason::NoCandidates => "nobody fits",
                WidenReason::WaitExpired => "wait expired",
            }
        ),
        EventKind::NoCandidates { incident, level } => {
            format!("{incident}: nobody fits at {} level", level.name())
        }
        EventKind::IncidentStaffed { incident } => format!("{incident} staffed"),
        EventKind::AgentArrived { incident, agent } => format!("{agent} arrived at {incident}"),
        EventKind::AssignmentCompleted { incident, agent, feedback } => format!("{agent} completed {incident}: {feedback}"),
        EventKind::IncidentCancelled { incident, reason, .. } => format!("{incident} cancelled: {reason}"),
        EventKind::IncidentClosed { incident, feedback, .. } => {
            format!("{incident} closed: {}", feedback.replace('\n', "; "))
        }
        EventKind::ModeSwitched { area, mode, previous, reason } => {
            format!("{area}: {} -> {}: {reason}", mode_words(*previous), mode_words(*mode))
        }
        EventKind::PlansImported { plans } => {
            let ids: Vec<&str> = plans.iter().map(|plan| plan.id.as_str()).collect();
            format!("plans loaded: {}", ids.join(", "))
        }
        EventKind::PlanActivated { activation, area, reason, automatic, .. } => {
            format!("plan {activation} activated on {area}{}: {reason}", if *automatic { " (by the mode switch)" } else { "" })
        }
        EventKind::PlanDeactivated { activation, reason } => {
            format!("plan {activation} ended: {reason}")
        }
        EventKind::CallupIssued { callup, area, people, deadline, .. } => {
            format!("{callup}: {} people called up in {area}, check in by {}", people.len(), crate::labels::utc_time(deadline.0))
        }
        EventKind::CheckedIn { callup, agent } => format!("{agent} checked in ({callup})"),
        EventKind::CallupDeadlinePassed { callup, missing } => {
            format!("{callup}: check-in deadline passed, {} missing", missing.len())
        }
        EventKind::CallupStoodDown { callup, reason } => format!("{callup} stood down: {reason}"),
        EventKind::FieldReported { incident, agent, spec, .. } => {
            format!("{agent} reported {incident} ({}) from the field; waiting for triage", spec.category)
        }
        EventKind::ReportAccepted { incident, priority, .. } => format!("report {incident} accepted as P{priority}"),
        EventKind::ReportMerged { incident, into } => {
            format!("report {incident} merged into {into}")
        }
        EventKind::ReportRejected { incident, reason } => {
            format!("report {incident} rejected: {reason}")
        }
        EventKind::GridStaffingLow { grid, available, minimum } => {
            format!("grid {grid} short of people: {available} available, minimum {minimum}")
        }
        EventKind::GridStaffingRestored { grid, available } => {
            format!("grid {grid} staffed again: {available} available")
        }
        // Token hashes are never shown: only whose token changed.
        EventKind::AgentTokensIssued { tokens } => match tokens.as_slice() {
            [one] => format!("new token issued for {}", one.agent),
            many => format!("new tokens issued for {} people", many.len()),
        },
        EventKind::OperatorAdded { name, role, .. } => format!("operator {name} added as {role}"),
        EventKind::OperatorTokenRotated { name, .. } => format!("operator {name} has a new token"),
        EventKind::OperatorRemoved { name } => format!("operator {name} removed"),
        EventKind::PersonalDataRead { rpc, subject, people } => {
            format!("{rpc} read precise personal data of {people} {}: {subject}", if *people == 1 { "person" } else { "people" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, json: &str) -> pb::Event {
        pb::Event {
            seq: 12,
            at_ms: 1_746_057_600_000,
            actor: "operator:li".into(),
            kind: kind.into(),
            json: json.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_mode_switch_reads_as_from_to_and_why() {
        let switched = event(
            "mode_switched",
            r#"{"type":"mode_switched","area":"d1","mode":"emergency_ii","previous":"normal","reason":"台风"}"#,
        );
        assert_eq!(summary(&switched), "d1: normal -> emergency II (orange): 台风");
        assert_eq!(
            line(&switched),
            "#12     2025-05-01 00:00:00Z  operator:li        mode_switched          d1: normal -> emergency II (orange): 台风"
        );
    }

    #[test]
    fn an_unknown_event_shows_its_ids() {
        let mut unknown = event("something_new", r#"{"type":"something_new"}"#);
        unknown.incident_id = "inc-1".into();
        unknown.agent_id = "p1".into();
        assert_eq!(summary(&unknown), "incident inc-1, agent p1");
    }

    #[test]
    fn token_events_read_without_their_hashes() {
        let issued = event("agent_tokens_issued", r#"{"type":"agent_tokens_issued","tokens":[{"agent":"p1"}]}"#);
        assert_eq!(summary(&issued), "new token issued for p1");
        let added = event("operator_added", r#"{"type":"operator_added","name":"li.na","role":"viewer"}"#);
        assert_eq!(summary(&added), "operator li.na added as viewer");
        let rotated = event("operator_token_rotated", r#"{"type":"operator_token_rotated","name":"li.na"}"#);
        assert_eq!(summary(&rotated), "operator li.na has a new token");
        let removed = event("operator_removed", r#"{"type":"operator_removed","name":"li.na"}"#);
        assert_eq!(summary(&removed), "operator li.na removed");
    }

    #[test]
    fn people_upserted_show_no_phone() {
        let upserted = event(
            "agents_upserted",
            r#"{"type":"agents_upserted","agents":[{"id":"p1","name":"王芳","role":"volunteer","skills":[],"phone":"13900000000","home_area":null,"travel_mode":"walk","on_duty":true,"home":null}]}"#,
        );
        assert_eq!(summary(&upserted), "person p1 (王芳)");
    }
}
