//! Candidate search and location ingest at city scale, and the same
//! candidate question asked of Redis `GEOSEARCH` on the same data (issue #9).
//!
//! Run with `cargo bench -p pingji-dispatcher --bench candidates` (release
//! build; needs `redis-server` on the PATH for the side-by-side). Add
//! `-- 100000` to run one size only. Prints figures; asserts nothing about
//! speed.
//!
//! The city: the sample city's map (placement by point-in-polygon is part of
//! every location update), people spread evenly over its 12 km x 10 km, every
//! one connected and located, 80 % available. Skills: first_aid 30 %,
//! driving 25 %, elder_care 20 %, rescue 12 %. The question: the 5 nearest
//! available people with one skill (first_aid) or two (first_aid and
//! driving), ranked by ETA.
//!
//! Redis answers `GEOSEARCH key FROMLONLAT lon lat BYRADIUS r m ASC COUNT 5`
//! on a key that holds exactly the available first-aiders (so Redis does no
//! filtering the engine does; generous to Redis). Its cost grows with the
//! people inside the radius, so the radius and the density are printed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pingji_engine::areas::parse_geojson;
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::policy::Policy;
use pingji_engine::roster::{AgentProfile, AgentStatus, Role, TravelMode};
use pingji_engine::spatial::Position;
use pingji_test_redis::RedisServer;

#[path = "common/sequence.rs"]
mod sequence;
use sequence::Sequence;

const T0: Millis = Millis(1_800_000_000_000);
const WEST: f64 = 120.0876;
const EAST: f64 = 120.2124;
const SOUTH: f64 = 30.2250;
const NORTH: f64 = 30.3150;
const QUERIES: usize = 20_000;
const REDIS_QUERIES: usize = 5_000;

impl Sequence {
    fn point(&mut self) -> Position {
        Position { lon: WEST + (EAST - WEST) * self.next_unit(), lat: SOUTH + (NORTH - SOUTH) * self.next_unit() }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Resident memory of this process in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();

    let pages: u64 = statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn area_km2() -> f64 {
    let width = Position { lon: WEST, lat: SOUTH }.distance_m(Position { lon: EAST, lat: SOUTH }) / 1000.0;
    let height = Position { lon: WEST, lat: SOUTH }.distance_m(Position { lon: WEST, lat: NORTH }) / 1000.0;
    width * height
}

struct Person {
    id: AgentId,
    at: Position,
    available: bool,
    first_aid: bool,
}

fn profile(n: usize, random: &mut Sequence) -> AgentProfile {
    let mut skills = BTreeSet::new();
    for (skill, share) in [("first_aid", 0.30), ("driving", 0.25), ("elder_care", 0.20), ("rescue", 0.12)] {
        if random.next_unit() < share {
            skills.insert(skill.to_string());
        }
    }
    AgentProfile {
        id: AgentId::new(format!("p{n:07}")),
        name: format!("p{n}"),
        role: Role::Volunteer,
        skills,
        phone: String::new(),
        home_area: None,
        travel_mode: [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][n % 3],
        on_duty: true,
        home: None,
    }
}

fn main() {
    let sizes: Vec<usize> = match std::env::args().skip(1).find_map(|arg| arg.parse().ok()) {
        Some(size) => vec![size],
        None => vec![100_000, 1_000_000],
    };
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/maps/sample-city.geojson"))
        .expect("sample city");
    println!(
        "machine: {} cores, {}; city {:.0} km2 (the sample city's bounding box)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        area_km2()
    );
    let redis_dir = tempfile::tempdir().expect("temp dir");
    let redis = RedisServer::start(redis_dir.path()).ok();
    if redis.is_none() {
        println!("redis-server not found: the side-by-side is skipped");
    }
    for people in sizes {
        run(people, &text, redis.as_ref());
    }
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn run(count: usize, map: &str, redis: Option<&RedisServer>) {
    let mut random = Sequence(0x9e37_79b9_7f4a_7c15 ^ count as u64);
    let memory_before = resident_bytes();
    let mut engine = Engine::new(Policy::default());
    engine.execute(Command::ImportAreas(parse_geojson(map).expect("parses")), "bench", T0).expect("imports");
    let profiles: Vec<AgentProfile> = (0..count).map(|n| profile(n, &mut random)).collect();
    let mut people: Vec<Person> = profiles
        .iter()
        .enumerate()
        .map(|(n, profile)| Person {
            id: profile.id.clone(),
            at: Position { lon: 0.0, lat: 0.0 },
            available: n % 5 != 0,
            first_aid: profile.skills.contains("first_aid"),
        })
        .collect();
    engine.execute(Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() }, "bench", T0).expect("roster");
    let started = Instant::now();
    for person in &mut people {
        person.at = random.point();
        engine.execute(Command::Connect { agent: person.id.clone() }, "bench", T0).expect("connect");
        engine.execute(Command::ReportLocation { agent: person.id.clone(), at: person.at }, "bench", T0).expect("locate");
        if !person.available {
            let busy = Command::SetStatus { agent: person.id.clone(), status: AgentStatus::Busy };
            engine.execute(busy, "bench", T0).expect("busy");
        }
    }
    let loaded = started.elapsed();
    let memory = resident_bytes().saturating_sub(memory_before);
    let density = count as f64 / area_km2();
    println!(
        "\n== {count} people ({density:.0} per km2, all located, 80 % available): loaded in {:.1} s; \
         resident memory {:.0} MB = {:.0} bytes per person (roster record + live location + R-tree entry)",
        loaded.as_secs_f64(),
        memory as f64 / 1e6,
        memory as f64 / count as f64
    );

    // Location ingest: one update moves one person (R-tree remove + insert,
    // point-in-polygon placement), on one core.
    let updates = 1_000_000.min(count * 4);
    let moves: Vec<(usize, Position)> = (0..updates).map(|n| ((n * 7919) % count, random.point())).collect();
    let started = Instant::now();
    for (index, at) in &moves {
        let command = Command::ReportLocation { agent: people[*index].id.clone(), at: *at };
        engine.execute(command, "bench", Millis(T0.0 + 1000)).expect("move");
    }
    let elapsed = started.elapsed();
    for (index, at) in &moves {
        people[*index].at = *at;
    }
    println!(
        "location ingest into the engine: {updates} updates in {:.2} s = {:.0} updates/s on one core ({:.2} µs each)",
        elapsed.as_secs_f64(),
        updates as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / updates as f64
    );

    // Candidate search.
    let now = Millis(T0.0 + 2000);
    let questions: Vec<Position> = (0..QUERIES).map(|_| random.point()).collect();
    let one: BTreeSet<String> = ["first_aid".to_string()].into();
    let two: BTreeSet<String> = ["first_aid".to_string(), "driving".to_string()].into();
    let mut engine_p50 = Duration::ZERO;
    let mut engine_mean = Duration::ZERO;
    for (name, skills) in [("first_aid", &one), ("first_aid + driving", &two)] {
        let mut latencies = Vec::with_capacity(QUERIES);
        let started = Instant::now();
        for at in &questions {
            let before = Instant::now();
            let found = engine.nearby(*at, 5, skills, true, now);
            latencies.push(before.elapsed());
            debug_assert_eq!(found.len(), 5);
            std::hint::black_box(found);
        }
        let total = started.elapsed();
        latencies.sort();
        println!(
            "candidate search, 5 nearest available with {name:<20}: p50 {:>6.1} µs  p99 {:>6.1} µs  p99.9 {:>6.1} µs  max {:>7.1} µs; {:.0} queries/s on one core",
            percentile(&latencies, 0.5).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
            percentile(&latencies, 0.999).as_secs_f64() * 1e6,
            latencies.last().map_or(0.0, |max| max.as_secs_f64() * 1e6),
            QUERIES as f64 / total.as_secs_f64()
        );
        if skills.len() == 1 {
            engine_p50 = percentile(&latencies, 0.5);
            engine_mean = total / QUERIES as u32;
        }
    }

    let Some(redis) = redis else {
        return;
    };
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut connection = client.get_connection().expect("connect to redis");
    redis::cmd("FLUSHALL").exec(&mut connection).expect("flushall");
    let key = "bench:available:first_aid";
    let members: Vec<&Person> = people.iter().filter(|person| person.available && person.first_aid).collect();
    for chunk in members.chunks(1000) {
        let mut pipe = redis::pipe();
        let mut geoadd = redis::cmd("GEOADD");
        geoadd.arg(key);
        for person in chunk {
            geoadd.arg(person.at.lon).arg(person.at.lat).arg(person.id.as_str());
        }
        pipe.add_command(geoadd).ignore();
        pipe.exec(&mut connection).expect("geoadd");
    }
    let key_density = members.len() as f64 / area_km2();
    for radius_m in [500.0f64, 2000.0] {
        let inside = key_density * std::f64::consts::PI * (radius_m / 1000.0).powi(2);
        redis::cmd("CONFIG").arg("RESETSTAT").exec(&mut connection).expect("resetstat");
        let mut latencies = Vec::with_capacity(REDIS_QUERIES);
        let mut agree = 0;
        for at in questions.iter().take(REDIS_QUERIES) {
            let before = Instant::now();
            let found: Vec<String> = redis::cmd("GEOSEARCH")
                .arg(key)
                .arg("FROMLONLAT")
                .arg(at.lon)
                .arg(at.lat)
                .arg("BYRADIUS")
                .arg(radius_m)
                .arg("m")
                .arg("ASC")
                .arg("COUNT")
                .arg(5)
                .query(&mut connection)
                .expect("geosearch");
            latencies.push(before.elapsed());
            if found.len() == 5 {
                agree += 1;
            }
        }
        latencies.sort();
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut connection).expect("info");
        let usec_per_call = info
            .lines()
            .find(|line| line.starts_with("cmdstat_geosearch:"))
            .and_then(|line| line.split([':', ',']).find_map(|part| part.strip_prefix("usec_per_call=")))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        let redis_p50 = percentile(&latencies, 0.5);
        println!(
            "redis GEOSEARCH radius {radius_m:.0} m ({} available first-aiders in the key, {key_density:.0} per km2, ~{inside:.0} inside the radius): \
             round trip p50 {:.1} µs p99 {:.1} µs; redis cpu {usec_per_call:.1} µs per call; {agree}/{REDIS_QUERIES} found 5",
            members.len(),
            redis_p50.as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        );
        println!(
            "  ratio (one skill): engine p50 is {:.0}x faster than the redis round trip p50, {:.1}x faster than redis's own cpu per call",
            redis_p50.as_secs_f64() / engine_p50.as_secs_f64(),
            usec_per_call / (engine_mean.as_secs_f64() * 1e6)
        );
    }
}
