//! `explainbench`: how long `ExplainIncident` takes the engine (issue #21):
//! the sample city with N people located at random (a share off duty or
//! busy, skills drawn), incidents at random points, each explained in full
//! (everyone on the roster given a reason, the ranking and the nearest 20
//! passed over) and for one person. Figures are printed, never asserted.
//!
//! The engine alone (no gRPC, no journal): what the call costs the one task
//! that owns the dispatch state, during which it serves nothing else.
//!
//! ```sh
//! cargo run --release -p pingji-engine --example explainbench -- 10000
//! cargo run --release -p pingji-engine --example explainbench -- 100000 [INCIDENTS] [SEED]
//! ```

use std::collections::BTreeSet;
use std::time::Instant;

use pingji_engine::areas::parse_geojson;
use pingji_engine::engine::explain::ExplainQuery;
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::{AgentId, IncidentId, Millis};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::Policy;
use pingji_engine::roster::{AgentProfile, AgentStatus, Role, TravelMode};
use pingji_engine::spatial::Position;

struct Args {
    /// People on the roster, located at random over the city.
    people: usize,
    /// Incidents explained (each once in full and once for one person).
    incidents: usize,
    seed: u64,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let numbers: Vec<u64> = std::env::args()
            .skip(1)
            .map(|arg| arg.parse::<u64>().map_err(|_| format!("{arg:?} is not a number; give PEOPLE [INCIDENTS] [SEED]")))
            .collect::<Result<_, _>>()?;
        Ok(Args {
            people: numbers.first().copied().unwrap_or(10_000) as usize,
            incidents: numbers.get(1).copied().unwrap_or(200) as usize,
            seed: numbers.get(2).copied().unwrap_or(21),
        })
    }
}

const START: Millis = Millis(1_800_000_000_000);

/// A small deterministic generator (xorshift), so that runs compare.
struct Sequence(u64);

impl Sequence {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * share).round() as usize]
}

fn main() -> Result<(), String> {
    let args = Args::parse()?;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson"))
        .map_err(|error| format!("cannot read the sample city: {error}"))?;
    let map = parse_geojson(&text)?;
    let city = map.areas.iter().find(|area| area.id.as_str() == "city").ok_or("the sample city has no area `city`")?;
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for [lon, lat] in city.polygons.iter().flatten().flatten() {
        west = west.min(*lon);
        east = east.max(*lon);
        south = south.min(*lat);
        north = north.max(*lat);
    }
    let mut random = Sequence(args.seed.max(1));
    let point = |random: &mut Sequence| Position {
        lon: west + (east - west) * random.unit(),
        lat: south + (north - south) * random.unit(),
    };
    let mut engine = Engine::new(Policy { staffing_check_s: 0, ..Policy::default() });
    let operator = "operator:bench";
    engine.execute(Command::ImportAreas(map.clone()), operator, START).map_err(|error| error.to_string())?;
    let mut people = Vec::with_capacity(args.people);
    for n in 0..args.people {
        let mut skills = BTreeSet::new();
        if random.unit() < 0.3 {
            skills.insert("first_aid".to_string());
        }
        if random.unit() < 0.05 {
            skills.insert("diving".to_string());
        }
        let travel_mode = match random.unit() {
            draw if draw < 0.5 => TravelMode::Walk,
            draw if draw < 0.9 => TravelMode::Bike,
            _ => TravelMode::Car,
        };
        people.push(AgentProfile {
            id: AgentId::new(format!("p{n:06}")),
            name: format!("person {n}"),
            role: if random.unit() < 0.1 { Role::RegisteredMember } else { Role::Volunteer },
            skills,
            phone: String::new(),
            home_area: None,
            travel_mode,
            on_duty: random.unit() < 0.8,
            home: None,
        });
    }
    let setup = Instant::now();
    engine
        .execute(Command::UpsertAgents { agents: people.clone(), all_new: true, tokens: Vec::new() }, operator, START)
        .map_err(|error| error.to_string())?;
    for profile in &people {
        let agent = profile.id.clone();
        let _ = engine.execute(Command::Connect { agent: agent.clone() }, "agent", START);
        let _ = engine.execute(Command::ReportLocation { agent: agent.clone(), at: point(&mut random) }, "agent", START);
        if random.unit() < 0.1 {
            let _ = engine.execute(Command::SetStatus { agent, status: AgentStatus::Busy }, "agent", START);
        }
    }
    let mut incidents: Vec<IncidentId> = Vec::new();
    for _ in 0..args.incidents {
        let skills: BTreeSet<String> = if random.unit() < 0.5 { ["first_aid".to_string()].into() } else { BTreeSet::new() };
        let spec = IncidentSpec {
            at: point(&mut random),
            category: "medical".into(),
            priority: 2,
            skills,
            headcount: 1,
            description: String::new(),
            source_id: String::new(),
        };
        let command = Command::CreateIncident { id: None, spec, force: true };
        if let Ok(events) = engine.execute(command, operator, START) {
            incidents.extend(events.first().and_then(|event| event.kind.incident_id()).cloned());
        }
    }
    println!(
        "explainbench: {} people ({} located), {} incidents; set up in {:.1} s",
        args.people,
        engine.live().index.len(),
        incidents.len(),
        setup.elapsed().as_secs_f64()
    );
    let now = START.plus_seconds(5);
    let mut full_ms = Vec::new();
    let mut one_ms = Vec::new();
    let mut passed_over = 0usize;
    for (index, incident) in incidents.iter().enumerate() {
        let query = ExplainQuery { incident: incident.clone(), agent: None, candidates: 10, passed_over: 20 };
        let started = Instant::now();
        let explanation = engine.explain(&query, now).map_err(|error| error.to_string())?;
        full_ms.push(started.elapsed().as_secs_f64() * 1e3);
        passed_over += explanation.reason_counts.values().map(|count| *count as usize).sum::<usize>();
        let one = ExplainQuery { agent: Some(people[index % people.len()].id.clone()), ..query };
        let started = Instant::now();
        engine.explain(&one, now).map_err(|error| error.to_string())?;
        one_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    for (label, times) in [("full", &mut full_ms), ("--agent", &mut one_ms)] {
        times.sort_by(f64::total_cmp);
        println!(
            "ExplainIncident {label:>8}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} calls",
            percentile(times, 0.5),
            percentile(times, 0.99),
            times.last().copied().unwrap_or(0.0),
            times.len()
        );
    }
    println!("(passed over per full call, on average: {})", passed_over / incidents.len().max(1));
    Ok(())
}
