//! A real-size map (issue #27, "a big map stays fast"): placing a point, and
//! a drill-like run on the engine, on a city of 13 districts cut into about
//! 3k areas and, finer, about 15k areas, with 100k people on it.
//!
//! Run with `cargo bench -p pingji-dispatcher --bench bigmap` (release
//! build). Add `-- 3k` or `-- 15k` to run one size only. Prints figures;
//! asserts nothing about speed. The target: the 15k drill within 1.5 times
//! the 3k one (a drill's time follows incidents and people, not areas), and
//! a point placed in microseconds.
//!
//! The city is built in code, the same extent at both sizes (12 km x 10 km
//! near the sample city): 13 districts in rows of 4, 4 and 5, each cut into
//! streets, communities and grids by uneven rectangles on a 20 m lattice,
//! every edge with a vertex at every lattice step, then the whole plane
//! warped by a smooth wave so that no border is straight. Neighbours share
//! their border vertex for vertex, as in a boundary file cut from one
//! source. District outlines have hundreds of vertices, grids tens.
//!
//! The drill: import the map and the roster, connect and locate everyone
//! (set-up, timed apart), then 15 virtual minutes: two neighbouring
//! districts switched to emergency grade II, 280 incidents (60 % in those
//! districts), every offer answered after 10-60 s (80 % accept, 15 %
//! decline, 5 % silent), the assigned done 5-15 minutes later, everyone
//! re-reporting their location every 5 minutes, and the engine's deadlines
//! (offer timeouts, widening, retries, staffing checks every minute) fired
//! as they fall due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pingji_engine::areas::{AreaImport, AreaLevel, AreaMap, AreaSpec};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::{AgentProfile, Role, TravelMode};
use pingji_engine::spatial::Position;

#[path = "common/sequence.rs"]
mod sequence;
use sequence::Sequence;

const T0: Millis = Millis(1_800_000_000_000);
const PEOPLE: usize = 100_000;
const INCIDENTS: u64 = 280;
const DRILL_S: u64 = 900;
const REFRESH_S: u64 = 300;
const LOOKUPS: usize = 100_000;

/// Metres per lattice step: every vertex of every outline lies on it (before the warp).
const STEP_M: f64 = 20.0;
const CITY_STEPS_X: i64 = 600;
const CITY_STEPS_Y: i64 = 500;
const ORIGIN: Position = Position { lon: 120.0876, lat: 30.2250 };
/// Districts per row, south to north.
const DISTRICT_ROWS: [i64; 3] = [4, 4, 5];

/// How finely a district is cut: (columns, rows) at each level below it.
struct Subdivision {
    label: &'static str,
    streets: (i64, i64),
    communities: (i64, i64),
    grids: (i64, i64),
}

const SIZES: [Subdivision; 2] = [
    Subdivision { label: "3k", streets: (2, 2), communities: (2, 3), grids: (3, 3) },
    Subdivision { label: "15k", streets: (2, 3), communities: (3, 3), grids: (4, 5) },
];

impl Sequence {
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_unit() * n as f64) as u64).min(n.saturating_sub(1))
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}

/// A rectangle of lattice steps.
#[derive(Clone, Copy)]
struct Cell {
    west: i64,
    south: i64,
    east: i64,
    north: i64,
}

/// Cuts `low..high` into `parts` uneven pieces (each at least one step).
fn cuts(low: i64, high: i64, parts: i64, random: &mut Sequence) -> Vec<i64> {
    let span = high - low;
    let mut cuts = vec![low];
    for part in 1..parts {
        let even = low + span * part / parts;
        let wobble = (span / parts / 5).max(0);
        let jitter = if wobble > 0 { random.below(2 * wobble as u64 + 1) as i64 - wobble } else { 0 };
        let previous = cuts.last().copied().unwrap_or(low);
        let room_left = high - (parts - part);
        cuts.push((even + jitter).clamp(previous + 1, room_left));
    }
    cuts.push(high);
    cuts
}

fn split(cell: Cell, (columns, rows): (i64, i64), random: &mut Sequence) -> Vec<Cell> {
    let xs = cuts(cell.west, cell.east, columns, random);
    let ys = cuts(cell.south, cell.north, rows, random);
    let mut cells = Vec::new();
    for row in 0..rows as usize {
        for column in 0..columns as usize {
            cells.push(Cell { west: xs[column], south: ys[row], east: xs[column + 1], north: ys[row + 1] });
        }
    }
    cells
}

/// A point in metres from the city's south-west corner, warped (a smooth
/// bijection, so shared borders stay shared) and turned into lon/lat.
fn to_position(x_m: f64, y_m: f64) -> Position {
    let tau = std::f64::consts::TAU;
    let warped_x = x_m + 15.0 * (tau * y_m / 400.0 + 0.3).sin();
    let warped_y = y_m + 15.0 * (tau * x_m / 530.0 + 1.1).sin();
    let metres_per_degree_lat = 110_540.0;
    let metres_per_degree_lon = 111_320.0 * ORIGIN.lat.to_radians().cos();
    Position { lon: ORIGIN.lon + warped_x / metres_per_degree_lon, lat: ORIGIN.lat + warped_y / metres_per_degree_lat }
}

/// The outline of a cell, a vertex at every lattice step, closed.
fn outline(cell: Cell) -> Vec<[f64; 2]> {
    let mut steps = Vec::new();
    steps.extend((cell.west..cell.east).map(|x| (x, cell.south)));
    steps.extend((cell.south..cell.north).map(|y| (cell.east, y)));
    steps.extend((cell.west + 1..=cell.east).rev().map(|x| (x, cell.north)));
    steps.extend((cell.south + 1..=cell.north).rev().map(|y| (cell.west, y)));
    steps.push((cell.west, cell.south));
    steps
        .into_iter()
        .map(|(x, y)| {
            let at = to_position(x as f64 * STEP_M, y as f64 * STEP_M);
            [at.lon, at.lat]
        })
        .collect()
}

fn area(id: &str, level: AreaLevel, parent: Option<&str>, cell: Cell) -> AreaSpec {
    AreaSpec {
        id: AreaId::new(id),
        name: id.to_string(),
        level,
        parent: parent.map(AreaId::new),
        polygons: vec![vec![outline(cell)]],
    }
}

struct City {
    import: AreaImport,
    districts: Vec<Cell>,
}

fn build_city(size: &Subdivision) -> City {
    let mut random = Sequence(0x2545_f491_4f6c_dd1d);
    let whole = Cell { west: 0, south: 0, east: CITY_STEPS_X, north: CITY_STEPS_Y };
    let mut areas = vec![area("city", AreaLevel::City, None, whole)];
    let row_cuts = cuts(0, CITY_STEPS_Y, DISTRICT_ROWS.len() as i64, &mut random);
    let mut districts = Vec::new();
    for (row, columns) in DISTRICT_ROWS.iter().enumerate() {
        let band = Cell { west: 0, south: row_cuts[row], east: CITY_STEPS_X, north: row_cuts[row + 1] };
        districts.extend(split(band, (*columns, 1), &mut random));
    }
    for (d, district) in districts.iter().enumerate() {
        let district_id = format!("d{}", d + 1);
        areas.push(area(&district_id, AreaLevel::District, Some("city"), *district));
        for (s, street) in split(*district, size.streets, &mut random).into_iter().enumerate() {
            let street_id = format!("{district_id}-s{}", s + 1);
            areas.push(area(&street_id, AreaLevel::Street, Some(&district_id), street));
            for (c, community) in split(street, size.communities, &mut random).into_iter().enumerate() {
                let community_id = format!("{street_id}-c{}", c + 1);
                areas.push(area(&community_id, AreaLevel::Community, Some(&street_id), community));
                for (g, grid) in split(community, size.grids, &mut random).into_iter().enumerate() {
                    let grid_id = format!("{community_id}-g{}", g + 1);
                    areas.push(area(&grid_id, AreaLevel::Grid, Some(&community_id), grid));
                }
            }
        }
    }
    City { import: AreaImport { areas, service_centres: Vec::new() }, districts }
}

fn point_in(cell: Cell, random: &mut Sequence) -> Position {
    let x = (cell.west as f64 + (cell.east - cell.west) as f64 * random.next_unit()) * STEP_M;
    let y = (cell.south as f64 + (cell.north - cell.south) as f64 * random.next_unit()) * STEP_M;
    to_position(x, y)
}

fn city_point(random: &mut Sequence) -> Position {
    point_in(Cell { west: 0, south: 0, east: CITY_STEPS_X, north: CITY_STEPS_Y }, random)
}

fn roster(map: &AreaMap, random: &mut Sequence) -> Vec<(AgentProfile, Position)> {
    let roles = [
        (Role::Volunteer, 0.40),
        (Role::RegisteredMember, 0.25),
        (Role::CommunityWorker, 0.10),
        (Role::BuildingLeader, 0.10),
        (Role::SunkCadre, 0.05),
        (Role::GridLeader, 0.05),
        (Role::PropertyStaff, 0.05),
    ];
    (0..PEOPLE)
        .map(|n| {
            let at = city_point(random);
            let mut pick = random.next_unit();
            let mut role = Role::Volunteer;
            for (candidate, share) in roles {
                if pick < share {
                    role = candidate;
                    break;
                }
                pick -= share;
            }
            let mut skills = BTreeSet::new();
            for (skill, share) in [("first_aid", 0.30), ("driving", 0.25), ("elder_care", 0.20), ("rescue", 0.12)] {
                if random.next_unit() < share {
                    skills.insert(skill.to_string());
                }
            }
            let travel_mode = match random.below(10) {
                0..=4 => TravelMode::Walk,
                5..=8 => TravelMode::Bike,
                _ => TravelMode::Car,
            };
            let profile = AgentProfile {
                id: AgentId::new(format!("p{n:07}")),
                name: format!("p{n}"),
                role,
                skills,
                phone: String::new(),
                home_area: map.place(at).at(AreaLevel::Grid).cloned(),
                travel_mode,
                on_duty: random.next_unit() < 0.8,
                home: Some(at),
            };
            (profile, at)
        })
        .collect()
}

#[derive(Debug)]
enum Action {
    SwitchToEmergency(AreaId),
    Incident(u64),
    Answer { agent: AgentId, offer: OfferId, accept: bool },
    Complete { agent: AgentId, incident: IncidentId },
    Refresh(usize),
}

#[derive(Default)]
struct Timings {
    ticks: Duration,
    incidents: Duration,
    answers: Duration,
    refreshes: Duration,
    other: Duration,
    events: usize,
    offers: usize,
    staffing_low: usize,
    callups: usize,
}

struct Drill {
    engine: Engine,
    people: Vec<(AgentId, Position)>,
    queue: BTreeMap<(Millis, u64), Action>,
    next_action: u64,
    random: Sequence,
    timings: Timings,
}

impl Drill {
    fn schedule(&mut self, at: Millis, action: Action) {
        self.next_action += 1;
        self.queue.insert((at, self.next_action), action);
    }

    fn handle(&mut self, events: Vec<Event>, now: Millis) {
        self.timings.events += events.len();
        for event in events {
            match event.kind {
                EventKind::OfferSent { offer } => {
                    self.timings.offers += 1;
                    let answer = self.random.next_unit();
                    if answer < 0.95 {
                        let at = now.plus_seconds(self.random.between(10, 60));
                        self.schedule(at, Action::Answer { agent: offer.agent, offer: offer.id, accept: answer < 0.80 });
                    }
                }
                EventKind::Assigned { incident, agent, .. } => {
                    let at = now.plus_seconds(self.random.between(300, 900));
                    self.schedule(at, Action::Complete { agent, incident });
                }
                EventKind::GridStaffingLow { .. } => self.timings.staffing_low += 1,
                EventKind::CallupIssued { .. } => self.timings.callups += 1,
                _ => {}
            }
        }
    }

    fn execute(&mut self, command: Command, now: Millis) -> Duration {
        let started = Instant::now();
        // An answer to an offer that timed out meanwhile is refused; that is part of the drill.
        let result = self.engine.execute(command, "bench", now);
        let took = started.elapsed();
        if let Ok(events) = result {
            self.handle(events, now);
        }
        took
    }

    fn perform(&mut self, action: Action, now: Millis, incident_cells: &[Cell]) {
        match action {
            Action::SwitchToEmergency(area) => {
                let command = Command::SetMode { area, mode: Mode::EmergencyIi, reason: "bench".into() };
                let took = self.execute(command, now);
                self.timings.other += took;
            }
            Action::Incident(n) => {
                let cell = incident_cells[self.random.below(incident_cells.len() as u64) as usize];
                let spec = IncidentSpec {
                    at: point_in(cell, &mut self.random),
                    category: "bench".into(),
                    priority: 1 + (n % 4) as u8,
                    skills: if n % 3 == 0 { ["first_aid".to_string()].into() } else { BTreeSet::new() },
                    headcount: 1 + (n % 2) as u32,
                    description: String::new(),
                    source_id: String::new(),
                };
                let took = self.execute(Command::CreateIncident { id: None, spec, force: true }, now);
                self.timings.incidents += took;
            }
            Action::Answer { agent, offer, accept } => {
                let command = if accept {
                    Command::Accept { agent, offer }
                } else {
                    Command::Decline { agent, offer, reason: "busy".into() }
                };
                let took = self.execute(command, now);
                self.timings.answers += took;
            }
            Action::Complete { agent, incident } => {
                let took =
                    self.execute(Command::Complete { agent, incident, feedback: "done".into(), photo_refs: Vec::new() }, now);
                self.timings.answers += took;
            }
            Action::Refresh(person) => {
                let (agent, at) = self.people[person].clone();
                let took = self.execute(Command::ReportLocation { agent, at }, now);
                self.timings.refreshes += took;
                self.schedule(now.plus_seconds(REFRESH_S), Action::Refresh(person));
            }
        }
    }
}

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|arg| SIZES.iter().any(|size| size.label == arg));
    println!("machine: {} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model());
    let mut drills = Vec::new();
    for size in SIZES.iter().filter(|size| only.as_deref().is_none_or(|label| label == size.label)) {
        drills.push((size.label, run(size)));
    }
    if let [(_, small), (_, big)] = drills.as_slice() {
        println!("drill 15k / 3k: {:.2}", big.as_secs_f64() / small.as_secs_f64());
    }
}

fn run(size: &Subdivision) -> Duration {
    let started = Instant::now();
    let city = build_city(size);
    let map = AreaMap::from(city.import.clone());
    let vertices: Vec<usize> = city.import.areas.iter().map(|spec| spec.polygons[0][0].len()).collect();
    let vertices_of = |level: AreaLevel| {
        let of_level: Vec<usize> =
            city.import.areas.iter().zip(&vertices).filter(|(spec, _)| spec.level == level).map(|(_, count)| *count).collect();
        of_level.iter().sum::<usize>() / of_level.len().max(1)
    };
    println!(
        "{}: {} areas ({} grids); vertices per outline: district {}, community {}, grid {}; built in {:.1} s",
        size.label,
        map.len(),
        city.import.areas.iter().filter(|spec| spec.level == AreaLevel::Grid).count(),
        vertices_of(AreaLevel::District),
        vertices_of(AreaLevel::Community),
        vertices_of(AreaLevel::Grid),
        started.elapsed().as_secs_f64()
    );

    let mut random = Sequence(0x9e37_79b9_7f4a_7c15);
    let points: Vec<Position> = (0..LOOKUPS).map(|_| city_point(&mut random)).collect();
    let started = Instant::now();
    let placed = points.iter().filter(|at| map.place(**at).at(AreaLevel::Grid).is_some()).count();
    let lookup = started.elapsed();
    println!(
        "{}: AreaMap::place {:.2} µs per point ({LOOKUPS} points, {placed} placed in a grid)",
        size.label,
        lookup.as_secs_f64() * 1e6 / LOOKUPS as f64
    );

    let people = roster(&map, &mut random);
    let started = Instant::now();
    let mut engine = Engine::new(Policy::default());
    engine.execute(Command::ImportAreas(city.import.clone()), "bench", T0).expect("imports");
    let imported = started.elapsed();
    let profiles: Vec<AgentProfile> = people.iter().map(|(profile, _)| profile.clone()).collect();
    engine.execute(Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() }, "bench", T0).expect("roster");
    let positions: Vec<(AgentId, Position)> = people.into_iter().map(|(profile, at)| (profile.id, at)).collect();
    for (agent, at) in &positions {
        engine.execute(Command::Connect { agent: agent.clone() }, "bench", T0).expect("connects");
        engine.execute(Command::ReportLocation { agent: agent.clone(), at: *at }, "bench", T0).expect("located");
    }
    let set_up = started.elapsed();
    println!(
        "{}: set-up {:.2} s (map import {:.2} s; roster, connect and locate {PEOPLE} people)",
        size.label,
        set_up.as_secs_f64(),
        imported.as_secs_f64()
    );

    let mut drill = Drill {
        engine,
        people: positions,
        queue: BTreeMap::new(),
        next_action: 0,
        random: Sequence(0x853c_49e6_748f_ea9b),
        timings: Timings::default(),
    };
    // The first two districts share a border, so their emergencies join into one flat area.
    let emergency_cells = vec![city.districts[0], city.districts[1]];
    let whole = vec![Cell { west: 0, south: 0, east: CITY_STEPS_X, north: CITY_STEPS_Y }];
    for district in ["d1", "d2"] {
        drill.schedule(T0.plus_seconds(60), Action::SwitchToEmergency(AreaId::new(district)));
    }
    for n in 0..INCIDENTS {
        let at = T0.plus_seconds(60 + n * (DRILL_S - 120) / INCIDENTS);
        drill.schedule(at, Action::Incident(n));
    }
    for person in 0..drill.people.len() {
        let first = drill.random.between(1, REFRESH_S);
        drill.schedule(T0.plus_seconds(first), Action::Refresh(person));
    }
    let end = T0.plus_seconds(DRILL_S);
    let started = Instant::now();
    let mut now = T0;
    loop {
        let next_action = drill.queue.first_key_value().map(|((at, _), _)| *at);
        let before = Instant::now();
        let next_deadline = drill.engine.next_deadline();
        drill.timings.ticks += before.elapsed();
        let Some(next) = [next_action, next_deadline].into_iter().flatten().min() else { break };
        if next > end {
            break;
        }
        now = next.max(now);
        if next_deadline == Some(next) {
            let before = Instant::now();
            let fired = drill.engine.tick(now);
            drill.timings.ticks += before.elapsed();
            drill.handle(fired, now);
        } else if let Some((_, action)) = drill.queue.pop_first() {
            // Incidents fall in the emergency districts 60 % of the time.
            let cells = if drill.random.next_unit() < 0.6 { &emergency_cells } else { &whole };
            drill.perform(action, now, cells);
        }
    }
    let took = started.elapsed();
    let timings = &drill.timings;
    println!(
        "{}: drill {:.2} s for {INCIDENTS} incidents and {PEOPLE} people over {DRILL_S} s virtual: \
         deadlines and staffing checks {:.2} s, incidents {:.2} s, answers {:.2} s, location refreshes {:.2} s, mode switches {:.2} s",
        size.label,
        took.as_secs_f64(),
        timings.ticks.as_secs_f64(),
        timings.incidents.as_secs_f64(),
        timings.answers.as_secs_f64(),
        timings.refreshes.as_secs_f64(),
        timings.other.as_secs_f64()
    );
    println!(
        "{}: {} events, {} offers, {} grids low, {} call-ups",
        size.label, timings.events, timings.offers, timings.staffing_low, timings.callups
    );
    took
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".to_string())
}
