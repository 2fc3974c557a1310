//! `loadgen`: many field-agent sessions against a real `dispatcher` process
//! over gRPC, reporting locations at a fixed rate, while an operator creates
//! incidents; prints location updates per second end to end, the
//! dispatcher's CPU per update, and the time from `CreateIncident` to the
//! offer arriving on the chosen person's stream (issue #9). Figures are
//! printed, never asserted.
//!
//! ```sh
//! cargo build --release -p pingji-dispatcher --bin dispatcher
//! cargo run --release -p pingji-tests --bin loadgen -- --sessions 5000 --rate-hz 1
//! ```
//!
//! It starts `target/release/dispatcher` (next to this binary) on a free
//! port with a SQLite journal in a temporary folder and the sample city, or
//! uses `--server URL`. Every simulated person is a real
//! `AgentService.Session` stream (raw tonic client) sharing `--connections`
//! HTTP/2 connections; they accept each offer and complete it at once, so
//! they stay available. The load generator runs on the same machine and its
//! own CPU is printed too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::load::{cpu_seconds, free_address, point};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// Tries to open one person's session before giving up on them.
const SESSION_ATTEMPTS: u32 = 10;

struct Args {
    sessions: usize,
    rate_hz: f64,
    seconds: u64,
    connections: usize,
    incidents_per_s: f64,
    server: Option<String>,
    grade: Option<i32>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args =
        Args { sessions: 5000, rate_hz: 1.0, seconds: 30, connections: 50, incidents_per_s: 20.0, server: None, grade: None };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sessions" => args.sessions = value()?.parse()?,
            "--rate-hz" => args.rate_hz = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--incidents-per-s" => args.incidents_per_s = value()?.parse()?,
            "--server" => args.server = Some(value()?),
            "--grade" => {
                args.grade = Some(match value()?.as_str() {
                    "IV" => pb::Mode::EmergencyIv as i32,
                    "III" => pb::Mode::EmergencyIii as i32,
                    "II" => pb::Mode::EmergencyIi as i32,
                    "I" => pb::Mode::EmergencyI as i32,
                    other => anyhow::bail!("--grade {other}: give IV, III, II or I"),
                })
            }
            "--help" | "-h" => {
                println!(
                    "loadgen [--sessions 5000] [--rate-hz 1] [--seconds 30] [--connections 50] [--incidents-per-s 20] [--grade II] [--server URL]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    anyhow::ensure!(
        args.sessions > 0 && args.connections > 0 && args.rate_hz > 0.0,
        "sessions, connections and rate must be positive"
    );
    Ok(args)
}

struct Shared {
    sent: AtomicU64,
    welcomed: AtomicUsize,
    refused: AtomicU64,
    /// First offer arrival per incident id.
    offers: Mutex<HashMap<String, Instant>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let (url, mut child) = match &args.server {
        Some(url) => (url.clone(), None),
        None => {
            let binary = std::env::current_exe()?.with_file_name("dispatcher");
            anyhow::ensure!(
                binary.is_file(),
                "{} is missing; run cargo build --release -p pingji-dispatcher --bin dispatcher first",
                binary.display()
            );
            let address = free_address()?;
            let areas = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/maps/sample-city.geojson");
            let log = std::fs::File::create(dir.path().join("dispatcher.log"))?;
            let child = tokio::process::Command::new(&binary)
                .arg("--listen")
                .arg(address.to_string())
                .arg("--data")
                .arg(dir.path().join("loadgen.db"))
                .arg("--areas")
                .arg(areas)
                .env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", pingji_tests::ADMIN_TOKEN)
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .context("cannot start the dispatcher")?;
            (format!("http://{address}"), Some(child))
        }
    };
    let pid = child.as_ref().and_then(|child| child.id()).map(|pid| pid.to_string());
    let endpoint = Endpoint::from_shared(url.clone())?.connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let command_channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(error) if started.elapsed() < Duration::from_secs(60) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).context("the dispatcher did not answer within 60 s"),
        }
    };
    // A dispatcher of its own has the tests' admin; another one (--server)
    // needs its admin's token in PINGJI_TOKEN.
    let admin = match &args.server {
        None => pingji_tests::ADMIN_TOKEN.to_string(),
        Some(_) => std::env::var("PINGJI_TOKEN").context("with --server, set PINGJI_TOKEN to an admin's token")?,
    };
    let mut commands = pingji_tests::commands_with(command_channel.clone(), Some(&admin));
    // Health may lag the listener; retry the first call.
    let roster: Vec<pb::AgentSpec> = (0..args.sessions)
        .map(|n| pb::AgentSpec {
            id: format!("load{n:06}"),
            name: format!("load {n}"),
            role: pb::Role::Volunteer as i32,
            skills: Vec::new(),
            phone: String::new(),
            home_area_id: String::new(),
            travel_mode: pb::TravelMode::Bike as i32,
            on_duty: true,
            home: None,
        })
        .collect();
    let mut tokens: HashMap<String, String> = HashMap::new();
    for chunk in roster.chunks(1000) {
        let request = pb::ImportAgentsRequest { agents: chunk.to_vec() };
        let mut attempts = 0;
        loop {
            match commands.import_agents(request.clone()).await {
                Ok(imported) => {
                    tokens.extend(imported.into_inner().tokens.into_iter().map(|issued| (issued.subject, issued.token)));
                    break;
                }
                Err(status) if attempts < 100 && status.code() == tonic::Code::Unavailable => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Known from an earlier run: new tokens for them.
                Err(status) if status.code() == tonic::Code::AlreadyExists => {
                    for spec in chunk {
                        tokens.insert(spec.id.clone(), pingji_tests::agent_token(&mut commands, &spec.id).await?);
                    }
                    break;
                }
                Err(status) => return Err(status).context("import agents"),
            }
        }
    }
    if let Some(grade) = args.grade {
        let request = pb::SetModeRequest { area_id: "city".into(), mode: grade, reason: "loadgen".into() };
        commands.set_mode(request).await.context("set mode")?;
    }

    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(endpoint.connect().await.context("connect")?);
    }
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        welcomed: AtomicUsize::new(0),
        refused: AtomicU64::new(0),
        offers: Mutex::new(HashMap::new()),
    });
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let period = Duration::from_secs_f64(1.0 / args.rate_hz);
    let opening = Instant::now();
    let mut sessions = Vec::new();
    for n in 0..args.sessions {
        let channel = channels[n % channels.len()].clone();
        let shared = shared.clone();
        let stop = stop.clone();
        let token = tokens.remove(&format!("load{n:06}")).unwrap_or_default();
        sessions.push(tokio::spawn(session(n, token, channel, shared, stop, period)));
    }
    // Two minutes, and more for many sessions on a busy machine (50,000 for `mapbench`).
    let open_within = Duration::from_secs((args.sessions as u64 / 200).max(120));
    while shared.welcomed.load(Ordering::Relaxed) < args.sessions {
        anyhow::ensure!(opening.elapsed() < open_within, "sessions did not all open within {open_within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{} sessions open over {} connections in {:.1} s; each reports every {:.0} ms",
        args.sessions,
        args.connections,
        opening.elapsed().as_secs_f64(),
        period.as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The measured window: locations in the background, incidents created.
    let sent_before = shared.sent.load(Ordering::Relaxed);
    let server_cpu_before = pid.as_deref().map_or(f64::NAN, cpu_seconds);
    let own_cpu_before = cpu_seconds("self");
    let window_started = Instant::now();
    let mut created: Vec<(String, Instant)> = Vec::new();
    let mut create_failures = 0u64;
    let incident_period = Duration::from_secs_f64(1.0 / args.incidents_per_s.max(0.001));
    let mut next = Instant::now();
    let mut n = 0u64;
    while window_started.elapsed() < Duration::from_secs(args.seconds) {
        if args.incidents_per_s > 0.0 {
            n += 1;
            let request = pb::CreateIncidentRequest {
                id: String::new(),
                location: Some(point(n as usize * 31 % args.sessions, n)),
                category: "loadgen".into(),
                priority: 2,
                required_skills: Vec::new(),
                headcount: 1,
                description: String::new(),
                force: false,
            };
            let sent_at = Instant::now();
            match commands.create_incident(request).await {
                Ok(response) => created.push((response.into_inner().id, sent_at)),
                Err(_) => create_failures += 1,
            }
            next += incident_period;
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let window = window_started.elapsed().as_secs_f64();
    let sent = shared.sent.load(Ordering::Relaxed) - sent_before;
    let server_cpu = pid.as_deref().map_or(f64::NAN, cpu_seconds) - server_cpu_before;
    let own_cpu = cpu_seconds("self") - own_cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_sender.send(true);

    println!(
        "location updates end to end: {sent} in {window:.1} s = {:.0} updates/s (offered {:.0}/s); refused {}",
        sent as f64 / window,
        args.sessions as f64 * args.rate_hz,
        shared.refused.load(Ordering::Relaxed)
    );
    println!(
        "dispatcher cpu: {server_cpu:.2} s = {:.0}% of one core, {:.1} µs per update (incl. {} incidents); loadgen cpu {own_cpu:.2} s = {:.0}% of one core",
        100.0 * server_cpu / window,
        server_cpu * 1e6 / sent.max(1) as f64,
        created.len(),
        100.0 * own_cpu / window
    );
    let offers = shared.offers.lock().await;
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(id, sent_at)| offers.get(id).map(|arrived| arrived.saturating_duration_since(*sent_at)))
        .collect();
    latencies.sort();
    let percentile = |p: f64| {
        latencies.get(((latencies.len().max(1) - 1) as f64 * p).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "incident to offer on the person's stream: {} incidents, {} offered, {create_failures} create errors: p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms",
        created.len(),
        latencies.len(),
        percentile(0.5),
        percentile(0.99),
        percentile(0.999),
        percentile(1.0)
    );
    drop(offers);
    for handle in sessions {
        handle.abort();
    }
    if let Some(child) = child.as_mut() {
        let _ = child.kill().await;
    }
    Ok(())
}

/// One person: hello, then a location every `period`; accepts each offer and
/// completes it at once.
async fn session(
    n: usize,
    token: String,
    channel: Channel,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    period: Duration,
) {
    let mut client = AgentServiceClient::new(channel);
    let agent_id = format!("load{n:06}");
    // Opening many sessions at once on a busy machine, some calls fail
    // (the connection's stream limit, a dispatcher still catching up):
    // try again a few times, waiting longer each time, rather than leave
    // the person out and the run waiting for them.
    let mut attempt = 0u32;
    let (outbox, mut inbox) = loop {
        attempt += 1;
        let (outbox, requests) = mpsc::channel::<pb::AgentMessage>(16);
        let hello =
            pb::AgentMessage { body: Some(Outgoing::Hello(pb::Hello { agent_id: agent_id.clone(), token: token.clone() })) };
        let first = pb::AgentMessage { body: Some(Outgoing::Location(point(n, 0))) };
        if outbox.send(hello).await.is_err() || outbox.send(first).await.is_err() {
            return;
        }
        let opened = match client.session(ReceiverStream::new(requests)).await {
            Ok(response) => {
                let mut inbox = response.into_inner();
                match inbox.message().await {
                    Ok(Some(pb::DispatchMessage { body: Some(Incoming::Welcome(_)), .. })) => Some(inbox),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        if let Some(inbox) = opened {
            shared.welcomed.fetch_add(1, Ordering::Relaxed);
            break (outbox, inbox);
        }
        if attempt >= SESSION_ATTEMPTS {
            eprintln!("loadgen: session {agent_id} did not open after {attempt} attempts");
            return;
        }
        tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
    };
    let reader_outbox = outbox.clone();
    let reader_shared = shared.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(message)) = inbox.message().await {
            match message.body {
                Some(Incoming::Offer(offer)) => {
                    reader_shared.offers.lock().await.entry(offer.incident_id.clone()).or_insert_with(Instant::now);
                    let accept = pb::AgentMessage { body: Some(Outgoing::Accept(pb::Accept { offer_id: offer.offer_id })) };
                    let _ = reader_outbox.send(accept).await;
                }
                Some(Incoming::AssignmentConfirmed(confirmed)) => {
                    let incident_id = confirmed.offer.map(|offer| offer.incident_id).unwrap_or_default();
                    let done = pb::Completed { incident_id, feedback: "done".into(), photo_refs: Vec::new() };
                    let _ = reader_outbox.send(pb::AgentMessage { body: Some(Outgoing::Completed(done)) }).await;
                }
                Some(Incoming::Refused(_)) => {
                    reader_shared.refused.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    // Spread the sessions' reports over the period.
    let offset = period.mul_f64((n as f64 * 0.618_033_988_7).fract());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut step = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        step += 1;
        let location = pb::AgentMessage { body: Some(Outgoing::Location(point(n, step))) };
        if outbox.send(location).await.is_err() {
            break;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
    reader.abort();
}
