//! Duplicates at intake: the open incidents a new report may repeat, and
//! merging one incident into another.
//!
//! A new report (or a field report in triage) is compared with the open
//! incidents reported within the policy's time window, within its distance
//! and of the same or a similar category (`Policy::duplicates`). Finding
//! them is a read; the operator then creates anyway or merges. A merge ends
//! the duplicate as merged into the other (`ReportMerged`, as triage does):
//! the other takes its reporters, and its photos and timeline are read
//! through the other (`Incident::merged_from`).

use super::{Engine, Rejection};
use crate::event::{EventKind, WithdrawReason};
use crate::ids::{IncidentId, Millis, quote};
use crate::incident::{Incident, IncidentSpec};
use crate::spatial::Position;

/// What a new report is: where and what (or an incident already reported).
#[derive(Clone, Debug)]
pub enum DuplicateQuery {
    Report { at: Position, category: String },
    Incident(IncidentId),
}

/// An open incident a report may repeat.
#[derive(Clone, Debug, PartialEq)]
pub struct PossibleDuplicate<'a> {
    pub incident: &'a Incident,
    pub distance_m: f64,
    pub minutes_ago: u32,
    /// The same category; otherwise a similar one.
    pub same_category: bool,
}

impl Engine {
    /// The open incidents `query` may repeat, nearest first. An incident
    /// that does not exist is `NotFound`.
    pub fn duplicates(&self, query: &DuplicateQuery, now: Millis) -> Result<Vec<PossibleDuplicate<'_>>, Rejection> {
        let (at, category, itself) = match query {
            DuplicateQuery::Report { at, category } => (*at, category.trim().to_lowercase(), None),
            DuplicateQuery::Incident(id) => {
                let incident = self.state.incidents.get(id).ok_or_else(|| {
                    Rejection::NotFound(format!("incident {} does not exist; list incidents to find its id", quote(id)))
                })?;
                (incident.spec.at, incident.spec.category.clone(), Some(id))
            }
        };
        let rule = &self.policy.duplicates;
        let since = Millis(now.0 - i64::from(rule.within_minutes) * 60_000);
        let mut found: Vec<PossibleDuplicate<'_>> = self
            .state
            .open_incidents
            .iter()
            .filter(|id| Some(*id) != itself)
            .filter_map(|id| self.state.incidents.get(id))
            .filter(|incident| incident.reported_at >= since)
            .filter_map(|incident| {
                let same_category = rule.alike(&category, &incident.spec.category)?;
                let distance_m = at.distance_m(incident.spec.at);
                (distance_m <= f64::from(rule.within_m)).then(|| PossibleDuplicate {
                    incident,
                    distance_m,
                    minutes_ago: (now.seconds_since(incident.reported_at).max(0.0) / 60.0) as u32,
                    same_category,
                })
            })
            .collect();
        found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then_with(|| a.incident.id.cmp(&b.incident.id)));
        Ok(found)
    }

    /// A merge of `incident` into `into`: both open and distinct, and
    /// nobody assigned to the duplicate (their task would end with it: close
    /// or cancel it instead). Its open offers are withdrawn first.
    pub(super) fn decide_merge(&self, incident: &IncidentId, into: &IncidentId) -> Result<Vec<EventKind>, Rejection> {
        if incident == into {
            return Err(Rejection::InvalidArgument("an incident cannot be merged into itself; name the other incident".into()));
        }
        let duplicate = self.open_incident(incident)?;
        let target = self.open_incident(into)?;
        if let Some(assignment) = duplicate.assignments.iter().find(|assignment| assignment.completed_at.is_none()) {
            return Err(Rejection::FailedPrecondition(format!(
                "{incident} has {} assigned to it; a merge would end their task: close or cancel it instead, or merge {into} into {incident}",
                assignment.agent
            )));
        }
        debug_assert!(target.is_open());
        let mut events: Vec<EventKind> = duplicate
            .open_offers
            .values()
            .map(|offer| EventKind::OfferWithdrawn {
                offer: offer.id.clone(),
                incident: incident.clone(),
                agent: offer.agent.clone(),
                reason: WithdrawReason::IncidentEnded,
            })
            .collect();
        events.push(EventKind::ReportMerged { incident: incident.clone(), into: into.clone() });
        Ok(events)
    }

    /// A new report recorded as a duplicate of `into`: reported (checked
    /// as any report, though never offered, so a place off the map or a
    /// skill nobody has is no reason to refuse it) and merged at once.
    pub(super) fn decide_report_duplicate(
        &self,
        id: Option<&IncidentId>,
        spec: &IncidentSpec,
        into: &IncidentId,
    ) -> Result<Vec<EventKind>, Rejection> {
        self.open_incident(into)?;
        let mut events = self.decide_create_incident(id, spec, true)?;
        let Some(incident) = events.first().and_then(|event| event.incident_id()).cloned() else {
            return Err(Rejection::InvalidArgument("the report could not be recorded".into()));
        };
        events.push(EventKind::ReportMerged { incident, into: into.clone() });
        Ok(events)
    }
}
