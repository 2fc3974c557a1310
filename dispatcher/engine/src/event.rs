//! Events: the system of record. Every change is an event with a sequence
//! number, a time and an actor; the dispatch state is their fold.

use serde::{Deserialize, Serialize};

use crate::accounts::{AgentTokenHash, OperatorRole};
use crate::areas::{AreaImport, AreaLevel, Placement};
use crate::cap::{CapSuggestionSpec, IssuedCapAlert, ReceivedCapAlert};
use crate::ids::{ActivationId, AgentId, AreaId, CallupId, IncidentId, Millis, OfferId, PlanId};
use crate::incident::{IncidentSpec, OfferRecord};
use crate::message::Audience;
use crate::plans::PlanSpec;
use crate::policy::Mode;
use crate::roster::{AgentProfile, AgentStatus, Role};
use crate::spatial::Position;

/// The actor recorded for changes the dispatcher makes by itself (timeouts,
/// widening, offers).
pub const DISPATCHER: &str = "dispatcher";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: Millis,
    /// "operator:NAME", "agent:ID" or "dispatcher".
    pub actor: String,
    pub kind: EventKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// The person's session ended.
    Disconnected,
    /// The person went off duty or busy.
    Unavailable,
    /// The incident was cancelled or closed.
    IncidentEnded,
    /// Enough people accepted: "no longer needed".
    Filled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WidenReason {
    /// Nobody at the level fits.
    NoCandidates,
    /// The level's wait ran out before the incident was staffed.
    WaitExpired,
}

pub use crate::policy::NoticeChannel;

/// What became of one step of the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeOutcome {
    /// The gateway (or push service) took it.
    Sent,
    /// The gateway's receipt says it reached the phone.
    Delivered,
    /// Given up on after the retries, or the receipt says it failed.
    Failed,
    /// The person answered by a reply to it.
    Answered,
    /// Not sent: nothing to send it with (no push subscription, no phone,
    /// no gateway for the channel).
    Skipped,
}

impl NoticeOutcome {
    pub fn name(self) -> &'static str {
        match self {
            NoticeOutcome::Sent => "sent",
            NoticeOutcome::Delivered => "delivered",
            NoticeOutcome::Failed => "failed",
            NoticeOutcome::Answered => "answered",
            NoticeOutcome::Skipped => "skipped",
        }
    }
}

/// One step of the escalation ladder towards one person about one subject
/// (an offer, a call-up, a message). Never a phone number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeStep {
    pub agent: AgentId,
    /// `offer:ID`, `callup:ID` or `message:ID`.
    pub subject: String,
    /// The incident of an offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
    /// The call-up of a call-up notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callup: Option<CallupId>,
    pub channel: NoticeChannel,
    /// The rung of the ladder, from 1.
    pub step: u32,
    pub outcome: NoticeOutcome,
    /// Why it failed or was skipped, in words; never personal data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    AreasImported {
        import: AreaImport,
    },
    /// Areas retired by a newer map or by an admin, and service centres
    /// removed. People at home in a retired area are re-homed by their home
    /// position, else to the nearest area above that stays.
    AreasRetired {
        areas: Vec<AreaId>,
        service_centres: Vec<AreaId>,
    },
    AgentsUpserted {
        agents: Vec<AgentProfile>,
    },
    AgentStatusChanged {
        agent: AgentId,
        status: AgentStatus,
    },
    IncidentReported {
        incident: IncidentId,
        spec: IncidentSpec,
        placement: Placement,
        scope: AreaLevel,
        /// The plan activation that created it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<ActivationId>,
    },
    OfferSent {
        offer: OfferRecord,
    },
    Assigned {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
    },
    OfferDeclined {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
        reason: String,
    },
    OfferTimedOut {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
    },
    OfferWithdrawn {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
        reason: WithdrawReason,
    },
    Widened {
        incident: IncidentId,
        from: AreaLevel,
        to: AreaLevel,
        reason: WidenReason,
    },
    /// Nobody fits at this level *now* (recorded once per stretch of
    /// waiting; retried until someone does): people may come on duty, come
    /// near or finish another task, or the offer may widen.
    NoCandidates {
        incident: IncidentId,
        level: AreaLevel,
        /// Who the search could reach and what ruled each out (absent in
        /// events journaled before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shortfall: Option<crate::incident::Shortfall>,
    },
    /// Nobody on the whole roster could ever staff the incident: fewer
    /// people than it still needs have every skill it requires and are not
    /// excluded from it (they declined, let an offer lapse, or serve it
    /// already), or it lies outside the map farther than anyone may travel
    /// to a task. Unlike `NoCandidates`, waiting does not help; only a change
    /// of the roster or of the incident does. Everyone else on the roster
    /// counts as possible whatever their status, role or place on the map
    /// (people off duty, reserves and people across the city may yet come),
    /// so this is never raised for someone merely busy or distant. Raised
    /// when a search for candidates comes up short at the incident's widest
    /// level (in emergency, the emergency area), and again only when the
    /// figures change.
    IncidentUnstaffable {
        incident: IncidentId,
        /// People it still needs.
        needed: u32,
        /// People on the roster who could take it: fewer than `needed`.
        possible: u32,
        /// Skills it requires that nobody on the roster has.
        missing_skills: std::collections::BTreeSet<String>,
        /// Outside every area and farther from the map than the longest
        /// travel any mode allows (see `Engine::beyond_reach`).
        #[serde(default)]
        beyond_reach: bool,
        /// Who the search could reach at the widest level and what ruled
        /// each out (absent in events journaled before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shortfall: Option<crate::incident::Shortfall>,
    },
    IncidentStaffed {
        incident: IncidentId,
    },
    AgentArrived {
        incident: IncidentId,
        agent: AgentId,
    },
    AssignmentCompleted {
        incident: IncidentId,
        agent: AgentId,
        feedback: String,
        /// Photos of the work done (content-addressed references).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        photo_refs: Vec<String>,
    },
    IncidentCancelled {
        incident: IncidentId,
        reason: String,
        released: Vec<AgentId>,
    },
    IncidentClosed {
        incident: IncidentId,
        feedback: String,
        released: Vec<AgentId>,
    },
    ModeSwitched {
        area: AreaId,
        mode: Mode,
        previous: Mode,
        reason: String,
    },
    PlansImported {
        plans: Vec<PlanSpec>,
    },
    PlanActivated {
        activation: ActivationId,
        plan: PlanId,
        area: AreaId,
        reason: String,
        /// By a mode switch, not by an operator's command.
        automatic: bool,
    },
    PlanDeactivated {
        activation: ActivationId,
        reason: String,
    },
    CallupIssued {
        callup: CallupId,
        area: AreaId,
        roles: Vec<Role>,
        reason: String,
        deadline: Millis,
        people: Vec<AgentId>,
        /// Issued by a mode switch: stood down when the area goes back to normal.
        by_switch: bool,
        /// The plan activation it belongs to, if a plan issued it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<ActivationId>,
    },
    CheckedIn {
        callup: CallupId,
        agent: AgentId,
    },
    /// The check-in deadline passed; `missing` is the shortfall.
    CallupDeadlinePassed {
        callup: CallupId,
        missing: Vec<AgentId>,
    },
    CallupStoodDown {
        callup: CallupId,
        reason: String,
    },
    /// A problem reported from the field; waits for triage.
    FieldReported {
        incident: IncidentId,
        agent: AgentId,
        spec: IncidentSpec,
        placement: Placement,
        text: String,
        photo_ref: String,
        /// Every photo of the report (`photo_ref` is the first, if any).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        photo_refs: Vec<String>,
    },
    ReportAccepted {
        incident: IncidentId,
        priority: u8,
        headcount: u32,
        skills: std::collections::BTreeSet<String>,
        scope: AreaLevel,
    },
    ReportMerged {
        incident: IncidentId,
        into: IncidentId,
    },
    ReportRejected {
        incident: IncidentId,
        reason: String,
    },
    GridStaffingLow {
        grid: AreaId,
        available: u32,
        minimum: u32,
    },
    GridStaffingRestored {
        grid: AreaId,
        available: u32,
    },
    /// Tokens for people (new to the roster, or rotated: the old one stops
    /// working). Clients see these events without the hashes.
    AgentTokensIssued {
        tokens: Vec<AgentTokenHash>,
    },
    OperatorAdded {
        name: String,
        role: OperatorRole,
        token_hash: String,
        /// When the token stops working; `None` in events journaled before
        /// tokens expired.
        #[serde(default)]
        expires_at: Option<Millis>,
    },
    /// A new token for an operator (their own rotation or an admin's); the
    /// old one stops working, and a revoked account works again.
    OperatorTokenRotated {
        name: String,
        token_hash: String,
        #[serde(default)]
        expires_at: Option<Millis>,
    },
    OperatorRemoved {
        name: String,
    },
    /// An admin revoked an operator's token: it stops working at once, the
    /// account stays until removed or given a new token.
    OperatorTokenRevoked {
        name: String,
    },
    /// The audit of an operator's read of precise personal data (the actor
    /// is the operator): which call, about whom, how many people.
    PersonalDataRead {
        rpc: String,
        subject: String,
        people: u32,
    },
    /// An operator (the actor) messaged people; `recipients` are the people
    /// it reached, fixed when sent.
    MessageSent {
        message: String,
        to: Audience,
        text: String,
        recipients: Vec<AgentId>,
    },
    MessageReplied {
        message: String,
        agent: AgentId,
        text: String,
    },
    MessageRead {
        message: String,
        agent: AgentId,
    },
    /// A step of the escalation ladder (push, SMS, voice) towards a person.
    Notified(NoticeStep),
    /// A gateway's post to the inbound webhook was refused (bad signature,
    /// old or replayed timestamp); nothing of its body is kept.
    InboundRefused {
        gateway: String,
        reason: String,
    },
    /// A CAP alert we issued: a plan with a public part was activated
    /// (Alert), its area changed grade (Update) or it ended (Cancel).
    CapAlertIssued {
        alert: IssuedCapAlert,
    },
    /// A CAP alert received from another system; `suggestion` is what the
    /// commander is offered (none when it calls for no switch or covers
    /// none of our areas), `withdrawn` the earlier suggestions a Cancel or
    /// Update of their alerts withdraws.
    CapAlertReceived {
        alert: ReceivedCapAlert,
        suggestion: Option<CapSuggestionSpec>,
        withdrawn: Vec<String>,
    },
    /// A commander (the actor) approved a suggestion; the switches and the
    /// plan activation follow as their own events.
    CapSuggestionApproved {
        suggestion: String,
    },
    CapSuggestionDismissed {
        suggestion: String,
        reason: String,
    },
    /// A person holding an assignment said they are safe (报平安): their
    /// check-in clock starts again. `misses` is how many check-ins in a
    /// row they had missed before this one.
    SafetyCheckIn {
        agent: AgentId,
        incident: IncidentId,
        #[serde(default)]
        misses: u32,
    },
    /// A person holding an assignment did not check in by `due` (the
    /// engine's clock). On the second miss in a row the dispatcher sends
    /// someone to look: `welfare` is that welfare-check incident, reported
    /// just before this event.
    SafetyCheckMissed {
        agent: AgentId,
        incident: IncidentId,
        miss: u32,
        due: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        welfare: Option<IncidentId>,
    },
    /// A person pressed 求助 (help): `incident` is the priority-1 incident
    /// reported for it just before this event, at `at` (where the
    /// position came from: `from`), and `team` the people told.
    HelpRequested {
        agent: AgentId,
        incident: IncidentId,
        at: Position,
        from: HelpPosition,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        text: String,
        team: Vec<AgentId>,
    },
    /// Depots, stock, units and requests for them (see `supplies`).
    Supplies(crate::supplies::SupplyEvent),
    /// A person of this shard reserved for another shard's incident and
    /// sent its offer (see `border`).
    BorderReserved {
        reservation: crate::border::BorderReservation,
    },
    /// The person accepted a border offer; the incident's shard is told.
    BorderAccepted {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
    },
    /// The incident's shard journaled the assignment.
    BorderConfirmed {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
    },
    /// A border reservation ended; the person is free again (unless it
    /// ended by being declined while they held something else).
    BorderReleased {
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
        end: crate::border::ReservationEnd,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    /// Shifts, availability, absences, swaps and attendance (see `rosters`).
    Rosters(crate::rosters::RosterEvent),
    /// Shelters, evacuations and occupancy (see `shelters`).
    Shelters(crate::shelters::ShelterEvent),
}

/// Where the position of a help call came from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelpPosition {
    /// Sent with the call.
    Sent,
    /// The person's live location.
    Live,
    /// The place of the incident they hold.
    Assignment,
    /// Their home on the roster.
    Home,
}

impl HelpPosition {
    pub fn name(self) -> &'static str {
        match self {
            HelpPosition::Sent => "sent",
            HelpPosition::Live => "live",
            HelpPosition::Assignment => "assignment",
            HelpPosition::Home => "home",
        }
    }
}

impl EventKind {
    /// The snake_case name, as stored in the journal and shown to clients.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AreasImported { .. } => "areas_imported",
            EventKind::AreasRetired { .. } => "areas_retired",
            EventKind::AgentsUpserted { .. } => "agents_upserted",
            EventKind::AgentStatusChanged { .. } => "agent_status_changed",
            EventKind::IncidentReported { .. } => "incident_reported",
            EventKind::OfferSent { .. } => "offer_sent",
            EventKind::Assigned { .. } => "assigned",
            EventKind::OfferDeclined { .. } => "offer_declined",
            EventKind::OfferTimedOut { .. } => "offer_timed_out",
            EventKind::OfferWithdrawn { .. } => "offer_withdrawn",
            EventKind::Widened { .. } => "widened",
            EventKind::NoCandidates { .. } => "no_candidates",
            EventKind::IncidentUnstaffable { .. } => "incident_unstaffable",
            EventKind::IncidentStaffed { .. } => "incident_staffed",
            EventKind::AgentArrived { .. } => "agent_arrived",
            EventKind::AssignmentCompleted { .. } => "assignment_completed",
            EventKind::IncidentCancelled { .. } => "incident_cancelled",
            EventKind::IncidentClosed { .. } => "incident_closed",
            EventKind::ModeSwitched { .. } => "mode_switched",
            EventKind::PlansImported { .. } => "plans_imported",
            EventKind::PlanActivated { .. } => "plan_activated",
            EventKind::PlanDeactivated { .. } => "plan_deactivated",
            EventKind::CallupIssued { .. } => "callup_issued",
            EventKind::CheckedIn { .. } => "checked_in",
            EventKind::CallupDeadlinePassed { .. } => "callup_deadline_passed",
            EventKind::CallupStoodDown { .. } => "callup_stood_down",
            EventKind::FieldReported { .. } => "field_reported",
            EventKind::ReportAccepted { .. } => "report_accepted",
            EventKind::ReportMerged { .. } => "report_merged",
            EventKind::ReportRejected { .. } => "report_rejected",
            EventKind::GridStaffingLow { .. } => "grid_staffing_low",
            EventKind::GridStaffingRestored { .. } => "grid_staffing_restored",
            EventKind::AgentTokensIssued { .. } => "agent_tokens_issued",
            EventKind::OperatorAdded { .. } => "operator_added",
            EventKind::OperatorTokenRotated { .. } => "operator_token_rotated",
            EventKind::OperatorRemoved { .. } => "operator_removed",
            EventKind::OperatorTokenRevoked { .. } => "operator_token_revoked",
            EventKind::PersonalDataRead { .. } => "personal_data_read",
            EventKind::MessageSent { .. } => "message_sent",
            EventKind::MessageReplied { .. } => "message_replied",
            EventKind::MessageRead { .. } => "message_read",
            EventKind::Notified(_) => "notified",
            EventKind::InboundRefused { .. } => "inbound_refused",
            EventKind::CapAlertIssued { .. } => "cap_alert_issued",
            EventKind::CapAlertReceived { .. } => "cap_alert_received",
            EventKind::CapSuggestionApproved { .. } => "cap_suggestion_approved",
            EventKind::CapSuggestionDismissed { .. } => "cap_suggestion_dismissed",
            EventKind::SafetyCheckIn { .. } => "safety_check_in",
            EventKind::SafetyCheckMissed { .. } => "safety_check_missed",
            EventKind::HelpRequested { .. } => "help_requested",
            EventKind::Supplies(supply) => supply.name(),
            EventKind::BorderReserved { .. } => "border_reserved",
            EventKind::BorderAccepted { .. } => "border_accepted",
            EventKind::BorderConfirmed { .. } => "border_confirmed",
            EventKind::BorderReleased { .. } => "border_released",
            EventKind::Rosters(roster) => roster.name(),
            EventKind::Shelters(shelter) => shelter.name(),
        }
    }

    pub fn incident_id(&self) -> Option<&IncidentId> {
        match self {
            EventKind::IncidentReported { incident, .. }
            | EventKind::Assigned { incident, .. }
            | EventKind::OfferDeclined { incident, .. }
            | EventKind::OfferTimedOut { incident, .. }
            | EventKind::OfferWithdrawn { incident, .. }
            | EventKind::Widened { incident, .. }
            | EventKind::NoCandidates { incident, .. }
            | EventKind::IncidentUnstaffable { incident, .. }
            | EventKind::IncidentStaffed { incident }
            | EventKind::AgentArrived { incident, .. }
            | EventKind::AssignmentCompleted { incident, .. }
            | EventKind::IncidentCancelled { incident, .. }
            | EventKind::IncidentClosed { incident, .. }
            | EventKind::FieldReported { incident, .. }
            | EventKind::ReportAccepted { incident, .. }
            | EventKind::ReportMerged { incident, .. }
            | EventKind::ReportRejected { incident, .. }
            | EventKind::SafetyCheckIn { incident, .. }
            | EventKind::SafetyCheckMissed { incident, .. }
            | EventKind::HelpRequested { incident, .. }
            | EventKind::BorderAccepted { incident, .. }
            | EventKind::BorderConfirmed { incident, .. }
            | EventKind::BorderReleased { incident, .. } => Some(incident),
            EventKind::BorderReserved { reservation } => Some(&reservation.incident),
            EventKind::OfferSent { offer } => Some(&offer.incident),
            EventKind::Notified(step) => step.incident.as_ref(),
            EventKind::Supplies(supply) => supply.incident_id(),
            EventKind::Shelters(shelter) => shelter.incident_id(),
            _ => None,
        }
    }

    pub fn agent_id(&self) -> Option<&AgentId> {
        match self {
            EventKind::AgentStatusChanged { agent, .. }
            | EventKind::Assigned { agent, .. }
            | EventKind::OfferDeclined { agent, .. }
            | EventKind::OfferTimedOut { agent, .. }
            | EventKind::OfferWithdrawn { agent, .. }
            | EventKind::AgentArrived { agent, .. }
            | EventKind::AssignmentCompleted { agent, .. }
            | EventKind::CheckedIn { agent, .. }
            | EventKind::MessageReplied { agent, .. }
            | EventKind::MessageRead { agent, .. }
            | EventKind::FieldReported { agent, .. }
            | EventKind::SafetyCheckIn { agent, .. }
            | EventKind::SafetyCheckMissed { agent, .. }
            | EventKind::HelpRequested { agent, .. }
            | EventKind::BorderAccepted { agent, .. }
            | EventKind::BorderConfirmed { agent, .. }
            | EventKind::BorderReleased { agent, .. } => Some(agent),
            EventKind::BorderReserved { reservation } => Some(&reservation.agent),
            EventKind::OfferSent { offer } => Some(&offer.agent),
            EventKind::Notified(step) => Some(&step.agent),
            EventKind::Supplies(supply) => supply.agent_id(),
            EventKind::Rosters(roster) => roster.agent_id(),
            _ => None,
        }
    }

    pub fn offer_id(&self) -> Option<&OfferId> {
        match self {
            EventKind::Assigned { offer, .. }
            | EventKind::OfferDeclined { offer, .. }
            | EventKind::OfferTimedOut { offer, .. }
            | EventKind::OfferWithdrawn { offer, .. }
            | EventKind::BorderAccepted { offer, .. }
            | EventKind::BorderConfirmed { offer, .. }
            | EventKind::BorderReleased { offer, .. } => Some(offer),
            EventKind::BorderReserved { reservation } => Some(&reservation.offer),
            EventKind::OfferSent { offer } => Some(&offer.id),
            _ => None,
        }
    }

    pub fn area_id(&self) -> Option<&AreaId> {
        match self {
            EventKind::ModeSwitched { area, .. }
            | EventKind::PlanActivated { area, .. }
            | EventKind::CallupIssued { area, .. }
            | EventKind::CapAlertIssued { alert: crate::cap::IssuedCapAlert { area, .. } }
            | EventKind::GridStaffingLow { grid: area, .. }
            | EventKind::GridStaffingRestored { grid: area, .. } => Some(area),
            EventKind::Rosters(roster) => roster.area_id(),
            _ => None,
        }
    }
}
