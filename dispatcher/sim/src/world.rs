//! The simulated city: dispatcher processes, the Redis model, the network
//! between them, the operators and people using them, and the faults, all
//! stepped on one simulated clock from one seed.
//!
//! Each process runs, per shard it owns, what the real dispatcher runs:
//! the real [`Engine`] deciding every command; a commit that appends the
//! engine's events to the journal with its fencing token and goes back to
//! the journaled state when the append fails (the runtime's rewind, with
//! the real `Engine::rewind`); recovery from the snapshot and the journal
//! after taking a lease (the dispatcher's own `runtime::recover_from`:
//! the snapshot, then `Engine::replay` of the events after it, decoded by
//! `convert::event_from_stored`); and the
//! border protocol of `pingji_dispatcher::server::border`: the real
//! `wanting` chooses what to offer across, the real engine commands
//! (`BorderReserve`, `BorderOffer`, `BorderAnswer`, `BorderConfirm`,
//! `BorderRelease`, `ExpireBorderReservations`) decide each side, and the
//! calls between owners carry the sender's epoch, checked against the
//! sender's fence before anything is journaled. What is modelled: the
//! order of the server's loop (`keep_border`) and its gRPC calls as
//! messages with delays, the Redis scripts (see [`crate::redis`]), the
//! directory (ids carry their shard), and the clients.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use pingji_dispatcher::convert;
use pingji_dispatcher::journal::StoredEvent;
use pingji_dispatcher::runtime::recover_from;
use pingji_dispatcher::server::border::{Answer, accepted_here, wanting};
use pingji_engine::areas::AreaLevel;
use pingji_engine::border::{BorderOfferView, BorderReservation, RESERVATION_GRACE_MS, ReservationEnd, ReservationState};
use pingji_engine::engine::border::BorderQuery;
use pingji_engine::engine::dispatch::Candidate;
use pingji_engine::engine::{Command, Engine, Rejection, State};
use pingji_engine::event::{DISPATCHER, Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::{IncidentSpec, OfferRecord};
use pingji_engine::policy::Policy;
use pingji_engine::spatial::Position;

use crate::check::Checker;
use crate::redis::{Acquisition, AppendRefused, ProcessId, RedisModel, Renewal};
use crate::rng::Rng;
use crate::setup::{self, T0};

/// How long a lease lasts and how often it is renewed (the defaults of
/// `pingji_dispatcher::lease::LeaseConfig`).
const LEASE_TTL_MS: i64 = 3_000;
const LEASE_RENEW_MS: i64 = 1_000;
/// The border loop's `FOLLOW_EVERY` and `CALL_TIMEOUT`.
const FOLLOW_EVERY_MS: i64 = 1_000;
const CALL_TIMEOUT_MS: i64 = 2_000;
/// A process owns at most one shard (`--max-shards 1`), so that shards
/// spread over processes and the border calls go between processes.
const MAX_SHARDS: usize = 1;

/// How a commit that could not be journaled is refused (the runtime's
/// `unavailable`).
const UNAVAILABLE: &str = "the journal's store cannot be reached now; retry in a moment";

/// A protocol broken on purpose, to show the checker catching it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Appends skip the fence check and a lost lease does not stop the
    /// process: an owner paused past its lease writes after waking.
    IgnoreFence,
    /// The border protocol as it was before the simulation: an accepted
    /// reservation expires like an unanswered one, and a new owner does
    /// not tell the acceptances it recovered.
    ExpireAccepted,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub processes: usize,
    pub step_ms: i64,
    /// Faults and new incidents happen during this long ...
    pub fault_ms: i64,
    /// ... then everything heals and the run goes on quietly this long.
    pub quiet_ms: i64,
    pub bug: Option<Bug>,
    /// Print every line of the trace to stderr as it happens.
    pub print_trace: bool,
}

impl Config {
    pub fn new(seed: u64) -> Self {
        Config { seed, processes: 3, step_ms: 200, fault_ms: 30_000, quiet_ms: 20_000, bug: None, print_trace: false }
    }
}

/// What a run did, for the tests and the long run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// FNV-1a over every line of the trace: equal hashes, equal runs.
    pub trace_hash: u64,
    pub incidents: usize,
    pub border_offers: usize,
    pub border_assignments: usize,
    pub takeovers: usize,
    pub crashes: usize,
    pub pauses: usize,
    pub fenced: usize,
    pub acknowledged: usize,
}

/// A broken invariant, with what is needed to see and replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: i64,
    pub problem: String,
    pub trace_tail: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(formatter, "seed {} broke an invariant at +{} ms: {}", self.seed, self.at_ms, self.problem)?;
        writeln!(formatter, "the last steps of its trace:")?;
        for line in &self.trace_tail {
            writeln!(formatter, "  {line}")?;
        }
        write!(formatter, "replay it exactly: cargo run -p pingji-sim --release --bin sim -- --seed {}", self.seed)
    }
}

/// One shard as its owner holds it in memory.
struct Owned {
    epoch: u64,
    engine: Engine,
    /// The snapshot it recovered from and the events journaled since: what
    /// it goes back to when an append fails.
    base: Arc<State>,
    since: Vec<Event>,
    /// The last seq this owner knows to be in the journal.
    journaled: u64,
    /// An append failed without an answer: the journal may hold more.
    behind: bool,
    answers: BTreeMap<OfferId, Answer>,
    settle: BTreeMap<OfferId, (AgentId, &'static str, String)>,
    look: bool,
    next_follow_at: i64,
    /// Calls in flight (until their timeout), so one is not sent twice.
    asking: BTreeMap<IncidentId, i64>,
    answering: BTreeMap<OfferId, i64>,
}

struct Process {
    up: bool,
    down_until: i64,
    paused_until: i64,
    owned: BTreeMap<String, Owned>,
    next_lease_at: i64,
}

#[derive(Clone, Debug)]
enum Call {
    Candidates {
        incident_shard: String,
        epoch: u64,
        query: BorderQuery,
        best_open_eta_s: Option<f64>,
        offer_timeout_s: u64,
        spec: IncidentSpec,
        incident: IncidentId,
        level: AreaLevel,
    },
    Reserve {
        incident_shard: String,
        epoch: u64,
        reservation: BorderReservation,
        offer: OfferRecord,
    },
    Settle {
        incident_shard: String,
        epoch: u64,
        offer: OfferId,
        outcome: &'static str,
        reason: String,
    },
    Answer {
        home_shard: String,
        epoch: u64,
        offer: OfferId,
        incident: IncidentId,
        agent: AgentId,
        accepted: bool,
        reason: String,
    },
}

impl Call {
    fn sender_shard(&self) -> &str {
        match self {
            Call::Candidates { incident_shard, .. }
            | Call::Reserve { incident_shard, .. }
            | Call::Settle { incident_shard, .. } => incident_shard,
            Call::Answer { home_shard, .. } => home_shard,
        }
    }

    fn sender_epoch(&self) -> u64 {
        match self {
            Call::Candidates { epoch, .. }
            | Call::Reserve { epoch, .. }
            | Call::Settle { epoch, .. }
            | Call::Answer { epoch, .. } => *epoch,
        }
    }
}

#[derive(Clone, Debug)]
enum Reply {
    Candidates(Vec<Candidate>),
    Done,
    Answered { assigned: bool },
}

#[derive(Clone, Debug)]
enum Message {
    Call { to_shard: String, call: Call },
    Reply { from_shard: String, call: Call, result: Result<Reply, String> },
}

#[derive(Clone, Debug)]
struct Envelope {
    from: ProcessId,
    to: ProcessId,
    message: Message,
}

/// A person's app: the answer they will give to an offer, and when.
#[derive(Clone, Copy, Debug)]
enum Choice {
    Accept,
    Decline,
    Ignore,
}

pub struct World {
    config: Config,
    policy: Policy,
    pub now: i64,
    rng: Rng,
    pub redis: RedisModel,
    processes: Vec<Process>,
    /// Messages in flight, by (delivery time, order sent).
    queue: BTreeMap<(i64, u64), Envelope>,
    sent: u64,
    /// Links cut until a time: (process, process) both ways, and process to Redis.
    cut_links: BTreeMap<(ProcessId, ProcessId), i64>,
    cut_from_redis: BTreeMap<ProcessId, i64>,
    people: Vec<(AgentId, Position)>,
    decisions: BTreeMap<OfferId, (i64, Choice)>,
    pub checker: Checker,
    pub outcome: Outcome,
    trace_tail: VecDeque<String>,
    failure: Option<String>,
}

/// Runs one seed to the end; the first broken invariant stops it.
pub fn run(config: Config) -> Result<Outcome, Failure> {
    let mut world = World::new(config);
    let end = T0 + world.config.fault_ms + world.config.quiet_ms;
    while world.now < end {
        world.step();
        if let Some(problem) = world.failure.take() {
            return Err(world.failed(problem));
        }
        if let Err(problem) = world.checker.after_step(&world.redis, world.now) {
            return Err(world.failed(problem));
        }
    }
    if let Err(problem) = world.checker.at_the_end(&world.redis, world.now) {
        return Err(world.failed(problem));
    }
    world.outcome.acknowledged = world.checker.acknowledged();
    Ok(world.outcome.clone())
}

impl World {
    fn new(config: Config) -> Self {
        let start = setup::start();
        let mut redis = RedisModel::default();
        let mut checker = Checker::default();
        for shard in &start.shards {
            redis
                .add_shard(&shard.shard, &shard.journal, &shard.snapshot, shard.state.clone())
                .unwrap_or_else(|error| panic!("the setup's journal of {}: {error}", shard.shard));
            checker.add_shard(&shard.shard, start.policy.clone(), shard.state.clone());
        }
        let mut rng = Rng::new(config.seed);
        // People stand within 400 m of the border, some across it from home.
        let people = start
            .shards
            .iter()
            .flat_map(|shard| shard.people.iter())
            .map(|agent| {
                let side = if setup::home_shard(agent.as_str()) == "d1" { -1.0 } else { 1.0 };
                let east = side * rng.between(-100, 400) as f64;
                let north = rng.between(-300, 300) as f64;
                (agent.clone(), setup::near_border(east, north))
            })
            .collect();
        let processes = (0..config.processes)
            .map(|id| Process {
                up: true,
                down_until: 0,
                paused_until: 0,
                owned: BTreeMap::new(),
                next_lease_at: T0 + (id as i64) * 300,
            })
            .collect();
        World {
            policy: start.policy.clone(),
            now: T0,
            rng,
            redis,
            processes,
            queue: BTreeMap::new(),
            sent: 0,
            cut_links: BTreeMap::new(),
            cut_from_redis: BTreeMap::new(),
            people,
            decisions: BTreeMap::new(),
            checker,
            outcome: Outcome::default(),
            trace_tail: VecDeque::new(),
            failure: None,
            config,
        }
    }

    fn failed(&self, problem: String) -> Failure {
        Failure { seed: self.config.seed, at_ms: self.now - T0, problem, trace_tail: self.trace_tail.iter().cloned().collect() }
    }

    fn trace(&mut self, line: String) {
        let line = format!("+{:>6} {line}", self.now - T0);
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.outcome.trace_hash = (self.outcome.trace_hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
        }
        if self.config.print_trace {
            eprintln!("{line}");
        }
        if self.trace_tail.len() == 40 {
            self.trace_tail.pop_front();
        }
        self.trace_tail.push_back(line);
    }

    /// The chance in one step of something that happens `per_second`
    /// times a second on average.
    fn per_step(&self, per_second: f64) -> f64 {
        per_second * self.config.step_ms as f64 / 1000.0
    }

    fn faulty(&self) -> bool {
        self.now < T0 + self.config.fault_ms
    }

    fn step(&mut self) {
        self.now += self.config.step_ms;
        if self.faulty() {
            self.inject_faults();
        } else if self.now - self.config.step_ms < T0 + self.config.fault_ms {
            self.heal();
        }
        self.restart_crashed();
        self.deliver();
        for process in 0..self.processes.len() {
            if self.runs(process) {
                self.run_process(process);
            }
        }
        self.operators();
        self.people_answer();
    }

    // ---- faults ----

    fn inject_faults(&mut self) {
        let count = self.processes.len();
        if self.rng.chance(self.per_step(0.04)) {
            let victim = self.rng.index(count);
            if self.processes[victim].up {
                self.outcome.crashes += 1;
                self.crash(victim, "kill -9");
            }
        }
        if self.rng.chance(self.per_step(0.04)) {
            let victim = self.rng.index(count);
            let until = self.now + self.rng.between(500, 7_000);
            if self.processes[victim].up && self.processes[victim].paused_until < self.now {
                self.outcome.pauses += 1;
                self.processes[victim].paused_until = until;
                self.trace(format!("p{victim} paused until +{}", until - T0));
            }
        }
        if self.rng.chance(self.per_step(0.04)) {
            let (first, second) = (self.rng.index(count), self.rng.index(count));
            if first != second {
                let until = self.now + self.rng.between(1_000, 8_000);
                self.cut_links.insert((first.min(second), first.max(second)), until);
                self.trace(format!("p{first} and p{second} cut off from each other until +{}", until - T0));
            }
        }
        if self.rng.chance(self.per_step(0.04)) {
            let victim = self.rng.index(count);
            let until = self.now + self.rng.between(500, 6_000);
            self.cut_from_redis.insert(victim, until);
            self.trace(format!("p{victim} cut off from redis until +{}", until - T0));
        }
    }

    /// The quiet period: every fault ends, every process runs.
    fn heal(&mut self) {
        self.cut_links.clear();
        self.cut_from_redis.clear();
        for process in &mut self.processes {
            process.paused_until = 0;
            process.down_until = process.down_until.min(self.now);
        }
        self.trace("quiet: every fault healed".to_owned());
    }

    fn crash(&mut self, process: ProcessId, why: &str) {
        let until = self.now + self.rng.between(300, 4_000);
        let entry = &mut self.processes[process];
        entry.up = false;
        entry.down_until = until;
        entry.paused_until = 0;
        entry.owned.clear();
        self.trace(format!("p{process} exits ({why}); restarted at +{}", until - T0));
    }

    fn restart_crashed(&mut self) {
        for process in 0..self.processes.len() {
            let entry = &mut self.processes[process];
            if !entry.up && entry.down_until <= self.now {
                entry.up = true;
                entry.next_lease_at = self.now;
                self.trace(format!("p{process} starts, standing by"));
            }
        }
    }

    fn runs(&self, process: ProcessId) -> bool {
        let entry = &self.processes[process];
        entry.up && entry.paused_until <= self.now
    }

    fn reaches_redis(&self, process: ProcessId) -> bool {
        self.cut_from_redis.get(&process).is_none_or(|until| *until <= self.now)
    }

    fn linked(&self, first: ProcessId, second: ProcessId) -> bool {
        self.cut_links.get(&(first.min(second), first.max(second))).is_none_or(|until| *until <= self.now)
    }

    /// A Redis call whose effect happened but whose answer was lost.
    fn answer_lost(&mut self) -> bool {
        self.faulty() && self.rng.chance(0.02)
    }

    // ---- the network between processes ----

    /// The process holding `shard`'s lease, as the sender reads it in Redis.
    fn owner_of(&self, asking: ProcessId, shard: &str) -> Option<ProcessId> {
        if !self.reaches_redis(asking) {
            return None;
        }
        self.redis.live_lease(shard, self.now).map(|lease| lease.owner)
    }

    fn send(&mut self, from: ProcessId, to: ProcessId, message: Message) {
        if !self.linked(from, to) || (self.faulty() && self.rng.chance(0.03)) {
            return;
        }
        let delay = self.rng.between(1, 400);
        self.sent += 1;
        self.queue.insert((self.now + delay, self.sent), Envelope { from, to, message });
    }

    fn call(&mut self, from: ProcessId, to_shard: &str, call: Call) -> bool {
        let Some(to) = self.owner_of(from, to_shard) else {
            return false;
        };
        self.send(from, to, Message::Call { to_shard: to_shard.to_owned(), call });
        true
    }

    fn deliver(&mut self) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let envelope = entry.remove();
            let to = envelope.to;
            if !self.processes[to].up {
                continue;
            }
            if self.processes[to].paused_until > self.now {
                // Waits in the socket until the process wakes.
                self.sent += 1;
                let wake = self.processes[to].paused_until;
                self.queue.insert((wake, self.sent), envelope);
                continue;
            }
            match envelope.message {
                Message::Call { to_shard, call } => {
                    let result = self.serve(to, &to_shard, &call);
                    if self.processes[to].up {
                        self.send(to, envelope.from, Message::Reply { from_shard: to_shard, call, result });
                    }
                }
                Message::Reply { from_shard, call, result } => self.take_reply(to, &from_shard, call, result),
            }
        }
    }

    // ---- one process ----

    fn run_process(&mut self, process: ProcessId) {
        if self.processes[process].next_lease_at <= self.now {
            self.processes[process].next_lease_at = self.now + LEASE_RENEW_MS;
            self.keep_leases(process);
        }
        let shards: Vec<String> = self.processes[process].owned.keys().cloned().collect();
        for shard in shards {
            if !self.owns(process, &shard) {
                continue;
            }
            self.catch_up(process, &shard);
            if !self.owns(process, &shard) {
                continue;
            }
            let now = Millis(self.now);
            let ticked = self.owned(process, &shard).map(|owned| owned.engine.tick(now)).unwrap_or_default();
            if !ticked.is_empty() {
                let _ = self.commit_events(process, &shard, ticked);
            }
            self.follow_border(process, &shard);
        }
    }

    fn owns(&self, process: ProcessId, shard: &str) -> bool {
        self.processes[process].owned.contains_key(shard)
    }

    fn owned(&mut self, process: ProcessId, shard: &str) -> Option<&mut Owned> {
        self.processes[process].owned.get_mut(shard)
    }

    fn keep_leases(&mut self, process: ProcessId) {
        for shard in setup::SHARDS {
            if !self.reaches_redis(process) {
                return;
            }
            let lost_answer = self.answer_lost();
            if let Some(epoch) = self.processes[process].owned.get(shard).map(|owned| owned.epoch) {
                let renewal = self.redis.renew(shard, epoch, process, self.now, LEASE_TTL_MS);
                if lost_answer {
                    continue;
                }
                if let Renewal::Lost { current_token } = renewal {
                    if self.config.bug == Some(Bug::IgnoreFence) {
                        continue;
                    }
                    self.crash(process, &format!("lost the lease of {shard} to token {current_token}"));
                    return;
                }
                continue;
            }
            if self.processes[process].owned.len() >= MAX_SHARDS {
                continue;
            }
            let acquisition = self.redis.acquire(shard, process, self.now, LEASE_TTL_MS);
            if lost_answer {
                continue;
            }
            if let Acquisition::Acquired { token } = acquisition {
                self.recover(process, shard, token);
            }
        }
    }

    /// The new owner loads the snapshot and replays the journal after it,
    /// with the dispatcher's own recovery.
    fn recover(&mut self, process: ProcessId, shard: &str, epoch: u64) {
        let Some((snapshot_seq, base)) = self.redis.snapshot(shard) else { return };
        let Some(keys) = self.redis.shards.get(shard) else { return };
        let mut engine = match recover_from(&keys.journal, self.policy.clone()) {
            Ok(engine) => engine,
            Err(problem) => {
                self.failure = Some(format!("{shard} cannot be recovered from its journal: {problem:#}"));
                return;
            }
        };
        engine.set_scope(Some(AreaId::new(shard)));
        // What it goes back to when an append fails: the snapshot and the
        // events after it.
        let mut since = Vec::new();
        for stored in self.redis.read_from(shard, snapshot_seq + 1) {
            match convert::event_from_stored(&stored) {
                Ok(event) => since.push(event),
                Err(problem) => {
                    self.failure = Some(format!("{shard}'s journal cannot be read back: {problem}"));
                    return;
                }
            }
        }
        let journaled = self.redis.last_seq(shard);
        if let Err(problem) = self.checker.recovered(shard, &engine, journaled) {
            self.failure = Some(problem);
        }
        self.outcome.takeovers += 1;
        self.trace(format!("p{process} owns {shard} with epoch {epoch}, recovered {} events", since.len()));
        // As `keep_border` starts: the acceptances not yet told.
        let told_again = self.config.bug != Some(Bug::ExpireAccepted);
        let answers = if told_again { accepted_here(&engine) } else { BTreeMap::new() };
        let owned = Owned {
            epoch,
            engine,
            base,
            since,
            journaled,
            behind: false,
            answers,
            settle: BTreeMap::new(),
            look: true,
            next_follow_at: self.now,
            asking: BTreeMap::new(),
            answering: BTreeMap::new(),
        };
        self.processes[process].owned.insert(shard.to_owned(), owned);
    }

    /// After an append whose answer was lost: take in what the journal
    /// holds beyond what this owner knows, if it still holds the fence.
    fn catch_up(&mut self, process: ProcessId, shard: &str) {
        let behind = self.processes[process].owned.get(shard).is_some_and(|owned| owned.behind);
        if !behind || !self.reaches_redis(process) {
            return;
        }
        let Some(epoch) = self.processes[process].owned.get(shard).map(|owned| owned.epoch) else { return };
        if self.redis.fence(shard) != epoch && self.config.bug != Some(Bug::IgnoreFence) {
            self.outcome.fenced += 1;
            self.crash(process, &format!("{shard} was taken over while it could not reach redis"));
            return;
        }
        let journaled = self.processes[process].owned.get(shard).map_or(0, |owned| owned.journaled);
        let missing = self.redis.read_from(shard, journaled + 1);
        let mut taken = Vec::new();
        for stored in &missing {
            match convert::event_from_stored(stored) {
                Ok(event) => taken.push(event),
                Err(problem) => {
                    self.failure = Some(format!("{shard}'s journal cannot be read back: {problem}"));
                    return;
                }
            }
        }
        let Some(owned) = self.owned(process, shard) else { return };
        for event in &taken {
            if let Err(problem) = owned.engine.replay(event) {
                let problem = format!("{shard}: an owner cannot take in seq {}: {problem}", event.seq);
                self.failure = Some(problem);
                return;
            }
            owned.journaled = event.seq;
            owned.since.push(event.clone());
        }
        owned.behind = false;
        self.note(process, shard, &taken);
    }

    /// Decides a command with the real engine and journals what it made.
    fn execute(&mut self, process: ProcessId, shard: &str, command: Command, actor: &str) -> Result<Vec<Event>, String> {
        let now = Millis(self.now);
        let owned = self.owned(process, shard).ok_or_else(|| format!("p{process} does not own {shard}"))?;
        if owned.behind {
            return Err(UNAVAILABLE.to_owned());
        }
        let events = owned.engine.execute(command, actor, now).map_err(|rejection| format!("{rejection:?}"))?;
        self.commit_events(process, shard, events)
    }

    /// Appends events the engine already applied; on failure the engine
    /// goes back to what was journaled (and the process steps down when
    /// fenced). Only an appended batch is acknowledged.
    fn commit_events(&mut self, process: ProcessId, shard: &str, events: Vec<Event>) -> Result<Vec<Event>, String> {
        if events.is_empty() {
            return Ok(events);
        }
        let stored: Vec<StoredEvent> = events.iter().map(convert::stored_event).collect();
        let check_fence = self.config.bug != Some(Bug::IgnoreFence);
        let reachable = self.reaches_redis(process);
        let lost_answer = self.answer_lost();
        let Some(epoch) = self.processes[process].owned.get(shard).map(|owned| owned.epoch) else {
            return Err(format!("p{process} does not own {shard}"));
        };
        let appended = if reachable { Some(self.redis.append(shard, epoch, &stored, check_fence)) } else { None };
        if let Some(Ok(())) = &appended
            && let Err(problem) = self.checker.appended(shard, epoch, process, &stored)
        {
            self.failure = Some(problem);
        }
        match appended {
            Some(Ok(())) if !lost_answer => {
                let kinds: Vec<String> = stored
                    .iter()
                    .map(|event| {
                        let about = [event.incident_id.as_deref(), event.agent_id.as_deref()];
                        format!("{} {}", event.kind, about.into_iter().flatten().collect::<Vec<_>>().join(" "))
                    })
                    .collect();
                let line =
                    format!("p{process} {shard}@{epoch} journals {}..={} {kinds:?}", stored[0].seq, events[events.len() - 1].seq);
                self.trace(line);
                self.count(&events);
                if let Some(owned) = self.owned(process, shard) {
                    owned.journaled = events[events.len() - 1].seq;
                    owned.since.extend(events.iter().cloned());
                }
                self.checker.acknowledge(shard, &stored);
                self.note(process, shard, &events);
                Ok(events)
            }
            Some(Err(AppendRefused::Fenced { fence })) => {
                self.outcome.fenced += 1;
                self.crash(process, &format!("its append to {shard} was fenced by token {fence}"));
                Err("fenced".to_owned())
            }
            _ => {
                // Unreachable, answer lost, or the journal moved on: back to
                // what is known journaled; find out what happened later.
                self.rewind(process, shard);
                Err(UNAVAILABLE.to_owned())
            }
        }
    }

    fn rewind(&mut self, process: ProcessId, shard: &str) {
        let policy = self.policy.clone();
        let Some(owned) = self.owned(process, shard) else { return };
        let mut rebuilt = Engine::restore(policy, (*owned.base).clone());
        for event in &owned.since {
            // Replayed before; cannot fail the second time.
            let _ = rebuilt.replay(event);
        }
        owned.engine.rewind(rebuilt.into_state());
        owned.behind = true;
    }

    fn count(&mut self, events: &[Event]) {
        for event in events {
            match &event.kind {
                EventKind::IncidentReported { .. } => self.outcome.incidents += 1,
                EventKind::BorderReserved { .. } => self.outcome.border_offers += 1,
                EventKind::BorderConfirmed { .. } => self.outcome.border_assignments += 1,
                _ => {}
            }
        }
    }

    // ---- the border protocol (server::border::keep_border) ----

    /// What journaled events ask of the border loop (`note`).
    fn note(&mut self, process: ProcessId, shard: &str, events: &[Event]) {
        let Some(owned) = self.owned(process, shard) else { return };
        for event in events {
            match &event.kind {
                EventKind::BorderAccepted { offer, incident, agent } => {
                    if let Some(held) = owned.engine.state().border.get(offer) {
                        let answer = Answer {
                            incident_shard: held.incident_shard.clone(),
                            incident: incident.clone(),
                            agent: agent.clone(),
                            accepted: true,
                            reason: String::new(),
                        };
                        owned.answers.insert(offer.clone(), answer);
                    }
                }
                EventKind::BorderReleased { offer, incident, agent, end, reason } => {
                    owned.answers.remove(offer);
                    if *end == ReservationEnd::Declined {
                        let answer = Answer {
                            incident_shard: String::new(),
                            incident: incident.clone(),
                            agent: agent.clone(),
                            accepted: false,
                            reason: reason.clone(),
                        };
                        owned.answers.insert(offer.clone(), answer);
                    }
                    owned.look = true;
                }
                EventKind::OfferTimedOut { offer, agent, .. } => {
                    if !owned.engine.state().agents.contains_key(agent) {
                        owned.settle.insert(offer.clone(), (agent.clone(), "withdrawn", "timed out".to_owned()));
                    }
                    owned.look = true;
                }
                EventKind::OfferWithdrawn { offer, agent, .. } => {
                    if !owned.engine.state().agents.contains_key(agent) {
                        owned.settle.insert(offer.clone(), (agent.clone(), "withdrawn", "withdrawn".to_owned()));
                    }
                    owned.look = true;
                }
                EventKind::IncidentCancelled { incident, released, .. }
                | EventKind::IncidentClosed { incident, released, .. } => {
                    for agent in released {
                        if owned.engine.state().agents.contains_key(agent) {
                            continue;
                        }
                        let held = owned.engine.state().incidents.get(incident).and_then(|record| {
                            record
                                .assignments
                                .iter()
                                .find(|assignment| &assignment.agent == agent)
                                .map(|assignment| assignment.offer.clone())
                        });
                        if let Some(offer) = held {
                            owned.settle.insert(offer, (agent.clone(), "ended", "the incident ended".to_owned()));
                        }
                    }
                    owned.look = true;
                }
                EventKind::IncidentReported { .. }
                | EventKind::OfferSent { .. }
                | EventKind::OfferDeclined { .. }
                | EventKind::NoCandidates { .. }
                | EventKind::ModeSwitched { .. } => owned.look = true,
                _ => {}
            }
        }
    }

    fn follow_border(&mut self, process: ProcessId, shard: &str) {
        let now = self.now;
        let Some(owned) = self.owned(process, shard) else { return };
        owned.asking.retain(|_, until| *until > now);
        owned.answering.retain(|_, until| *until > now);
        let due = owned.next_follow_at <= now;
        if due {
            owned.next_follow_at = now + FOLLOW_EVERY_MS;
            owned.look = true;
        }
        let look = std::mem::take(&mut owned.look);
        if due {
            self.expire(process, shard);
        }
        self.send_answers(process, shard);
        self.send_settlements(process, shard);
        if look {
            self.offer_across(process, shard);
        }
    }

    fn expire(&mut self, process: ProcessId, shard: &str) {
        let now = Millis(self.now);
        let any = self.processes[process].owned.get(shard).is_some_and(|owned| {
            owned.engine.state().border.values().any(|held| held.expires_at <= now && held.state == ReservationState::Offered)
        });
        if any {
            let _ = self.execute(process, shard, Command::ExpireBorderReservations, DISPATCHER);
        }
        if self.config.bug == Some(Bug::ExpireAccepted) {
            let accepted: Vec<OfferId> = self.processes[process].owned.get(shard).map_or_else(Vec::new, |owned| {
                let border = owned.engine.state().border.values();
                border
                    .filter(|held| held.expires_at <= now && held.state == ReservationState::Accepted)
                    .map(|held| held.offer.clone())
                    .collect()
            });
            for offer in accepted {
                let command = Command::BorderRelease { offer, end: ReservationEnd::Expired, reason: String::new() };
                let _ = self.execute(process, shard, command, DISPATCHER);
            }
        }
    }

    fn send_answers(&mut self, process: ProcessId, shard: &str) {
        let Some(owned) = self.processes[process].owned.get(shard) else { return };
        let epoch = owned.epoch;
        let pending: Vec<(OfferId, Answer)> = owned
            .answers
            .iter()
            .filter(|(offer, _)| !owned.answering.contains_key(*offer))
            .map(|(offer, answer)| (offer.clone(), answer.clone()))
            .collect();
        for (offer, answer) in pending {
            let incident_shard = if answer.incident_shard.is_empty() {
                setup::incident_shard(answer.incident.as_str()).to_owned()
            } else {
                answer.incident_shard.clone()
            };
            let call = Call::Answer {
                home_shard: shard.to_owned(),
                epoch,
                offer: offer.clone(),
                incident: answer.incident.clone(),
                agent: answer.agent.clone(),
                accepted: answer.accepted,
                reason: answer.reason.clone(),
            };
            let sent = self.call(process, &incident_shard, call);
            let until = self.now + CALL_TIMEOUT_MS;
            let Some(owned) = self.owned(process, shard) else { return };
            if !answer.accepted {
                // A decline is told once.
                owned.answers.remove(&offer);
            } else if sent {
                owned.answering.insert(offer, until);
            }
        }
    }

    fn send_settlements(&mut self, process: ProcessId, shard: &str) {
        let Some(owned) = self.owned(process, shard) else { return };
        let epoch = owned.epoch;
        // Told once: a lost message is covered by the reservation's expiry.
        let pending = std::mem::take(&mut owned.settle);
        for (offer, (agent, outcome, reason)) in pending {
            let home = setup::home_shard(agent.as_str()).to_owned();
            let call = Call::Settle { incident_shard: shard.to_owned(), epoch, offer, outcome, reason };
            self.call(process, &home, call);
        }
    }

    fn offer_across(&mut self, process: ProcessId, shard: &str) {
        let now = Millis(self.now);
        let district = AreaId::new(shard);
        let Some(owned) = self.processes[process].owned.get(shard) else { return };
        let epoch = owned.epoch;
        let (incidents, neighbours, others) = wanting(&owned.engine, &district);
        let incidents: Vec<_> = incidents.into_iter().filter(|incident| !owned.asking.contains_key(&incident.incident)).collect();
        for incident in incidents {
            let query = BorderQuery {
                at: incident.at,
                skills: incident.skills.iter().cloned().collect(),
                mode: incident.mode,
                emergency_level: incident.emergency_level,
                emergency_area: incident.emergency_area.clone(),
                excluded: incident.excluded.iter().map(AgentId::new).collect(),
                k: 1,
                now,
            };
            let mut asked = false;
            for neighbour in if incident.whole_city { &others } else { &neighbours } {
                let call = Call::Candidates {
                    incident_shard: shard.to_owned(),
                    epoch,
                    query: query.clone(),
                    best_open_eta_s: incident.best_open_eta_s,
                    offer_timeout_s: incident.offer_timeout_s,
                    spec: incident.spec.clone(),
                    incident: incident.incident.clone(),
                    level: incident.emergency_level,
                };
                asked |= self.call(process, neighbour, call);
            }
            let until = self.now + CALL_TIMEOUT_MS;
            if asked && let Some(owned) = self.owned(process, shard) {
                owned.asking.insert(incident.incident.clone(), until);
            }
        }
    }

    /// A call at the owner of `shard` (the handlers of `ShardApi`).
    fn serve(&mut self, process: ProcessId, shard: &str, call: &Call) -> Result<Reply, String> {
        let Some(owned) = self.processes[process].owned.get(shard) else {
            return Err(format!("p{process} does not own {shard}"));
        };
        if let Call::Candidates { query, .. } = call {
            let query = BorderQuery { now: Millis(self.now), ..query.clone() };
            return Ok(Reply::Candidates(owned.engine.border_candidates(&query)));
        }
        // check_epoch: the sender's fence, read in Redis.
        if !self.reaches_redis(process) {
            return Err("the sender's fence cannot be read now; retry in a moment".to_owned());
        }
        let fence = self.redis.fence(call.sender_shard());
        if call.sender_epoch() < fence {
            return Err(format!("FENCED: the sender's epoch {} is below the fence {fence}", call.sender_epoch()));
        }
        let actor = format!("shard:{}", call.sender_shard());
        match call {
            Call::Candidates { .. } => Ok(Reply::Done),
            Call::Reserve { reservation, .. } => {
                let reservation = BorderReservation { sent_at: Millis(self.now), ..reservation.clone() };
                self.execute(process, shard, Command::BorderReserve(reservation), &actor).map(|_| Reply::Done)
            }
            Call::Settle { offer, outcome, reason, .. } => {
                let end = if *outcome == "ended" { ReservationEnd::Ended } else { ReservationEnd::Withdrawn };
                let command = Command::BorderRelease { offer: offer.clone(), end, reason: reason.clone() };
                self.execute(process, shard, command, &actor).map(|_| Reply::Done)
            }
            Call::Answer { offer, incident, agent, accepted, reason, .. } => {
                let command = Command::BorderAnswer {
                    offer: offer.clone(),
                    agent: agent.clone(),
                    accepted: *accepted,
                    reason: reason.clone(),
                };
                match self.execute(process, shard, command, &actor) {
                    Ok(_) => {
                        let holds = self.processes[process].owned.get(shard).is_some_and(|owned| {
                            owned.engine.state().incidents.get(incident).is_some_and(|record| {
                                record.assignments.iter().any(|held| &held.offer == offer && &held.agent == agent)
                            })
                        });
                        Ok(Reply::Answered { assigned: holds && *accepted })
                    }
                    Err(problem) if problem.starts_with("OfferNotOpen") || problem.starts_with("FailedPrecondition") => {
                        Ok(Reply::Answered { assigned: false })
                    }
                    Err(problem) => Err(problem),
                }
            }
        }
    }

    /// The sender's side of a call's answer, if it still owns the shard it
    /// called for, with the same epoch (a new incarnation forgot the call).
    fn take_reply(&mut self, process: ProcessId, from_shard: &str, call: Call, result: Result<Reply, String>) {
        let shard = call.sender_shard().to_owned();
        let same_owner = self.processes[process].owned.get(&shard).is_some_and(|owned| owned.epoch == call.sender_epoch());
        if !same_owner {
            return;
        }
        match (call, result) {
            (
                Call::Candidates { incident, best_open_eta_s, offer_timeout_s, spec, level, epoch, query, .. },
                Ok(Reply::Candidates(found)),
            ) => {
                let Some(best) = found.into_iter().next() else { return };
                if best_open_eta_s.is_some_and(|open| open <= best.eta_s) {
                    return;
                }
                let now = Millis(self.now);
                let offer_id = OfferId::new(format!("{incident}-x-{}-{}", best.agent, now.0));
                let deadline = Millis(now.0 + offer_timeout_s as i64 * 1000);
                let reservation = BorderReservation {
                    offer: offer_id.clone(),
                    incident: incident.clone(),
                    incident_shard: shard.clone(),
                    epoch,
                    agent: best.agent.clone(),
                    sent_at: now,
                    deadline,
                    expires_at: Millis(deadline.0 + RESERVATION_GRACE_MS),
                    view: BorderOfferView {
                        category: spec.category.clone(),
                        priority: spec.priority,
                        at: spec.at,
                        skills: spec.skills.clone(),
                        description: spec.description.clone(),
                        distance_m: best.distance_m,
                        eta_s: best.eta_s,
                        level,
                        safety_interval_s: None,
                    },
                    state: ReservationState::Offered,
                };
                let offer = OfferRecord {
                    id: offer_id,
                    incident: incident.clone(),
                    agent: best.agent,
                    sent_at: now,
                    deadline,
                    distance_m: best.distance_m,
                    eta_s: best.eta_s,
                    level,
                    flat: query.mode.is_emergency(),
                    origin: None,
                    from_area: best.via,
                };
                // As the real owner: the offer is journaled first, and
                // withdrawn when the home shard cannot be asked.
                let offer_id = offer.id.clone();
                if self.execute(process, &shard, Command::BorderOffer { offer: offer.clone() }, DISPATCHER).is_err() {
                    if let Some(owned) = self.owned(process, &shard) {
                        owned.asking.remove(&incident);
                    }
                    return;
                }
                let call = Call::Reserve { incident_shard: shard.clone(), epoch, reservation, offer };
                let sent = self.call(process, from_shard, call);
                if !sent {
                    let _ = self.execute(process, &shard, Command::BorderWithdraw { offer: offer_id }, DISPATCHER);
                }
                let until = self.now + CALL_TIMEOUT_MS;
                if let Some(owned) = self.owned(process, &shard) {
                    if sent {
                        owned.asking.insert(incident, until);
                    } else {
                        owned.asking.remove(&incident);
                    }
                }
            }
            (Call::Reserve { offer, .. }, Ok(_)) => {
                if let Some(owned) = self.owned(process, &shard) {
                    owned.asking.remove(&offer.incident);
                }
            }
            (Call::Reserve { offer, .. }, Err(_)) => {
                // Refused, or not known to be made: the offer goes.
                let _ = self.execute(process, &shard, Command::BorderWithdraw { offer: offer.id.clone() }, DISPATCHER);
                if let Some(owned) = self.owned(process, &shard) {
                    owned.asking.remove(&offer.incident);
                }
            }
            (Call::Answer { offer, accepted: true, .. }, Ok(Reply::Answered { assigned })) => {
                let Some(owned) = self.owned(process, &shard) else { return };
                owned.answering.remove(&offer);
                if !owned.answers.contains_key(&offer) {
                    return;
                }
                let command = if assigned {
                    Command::BorderConfirm { offer: offer.clone() }
                } else {
                    Command::BorderRelease {
                        offer: offer.clone(),
                        end: ReservationEnd::Refused,
                        reason: "the offer was no longer open at the incident's district".to_owned(),
                    }
                };
                // Kept to be told again when it could not be journaled.
                let journaled = self.execute(process, &shard, command, DISPATCHER);
                let unavailable = journaled.as_ref().is_err_and(|problem| problem.starts_with(UNAVAILABLE));
                if let Some(owned) = self.owned(process, &shard)
                    && !unavailable
                {
                    owned.answers.remove(&offer);
                }
            }
            (Call::Candidates { incident, .. }, Err(_)) => {
                if let Some(owned) = self.owned(process, &shard) {
                    owned.asking.remove(&incident);
                }
            }
            (Call::Answer { offer, .. }, Err(_)) => {
                if let Some(owned) = self.owned(process, &shard) {
                    owned.answering.remove(&offer);
                }
            }
            _ => {}
        }
    }

    // ---- the clients ----

    /// Where a client's command for `shard` is carried out: it tries a
    /// process, follows up to three redirects (the engine's `OtherShard`,
    /// or a standby naming the lease holder), and gives up otherwise.
    fn operator_command(&mut self, command: Command) -> Option<Vec<Event>> {
        let mut process = self.rng.index(self.processes.len());
        for _ in 0..=3 {
            if !self.runs(process) {
                process = self.rng.index(self.processes.len());
                continue;
            }
            let Some(shard) = self.processes[process].owned.keys().next().cloned() else {
                // A standby names the first shard's owner.
                process = self.redis.live_lease(setup::SHARDS[0], self.now).map(|lease| lease.owner)?;
                continue;
            };
            let now = Millis(self.now);
            let owned = self.owned(process, &shard)?;
            match owned.engine.check(&command, now) {
                Err(Rejection::OtherShard { shard: other, .. }) => {
                    process = self.redis.live_lease(&other, self.now).map(|lease| lease.owner)?;
                }
                Err(_) => return None,
                Ok(()) => return self.execute(process, &shard, command, "operator:sim").ok(),
            }
        }
        None
    }

    fn operators(&mut self) {
        if self.faulty() && self.rng.chance(self.per_step(0.5)) {
            let east = self.rng.between(-300, 300) as f64;
            let north = self.rng.between(-300, 300) as f64;
            let spec = IncidentSpec {
                at: setup::near_border(east, north),
                category: "medical".into(),
                priority: 1,
                skills: BTreeSet::new(),
                headcount: self.rng.between(1, 3) as u32,
                description: String::new(),
                source_id: String::new(),
            };
            let created = self.operator_command(Command::CreateIncident { id: None, spec, force: false });
            if let Some(id) = created.and_then(|events| events.first().and_then(|event| event.kind.incident_id().cloned())) {
                self.trace(format!("operator: {id} created"));
            }
        }
        if self.rng.chance(self.per_step(0.3)) {
            // Close an incident somebody works on: its people go free.
            let staffed: Vec<IncidentId> = self
                .checker
                .open_incidents()
                .into_iter()
                .filter(|(_, assigned)| *assigned > 0)
                .map(|(incident, _)| incident)
                .collect();
            if !staffed.is_empty() {
                let incident = staffed[self.rng.index(staffed.len())].clone();
                let command = Command::CloseIncident { incident: incident.clone(), feedback: String::new() };
                if self.operator_command(command).is_some() {
                    self.trace(format!("operator: {incident} closed"));
                }
            }
        }
    }

    /// Each person's app, connected to their home shard's owner: comes
    /// back with its location after a takeover, and answers offers.
    fn people_answer(&mut self) {
        for index in 0..self.people.len() {
            let (agent, at) = self.people[index].clone();
            let shard = setup::home_shard(agent.as_str()).to_owned();
            let Some(owner) = self.redis.live_lease(&shard, self.now).map(|lease| lease.owner) else { continue };
            if !self.runs(owner) || !self.owns(owner, &shard) {
                continue;
            }
            let Some(owned) = self.processes[owner].owned.get(&shard) else { continue };
            let connected = owned.engine.live_agent(&agent).is_some_and(|live| live.connected && live.location.is_some());
            let open = owned.engine.state().agents.get(&agent).and_then(|record| record.open_offer.clone());
            if !connected {
                let _ = self.execute(owner, &shard, Command::Connect { agent: agent.clone() }, "agent");
                let _ = self.execute(owner, &shard, Command::ReportLocation { agent: agent.clone(), at }, "agent");
                continue;
            }
            let Some((offer, _)) = open else { continue };
            let Some((when, choice)) = self.decisions.get(&offer).copied() else {
                let when = self.now + self.rng.between(300, 6_000);
                let roll = self.rng.index(100);
                let choice = match roll {
                    0..60 => Choice::Accept,
                    60..85 => Choice::Decline,
                    _ => Choice::Ignore,
                };
                self.decisions.insert(offer, (when, choice));
                continue;
            };
            if when > self.now {
                continue;
            }
            let command = match choice {
                Choice::Accept => Command::Accept { agent: agent.clone(), offer: offer.clone() },
                Choice::Decline => Command::Decline { agent: agent.clone(), offer: offer.clone(), reason: String::new() },
                Choice::Ignore => continue,
            };
            if self.execute(owner, &shard, command, "agent").is_ok() {
                self.decisions.insert(offer, (i64::MAX, Choice::Ignore));
            }
        }
    }
}
