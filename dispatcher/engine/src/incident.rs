//! Incidents: tasks that need people, their offers and assignments.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::areas::{AreaLevel, Placement};
use crate::ids::{ActivationId, AgentId, AreaId, IncidentId, Millis, OfferId};
use crate::policy::Mode;
use crate::spatial::Position;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// A field report waiting for an operator's triage.
    Reported,
    /// Needs people and has no offer out: nobody fits yet.
    Waiting,
    /// Needs people and has offers out.
    Offered,
    /// Every needed person has accepted.
    Staffed,
    Cancelled,
    Closed,
    /// A field report merged into another incident.
    Merged,
    /// A field report rejected at triage.
    Rejected,
}

impl IncidentStatus {
    pub fn name(self) -> &'static str {
        match self {
            IncidentStatus::Reported => "reported",
            IncidentStatus::Merged => "merged",
            IncidentStatus::Rejected => "rejected",
            IncidentStatus::Waiting => "waiting",
            IncidentStatus::Offered => "offered",
            IncidentStatus::Staffed => "staffed",
            IncidentStatus::Cancelled => "cancelled",
            IncidentStatus::Closed => "closed",
        }
    }
}

/// What an operator (or a plan) asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentSpec {
    pub at: Position,
    pub category: String,
    /// 1 is the most urgent, 4 the least.
    pub priority: u8,
    pub skills: BTreeSet<String>,
    pub headcount: u32,
    pub description: String,
    /// The incident's id in the system it was imported from (an EIDO's
    /// `$id`); empty for incidents reported here. Journals and snapshots
    /// written before it existed load with it empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_id: String,
}

/// One offer of an incident to one person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    pub id: OfferId,
    pub incident: IncidentId,
    pub agent: AgentId,
    pub sent_at: Millis,
    pub deadline: Millis,
    pub distance_m: f64,
    pub eta_s: f64,
    /// The level the offer was made at; in flat (emergency) dispatch, the
    /// level of the emergency area.
    pub level: AreaLevel,
    pub flat: bool,
    /// Where the person was when offered, to about 100 m: enough for an
    /// after-action map, not a precise location.
    #[serde(default)]
    pub origin: Option<Position>,
    /// The area of the incident's reach the person came from: the
    /// incident's own area, a touching area in the same emergency, or a
    /// mutual-aid area (docs/policy.md, "Across borders").
    #[serde(default)]
    pub from_area: Option<AreaId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    pub agent: AgentId,
    pub offer: OfferId,
    pub assigned_at: Millis,
    pub arrived_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    pub feedback: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photo_refs: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Cancelled,
    Closed,
    Merged,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub spec: IncidentSpec,
    pub reported_at: Millis,
    pub reported_by: String,
    pub placement: Placement,
    /// How far offers have widened (normal mode).
    pub scope: AreaLevel,
    pub scope_since: Millis,
    pub open_offers: BTreeMap<OfferId, OfferRecord>,
    pub assignments: Vec<AssignmentRecord>,
    /// People who declined, let an offer time out, or took the incident
    /// already: not asked again.
    pub excluded: BTreeSet<AgentId>,
    pub offers_made: u32,
    /// A `no_candidates` event was recorded and no offer went out since.
    pub waiting_noted: bool,
    pub ending: Option<(Ending, Millis)>,
    pub feedback: Option<String>,
    /// The plan activation that created it.
    #[serde(default)]
    pub activation: Option<ActivationId>,
    /// A field report: who reported it and what they wrote.
    #[serde(default)]
    pub report: Option<FieldReport>,
    /// A field report not yet triaged: not dispatched.
    #[serde(default)]
    pub triage_pending: bool,
    /// People told the outcome and, at the end, the feedback: the reporter
    /// and the reporters of field reports merged into this incident.
    #[serde(default)]
    pub reporters: Vec<AgentId>,
    #[serde(default)]
    pub merged_into: Option<IncidentId>,
    /// Incidents merged into this one, in the order merged: their
    /// reporters, photos and timelines are read through this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<IncidentId>,
    /// The mode in force where the incident is (the strictest over its
    /// areas) when it was reported: what it was first handled under, while
    /// the area's mode may have changed since. `None` for incidents read
    /// from a snapshot made before this was recorded.
    #[serde(default)]
    pub reported_mode: Option<Mode>,
    /// The last `incident_unstaffable` raised for it, so that the same
    /// shortfall is not raised again.
    #[serde(default)]
    pub unstaffable: Option<RosterShortfall>,
}

/// How short of people the whole roster leaves an incident (see
/// `EventKind::IncidentUnstaffable`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterShortfall {
    /// People it still needs.
    pub needed: u32,
    /// People on the roster who could take it: fewer than `needed`.
    pub possible: u32,
    /// Skills it requires that nobody on the roster has.
    pub missing_skills: BTreeSet<String>,
    /// Outside the map, farther than anyone may travel to a task.
    #[serde(default)]
    pub beyond_reach: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    pub agent: AgentId,
    pub text: String,
    pub photo_ref: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photo_refs: Vec<String>,
}

impl Incident {
    pub fn status(&self) -> IncidentStatus {
        match self.ending {
            Some((Ending::Cancelled, _)) => IncidentStatus::Cancelled,
            Some((Ending::Closed, _)) => IncidentStatus::Closed,
            Some((Ending::Merged, _)) => IncidentStatus::Merged,
            Some((Ending::Rejected, _)) => IncidentStatus::Rejected,
            None if self.triage_pending => IncidentStatus::Reported,
            None if self.still_needed() == 0 => IncidentStatus::Staffed,
            None if !self.open_offers.is_empty() => IncidentStatus::Offered,
            None => IncidentStatus::Waiting,
        }
    }

    pub fn is_open(&self) -> bool {
        self.ending.is_none()
    }

    /// Open and past triage: offers may be made.
    pub fn is_dispatchable(&self) -> bool {
        self.ending.is_none() && !self.triage_pending
    }

    /// People still needed: headcount less those assigned.
    pub fn still_needed(&self) -> u32 {
        self.spec.headcount.saturating_sub(self.assignments.len() as u32)
    }

    pub fn assignment_of(&self, agent: &AgentId) -> Option<&AssignmentRecord> {
        self.assignments.iter().find(|assignment| &assignment.agent == agent)
    }

    /// A new incident as reported.
    pub fn new(id: IncidentId, spec: IncidentSpec, at: Millis, actor: &str, placement: Placement, scope: AreaLevel) -> Incident {
        Incident {
            id,
            spec,
            reported_at: at,
            reported_by: actor.to_string(),
            placement,
            scope,
            scope_since: at,
            open_offers: BTreeMap::new(),
            assignments: Vec::new(),
            excluded: BTreeSet::new(),
            offers_made: 0,
            waiting_noted: false,
            ending: None,
            feedback: None,
            activation: None,
            report: None,
            triage_pending: false,
            reporters: Vec::new(),
            merged_into: None,
            merged_from: Vec::new(),
            reported_mode: None,
            unstaffable: None,
        }
    }

    /// Offer ids are the incident id and a counter, so replay gives the same ids.
    pub fn next_offer_id(&self) -> OfferId {
        OfferId::new(format!("{}-o{}", self.id, self.offers_made + 1))
    }
}

/// Who the search could reach for an incident nobody (or too few) fit,
/// and what ruled each of them out: "within 2 km: 12 people; 7 lack
/// first_aid, 3 busy, 2 stale".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The level the search looked at.
    pub level: AreaLevel,
    /// Everyone in reach lies within this distance (rounded up to 500 m).
    pub within_m: u32,
    /// People in the incident's area at that level and within the travel
    /// limit, with a live location.
    pub in_reach: u32,
    /// Of those, the people who qualify (fewer than it needs).
    pub qualified: u32,
    /// Per reason (`Reason::kind`) how many of those in reach it ruled
    /// out; "lacks_skill" is counted once per person, and per skill in
    /// `lacking`.
    pub reasons: BTreeMap<String, u32>,
    /// Per required skill, how many in reach lack it.
    pub lacking: BTreeMap<String, u32>,
}

impl Shortfall {
    /// One line an operator reads: "within 2000 m: 12 people; 7 lack
    /// first_aid, 3 busy, 2 location_stale".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.lacking.iter().map(|(skill, people)| format!("{people} lack {skill}")).collect();
        parts.extend(
            self.reasons
                .iter()
                .filter(|(kind, _)| kind.as_str() != "lacks_skill")
                .map(|(kind, people)| format!("{people} {kind}")),
        );
        let mut line = format!("within {} m: {} people", self.within_m, self.in_reach);
        if self.qualified > 0 {
            line.push_str(&format!(", {} fit", self.qualified));
        }
        if !parts.is_empty() {
            line.push_str("; ");
            line.push_str(&parts.join(", "));
        }
        line
    }
}
