//! Restart: the time to rebuild the dispatch state from 1,000,000 journal
//! events in SQLite, without a snapshot and with one (issue #9).
//!
//! Run with `cargo bench -p pingji-dispatcher --bench replay` (release
//! build). Add `-- 200000` for another number of events. Prints figures;
//! asserts nothing about speed.
//!
//! The journal is written by the engine itself: 20,000 people on the roster
//! and located, then incidents one after another, each offered, accepted,
//! arrived at, completed and closed (7 events each), so the state at the end
//! holds about 140,000 incidents. Recovery is the dispatcher's own
//! `runtime::recover`: read the snapshot if any, then the events after it,
//! 10,000 at a time, each decoded from its JSON and applied.
//!
//! Last, the retention limit's deletion (`Journal::forget_before`) of every
//! event up to the snapshot, in the runtime's chunks ([`FORGET_CHUNK`]): the
//! time of one chunk is how long appends can wait for the journal's lock
//! while old events go; then recovery again, from what is left.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pingji_dispatcher::convert::stored_event;
use pingji_dispatcher::journal::{Journal, SqliteJournal};
use pingji_dispatcher::runtime::{FORGET_CHUNK, SharedJournal, recover};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::Policy;
use pingji_engine::roster::{AgentProfile, Role, TravelMode};
use pingji_engine::spatial::Position;

const T0: Millis = Millis(1_800_000_000_000);
const PEOPLE: usize = 20_000;
/// Events between snapshots in the dispatcher's default (`--snapshot-every`):
/// a restart replays at most this many after the snapshot; half on average.
const SNAPSHOT_EVERY: u64 = 10_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn main() {
    let total: u64 = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(1_000_000);
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("replay.db");
    let mut journal = SqliteJournal::open(&path).expect("journal");

    let started = Instant::now();
    // The people report once and stay put: their locations must not go
    // stale over the days of virtual time the incidents span.
    let generating = Policy { location_stale_s: 10 * 365 * 24 * 3600, ..Policy::default() };
    let mut engine = Engine::new(generating);
    let mut pending: Vec<Event> = Vec::new();
    let flush = |events: &mut Vec<Event>, journal: &mut SqliteJournal| {
        let stored: Vec<_> = events.iter().map(stored_event).collect();
        journal.append(&stored).expect("append");
        events.clear();
    };
    let profiles: Vec<AgentProfile> = (0..PEOPLE)
        .map(|n| AgentProfile {
            id: AgentId::new(format!("p{n:06}")),
            name: format!("person {n}"),
            role: Role::Volunteer,
            skills: [["first_aid", "driving", "elder_care", "rescue"][n % 4].to_string()].into(),
            phone: "13900000000".to_string(),
            home_area: None,
            travel_mode: TravelMode::Bike,
            on_duty: true,
            home: None,
        })
        .collect();
    pending.extend(
        engine
            .execute(Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() }, "operator:bench", T0)
            .expect("roster"),
    );
    for n in 0..PEOPLE {
        let agent = AgentId::new(format!("p{n:06}"));
        engine.execute(Command::Connect { agent: agent.clone() }, "agent", T0).expect("connect");
        let at = Position { lon: 120.09 + (n % 200) as f64 * 6e-4, lat: 30.23 + (n / 200) as f64 * 8e-4 };
        engine.execute(Command::ReportLocation { agent, at }, "agent", T0).expect("locate");
    }
    let mut snapshot: Option<(u64, Vec<u8>)> = None;
    let snapshot_at = total.saturating_sub(SNAPSHOT_EVERY / 2);
    let mut now = T0;
    let mut incident_number = 0u64;
    while engine.state().last_seq < total {
        // Each incident in a quiet moment of its own: 3 s apart.
        now = Millis(now.0 + 3000);
        incident_number += 1;
        let spec = IncidentSpec {
            at: Position {
                lon: 120.09 + (incident_number % 997) as f64 * 1.2e-4,
                lat: 30.23 + (incident_number % 991) as f64 * 1.6e-4,
            },
            category: "flooding".to_string(),
            priority: 1 + (incident_number % 3) as u8,
            skills: Default::default(),
            headcount: 1,
            description: "water in the basement".to_string(),
            source_id: String::new(),
        };
        let create = Command::CreateIncident { id: None, spec, force: true };
        let created = engine.execute(create, "operator:bench", now).expect("create");
        let offer = created.iter().find_map(|event| match &event.kind {
            EventKind::OfferSent { offer } => Some(offer.clone()),
            _ => None,
        });
        pending.extend(created);
        if let Some(offer) = offer {
            let agent = offer.agent.clone();
            let incident = offer.incident.clone();
            let actor = format!("agent:{agent}");
            pending
                .extend(engine.execute(Command::Accept { agent: agent.clone(), offer: offer.id }, &actor, now).expect("accept"));
            let arrive = Command::Arrive { agent: agent.clone(), incident: incident.clone() };
            pending.extend(engine.execute(arrive, &actor, now).expect("arrive"));
            let complete = Command::Complete {
                agent,
                incident: incident.clone(),
                feedback: "pumped out".to_string(),
                photo_refs: Vec::new(),
            };
            pending.extend(engine.execute(complete, &actor, now).expect("complete"));
            // Completing the only assignment may close the incident; close it if still open.
            if engine.state().open_incidents.contains(&incident) {
                let close = Command::CloseIncident { incident, feedback: "done".to_string() };
                pending.extend(engine.execute(close, "operator:bench", now).expect("close"));
            }
        }
        if pending.len() >= 4096 {
            flush(&mut pending, &mut journal);
        }
        if snapshot.is_none() && engine.state().last_seq >= snapshot_at {
            flush(&mut pending, &mut journal);
            let bytes = serde_json::to_vec(engine.state()).expect("serialise");
            snapshot = Some((engine.state().last_seq, bytes));
        }
    }
    flush(&mut pending, &mut journal);
    let last_seq = engine.state().last_seq;
    let incidents = engine.state().incidents.len();
    let offers: u64 = engine.state().incidents.values().map(|incident| u64::from(incident.offers_made)).sum();
    assert!(offers as usize >= incidents * 9 / 10, "the journal is mostly offered, accepted, completed incidents");
    // The journal holds events as JSON, and serde_json (without its
    // float_roundtrip feature) may read an f64 back one ulp off; compare with
    // the final state after the same round trip, and say whether it differs.
    let final_state: pingji_engine::engine::State =
        serde_json::from_slice(&serde_json::to_vec(engine.state()).expect("serialise")).expect("parse");
    let exact_state = engine.state().clone();
    drop(engine);
    println!(
        "journal: {last_seq} events ({incidents} incidents, {PEOPLE} people) written in {:.1} s; file {:.0} MB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path).map_or(0.0, |meta| meta.len() as f64 / 1e6)
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let shared: SharedJournal = Arc::new(Mutex::new(Box::new(journal) as Box<dyn Journal>));
    let memory_before = resident_bytes();
    let started = Instant::now();
    let recovered = runtime.block_on(recover(&shared, Policy::default())).expect("recovers");
    let elapsed = started.elapsed();
    assert!(recovered.state() == &final_state, "replay rebuilds the same state (after the JSON round trip)");
    if recovered.state() != &exact_state {
        println!("note: the replayed state differs from the in-memory one before any JSON round trip (float digits)");
    }
    println!(
        "replay without a snapshot: {last_seq} events in {:.2} s = {:.0} events/s; state in memory about {:.0} MB",
        elapsed.as_secs_f64(),
        last_seq as f64 / elapsed.as_secs_f64(),
        resident_bytes().saturating_sub(memory_before) as f64 / 1e6
    );
    drop(recovered);

    let (snapshot_seq, bytes) = snapshot.expect("a snapshot was taken");
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).save_snapshot(snapshot_seq, &bytes).expect("save snapshot");
    let started = Instant::now();
    let recovered = runtime.block_on(recover(&shared, Policy::default())).expect("recovers");
    let elapsed = started.elapsed();
    assert!(recovered.state() == &final_state, "snapshot + replay rebuilds the same state");
    println!(
        "replay with a snapshot at event {snapshot_seq} ({:.0} MB of JSON) and {} events after it: {:.2} s",
        bytes.len() as f64 / 1e6,
        last_seq - snapshot_seq,
        elapsed.as_secs_f64()
    );
    drop(recovered);

    // Every event is older than the cut-off here: only the snapshot and the
    // chunk size stop the deletion, as on a first run with a retention
    // limit over a journal kept forever until then.
    let file_before = std::fs::metadata(&path).map_or(0.0, |meta| meta.len() as f64 / 1e6);
    let mut chunk_times = Vec::new();
    let mut removed_total = 0;
    let started = Instant::now();
    loop {
        let mut journal = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let chunk_started = Instant::now();
        let Some(first) = journal.first_seq().expect("first seq") else { break };
        let removed = journal.forget_before(snapshot_seq.min(first + FORGET_CHUNK - 1), i64::MAX).expect("forget");
        if removed == 0 {
            break;
        }
        chunk_times.push(chunk_started.elapsed());
        removed_total += removed;
    }
    let elapsed = started.elapsed();
    chunk_times.sort();
    let percentile = |p: f64| {
        chunk_times.get(((chunk_times.len().max(1) - 1) as f64 * p).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "retention: {removed_total} events deleted up to the snapshot in {} chunks of {FORGET_CHUNK} in {:.2} s; \
         per chunk (the journal's lock held) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         file {file_before:.0} MB before, {:.0} MB after (SQLite does not shrink it)",
        chunk_times.len(),
        elapsed.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        std::fs::metadata(&path).map_or(0.0, |meta| meta.len() as f64 / 1e6)
    );
    let started = Instant::now();
    let recovered = runtime.block_on(recover(&shared, Policy::default())).expect("recovers after the deletion");
    assert!(recovered.state() == &final_state, "snapshot + the events kept rebuild the same state");
    println!(
        "replay after the deletion ({} events kept after the snapshot): {:.2} s, same state",
        last_seq - snapshot_seq,
        started.elapsed().as_secs_f64()
    );
}
