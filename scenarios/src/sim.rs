//! The fast runner: the dispatch engine in process on a virtual clock, with
//! simulated people answering offers, travelling, and reporting back by the
//! behaviour of their role. Same drill file and seed, same event log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pingji_dispatcher::convert::stored_event;
use pingji_dispatcher::journal::{Journal, SqliteJournal};
use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::event::{Event, EventKind, NoticeChannel, NoticeOutcome, NoticeStep};
use pingji_engine::ids::{AgentId, AreaId, CallupId, IncidentId, Millis, OfferId, PlanId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::roster::{AgentProfile, AgentStatus, TravelMode};
use pingji_engine::spatial::Position;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::drill::{Behaviour, Drill, Spread, TimelineEntry, parse_mode};
use crate::{border, roster};

/// Drills start at this virtual instant (2026-01-01T08:00:00Z) so that runs compare.
pub const DRILL_START: Millis = Millis(1_767_254_400_000);
/// How often a simulated person re-reports an unchanged location.
const REFRESH_S: u64 = 300;
/// Events written to the journal per transaction.
const JOURNAL_BATCH: usize = 4096;

pub const OPERATOR: &str = "operator:drill";

/// Everything the report is made of: the event log and the map.
pub struct Record {
    pub events: Vec<Event>,
    pub started_at: Millis,
    pub ended_at: Millis,
}

#[derive(Debug)]
enum Action {
    Timeline(usize),
    DeliverSupplies {
        request: pingji_engine::supplies::SupplyRequestId,
    },
    /// The residents of an evacuation still on their way arrive.
    ShelterArrivals {
        evacuation: pingji_engine::shelters::EvacuationId,
    },
    BurstIncident {
        entry: usize,
        number: u32,
    },
    Answer {
        agent: AgentId,
        offer: OfferId,
        accept: bool,
        reason: String,
    },
    Arrive {
        agent: AgentId,
        incident: IncidentId,
    },
    Complete {
        agent: AgentId,
        incident: IncidentId,
    },
    Refresh {
        agent: AgentId,
    },
    CheckIn {
        agent: AgentId,
        callup: CallupId,
    },
    /// A rung of the simulated escalation ladder (see `drill::ChannelShares`).
    Notify(NoticeStep),
    /// A person on an assignment checks in safe (报平安), if they still hold it.
    SafetyCheckIn {
        agent: AgentId,
        incident: IncidentId,
    },
}

struct Person {
    profile: AgentProfile,
    at: Position,
    connected: bool,
}

struct Simulation<'a> {
    drill: &'a Drill,
    engine: Engine,
    areas: AreaMap,
    rng: StdRng,
    /// Draws for the simulated ladder, apart so that a drill without
    /// `[channels]` draws the same as before it had them.
    channel_rng: StdRng,
    /// Draws for safety check-ins and help calls, apart for the same reason.
    safety_rng: StdRng,
    now: Millis,
    queue: BTreeMap<(Millis, u64), Action>,
    next_action: u64,
    people: BTreeMap<AgentId, Person>,
    events: Vec<Event>,
    journal: SqliteJournal,
    journaled: usize,
    incidents_created: u64,
    /// Shared borders of bursts placed near one, by timeline entry.
    borders: BTreeMap<usize, Vec<(Position, Position)>>,
}

/// Runs a drill to its end. `progress` is told the simulated seconds so far.
pub fn run(drill: &Drill, journal_path: &Path, mut progress: impl FnMut(u64)) -> anyhow::Result<Record> {
    if journal_path.exists() {
        std::fs::remove_file(journal_path)?;
        for suffix in ["-wal", "-shm"] {
            let side = journal_path.with_file_name(format!(
                "{}{suffix}",
                journal_path.file_name().and_then(|name| name.to_str()).unwrap_or("journal.db")
            ));
            let _ = std::fs::remove_file(side);
        }
    }
    let journal = SqliteJournal::open(journal_path)?;
    let mut simulation = Simulation {
        drill,
        engine: Engine::new(drill.policy.clone()),
        areas: AreaMap::from(drill.map.clone()),
        rng: StdRng::seed_from_u64(drill.file.seed),
        channel_rng: StdRng::seed_from_u64(drill.file.seed ^ 0x5e5e_5e5e),
        safety_rng: StdRng::seed_from_u64(drill.file.seed ^ 0x0a5e_0a5e),
        now: DRILL_START,
        queue: BTreeMap::new(),
        next_action: 0,
        people: BTreeMap::new(),
        events: Vec::new(),
        journal,
        journaled: 0,
        incidents_created: 0,
        borders: BTreeMap::new(),
    };
    simulation.set_up()?;
    let end = DRILL_START.plus_seconds(drill.file.duration_s);
    let mut reported = 0;
    loop {
        let next_action = simulation.queue.first_key_value().map(|((at, _), _)| *at);
        let next_deadline = simulation.engine.next_deadline();
        let next = match (next_action, next_deadline) {
            (Some(action), Some(deadline)) => action.min(deadline),
            (Some(action), None) => action,
            (None, Some(deadline)) => deadline,
            (None, None) => break,
        };
        if next > end {
            break;
        }
        simulation.now = next.max(simulation.now);
        if next_deadline == Some(next) {
            let fired = simulation.engine.tick(simulation.now);
            simulation.handle(fired)?;
        } else if let Some(((_, _), action)) = simulation.queue.pop_first() {
            simulation.perform(action)?;
        }
        let elapsed = (simulation.now.0 - DRILL_START.0) as u64 / 1000;
        if elapsed >= reported + 30 {
            reported = elapsed;
            progress(elapsed);
        }
    }
    simulation.flush_journal()?;
    progress(drill.file.duration_s);
    Ok(Record { events: simulation.events, started_at: DRILL_START, ended_at: end })
}

impl Simulation<'_> {
    fn schedule(&mut self, at: Millis, action: Action) {
        self.next_action += 1;
        self.queue.insert((at, self.next_action), action);
    }

    fn execute(&mut self, command: Command, actor: &str) -> anyhow::Result<()> {
        // A person acting on something that changed meanwhile (an offer that
        // timed out, an incident cancelled) is refused; that is part of the drill.
        if let Ok(events) = self.engine.execute(command, actor, self.now) {
            self.handle(events)?;
        }
        Ok(())
    }

    fn set_up(&mut self) -> anyhow::Result<()> {
        self.execute(Command::ImportAreas(self.drill.map.clone()), OPERATOR)?;
        if !self.drill.plan_texts.is_empty() {
            let plans = self
                .drill
                .plan_texts
                .iter()
                .map(|text| pingji_engine::plans::parse_plan(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let events = self
                .engine
                .execute(Command::ImportPlans(plans), OPERATOR, self.now)
                .map_err(|rejection| anyhow::anyhow!("the plans were refused: {rejection}"))?;
            self.handle(events)?;
        }
        let people = match (&self.drill.roster_csv, &self.drill.file.roster.generate) {
            (Some(text), _) => roster::from_csv(text).map_err(anyhow::Error::msg)?,
            (None, Some(generator)) => roster::generate(&mut self.rng, &self.areas, generator),
            (None, None) => Vec::new(),
        };
        let events = self
            .engine
            .execute(Command::UpsertAgents { agents: people.clone(), all_new: true, tokens: Vec::new() }, OPERATOR, self.now)
            .map_err(|rejection| anyhow::anyhow!("the roster was refused: {rejection}"))?;
        self.handle(events)?;
        if !self.drill.file.depots.is_empty() {
            let import = crate::supplies::import(&self.drill.file.depots, &self.areas).map_err(anyhow::Error::msg)?;
            let events = self
                .engine
                .execute(Command::Supplies(pingji_engine::supplies::SupplyCommand::Import(import)), OPERATOR, self.now)
                .map_err(|rejection| anyhow::anyhow!("the depots were refused: {rejection}"))?;
            self.handle(events)?;
        }
        if !self.drill.file.shifts.is_empty() {
            let shifts = crate::shifts::shifts(&self.drill.file.shifts, &people, &self.areas).map_err(anyhow::Error::msg)?;
            let command = Command::Rosters(pingji_engine::rosters::RosterCommand::SetShifts(shifts));
            let events = self
                .engine
                .execute(command, OPERATOR, self.now)
                .map_err(|rejection| anyhow::anyhow!("the shifts were refused: {rejection}"))?;
            self.handle(events)?;
        }

        if !self.drill.file.shelters.is_empty() {
            use pingji_engine::shelters::ShelterCommand;
            let (specs, open) = crate::shelters::import(&self.drill.file.shelters, &self.areas).map_err(anyhow::Error::msg)?;
            let events = self
                .engine
                .execute(Command::Shelters(ShelterCommand::Import(specs)), OPERATOR, self.now)
                .map_err(|rejection| anyhow::anyhow!("the shelters were refused: {rejection}"))?;
            self.handle(events)?;
            for shelter in open {
                self.execute(Command::Shelters(ShelterCommand::Open { shelter }), OPERATOR)?;
            }
        }
        let connected_share = if self.drill.roster_csv.is_some() { self.drill.file.roster.connected_share } else { 1.0 };
        for profile in people {
            let home = profile
                .home
                .or_else(|| profile.home_area.as_ref().and_then(|area| self.areas.inside_point(area)))
                .unwrap_or(Position { lon: 0.0, lat: 0.0 });
            let connected = profile.on_duty && self.rng.random::<f64>() < connected_share;
            let id = profile.id.clone();
            self.people.insert(id.clone(), Person { profile, at: home, connected });
            if connected {
                self.execute(Command::Connect { agent: id.clone() }, &agent_actor(&id))?;
                self.execute(Command::ReportLocation { agent: id.clone(), at: home }, &agent_actor(&id))?;
                let first_refresh = self.rng.random_range(1..=REFRESH_S);
                self.schedule(self.now.plus_seconds(first_refresh), Action::Refresh { agent: id });
            }
        }
        for index in 0..self.drill.timeline.len() {
            let at = DRILL_START.plus_seconds(self.drill.timeline[index].1.at_s);
            self.schedule(at, Action::Timeline(index));
        }
        Ok(())
    }

    fn behaviour(&self, agent: &AgentId) -> Behaviour {
        match self.people.get(agent) {
            Some(person) => self.drill.behaviour(person.profile.role).clone(),
            None => self.drill.default_behaviour.clone(),
        }
    }

    fn draw(&mut self, spread: Spread) -> f64 {
        triangular(&mut self.rng, spread)
    }

    fn perform(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::Timeline(index) => {
                let entry = self.drill.timeline[index].1.clone();
                self.timeline(index, &entry)?;
            }
            Action::BurstIncident { entry, number } => self.burst_incident(entry, number)?,
            Action::DeliverSupplies { request } => {
                let command = pingji_engine::supplies::SupplyCommand::Deliver { request };
                self.execute(Command::Supplies(command), OPERATOR)?;
            }
            Action::ShelterArrivals { evacuation } => {
                // Those whose incident ended on the way had their places
                // released: only the places still held arrive.
                let held = self.engine.shelters().evacuations.get(&evacuation).map_or(0, |record| record.held());
                if held > 0 {
                    let command = pingji_engine::shelters::ShelterCommand::CheckIn {
                        shelter: None,
                        evacuation: Some(evacuation),
                        count: held,
                        names: Vec::new(),
                    };
                    self.execute(Command::Shelters(command), OPERATOR)?;
                }
            }
            Action::Answer { agent, offer, accept, reason } => {
                let command = if accept {
                    Command::Accept { agent: agent.clone(), offer }
                } else {
                    Command::Decline { agent: agent.clone(), offer, reason }
                };
                self.execute(command, &agent_actor(&agent))?;
            }
            Action::Arrive { agent, incident } => {
                if let Some(at) = self.engine.state().incidents.get(&incident).map(|incident| incident.spec.at)
                    && let Some(person) = self.people.get_mut(&agent)
                {
                    person.at = at;
                }
                self.execute(Command::Arrive { agent: agent.clone(), incident }, &agent_actor(&agent))?;
            }
            Action::Complete { agent, incident } => {
                let feedback = "handled on site".to_string();
                self.execute(
                    Command::Complete { agent: agent.clone(), incident, feedback, photo_refs: Vec::new() },
                    &agent_actor(&agent),
                )?;
                self.report_location(&agent)?;
            }
            Action::CheckIn { agent, callup } => {
                // A reserve who was off line comes on line to answer.
                let needs_connecting = self.people.get(&agent).is_some_and(|person| !person.connected);
                if needs_connecting {
                    if let Some(person) = self.people.get_mut(&agent) {
                        person.connected = true;
                    }
                    self.execute(Command::Connect { agent: agent.clone() }, &agent_actor(&agent))?;
                    self.report_location(&agent)?;
                    self.schedule(self.now.plus_seconds(REFRESH_S), Action::Refresh { agent: agent.clone() });
                } else {
                    self.report_location(&agent)?;
                }
                self.execute(Command::CheckIn { agent: agent.clone(), callup: Some(callup) }, &agent_actor(&agent))?;
            }
            Action::Notify(step) => self.execute(Command::RecordNotice(step), "dispatcher")?,
            Action::SafetyCheckIn { agent, incident } => {
                let holds = self.engine.state().agents.get(&agent).and_then(|record| record.current_incident.as_ref());
                if holds == Some(&incident) {
                    self.execute(Command::SafetyCheckIn { agent: agent.clone() }, &agent_actor(&agent))?;
                }
            }
            Action::Refresh { agent } => {
                if self.people.get(&agent).is_some_and(|person| person.connected) {
                    self.report_location(&agent)?;
                    self.schedule(self.now.plus_seconds(REFRESH_S), Action::Refresh { agent });
                }
            }
        }
        Ok(())
    }

    fn report_location(&mut self, agent: &AgentId) -> anyhow::Result<()> {
        let Some(at) = self.people.get(agent).filter(|person| person.connected).map(|person| person.at) else {
            return Ok(());
        };
        self.execute(Command::ReportLocation { agent: agent.clone(), at }, &agent_actor(agent))
    }

    fn timeline(&mut self, index: usize, entry: &TimelineEntry) -> anyhow::Result<()> {
        if let Some(mode) = &entry.mode {
            let grade = parse_mode(&mode.grade).unwrap_or(pingji_engine::policy::Mode::Normal);
            let command = Command::SetMode { area: AreaId::new(&mode.area), mode: grade, reason: mode.reason.clone() };
            self.execute(command, OPERATOR)?;
        }
        if let Some(incident) = &entry.incident {
            let at = match (incident.at, &incident.area) {
                (Some([lon, lat]), _) => Position { lon, lat },
                (None, Some(area)) => self.areas.inside_point(&AreaId::new(area)).unwrap_or(Position { lon: 0.0, lat: 0.0 }),
                (None, None) => Position { lon: 0.0, lat: 0.0 },
            };
            let spec = IncidentSpec {
                at,
                category: incident.category.clone(),
                priority: incident.priority,
                skills: incident.skills.iter().cloned().collect(),
                headcount: incident.need,
                description: incident.description.clone(),
                source_id: String::new(),
            };
            self.create_incident(incident.id.clone().map(IncidentId::new), spec)?;
        }
        if let Some(burst) = &entry.burst {
            for number in 0..burst.count {
                let offset_ms = (burst.over_s as i64 * 1000 * number as i64) / burst.count as i64;
                self.schedule(Millis(self.now.0 + offset_ms), Action::BurstIncident { entry: index, number });
            }
        }
        if let Some(cancel) = &entry.cancel {
            let chosen: Vec<IncidentId> = match (&cancel.incident, cancel.share) {
                (Some(id), _) => vec![IncidentId::new(id)],
                (None, Some(share)) => {
                    let open: Vec<IncidentId> = self.engine.state().open_incidents.iter().cloned().collect();
                    open.into_iter().filter(|_| self.rng.random::<f64>() < share).collect()
                }
                (None, None) => Vec::new(),
            };
            for incident in chosen {
                self.execute(Command::CancelIncident { incident, reason: cancel.reason.clone() }, OPERATOR)?;
            }
        }
        if let Some(plan) = &entry.plan {
            let area = AreaId::new(&plan.area);
            if let Some(id) = &plan.activate {
                let command = Command::ActivatePlan { plan: PlanId::new(id), area, reason: plan.reason.clone() };
                self.execute(command, OPERATOR)?;
            } else if let Some(id) = &plan.deactivate {
                let open = self
                    .engine
                    .state()
                    .activations
                    .values()
                    .find(|activation| activation.ended.is_none() && activation.plan.as_str() == id && activation.area == area)
                    .map(|activation| activation.id.clone());
                if let Some(activation) = open {
                    self.execute(Command::DeactivatePlan { activation, reason: plan.reason.clone() }, OPERATOR)?;
                }
            }
        }
        if let Some(help) = &entry.help {
            self.help_call(help)?;
        }
        if let Some(supplies) = &entry.supplies {
            self.request_supplies(supplies)?;
        }
        if let Some(evacuate) = &entry.evacuate {
            self.evacuate(evacuate)?;
        }
        if let Some(off) = &entry.off_duty {
            let area = off.area.as_ref().map(AreaId::new);
            let level = area.as_ref().and_then(|area| self.areas.get(area)).map(|spec| spec.level);
            let role = off.role.as_deref().and_then(crate::drill::parse_role);
            let chosen: Vec<AgentId> = self
                .engine
                .state()
                .agents
                .values()
                .filter(|record| record.is_free())
                .filter(|record| role.is_none_or(|role| record.profile.role == role))
                .filter(|record| match (&area, level) {
                    (Some(area), Some(level)) => record
                        .profile
                        .home_area
                        .as_ref()
                        .is_some_and(|home| self.areas.placement_of_area(home).within(level, area)),
                    _ => true,
                })
                .map(|record| record.profile.id.clone())
                .collect();
            for agent in chosen {
                if self.rng.random::<f64>() < off.share {
                    let command = Command::SetStatus { agent: agent.clone(), status: AgentStatus::OffDuty };
                    self.execute(command, &agent_actor(&agent))?;
                }
            }
        }
        Ok(())
    }

    /// A help call of the timeline: by the person named, or one drawn from
    /// the connected people at home in the area.
    fn help_call(&mut self, help: &crate::drill::HelpEntry) -> anyhow::Result<()> {
        let agent = match (&help.agent, &help.area) {
            (Some(agent), _) => Some(AgentId::new(agent)),
            (None, Some(area)) => {
                let area = AreaId::new(area);
                let level = self.areas.get(&area).map(|spec| spec.level);
                let candidates: Vec<AgentId> = self
                    .people
                    .iter()
                    .filter(|(_, person)| person.connected)
                    .filter(|(_, person)| match (&person.profile.home_area, level) {
                        (Some(home), Some(level)) => self.areas.placement_of_area(home).within(level, &area),
                        _ => false,
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                (!candidates.is_empty()).then(|| candidates[self.safety_rng.random_range(0..candidates.len())].clone())
            }
            (None, None) => None,
        };
        let Some(agent) = agent else {
            return Ok(());
        };
        let at = match help.at {
            Some([lon, lat]) => Some(Position { lon, lat }),
            None => self.people.get(&agent).map(|person| person.at),
        };
        self.execute(Command::RequestHelp { agent: agent.clone(), at, text: help.text.clone() }, &agent_actor(&agent))
    }

    /// Safety check-ins: a person just assigned is drawn to check in or stay
    /// quiet for the whole assignment; one who checks in does so at four
    /// fifths of each interval.
    fn plan_safety_check_ins(&mut self, events: &[Event]) {
        let Some(share) = self.drill.file.safety.as_ref().map(|safety| safety.check_in) else {
            return;
        };
        for event in events {
            let (agent, first) = match &event.kind {
                EventKind::Assigned { agent, .. } => (agent, true),
                EventKind::SafetyCheckIn { agent, .. } => (agent, false),
                _ => continue,
            };
            if first && self.safety_rng.random::<f64>() >= share {
                continue;
            }
            if let Some(due) = self.engine.safety_due(agent) {
                let at = Millis(due.due.0 - (due.interval_s as i64) * 1000 / 5);
                self.schedule(at.max(self.now), Action::SafetyCheckIn { agent: agent.clone(), incident: due.incident });
            }
        }
    }

    /// Every open incident of the entry's category asks for its items; the
    /// proposal is confirmed and sent at once (what no depot has is short)
    /// and delivered later.
    fn request_supplies(&mut self, entry: &crate::supplies::SupplyEntry) -> anyhow::Result<()> {
        use pingji_engine::supplies::{ItemId, SupplyCommand, SupplyEvent, SupplyLine};
        let lines: Vec<SupplyLine> =
            entry.items.iter().map(|(item, quantity)| SupplyLine { item: ItemId::new(item), quantity: *quantity }).collect();
        let asking: Vec<IncidentId> = self
            .engine
            .state()
            .open_incidents
            .iter()
            .filter(|id| self.engine.state().incidents.get(*id).is_some_and(|incident| incident.spec.category == entry.category))
            .cloned()
            .collect();
        for incident in asking {
            let command = Command::Supplies(SupplyCommand::Request { id: None, incident, lines: lines.clone() });
            let Ok(events) = self.engine.execute(command, OPERATOR, self.now) else { continue };
            let request = events.iter().find_map(|event| match &event.kind {
                EventKind::Supplies(SupplyEvent::SuppliesRequested { request, .. }) => Some(request.clone()),
                _ => None,
            });
            self.handle(events)?;
            let Some(request) = request else { continue };
            self.execute(Command::Supplies(SupplyCommand::Confirm { request: request.clone(), allocations: None }), OPERATOR)?;
            let dispatch = Command::Supplies(SupplyCommand::Dispatch { request: request.clone(), carrier: None });
            self.execute(dispatch, OPERATOR)?;
            self.schedule(self.now.plus_seconds(entry.deliver_after_s), Action::DeliverSupplies { request });
        }
        Ok(())
    }

    /// Every open incident of the entry's category sends its group to the
    /// nearest open shelter with room (a group no shelter has room for
    /// stays where it is); the residents arrive later.
    fn evacuate(&mut self, entry: &crate::shelters::EvacuateEntry) -> anyhow::Result<()> {
        use pingji_engine::shelters::{ShelterCommand, ShelterEvent};
        let needs = entry.facilities().map_err(anyhow::Error::msg)?;
        let evacuating: Vec<IncidentId> = self
            .engine
            .state()
            .open_incidents
            .iter()
            .filter(|id| self.engine.state().incidents.get(*id).is_some_and(|incident| incident.spec.category == entry.category))
            .cloned()
            .collect();
        for incident in evacuating {
            let command = Command::Shelters(ShelterCommand::Evacuate {
                id: None,
                incident,
                residents: entry.residents,
                needs: needs.clone(),
                shelter: None,
            });
            let Ok(events) = self.engine.execute(command, OPERATOR, self.now) else { continue };
            let evacuation = events.iter().find_map(|event| match &event.kind {
                EventKind::Shelters(ShelterEvent::EvacuationAssigned { evacuation, .. }) => Some(evacuation.clone()),
                _ => None,
            });
            self.handle(events)?;
            if let Some(evacuation) = evacuation {
                self.schedule(self.now.plus_seconds(entry.arrive_after_s), Action::ShelterArrivals { evacuation });
            }
        }
        Ok(())
    }

    fn burst_incident(&mut self, entry: usize, number: u32) -> anyhow::Result<()> {
        let Some(burst) = self.drill.timeline[entry].1.burst.clone() else {
            return Ok(());
        };
        let area = AreaId::new(&burst.area);
        let Some(spec) = self.areas.get(&area).cloned() else {
            return Ok(());
        };
        let other = burst.border_with.as_ref().and_then(|other| self.areas.get(&AreaId::new(other))).cloned();
        let at = match other {
            Some(other) => {
                let border = self.borders.entry(entry).or_insert_with(|| border::shared_border(&spec, &other));
                border::random_point_near(&mut self.rng, &self.areas, border, [&spec, &other], burst.within_m)
            }
            None => roster::random_point_in(&mut self.rng, &self.areas, &spec),
        };
        let at = at.unwrap_or(Position { lon: 0.0, lat: 0.0 });
        let category = roster::weighted(&mut self.rng, &burst.categories).cloned().unwrap_or_else(|| "other".to_string());
        let priority = burst.priority[self.rng.random_range(0..burst.priority.len())];
        let headcount = burst.need[self.rng.random_range(0..burst.need.len())];
        let skills: BTreeSet<String> = burst.skills.get(&category).cloned().unwrap_or_default().into_iter().collect();
        let description = format!("{category} #{} of a burst in {}", number + 1, spec.name);
        let incident = IncidentSpec { at, category, priority, skills, headcount, description, source_id: String::new() };
        self.create_incident(None, incident)
    }

    fn create_incident(&mut self, id: Option<IncidentId>, spec: IncidentSpec) -> anyhow::Result<()> {
        self.incidents_created += 1;
        // A drill reports what it was written to rehearse, incidents nobody
        // could take included (the report counts them): never refused as a
        // likely typing mistake, as an operator's would be.
        self.execute(Command::CreateIncident { id, spec, force: true }, OPERATOR)
    }

    /// Records events and lets the simulated people react to them.
    fn handle(&mut self, events: Vec<Event>) -> anyhow::Result<()> {
        for event in &events {
            match &event.kind {
                EventKind::OfferSent { offer } => {
                    let behaviour = self.behaviour(&offer.agent);
                    let roll = self.rng.random::<f64>();
                    let delay = self.draw(behaviour.decide_s);
                    let at = Millis(self.now.0 + (delay * 1000.0) as i64);
                    if roll < behaviour.accept {
                        let action = Action::Answer {
                            agent: offer.agent.clone(),
                            offer: offer.id.clone(),
                            accept: true,
                            reason: String::new(),
                        };
                        self.schedule(at, action);
                    } else if roll < behaviour.accept + behaviour.decline {
                        let reason = behaviour.decline_reasons[self.rng.random_range(0..behaviour.decline_reasons.len())].clone();
                        let action =
                            Action::Answer { agent: offer.agent.clone(), offer: offer.id.clone(), accept: false, reason };
                        self.schedule(at, action);
                    }
                }
                EventKind::Assigned { incident, agent, .. } => {
                    let behaviour = self.behaviour(agent);
                    if self.rng.random::<f64>() < behaviour.silent {
                        continue;
                    }
                    let Some(target) = self.engine.state().incidents.get(incident).map(|incident| incident.spec.at) else {
                        continue;
                    };
                    let Some(person) = self.people.get(agent) else { continue };
                    let speed = match person.profile.travel_mode {
                        TravelMode::Walk => behaviour.walk_mps,
                        TravelMode::Bike => behaviour.bike_mps,
                        TravelMode::Car => behaviour.car_mps,
                    };
                    // Getting ready takes a minute; then the trip.
                    let travel_s = 60.0 + person.at.distance_m(target) / speed;
                    let at = Millis(self.now.0 + (travel_s * 1000.0) as i64);
                    self.schedule(at, Action::Arrive { agent: agent.clone(), incident: incident.clone() });
                }
                EventKind::CallupIssued { callup, people, .. } => {
                    for agent in people {
                        let behaviour = self.behaviour(agent);
                        let reached_after_s = self.reach(agent, callup);
                        if self.rng.random::<f64>() < behaviour.check_in {
                            let delay = self.draw(behaviour.check_in_s) + reached_after_s;
                            let at = Millis(self.now.0 + (delay * 1000.0) as i64);
                            self.schedule(at, Action::CheckIn { agent: agent.clone(), callup: callup.clone() });
                        }
                    }
                }
                EventKind::AgentArrived { incident, agent } => {
                    let on_scene = self.draw(self.behaviour(agent).on_scene_s);
                    let at = Millis(self.now.0 + (on_scene * 1000.0) as i64);
                    self.schedule(at, Action::Complete { agent: agent.clone(), incident: incident.clone() });
                }
                _ => {}
            }
        }
        self.plan_safety_check_ins(&events);
        self.events.extend(events);
        if self.events.len() - self.journaled >= JOURNAL_BATCH {
            self.flush_journal()?;
        }
        Ok(())
    }

    /// Simulates the escalation ladder towards a called-up person without
    /// a live session (when the drill has `[channels]`): schedules its
    /// rungs as `notified` events; the seconds until the person is reached.
    fn reach(&mut self, agent: &AgentId, callup: &CallupId) -> f64 {
        let Some(shares) = self.drill.file.channels.clone() else {
            return 0.0;
        };
        if self.people.get(agent).is_none_or(|person| person.connected) {
            return 0.0;
        }
        let rung = |channel, step, outcome| NoticeStep {
            agent: agent.clone(),
            subject: format!("callup:{callup}"),
            incident: None,
            callup: Some(callup.clone()),
            channel,
            step,
            outcome,
            detail: String::new(),
        };
        let now = self.now;
        if self.channel_rng.random::<f64>() < shares.push {
            self.schedule(now, Action::Notify(rung(NoticeChannel::Push, 1, NoticeOutcome::Sent)));
            return 0.0;
        }
        self.schedule(
            now,
            Action::Notify(NoticeStep {
                detail: "no push subscription".to_string(),
                ..rung(NoticeChannel::Push, 1, NoticeOutcome::Skipped)
            }),
        );
        self.schedule(now, Action::Notify(rung(NoticeChannel::Sms, 2, NoticeOutcome::Sent)));
        if self.channel_rng.random::<f64>() < shares.sms {
            return 0.0;
        }
        self.schedule(now.plus_seconds(shares.voice_after_s), Action::Notify(rung(NoticeChannel::Voice, 3, NoticeOutcome::Sent)));
        shares.voice_after_s as f64
    }

    fn flush_journal(&mut self) -> anyhow::Result<()> {
        let pending: Vec<_> = self.events[self.journaled..].iter().map(stored_event).collect();
        self.journal.append(&pending)?;
        self.journaled = self.events.len();
        Ok(())
    }
}

fn agent_actor(agent: &AgentId) -> String {
    format!("agent:{agent}")
}

/// A draw from the triangular distribution (min, typical, max).
pub fn triangular(rng: &mut StdRng, spread: Spread) -> f64 {
    let Spread { min, typical, max } = spread;
    if max <= min {
        return min;
    }
    let unit = rng.random::<f64>();
    let split = (typical - min) / (max - min);
    if unit < split {
        min + ((max - min) * (typical - min) * unit).sqrt()
    } else {
        max - ((max - min) * (max - typical) * (1.0 - unit)).sqrt()
    }
}

/// The level names that count as "beyond" a level, for widening counts.
pub fn wider_than(level: AreaLevel) -> impl Fn(AreaLevel) -> bool {
    move |other| other < level
}
