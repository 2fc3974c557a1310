//! Events told in words, for `pingji events`, the live view's feed and
//! drill logs: read from the typed `body` of each event, never from text.
//!
//! An event whose body this client does not know (a newer dispatcher) is
//! still shown, as "unknown event kind KIND" with its ids: nothing is
//! dropped. Phone numbers and people's positions are never shown.

use pb::event::Body;
use pingji_proto::v1 as pb;

use crate::labels;

/// What happened, in words, without the sequence number, time or actor.
pub fn summary(event: &pb::Event) -> String {
    match &event.body {
        Some(body) => summary_of(body),
        None => unknown(event),
    }
}

/// A whole line: `#12  2025-05-01 08:00:00Z  operator:li  incident_reported  ...`.
pub fn line(event: &pb::Event) -> String {
    format!("#{:<6} {}  {:<18} {:<22} {}", event.seq, labels::utc_time(event.at_ms), event.actor, event.kind, summary(event))
        .trim_end()
        .to_string()
}

/// The snake_case name of a body's kind, as in `Event.kind`.
pub fn kind_name(body: &Body) -> &'static str {
    match body {
        Body::AreasImported(_) => "areas_imported",
        Body::AreasRetired(_) => "areas_retired",
        Body::AgentsUpserted(_) => "agents_upserted",
        Body::AgentStatusChanged(_) => "agent_status_changed",
        Body::IncidentReported(_) => "incident_reported",
        Body::OfferSent(_) => "offer_sent",
        Body::Assigned(_) => "assigned",
        Body::OfferDeclined(_) => "offer_declined",
        Body::OfferTimedOut(_) => "offer_timed_out",
        Body::OfferWithdrawn(_) => "offer_withdrawn",
        Body::Widened(_) => "widened",
        Body::NoCandidates(_) => "no_candidates",
        Body::IncidentUnstaffable(_) => "incident_unstaffable",
        Body::IncidentStaffed(_) => "incident_staffed",
        Body::AgentArrived(_) => "agent_arrived",
        Body::AssignmentCompleted(_) => "assignment_completed",
        Body::IncidentCancelled(_) => "incident_cancelled",
        Body::IncidentClosed(_) => "incident_closed",
        Body::ModeSwitched(_) => "mode_switched",
        Body::PlansImported(_) => "plans_imported",
        Body::PlanActivated(_) => "plan_activated",
        Body::PlanDeactivated(_) => "plan_deactivated",
        Body::CallupIssued(_) => "callup_issued",
        Body::CheckedIn(_) => "checked_in",
        Body::CallupDeadlinePassed(_) => "callup_deadline_passed",
        Body::CallupStoodDown(_) => "callup_stood_down",
        Body::FieldReported(_) => "field_reported",
        Body::ReportAccepted(_) => "report_accepted",
        Body::ReportMerged(_) => "report_merged",
        Body::ReportRejected(_) => "report_rejected",
        Body::GridStaffingLow(_) => "grid_staffing_low",
        Body::GridStaffingRestored(_) => "grid_staffing_restored",
        Body::AgentTokensIssued(_) => "agent_tokens_issued",
        Body::OperatorAdded(_) => "operator_added",
        Body::OperatorTokenRotated(_) => "operator_token_rotated",
        Body::OperatorRemoved(_) => "operator_removed",
        Body::OperatorTokenRevoked(_) => "operator_token_revoked",
        Body::PersonalDataRead(_) => "personal_data_read",
        Body::MessageSent(_) => "message_sent",
        Body::MessageReplied(_) => "message_replied",
        Body::MessageRead(_) => "message_read",
        Body::Notified(_) => "notified",
        Body::InboundRefused(_) => "inbound_refused",
        Body::CapAlertIssued(_) => "cap_alert_issued",
        Body::CapAlertReceived(_) => "cap_alert_received",
        Body::CapSuggestionApproved(_) => "cap_suggestion_approved",
        Body::CapSuggestionDismissed(_) => "cap_suggestion_dismissed",
        Body::SafetyCheckIn(_) => "safety_check_in",
        Body::SafetyCheckMissed(_) => "safety_check_missed",
        Body::HelpRequested(_) => "help_requested",
        Body::SuppliesImported(_)
        | Body::SuppliesRequested(_)
        | Body::SuppliesReserved(_)
        | Body::SuppliesDispatched(_)
        | Body::SuppliesDelivered(_)
        | Body::SuppliesReturned(_)
        | Body::SupplyRequestCancelled(_)
        | Body::StockLow(_)
        | Body::StockRestored(_)
        | Body::StockMoved(_)
        | Body::UnitStatusSet(_) => crate::supplies::event_kind_name(body).unwrap_or("supplies"),
        Body::BorderReserved(_) => "border_reserved",
        Body::BorderAccepted(_) => "border_accepted",
        Body::BorderConfirmed(_) => "border_confirmed",
        Body::BorderReleased(_) => "border_released",
        Body::ShiftsSet(_)
        | Body::ShiftRemoved(_)
        | Body::AvailabilitySet(_)
        | Body::AbsenceRecorded(_)
        | Body::SwapRequested(_)
        | Body::SwapDecided(_)
        | Body::ShiftCheckedIn(_)
        | Body::ShiftCheckedOut(_)
        | Body::CalendarLinkSet(_)
        | Body::CalendarLinkRevoked(_) => crate::rosters::event_kind_name(body).unwrap_or("rosters"),
        Body::SheltersImported(_)
        | Body::ShelterOpened(_)
        | Body::ShelterClosed(_)
        | Body::EvacuationAssigned(_)
        | Body::ArrivalsCheckedIn(_)
        | Body::ResidentsLeft(_)
        | Body::PlacesReleased(_)
        | Body::ShelterLevelChanged(_) => crate::shelters::event_kind_name(body).unwrap_or("shelters"),
    }
}

fn unknown(event: &pb::Event) -> String {
    let ids: Vec<String> =
        [("incident", &event.incident_id), ("agent", &event.agent_id), ("area", &event.area_id), ("offer", &event.offer_id)]
            .iter()
            .filter(|(_, id)| !id.is_empty())
            .map(|(what, id)| format!("{what} {id}"))
            .collect();
    let kind = if event.kind.is_empty() { "(unnamed)" } else { event.kind.as_str() };
    if ids.is_empty() {
        format!("unknown event kind {kind} (a newer dispatcher?)")
    } else {
        format!("unknown event kind {kind} (a newer dispatcher?): {}", ids.join(", "))
    }
}

fn people(count: usize) -> String {
    if count == 1 { "1 person".to_string() } else { format!("{count} people") }
}

/// Who the search could reach and what ruled them out: "within 500 m: 3
/// people; 2 lack first_aid, 1 busy".
pub fn reach_words(shortfall: &pb::Shortfall) -> String {
    let mut parts: Vec<String> = shortfall.lacking.iter().map(|count| format!("{} lack {}", count.people, count.skill)).collect();
    parts.extend(
        shortfall
            .reasons
            .iter()
            .filter(|count| count.reason != pb::PassOverReason::LacksSkill as i32)
            .map(|count| format!("{} {}", count.people, labels::pass_over_reason_name(count.reason))),
    );
    let mut words = format!("within {} m: {}", shortfall.within_m, people(shortfall.in_reach as usize));
    if shortfall.qualified > 0 {
        words.push_str(&format!(", {} fit", shortfall.qualified));
    }
    if !parts.is_empty() {
        words.push_str("; ");
        words.push_str(&parts.join(", "));
    }
    words
}

/// Why nobody on the whole roster could staff an incident, in a few words
/// (short enough for a line of an 80-column feed): "nobody on the roster
/// has diving", "only 2 of the 3 people it needs could take it".
pub fn shortfall_words(unstaffable: &pb::event::IncidentUnstaffable) -> String {
    roster_shortfall_words(&shortfall_of(unstaffable))
}

/// The shortfall an `incident_unstaffable` event reports, as
/// `Incident.unstaffable` holds it.
pub fn shortfall_of(unstaffable: &pb::event::IncidentUnstaffable) -> pb::RosterShortfall {
    pb::RosterShortfall {
        needed: unstaffable.needed,
        possible: unstaffable.possible,
        missing_skills: unstaffable.missing_skills.clone(),
        beyond_reach: unstaffable.beyond_reach,
    }
}

/// [`shortfall_words`] for an incident's `unstaffable`.
pub fn roster_shortfall_words(shortfall: &pb::RosterShortfall) -> String {
    if shortfall.beyond_reach {
        return "off the map, out of everyone's reach".to_string();
    }
    if !shortfall.missing_skills.is_empty() {
        return format!("nobody on the roster has {}", shortfall.missing_skills.join(" or "));
    }
    if shortfall.possible == 0 {
        return format!("nobody left on the roster could take it (needs {})", people(shortfall.needed as usize));
    }
    format!("only {} of the {} it needs could take it", shortfall.possible, people(shortfall.needed as usize))
}

fn withdraw_words(reason: i32) -> &'static str {
    match pb::WithdrawReason::try_from(reason) {
        Ok(pb::WithdrawReason::Disconnected) => "session ended",
        Ok(pb::WithdrawReason::Unavailable) => "no longer available",
        Ok(pb::WithdrawReason::IncidentEnded) => "incident ended",
        Ok(pb::WithdrawReason::Filled) => "no longer needed",
        Ok(pb::WithdrawReason::TimedOut) => "timed out",
        Ok(pb::WithdrawReason::Unspecified) | Err(_) => "reason not given",
    }
}

fn widen_words(reason: i32) -> &'static str {
    match pb::WidenReason::try_from(reason) {
        Ok(pb::WidenReason::NoCandidates) => "nobody fits",
        Ok(pb::WidenReason::WaitExpired) => "wait expired",
        Ok(pb::WidenReason::Unspecified) | Err(_) => "reason not given",
    }
}

/// Who a message is for, in words: "person p1", "incident inc-1's team", "area g1".
pub fn audience_words(audience: Option<&pb::MessageAudience>) -> String {
    use pb::message_audience::To;
    match audience.and_then(|audience| audience.to.as_ref()) {
        Some(To::AgentId(agent)) => format!("person {agent}"),
        Some(To::IncidentId(incident)) => format!("incident {incident}'s team"),
        Some(To::AreaId(area)) => format!("area {area}"),
        None => "nobody named".to_string(),
    }
}

fn summary_of(body: &Body) -> String {
    match body {
        Body::AreasImported(import) => {
            format!("{} areas, {} service centres", import.areas.len(), import.service_centres.len())
        }
        Body::AreasRetired(retired) => {
            let named: Vec<&str> = retired.area_ids.iter().take(5).map(String::as_str).collect();
            let more = if retired.area_ids.len() > named.len() { ", …" } else { "" };
            format!("{} areas retired: {}{more}", retired.area_ids.len(), named.join(", "))
        }
        Body::AgentsUpserted(upserted) => match upserted.agents.as_slice() {
            [one] => format!("person {} ({})", one.id, one.name),
            many => people(many.len()),
        },
        Body::AgentStatusChanged(changed) => {
            format!("{} is now {}", changed.agent_id, labels::agent_status_name(changed.status))
        }
        Body::IncidentReported(reported) => {
            let spec = reported.spec.clone().unwrap_or_default();
            let skills = if spec.required_skills.is_empty() {
                String::new()
            } else {
                format!(" needs {}", spec.required_skills.join("+"))
            };
            let at = spec.location.map(|at| format!(" at {:.5},{:.5}", at.lon, at.lat)).unwrap_or_default();
            format!(
                "{} {} P{} x{}{skills}{at} (offered from {})",
                reported.incident_id,
                spec.category,
                spec.priority,
                spec.headcount,
                labels::level_name(reported.scope)
            )
        }
        Body::OfferSent(offer) => format!(
            "{} offered to {}{} ({:.0} m, ETA {:.0} s, {})",
            offer.incident_id,
            offer.agent_id,
            if offer.flat && !offer.from_area_id.is_empty() { format!(" from {}", offer.from_area_id) } else { String::new() },
            offer.distance_m,
            offer.eta_s,
            if offer.flat { "flat" } else { labels::level_name(offer.level) }
        ),
        Body::Assigned(assigned) => format!("{} accepted {}", assigned.agent_id, assigned.incident_id),
        Body::OfferDeclined(declined) => {
            if declined.reason.trim().is_empty() {
                format!("{} declined {}", declined.agent_id, declined.incident_id)
            } else {
                format!("{} declined {}: {}", declined.agent_id, declined.incident_id, declined.reason)
            }
        }
        Body::OfferTimedOut(timed_out) => format!("{} did not answer {} in time", timed_out.agent_id, timed_out.incident_id),
        Body::OfferWithdrawn(withdrawn) => format!(
            "offer of {} to {} withdrawn: {}",
            withdrawn.incident_id,
            withdrawn.agent_id,
            withdraw_words(withdrawn.reason)
        ),
        Body::Widened(widened) => format!(
            "{} widened {} -> {} ({})",
            widened.incident_id,
            labels::level_name(widened.from),
            labels::level_name(widened.to),
            widen_words(widened.reason)
        ),
        Body::NoCandidates(none) => {
            let mut line = format!("{}: nobody fits at {} level", none.incident_id, labels::level_name(none.level));
            if let Some(shortfall) = &none.shortfall {
                line.push_str(&format!(" ({})", reach_words(shortfall)));
            }
            line
        }
        Body::IncidentUnstaffable(unstaffable) => {
            let mut line = format!("{} cannot be staffed: {}", unstaffable.incident_id, shortfall_words(unstaffable));
            if let Some(shortfall) = &unstaffable.shortfall {
                line.push_str(&format!(" ({})", reach_words(shortfall)));
            }
            line
        }
        Body::IncidentStaffed(staffed) => format!("{} staffed", staffed.incident_id),
        Body::AgentArrived(arrived) => format!("{} arrived at {}", arrived.agent_id, arrived.incident_id),
        Body::AssignmentCompleted(completed) => {
            format!(
                "{} completed {}: {}{}",
                completed.agent_id,
                completed.incident_id,
                completed.feedback,
                photos_words(&completed.photo_refs)
            )
        }
        Body::IncidentCancelled(cancelled) => format!("{} cancelled: {}", cancelled.incident_id, cancelled.reason),
        Body::IncidentClosed(closed) => format!("{} closed: {}", closed.incident_id, closed.feedback.replace('\n', "; ")),
        Body::ModeSwitched(switched) => format!(
            "{}: {} -> {}: {}",
            switched.area_id,
            labels::mode_text(switched.previous),
            labels::mode_text(switched.mode),
            switched.reason
        ),
        Body::PlansImported(imported) => {
            let ids: Vec<&str> = imported.plans.iter().map(|plan| plan.id.as_str()).collect();
            format!("plans loaded: {}", ids.join(", "))
        }
        Body::PlanActivated(activated) => format!(
            "plan {} activated on {}{}: {}",
            activated.activation_id,
            activated.area_id,
            if activated.automatic { " (by the mode switch)" } else { "" },
            activated.reason
        ),
        Body::PlanDeactivated(deactivated) => format!("plan {} ended: {}", deactivated.activation_id, deactivated.reason),
        Body::CallupIssued(issued) => format!(
            "{}: {} called up in {}, check in by {}",
            issued.callup_id,
            people(issued.agent_ids.len()),
            issued.area_id,
            labels::utc_time(issued.deadline_ms)
        ),
        Body::CheckedIn(checked_in) => format!("{} checked in ({})", checked_in.agent_id, checked_in.callup_id),
        Body::CallupDeadlinePassed(passed) => {
            format!("{}: check-in deadline passed, {} missing", passed.callup_id, passed.missing_agent_ids.len())
        }
        Body::CallupStoodDown(stood_down) => format!("{} stood down: {}", stood_down.callup_id, stood_down.reason),
        Body::FieldReported(reported) => format!(
            "{} reported {} ({}) from the field; waiting for triage{}",
            reported.agent_id,
            reported.incident_id,
            reported.spec.as_ref().map(|spec| spec.category.as_str()).unwrap_or_default(),
            photos_words(&reported.photo_refs)
        ),
        Body::ReportAccepted(accepted) => format!("report {} accepted as P{}", accepted.incident_id, accepted.priority),
        Body::ReportMerged(merged) => format!("report {} merged into {}", merged.incident_id, merged.into_incident_id),
        Body::ReportRejected(rejected) => format!("report {} rejected: {}", rejected.incident_id, rejected.reason),
        Body::GridStaffingLow(low) => {
            format!("grid {} short of people: {} available, minimum {}", low.grid_id, low.available, low.minimum)
        }
        Body::GridStaffingRestored(restored) => {
            format!("grid {} staffed again: {} available", restored.grid_id, restored.available)
        }
        Body::AgentTokensIssued(issued) => match issued.agent_ids.as_slice() {
            [one] => format!("new token issued for {one}"),
            many => format!("new tokens issued for {}", people(many.len())),
        },
        Body::OperatorAdded(added) => {
            format!("operator {} added as {}", added.name, labels::operator_role_name(added.role))
        }
        Body::OperatorTokenRotated(rotated) => format!("operator {} has a new token", rotated.name),
        Body::OperatorRemoved(removed) => format!("operator {} removed", removed.name),
        Body::OperatorTokenRevoked(revoked) => format!("operator {}'s token revoked", revoked.name),
        Body::PersonalDataRead(read) => {
            format!("{} read personal data of {}: {}", read.rpc, people(read.people as usize), read.subject)
        }
        Body::MessageSent(sent) => format!(
            "message {} to {} ({}): {}",
            sent.message_id,
            audience_words(sent.to.as_ref()),
            people(sent.recipient_ids.len()),
            sent.text
        ),
        Body::MessageReplied(replied) => {
            format!("{} replied to message {}: {}", replied.agent_id, replied.message_id, replied.text)
        }
        Body::MessageRead(read) => format!("{} read message {}", read.agent_id, read.message_id),
        Body::Notified(notified) => {
            let channel = match pb::NoticeChannel::try_from(notified.channel) {
                Ok(pb::NoticeChannel::Push) => "push",
                Ok(pb::NoticeChannel::Sms) => "SMS",
                Ok(pb::NoticeChannel::Voice) => "voice call",
                _ => "notice",
            };
            let outcome = match pb::NoticeOutcome::try_from(notified.outcome) {
                Ok(pb::NoticeOutcome::Sent) => "sent",
                Ok(pb::NoticeOutcome::Delivered) => "delivered",
                Ok(pb::NoticeOutcome::Failed) => "FAILED",
                Ok(pb::NoticeOutcome::Answered) => "answered",
                Ok(pb::NoticeOutcome::Skipped) => "skipped",
                _ => "?",
            };
            let detail = if notified.detail.is_empty() { String::new() } else { format!(": {}", notified.detail) };
            format!("{channel} to {} {outcome} (step {}, {}){detail}", notified.agent_id, notified.step, notified.subject)
        }
        Body::InboundRefused(refused) => format!("inbound post from gateway {} refused: {}", refused.gateway, refused.reason),
        Body::CapAlertIssued(issued) => match &issued.alert {
            Some(alert) => format!("CAP {} {} for {}: {}", alert.msg_type, alert.identifier, alert.area_id, alert.headline),
            None => "CAP alert".to_string(),
        },
        Body::CapAlertReceived(received) => {
            let alert = received.alert.clone().unwrap_or_default();
            let suggested = match &received.suggestion {
                Some(spec) => format!("; suggestion {} for {}", spec.id, spec.area_ids.join(", ")),
                None => String::new(),
            };
            format!("CAP {} {} from {}: {}{suggested}", alert.msg_type, alert.identifier, alert.sender, alert.headline)
        }
        Body::SuppliesImported(_)
        | Body::SuppliesRequested(_)
        | Body::SuppliesReserved(_)
        | Body::SuppliesDispatched(_)
        | Body::SuppliesDelivered(_)
        | Body::SuppliesReturned(_)
        | Body::SupplyRequestCancelled(_)
        | Body::StockLow(_)
        | Body::StockRestored(_)
        | Body::StockMoved(_)
        | Body::UnitStatusSet(_) => crate::supplies::event_summary(body).unwrap_or_default(),
        Body::BorderReserved(reserved) => format!(
            "{} reserved for {} of shard {} (offer {})",
            reserved.agent_id, reserved.incident_id, reserved.incident_shard, reserved.offer_id
        ),
        Body::BorderAccepted(accepted) => {
            format!("{} accepted {} of another shard (offer {})", accepted.agent_id, accepted.incident_id, accepted.offer_id)
        }
        Body::BorderConfirmed(confirmed) => {
            format!("{} holds {} of another shard (offer {})", confirmed.agent_id, confirmed.incident_id, confirmed.offer_id)
        }
        Body::BorderReleased(released) => format!(
            "{}'s reservation for {} {}{}",
            released.agent_id,
            released.incident_id,
            released.end,
            if released.reason.is_empty() { String::new() } else { format!(": {}", released.reason) }
        ),
        Body::ShiftsSet(_)
        | Body::ShiftRemoved(_)
        | Body::AvailabilitySet(_)
        | Body::AbsenceRecorded(_)
        | Body::SwapRequested(_)
        | Body::SwapDecided(_)
        | Body::ShiftCheckedIn(_)
        | Body::ShiftCheckedOut(_)
        | Body::CalendarLinkSet(_)
        | Body::CalendarLinkRevoked(_) => crate::rosters::event_summary(body).unwrap_or_default(),
        Body::SheltersImported(_)
        | Body::ShelterOpened(_)
        | Body::ShelterClosed(_)
        | Body::EvacuationAssigned(_)
        | Body::ArrivalsCheckedIn(_)
        | Body::ResidentsLeft(_)
        | Body::PlacesReleased(_)
        | Body::ShelterLevelChanged(_) => crate::shelters::event_summary(body).unwrap_or_default(),
        Body::CapSuggestionApproved(approved) => format!("CAP suggestion {} approved", approved.suggestion_id),
        Body::CapSuggestionDismissed(dismissed) => {
            format!("CAP suggestion {} dismissed: {}", dismissed.suggestion_id, dismissed.reason)
        }
        Body::SafetyCheckIn(checked) => match checked.misses {
            0 => format!("{} checked in safe (报平安) on incident {}", checked.agent_id, checked.incident_id),
            misses => format!(
                "{} checked in safe (报平安) on incident {} after {misses} missed check-in(s)",
                checked.agent_id, checked.incident_id
            ),
        },
        Body::SafetyCheckMissed(missed) => {
            let welfare = match missed.welfare_incident_id.as_str() {
                "" => String::new(),
                welfare => format!("; welfare check {welfare} sent"),
            };
            format!(
                "ALERT {} missed safety check-in {} on incident {} (due {}){welfare}",
                missed.agent_id,
                missed.miss,
                missed.incident_id,
                labels::utc_time(missed.due_ms)
            )
        }
        Body::HelpRequested(help) => {
            let text = if help.text.is_empty() { String::new() } else { format!(": {}", help.text) };
            format!(
                "ALERT 求助 {} asked for help{text}; incident {} (position {}), {} of their team told",
                help.agent_id,
                help.incident_id,
                help.position_from,
                help.team_agent_ids.len()
            )
        }
    }
}

/// The photos an event came with, to read with `pingji photo get`; "" when none.
fn photos_words(photo_refs: &[String]) -> String {
    if photo_refs.is_empty() {
        return String::new();
    }
    format!(" (photos: {})", photo_refs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, body: Body) -> pb::Event {
        pb::Event {
            seq: 12,
            at_ms: 1_746_057_600_000,
            actor: "operator:li".into(),
            kind: kind.into(),
            body: Some(body),
            ..Default::default()
        }
    }

    #[test]
    fn a_notice_says_channel_outcome_and_rung_and_never_more() {
        let notified = Body::Notified(pb::event::Notified {
            agent_id: "p0042".into(),
            subject: "callup:callup-0003".into(),
            callup_id: "callup-0003".into(),
            channel: pb::NoticeChannel::Sms as i32,
            step: 2,
            outcome: pb::NoticeOutcome::Failed as i32,
            detail: "webhook gw.example: answered HTTP 503 (6 attempts)".into(),
            ..Default::default()
        });
        assert_eq!(
            summary(&event("notified", notified)),
            "SMS to p0042 FAILED (step 2, callup:callup-0003): webhook gw.example: answered HTTP 503 (6 attempts)"
        );
        let refused = Body::InboundRefused(pb::event::InboundRefused { gateway: "gw".into(), reason: "bad signature".into() });
        assert_eq!(summary(&event("inbound_refused", refused)), "inbound post from gateway gw refused: bad signature");
    }

    #[test]
    fn a_mode_switch_reads_as_from_to_and_why() {
        let switched = event(
            "mode_switched",
            Body::ModeSwitched(pb::event::ModeSwitched {
                area_id: "d1".into(),
                mode: pb::Mode::EmergencyIi as i32,
                previous: pb::Mode::Normal as i32,
                reason: "台风".into(),
            }),
        );
        assert_eq!(summary(&switched), "d1: normal -> emergency II (orange): 台风");
        assert_eq!(
            line(&switched),
            "#12     2025-05-01 00:00:00Z  operator:li        mode_switched          d1: normal -> emergency II (orange): 台风"
        );
    }

    #[test]
    fn an_unknown_event_is_shown_with_its_kind_and_ids() {
        let unknown = pb::Event {
            seq: 40,
            kind: "something_new".into(),
            incident_id: "inc-1".into(),
            agent_id: "p1".into(),
            ..Default::default()
        };
        assert!(unknown.body.is_none());
        assert_eq!(summary(&unknown), "unknown event kind something_new (a newer dispatcher?): incident inc-1, agent p1");
        assert!(line(&unknown).starts_with("#40 "), "{}", line(&unknown));
    }

    #[test]
    fn nobody_fits_says_who_was_in_reach_and_why_not() {
        let none = event(
            "no_candidates",
            Body::NoCandidates(pb::event::NoCandidates {
                incident_id: "inc-000007".into(),
                level: pb::AreaLevel::Grid as i32,
                shortfall: Some(pb::Shortfall {
                    level: pb::AreaLevel::Grid as i32,
                    within_m: 2000,
                    in_reach: 12,
                    qualified: 0,
                    reasons: vec![
                        pb::ReasonCount { reason: pb::PassOverReason::LacksSkill as i32, people: 7 },
                        pb::ReasonCount { reason: pb::PassOverReason::Busy as i32, people: 3 },
                        pb::ReasonCount { reason: pb::PassOverReason::LocationStale as i32, people: 2 },
                    ],
                    lacking: vec![pb::SkillCount { skill: "first_aid".into(), people: 7 }],
                }),
            }),
        );
        assert_eq!(
            summary(&none),
            "inc-000007: nobody fits at grid level (within 2000 m: 12 people; 7 lack first_aid, 3 busy, 2 location stale)"
        );
    }

    #[test]
    fn an_unstaffable_incident_says_what_the_roster_lacks() {
        let unstaffable = |possible, missing: &[&str]| {
            event(
                "incident_unstaffable",
                Body::IncidentUnstaffable(pb::event::IncidentUnstaffable {
                    incident_id: "inc-000028".into(),
                    needed: 3,
                    possible,
                    missing_skills: missing.iter().map(|skill| skill.to_string()).collect(),
                    beyond_reach: false,
                    shortfall: None,
                }),
            )
        };
        assert_eq!(summary(&unstaffable(0, &["firstaid"])), "inc-000028 cannot be staffed: nobody on the roster has firstaid");
        assert_eq!(summary(&unstaffable(2, &[])), "inc-000028 cannot be staffed: only 2 of the 3 people it needs could take it");
        assert_eq!(
            summary(&unstaffable(0, &[])),
            "inc-000028 cannot be staffed: nobody left on the roster could take it (needs 3 people)"
        );
        let mut far = unstaffable(0, &[]);
        if let Some(Body::IncidentUnstaffable(body)) = far.body.as_mut() {
            body.beyond_reach = true;
        }
        assert_eq!(summary(&far), "inc-000028 cannot be staffed: off the map, out of everyone's reach");
        let body = unstaffable(0, &[]).body.expect("a body");
        assert_eq!(kind_name(&body), "incident_unstaffable");
    }

    #[test]
    fn token_events_name_whose_token_changed() {
        let issued =
            event("agent_tokens_issued", Body::AgentTokensIssued(pb::event::AgentTokensIssued { agent_ids: vec!["p1".into()] }));
        assert_eq!(summary(&issued), "new token issued for p1");
        let added = event(
            "operator_added",
            Body::OperatorAdded(pb::event::OperatorAdded {
                name: "li.na".into(),
                role: pb::OperatorRole::Viewer as i32,
                token_expires_at_ms: 0,
            }),
        );
        assert_eq!(summary(&added), "operator li.na added as viewer");
        let removed = event("operator_removed", Body::OperatorRemoved(pb::event::OperatorRemoved { name: "li.na".into() }));
        assert_eq!(summary(&removed), "operator li.na removed");
    }

    #[test]
    fn people_upserted_show_no_phone_and_counts_read_in_the_singular() {
        let one = pb::AgentSpec { id: "p1".into(), name: "王芳".into(), phone: "139****0000".into(), ..Default::default() };
        let upserted = event("agents_upserted", Body::AgentsUpserted(pb::event::AgentsUpserted { agents: vec![one] }));
        assert_eq!(summary(&upserted), "person p1 (王芳)");
        let callup = event(
            "callup_issued",
            Body::CallupIssued(pb::event::CallupIssued {
                callup_id: "callup-0001".into(),
                area_id: "d1".into(),
                agent_ids: vec!["p2".into()],
                deadline_ms: 1_746_057_900_000,
                ..Default::default()
            }),
        );
        assert_eq!(summary(&callup), "callup-0001: 1 person called up in d1, check in by 2025-05-01 00:05:00Z");
    }
}
