//! `cityrun`: the city, run on one machine (issue #23, docs/scale.md). One
//! command generates a city of districts and its people, starts its own
//! `redis-server` (AOF, `appendfsync always`) and several `dispatcher`
//! processes sharing the district shards, opens people's sessions at the
//! owner of each person's district, switches the whole city to grade I,
//! reports incidents (a share of them near district borders), kills one
//! dispatcher with SIGKILL half way through, and prints what happened:
//! offer latency, help across borders and the ETA it saved, takeover
//! time, memory and CPU per process, Redis memory and commands per
//! second, sessions reconnected and bytes on the wire. The figures go to
//! `figures.json` and two pictures in the results folder.
//!
//! ```sh
//! cargo build --release -p pingji-dispatcher --bin dispatcher -p pingji-tests --bin cityrun
//! target/release/cityrun --quick                       # 20k people, 4 districts, a minute
//! target/release/cityrun --out out/city                # 1,000,000 people, 20 districts, 10 minutes
//! ```
//!
//! Figures are printed, never asserted; the suite's `cityrun::` module
//! checks that the quick run completes with its incidents staffed and the
//! killed process's shards taken over.
//!
//! Placement: every process may own every shard (its list starts with its
//! own group) and at most `ceil(districts / (processes - 1))` of them, so
//! that the survivors of a kill have room for the dead one's shards. The
//! dispatcher has no placement of its own (the first process to poll takes
//! a free shard), so the run holds every shard's lease while the processes
//! start, then lets go of one shard of each group at a time, the next once
//! those are served: each process takes the first free shard of its list
//! at each poll, so of its own group first (the run prints where each
//! shard went), and loads one at a time. A process that steps down while
//! loading (its lease lost) is started again, as a supervisor would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use pingji_dispatcher::lease::{Acquisition, LeaseConfig, ShardLease};
use pingji_dispatcher::shard::{RedisShard, ShardId};
use pingji_engine::areas::{AreaLevel, AreaMap, AreaSpec};
use pingji_engine::spatial::Position;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_scenarios::border::{random_point_near, shared_border};
use pingji_scenarios::citymap;
use pingji_scenarios::population::{self, Resident};
use pingji_tests::load::{ByteCounts, CountingConnector, cpu_seconds, free_address, percentile, rss_kib, sorted};
use pingji_tests::redis::{Persistence, RedisServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Sessions sharing one HTTP/2 connection.
const SESSIONS_PER_CONNECTION: usize = 100;
/// How often the run reads the shards' leases (who owns what).
const OWNERS_EVERY: Duration = Duration::from_millis(100);
/// How often memory, CPU and Redis are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How long an incident's create is retried (a takeover in between).
const CREATE_WITHIN: Duration = Duration::from_secs(60);
/// How long after the last incident the run waits for offers and staffing.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);
/// Settling ends early when nothing more was staffed for this long.
const SETTLE_QUIET: Duration = Duration::from_secs(15);
/// The owner id the run holds leases with while it places shards.
const PLACEMENT_OWNER: &str = "cityrun-placement";

struct Args {
    people: usize,
    districts: usize,
    sessions: usize,
    incidents: usize,
    minutes: f64,
    processes: usize,
    seed: u64,
    border_share: f64,
    border_within_m: f64,
    report_every_s: f64,
    kill_at: f64,
    out: PathBuf,
    dispatcher: Option<PathBuf>,
}

const HELP: &str = "cityrun [--quick] [--people 1000000] [--districts 20] [--sessions 20000] [--incidents 2000] \
[--minutes 10] [--processes 4] [--seed 23] [--border-share 0.3] [--border-within-m 300] [--report-every-s 10] \
[--kill-at 0.5] [--out out/cityrun] [--dispatcher PATH]
  --quick: 20,000 people, 4 districts, 200 sessions, 60 incidents in 1 minute, 2 processes (flags after it still apply)";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        people: 1_000_000,
        districts: 20,
        sessions: 20_000,
        incidents: 2_000,
        minutes: 10.0,
        processes: 4,
        seed: 23,
        border_share: 0.3,
        border_within_m: 300.0,
        report_every_s: 10.0,
        kill_at: 0.5,
        out: PathBuf::from("out/cityrun"),
        dispatcher: None,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().with_context(|| format!("{flag} needs a value; see --help"));
        match flag.as_str() {
            "--quick" => {
                (args.people, args.districts, args.sessions, args.incidents, args.minutes, args.processes) =
                    (20_000, 4, 200, 60, 1.0, 2);
            }
            "--people" => args.people = value()?.parse()?,
            "--districts" => args.districts = value()?.parse()?,
            "--sessions" => args.sessions = value()?.parse()?,
            "--incidents" => args.incidents = value()?.parse()?,
            "--minutes" => args.minutes = value()?.parse()?,
            "--processes" => args.processes = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--border-share" => args.border_share = value()?.parse()?,
            "--border-within-m" => args.border_within_m = value()?.parse()?,
            "--report-every-s" => args.report_every_s = value()?.parse()?,
            "--kill-at" => args.kill_at = value()?.parse()?,
            "--out" => args.out = PathBuf::from(value()?),
            "--dispatcher" => args.dispatcher = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    anyhow::ensure!(args.processes >= 2, "--processes must be at least 2: one is killed and another takes its shards over");
    anyhow::ensure!(
        args.districts >= args.processes,
        "--districts must be at least --processes, so that every process owns a shard"
    );
    anyhow::ensure!(args.sessions >= 1 && args.sessions <= args.people, "--sessions must be between 1 and --people");
    anyhow::ensure!(args.incidents >= 1 && args.minutes > 0.0, "--incidents and --minutes must be positive");
    anyhow::ensure!((0.0..=1.0).contains(&args.border_share), "--border-share is a share, between 0 and 1");
    anyhow::ensure!(args.kill_at > 0.0 && args.kill_at < 1.0, "--kill-at is a share of the incident window, between 0 and 1");
    anyhow::ensure!(args.report_every_s > 0.0, "--report-every-s must be positive");
    Ok(args)
}

/// Prints a line of progress with the seconds since the start.
struct Progress(Instant);

impl Progress {
    fn say(&self, line: impl AsRef<str>) {
        println!("[{:7.1} s] {}", self.0.elapsed().as_secs_f64(), line.as_ref());
    }
}

/// One dispatcher process of the run.
struct Process {
    index: usize,
    child: Option<tokio::process::Child>,
    pid: u32,
    address: String,
    log: PathBuf,
    binary: PathBuf,
    args: Vec<std::ffi::OsString>,
    /// Times the run started it again after it exited by itself.
    restarts: usize,
}

impl Process {
    /// As a supervisor (systemd `Restart=always`) would: a process that
    /// stepped down is started again, and comes up as a standby.
    fn restart_if_exited(&mut self, progress: &Progress) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else { return Ok(()) };
        let Some(status) = child.try_wait()? else { return Ok(()) };
        let child = pingji_tests::process::spawn_dispatcher(&self.binary, &self.args, &self.log)?;
        let old = self.pid;
        self.pid = child.id().context("the dispatcher exited at once")?;
        self.child = Some(child);
        self.restarts += 1;
        progress.say(format!("P{} (pid {old}) exited ({status}); started again as pid {}", self.index + 1, self.pid));
        Ok(())
    }
}

/// A shard's owner: its pid and the address it serves the shard at.
type Owner = (u32, String);

/// Who owns each shard, read from the leases in Redis.
#[derive(Clone, Default)]
struct Owners {
    /// shard -> owner, `None` while nobody (or the run) holds it.
    by_shard: Arc<Mutex<BTreeMap<String, Option<Owner>>>>,
}

impl Owners {
    fn get(&self, shard: &str) -> Option<Owner> {
        self.by_shard.lock().expect("owners").get(shard).cloned().flatten()
    }

    fn snapshot(&self) -> BTreeMap<String, Option<Owner>> {
        self.by_shard.lock().expect("owners").clone()
    }
}

/// The pid in a dispatcher's owner id (`dispatcher-PID-MS`).
fn pid_of_owner(owner_id: &str) -> Option<u32> {
    owner_id.strip_prefix("dispatcher-")?.split('-').next()?.parse().ok()
}

/// Reads every shard's lease each [`OWNERS_EVERY`] until stopped.
fn watch_owners(leases: Vec<Arc<ShardLease>>, owners: Owners, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for lease in &leases {
                let holder = match lease.holder() {
                    Ok(holder) => holder,
                    Err(_) => continue,
                };
                let owner = holder.and_then(|holder| Some((pid_of_owner(&holder.owner_id)?, holder.address)));
                owners.by_shard.lock().expect("owners").insert(lease.shard().id().to_string(), owner);
            }
            std::thread::sleep(OWNERS_EVERY);
        }
    })
}

/// An event seen on a shard's `WatchEvents`.
#[derive(Clone, Debug)]
struct Seen {
    shard: String,
    kind: String,
    incident: String,
    agent: String,
    offer: String,
    eta_s: f64,
    from_area: String,
    at_ms: i64,
    received: Instant,
}

/// What the sessions saw and did.
#[derive(Default)]
struct SessionFigures {
    welcomed: AtomicUsize,
    /// Sessions whose stream broke at least once while the run went on.
    broken: AtomicUsize,
    /// Of those, welcomed again (at the new owner).
    reconnected: AtomicUsize,
    reconnect_ms: Mutex<Vec<u64>>,
    locations_sent: AtomicU64,
    offers: AtomicU64,
    /// First offer on a person's stream per incident.
    first_offer: Mutex<HashMap<String, Instant>>,
}

/// One incident the run reported.
#[derive(Clone, Debug)]
struct Reported {
    id: String,
    district: String,
    near_border: bool,
    acknowledged: Instant,
    attempts: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let progress = Progress(Instant::now());
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    progress.say(format!("load average before: {load_before}"));
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot make {}", args.out.display()))?;
    let binary = match &args.dispatcher {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("dispatcher"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing; build it first (cargo build --release -p pingji-dispatcher --bin dispatcher) or give --dispatcher",
        binary.display()
    );

    // The city and its people.
    let map = citymap::city(args.seed, args.districts).map_err(anyhow::Error::msg)?;
    let areas_path = args.out.join("city.geojson");
    std::fs::write(&areas_path, citymap::to_geojson(&map))?;
    let areas = AreaMap::from(map.clone());
    let districts: Vec<AreaSpec> = map.areas.iter().filter(|spec| spec.level == AreaLevel::District).cloned().collect();
    let started = Instant::now();
    let people = population::residents(args.seed, &areas, args.people);
    let roster_path = args.out.join("roster.csv");
    std::fs::write(&roster_path, population::to_csv(&people))?;
    let mut per_district: BTreeMap<String, usize> = BTreeMap::new();
    for person in &people {
        *per_district.entry(person.district.clone()).or_default() += 1;
    }
    progress.say(format!(
        "{} districts, {} people generated in {:.1} s ({} in d1, the centre; {:.0} MB of roster)",
        districts.len(),
        people.len(),
        started.elapsed().as_secs_f64(),
        per_district.get("d1").copied().unwrap_or(0),
        std::fs::metadata(&roster_path)?.len() as f64 / 1e6
    ));

    // Redis, holding every shard's lease until the processes are placed.
    let redis_dir = args.out.join("redis");
    let _ = std::fs::remove_dir_all(&redis_dir);
    std::fs::create_dir_all(&redis_dir)?;
    let redis = tokio::task::block_in_place(|| RedisServer::start_with(&redis_dir, Persistence::AppendFsyncAlways))?;
    let redis_url = redis.url();
    progress.say(format!("redis-server on {redis_url} (appendfsync always), pid {}", redis.pid().unwrap_or(0)));
    let shard_ids: Vec<String> = districts.iter().map(|spec| spec.id.to_string()).collect();
    let placement_config = LeaseConfig::new(Duration::from_secs(1800), Duration::from_secs(1)).map_err(anyhow::Error::msg)?;
    let mut held = BTreeMap::new();
    for shard in &shard_ids {
        let lease = ShardLease::new(
            RedisShard::new(&redis_url, ShardId::new(shard).map_err(anyhow::Error::msg)?)?,
            PLACEMENT_OWNER,
            "127.0.0.1:9",
            placement_config,
        );
        let Acquisition::Acquired { token } = lease.try_acquire()? else {
            anyhow::bail!("the lease of {shard} is taken already")
        };
        held.insert(shard.clone(), (lease, token));
    }

    // The processes: groups of districts dealt out in turn, so that the
    // dense centre districts (d1, d2, ...) are spread over the processes.
    let groups: Vec<Vec<String>> = (0..args.processes)
        .map(|index| {
            shard_ids.iter().enumerate().filter(|(n, _)| n % args.processes == index).map(|(_, id)| id.clone()).collect()
        })
        .collect();
    let max_shards = shard_ids.len().div_ceil(args.processes - 1);
    let mut processes = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        let mut order: Vec<String> = group.clone();
        for later in 1..args.processes {
            order.extend(groups[(index + later) % args.processes].iter().cloned());
        }
        processes.push(start_process(&binary, index, &order, max_shards, &redis_url, &areas_path, &roster_path, &args.out)?);
    }
    for process in &processes {
        wait_listening(process).await?;
    }
    progress.say(format!(
        "{} dispatcher processes stand by (pids {}), each for every shard, at most {max_shards} owned",
        processes.len(),
        processes.iter().map(|process| process.pid.to_string()).collect::<Vec<_>>().join(", ")
    ));

    let leases: Vec<Arc<ShardLease>> = shard_ids
        .iter()
        .map(|shard| -> anyhow::Result<Arc<ShardLease>> {
            Ok(Arc::new(ShardLease::new(
                RedisShard::new(&redis_url, ShardId::new(shard).map_err(anyhow::Error::msg)?)?,
                "cityrun-reader",
                "",
                LeaseConfig::default(),
            )))
        })
        .collect::<anyhow::Result<_>>()?;
    let owners = Owners::default();
    let stop_owners = Arc::new(AtomicBool::new(false));
    let owners_thread = watch_owners(leases, owners.clone(), stop_owners.clone());

    // Placement, a round at a time: one shard of each group let go, and
    // the next round once those are served, so that a process loads one
    // shard at a time (each load reads the whole roster). A process that
    // steps down meanwhile is started again.
    let placing = Instant::now();
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        let released: Vec<String> = groups.iter().filter_map(|group| group.get(round).cloned()).collect();
        for shard in &released {
            let (lease, token) = &held[shard];
            lease.release(*token)?;
        }
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut waiting = released.clone();
        while !waiting.is_empty() {
            anyhow::ensure!(Instant::now() < deadline, "shards {} were not served within 900 s", waiting.join(","));
            for process in processes.iter_mut() {
                process.restart_if_exited(&progress)?;
            }
            let mut still = Vec::new();
            for shard in waiting {
                let served = match owners.get(&shard) {
                    Some((_, address)) => serving(&address).await,
                    None => false,
                };
                if !served {
                    still.push(shard);
                }
            }
            waiting = still;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        progress.say(format!("placed round {}/{rounds}: {}", round + 1, describe_owners(&owners, &processes, &released)));
    }
    // Settled: every shard served and every process running.
    for process in processes.iter_mut() {
        process.restart_if_exited(&progress)?;
    }
    let placement_s = placing.elapsed().as_secs_f64();
    let placement = owners.snapshot();
    let misplaced = groups
        .iter()
        .enumerate()
        .flat_map(|(index, group)| group.iter().map(move |shard| (index, shard)))
        .filter(|(index, shard)| placement.get(*shard).cloned().flatten().map(|(pid, _)| pid) != Some(processes[*index].pid))
        .count();
    progress
        .say(format!("every shard owned and serving after {placement_s:.1} s; {misplaced} shards not on their group's process"));

    // Sessions: people drawn from the roster (so as dense as it), at their
    // district's owner.
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5e55);
    let chosen: Vec<usize> = rand::seq::index::sample(&mut rng, people.len(), args.sessions).into_vec();
    let session_people: Vec<Resident> = chosen.iter().map(|index| people[*index].clone()).collect();
    let tokens = issue_tokens(&owners, &session_people).await?;
    progress.say(format!("{} tokens issued at the owners of their districts", tokens.len()));

    let counts = ByteCounts::default();
    let pools = Pools { counts: counts.clone(), channels: Arc::new(Mutex::new(HashMap::new())) };
    let figures = Arc::new(SessionFigures::default());
    let (stop_sessions, sessions_stop) = watch::channel(false);
    let running = Arc::new(AtomicBool::new(true));
    let period = Duration::from_secs_f64(args.report_every_s);
    let mut session_tasks = Vec::new();
    for (n, person) in session_people.iter().enumerate() {
        let token = tokens.get(&person.id).cloned().unwrap_or_default();
        session_tasks.push(tokio::spawn(session(
            n,
            person.clone(),
            token,
            owners.clone(),
            pools.clone(),
            figures.clone(),
            sessions_stop.clone(),
            running.clone(),
            period,
        )));
    }
    let opening = Instant::now();
    while figures.welcomed.load(Ordering::Relaxed) < args.sessions {
        anyhow::ensure!(
            opening.elapsed() < Duration::from_secs(300),
            "only {} of {} sessions opened within 300 s",
            figures.welcomed.load(Ordering::Relaxed),
            args.sessions
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.say(format!(
        "{} sessions open in {:.1} s over {} connections; each reports its location every {:.0} s",
        args.sessions,
        opening.elapsed().as_secs_f64(),
        pools.connections(),
        args.report_every_s
    ));

    // Events of every shard, followed through the takeover.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let (stop_watches, watches_stop) = watch::channel(false);
    let mut watches = Vec::new();
    for shard in &shard_ids {
        watches.push(tokio::spawn(watch_shard(shard.clone(), owners.clone(), seen.clone(), watches_stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Samples of memory, CPU and Redis from here on.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let pids: Vec<u32> = processes.iter().map(|process| process.pid).collect();
    let run_start = Instant::now();
    let (stop_sampler, sampler_stop) = watch::channel(false);
    let sampler = tokio::spawn(sample_loop(
        pids.clone(),
        redis.pid().unwrap_or(0),
        redis_url.clone(),
        samples.clone(),
        run_start,
        sampler_stop,
    ));

    // The city-wide grade I switch, asked at one shard.
    let switch_at = Instant::now();
    let (_, first_owner) = owners.get(&shard_ids[0]).context("d1 has no owner")?;
    let mut command = commands(&first_owner).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "city".into(), mode: pb::Mode::EmergencyI as i32, reason: "cityrun".into() })
        .await
        .context("switch the city to grade I")?;
    let switch_reach = wait_switch_everywhere(&seen, &shard_ids, switch_at, Duration::from_secs(60)).await;
    match switch_reach {
        Some(reach) => progress.say(format!("city-wide grade I: every shard switched within {:.2} s", reach.as_secs_f64())),
        None => progress.say("city-wide grade I: not every shard showed the switch within 60 s"),
    }

    // Incidents over the window, a share near borders; a kill half way.
    let borders = district_borders(&districts);
    progress.say(format!("{} district borders; incidents start", borders.len()));
    let window = Duration::from_secs_f64(args.minutes * 60.0);
    let window_start = Instant::now();
    let kill_after = window.mul_f64(args.kill_at);
    let reported: Arc<Mutex<Vec<Reported>>> = Arc::new(Mutex::new(Vec::new()));
    let create_failures = Arc::new(AtomicUsize::new(0));
    let mut creates = Vec::new();
    let mut incident_rng = StdRng::seed_from_u64(args.seed ^ 0x1c1d);
    let mut killed: Option<Kill> = None;
    let mut takeover_watch = None;
    let (sent_before, received_before) = counts.total();
    let sessions_cpu_before = cpu_seconds("self");
    for n in 0..args.incidents {
        let due = window.mul_f64(n as f64 / args.incidents as f64);
        if killed.is_none() && due >= kill_after {
            tokio::time::sleep_until(tokio::time::Instant::from_std(window_start + kill_after)).await;
            let kill = kill_one(&mut processes, &owners, &shard_ids, &progress)?;
            takeover_watch = Some(tokio::spawn(wait_takeover(kill.clone(), owners.clone(), Duration::from_secs(120))));
            killed = Some(kill);
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(window_start + due)).await;
        supervise(&mut processes, killed.as_ref(), &progress)?;
        let near_border = incident_rng.random::<f64>() < args.border_share && !borders.is_empty();
        let (at, district) = incident_point(&mut incident_rng, &areas, &borders, near_border, args.border_within_m);
        let id = format!("city-{:05}", n + 1);
        creates.push(tokio::spawn(create_incident(
            id,
            at,
            district,
            near_border,
            owners.clone(),
            reported.clone(),
            create_failures.clone(),
        )));
        if (n + 1) % (args.incidents / 10).max(1) == 0 {
            let staffed = seen.lock().expect("seen").iter().filter(|event| event.kind == "assigned").count();
            progress.say(format!("{} incidents reported, {staffed} assignments so far", n + 1));
        }
    }
    let killed = match killed {
        Some(killed) => killed,
        None => kill_one(&mut processes, &owners, &shard_ids, &progress)?,
    };
    let takeover_watch =
        takeover_watch.unwrap_or_else(|| tokio::spawn(wait_takeover(killed.clone(), owners.clone(), Duration::from_secs(120))));
    for create in creates {
        let _ = create.await;
    }
    let window_s = window_start.elapsed().as_secs_f64();
    let (sent_after, received_after) = counts.total();
    let sessions_cpu = cpu_seconds("self") - sessions_cpu_before;
    let takeovers = takeover_watch.await?;
    for (shard, taken) in &takeovers {
        progress.say(format!(
            "takeover of {shard}: lease held by pid {} after {:.2} s, serving after {:.2} s",
            taken.new_pid, taken.lease_s, taken.serving_s
        ));
    }

    // Settle: wait for the last incidents to be offered and staffed.
    // (Or until nothing more was staffed for a while: some incidents have
    // nobody in reach.)
    let settle = Instant::now();
    let (mut last_count, mut last_change) = (0, Instant::now());
    loop {
        let staffed = staffed_incidents(&seen).len();
        let all = reported.lock().expect("reported").len();
        if staffed != last_count {
            (last_count, last_change) = (staffed, Instant::now());
        }
        if staffed >= all || settle.elapsed() > SETTLE_WITHIN || last_change.elapsed() > SETTLE_QUIET {
            break;
        }
        supervise(&mut processes, Some(&killed), &progress)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The best own-district candidate of each border incident staffed from
    // across, asked while the sessions are still live.
    let own_best = own_district_best(&owners, &seen, &people_home(&session_people), &reported).await;
    progress.say(format!("asked ExplainIncident for {} border incidents staffed from across", own_best.len()));
    running.store(false, Ordering::Relaxed);
    let _ = stop_sessions.send(true);
    let _ = stop_watches.send(true);
    let _ = stop_sampler.send(true);
    let _ = sampler.await;
    for task in session_tasks {
        task.abort();
    }
    for task in watches {
        task.abort();
    }
    stop_owners.store(true, Ordering::Relaxed);
    let _ = owners_thread.join();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    progress.say(format!("load average after: {load_after}"));

    let run = Run {
        args: &args,
        people: &people,
        per_district: &per_district,
        districts: &districts,
        processes: &processes,
        placement: &placement,
        placement_s,
        misplaced,
        max_shards,
        switch_reach,
        killed: &killed,
        takeovers: &takeovers,
        reported: &reported.lock().expect("reported").clone(),
        create_failures: create_failures.load(Ordering::Relaxed),
        seen: &seen.lock().expect("seen").clone(),
        own_best: &own_best,
        sessions: &figures,
        samples: &samples.lock().expect("samples").clone(),
        window_start,
        run_start,
        window_s,
        session_bytes: (sent_after - sent_before, received_after - received_before),
        sessions_cpu,
        load: (load_before, load_after),
    };
    let report = run.report();
    std::fs::write(args.out.join("figures.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(args.out.join("offer-latency.svg"), run.latency_svg())?;
    std::fs::write(args.out.join("events.jsonl"), run.events_jsonl())?;
    std::fs::write(args.out.join("processes.svg"), run.processes_svg())?;
    print_report(&report);
    progress.say(format!("figures in {}", args.out.join("figures.json").display()));

    for process in &mut processes {
        if let Some(child) = process.child.as_mut() {
            let _ = child.kill().await;
        }
    }
    drop(redis);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn start_process(
    binary: &Path,
    index: usize,
    shards: &[String],
    max_shards: usize,
    redis_url: &str,
    areas: &Path,
    roster: &Path,
    out: &Path,
) -> anyhow::Result<Process> {
    let address = free_address()?.to_string();
    let log = out.join(format!("dispatcher-{}.log", index + 1));
    let _ = std::fs::remove_file(&log);
    let args: Vec<std::ffi::OsString> = vec![
        "--listen".into(),
        address.clone().into(),
        "--advertise".into(),
        address.clone().into(),
        "--store".into(),
        redis_url.into(),
        "--areas".into(),
        areas.into(),
        "--agents".into(),
        roster.into(),
        "--shard".into(),
        shards.join(",").into(),
        "--max-shards".into(),
        max_shards.to_string().into(),
        "--drain-timeout-s".into(),
        "1".into(),
    ];
    let child = pingji_tests::process::spawn_dispatcher(binary, &args, &log)?;
    let pid = child.id().context("the dispatcher exited at once")?;
    Ok(Process { index, child: Some(child), pid, address, log, binary: binary.to_path_buf(), args, restarts: 0 })
}

async fn wait_listening(process: &Process) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&process.address).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "dispatcher {} did not listen on {} within 60 s; see {}",
            process.index + 1,
            process.address,
            process.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether the process at `address` serves the command service (owns its shard).
async fn serving(address: &str) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{address}")) else { return false };
    let Ok(channel) = endpoint.connect_timeout(Duration::from_secs(1)).timeout(Duration::from_secs(2)).connect().await else {
        return false;
    };
    let request = tonic_health::pb::HealthCheckRequest { service: "pingji.v1.CommandService".into() };
    matches!(
        HealthClient::new(channel).check(request).await.map(|response| response.into_inner().status),
        Ok(status) if status == ServingStatus::Serving as i32
    )
}

fn describe_owners(owners: &Owners, processes: &[Process], shards: &[String]) -> String {
    shards
        .iter()
        .map(|shard| {
            let process = owners
                .get(shard)
                .and_then(|(pid, _)| processes.iter().find(|process| process.pid == pid))
                .map_or("?".to_string(), |process| format!("P{}", process.index + 1));
            format!("{shard}→{process}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn commands(address: &str) -> anyhow::Result<pingji_tests::Commands> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(Duration::from_secs(5)).connect().await?;
    Ok(pingji_tests::commands(channel))
}

/// A token for each session's person, issued by their district's owner.
async fn issue_tokens(owners: &Owners, people: &[Resident]) -> anyhow::Result<HashMap<String, String>> {
    let mut by_district: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for person in people {
        by_district.entry(person.district.as_str()).or_default().push(person.id.clone());
    }
    let mut tokens = HashMap::new();
    for (district, ids) in by_district {
        let (_, address) = owners.get(district).with_context(|| format!("{district} has no owner"))?;
        let mut command = commands(&address).await?;
        for chunk in ids.chunks(1000) {
            let request = pb::IssueAgentTokensRequest { agent_ids: chunk.to_vec(), replace: true, ..Default::default() };
            let issued = command.issue_agent_tokens(request).await.with_context(|| format!("issue tokens at {district}"))?;
            tokens.extend(issued.into_inner().tokens.into_iter().map(|token| (token.subject, token.token)));
        }
    }
    Ok(tokens)
}

/// HTTP/2 connections to each owner, shared by the sessions there, each
/// counting its bytes.
#[derive(Clone)]
struct Pools {
    counts: ByteCounts,
    channels: Arc<Mutex<HashMap<String, Vec<Channel>>>>,
}

impl Pools {
    /// The connection for session `n` at `address`: one per
    /// [`SESSIONS_PER_CONNECTION`] sessions there, opened lazily.
    fn channel(&self, address: &str, n: usize) -> anyhow::Result<Channel> {
        let mut channels = self.channels.lock().expect("pools");
        let pool = channels.entry(address.to_string()).or_default();
        let slot = (n / SESSIONS_PER_CONNECTION) % 64;
        while pool.len() <= slot {
            let endpoint = Endpoint::from_shared(format!("http://{address}"))?
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(Duration::from_secs(20));
            pool.push(endpoint.connect_with_connector_lazy(CountingConnector { counts: self.counts.clone() }));
        }
        Ok(pool[slot].clone())
    }

    fn connections(&self) -> usize {
        self.channels.lock().expect("pools").values().map(Vec::len).sum()
    }
}

/// A point about 50 m around home, moving a little at each step.
fn walk(home: Position, n: usize, step: u64) -> pb::Location {
    let mut rng = StdRng::seed_from_u64((n as u64) << 20 ^ step);
    let (dx, dy) = (rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5);
    pb::Location::wgs84(home.lon + dx * 1e-3, home.lat + dy * 1e-3)
}

/// One person's session at their district's owner: hello, then a location
/// every `period`; accepts each offer and completes the assignment at once
/// (so they stay available). When the stream breaks while the run goes on,
/// the session opens again at whoever owns the district then.
#[allow(clippy::too_many_arguments)]
async fn session(
    n: usize,
    person: Resident,
    token: String,
    owners: Owners,
    pools: Pools,
    figures: Arc<SessionFigures>,
    mut stop: watch::Receiver<bool>,
    running: Arc<AtomicBool>,
    period: Duration,
) {
    let mut broken_at: Option<Instant> = None;
    let mut step = 0u64;
    let mut attempt = 0u32;
    while !*stop.borrow() {
        let opened = match owners.get(&person.district) {
            Some((_, address)) => open_session(n, &person, &token, &address, &pools, step).await,
            None => None,
        };
        let Some((outbox, mut inbox)) = opened else {
            attempt += 1;
            let wait = Duration::from_millis(200 * u64::from(attempt.min(10)));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        attempt = 0;
        match broken_at.take() {
            None => {
                figures.welcomed.fetch_add(1, Ordering::Relaxed);
            }
            Some(broken) => {
                figures.reconnected.fetch_add(1, Ordering::Relaxed);
                figures.reconnect_ms.lock().expect("reconnects").push(broken.elapsed().as_millis() as u64);
            }
        }
        let offset = period.mul_f64((n as f64 * 0.618_033_988_7).fract());
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => {
                    step += 1;
                    let location = pb::AgentMessage { body: Some(Outgoing::Location(walk(person.home, n, step))) };
                    if outbox.send(location).await.is_err() {
                        break;
                    }
                    figures.locations_sent.fetch_add(1, Ordering::Relaxed);
                }
                message = inbox.message() => {
                    let Ok(Some(message)) = message else { break };
                    let reply = match message.body {
                        Some(Incoming::Offer(offer)) => {
                            figures.offers.fetch_add(1, Ordering::Relaxed);
                            figures.first_offer.lock().expect("offers").entry(offer.incident_id.clone()).or_insert_with(Instant::now);
                            Some(Outgoing::Accept(pb::Accept { offer_id: offer.offer_id }))
                        }
                        Some(Incoming::AssignmentConfirmed(confirmed)) => {
                            let incident_id = confirmed.offer.map(|offer| offer.incident_id).unwrap_or_default();
                            Some(Outgoing::Completed(pb::Completed { incident_id, feedback: "done".into(), photo_refs: Vec::new() }))
                        }
                        _ => None,
                    };
                    if let Some(body) = reply
                        && outbox.send(pb::AgentMessage { body: Some(body) }).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
        if !running.load(Ordering::Relaxed) {
            return;
        }
        figures.broken.fetch_add(1, Ordering::Relaxed);
        broken_at = Some(Instant::now());
    }
}

type Inbox = tonic::Streaming<pb::DispatchMessage>;

/// Opens a session at `address` and waits for its welcome.
async fn open_session(
    n: usize,
    person: &Resident,
    token: &str,
    address: &str,
    pools: &Pools,
    step: u64,
) -> Option<(mpsc::Sender<pb::AgentMessage>, Inbox)> {
    let channel = pools.channel(address, n).ok()?;
    let mut client = AgentServiceClient::new(channel);
    let (outbox, requests) = mpsc::channel::<pb::AgentMessage>(16);
    let hello =
        pb::AgentMessage { body: Some(Outgoing::Hello(pb::Hello { agent_id: person.id.clone(), token: token.to_string() })) };
    let first = pb::AgentMessage { body: Some(Outgoing::Location(walk(person.home, n, step))) };
    outbox.send(hello).await.ok()?;
    outbox.send(first).await.ok()?;
    let response =
        tokio::time::timeout(Duration::from_secs(20), client.session(ReceiverStream::new(requests))).await.ok()?.ok()?;
    let mut inbox = response.into_inner();
    match tokio::time::timeout(Duration::from_secs(20), inbox.message()).await {
        Ok(Ok(Some(pb::DispatchMessage { body: Some(Incoming::Welcome(_)), .. }))) => Some((outbox, inbox)),
        _ => None,
    }
}

/// Follows one shard's events at whoever owns it, resuming after the last
/// one seen when the owner changes.
async fn watch_shard(shard: String, owners: Owners, seen: Arc<Mutex<Vec<Seen>>>, mut stop: watch::Receiver<bool>) {
    let mut last_seq: Option<u64> = None;
    while !*stop.borrow() {
        let Some((_, address)) = owners.get(&shard) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut command) = commands(&address).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let request = match last_seq {
            Some(seq) => pb::WatchEventsRequest { from_seq: seq + 1, replay_last: 0 },
            None => pb::WatchEventsRequest { from_seq: 0, replay_last: 1 },
        };
        let Ok(response) = command.watch_events(request).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = response.into_inner();
        loop {
            let event = tokio::select! {
                _ = stop.changed() => return,
                event = stream.message() => event,
            };
            let Ok(Some(event)) = event else { break };
            last_seq = Some(event.seq);
            if let Some(noted) = note(&shard, event) {
                seen.lock().expect("seen").push(noted);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events the figures need.
fn note(shard: &str, event: pb::Event) -> Option<Seen> {
    let (eta_s, from_area) = match &event.body {
        Some(pb::event::Body::OfferSent(sent)) => (sent.eta_s, sent.from_area_id.clone()),
        _ => (f64::NAN, String::new()),
    };
    let wanted = ["mode_switched", "incident_reported", "offer_sent", "assigned", "assignment_completed", "no_candidates"];
    wanted.contains(&event.kind.as_str()).then(|| Seen {
        shard: shard.to_string(),
        kind: event.kind,
        incident: event.incident_id,
        agent: event.agent_id,
        offer: event.offer_id,
        eta_s,
        from_area,
        at_ms: event.at_ms,
        received: Instant::now(),
    })
}

/// How long after `since` the last shard showed the city's switch.
async fn wait_switch_everywhere(
    seen: &Arc<Mutex<Vec<Seen>>>,
    shards: &[String],
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let deadline = Instant::now() + within;
    loop {
        let switched: BTreeMap<String, Instant> = seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|event| event.kind == "mode_switched" && event.received >= since)
            .map(|event| (event.shard.clone(), event.received))
            .collect();
        if shards.iter().all(|shard| switched.contains_key(shard)) {
            return switched.values().max().map(|last| last.saturating_duration_since(since));
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two districts that touch and the stretches of border they share.
type Border = (AreaSpec, AreaSpec, Vec<(Position, Position)>);

/// The shared border of every pair of districts that touch.
fn district_borders(districts: &[AreaSpec]) -> Vec<Border> {
    let boxes: Vec<Option<(f64, f64, f64, f64)>> = districts.iter().map(pingji_scenarios::roster::bounds).collect();
    let mut borders = Vec::new();
    for (i, a) in districts.iter().enumerate() {
        for (j, b) in districts.iter().enumerate().skip(i + 1) {
            let (Some(box_a), Some(box_b)) = (boxes[i], boxes[j]) else { continue };
            let apart = box_a.2 < box_b.0 || box_b.2 < box_a.0 || box_a.3 < box_b.1 || box_b.3 < box_a.1;
            if apart {
                continue;
            }
            let border = shared_border(a, b);
            if !border.is_empty() {
                borders.push((a.clone(), b.clone(), border));
            }
        }
    }
    borders
}

/// Where the next incident is: within `within_m` of a border (a border
/// drawn by its length), or anywhere at the people's density.
fn incident_point(rng: &mut StdRng, areas: &AreaMap, borders: &[Border], near_border: bool, within_m: f64) -> (Position, String) {
    loop {
        let found = if near_border {
            let lengths: Vec<f64> =
                borders.iter().map(|(_, _, border)| border.iter().map(|(start, end)| start.distance_m(*end)).sum()).collect();
            let mut pick = rng.random::<f64>() * lengths.iter().sum::<f64>();
            let mut index = 0;
            while index + 1 < lengths.len() && pick >= lengths[index] {
                pick -= lengths[index];
                index += 1;
            }
            let (a, b, border) = &borders[index];
            random_point_near(rng, areas, border, [a, b], within_m)
                .and_then(|at| Some((at, areas.place(at).at(AreaLevel::District)?.to_string())))
        } else {
            population::dense_point(rng, areas)
        };
        if let Some(found) = found {
            return found;
        }
    }
}

/// Reports one incident at its district's owner, trying again (at the new
/// owner after a takeover) until acknowledged; the id is the run's, so a
/// create whose answer was lost is found as already existing, not made twice.
async fn create_incident(
    id: String,
    at: Position,
    district: String,
    near_border: bool,
    owners: Owners,
    reported: Arc<Mutex<Vec<Reported>>>,
    failures: Arc<AtomicUsize>,
) {
    let deadline = Instant::now() + CREATE_WITHIN;
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        if let Some((_, address)) = owners.get(&district)
            && let Ok(mut command) = commands(&address).await
        {
            let request = pb::CreateIncidentRequest {
                id: id.clone(),
                location: Some(pb::Location::wgs84(at.lon, at.lat)),
                category: "welfare_check".into(),
                priority: 2,
                headcount: 1,
                ..Default::default()
            };
            let answer = command.create_incident(request).await;
            if answer.is_ok() || answer.as_ref().is_err_and(|status| status.code() == tonic::Code::AlreadyExists) {
                let acknowledged = Instant::now();
                reported.lock().expect("reported").push(Reported { id, district, near_border, acknowledged, attempts });
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    failures.fetch_add(1, Ordering::Relaxed);
}

/// Starts again every process that exited by itself (stepped down), but
/// the one the run killed.
fn supervise(processes: &mut [Process], killed: Option<&Kill>, progress: &Progress) -> anyhow::Result<()> {
    for process in processes.iter_mut().filter(|process| killed.is_none_or(|killed| killed.process != process.index)) {
        process.restart_if_exited(progress)?;
    }
    Ok(())
}

/// The process killed, when, and the shards it owned.
#[derive(Clone)]
struct Kill {
    process: usize,
    pid: u32,
    at: Instant,
    shards: Vec<String>,
}

/// Kills (SIGKILL) the process that owns d1, the busiest district.
fn kill_one(processes: &mut [Process], owners: &Owners, shards: &[String], progress: &Progress) -> anyhow::Result<Kill> {
    let (pid, _) = owners.get(&shards[0]).context("d1 has no owner to kill")?;
    let process = processes.iter_mut().find(|process| process.pid == pid).context("d1's owner is not one of the run's")?;
    let owned: Vec<String> = owners
        .snapshot()
        .into_iter()
        .filter(|(_, owner)| owner.as_ref().is_some_and(|(owner_pid, _)| *owner_pid == pid))
        .map(|(shard, _)| shard)
        .collect();
    if let Some(child) = process.child.as_mut() {
        child.start_kill().context("kill -9")?;
    }
    let at = Instant::now();
    progress.say(format!("kill -9 of dispatcher P{} (pid {pid}), owner of {}", process.index + 1, owned.join(",")));
    Ok(Kill { process: process.index, pid, at, shards: owned })
}

/// When a killed shard was taken over.
#[derive(Clone, Debug)]
struct Takeover {
    new_pid: u32,
    lease_s: f64,
    serving_s: f64,
}

/// Watches the killed process's shards until each is held by another
/// process and served there.
async fn wait_takeover(killed: Kill, owners: Owners, within: Duration) -> BTreeMap<String, Takeover> {
    let mut taken: BTreeMap<String, Takeover> = BTreeMap::new();
    let mut leased: HashMap<String, f64> = HashMap::new();
    let deadline = killed.at + within;
    while taken.len() < killed.shards.len() && Instant::now() < deadline {
        for shard in &killed.shards {
            if taken.contains_key(shard) {
                continue;
            }
            let Some((pid, address)) = owners.get(shard).filter(|(pid, _)| *pid != killed.pid) else { continue };
            let lease_s = *leased.entry(shard.clone()).or_insert_with(|| killed.at.elapsed().as_secs_f64());
            if serving(&address).await {
                taken.insert(shard.clone(), Takeover { new_pid: pid, lease_s, serving_s: killed.at.elapsed().as_secs_f64() });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    taken
}

/// Each session person's home district.
fn people_home(people: &[Resident]) -> HashMap<String, String> {
    people.iter().map(|person| (person.id.clone(), person.district.clone())).collect()
}

/// For each border incident staffed by someone from another district: the
/// ETA of the best candidate of the incident's own district now
/// (`ExplainIncident` at its shard, which knows only its own people), or
/// `None` when nobody there fits.
async fn own_district_best(
    owners: &Owners,
    seen: &Arc<Mutex<Vec<Seen>>>,
    home: &HashMap<String, String>,
    reported: &Arc<Mutex<Vec<Reported>>>,
) -> HashMap<String, Option<f64>> {
    let assigned: HashMap<String, String> = seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|event| event.kind == "assigned")
        .map(|event| (event.incident.clone(), event.agent.clone()))
        .collect();
    let across: Vec<Reported> = reported
        .lock()
        .expect("reported")
        .iter()
        .filter(|incident| incident.near_border)
        .filter(|incident| assigned.get(&incident.id).is_some_and(|agent| home.get(agent) != Some(&incident.district)))
        .cloned()
        .collect();
    let mut best = HashMap::new();
    for incident in across {
        let Some((_, address)) = owners.get(&incident.district) else { continue };
        let Ok(mut command) = commands(&address).await else { continue };
        let request = pb::ExplainIncidentRequest { incident_id: incident.id.clone(), candidates: 1, ..Default::default() };
        if let Ok(answer) = command.explain_incident(request).await {
            best.insert(incident.id, answer.into_inner().candidates.first().map(|candidate| candidate.eta_s));
        }
    }
    best
}

/// Incidents with an `assigned` event.
fn staffed_incidents(seen: &Arc<Mutex<Vec<Seen>>>) -> HashSet<String> {
    seen.lock().expect("seen").iter().filter(|event| event.kind == "assigned").map(|event| event.incident.clone()).collect()
}

/// Memory, CPU and Redis at one moment.
#[derive(Clone, Debug, Default)]
struct Sample {
    t_s: f64,
    /// Per process: (rss KiB, cpu seconds so far); zero when gone.
    processes: Vec<(u64, f64)>,
    redis_rss_kib: u64,
    redis_cpu_s: f64,
    redis_used_memory: u64,
    redis_commands: u64,
    redis_net_in: u64,
    redis_net_out: u64,
}

async fn sample_loop(
    pids: Vec<u32>,
    redis_pid: u32,
    redis_url: String,
    samples: Arc<Mutex<Vec<Sample>>>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let client = redis::Client::open(redis_url).ok();
    let mut connection = match &client {
        Some(client) => client.get_multiplexed_async_connection().await.ok(),
        None => None,
    };
    loop {
        let info: String = match connection.as_mut() {
            Some(connection) => redis::cmd("INFO").query_async(connection).await.unwrap_or_default(),
            None => String::new(),
        };
        let field = |name: &str| -> u64 {
            info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok()).unwrap_or(0)
        };
        let sample = Sample {
            t_s: start.elapsed().as_secs_f64(),
            processes: pids
                .iter()
                .map(|pid| {
                    let rss = rss_kib(*pid);
                    (rss, if rss == 0 { 0.0 } else { cpu_seconds(&pid.to_string()) })
                })
                .collect(),
            redis_rss_kib: rss_kib(redis_pid),
            redis_cpu_s: cpu_seconds(&redis_pid.to_string()),
            redis_used_memory: field("used_memory"),
            redis_commands: field("total_commands_processed"),
            redis_net_in: field("total_net_input_bytes"),
            redis_net_out: field("total_net_output_bytes"),
        };
        samples.lock().expect("samples").push(sample);
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Everything the figures are computed from.
struct Run<'a> {
    args: &'a Args,
    people: &'a [Resident],
    per_district: &'a BTreeMap<String, usize>,
    districts: &'a [AreaSpec],
    processes: &'a [Process],
    placement: &'a BTreeMap<String, Option<Owner>>,
    placement_s: f64,
    misplaced: usize,
    max_shards: usize,
    switch_reach: Option<Duration>,
    killed: &'a Kill,
    takeovers: &'a BTreeMap<String, Takeover>,
    reported: &'a [Reported],
    create_failures: usize,
    seen: &'a [Seen],
    /// Border incidents staffed from across: the best own-district ETA
    /// `ExplainIncident` gave (s), `None` when nobody of the district fit.
    own_best: &'a HashMap<String, Option<f64>>,
    sessions: &'a SessionFigures,
    samples: &'a [Sample],
    window_start: Instant,
    run_start: Instant,
    window_s: f64,
    session_bytes: (u64, u64),
    sessions_cpu: f64,
    load: (String, String),
}

impl Run<'_> {
    /// Per incident: (seconds since the window started, ms to the first
    /// `offer_sent` event, ms to the first offer on a person's stream).
    fn latencies(&self) -> Vec<(f64, Option<f64>, Option<f64>)> {
        let mut first_event: HashMap<&str, Instant> = HashMap::new();
        for event in self.seen.iter().filter(|event| event.kind == "offer_sent") {
            first_event.entry(event.incident.as_str()).and_modify(|at| *at = (*at).min(event.received)).or_insert(event.received);
        }
        let on_stream = self.sessions.first_offer.lock().expect("offers");
        self.reported
            .iter()
            .map(|incident| {
                let since = |at: Instant| at.saturating_duration_since(incident.acknowledged).as_secs_f64() * 1e3;
                (
                    incident.acknowledged.saturating_duration_since(self.window_start).as_secs_f64(),
                    first_event.get(incident.id.as_str()).map(|at| since(*at)),
                    on_stream.get(&incident.id).map(|at| since(*at)),
                )
            })
            .collect()
    }

    /// Border incidents: (count, staffed, staffed from across the border,
    /// ETA saved in seconds for each of those with an own-district
    /// candidate (negative: the own one was nearer), those without one,
    /// those staffed before any own-district offer was made).
    fn across_borders(&self) -> (usize, usize, usize, Vec<f64>, usize, usize) {
        let home: HashMap<&str, &str> = self.people.iter().map(|person| (person.id.as_str(), person.district.as_str())).collect();
        let home_of = |agent: &str| home.get(agent).copied().unwrap_or_default();
        let mut offers: HashMap<&str, &Seen> = HashMap::new();
        let mut by_incident: HashMap<&str, Vec<&Seen>> = HashMap::new();
        for event in self.seen.iter().filter(|event| event.kind == "offer_sent") {
            offers.insert(event.offer.as_str(), event);
            by_incident.entry(event.incident.as_str()).or_default().push(event);
        }
        let assigned: HashMap<&str, &Seen> =
            self.seen.iter().filter(|event| event.kind == "assigned").map(|event| (event.incident.as_str(), event)).collect();
        let (mut count, mut staffed, mut across, mut saved, mut without_own, mut before_own) = (0, 0, 0, Vec::new(), 0, 0);
        for incident in self.reported.iter().filter(|incident| incident.near_border) {
            count += 1;
            let Some(assignment) = assigned.get(incident.id.as_str()) else { continue };
            staffed += 1;
            if home_of(&assignment.agent) == incident.district {
                continue;
            }
            across += 1;
            let own_offered = by_incident
                .get(incident.id.as_str())
                .into_iter()
                .flatten()
                .any(|other| home_of(&other.agent) == incident.district);
            if !own_offered {
                before_own += 1;
            }
            let eta = offers.get(assignment.offer.as_str()).map(|offer| offer.eta_s);
            match (self.own_best.get(&incident.id).copied().flatten(), eta) {
                (Some(own), Some(eta)) => saved.push(own - eta),
                _ => without_own += 1,
            }
        }
        (count, staffed, across, saved, without_own, before_own)
    }

    /// The events the figures came from, one JSON object a line (ids and
    /// ETAs only: no locations), for a second look.
    fn events_jsonl(&self) -> String {
        let mut lines = String::new();
        for event in self.seen {
            let line = json!({
                "shard": event.shard,
                "kind": event.kind,
                "incident": event.incident,
                "agent": event.agent,
                "offer": event.offer,
                "eta_s": if event.eta_s.is_nan() { None } else { Some(event.eta_s) },
                "from_area": event.from_area,
                "at_ms": event.at_ms,
            });
            let _ = writeln!(lines, "{line}");
        }
        lines
    }

    /// People holding two assignments at once, from the assigned and
    /// completed events of every shard.
    fn double_assignments(&self) -> usize {
        let mut spans: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
        let completed: HashMap<(&str, &str), i64> = self
            .seen
            .iter()
            .filter(|event| event.kind == "assignment_completed")
            .map(|event| ((event.agent.as_str(), event.incident.as_str()), event.at_ms))
            .collect();
        for event in self.seen.iter().filter(|event| event.kind == "assigned") {
            let end = completed.get(&(event.agent.as_str(), event.incident.as_str())).copied().unwrap_or(i64::MAX);
            spans.entry(event.agent.as_str()).or_default().push((event.at_ms, end));
        }
        let mut twice = 0;
        for spans in spans.values_mut() {
            spans.sort();
            if spans.windows(2).any(|pair| pair[1].0 < pair[0].1) {
                twice += 1;
            }
        }
        twice
    }

    fn report(&self) -> serde_json::Value {
        let latencies = self.latencies();
        let to_event = sorted(latencies.iter().filter_map(|(_, event, _)| *event).collect());
        let to_stream = sorted(latencies.iter().filter_map(|(_, _, stream)| *stream).collect());
        let kill_s = self.killed.at.saturating_duration_since(self.window_start).as_secs_f64();
        let before_kill = sorted(latencies.iter().filter(|(t, ..)| *t < kill_s).filter_map(|(_, event, _)| *event).collect());
        let after_kill = sorted(latencies.iter().filter(|(t, ..)| *t >= kill_s).filter_map(|(_, event, _)| *event).collect());
        let killed_shards: HashSet<&str> = self.killed.shards.iter().map(String::as_str).collect();
        let on_killed_after = sorted(
            self.reported
                .iter()
                .zip(&latencies)
                .filter(|(incident, (t, ..))| *t >= kill_s && killed_shards.contains(incident.district.as_str()))
                .filter_map(|(_, (_, event, _))| *event)
                .collect(),
        );
        let staffed: HashSet<&str> =
            self.seen.iter().filter(|event| event.kind == "assigned").map(|event| event.incident.as_str()).collect();
        let (border_count, border_staffed, across, saved, without_own, before_own) = self.across_borders();
        let nearer_own = saved.iter().filter(|saved| **saved < 0.0).count();
        let mut offers_from: BTreeMap<&str, usize> = BTreeMap::new();
        for event in self.seen.iter().filter(|event| event.kind == "offer_sent") {
            *offers_from.entry(if event.from_area.is_empty() { "(none)" } else { event.from_area.as_str() }).or_default() += 1;
        }
        let saved = sorted(saved);
        let window = self
            .samples
            .iter()
            .filter(|sample| sample.t_s >= self.window_start.saturating_duration_since(self.run_start).as_secs_f64());
        let window: Vec<&Sample> = window.collect();
        let (first, last) =
            (window.first().copied().cloned().unwrap_or_default(), window.last().copied().cloned().unwrap_or_default());
        let span = (last.t_s - first.t_s).max(1e-9);
        let processes: Vec<serde_json::Value> = self
            .processes
            .iter()
            .enumerate()
            .map(|(index, process)| {
                let of = |sample: &Sample| sample.processes.get(index).copied().unwrap_or((0, 0.0));
                let max_rss = self.samples.iter().map(|sample| of(sample).0).max().unwrap_or(0);
                let cpu_total = self.samples.iter().map(|sample| of(sample).1).fold(0.0, f64::max);
                // The killed process: its CPU until its last sample.
                let cpu_window = window.iter().map(|sample| of(sample).1).fold(0.0, f64::max) - of(&first).1;
                let owned: Vec<&String> = self
                    .placement
                    .iter()
                    .filter(|(_, owner)| owner.as_ref().is_some_and(|(pid, _)| *pid == process.pid))
                    .map(|(shard, _)| shard)
                    .collect();
                let people: usize = owned.iter().map(|shard| self.per_district.get(*shard).copied().unwrap_or(0)).sum();
                json!({
                    "process": format!("P{}", index + 1),
                    "pid": process.pid,
                    "restarts": process.restarts,
                    "killed": index == self.killed.process,
                    "shards_at_start": owned,
                    "people_at_start": people,
                    "max_rss_mib": max_rss as f64 / 1024.0,
                    "cpu_s_total": cpu_total,
                    "cpu_s_in_window": cpu_window,
                    "cpu_share_of_core_in_window": cpu_window / span,
                })
            })
            .collect();
        let redis_ops = (last.redis_commands.saturating_sub(first.redis_commands)) as f64 / span;
        let redis_net = (
            (last.redis_net_in.saturating_sub(first.redis_net_in)) as f64 / span,
            (last.redis_net_out.saturating_sub(first.redis_net_out)) as f64 / span,
        );
        let redis_max_memory = self.samples.iter().map(|sample| sample.redis_used_memory).max().unwrap_or(0);
        let (sent, received) = self.session_bytes;
        let per_10k = 10_000.0 / self.args.sessions as f64;
        let mut reconnect_ms: Vec<f64> =
            self.sessions.reconnect_ms.lock().expect("reconnects").iter().map(|ms| *ms as f64).collect();
        reconnect_ms.sort_by(f64::total_cmp);
        let ms = |values: &[f64]| json!({ "count": values.len(), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": percentile(values, 1.0) });
        let killed_people: usize =
            self.killed.shards.iter().map(|shard| self.per_district.get(shard).copied().unwrap_or(0)).sum();
        json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "machine": {
                "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "memory_gib": memory_gib(),
                "load_average_before": self.load.0,
                "load_average_after": self.load.1,
            },
            "city": {
                "seed": self.args.seed,
                "districts": self.districts.len(),
                "people": self.people.len(),
                "people_per_district": self.per_district,
            },
            "processes": {
                "count": self.processes.len(),
                "max_shards_each": self.max_shards,
                "placement_s": self.placement_s,
                "shards_not_on_their_group_process": self.misplaced,
                "each": processes,
            },
            "switch": { "every_shard_grade_i_within_s": self.switch_reach.map(|reach| reach.as_secs_f64()) },
            "incidents": {
                "reported": self.reported.len(),
                "create_given_up": self.create_failures,
                "created_after_retry": self.reported.iter().filter(|incident| incident.attempts > 1).count(),
                "staffed": self.reported.iter().filter(|incident| staffed.contains(incident.id.as_str())).count(),
                "window_s": self.window_s,
                "people_with_two_assignments_at_once": self.double_assignments(),
            },
            "offer_latency_ms": {
                "to_offer_event": ms(&to_event),
                "to_offer_on_session_stream": ms(&to_stream),
                "to_offer_event_before_kill": ms(&before_kill),
                "to_offer_event_after_kill": ms(&after_kill),
                "to_offer_event_after_kill_on_killed_shards": ms(&on_killed_after),
            },
            "border": {
                "within_m": self.args.border_within_m,
                "incidents": border_count,
                "staffed": border_staffed,
                "staffed_from_across": across,
                "share_staffed_from_across": across as f64 / border_staffed.max(1) as f64,
                "eta_saved_s": { "count": saved.len(), "p50": percentile(&saved, 0.5), "mean": saved.iter().sum::<f64>() / saved.len().max(1) as f64, "max": percentile(&saved, 1.0) },
                "across_without_an_own_district_candidate": without_own,
                "across_where_an_own_district_candidate_was_nearer": nearer_own,
                "across_staffed_before_any_own_district_offer": before_own,
                "offers_by_from_area_id": offers_from,
            },
            "kill": {
                "process": format!("P{}", self.killed.process + 1),
                "at_s_into_window": kill_s,
                "shards": self.killed.shards,
                "people_of_those_shards": killed_people,
                "takeover": self.takeovers.iter().map(|(shard, taken)| (shard.clone(), json!({
                    "new_process": self.processes.iter().position(|process| process.pid == taken.new_pid).map(|index| format!("P{}", index + 1)),
                    "lease_taken_s": taken.lease_s,
                    "serving_s": taken.serving_s,
                }))).collect::<BTreeMap<_, _>>(),
                "shards_taken_over": self.takeovers.len(),
            },
            "sessions": {
                "opened": self.args.sessions,
                "report_every_s": self.args.report_every_s,
                "broken": self.sessions.broken.load(Ordering::Relaxed),
                "reconnected": self.sessions.reconnected.load(Ordering::Relaxed),
                "reconnect_ms": ms(&reconnect_ms),
                "locations_sent": self.sessions.locations_sent.load(Ordering::Relaxed),
                "offers_received": self.sessions.offers.load(Ordering::Relaxed),
                "load_generator_cpu_s_in_window": self.sessions_cpu,
            },
            "network": {
                "session_bytes_sent_per_s": sent as f64 / self.window_s,
                "session_bytes_received_per_s": received as f64 / self.window_s,
                "per_10k_sessions_bytes_per_s": (sent + received) as f64 / self.window_s * per_10k,
                "per_10k_sessions_mbit_per_s": (sent + received) as f64 * 8.0 / 1e6 / self.window_s * per_10k,
                "redis_in_bytes_per_s": redis_net.0,
                "redis_out_bytes_per_s": redis_net.1,
            },
            "redis": {
                "used_memory_mib_max": redis_max_memory as f64 / 1048576.0,
                "used_memory_mib_end": last.redis_used_memory as f64 / 1048576.0,
                "rss_mib_end": last.redis_rss_kib as f64 / 1024.0,
                "commands_per_s_in_window": redis_ops,
                "cpu_share_of_core_in_window": (last.redis_cpu_s - first.redis_cpu_s) / span,
            },
        })
    }

    /// Offer latency over the window, each incident a dot (to the first
    /// offer event), the kill a red line.
    fn latency_svg(&self) -> String {
        let latencies = self.latencies();
        let points: Vec<(f64, f64)> = latencies.iter().filter_map(|(t, event, _)| Some((*t, (*event)?))).collect();
        let kill_s = self.killed.at.saturating_duration_since(self.window_start).as_secs_f64();
        let max_t = self.window_s.max(1.0);
        let max_ms = sorted(points.iter().map(|(_, ms)| *ms).collect()).last().copied().unwrap_or(1.0).max(1.0);
        // A log scale: most offers take milliseconds, a few wait seconds.
        let (width, height, left, bottom) = (900.0, 360.0, 70.0, 40.0);
        let x = |t: f64| left + (width - left - 20.0) * t / max_t;
        let floor = 1.0_f64;
        let y = |ms: f64| {
            let span = (max_ms.max(floor * 10.0) / floor).log10();
            height - bottom - (height - bottom - 20.0) * ((ms.max(floor) / floor).log10() / span)
        };
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"14\">incident acknowledged → first offer event (ms, log scale) over the run; red: kill -9 of P{}</text>\n",
            self.killed.process + 1
        );
        let mut tick = floor;
        while tick <= max_ms * 1.0001 {
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{2:.1}\">{tick} ms</text>",
                width - 20.0,
                y(tick),
                y(tick) + 4.0
            );
            tick *= 10.0;
        }
        let minutes = (max_t / 60.0).ceil() as usize;
        for minute in 0..=minutes {
            let t = minute as f64 * 60.0;
            if t <= max_t {
                let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{}\">{minute} min</text>", x(t) - 10.0, height - 20.0);
            }
        }
        for (t, ms) in &points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" fill=\"#2060b0\" fill-opacity=\"0.6\"/>",
                x(*t),
                y(*ms)
            );
        }
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"20\" y2=\"{1}\" stroke=\"#d02020\" stroke-width=\"2\"/>",
            x(kill_s),
            height - bottom
        );
        svg.push_str("</svg>\n");
        svg
    }

    /// Resident memory of each process over the run, the kill marked.
    fn processes_svg(&self) -> String {
        let (width, height, left, bottom) = (900.0, 300.0, 70.0, 40.0);
        let max_t = self.samples.last().map_or(1.0, |sample| sample.t_s).max(1.0);
        let max_mib = self
            .samples
            .iter()
            .flat_map(|sample| sample.processes.iter().map(|(rss, _)| *rss).chain([sample.redis_rss_kib]))
            .max()
            .unwrap_or(1024) as f64
            / 1024.0;
        let x = |t: f64| left + (width - left - 20.0) * t / max_t;
        let y = |mib: f64| height - bottom - (height - bottom - 20.0) * mib / max_mib.max(1.0);
        let colours = ["#2060b0", "#20a060", "#b07020", "#8040b0", "#606060", "#b02060"];
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"14\">resident memory (MiB) of each dispatcher process and of redis-server (grey, dashed) over the run</text>\n"
        );
        for step in 0..=4 {
            let mib = max_mib * step as f64 / 4.0;
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{2:.1}\">{mib:.0}</text>",
                width - 20.0,
                y(mib),
                y(mib) + 4.0
            );
        }
        for (index, _) in self.processes.iter().enumerate() {
            let path: Vec<String> = self
                .samples
                .iter()
                .filter_map(|sample| Some((sample.t_s, sample.processes.get(index).filter(|(rss, _)| *rss > 0)?.0)))
                .map(|(t, rss)| format!("{:.1},{:.1}", x(t), y(rss as f64 / 1024.0)))
                .collect();
            let colour = colours[index % colours.len()];
            let _ =
                writeln!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>", path.join(" "));
            if let Some(last) = path.last() {
                let (px, py) = last.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(svg, "<text x=\"{px}\" y=\"{py}\" fill=\"{colour}\">P{}</text>", index + 1);
            }
        }
        let redis: Vec<String> = self
            .samples
            .iter()
            .map(|sample| format!("{:.1},{:.1}", x(sample.t_s), y(sample.redis_rss_kib as f64 / 1024.0)))
            .collect();
        let _ =
            writeln!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>", redis.join(" "));
        let kill_t = self.killed.at.saturating_duration_since(self.run_start).as_secs_f64();
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"20\" y2=\"{1}\" stroke=\"#d02020\" stroke-width=\"2\"/>",
            x(kill_t),
            height - bottom
        );
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\">{max_t:.0} s</text>",
            height - 20.0,
            width - 60.0,
            height - 20.0
        );
        svg.push_str("</svg>\n");
        svg
    }
}

fn memory_gib() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1048576.0)
}

fn print_report(report: &serde_json::Value) {
    let get = |path: &str| -> String {
        let mut value = report;
        for key in path.split('.') {
            value = &value[key];
        }
        match value {
            serde_json::Value::Number(number) => number.as_f64().map_or(number.to_string(), |float| {
                if float.fract() == 0.0 { format!("{float:.0}") } else { format!("{float:.2}") }
            }),
            other => other.to_string(),
        }
    };
    println!("\n== the city, run ==");
    println!("command: {}", get("command"));
    println!(
        "machine: {} cores, {} GiB; load before {} after {}",
        get("machine.cores"),
        get("machine.memory_gib"),
        get("machine.load_average_before"),
        get("machine.load_average_after")
    );
    println!(
        "city: {} people in {} districts; {} processes, at most {} shards each, placed in {} s",
        get("city.people"),
        get("city.districts"),
        get("processes.count"),
        get("processes.max_shards_each"),
        get("processes.placement_s")
    );
    println!("grade I city-wide: every shard within {} s", get("switch.every_shard_grade_i_within_s"));
    println!(
        "incidents: {} reported in {} s, {} staffed, {} created after a retry, {} given up; people with two assignments at once: {}",
        get("incidents.reported"),
        get("incidents.window_s"),
        get("incidents.staffed"),
        get("incidents.created_after_retry"),
        get("incidents.create_given_up"),
        get("incidents.people_with_two_assignments_at_once")
    );
    for (label, key) in [
        ("acknowledged → first offer event", "to_offer_event"),
        ("acknowledged → offer on the person's stream", "to_offer_on_session_stream"),
        ("  before the kill (event)", "to_offer_event_before_kill"),
        ("  after the kill (event)", "to_offer_event_after_kill"),
        ("  after the kill, killed shards (event)", "to_offer_event_after_kill_on_killed_shards"),
    ] {
        println!(
            "{label}: {} incidents, p50 {} ms, p99 {} ms, max {} ms",
            get(&format!("offer_latency_ms.{key}.count")),
            get(&format!("offer_latency_ms.{key}.p50")),
            get(&format!("offer_latency_ms.{key}.p99")),
            get(&format!("offer_latency_ms.{key}.max"))
        );
    }
    println!(
        "border (within {} m): {} incidents, {} staffed, {} from across the border ({}); ETA saved against the best own-district candidate: p50 {} s, mean {} s over {} ({} where the own one was nearer); {} without an own-district candidate; {} staffed before any own-district offer",
        get("border.within_m"),
        get("border.incidents"),
        get("border.staffed"),
        get("border.staffed_from_across"),
        get("border.share_staffed_from_across"),
        get("border.eta_saved_s.p50"),
        get("border.eta_saved_s.mean"),
        get("border.eta_saved_s.count"),
        get("border.across_where_an_own_district_candidate_was_nearer"),
        get("border.across_without_an_own_district_candidate"),
        get("border.across_staffed_before_any_own_district_offer")
    );
    println!(
        "kill -9 of {} ({} people's shards {}): takeover {}",
        get("kill.process"),
        get("kill.people_of_those_shards"),
        get("kill.shards"),
        get("kill.takeover")
    );
    if let Some(each) = report["processes"]["each"].as_array() {
        for process in each {
            println!(
                "{} (pid {}{}): shards {}, {} people; max RSS {:.0} MiB; CPU {:.1} s in all, {:.2} of a core in the window",
                process["process"].as_str().unwrap_or(""),
                process["pid"],
                if process["killed"].as_bool() == Some(true) { ", killed" } else { "" },
                process["shards_at_start"],
                process["people_at_start"],
                process["max_rss_mib"].as_f64().unwrap_or(f64::NAN),
                process["cpu_s_total"].as_f64().unwrap_or(f64::NAN),
                process["cpu_share_of_core_in_window"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!(
        "redis: used memory max {} MiB (rss at the end {} MiB), {} commands/s, {} of a core; in {} B/s out {} B/s",
        get("redis.used_memory_mib_max"),
        get("redis.rss_mib_end"),
        get("redis.commands_per_s_in_window"),
        get("redis.cpu_share_of_core_in_window"),
        get("network.redis_in_bytes_per_s"),
        get("network.redis_out_bytes_per_s")
    );
    println!(
        "sessions: {} opened, {} broken, {} reconnected (p50 {} ms, max {} ms); {} locations, {} offers; load generator {} CPU s in the window",
        get("sessions.opened"),
        get("sessions.broken"),
        get("sessions.reconnected"),
        get("sessions.reconnect_ms.p50"),
        get("sessions.reconnect_ms.max"),
        get("sessions.locations_sent"),
        get("sessions.offers_received"),
        get("sessions.load_generator_cpu_s_in_window")
    );
    println!(
        "network: sessions sent {} B/s and received {} B/s; per 10k sessions {} B/s = {} Mbit/s",
        get("network.session_bytes_sent_per_s"),
        get("network.session_bytes_received_per_s"),
        get("network.per_10k_sessions_bytes_per_s"),
        get("network.per_10k_sessions_mbit_per_s")
    );
}
