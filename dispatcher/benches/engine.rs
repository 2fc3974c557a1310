//! Engine figures at city scale: placing points, nearest-candidate search,
//! incident creation with offers, and journal append latency.
//!
//! Run with `cargo bench -p pingji-dispatcher --bench engine` (release build).
//! Prints figures; asserts nothing about speed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pingji_dispatcher::journal::{Journal, SqliteJournal};
use pingji_engine::areas::parse_geojson;
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::Policy;
use pingji_engine::roster::{AgentProfile, Role, TravelMode};
use pingji_engine::spatial::Position;

#[path = "common/sequence.rs"]
mod sequence;
use sequence::Sequence;

const T0: Millis = Millis(1_800_000_000_000);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/maps/sample-city.geojson"))
        .expect("sample city");
    let import = parse_geojson(&text).expect("parses");
    let mut engine = Engine::new(Policy::default());
    engine.execute(Command::ImportAreas(import), "bench", T0).expect("imports");
    let (west, east, south, north) = (120.0876, 120.2124, 30.2250, 30.3150);
    let mut random = Sequence(0x9e37_79b9_7f4a_7c15);
    let mut point =
        || Position { lon: west + (east - west) * random.next_unit(), lat: south + (north - south) * random.next_unit() };

    for people in [10_000usize, 100_000] {
        let mut engine = Engine::new(Policy::default());
        engine.execute(Command::ImportAreas(parse_geojson(&text).expect("parses")), "bench", T0).expect("imports");
        let skills = ["first_aid", "elder_care", "rescue", "driving"];
        let profiles: Vec<AgentProfile> = (0..people)
            .map(|n| AgentProfile {
                id: AgentId::new(format!("p{n:07}")),
                name: format!("p{n}"),
                role: Role::Volunteer,
                skills: [skills[n % skills.len()].to_string()].into(),
                phone: String::new(),
                home_area: None,
                travel_mode: [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][n % 3],
                on_duty: true,
                home: None,
            })
            .collect();
        engine
            .execute(Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() }, "bench", T0)
            .expect("roster");

        let started = Instant::now();
        for n in 0..people {
            let agent = AgentId::new(format!("p{n:07}"));
            engine.execute(Command::Connect { agent: agent.clone() }, "bench", T0).expect("connect");
            engine.execute(Command::ReportLocation { agent, at: point() }, "bench", T0).expect("locate");
        }
        let located = started.elapsed();
        println!(
            "{people:>7} people: connect + first location {:>8.1} ms total, {:>6.2} µs per person",
            located.as_secs_f64() * 1e3,
            located.as_secs_f64() * 1e6 / people as f64
        );

        let moves = 100_000;
        let started = Instant::now();
        for n in 0..moves {
            let agent = AgentId::new(format!("p{:07}", n % people));
            engine.execute(Command::ReportLocation { agent, at: point() }, "bench", Millis(T0.0 + 1000)).expect("move");
        }
        let moved = started.elapsed();
        println!(
            "{people:>7} people: location update {:>6.2} µs each ({moves} updates)",
            moved.as_secs_f64() * 1e6 / moves as f64
        );

        let required: BTreeSet<String> = ["rescue".to_string()].into();
        let mut latencies = Vec::new();
        for _ in 0..2000 {
            let at = point();
            let started = Instant::now();
            let found = engine.nearby(at, 5, &required, true, Millis(T0.0 + 2000));
            latencies.push(started.elapsed());
            assert_eq!(found.len(), 5);
        }
        latencies.sort();
        println!(
            "{people:>7} people: nearest 5 with a skill p50 {:?} p99 {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );

        let incidents = 1000;
        let mut latencies = Vec::new();
        for n in 0..incidents {
            let spec = IncidentSpec {
                at: point(),
                category: "bench".into(),
                priority: 1 + (n % 4) as u8,
                skills: if n % 2 == 0 { required.clone() } else { BTreeSet::new() },
                headcount: 1 + (n % 3) as u32,
                description: String::new(),
                source_id: String::new(),
            };
            let started = Instant::now();
            // Forced: the bench times dispatch, and its points are its own.
            let create = Command::CreateIncident { id: None, spec, force: true };
            engine.execute(create, "bench", Millis(T0.0 + 3000)).expect("create");
            latencies.push(started.elapsed());
        }
        latencies.sort();
        println!(
            "{people:>7} people: create incident + offers p50 {:?} p99 {:?} ({incidents} incidents, normal mode)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        let started = Instant::now();
        let snapshot = serde_json::to_vec(engine.state()).expect("serialises");
        println!("{people:>7} people: snapshot {:.1} MB in {:?}", snapshot.len() as f64 / 1e6, started.elapsed());
    }

    let directory = tempfile::tempdir().expect("temp dir");
    let mut journal = SqliteJournal::open(&directory.path().join("bench.db")).expect("journal");
    let mut engine_events = Vec::new();
    let mut seq = 0;
    for batch_size in [1usize, 16, 256] {
        let mut latencies = Vec::new();
        for _ in 0..200 {
            engine_events.clear();
            for _ in 0..batch_size {
                seq += 1;
                engine_events.push(pingji_dispatcher::journal::StoredEvent {
                    seq,
                    at_ms: T0.0,
                    actor: "bench".into(),
                    kind: "offer_sent".into(),
                    incident_id: Some("inc-000001".into()),
                    agent_id: Some("p0000001".into()),
                    area_id: None,
                    body: "{\"type\":\"offer_sent\",\"offer\":{\"id\":\"inc-000001-o1\"}}".into(),
                });
            }
            let started = Instant::now();
            journal.append(&engine_events).expect("append");
            latencies.push(started.elapsed());
        }
        latencies.sort();
        println!(
            "journal append (SQLite, WAL, synchronous=FULL), batch of {batch_size:>3}: p50 {:?} p99 {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
}
