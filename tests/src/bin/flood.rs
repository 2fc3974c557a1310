//! `flood`: does the dispatcher's memory stay bounded under a flood of
//! sessions and oversized messages (issue #7)? Starts a release `dispatcher`
//! with a low `limits.max_sessions`, samples its resident memory from
//! `/proc/PID/status`, opens many more sessions than allowed at once, sends
//! 1 MiB field reports (16 times the 64 KiB cap) from the sessions that got
//! in, closes everything, and does it all again. Figures are printed, never
//! asserted.
//!
//! ```sh
//! cargo build --release -p pingji-dispatcher --bin dispatcher
//! cargo run --release -p pingji-tests --bin flood -- --sessions 5000 --max-sessions 1000
//! ```
//!
//! Every session says `Hello` with an id from a roster this program imports
//! first, and the token the import issued for that person, if the
//! dispatcher issues tokens (it is given a bootstrap admin token and sends
//! it on every command; a dispatcher without accounts ignores both). Then a
//! second flood of as many sessions says `Hello` with a wrong token. Outcomes
//! are counted by what the dispatcher answered (`welcome`, a `Refused`
//! code, or the gRPC status that ended the stream), so the figures mean the
//! same whether or not tokens are checked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// How long one session waits for the dispatcher's first answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// Oversized reports in flight at once (each is 1 MiB in this process too).
const OVERSIZED_IN_FLIGHT: usize = 100;
const MIB: f64 = 1024.0 * 1024.0;
/// Made admin at start by a dispatcher with operator accounts; ignored by one without.
const ADMIN_TOKEN: &str = "pjo_flood_f100d0d5f100d0d5f100d0d5f100d0d5f100d0d5f100d0d5f100d0d5f100d0d5";
/// What the sessions of the second flood say instead of their token.
const WRONG_TOKEN: &str = "not-a-token";

/// `ImportAgentsResponse` as a dispatcher that issues tokens sends it
/// (`imported = 1`, `tokens = 2`); read with these types rather than the
/// generated ones so that this program also runs against a dispatcher
/// whose protocol has no tokens yet (`tokens` then stays empty).
#[derive(Clone, PartialEq, prost::Message)]
struct ImportedWithTokens {
    #[prost(uint32, tag = "1")]
    imported: u32,
    #[prost(message, repeated, tag = "2")]
    tokens: Vec<IssuedToken>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct IssuedToken {
    #[prost(string, tag = "1")]
    subject: String,
    #[prost(string, tag = "2")]
    token: String,
}

/// `CommandService.ImportAgents` as the admin; returns each person's token.
async fn import_agents(channel: Channel, agents: Vec<pb::AgentSpec>) -> Result<Vec<IssuedToken>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(pb::ImportAgentsRequest { agents });
    let bearer = MetadataValue::try_from(format!("Bearer {ADMIN_TOKEN}")).map_err(|_| tonic::Status::internal("bad token"))?;
    request.metadata_mut().insert("authorization", bearer);
    let codec: tonic_prost::ProstCodec<pb::ImportAgentsRequest, ImportedWithTokens> = tonic_prost::ProstCodec::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/pingji.v1.CommandService/ImportAgents");
    let response = grpc.unary(request, path, codec).await?;
    Ok(response.into_inner().tokens)
}

struct Args {
    sessions: usize,
    max_sessions: usize,
    connections: usize,
    oversized: usize,
    report_bytes: usize,
    rounds: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args =
        Args { sessions: 5000, max_sessions: 1000, connections: 50, oversized: 1000, report_bytes: 1024 * 1024, rounds: 2 };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sessions" => args.sessions = value()?.parse()?,
            "--max-sessions" => args.max_sessions = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--oversized" => args.oversized = value()?.parse()?,
            "--report-bytes" => args.report_bytes = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "flood [--sessions 5000] [--max-sessions 1000] [--connections 50] [--oversized 1000] \
                     [--report-bytes 1048576] [--rounds 2]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    anyhow::ensure!(
        args.sessions > 0 && args.max_sessions > 0 && args.connections > 0 && args.rounds > 0,
        "sessions, max-sessions, connections and rounds must be positive"
    );
    Ok(args)
}

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn memory_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Samples the dispatcher's VmRSS every 20 ms and keeps the highest since
/// the last `take_peak`.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let sampled = peak.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return,
                }
                if let Some(rss) = memory_bytes(pid, "VmRSS:") {
                    sampled.fetch_max(rss, Ordering::Relaxed);
                }
            }
        });
        Sampler { peak, stop, task }
    }

    /// The highest VmRSS sampled since the last call.
    fn take_peak(&self) -> u64 {
        self.peak.swap(0, Ordering::Relaxed)
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// VmRSS once it stops moving (two readings 500 ms apart within 1 MiB), or
/// after `within`.
async fn settled_rss(pid: u32, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = memory_bytes(pid, "VmRSS:").unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = memory_bytes(pid, "VmRSS:").unwrap_or(0);
        if now.abs_diff(last) < 1024 * 1024 || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// A session the dispatcher welcomed, kept open until dropped.
struct OpenSession {
    outbox: mpsc::Sender<pb::AgentMessage>,
    inbox: tonic::Streaming<pb::DispatchMessage>,
}

/// What the dispatcher answered: `welcome`, `refused <code>`, `status
/// <Code>`, `closed` (the stream ended with nothing) or `no answer`.
type Outcome = String;

async fn next_answer(inbox: &mut tonic::Streaming<pb::DispatchMessage>) -> Outcome {
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, inbox.message()).await {
            Err(_) => return "no answer".to_string(),
            Ok(Err(status)) => return format!("status {:?}", status.code()),
            Ok(Ok(None)) => return "closed".to_string(),
            Ok(Ok(Some(message))) => match message.body {
                Some(Incoming::Welcome(_)) => return "welcome".to_string(),
                Some(Incoming::Refused(refused)) => return format!("refused {}", refused.code),
                _ => continue,
            },
        }
    }
}

async fn open_session(channel: Channel, agent_id: String, token: String) -> (Outcome, Option<OpenSession>) {
    let mut client = AgentServiceClient::new(channel);
    let (outbox, requests) = mpsc::channel::<pb::AgentMessage>(4);
    let hello = pb::AgentMessage { body: Some(Outgoing::Hello(pb::Hello { agent_id, token })) };
    if outbox.send(hello).await.is_err() {
        return ("closed".to_string(), None);
    }
    let mut inbox = match client.session(ReceiverStream::new(requests)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (format!("status {:?}", status.code()), None),
    };
    let outcome = next_answer(&mut inbox).await;
    let session = (outcome == "welcome").then_some(OpenSession { outbox, inbox });
    (outcome, session)
}

/// Sends one oversized field report and waits for what the dispatcher does.
async fn send_oversized(mut session: OpenSession, text: Arc<String>) -> Outcome {
    let report = pb::FieldReport {
        location: Some(pb::Location::wgs84(120.0950, 30.2320)),
        category: "flooding".into(),
        text: String::clone(&text),
        photo_ref: String::new(),
        photo_refs: Vec::new(),
    };
    if session.outbox.send(pb::AgentMessage { body: Some(Outgoing::FieldReport(report)) }).await.is_err() {
        return "closed".to_string();
    }
    next_answer(&mut session.inbox).await
}

fn count(outcomes: impl IntoIterator<Item = Outcome>) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome).or_insert(0) += 1;
    }
    counts
}

fn show(counts: &BTreeMap<Outcome, usize>) -> String {
    counts.iter().map(|(outcome, n)| format!("{n} {outcome}")).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let binary = std::env::current_exe()?
        .parent()
        .map(|folder| {
            // `cargo bench`/`cargo run --release` put this binary in
            // target/release (or its deps folder); the dispatcher is there.
            let folder = if folder.ends_with("deps") { folder.parent().unwrap_or(folder) } else { folder };
            folder.join("dispatcher")
        })
        .context("no folder for this binary")?;
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing; run cargo build --release -p pingji-dispatcher --bin dispatcher first",
        binary.display()
    );
    let address = free_address()?;
    let config = dir.path().join("flood.toml");
    std::fs::write(&config, format!("listen = \"{address}\"\n[limits]\nmax_sessions = {}\n", args.max_sessions))?;
    let log_path = dir.path().join("dispatcher.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(&binary)
        .env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("flood.db"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the dispatcher")?;
    let pid = child.id().context("the dispatcher has no pid")?;

    let endpoint = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let command_channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(_) if child.try_wait()?.is_some() => {
                let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                anyhow::bail!("the dispatcher stopped at start:\n{output}");
            }
            Err(_) if started.elapsed() < Duration::from_secs(60) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => return Err(error).context("the dispatcher did not answer within 60 s"),
        }
    };
    let roster: Vec<pb::AgentSpec> = (0..args.sessions)
        .map(|n| pb::AgentSpec {
            id: format!("flood{n:06}"),
            name: format!("flood {n}"),
            role: pb::Role::Volunteer as i32,
            travel_mode: pb::TravelMode::Walk as i32,
            on_duty: true,
            ..pb::AgentSpec::default()
        })
        .collect();
    let mut tokens: HashMap<String, String> = HashMap::new();
    for chunk in roster.chunks(1000) {
        let mut attempts = 0;
        loop {
            match import_agents(command_channel.clone(), chunk.to_vec()).await {
                Ok(issued) => {
                    tokens.extend(issued.into_iter().map(|issued| (issued.subject, issued.token)));
                    break;
                }
                Err(status) if attempts < 100 && status.code() == tonic::Code::Unavailable => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => return Err(status).context("import the roster"),
            }
        }
    }
    let tokens = Arc::new(tokens);

    let baseline = settled_rss(pid, Duration::from_secs(10)).await;
    println!(
        "dispatcher pid {pid}, max_sessions {}; {} people on the roster ({} tokens issued); \
         baseline VmRSS {:.1} MiB (heap and stacks {:.1} MiB)",
        args.max_sessions,
        args.sessions,
        tokens.len(),
        mib(baseline),
        mib(memory_bytes(pid, "RssAnon:").unwrap_or(0))
    );
    let sampler = Sampler::start(pid);
    let text = Arc::new("x".repeat(args.report_bytes));
    for round in 1..=args.rounds {
        let before = memory_bytes(pid, "VmRSS:").unwrap_or(0);
        sampler.take_peak();

        // All sessions at once, spread over the connections.
        let mut channels = Vec::new();
        for _ in 0..args.connections {
            channels.push(endpoint.connect().await.context("connect")?);
        }
        let opening = Instant::now();
        let mut attempts = tokio::task::JoinSet::new();
        for n in 0..args.sessions {
            let agent_id = format!("flood{n:06}");
            let token = tokens.get(&agent_id).cloned().unwrap_or_default();
            attempts.spawn(open_session(channels[n % channels.len()].clone(), agent_id, token));
        }
        let results = attempts.join_all().await;
        let opened_in = opening.elapsed();
        let (outcomes, sessions): (Vec<Outcome>, Vec<Option<OpenSession>>) = results.into_iter().unzip();
        let mut open: Vec<OpenSession> = sessions.into_iter().flatten().collect();
        let accepted = open.len();
        let refused = args.sessions - accepted;
        let with_sessions = settled_rss(pid, Duration::from_secs(5)).await;
        let flood_peak = sampler.take_peak().max(with_sessions);
        println!(
            "round {round}: {} sessions asked for in {:.1} s over {} connections: {}",
            args.sessions,
            opened_in.as_secs_f64(),
            args.connections,
            show(&count(outcomes))
        );
        let per_session = if accepted > 0 {
            format!("{:.1} KiB per open session", with_sessions.saturating_sub(before) as f64 / 1024.0 / accepted as f64)
        } else {
            format!(
                "no session open; {:.1} KiB per refused attempt",
                flood_peak.saturating_sub(before) as f64 / 1024.0 / refused.max(1) as f64
            )
        };
        println!(
            "  VmRSS before {:.1} MiB, peak during the flood {:.1} MiB, with {accepted} open {:.1} MiB ({per_session})",
            mib(before),
            mib(flood_peak),
            mib(with_sessions)
        );

        // Oversized reports from the sessions that got in.
        let senders = args.oversized.min(open.len());
        let limit = Arc::new(Semaphore::new(OVERSIZED_IN_FLIGHT));
        let sending = Instant::now();
        let mut reports = tokio::task::JoinSet::new();
        for session in open.drain(..senders) {
            let limit = limit.clone();
            let text = text.clone();
            reports.spawn(async move {
                let _permit = limit.acquire_owned().await;
                send_oversized(session, text).await
            });
        }
        let report_outcomes = reports.join_all().await;
        let report_peak = sampler.take_peak();
        println!(
            "  {senders} field reports of {:.1} MiB each ({:.0} MiB in all) in {:.1} s: {}; peak VmRSS {:.1} MiB",
            args.report_bytes as f64 / MIB,
            (senders * args.report_bytes) as f64 / MIB,
            sending.elapsed().as_secs_f64(),
            show(&count(report_outcomes)),
            mib(report_peak)
        );

        // As many sessions again, each with a wrong token, while the rest of
        // the first flood's sessions are still open.
        let mut attempts = tokio::task::JoinSet::new();
        for n in 0..args.sessions {
            let agent_id = format!("flood{n:06}");
            attempts.spawn(open_session(channels[n % channels.len()].clone(), agent_id, WRONG_TOKEN.to_string()));
        }
        let (wrong_outcomes, wrong_sessions): (Vec<Outcome>, Vec<Option<OpenSession>>) =
            attempts.join_all().await.into_iter().unzip();
        let wrong_peak = sampler.take_peak();
        println!(
            "  {} more sessions with a wrong token: {}; peak VmRSS {:.1} MiB",
            args.sessions,
            show(&count(wrong_outcomes)),
            mib(wrong_peak)
        );

        // Everything closes: streams, then connections.
        drop(wrong_sessions);
        drop(open);
        drop(channels);
        let after = settled_rss(pid, Duration::from_secs(15)).await;
        println!(
            "  after closing everything: VmRSS {:.1} MiB (heap and stacks {:.1} MiB), {:+.1} MiB from the baseline, \
             {:+.1} MiB from the start of the round",
            mib(after),
            mib(memory_bytes(pid, "RssAnon:").unwrap_or(0)),
            mib(after) - mib(baseline),
            mib(after) - mib(before)
        );
    }
    sampler.stop().await;
    let high_water = memory_bytes(pid, "VmHWM:").unwrap_or(0);
    println!("dispatcher VmHWM (highest resident set over its life) {:.1} MiB", mib(high_water));
    let still_running = child.try_wait()?.is_none();
    println!("dispatcher still running after the flood: {still_running}");
    let _ = child.kill().await;
    Ok(())
}
