//! Field reports (bottom-up): any connected person, couriers included, can
//! report a problem. It becomes an incident waiting for triage: an operator
//! accepts it (it is dispatched), merges it into an existing incident, or
//! rejects it with a reason. In modes whose policy lists the category, the
//! report is dispatched at once. The reporter hears the outcome and, when the
//! incident closes, the feedback.

use std::collections::BTreeSet;

use super::decide::check_text;
use super::{Engine, Rejection};
use crate::areas::AreaLevel;
use crate::event::EventKind;
use crate::ids::{AgentId, IncidentId, quote};
use crate::incident::{Incident, IncidentSpec};
use crate::roster::{check_name, check_skills};
use crate::spatial::Position;

/// Priority of a report dispatched without triage: urgent, but unchecked.
const AUTO_DISPATCH_PRIORITY: u8 = 2;
/// Priority a report has until triage says otherwise.
const REPORT_PRIORITY: u8 = 3;

impl Engine {
    pub(super) fn decide_field_report(
        &self,
        agent: &AgentId,
        at: Position,
        category: &str,
        text: &str,
        photo_ref: &str,
        photo_refs: &[String],
    ) -> Result<Vec<EventKind>, Rejection> {
        if !self.state.agents.contains_key(agent) {
            return Err(Rejection::NotFound(format!("agent {agent} is not on the roster; check the id")));
        }
        let at = Position::checked(at.lon, at.lat).map_err(Rejection::InvalidArgument)?;
        let category = category.trim().to_lowercase();
        if category.is_empty() {
            return Err(Rejection::InvalidArgument(
                "the report has no category; say what kind of problem it is (e.g. flooding)".to_string(),
            ));
        }
        check_name("the report's category", &category).map_err(Rejection::InvalidArgument)?;
        check_text("the report's text", text, false)?;
        check_text("the photo reference", photo_ref, false)?;
        // photo_ref (the older single field) comes first among the photos.
        let mut all_photos: Vec<String> = Vec::new();
        for photo in std::iter::once(photo_ref).chain(photo_refs.iter().map(String::as_str)) {
            let photo = photo.trim();
            if !photo.is_empty() && !all_photos.iter().any(|known| known == photo) {
                all_photos.push(photo.to_string());
            }
        }
        Engine::check_photo_refs(&all_photos)?;
        let placement = self.state.areas.place(at);
        let incident = self.next_incident_id();
        let spec = IncidentSpec {
            at,
            category: category.clone(),
            priority: REPORT_PRIORITY,
            skills: BTreeSet::new(),
            headcount: 1,
            description: text.trim().to_string(),
            source_id: String::new(),
        };
        let mode = self.state.effective_mode(&placement).0;
        let dispatch_at_once = self.policy.for_mode(mode).auto_dispatch_reports.contains(&category);
        let scope = placement.deepest().map_or(AreaLevel::City, |deepest| deepest.min(AreaLevel::Grid));
        let mut events = vec![EventKind::FieldReported {
            incident: incident.clone(),
            agent: agent.clone(),
            spec,
            placement,
            text: text.trim().to_string(),
            photo_ref: all_photos.first().cloned().unwrap_or_default(),
            photo_refs: all_photos,
        }];
        if dispatch_at_once {
            events.push(EventKind::ReportAccepted {
                incident,
                priority: AUTO_DISPATCH_PRIORITY,
                headcount: 1,
                skills: BTreeSet::new(),
                scope,
            });
        }
        Ok(events)
    }

    fn pending_report(&self, incident: &IncidentId) -> Result<&Incident, Rejection> {
        let record = self.state.incidents.get(incident).ok_or_else(|| {
            Rejection::NotFound(format!("report {} does not exist; list incidents to find it", quote(incident)))
        })?;
        if !record.triage_pending || !record.is_open() {
            return Err(Rejection::FailedPrecondition(format!(
                "{incident} is not a field report waiting for triage (it is {})",
                record.status().name()
            )));
        }
        Ok(record)
    }

    pub(super) fn decide_triage_accept(
        &self,
        incident: &IncidentId,
        priority: Option<u8>,
        headcount: Option<u32>,
        skills: Option<&BTreeSet<String>>,
    ) -> Result<Vec<EventKind>, Rejection> {
        let record = self.pending_report(incident)?;
        let priority = priority.unwrap_or(record.spec.priority);
        let headcount = headcount.unwrap_or(record.spec.headcount);
        if !(1..=4).contains(&priority) {
            return Err(Rejection::InvalidArgument(format!("priority {priority} is out of range; use 1 (most urgent) to 4")));
        }
        if headcount == 0 || headcount > 500 {
            return Err(Rejection::InvalidArgument(format!("headcount {headcount} is out of range; ask for 1 to 500 people")));
        }
        if let Some(skills) = skills {
            check_skills(skills).map_err(Rejection::InvalidArgument)?;
        }
        let scope = record.placement.deepest().map_or(AreaLevel::City, |deepest| deepest.min(AreaLevel::Grid));
        Ok(vec![EventKind::ReportAccepted {
            incident: incident.clone(),
            priority,
            headcount,
            skills: skills.cloned().unwrap_or_else(|| record.spec.skills.clone()),
            scope,
        }])
    }

    pub(super) fn decide_triage_merge(&self, incident: &IncidentId, into: &IncidentId) -> Result<Vec<EventKind>, Rejection> {
        self.pending_report(incident)?;
        if incident == into {
            return Err(Rejection::InvalidArgument("a report cannot be merged into itself".to_string()));
        }
        let target = self.state.incidents.get(into).ok_or_else(|| {
            Rejection::NotFound(format!("incident {} does not exist; list incidents to find the one to merge into", quote(into)))
        })?;
        if !target.is_open() {
            return Err(Rejection::FailedPrecondition(format!(
                "incident {into} is already {}; merge into an open incident",
                target.status().name()
            )));
        }
        Ok(vec![EventKind::ReportMerged { incident: incident.clone(), into: into.clone() }])
    }

    pub(super) fn decide_triage_reject(&self, incident: &IncidentId, reason: &str) -> Result<Vec<EventKind>, Rejection> {
        self.pending_report(incident)?;
        check_text("the reason (the reporter is told it)", reason, true)?;
        Ok(vec![EventKind::ReportRejected { incident: incident.clone(), reason: reason.trim().to_string() }])
    }
}
