//! `surge`: the same surge played twice on the dispatch engine, with greedy
//! and with batch assignment, and how far people had to travel and how fast
//! incidents were staffed (issue #9). Figures are printed, never asserted.
//!
//! The runs are paired: the roster, the incidents and every person's answer
//! to a given offer (accept, decline or stay silent, and after how long) are
//! drawn from seeds and hashes, not from one shared random stream, so both
//! runs see exactly the same surge and the same people; only the
//! assignment differs.
//!
//! ```sh
//! cargo run --release -p pingji-scenarios --bin surge -- --svg docs/surge.svg
//! cargo run --release -p pingji-scenarios --bin surge -- --area d1-s1 --skilled-share 0.3
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use pingji_engine::areas::{AreaImport, parse_geojson};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::{Assignment, Mode, Policy};
use pingji_engine::roster::{AgentProfile, Role, TravelMode};
use pingji_engine::spatial::Position;

/// Compares greedy and batch assignment on one surge.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// People on the roster, spread evenly over the city.
    #[arg(long, default_value_t = 50_000)]
    people: usize,
    /// Share of them on duty (connected, located, available).
    #[arg(long, default_value_t = 0.65)]
    on_duty: f64,
    /// Incidents in the surge.
    #[arg(long, default_value_t = 1000)]
    incidents: usize,
    /// Seconds over which they are reported.
    #[arg(long, default_value_t = 60)]
    over_s: u64,
    /// The area the incidents fall in (its bounding box); the city by default.
    #[arg(long, default_value = "city")]
    area: String,
    /// Multiplies every skill's share of people (0.3: skilled people are rarer).
    #[arg(long, default_value_t = 1.0)]
    skilled_share: f64,
    /// The grade the city is switched to.
    #[arg(long, default_value = "II")]
    grade: String,
    /// Batch window in milliseconds (the policy default when absent).
    #[arg(long)]
    window_ms: Option<u64>,
    /// People considered per incident beyond its missing offers (the policy default when absent).
    #[arg(long)]
    spare: Option<u32>,
    /// Also write the comparison as an SVG bar chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Seed of the roster and the incidents.
    #[arg(long, default_value_t = 909)]
    seed: u64,
}

/// What one run measured.
struct Figures {
    label: &'static str,
    wall_s: f64,
    incidents: usize,
    staffed: usize,
    offers: usize,
    offered_eta_mean_s: f64,
    assigned: usize,
    assigned_eta_total_s: f64,
    assigned_eta_mean_s: f64,
    assigned_eta_p90_s: f64,
    staff_p50_s: f64,
    staff_p90_s: f64,
    staff_mean_s: f64,
    on_scene_p50_s: f64,
    on_scene_p90_s: f64,
}

const START: Millis = Millis(1_767_254_400_000);
const SKILLS: [(&str, f64); 4] = [("first_aid", 0.10), ("elder_care", 0.08), ("electrician", 0.03), ("rescue", 0.05)];
/// Categories: (name, weight, required skill).
const CATEGORIES: [(&str, f64, Option<&str>); 5] = [
    ("flooding", 4.0, None),
    ("resident_transfer", 2.0, None),
    ("medical", 2.0, Some("first_aid")),
    ("power_line_down", 1.0, Some("electrician")),
    ("elder_evacuation", 1.0, Some("elder_care")),
];

/// A deterministic pseudo-random sequence (splitmix64).
struct Sequence(u64);

impl Sequence {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of text (FNV-1a), for per-offer answers.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The surge both runs play.
struct Surge {
    map: AreaImport,
    grade: Mode,
    people: Vec<(AgentProfile, Option<Position>)>,
    incidents: Vec<(u64, IncidentSpec)>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let surge = match build_surge(&args) {
        Ok(surge) => surge,
        Err(error) => {
            eprintln!("surge: {error}");
            return ExitCode::from(2);
        }
    };
    let on_duty = surge.people.iter().filter(|(_, at)| at.is_some()).count();
    println!(
        "surge: {} incidents over {} s in {}, {} people ({} on duty, skill shares x{}), grade {}",
        args.incidents, args.over_s, args.area, args.people, on_duty, args.skilled_share, args.grade
    );
    let mut runs = Vec::new();
    for (label, assignment) in [("greedy", Assignment::Greedy), ("batch", Assignment::Batch)] {
        runs.push(play(&surge, label, assignment, &args));
    }
    print_table(&runs);
    time_matching();
    if let Some(path) = &args.svg {
        if let Err(error) = std::fs::write(path, chart(&runs, &args)) {
            eprintln!("surge: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("chart: {}", path.display());
    }
    ExitCode::SUCCESS
}

/// The matching alone on a crowded synthetic batch: 1,000 incidents x 3
/// offers, each slot with 11 options among 2,000 people of one street, so
/// that slots compete for the same people.
fn time_matching() {
    let mut random = Sequence(7);
    let people = 2000usize;
    let mut options = Vec::new();
    let mut unmatched = Vec::new();
    for incident in 0..1000usize {
        let centre = (incident * people / 1000) as i64;
        let incident_options: Vec<(usize, i64)> = (0..11)
            .map(|_| {
                let offset = (random.unit() * 60.0) as i64 - 30;
                let column = (centre + offset).rem_euclid(people as i64) as usize;
                (column, 30 + offset.abs() * 10 + (random.unit() * 20.0) as i64)
            })
            .collect::<BTreeMap<usize, i64>>()
            .into_iter()
            .collect();
        for _ in 0..3 {
            options.push(incident_options.clone());
            unmatched.push(1_000_000_000);
        }
    }
    let started = Instant::now();
    let matching = pingji_engine::assignment::min_cost_matching(&options, &unmatched, people, u64::MAX);
    let elapsed = started.elapsed();
    let matched = matching.slot_to_person.iter().filter(|person| person.is_some()).count();
    println!(
        "matching alone: {} slots, {people} people, {matched} matched, {} steps in {:.1} ms ({:.1} ns per step)",
        options.len(),
        matching.steps,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e9 / matching.steps.max(1) as f64
    );
}

fn build_surge(args: &Args) -> Result<Surge, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/maps/sample-city.geojson"))
        .map_err(|error| format!("cannot read the sample city: {error}"))?;
    let map = parse_geojson(&text)?;
    let grade = match args.grade.as_str() {
        "IV" => Mode::EmergencyIv,
        "III" => Mode::EmergencyIii,
        "II" => Mode::EmergencyIi,
        "I" => Mode::EmergencyI,
        other => return Err(format!("grade {other:?}: give IV, III, II or I")),
    };
    let bbox = |id: &str| -> Option<(f64, f64, f64, f64)> {
        let area = map.areas.iter().find(|area| area.id.as_str() == id)?;
        let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for [lon, lat] in area.polygons.iter().flatten().flatten() {
            west = west.min(*lon);
            east = east.max(*lon);
            south = south.min(*lat);
            north = north.max(*lat);
        }
        Some((west, east, south, north))
    };
    let city = bbox("city").ok_or("the sample city has no area `city`")?;
    let incident_box = bbox(&args.area).ok_or_else(|| format!("area {} is not on the sample map", args.area))?;
    let mut random = Sequence(args.seed);
    let point_in = |(west, east, south, north): (f64, f64, f64, f64), random: &mut Sequence| Position {
        lon: west + (east - west) * random.unit(),
        lat: south + (north - south) * random.unit(),
    };
    let mut people = Vec::with_capacity(args.people);
    for n in 0..args.people {
        let skills: BTreeSet<String> = SKILLS
            .iter()
            .filter(|(_, share)| random.unit() < share * args.skilled_share)
            .map(|(skill, _)| skill.to_string())
            .collect();
        let travel = match random.unit() {
            draw if draw < 0.5 => TravelMode::Walk,
            draw if draw < 0.9 => TravelMode::Bike,
            _ => TravelMode::Car,
        };
        let at = point_in(city, &mut random);
        let on_duty = random.unit() < args.on_duty;
        let profile = AgentProfile {
            id: AgentId::new(format!("p{n:06}")),
            name: format!("person {n}"),
            role: Role::Volunteer,
            skills,
            phone: String::new(),
            home_area: None,
            travel_mode: travel,
            on_duty,
            home: None,
        };
        people.push((profile, on_duty.then_some(at)));
    }
    let total_weight: f64 = CATEGORIES.iter().map(|(_, weight, _)| weight).sum();
    let mut incidents = Vec::with_capacity(args.incidents);
    for n in 0..args.incidents {
        let at_ms = 300_000 + (args.over_s * 1000 * n as u64) / args.incidents.max(1) as u64;
        let mut draw = random.unit() * total_weight;
        let (category, _, skill) = CATEGORIES
            .iter()
            .find(|(_, weight, _)| {
                draw -= weight;
                draw < 0.0
            })
            .copied()
            .unwrap_or(CATEGORIES[0]);
        let spec = IncidentSpec {
            at: point_in(incident_box, &mut random),
            category: category.to_string(),
            priority: 1 + (random.next_u64() % 3) as u8,
            skills: skill.map(|skill| BTreeSet::from([skill.to_string()])).unwrap_or_default(),
            headcount: 1 + (random.next_u64() % 2) as u32,
            description: String::new(),
            source_id: String::new(),
        };
        incidents.push((at_ms, spec));
    }
    Ok(Surge { map, grade, people, incidents })
}

/// A person's answer to one offer: the same person, the same incident, the
/// same answer in both runs. 80 % accept, 15 % decline, 5 % stay silent;
/// after 5..80 s (triangular, most often about 20 s).
fn answer(agent: &AgentId, incident: &IncidentId) -> (Option<bool>, u64) {
    let seed = hash(&format!("{agent}/{incident}"));
    let mut draws = Sequence(seed);
    let choice = draws.unit();
    let decision = if choice < 0.80 {
        Some(true)
    } else if choice < 0.95 {
        Some(false)
    } else {
        None
    };
    let (min, typical, max) = (5.0, 20.0, 80.0);
    let u = draws.unit();
    let cut = (typical - min) / (max - min);
    let seconds = if u < cut {
        min + (u * (max - min) * (typical - min)).sqrt()
    } else {
        max - ((1.0 - u) * (max - min) * (max - typical)).sqrt()
    };
    (decision, (seconds * 1000.0) as u64)
}

enum Action {
    Report(usize),
    Answer { agent: AgentId, offer: OfferId, accept: bool },
}

fn play(surge: &Surge, label: &'static str, assignment: Assignment, args: &Args) -> Figures {
    let mut policy = Policy { staffing_check_s: 0, ..Policy::default() };
    if let Some(spare) = args.spare {
        policy.batch_spare_candidates = spare;
    }
    for mode in [
        &mut policy.normal,
        &mut policy.emergency_iv,
        &mut policy.emergency_iii,
        &mut policy.emergency_ii,
        &mut policy.emergency_i,
    ] {
        mode.assignment = assignment;
        if let Some(window_ms) = args.window_ms {
            mode.batch_window_ms = window_ms;
        }
    }
    let mut engine = Engine::new(policy);
    let operator = "operator:surge";
    let mut events: Vec<Event> = Vec::new();
    let run = |engine: &mut Engine, command: Command, actor: &str, now: Millis, events: &mut Vec<Event>| {
        if let Ok(new) = engine.execute(command, actor, now) {
            events.extend(new);
        }
    };
    run(&mut engine, Command::ImportAreas(surge.map.clone()), operator, START, &mut events);
    let agents: Vec<AgentProfile> = surge.people.iter().map(|(profile, _)| profile.clone()).collect();
    run(&mut engine, Command::UpsertAgents { agents, all_new: true, tokens: Vec::new() }, operator, START, &mut events);
    for (profile, at) in &surge.people {
        if let Some(at) = at {
            run(&mut engine, Command::Connect { agent: profile.id.clone() }, "agent", START, &mut events);
            run(&mut engine, Command::ReportLocation { agent: profile.id.clone(), at: *at }, "agent", START, &mut events);
        }
    }
    let switch = Command::SetMode { area: AreaId::new("city"), mode: surge.grade, reason: "typhoon".into() };
    run(&mut engine, switch, operator, START, &mut events);

    let started = Instant::now();
    let mut queue: BTreeMap<(Millis, u64), Action> = BTreeMap::new();
    let mut sequence = 0u64;
    for (index, (at_ms, _)) in surge.incidents.iter().enumerate() {
        sequence += 1;
        queue.insert((Millis(START.0 + *at_ms as i64), sequence), Action::Report(index));
    }
    let end = START.plus_seconds(1800);
    let mut seen = events.len();
    let mut now = START;
    loop {
        let next_action = queue.first_key_value().map(|((at, _), _)| *at);
        let next_deadline = engine.next_deadline();
        let next = match (next_action, next_deadline) {
            (Some(action), Some(deadline)) => action.min(deadline),
            (Some(action), None) => action,
            (None, Some(deadline)) => deadline,
            (None, None) => break,
        };
        if next > end {
            break;
        }
        now = next.max(now);
        if next_deadline == Some(next) {
            events.extend(engine.tick(now));
        } else if let Some((_, action)) = queue.pop_first() {
            match action {
                Action::Report(index) => {
                    let spec = surge.incidents[index].1.clone();
                    // A scripted surge is reported as written, like a drill.
                    run(&mut engine, Command::CreateIncident { id: None, spec, force: true }, operator, now, &mut events);
                }
                Action::Answer { agent, offer, accept } => {
                    let command = if accept {
                        Command::Accept { agent: agent.clone(), offer }
                    } else {
                        Command::Decline { agent: agent.clone(), offer, reason: "my own home is flooding".into() }
                    };
                    run(&mut engine, command, "agent", now, &mut events);
                }
            }
        }
        // People answer the offers they were just sent.
        for event in &events[seen..] {
            if let EventKind::OfferSent { offer } = &event.kind {
                let (decision, after_ms) = answer(&offer.agent, &offer.incident);
                if let Some(accept) = decision {
                    sequence += 1;
                    let action = Action::Answer { agent: offer.agent.clone(), offer: offer.id.clone(), accept };
                    queue.insert((Millis(now.0 + after_ms as i64), sequence), action);
                }
            }
        }
        seen = events.len();
    }
    let wall_s = started.elapsed().as_secs_f64();
    measure(label, wall_s, &events, &engine, surge)
}

fn measure(label: &'static str, wall_s: f64, events: &[Event], engine: &Engine, surge: &Surge) -> Figures {
    let mut reported: BTreeMap<IncidentId, Millis> = BTreeMap::new();
    let mut offer_eta: BTreeMap<(IncidentId, OfferId), f64> = BTreeMap::new();
    let mut assigned_eta = Vec::new();
    let mut staffed = Vec::new();
    // On scene: when the last needed person would arrive, at the speeds people really move in a flood.
    let mut on_scene_at: BTreeMap<IncidentId, Millis> = BTreeMap::new();
    for event in events {
        match &event.kind {
            EventKind::IncidentReported { incident, .. } => {
                reported.insert(incident.clone(), event.at);
            }
            EventKind::OfferSent { offer } => {
                offer_eta.insert((offer.incident.clone(), offer.id.clone()), offer.eta_s);
            }
            EventKind::Assigned { offer, incident, agent } => {
                if let Some(eta) = offer_eta.get(&(incident.clone(), offer.clone())) {
                    assigned_eta.push(*eta);
                    let slow_down = flood_slow_down(engine, agent);
                    let arrive = Millis(event.at.0 + (eta * slow_down * 1000.0) as i64);
                    let latest = on_scene_at.entry(incident.clone()).or_insert(arrive);
                    *latest = (*latest).max(arrive);
                }
            }
            EventKind::IncidentStaffed { incident } => {
                if let Some(at) = reported.get(incident) {
                    staffed.push(event.at.seconds_since(*at));
                }
            }
            _ => {}
        }
    }
    let staffed_ids: BTreeSet<&IncidentId> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::IncidentStaffed { incident } => Some(incident),
            _ => None,
        })
        .collect();
    let on_scene: Vec<f64> = staffed_ids
        .iter()
        .filter_map(|incident| Some(on_scene_at.get(*incident)?.seconds_since(*reported.get(*incident)?)))
        .collect();
    let offered: Vec<f64> = offer_eta.values().copied().collect();
    debug_assert_eq!(reported.len(), surge.incidents.len());
    Figures {
        label,
        wall_s,
        incidents: reported.len(),
        staffed: staffed.len(),
        offers: offered.len(),
        offered_eta_mean_s: mean(&offered),
        assigned: assigned_eta.len(),
        assigned_eta_total_s: assigned_eta.iter().sum(),
        assigned_eta_mean_s: mean(&assigned_eta),
        assigned_eta_p90_s: percentile(&assigned_eta, 0.9),
        staff_p50_s: percentile(&staffed, 0.5),
        staff_p90_s: percentile(&staffed, 0.9),
        staff_mean_s: mean(&staffed),
        on_scene_p50_s: percentile(&on_scene, 0.5),
        on_scene_p90_s: percentile(&on_scene, 0.9),
    }
}

/// Flooded streets are slower than the policy's speeds: people really move
/// at 1.0 / 2.5 / 4.0 m/s instead of 1.4 / 4.0 / 8.0 (as in the typhoon drill).
fn flood_slow_down(engine: &Engine, agent: &AgentId) -> f64 {
    match engine.state().agents.get(agent).map(|record| record.profile.travel_mode) {
        Some(TravelMode::Walk) | None => 1.4,
        Some(TravelMode::Bike) => 1.6,
        Some(TravelMode::Car) => 2.0,
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn print_table(runs: &[Figures]) {
    println!(
        "| assignment | incidents | staffed | offers | mean ETA offered | people assigned | total ETA assigned | mean ETA assigned | p90 ETA assigned | time to staff p50 / p90 / mean | all on scene p50 / p90 | run (wall) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        println!(
            "| {} | {} | {} | {} | {:.1} s | {} | {:.0} s | {:.1} s | {:.0} s | {:.0} / {:.0} / {:.1} s | {:.0} / {:.0} s | {:.1} s |",
            run.label,
            run.incidents,
            run.staffed,
            run.offers,
            run.offered_eta_mean_s,
            run.assigned,
            run.assigned_eta_total_s,
            run.assigned_eta_mean_s,
            run.assigned_eta_p90_s,
            run.staff_p50_s,
            run.staff_p90_s,
            run.staff_mean_s,
            run.on_scene_p50_s,
            run.on_scene_p90_s,
            run.wall_s
        );
    }
    if let [greedy, batch] = runs {
        let change = |before: f64, after: f64| 100.0 * (after - before) / before;
        println!(
            "batch vs greedy: mean ETA assigned {:+.1} %, total ETA assigned {:+.1} %, mean time to staff {:+.1} %, on scene p50 {:+.1} %",
            change(greedy.assigned_eta_mean_s, batch.assigned_eta_mean_s),
            change(greedy.assigned_eta_total_s, batch.assigned_eta_total_s),
            change(greedy.staff_mean_s, batch.staff_mean_s),
            change(greedy.on_scene_p50_s, batch.on_scene_p50_s)
        );
    }
}

/// One bar group of the chart: its label and how to read it from a run.
type Measure = (&'static str, fn(&Figures) -> f64);

/// Grouped bars: each measure, greedy next to batch, seconds on one axis.
fn chart(runs: &[Figures], args: &Args) -> String {
    const WIDTH: f64 = 760.0;
    const HEIGHT: f64 = 400.0;
    const LEFT: f64 = 64.0;
    const BOTTOM: f64 = 72.0;
    const TOP: f64 = 64.0;
    const COLOURS: [&str; 2] = ["#9e9e9e", "#1f77b4"];
    let measures: [Measure; 5] = [
        ("mean ETA assigned", |run| run.assigned_eta_mean_s),
        ("p90 ETA assigned", |run| run.assigned_eta_p90_s),
        ("time to staff, mean", |run| run.staff_mean_s),
        ("all on scene, p50", |run| run.on_scene_p50_s),
        ("all on scene, p90", |run| run.on_scene_p90_s),
    ];
    let max = runs.iter().flat_map(|run| measures.iter().map(move |(_, value)| value(run))).fold(1.0, f64::max);
    let step = [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0].into_iter().find(|step| max / step <= 6.0).unwrap_or(2000.0);
    let top_value = (max / step).ceil() * step;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y = |value: f64| HEIGHT - BOTTOM - plot_height * value / top_value;
    let group_width = (WIDTH - LEFT - 24.0) / measures.len() as f64;
    let bar_width = group_width * 0.32;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="26" font-size="14" font-weight="bold">{} incidents in {} s, {} people, area {}: greedy vs batch (seconds)</text>
"##,
        args.incidents, args.over_s, args.people, args.area
    );
    for (index, run) in runs.iter().enumerate() {
        let x = LEFT + 160.0 * index as f64;
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="38" width="12" height="12" fill="{}"/><text x="{}" y="48">{}</text>"##,
            COLOURS[index % 2],
            x + 18.0,
            run.label
        );
    }
    let mut tick = 0.0;
    while tick <= top_value + 0.1 {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{tick:.0}</text>"##,
            WIDTH - 24.0,
            LEFT - 6.0,
            y(tick) + 4.0,
            y = y(tick)
        );
        tick += step;
    }
    for (group, (name, value)) in measures.iter().enumerate() {
        let group_x = LEFT + group_width * group as f64 + group_width * 0.15;
        for (index, run) in runs.iter().enumerate() {
            let figure = value(run);
            let x = group_x + bar_width * index as f64;
            let _ = writeln!(
                out,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{figure:.0}</text>"##,
                y(figure),
                bar_width - 2.0,
                HEIGHT - BOTTOM - y(figure),
                COLOURS[index % 2],
                x + bar_width / 2.0 - 1.0,
                y(figure) - 3.0
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{name}</text>"##,
            group_x + bar_width,
            HEIGHT - BOTTOM + 18.0
        );
    }
    let _ = writeln!(out, r##"<line x1="{LEFT}" x2="{}" y1="{b}" y2="{b}" stroke="black"/>"##, WIDTH - 24.0, b = HEIGHT - BOTTOM);
    out.push_str("</svg>\n");
    out
}
