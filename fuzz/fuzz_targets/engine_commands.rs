//! Random command sequences against the engine over the sample city: any
//! command may be refused, but none may panic, and after every step the
//! invariants hold (nobody holds two assignments or two offers, nobody is
//! assigned twice, stock never below zero, no unit or shelter place given
//! twice, nothing reserved for an ended incident, ...). At the end,
//! replaying the events gives the same state. Ids and coordinates come partly from the input, so that refusals
//! (unknown ids, coordinates off the globe) are exercised too.
#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pingji_engine::accounts::{DEFAULT_OPERATOR_TOKEN_LIFETIME_MS, OperatorRole};
use pingji_engine::areas::{AreaImport, parse_geojson};
use pingji_engine::engine::{Command, Engine, invariants};
use pingji_engine::event::Event;
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::{AgentProfile, AgentStatus, Role, TravelMode};
use pingji_engine::rosters::{Absence, AbsenceKind, RosterCommand, ShiftId, ShiftSpec, WeeklyWindow, local_day};
use pingji_engine::shelters::{EvacuationId, Facility, ShelterCommand, ShelterId, ShelterSpec};
use pingji_engine::spatial::Position;
use pingji_engine::supplies::{
    Allocation, DepotId, DepotSpec, ItemId, ItemKind, StockLine, SupplyCommand, SupplyImport, SupplyLine, SupplyRequestId,
    UnitId, UnitSpec, UnitStatus,
};

static MAP: LazyLock<AreaImport> =
    LazyLock::new(|| parse_geojson(include_str!("../../scenarios/maps/sample-city.geojson")).expect("the sample city parses"));

const PEOPLE: u8 = 10;
const AREAS: [&str; 8] = ["city", "d1", "d2", "d1-s1-c1", "d1-s1-c1-g1", "d1-s2-c1-g1", "d2-s1-c1-g1", "nowhere"];
const MODES: [Mode; 5] = [Mode::Normal, Mode::EmergencyIv, Mode::EmergencyIii, Mode::EmergencyIi, Mode::EmergencyI];
const ROLES: [Role; 4] = [Role::Volunteer, Role::RegisteredMember, Role::SunkCadre, Role::GridLeader];

#[derive(Arbitrary, Debug)]
enum Step {
    Create {
        lon: i16,
        lat: i16,
        priority: u8,
        headcount: u8,
        skill: bool,
    },
    CreateAnywhere {
        lon: f64,
        lat: f64,
    },
    Accept {
        person: u8,
    },
    AcceptUnknown {
        person: u8,
        offer: u16,
    },
    Decline {
        person: u8,
    },
    Advance {
        seconds: u16,
    },
    Connect {
        person: u8,
    },
    Disconnect {
        person: u8,
        reachable: bool,
    },
    Move {
        person: u8,
        lon: i16,
        lat: i16,
    },
    Status {
        person: u8,
        status: u8,
    },
    Arrive {
        person: u8,
    },
    Complete {
        person: u8,
    },
    Cancel {
        incident: u8,
    },
    Close {
        incident: u8,
    },
    Switch {
        area: u8,
        mode: u8,
    },
    CallUp {
        area: u8,
        role: u8,
    },
    CheckIn {
        person: u8,
    },
    Report {
        person: u8,
        lon: i16,
        lat: i16,
    },
    TriageAccept {
        incident: u8,
    },
    TriageMerge {
        incident: u8,
        into: u8,
    },
    TriageReject {
        incident: u8,
    },
    IssueToken {
        person: u8,
    },
    AddOperator {
        name: u8,
        role: u8,
    },
    RotateOperator {
        name: u8,
    },
    RemoveOperator {
        name: u8,
    },
    RecordRead {
        people: u8,
    },
    // Supplies: depots and stock, units, requests and their lifecycle.
    Depot {
        depot: u8,
        lon: i16,
        lat: i16,
    },
    Stock {
        depot: u8,
        item: u8,
        quantity: u16,
        minimum: u16,
    },
    Unit {
        unit: u8,
        depot: u8,
        in_repair: bool,
    },
    RequestSupplies {
        incident: u8,
        item: u8,
        quantity: u16,
        also: Option<(u8, u16)>,
    },
    /// `by_hand`: an allocation typed by an operator (depot, item,
    /// quantity, unit) instead of the proposal of now.
    ConfirmSupplies {
        request: u8,
        by_hand: Option<(u8, u8, u16, u8)>,
    },
    DispatchSupplies {
        request: u8,
        carrier: Option<u8>,
    },
    DeliverSupplies {
        request: u8,
    },
    ReturnSupplies {
        request: u8,
        back: u16,
        broken: Option<u8>,
    },
    CancelSupplies {
        request: u8,
    },
    UnitStatus {
        unit: u8,
        status: u8,
    },
    MoveStock {
        from: u8,
        to: u8,
        item: u8,
        quantity: u16,
    },
    // Shelters and evacuations.
    Shelter {
        shelter: u8,
        lon: i16,
        lat: i16,
        capacity: u8,
        accessible: bool,
    },
    OpenShelter {
        shelter: u8,
    },
    CloseShelter {
        shelter: u8,
    },
    Evacuate {
        incident: u8,
        residents: u8,
        accessible: bool,
        shelter: Option<u8>,
    },
    ShelterArrive {
        evacuation: u8,
        count: u8,
    },
    WalkIn {
        shelter: u8,
        count: u8,
    },
    Leave {
        shelter: u8,
        count: u8,
    },
    ReleasePlaces {
        evacuation: u8,
    },
    // Duty rosters.
    Shift {
        shift: u8,
        area: u8,
        day: u8,
        start: u16,
        length: u16,
        people: u16,
    },
    RemoveShift {
        shift: u8,
    },
    Availability {
        person: u8,
        day: u8,
        start: u16,
        length: u16,
    },
    Absent {
        person: u8,
        minutes: u16,
    },
    RequestSwap {
        shift: u8,
        days_ahead: u8,
        from: u8,
        to: u8,
    },
    DecideSwap {
        swap: u8,
        approve: bool,
    },
    ShiftCheckIn {
        person: u8,
        shift: u8,
    },
    ShiftCheckOut {
        person: u8,
    },
}

/// The last of each list is never imported: commands naming it are refused.
const DEPOTS: [&str; 3] = ["north", "south", "ghost"];
const ITEMS: [&str; 4] = ["sandbag", "water", "pump", "boat"];
const UNITS: [&str; 4] = ["P-01", "P-02", "B-01", "X-99"];
const SHELTERS: [&str; 4] = ["school", "gym", "hall", "ghost"];
const SHIFTS: [&str; 3] = ["day", "night", "ghost"];

const OPERATORS: [&str; 4] = ["li.na", "wang.fang", "zhang.wei", "bad_name"];
const OPERATOR_ROLES: [OperatorRole; 4] =
    [OperatorRole::Viewer, OperatorRole::Dispatcher, OperatorRole::Commander, OperatorRole::Admin];

/// A point in the sample city (around 120.09–120.11 E, 30.22–30.24 N), or
/// just outside it, from two small numbers.
fn point(lon: i16, lat: i16) -> Position {
    Position { lon: 120.10 + f64::from(lon) / 1_000_000.0, lat: 30.23 + f64::from(lat) / 1_000_000.0 }
}

/// One of a few names, by a small number.
fn pick(names: &[&str], n: u8) -> String {
    names[usize::from(n) % names.len()].to_string()
}

/// The `n`th of the ids made so far (requests, evacuations, swaps), or one
/// that does not exist when none were made.
fn nth_made<Id: Clone>(made: Vec<&Id>, n: u8, none: Id) -> Id {
    if made.is_empty() { none } else { made[usize::from(n) % made.len()].clone() }
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
            Some(incident) => Command::Complete { agent: person(n), incident, feedback: "ok".into(), photo_refs: Vec::new() },
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
            photo_refs: Vec::new(),
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
            lifetime_ms: DEFAULT_OPERATOR_TOKEN_LIFETIME_MS,
        },
        Step::RotateOperator { name } => Command::RotateOperatorToken {
            name: OPERATORS[usize::from(name) % OPERATORS.len()].to_string(),
            token_hash: format!("rotated-{name}"),
            lifetime_ms: DEFAULT_OPERATOR_TOKEN_LIFETIME_MS,
        },
        Step::RemoveOperator { name } => {
            Command::RemoveOperator { name: OPERATORS[usize::from(name) % OPERATORS.len()].to_string() }
        }
        Step::RecordRead { people } => {
            Command::RecordRead { rpc: "ListAgents".into(), subject: "fuzz".into(), people: u32::from(people) }
        }
        Step::Depot { .. }
        | Step::Stock { .. }
        | Step::Unit { .. }
        | Step::RequestSupplies { .. }
        | Step::ConfirmSupplies { .. }
        | Step::DispatchSupplies { .. }
        | Step::DeliverSupplies { .. }
        | Step::ReturnSupplies { .. }
        | Step::CancelSupplies { .. }
        | Step::UnitStatus { .. }
        | Step::MoveStock { .. } => Command::Supplies(supply_command(engine, step, incidents)),
        Step::Shelter { .. }
        | Step::OpenShelter { .. }
        | Step::CloseShelter { .. }
        | Step::Evacuate { .. }
        | Step::ShelterArrive { .. }
        | Step::WalkIn { .. }
        | Step::Leave { .. }
        | Step::ReleasePlaces { .. } => Command::Shelters(shelter_command(engine, step, incidents)),
        Step::Shift { .. }
        | Step::RemoveShift { .. }
        | Step::Availability { .. }
        | Step::Absent { .. }
        | Step::RequestSwap { .. }
        | Step::DecideSwap { .. }
        | Step::ShiftCheckIn { .. }
        | Step::ShiftCheckOut { .. } => Command::Rosters(roster_command(engine, step, *now)),
    };
    let events = engine.execute(command, actor, *now).unwrap_or_default();
    if let Some(id) = events.first().and_then(|event| event.kind.incident_id())
        && !incidents.contains(id)
    {
        incidents.push(id.clone());
    }
    events
}

fn incident_of(incidents: &[IncidentId], n: u8) -> IncidentId {
    if incidents.is_empty() { IncidentId::new("inc-none") } else { incidents[usize::from(n) % incidents.len()].clone() }
}

/// Pumps and the boat belong to their own items; `X-99` is a pump too.
fn unit_spec(unit: u8, depot: u8, in_repair: bool) -> UnitSpec {
    let id = pick(&UNITS, unit);
    let (item, kind, capacity) =
        if id.starts_with('B') { ("boat", ItemKind::Vehicle, 8) } else { ("pump", ItemKind::Equipment, 0) };
    UnitSpec {
        id: UnitId::new(id),
        item: ItemId::new(item),
        kind,
        depot: DepotId::new(pick(&DEPOTS, depot)),
        capacity,
        in_repair,
    }
}

fn supply_command(engine: &Engine, step: Step, incidents: &[IncidentId]) -> SupplyCommand {
    let request = |n: u8| nth_made(engine.supplies().requests.keys().collect(), n, SupplyRequestId::new("sup-none"));
    let line = |item: u8, quantity: u16| SupplyLine { item: ItemId::new(pick(&ITEMS, item)), quantity: u64::from(quantity) };
    match step {
        Step::Depot { depot, lon, lat } => SupplyCommand::Import(SupplyImport {
            depots: vec![DepotSpec {
                id: DepotId::new(pick(&DEPOTS, depot)),
                name: format!("depot {depot}"),
                at: point(lon, lat),
                area: None,
                keeper: "keeper".into(),
            }],
            ..SupplyImport::default()
        }),
        Step::Stock { depot, item, quantity, minimum } => SupplyCommand::Import(SupplyImport {
            stock: vec![StockLine {
                depot: DepotId::new(pick(&DEPOTS, depot)),
                item: ItemId::new(pick(&ITEMS, item)),
                quantity: u64::from(quantity),
                minimum: u64::from(minimum),
            }],
            ..SupplyImport::default()
        }),
        Step::Unit { unit, depot, in_repair } => {
            SupplyCommand::Import(SupplyImport { units: vec![unit_spec(unit, depot, in_repair)], ..SupplyImport::default() })
        }
        Step::RequestSupplies { incident, item, quantity, also } => {
            let mut lines = vec![line(item, quantity)];
            lines.extend(also.map(|(item, quantity)| line(item, quantity)));
            SupplyCommand::Request { id: None, incident: incident_of(incidents, incident), lines }
        }
        Step::ConfirmSupplies { request: n, by_hand } => SupplyCommand::Confirm {
            request: request(n),
            allocations: by_hand.map(|(depot, item, quantity, unit)| {
                let item = pick(&ITEMS, item);
                let units = if item == "pump" || item == "boat" { vec![UnitId::new(pick(&UNITS, unit))] } else { vec![] };
                vec![Allocation {
                    depot: DepotId::new(pick(&DEPOTS, depot)),
                    item: ItemId::new(item),
                    quantity: u64::from(quantity),
                    units,
                }]
            }),
        },
        Step::DispatchSupplies { request: n, carrier } => {
            SupplyCommand::Dispatch { request: request(n), carrier: carrier.map(person) }
        }
        Step::DeliverSupplies { request: n } => SupplyCommand::Deliver { request: request(n) },
        Step::ReturnSupplies { request: n, back, broken } => SupplyCommand::Return {
            request: request(n),
            returned: if back > 0 { vec![line(0, back)] } else { vec![] },
            in_repair: broken.map(|unit| UnitId::new(pick(&UNITS, unit))).into_iter().collect(),
        },
        Step::CancelSupplies { request: n } => SupplyCommand::Cancel { request: request(n), reason: "not needed".into() },
        Step::UnitStatus { unit, status } => SupplyCommand::SetUnitStatus {
            unit: UnitId::new(pick(&UNITS, unit)),
            // Reserved and dispatched are the engine's to set: refused.
            status: [UnitStatus::Available, UnitStatus::InRepair, UnitStatus::Reserved, UnitStatus::Dispatched]
                [usize::from(status) % 4],
        },
        Step::MoveStock { from, to, item, quantity } => SupplyCommand::MoveStock {
            from: DepotId::new(pick(&DEPOTS, from)),
            to: DepotId::new(pick(&DEPOTS, to)),
            item: ItemId::new(pick(&ITEMS, item)),
            quantity: u64::from(quantity),
        },
        other => unreachable!("not a supply step: {other:?}"),
    }
}

fn shelter_command(engine: &Engine, step: Step, incidents: &[IncidentId]) -> ShelterCommand {
    let evacuation = |n: u8| nth_made(engine.shelters().evacuations.keys().collect(), n, EvacuationId::new("eva-none"));
    let shelter = |n: u8| ShelterId::new(pick(&SHELTERS, n));
    match step {
        Step::Shelter { shelter: n, lon, lat, capacity, accessible } => ShelterCommand::Import(vec![ShelterSpec {
            id: shelter(n),
            name: format!("shelter {n}"),
            at: point(lon, lat),
            area: None,
            // 0 is refused: a shelter has at least one place.
            capacity: u32::from(capacity % 64),
            facilities: if accessible { vec![Facility::Accessible] } else { vec![] },
        }]),
        Step::OpenShelter { shelter: n } => ShelterCommand::Open { shelter: shelter(n) },
        Step::CloseShelter { shelter: n } => ShelterCommand::Close { shelter: shelter(n), reason: "full of water".into() },
        Step::Evacuate { incident, residents, accessible, shelter: chosen } => ShelterCommand::Evacuate {
            id: None,
            incident: incident_of(incidents, incident),
            residents: u32::from(residents % 40),
            needs: if accessible { vec![Facility::Accessible] } else { vec![] },
            shelter: chosen.map(shelter),
        },
        Step::ShelterArrive { evacuation: n, count } => ShelterCommand::CheckIn {
            shelter: None,
            evacuation: Some(evacuation(n)),
            count: u32::from(count % 20),
            names: vec![],
        },
        Step::WalkIn { shelter: n, count } => {
            ShelterCommand::CheckIn { shelter: Some(shelter(n)), evacuation: None, count: u32::from(count % 20), names: vec![] }
        }
        Step::Leave { shelter: n, count } => ShelterCommand::CheckOut { shelter: shelter(n), count: u32::from(count % 20) },
        Step::ReleasePlaces { evacuation: n } => {
            ShelterCommand::Release { evacuation: evacuation(n), reason: "stayed home".into() }
        }
        other => unreachable!("not a shelter step: {other:?}"),
    }
}

fn roster_command(engine: &Engine, step: Step, now: Millis) -> RosterCommand {
    let shift = |n: u8| ShiftId::new(pick(&SHIFTS, n));
    match step {
        Step::Shift { shift: n, area, day, start, length, people } => RosterCommand::SetShifts(vec![ShiftSpec {
            id: shift(n),
            area: AreaId::new(pick(&AREAS, area)),
            duty: "duty_officer".into(),
            // Day 0 and 8 are refused, as are starts and lengths past a day.
            days: vec![day % 9],
            start_minute: u32::from(start % 1500),
            length_minutes: u32::from(length % 1500),
            people: (0..=PEOPLE).filter(|n| people & (1 << n) != 0).map(person).collect(),
        }]),
        Step::RemoveShift { shift: n } => RosterCommand::RemoveShift(shift(n)),
        Step::Availability { person: n, day, start, length } => RosterCommand::SetAvailability {
            agent: person(n),
            windows: if length == 0 {
                vec![]
            } else {
                vec![WeeklyWindow { day: day % 9, start_minute: u32::from(start % 1500), length_minutes: u32::from(length) }]
            },
        },
        Step::Absent { person: n, minutes } => RosterCommand::RecordAbsence(Absence {
            agent: person(n),
            from: now,
            until: Millis(now.0 + i64::from(minutes) * 60_000),
            kind: AbsenceKind::Leave,
        }),
        Step::RequestSwap { shift: n, days_ahead, from, to } => RosterCommand::RequestSwap {
            shift: shift(n),
            day: local_day(now, engine.roster_utc_offset()) + i64::from(days_ahead % 10) - 1,
            from: person(from),
            to: person(to),
        },
        Step::DecideSwap { swap, approve } => RosterCommand::DecideSwap {
            swap: nth_made(engine.rosters().swaps.keys().collect(), swap, pingji_engine::rosters::SwapId::new("swap-none")),
            approve,
            reason: String::new(),
        },
        Step::ShiftCheckIn { person: n, shift: s } => RosterCommand::CheckIn { agent: person(n), shift: shift(s) },
        Step::ShiftCheckOut { person: n } => RosterCommand::CheckOut { agent: person(n) },
        other => unreachable!("not a roster step: {other:?}"),
    }
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
