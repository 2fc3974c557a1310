//! The dispatch engine: a deterministic state machine with no I/O.
//!
//! `execute(command, actor, now)` first decides (checks the command against
//! the state and either rejects it, changing nothing, or returns the events it
//! causes), then evolves the state by each event, then lets the dispatcher
//! react (offers, widening). `tick(now)` fires deadlines: offer timeouts,
//! widening waits and retries of incidents nobody fits yet. Replaying the
//! returned events with `replay` rebuilds the same durable state.
//!
//! Durable state ([`State`]) is the fold of events. Live locations and
//! connections are soft ([`live::Live`]): kept in memory only.
//!
//! # Layout
//! - [`decide`]: validation of commands into events.
//! - [`evolve`]: applying one event to the state.
//! - [`dispatch`]: choosing candidates and making offers, widening, timeouts.
//! - [`duplicates`]: open incidents a new report may repeat, and merges.
//! - [`explain`]: why this person, why not X: an incident's ranked
//!   candidates and the reason each other person was passed over.
//! - [`live`]: soft state: connections, live locations and the spatial index.
//! - [`mobilise`]: what a mode switch sets in motion: call-ups of reserves,
//!   plan activations, grid staffing checks.
//! - [`reports`]: field reports and their triage.
//! - [`check_ins`]: safety check-ins on scene (PAR) and help calls (求助).
//! - [`supplies`]: supply requests, reservations and stock alerts.
//! - [`rosters`]: duty rosters: deciding and folding their events, and
//!   who is on shift for dispatch.
//! - [`shelters`]: evacuations to shelters, places reserved and released, occupancy alerts.
//! - [`queries`]: the typed reads the services answer from (people, incidents,
//!   call-ups, coverage, accounts), with filters and pages.

pub mod border;
pub mod cap;
pub mod check_ins;
pub mod decide;
pub mod dispatch;
pub mod duplicates;
pub mod evolve;
pub mod explain;
pub mod invariants;
pub mod live;
pub mod messages;
pub mod mobilise;
pub mod queries;
pub mod reports;
pub mod rosters;
pub mod shelters;
pub mod supplies;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::accounts::{AgentTokenHash, Operator, OperatorRole};
use crate::areas::{AreaImport, AreaLevel, AreaMap, Placement};
use crate::event::{Event, EventKind};
use crate::ids::{ActivationId, AgentId, AreaId, CallupId, IncidentId, Millis, OfferId, PlanId};
use crate::incident::{Incident, IncidentSpec};
use crate::message::{Audience, MessageRecord};
use crate::plans::PlanSpec;
use crate::policy::{Mode, Policy};
use crate::roster::{AgentProfile, AgentRecord, AgentStatus, HomeIndex, Role, SkillIndex};
use crate::spatial::Position;

pub use live::{Live, LiveAgent};

/// Why a command was refused. The message says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    InvalidArgument(String),
    /// Bad input in one field of the request (`location`,
    /// `required_skills`), which the server names in its answer.
    #[error("{message}")]
    InvalidField { field: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The offer answered is no longer open (expired, withdrawn, answered).
    #[error("{0}")]
    OfferNotOpen(String),
    /// The command concerns another shard (a district this engine does not
    /// serve); the server sends the caller to that shard's owner.
    #[error("{message}")]
    OtherShard { shard: String, message: String },
}

/// Everything the engine can be asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Adds areas and changes known ones; areas the import lacks stay.
    ImportAreas(AreaImport),
    /// The import is the whole map: known areas and service centres it
    /// lacks are retired.
    ReplaceAreas(AreaImport),
    /// Retires an area (kept for history; nothing is placed in it any more),
    /// and with `with_children` every area below it.
    RetireArea {
        area: AreaId,
        with_children: bool,
    },
    /// Adds or updates people. With `all_new`, every id must be new (an import).
    UpsertAgents {
        agents: Vec<AgentProfile>,
        all_new: bool,
        /// Token hashes for people new to the roster (hashes given for
        /// people already on it are left out: they keep their tokens).
        tokens: Vec<AgentTokenHash>,
    },
    CreateIncident {
        id: Option<IncidentId>,
        spec: IncidentSpec,
        /// Report it even where nobody could be offered it: outside every
        /// area of the map, or needing a skill nobody on the roster has
        /// (refused otherwise, as the likely typing mistakes they are).
        force: bool,
    },
    CancelIncident {
        incident: IncidentId,
        reason: String,
    },
    CloseIncident {
        incident: IncidentId,
        feedback: String,
    },
    SetMode {
        area: AreaId,
        mode: Mode,
        reason: String,
    },
    // A person's session.
    Connect {
        agent: AgentId,
    },
    /// The person's session ended. `reachable`: the dispatcher can still
    /// reach them without one (their phone takes Web Push), so they stay a
    /// candidate and keep an open offer until their location goes stale;
    /// otherwise the offer is withdrawn and the location forgotten now.
    Disconnect {
        agent: AgentId,
        reachable: bool,
    },
    ReportLocation {
        agent: AgentId,
        at: Position,
    },
    SetStatus {
        agent: AgentId,
        status: AgentStatus,
    },
    Accept {
        agent: AgentId,
        offer: OfferId,
    },
    Decline {
        agent: AgentId,
        offer: OfferId,
        reason: String,
    },
    Arrive {
        agent: AgentId,
        incident: IncidentId,
    },
    Complete {
        agent: AgentId,
        incident: IncidentId,
        feedback: String,
        /// Uploaded photos (checked to exist by the server).
        photo_refs: Vec<String>,
    },
    /// Plans and mobilisation.
    ImportPlans(Vec<PlanSpec>),
    ActivatePlan {
        plan: PlanId,
        area: AreaId,
        reason: String,
    },
    DeactivatePlan {
        activation: ActivationId,
        reason: String,
    },
    CallUp {
        area: AreaId,
        roles: Vec<Role>,
        reason: String,
        deadline_s: Option<u64>,
    },
    CheckIn {
        agent: AgentId,
        callup: Option<CallupId>,
    },
    /// A check-in by a reply to an SMS or a call (see the dispatcher's
    /// `notify`): as `CheckIn`, without the fresh location a session gives.
    CheckInByReply {
        agent: AgentId,
        callup: Option<CallupId>,
    },
    /// Journals a step of the escalation ladder.
    RecordNotice(crate::event::NoticeStep),
    /// Journals an inbound gateway post that was refused.
    RecordInboundRefused {
        gateway: String,
        reason: String,
    },
    /// Bottom-up: a person reports a problem.
    FieldReport {
        agent: AgentId,
        at: Position,
        category: String,
        text: String,
        photo_ref: String,
        /// Uploaded photos (checked to exist by the server).
        photo_refs: Vec<String>,
    },
    /// An operator messages people.
    SendMessage {
        to: Audience,
        text: String,
    },
    /// A person replies to a message that reached them.
    ReplyToMessage {
        agent: AgentId,
        message: String,
        text: String,
    },
    /// A person has read a message (again: nothing changes).
    MarkMessageRead {
        agent: AgentId,
        message: String,
    },
    TriageAccept {
        incident: IncidentId,
        priority: Option<u8>,
        headcount: Option<u32>,
        skills: Option<BTreeSet<String>>,
    },
    TriageMerge {
        incident: IncidentId,
        into: IncidentId,
    },
    TriageReject {
        incident: IncidentId,
        reason: String,
    },
    /// Merges an open incident (a duplicate) into another open one: its
    /// open offers are withdrawn and it ends as merged (`ReportMerged`).
    MergeIncidents {
        incident: IncidentId,
        into: IncidentId,
    },
    /// Reports an incident an operator found to repeat an open one: it is
    /// recorded (its reporter, description and place kept) and merged into
    /// `into` at once, without being offered to anyone.
    ReportDuplicate {
        id: Option<IncidentId>,
        spec: IncidentSpec,
        into: IncidentId,
    },
    /// Accounts and tokens: hashes are made by the caller (random, slow).
    IssueAgentToken {
        agent: AgentId,
        token_hash: String,
    },
    /// Tokens for many people at once; with `replace` false, people who
    /// have a token keep it and are left out.
    IssueAgentTokens {
        tokens: Vec<AgentTokenHash>,
        replace: bool,
    },
    /// `lifetime_ms`: how long the token works from now (checked against
    /// the bounds in `accounts`).
    AddOperator {
        name: String,
        role: OperatorRole,
        token_hash: String,
        lifetime_ms: i64,
    },
    RotateOperatorToken {
        name: String,
        token_hash: String,
        lifetime_ms: i64,
    },
    RevokeOperatorToken {
        name: String,
    },
    RemoveOperator {
        name: String,
    },
    /// An operator read precise personal data: the audit of it.
    RecordRead {
        rpc: String,
        subject: String,
        people: u32,
    },
    /// A CAP alert from another system, checked at the edge: journaled,
    /// and offered to the commander as a suggestion where it calls for one.
    ReceiveCapAlert {
        alert: crate::cap::ReceivedCapAlert,
    },
    /// A commander approves a suggestion: its areas switch and its plan activates.
    ApproveCapSuggestion {
        suggestion: String,
    },
    DismissCapSuggestion {
        suggestion: String,
        reason: String,
    },
    /// A person holding an assignment says they are safe (报平安).
    SafetyCheckIn {
        agent: AgentId,
    },
    /// 求助: a person asks for help, at `at` if given (else the best
    /// position known), with an optional word. Never rate-limited.
    RequestHelp {
        agent: AgentId,
        at: Option<Position>,
        text: String,
    },
    /// Depots, stock and incidents' requests for supplies.
    Supplies(crate::supplies::SupplyCommand),
    /// Across a shard border, at a person's home shard: reserves them
    /// for another shard's incident and sends its offer (idempotent by
    /// the offer's id).
    BorderReserve(crate::border::BorderReservation),
    /// At a person's home shard: the incident's shard journaled the
    /// assignment of an accepted border offer.
    BorderConfirm {
        offer: OfferId,
    },
    /// At a person's home shard: ends a border reservation (idempotent).
    BorderRelease {
        offer: OfferId,
        end: crate::border::ReservationEnd,
        reason: String,
    },
    /// At a person's home shard: releases the reservations still unanswered
    /// past their expiry (an accepted one waits for the incident's shard).
    ExpireBorderReservations,
    /// At an incident's shard: journals an offer another shard reserved a
    /// person of its own for.
    BorderOffer {
        offer: crate::incident::OfferRecord,
    },
    /// At an incident's shard: withdraws a border offer whose reservation
    /// at the person's home was refused or not answered (journaled first,
    /// so that an acceptance never finds it not made yet). Idempotent.
    BorderWithdraw {
        offer: OfferId,
    },
    /// At an incident's shard: the answer of a person of another shard to
    /// a border offer (accepted: the assignment).
    BorderAnswer {
        offer: OfferId,
        agent: AgentId,
        accepted: bool,
        reason: String,
    },
    /// Duty rosters: shifts, availability, absences, swaps, attendance.
    Rosters(crate::rosters::RosterCommand),
    /// Shelters and evacuations of residents to them.
    Shelters(crate::shelters::ShelterCommand),
}

/// One activation of a plan on an area.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub id: ActivationId,
    pub plan: PlanId,
    pub area: AreaId,
    pub at: Millis,
    pub by: String,
    pub reason: String,
    pub automatic: bool,
    pub incidents: Vec<IncidentId>,
    pub callup: Option<CallupId>,
    pub ended: Option<Millis>,
}

/// One call-up of reserves and its roll-call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Callup {
    pub id: CallupId,
    pub area: AreaId,
    pub roles: Vec<Role>,
    pub reason: String,
    pub by: String,
    pub issued_at: Millis,
    pub deadline: Millis,
    /// Who was called, and when they checked in.
    pub people: BTreeMap<AgentId, Option<Millis>>,
    /// The last step of the escalation ladder towards each person called
    /// (channel and outcome), for the roll-call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reached: BTreeMap<AgentId, (crate::event::NoticeChannel, crate::event::NoticeOutcome)>,
    pub deadline_passed: bool,
    pub by_switch: bool,
    pub ended: Option<Millis>,
}

impl Callup {
    pub fn is_open(&self) -> bool {
        self.ended.is_none()
    }

    pub fn missing(&self) -> Vec<AgentId> {
        self.people.iter().filter(|(_, checked_in)| checked_in.is_none()).map(|(agent, _)| agent.clone()).collect()
    }
}

/// The mode an area was switched to, by whom and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeSetting {
    pub mode: Mode,
    pub reason: String,
    pub actor: String,
    pub since: Millis,
}

/// Durable state: the fold of every event so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub areas: AreaMap,
    pub agents: BTreeMap<AgentId, AgentRecord>,
    pub incidents: BTreeMap<IncidentId, Incident>,
    pub open_incidents: BTreeSet<IncidentId>,
    /// Areas in a mode other than normal.
    pub modes: BTreeMap<AreaId, ModeSetting>,
    pub incidents_reported: u64,
    pub last_seq: u64,
    #[serde(default)]
    pub plans: BTreeMap<PlanId, PlanSpec>,
    #[serde(default)]
    pub activations: BTreeMap<ActivationId, Activation>,
    #[serde(default)]
    pub callups: BTreeMap<CallupId, Callup>,
    /// Grids below their minimum of available people.
    #[serde(default)]
    pub low_grids: BTreeSet<AreaId>,
    /// Operator accounts by name.
    #[serde(default)]
    pub operators: BTreeMap<String, Operator>,
    /// The hash of each person's token (people without one cannot connect).
    #[serde(default)]
    pub agent_tokens: BTreeMap<AgentId, String>,
    /// Operators' messages by id ("msg-000001"), in the order sent; those
    /// past the retention limit are forgotten (`forget_messages_before`).
    #[serde(default)]
    pub messages: BTreeMap<String, MessageRecord>,
    /// Messages sent so far, forgotten ones included: the next one's
    /// number. (0 in a snapshot from before messages were forgotten, when
    /// it was the number of messages kept.)
    #[serde(default)]
    pub messages_sent: u64,
    /// CAP alerts issued and received, and the suggestions made of them.
    #[serde(default)]
    pub cap: crate::cap::CapState,
    /// The check-in clock of each person holding an assignment (safety
    /// check-ins on scene).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub safety: BTreeMap<AgentId, crate::safety::SafetyClock>,
    /// Depots, stock, units and requests for them.
    #[serde(default)]
    pub supplies: crate::supplies::SupplyState,
    /// People of this shard reserved for other shards' incidents, by offer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub border: BTreeMap<OfferId, crate::border::BorderReservation>,
    /// Shifts, availability, absences, swaps and who is checked in.
    #[serde(default)]
    pub rosters: crate::rosters::RosterState,
    /// Shelters, their occupancy and the evacuations sent to them.
    #[serde(default)]
    pub shelters: crate::shelters::ShelterState,
}

impl State {
    /// The strictest mode over a placement's areas, and the area that set it
    /// (the widest one when several set the same grade).
    pub fn effective_mode(&self, placement: &Placement) -> (Mode, Option<(AreaLevel, AreaId)>) {
        let mut strictest = (Mode::Normal, None);
        for (level, area) in placement.areas() {
            if let Some(setting) = self.modes.get(area)
                && setting.mode > strictest.0
            {
                strictest = (setting.mode, Some((level, area.clone())));
            }
        }
        strictest
    }

    /// The mode on an area itself and the strictest over it and its ancestors.
    pub fn area_modes(&self, area: &AreaId) -> (Mode, Mode) {
        let own = self.modes.get(area).map_or(Mode::Normal, |setting| setting.mode);
        let effective = self.effective_mode(&self.areas.placement_of_area(area)).0;
        (own, effective)
    }
}

pub struct Engine {
    state: State,
    live: Live,
    /// Who on the roster has each skill, kept in step with `state.agents`.
    skills: SkillIndex,
    /// Who lives in each area, kept in step with `state.agents`.
    homes: HomeIndex,
    policy: Policy,
    /// The district this engine serves when the city is split into one
    /// shard per district; `None` serves the whole city.
    scope: Option<AreaId>,
    /// The sequence number of the state this engine started from (a
    /// snapshot's, or 0): events after it were replayed or made since.
    restored_seq: u64,
}

impl Engine {
    pub fn new(policy: Policy) -> Self {
        Engine::restore(policy, State::default())
    }

    /// Starts from a snapshot; events after `state.last_seq` follow with `replay`.
    pub fn restore(policy: Policy, state: State) -> Self {
        let skills = SkillIndex::of(state.agents.values().map(|record| &record.profile));
        let homes = HomeIndex::of(state.agents.values().map(|record| &record.profile));
        let restored_seq = state.last_seq;
        // Recovered from a journal, the first tick looks at every incident
        // still lacking offers: a batch window or retry the previous process
        // held in memory is gone, and an incident reported just before a
        // crash would otherwise wait for something to touch it (found by
        // pingji-sim, seed 188). A new engine has nothing to look at.
        let next_retry = (state.last_seq > 0).then_some(Millis(0));
        let live = Live { next_retry, ..Live::default() };
        Engine { state, live, skills, homes, policy, scope: None, restored_seq }
    }

    /// The sequence number of the state this engine was restored from (0
    /// for a new one): with `state().last_seq`, how many events the journal
    /// holds after its latest snapshot.
    pub fn restored_seq(&self) -> u64 {
        self.restored_seq
    }

    /// Serves only `district` from now on: incidents located in another
    /// district, people living in one, and switches of another district's
    /// areas are refused with [`Rejection::OtherShard`]. Not journaled: it is
    /// the process's configuration, and replay does not check it.
    pub fn set_scope(&mut self, district: Option<AreaId>) {
        self.scope = district;
    }

    pub fn scope(&self) -> Option<&AreaId> {
        self.scope.as_ref()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Puts `state` in place of the current one, keeping who is connected
    /// and where: for going back to the journaled state when a batch could
    /// not be journaled.
    pub fn rewind(&mut self, state: State) {
        self.skills = SkillIndex::of(state.agents.values().map(|record| &record.profile));
        self.homes = HomeIndex::of(state.agents.values().map(|record| &record.profile));
        self.state = state;
        // The map put back may be numbered otherwise (an import or a
        // retirement was in the batch).
        self.live.replace_everyone(&self.state.areas);
        self.recopy_roster();
    }

    /// Copies the roster into every located person's live record and index
    /// entry again: after the state was put back, the copies follow it.
    fn recopy_roster(&mut self) {
        for (agent, live) in self.live.agents.iter_mut() {
            let Some(at) = live.location else {
                continue;
            };
            let record = self.state.agents.get(agent);
            self.live.index.remove(live.slot, at, live.indexed_as);
            if let Some(record) = record {
                live.indexed_as = record.profile.travel_mode;
                (live.skills, live.skills_beyond_bits) = self.live.skill_bits.of(&record.profile.skills);
                live.free = record.is_free();
            }
            live.roster = record.map(live::RosterCopy::of);
            let indexed = live.indexed();
            self.live.index.insert(indexed, at, live.indexed_as);
        }
    }

    pub fn into_state(self) -> State {
        self.state
    }

    /// Who on the roster has each skill.
    pub fn skills(&self) -> &SkillIndex {
        &self.skills
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    pub fn live_agent(&self, agent: &AgentId) -> Option<&LiveAgent> {
        self.live.agents.get(agent)
    }

    /// Where a person's live location places them (nowhere without one).
    pub fn live_placement(&self, live: &LiveAgent) -> &Placement {
        self.state.areas.placement_by_number(live.placed_in)
    }

    /// Applies a journaled event during restart.
    pub fn replay(&mut self, event: &Event) -> Result<(), String> {
        if event.seq != self.state.last_seq + 1 {
            return Err(format!("journal out of order: expected event {}, found {}", self.state.last_seq + 1, event.seq));
        }
        self.evolve(event);
        Ok(())
    }

    /// Decides, evolves and reacts. A rejected command changes nothing.
    /// Whether a command would be accepted now, changing nothing: a dry run.
    /// Only for commands decided from the state alone (not the live ones:
    /// connecting, disconnecting, locations).
    pub fn check(&self, command: &Command, now: Millis) -> Result<(), Rejection> {
        self.decide(command, now).map(|_| ())
    }

    pub fn execute(&mut self, command: Command, actor: &str, now: Millis) -> Result<Vec<Event>, Rejection> {
        let mut out = Vec::new();
        match command {
            Command::Connect { agent } => self.connect(&agent)?,
            Command::Disconnect { agent, reachable } => self.disconnect(&agent, reachable, now, &mut out)?,
            Command::ReportLocation { agent, at } => self.report_location(&agent, at, now, &mut out)?,
            Command::RequestHelp { agent, at, text } => {
                self.check_scope(&Command::RequestHelp { agent: agent.clone(), at, text: String::new() })?;
                self.request_help(&agent, at, &text, actor, now, &mut out)?
            }
            command => {
                let events = self.decide(&command, now)?;
                for kind in events {
                    self.emit(&mut out, actor, now, kind);
                }
                self.react(&command, actor, now, &mut out);
                self.react_border(&command, now, &mut out);
                self.follow_supplies(now, &mut out);
                self.follow_shelters(now, &mut out);
            }
        }
        Ok(out)
    }

    /// Numbers an event, applies it and collects it.
    fn emit(&mut self, out: &mut Vec<Event>, actor: &str, now: Millis, kind: EventKind) {
        let event = Event { seq: self.state.last_seq + 1, at: now, actor: actor.to_string(), kind };
        self.evolve(&event);
        out.push(event);
    }

    fn connect(&mut self, agent: &AgentId) -> Result<(), Rejection> {
        if !self.state.agents.contains_key(agent) {
            return Err(Rejection::NotFound(format!("agent {agent} is not on the roster; ask an operator to add them")));
        }
        let live = self.live.agents.record_for(agent);
        if live.connected {
            return Err(Rejection::AlreadyExists(format!(
                "agent {agent} already has a live session; close it first, or if your connection just dropped, retry in a few seconds"
            )));
        }
        live.connected = true;
        Ok(())
    }

    fn disconnect(&mut self, agent: &AgentId, reachable: bool, now: Millis, out: &mut Vec<Event>) -> Result<(), Rejection> {
        let Some(live) = self.live.agents.get_mut(agent).filter(|live| live.connected) else {
            return Err(Rejection::FailedPrecondition(format!("agent {agent} is not connected")));
        };
        live.connected = false;
        let stale_at = Millis(live.located_at.0 + (self.policy.location_stale_s as i64) * 1000);
        if reachable && live.location.is_some() && stale_at > now {
            // Still a candidate, offered through their phone's notifications,
            // until the location the app last sent is stale.
            self.live.reachable_until.insert((stale_at, agent.clone()));
            return Ok(());
        }
        self.forget_location(agent);
        self.withdraw_open_offer(agent, crate::event::WithdrawReason::Disconnected, now, out);
        Ok(())
    }

    /// Takes a person out of the candidate search, keeping where they were
    /// last for a welfare check or a help call after the session.
    fn forget_location(&mut self, agent: &AgentId) {
        let Some(live) = self.live.agents.get_mut(agent) else { return };
        if let Some(at) = live.location.take() {
            self.live.index.remove(live.slot, at, live.indexed_as);
            self.live.last_known.insert(agent.clone(), (at, live.located_at));
        }
    }

    /// People reachable without a session whose last location went stale
    /// by `now` leave the candidate search (their open offer times out as
    /// any other).
    fn forget_stale_reachable(&mut self, now: Millis) {
        let stale_s = self.policy.location_stale_s as i64;
        while let Some((due, agent)) = self.live.reachable_until.first().cloned().filter(|(due, _)| *due <= now) {
            self.live.reachable_until.remove(&(due, agent.clone()));
            // Not if they came back, or reported again since (a later entry).
            let stale =
                self.live.agents.get(&agent).is_some_and(|live| !live.connected && live.located_at.0 + stale_s * 1000 <= now.0);
            if stale {
                self.forget_location(&agent);
            }
        }
    }

    fn report_location(&mut self, agent: &AgentId, at: Position, now: Millis, out: &mut Vec<Event>) -> Result<(), Rejection> {
        let at = Position::checked(at.lon, at.lat).map_err(Rejection::InvalidArgument)?;
        let Some(live) = self.live.agents.get_mut(agent).filter(|live| live.connected) else {
            return Err(Rejection::FailedPrecondition(format!("agent {agent} is not connected; say hello first")));
        };
        let newly_located = live.location.is_none() || now.seconds_since(live.located_at) > self.policy.location_stale_s as f64;
        let first_location = live.location.is_none();
        let previous = live.location.replace(at);
        // A phone standing still reports the same point: the index stays.
        let unmoved = previous == Some(at) && !first_location;
        // Moved in the index only once the copies are set (below).
        let moved_from = previous.filter(|_| !unmoved);
        live.located_at = now;
        live.placed_in = self.state.areas.locate(at, &mut self.live.area_candidates);
        // What the search needs from the roster is copied once per session
        // (and on a roster change, in evolve), not looked up on every report.
        if first_location && let Some(record) = self.state.agents.get(agent) {
            live.indexed_as = record.profile.travel_mode;
            (live.skills, live.skills_beyond_bits) = self.live.skill_bits.of(&record.profile.skills);
            live.free = record.is_free();
            live.roster = Some(live::RosterCopy::of(record));
        }
        match moved_from {
            Some(from) => self.live.index.relocate(live.slot, from, at, live.indexed_as),
            None if first_location => {
                let indexed = live.indexed();
                self.live.index.insert(indexed, at, live.indexed_as);
            }
            None => {}
        }
        if newly_located && self.state.agents.get(agent).is_some_and(AgentRecord::is_free) {
            self.dispatch_waiting_for(agent, now, out);
        }
        Ok(())
    }

    /// Fires every deadline due at `now`.
    pub fn tick(&mut self, now: Millis) -> Vec<Event> {
        let mut out = Vec::new();
        self.fire_deadlines(now, &mut out);
        out
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.earliest_deadline()
    }

    /// Recent assignments of a person within the workload window.
    pub fn recent_assignments(&self, agent: &AgentRecord, now: Millis) -> u32 {
        self.assignments_since_window(&agent.recent_assignments, now)
    }

    /// How many of `assigned_at` fall within the workload window before `now`.
    fn assignments_since_window(&self, assigned_at: &[Millis], now: Millis) -> u32 {
        let window_start = Millis(now.0 - (self.policy.workload_window_s as i64) * 1000);
        assigned_at.iter().filter(|at| **at > window_start).count() as u32
    }

    /// The mode in force for a person: where they are, else at home.
    pub fn mode_for_agent(&self, agent: &AgentId) -> Mode {
        let placement = match self.live.agents.get(agent).filter(|live| live.location.is_some()) {
            Some(live) => self.live_placement(live).clone(),
            None => self
                .state
                .agents
                .get(agent)
                .and_then(|record| record.profile.home_area.as_ref())
                .map(|home| self.state.areas.placement_of_area(home))
                .unwrap_or_default(),
        };
        self.state.effective_mode(&placement).0
    }

    /// Connected people inside an area (by live location, else home area).
    pub fn connected_agents_in(&self, area: &AreaId) -> Vec<AgentId> {
        let Some(level) = self.state.areas.get(area).map(|spec| spec.level) else {
            return Vec::new();
        };
        self.live
            .agents
            .iter()
            .filter(|(_, live)| live.connected)
            .filter(|(id, live)| {
                if live.location.is_some() {
                    return self.live_placement(live).within(level, area);
                }
                self.state.agents.get(*id).and_then(|record| record.profile.home_area.as_ref()).is_some_and(|home| {
                    self.state.areas.area_placement(home).is_some_and(|placement| placement.within(level, area))
                })
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
