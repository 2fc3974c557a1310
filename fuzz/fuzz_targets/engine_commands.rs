//! Random command sequences against the engine over the sample city: any
//! command may be refused, but none may panic, and after every step the
//! invariants hold (nobody holds two assignments or two offers, nobody is
//! assigned twice, ...). At the end, replaying the events gives the same
//! state. Ids and coordinates come partly from the input, so that refusals
//! (unknown ids, coordinates off the globe) are exercised too.
#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pingji_engine::accounts::OperatorRole;
use pingji_engine::areas::{AreaImport, parse_geojson};
use pingji_engine::engine::{Command, Engine, invariants};
use pingji_engine::event::Event;
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::{AgentProfile, AgentStatus, Role, TravelMode};
use pingji_engine::spatial::Position;

static MAP: LazyLock<AreaImport> =
    LazyLock::new(|| parse_geojson(include_str!("../../scenarios/maps/sample-city.geojson")).expect("the sample city parses"));

const PEOPLE: u8 = 10;
const AREAS: [&str; 8] = ["city", "d1", "d2", "d1-s1-c1", "d1-s1-c1-g1", "d1-s2-c1-g1", "d2-s1-c1-g1", "nowhere"];
const MODES: [Mode; 5] = [Mode::Normal, Mode::EmergencyIv, Mode::EmergencyIii, Mode::EmergencyIi, Mode::EmergencyI];
const ROLES: [Role; 4] = [Role::Volunteer, Role::RegisteredMember, Role::SunkCadre, Role::GridLeader];

#[derive(Arbitrary, Debug)]
enum Step {
    Create { lon: i16, lat: i16, priority: u8, headcount: u8, skill: bool },
    CreateAnywhere { lon: f64, lat: f64 },
    Accept { person: u8 },
    AcceptUnknown { person: u8, offer: u16 },
    Decline { person: u8 },
    Advance { seconds: u16 },
    Connect { person: u8 },
    Disconnect { person: u8, reachable: bool },
    Move { person: u8, lon: i16, lat: i16 },
    Status { person: u8, status: u8 },
    Arrive { person: u8 },
    Complete { person: u8 },
    Cancel { incident: u8 },
    Close { incident: u8 },
    Switch { area: u8, mode: u8 },
    CallUp { area: u8, role: u8 },
    CheckIn { person: u8 },
    Report { person: u8, lon: i16, lat: i16 },
    TriageAccept { incident: u8 },
    TriageMerge { incident: u8, into: u8 },
    TriageReject { incident: u8 },
    IssueToken { person: u8 },
    AddOperator { name: u8, role: u8 },
    RotateOperator { name: u8 },
    RemoveOperator { name: u8 },
    RecordRead { people: u8 },
}

const OPERATORS: [&str; 4] = ["li.na", "wang.fang", "zhang.wei", "bad_name"];
const OPERATOR_ROLES: [OperatorRole; 4] =
    [OperatorRole::Viewer, OperatorRole::Dispatcher, OperatorRole::Commander, OperatorRole::Admin];

/// A point in the sample city (around 120.09–120.11 E, 30.22–30.24 N), or
/// just outside it, from two small numbers.
fn point(lon: i16, lat: i16) -> Position {
    Position { lon: 120.10 + f64::from(lon) / 1_000_000.0, lat: 30.23 + f64::from(lat) / 1_000_000.0 }
}

fn person(n: u8) -> AgentId {
    AgentId::new(format!("p{}", n % (PEOPLE + 1)))
}

fn profile(n: u8) -> AgentProfile {
    AgentProfile {
        id: person(n),
        name: format!("person {n}"),
        role: ROLES[usize::from(n) % ROLES.len()],
        skills: if n % 3 == 0 { ["first_aid".to_string()].into() } else { BTreeSet::new() },
        phone: "13900000000".to_string(),
        home_area: Some(AreaId::new(AREAS[3 + usize::from(n) % 4])),
        travel_mode: [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][usize::from(n) % 3],
        on_duty: n % 4 != 3,
        home: None,
    }
}

/// Carries out one step; returns its events.
fn step(engine: &mut Engine, step: Step, now: &mut Millis, incidents: &mut Vec<IncidentId>) -> Vec<Event> {
    let nth = |incidents: &[IncidentId], n: u8| {
        if incidents.is_empty() { IncidentId::new("inc-none") } else { incidents[usize::from(n) % incidents.len()].clone() }
    };
    let open_offer = |engine: &Engine, agent: &AgentId| {
        engine.state().agents.get(agent).and_then(|record| record.open_offer.as_ref().map(|(offer, _)| offer.clone()))
    };
    let current =
        |engine: &Engine, agent: &AgentId| engine.state().agents.get(agent).and_then(|record| record.current_incident.clone());
    let actor = "fuzz";
    let command = match step {
        Step::Create { lon, lat, priority, headcount, skill } => Command::CreateIncident {
            id: None,
            spec: IncidentSpec {
                at: point(lon, lat),
                category: "medical".into(),
                priority,
                skills: if skill { ["first_aid".to_string()].into() } else { BTreeSet::new() },
                headcount: u32::from(headcount % 5),
                description: String::new(),
                source_id: String::new(),
            },
            // Forced, so that incidents nobody could take are explored too.
            force: true,
        },
        Step::CreateAnywhere { lon, lat } => Command::CreateIncident {
            id: Some(IncidentId::new("inc-anywhere")),
            spec: IncidentSpec {
                at: Position { lon, lat },
                category: "x".into(),
                priority: 1,
                skills: BTreeSet::new(),
                headcount: 1,
                description: String::new(),
                source_id: String::new(),
            },
            // Both ways: refused off the map unless forced.
            force: lon.to_bits() % 2 == 0,
        },
        Step::Accept { person: n } => match open_offer(engine, &person(n)) {
            Some(offer) => Command::Accept { agent: person(n), offer },
            None => return Vec::new(),
        },
        Step::AcceptUnknown { person: n, offer } => {
            Command::Accept { agent: person(n), offer: OfferId::new(format!("o{offer}")) }
        }
        Step::Decline { person: n } => match open_offer(engine, &person(n)) {
            Some(offer) => Command::Decline { agent: person(n), offer, reason: "no".into() },
            None => return Vec::new(),
        },
        Step::Advance { seconds } => {
            *now = now.plus_seconds(u64::from(seconds));
            let mut fired = Vec::new();
            while let Some(deadline) = engine.next_deadline().filter(|deadline| *deadline <= *now) {
                fired.extend(engine.tick(deadline));
            }
            return fired;
        }
        Step::Connect { person: n } => Command::Connect { agent: person(n) },
        Step::Disconnect { person: n, reachable } => Command::Disconnect { agent: person(n), reachable },
        Step::Move { person: n, lon, lat } => Command::ReportLocation { agent: person(n), at: point(lon, lat) },
        Step::Status { person: n, status } => {
            let status = [AgentStatus::Available, AgentStatus::Busy, AgentStatus::OffDuty][usize::from(status) % 3];
            Command::SetStatus { agent: person(n), status }
        }
        Step::Arrive { person: n } => match current(engine, &person(n)) {
            Some(incident) => Command::Arrive { agent: person(n), incident },
            None => return Vec::new(),
        },
        Step::Complete { person: n } => match current(engine, &person(n)) {
            Some(incident) => Command::Complete { agent: person(n), incident, feedback: "ok".into() },
            None => return Vec::new(),
        },
        Step::Cancel { incident } => Command::CancelIncident { incident: nth(incidents, incident), reason: "x".into() },
        Step::Close { incident } => Command::CloseIncident { incident: nth(incidents, incident), feedback: "x".into() },
        Step::Switch { area, mode } => Command::SetMode {
            area: AreaId::new(AREAS[usize::from(area) % AREAS.len()]),
            mode: MODES[usize::from(mode) % MODES.len()],
            reason: "drill".into(),
        },
        Step::CallUp { area, role } => Command::CallUp {
            area: AreaId::new(AREAS[usize::from(area) % AREAS.len()]),
            roles: vec![ROLES[usize::from(role) % ROLES.len()]],
            reason: "drill".into(),
            deadline_s: Some(600),
        },
        Step::CheckIn { person: n } => Command::CheckIn { agent: person(n), callup: None },
        Step::Report { person: n, lon, lat } => Command::FieldReport {
            agent: person(n),
            at: point(lon, lat),
            category: "flooding".into(),
            text: "water".into(),
            photo_ref: String::new(),
        },
        Step::TriageAccept { incident } => {
            Command::TriageAccept { incident: nth(incidents, incident), priority: None, headcount: None, skills: None }
        }
        Step::TriageMerge { incident, into } => {
            Command::TriageMerge { incident: nth(incidents, incident), into: nth(incidents, into) }
        }
        Step::TriageReject { incident } => Command::TriageReject { incident: nth(incidents, incident), reason: "x".into() },
        // The engine keeps hashes, it does not make or check them: any text stands in.
        Step::IssueToken { person: n } => Command::IssueAgentToken { agent: person(n), token_hash: format!("hash-{n}") },
        Step::AddOperator { name, role } => Command::AddOperator {
            name: OPERATORS[usize::from(name) % OPERATORS.len()].to_string(),
            role: OPERATOR_ROLES[usize::from(role) % OPERATOR_ROLES.len()],
            token_hash: format!("hash-{name}"),
        },
        Step::RotateOperator { name } => Command::RotateOperatorToken {
            name: OPERATORS[usize::from(name) % OPERATORS.len()].to_string(),
            token_hash: format!("rotated-{name}"),
        },
        Step::RemoveOperator { name } => {
            Command::RemoveOperator { name: OPERATORS[usize::from(name) % OPERATORS.len()].to_string() }
        }
        Step::RecordRead { people } => {
            Command::RecordRead { rpc: "ListAgents".into(), subject: "fuzz".into(), people: u32::from(people) }
        }
    };
    let events = engine.execute(command, actor, *now).unwrap_or_default();
    if let Some(id) = events.first().and_then(|event| event.kind.incident_id())
        && !incidents.contains(id)
    {
        incidents.push(id.clone());
    }
    events
}

fuzz_target!(|steps: Vec<Step>| {
    let mut now = Millis(1_800_000_000_000);
    let mut engine = Engine::new(Policy { staffing_check_s: 0, ..Policy::default() });
    let mut events = Vec::new();
    let record = |engine: &mut Engine, command: Command, now: Millis, events: &mut Vec<_>| {
        events.extend(engine.execute(command, "fuzz", now).expect("setup"));
    };
    record(&mut engine, Command::ImportAreas(MAP.clone()), now, &mut events);
    record(
        &mut engine,
        Command::UpsertAgents { agents: (0..PEOPLE).map(profile).collect(), all_new: true, tokens: Vec::new() },
        now,
        &mut events,
    );
    let mut incidents = Vec::new();
    let mut had_admin = false;
    for one in steps.into_iter().take(200) {
        events.extend(step(&mut engine, one, &mut now, &mut incidents));
        if let Err(broken) = invariants::check(&engine) {
            panic!("invariant broken: {broken}");
        }
        // Once there is an admin, there always is one (the last cannot be removed).
        let has_admin = engine.state().operators.values().any(|operator| operator.role == OperatorRole::Admin);
        assert!(has_admin || !had_admin, "the last admin was removed");
        had_admin = has_admin;
    }
    // Replaying every event gives the same state.
    let mut fresh = Engine::new(engine.policy().clone());
    for event in &events {
        fresh.replay(event).expect("events replay in order");
    }
    assert!(fresh.state() == engine.state(), "replaying the events gave another state");
});
