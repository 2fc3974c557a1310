//! Several dispatchers sharing one Redis: the real `dispatcher` binary with
//! `--store redis://...`, two processes on one real `redis-server` started
//! by the test on a free port. One owns the shard and the other stands by;
//! the owner is killed, paused past its lease, or loses Redis, and whatever
//! was acknowledged must still be there afterwards, with nobody assigned
//! twice and nothing written by a process that lost the shard.
//!
//! The tests run one at a time (they share the machine's two cores with
//! four processes each), and assert no timing but the takeover bound, with
//! a generous margin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_dispatcher::journal::{RedisReader, StoredEvent};
use pingji_dispatcher::lease::{Acquisition, LeaseConfig, ShardLease};
use pingji_dispatcher::locations::read_locations;
use pingji_dispatcher::shard::{RedisShard, ShardId};
use pingji_field_agent::{AgentClient, AgentConfig, AgentEvent, BackoffPolicy, Location};
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::cli::run_pingji;
use pingji_tests::redis::{CreateOutcome as Outcome, steady_creates};
use pingji_tests::redis::{Persistence, RedisServer, SharedDispatcher, SharedStoreOptions, owner_of, serving_status};
use pingji_tests::{
    AgentSession, AreaBox, area_box, available_people, connect_located, pb, sample_city, sample_roster, wait_until,
};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tonic_health::pb::health_check_response::ServingStatus;

/// One test at a time: each runs Redis and two dispatchers. (The Redis
/// fixture is blocking: the tests call it in `block_in_place`.)
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const PROMPTLY: Duration = Duration::from_secs(60);
const PEOPLE: usize = 20;
const INCIDENTS: usize = 500;
const CREATORS: usize = 10;

/// The binary's default lease (the tests do not change it).
fn lease() -> LeaseConfig {
    LeaseConfig::default()
}

/// The takeover bound the tests hold the dispatcher to: the lease's own
/// bound (ttl + one poll) plus recovery, with room for a loaded machine.
fn takeover_limit() -> Duration {
    lease().ttl + Duration::from_secs(5)
}

fn options(dir: &Path, redis: &RedisServer, log: &str) -> anyhow::Result<SharedStoreOptions> {
    Ok(SharedStoreOptions {
        redis_url: redis.url(),
        // The default policy: people here accept at once, no offer times out.
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        // Small, so that a takeover reads a snapshot and then the stream.
        snapshot_every: Some(40),
        lease_ms: None,
        // The whole city as one shard: these tests read its stream.
        shard: Some("city".to_string()),
        log: dir.join(log),
        tls: None,
        photos_dir: None,
    })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as i64).unwrap_or_default()
}

/// A small deterministic generator (xorshift), seeded per run and printed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn point_in(&mut self, area: &AreaBox) -> (f64, f64) {
        let mut fraction = || 0.05 + 0.9 * ((self.next() % 10_000) as f64 / 10_000.0);
        let east = fraction();
        let north = fraction();
        area.at(east, north)
    }
}

fn incident(id: String, (lon, lat): (f64, f64), index: usize) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id,
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "welfare_check".into(),
        priority: 1 + (index % 4) as i32,
        headcount: 1,
        description: "redis store test".into(),
        ..Default::default()
    }
}

/// Reads the shard's whole stream straight from Redis, as an auditor would,
/// and checks that its sequence numbers run 1, 2, 3 ...
async fn stream_events(redis: &RedisServer) -> anyhow::Result<Vec<StoredEvent>> {
    let shard = RedisShard::new(&redis.url(), ShardId::default())?;
    let events = tokio::task::spawn_blocking(move || RedisReader::open(shard).and_then(|reader| reader.read_from(1, usize::MAX)))
        .await??;
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    anyhow::ensure!(seqs == expected, "the stream has gaps or repeats");
    Ok(events)
}

/// The ids of the incidents reported in the shard's Redis stream.
async fn reported_in_stream(redis: &RedisServer) -> anyhow::Result<BTreeSet<String>> {
    Ok(stream_events(redis)
        .await?
        .iter()
        .filter(|event| event.kind == "incident_reported")
        .filter_map(|event| event.incident_id.clone())
        .collect())
}

/// The next `count` acknowledged creates of a steady load; any refusal
/// `when` (e.g. "before the pause") fails the test.
async fn first_acknowledged(outcomes: &mut mpsc::Receiver<Outcome>, count: usize, when: &str) -> anyhow::Result<Vec<String>> {
    let mut acknowledged = Vec::new();
    while acknowledged.len() < count {
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) => acknowledged.push(id),
            Some(other) => anyhow::bail!("a create failed {when}: {other:?}"),
            None => anyhow::bail!("the load stopped early"),
        }
    }
    Ok(acknowledged)
}

/// Who holds the shard's lease, and with which fencing token.
async fn lease_holder(redis: &RedisServer) -> anyhow::Result<Option<(u64, String)>> {
    let shard = RedisShard::new(&redis.url(), ShardId::default())?;
    let reader = ShardLease::new(shard, "reader", "", lease());
    let holder = tokio::task::spawn_blocking(move || reader.holder()).await??;
    Ok(holder.map(|holder| (holder.token, holder.owner_id)))
}

fn last_line(log: &str) -> &str {
    log.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default()
}

/// Polls until `dispatcher` owns the shard; returns how long that took
/// from `since`.
async fn time_takeover(dispatcher: &mut SharedDispatcher, since: Instant) -> anyhow::Result<Duration> {
    dispatcher.wait_owner(Duration::from_secs(60)).await?;
    Ok(since.elapsed())
}

/// Starts one dispatcher, waits until it owns the shard, then a second,
/// and waits until it stands by: `(owner, standby)`.
async fn owner_and_standby(dir: &Path, redis: &RedisServer) -> anyhow::Result<(SharedDispatcher, SharedDispatcher)> {
    let mut owner = SharedDispatcher::start(&options(dir, redis, "owner.log")?).await?;
    owner.wait_owner(PROMPTLY).await?;
    let mut standby = SharedDispatcher::start(&options(dir, redis, "standby.log")?).await?;
    standby.wait_standby(PROMPTLY).await?;
    Ok((owner, standby))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_dispatcher_stands_by_and_sends_clients_to_the_owner() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (mut first, mut second) = owner_and_standby(dir.path(), &redis).await?;
    let answer = second.wait_standby(PROMPTLY).await?;
    let owner = first.address().to_string();
    assert_eq!(owner_of(&answer).as_deref(), Some(owner.as_str()));
    assert_eq!(answer.message(), format!("shard city is owned by the dispatcher at {owner}; connect there"));

    // Every Pingji call is sent on, streams included.
    let standby_channel = second.channel().await?;
    let refused = pingji_tests::commands(standby_channel.clone())
        .create_incident(incident("at-the-standby".into(), (120.0956, 30.2353), 0))
        .await
        .expect_err("a standby does not create incidents");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(owner_of(&refused).as_deref(), Some(owner.as_str()));
    let session = AgentSession::try_open(&mut AgentServiceClient::new(standby_channel), "p0001", "").await;
    let Err(session_refused) = session else {
        panic!("a standby opened a session");
    };
    assert_eq!(session_refused.code(), tonic::Code::Unavailable);
    assert_eq!(owner_of(&session_refused).as_deref(), Some(owner.as_str()));

    // Following the redirect works.
    let owner_address: std::net::SocketAddr = owner.parse()?;
    let mut at_owner = pingji_tests::commands(pingji_tests::connect_with_retry(owner_address, PROMPTLY).await?);
    at_owner.create_incident(incident("at-the-owner".into(), (120.0956, 30.2353), 0)).await?;

    // A clean shutdown releases the lease: the standby takes over at its
    // next poll, without waiting for the lease to run out.
    let stopping = Instant::now();
    first.terminate().await?;
    let exit = first.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "the owner exited with {exit}; log:\n{}", first.log());
    assert!(first.log().contains("shard lease released"), "{}", first.log());
    let handover = time_takeover(&mut second, stopping).await?;
    println!("clean handover after SIGTERM: {} ms", handover.as_millis());
    let mut command = second.command().await?;
    let kept = command.get_incident(pb::GetIncidentRequest { id: "at-the-owner".into() }).await?.into_inner();
    assert_eq!(kept.id, "at-the-owner");
    Ok(())
}

/// Reads a client's events until one matches.
async fn next_matching(
    events: &mut mpsc::Receiver<AgentEvent>,
    what: &str,
    matches: impl Fn(&AgentEvent) -> bool,
) -> anyhow::Result<AgentEvent> {
    let deadline = Instant::now() + PROMPTLY;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if matches(&event) => return Ok(event),
            Ok(Some(event)) => seen.push(event),
            Ok(None) => anyhow::bail!("the session ended waiting for {what}; events: {seen:#?}"),
            Err(_) => anyhow::bail!("no {what} within {PROMPTLY:?}; events: {seen:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_and_a_field_agent_find_the_owner_and_follow_it_through_a_failover() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (mut first, mut second) = owner_and_standby(dir.path(), &redis).await?;
    let first_url = format!("http://{}", first.address());
    let second_url = format!("http://{}", second.address());

    // The console, given only the standby, is sent on to the owner.
    let at = "120.0956,30.2353";
    let created = run_pingji(
        &second_url,
        &[
            "incident",
            "create",
            "--at",
            at,
            "--category",
            "welfare_check",
            "--priority",
            "2",
            "--need",
            "1",
            "--id",
            "via-standby",
        ],
    )
    .await?
    .success()?;
    assert!(created.stdout.contains("via-standby"), "{}", created.stdout);
    let mut at_owner = first.command().await?;
    at_owner.get_incident(pb::GetIncidentRequest { id: "via-standby".into() }).await?;

    // A person's app that lists both dispatchers, the standby first.
    let token = pingji_tests::agent_token(&mut at_owner, "p0001").await?;
    let mut config = AgentConfig::new(format!("{second_url},{first_url}"), "p0001", token);
    config.backoff =
        BackoffPolicy { initial: Duration::from_millis(100), cap: Duration::from_secs(1), healthy_after: Duration::from_secs(1) };
    let (client, mut events) = AgentClient::start(config)?;
    next_matching(&mut events, "a welcome from the owner", |event| matches!(event, AgentEvent::Welcome(_))).await?;
    let (lon, lat) = (120.0958, 30.2354);
    client.report_location(Location { lon, lat })?;
    // The offer for the first incident reaches it (it is the only one connected).
    let offer = next_matching(
        &mut events,
        "the offer of via-standby",
        |event| matches!(event, AgentEvent::Offer(offer) if offer.incident_id.as_str() == "via-standby"),
    )
    .await?;
    let AgentEvent::Offer(offer) = offer else { unreachable!() };

    // The owner dies; the standby takes over; the app reconnects by itself,
    // and the offer, still open, can be accepted at the new owner.
    first.kill().await?;
    second.wait_owner(takeover_limit() + PROMPTLY).await?;
    let welcome =
        next_matching(&mut events, "a welcome from the new owner", |event| matches!(event, AgentEvent::Welcome(_))).await?;
    let AgentEvent::Welcome(welcome) = welcome else { unreachable!() };
    assert!(welcome.resumed, "{welcome:?}");
    client.accept(&offer.offer_id)?;
    next_matching(
        &mut events,
        "the assignment to via-standby",
        |event| matches!(event, AgentEvent::AssignmentConfirmed(confirmed) if confirmed.offer_id == offer.offer_id),
    )
    .await?;

    // The console, given the dead dispatcher first, moves on to the live one.
    let shown =
        run_pingji(&format!("{first_url},{second_url}"), &["incident", "show", "via-standby", "--json"]).await?.success()?;
    let assigned = shown.json()?.to_string();
    assert!(assigned.contains("p0001"), "{assigned}");

    // The new owner keeps p0001's live location in Redis while the session
    // lasts, and deletes it when the session ends.
    let stored_for = |agent: &'static str| {
        let shard = RedisShard::new(&redis.url(), ShardId::default());
        async move {
            let shard = shard?;
            let stored = tokio::task::spawn_blocking(move || read_locations(&shard)).await??;
            anyhow::Ok(stored.iter().any(|location| location.agent.as_str() == agent))
        }
    };
    wait_until(PROMPTLY, "p0001's location in redis", async || stored_for("p0001").await).await?;
    client.close().await;
    wait_until(PROMPTLY, "p0001's location gone from redis", async || Ok(!stored_for("p0001").await?)).await?;
    Ok(())
}

/// An assignment the dispatcher confirmed to a person.
#[derive(Clone, Debug)]
struct Confirmed {
    agent_id: String,
    offer_id: String,
    incident_id: String,
}

/// Accepts every offer and completes each confirmed assignment, until the
/// session ends (the process was killed).
async fn auto_accept(mut session: AgentSession, confirmations: mpsc::Sender<Confirmed>) {
    let _ended: anyhow::Result<()> = async {
        loop {
            match session.next_message_within(Duration::from_secs(60)).await? {
                Incoming::Offer(offer) => session.accept(&offer.offer_id).await?,
                Incoming::AssignmentConfirmed(pb::AssignmentConfirmed { offer: Some(offer) }) => {
                    let record = Confirmed {
                        agent_id: session.agent_id().to_string(),
                        offer_id: offer.offer_id,
                        incident_id: offer.incident_id.clone(),
                    };
                    confirmations.send(record).await?;
                    session.complete(&offer.incident_id, "handled").await?;
                }
                _ => {}
            }
        }
    }
    .await;
}

/// Creates incidents until done or the dispatcher stops answering; returns
/// the ids it acknowledged.
async fn create_incidents(
    mut command: pingji_tests::Commands,
    requests: Vec<pb::CreateIncidentRequest>,
    acknowledged_count: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for request in requests {
        match command.create_incident(request).await {
            Ok(response) => {
                acknowledged.push(response.into_inner().id);
                acknowledged_count.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => break,
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_takes_over_within_the_bound_when_the_owner_is_killed_mid_burst() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let seed = (now_ms() as u64) | 1;
    let mut dice = Dice(seed);
    let kill_after = 80 + (dice.next() % 120) as usize;
    println!("seed {seed}: killing the owner after {kill_after} acknowledged creates");

    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (mut owner, mut standby) = owner_and_standby(dir.path(), &redis).await?;

    let channel = owner.channel().await?;
    let mut command = pingji_tests::commands(channel.clone());
    let community = area_box(&mut command, "d1-s1-c1").await?;
    let people = available_people(&mut command, "d1-s1-c1", PEOPLE).await?;
    anyhow::ensure!(people.len() >= 15, "too few people on duty in d1-s1-c1");

    let (confirmations, mut confirmed_stream) = mpsc::channel(4 * INCIDENTS);
    let mut agent_tasks = Vec::new();
    for id in &people {
        let (lon, lat) = dice.point_in(&community);
        let mut agents = AgentServiceClient::new(channel.clone());
        let session = connect_located(&mut command, &mut agents, id, lon, lat).await?;
        agent_tasks.push(tokio::spawn(auto_accept(session, confirmations.clone())));
    }
    drop(confirmations);

    let mut batches: Vec<Vec<pb::CreateIncidentRequest>> = vec![Vec::new(); CREATORS];
    for index in 0..INCIDENTS {
        let at = dice.point_in(&community);
        batches[index % CREATORS].push(incident(format!("burst-{index:03}"), at, index));
    }
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = batches
        .into_iter()
        .map(|batch| tokio::spawn(create_incidents(pingji_tests::commands(channel.clone()), batch, acknowledged_count.clone())))
        .collect();
    let counting = acknowledged_count.clone();
    wait_until(PROMPTLY, "enough creates are acknowledged", async || Ok(counting.load(Ordering::Relaxed) >= kill_after)).await?;

    let killed_at = Instant::now();
    owner.kill().await?;
    let takeover = time_takeover(&mut standby, killed_at).await?;
    println!(
        "takeover after kill -9: {} ms (lease ttl {} ms, renew every {} ms; limit {} ms)",
        takeover.as_millis(),
        lease().ttl.as_millis(),
        lease().renew_every.as_millis(),
        takeover_limit().as_millis()
    );
    assert!(
        takeover <= takeover_limit(),
        "the standby took {takeover:?} to own the shard; limit {:?}; its log:\n{}",
        takeover_limit(),
        standby.log()
    );

    let mut acknowledged = Vec::new();
    for creator in creators {
        acknowledged.extend(creator.await?);
    }
    for task in agent_tasks {
        task.await?;
    }
    let mut confirmed = Vec::new();
    while let Some(record) = confirmed_stream.recv().await {
        confirmed.push(record);
    }
    println!("acknowledged {} creates and {} assignments before the kill", acknowledged.len(), confirmed.len());

    let mut command = standby.command().await?;
    for id in &acknowledged {
        let found = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await;
        anyhow::ensure!(found.is_ok(), "acknowledged incident {id} is missing on the new owner: {found:?}");
    }
    for record in &confirmed {
        let incident = command.get_incident(pb::GetIncidentRequest { id: record.incident_id.clone() }).await?.into_inner();
        anyhow::ensure!(
            incident
                .assignments
                .iter()
                .any(|assignment| { assignment.agent_id == record.agent_id && assignment.offer_id == record.offer_id }),
            "confirmed assignment {record:?} is missing on the new owner"
        );
    }

    // Nobody holds two open assignments, and people's records agree.
    let incidents = command
        .list_incidents(pb::ListIncidentsRequest { open_only: false, limit: 0, ..Default::default() })
        .await?
        .into_inner()
        .incidents;
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for incident in &incidents {
        let open = ![pb::IncidentStatus::Cancelled as i32, pb::IncidentStatus::Closed as i32].contains(&incident.status);
        for assignment in incident.assignments.iter().filter(|assignment| open && assignment.completed_at_ms == 0) {
            held.entry(assignment.agent_id.clone()).or_default().push(incident.id.clone());
        }
    }
    for (agent, holding) in &held {
        anyhow::ensure!(holding.len() == 1, "{agent} is the current assignee of several open incidents: {holding:?}");
    }
    for id in &people {
        let agent = command.get_agent(pb::GetAgentRequest { id: id.clone() }).await?.into_inner();
        let expected = held.get(id).and_then(|holding| holding.first()).cloned().unwrap_or_default();
        anyhow::ensure!(
            agent.current_incident_id == expected,
            "{id} holds {:?} but the incidents say {expected:?}",
            agent.current_incident_id
        );
    }

    // The people's live locations reached Redis, for the new owner to warm
    // its index from.
    let shard = RedisShard::new(&redis.url(), ShardId::default())?;
    let stored = tokio::task::spawn_blocking(move || read_locations(&shard)).await??;
    for id in &people {
        anyhow::ensure!(stored.iter().any(|location| location.agent.as_str() == id), "{id}'s location is not in redis");
    }

    // The new owner carries on writing after the old one's last event.
    let before = stream_events(&redis).await?.len();
    command.create_incident(incident("after-takeover".into(), dice.point_in(&community), 0)).await?;
    let after = stream_events(&redis).await?;
    anyhow::ensure!(after.len() > before, "the new owner wrote nothing");
    let reported: BTreeSet<&str> =
        after.iter().filter(|event| event.kind == "incident_reported").filter_map(|event| event.incident_id.as_deref()).collect();
    let listed: BTreeSet<&str> = incidents.iter().map(|incident| incident.id.as_str()).collect();
    anyhow::ensure!(listed.is_subset(&reported), "incidents the new owner lists are not all in the stream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_paused_past_its_lease_is_fenced_and_steps_down() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (mut old_owner, mut successor) = owner_and_standby(dir.path(), &redis).await?;

    let channel = old_owner.channel().await?;
    let mut command = pingji_tests::commands(channel.clone());
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    for index in 0..5 {
        command.create_incident(incident(format!("before-{index}"), grid.centre(), index)).await?;
    }

    // Frozen (a long GC pause, a stopped VM) with requests on their way.
    let paused_at = Instant::now();
    old_owner.pause().await?;
    let attempts: Vec<_> = (0..5)
        .map(|index| {
            let mut command = pingji_tests::commands(channel.clone());
            let request = incident(format!("paused-{index}"), grid.centre(), index);
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(60), command.create_incident(request)).await })
        })
        .collect();

    let takeover = time_takeover(&mut successor, paused_at).await?;
    println!("takeover from a paused owner: {} ms (limit {} ms)", takeover.as_millis(), takeover_limit().as_millis());
    assert!(takeover <= takeover_limit(), "took {takeover:?}; log:\n{}", successor.log());
    let mut at_successor = successor.command().await?;
    at_successor.create_incident(incident("after-takeover".into(), grid.centre(), 0)).await?;

    // Woken up, the old owner finds itself fenced and steps down.
    old_owner.resume().await?;
    let exit = old_owner.wait_exit(PROMPTLY).await?;
    let log = old_owner.log();
    assert!(!exit.success(), "the old owner exited with {exit}; log:\n{log}");
    println!("the old owner's last words: {}", last_line(&log));
    assert!(
        log.contains("another dispatcher took over shard city with token ") && log.contains("must stop"),
        "the old owner's log does not say it was fenced:\n{log}"
    );
    for attempt in attempts {
        let answer = attempt.await?;
        assert!(
            !matches!(answer, Ok(Ok(_))),
            "a create sent to the paused owner was acknowledged: {answer:?}\n\
             old owner's log:\n{log}\nsuccessor's log:\n{}",
            successor.log()
        );
    }

    // Nothing the old owner tried after the takeover is in the stream.
    let events = stream_events(&redis).await?;
    let paused: Vec<_> =
        events.iter().filter(|event| event.incident_id.as_deref().is_some_and(|id| id.starts_with("paused-"))).collect();
    assert!(paused.is_empty(), "written after the takeover: {paused:?}");
    for id in ["before-0", "before-4", "after-takeover"] {
        assert!(
            events.iter().any(|event| event.kind == "incident_reported" && event.incident_id.as_deref() == Some(id)),
            "{id} is not in the stream"
        );
    }
    let listed =
        at_successor.list_incidents(pb::ListIncidentsRequest { limit: 0, ..Default::default() }).await?.into_inner().incidents;
    assert!(
        listed.iter().all(|incident| !incident.id.starts_with("paused-")),
        "the new owner lists an incident sent to the paused one"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposed_owner_cannot_write_and_steps_down_at_its_first_write() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    // A long lease renewed rarely: the owner will not notice by renewing
    // that it lost the shard, only by writing.
    let options = SharedStoreOptions { lease_ms: Some((60_000, 20_000)), ..options(dir.path(), &redis, "deposed.log")? };
    let mut owner = SharedDispatcher::start(&options).await?;
    owner.wait_owner(PROMPTLY).await?;
    let mut command = owner.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    command.create_incident(incident("while-owning".into(), grid.centre(), 0)).await?;

    // Behind its back, its lease goes (as if it had run out while the owner
    // was paused) and another process takes the shard.
    tokio::task::block_in_place(|| redis.execute(&["DEL", "pingji:{city}:lease"]))?;
    let shard = RedisShard::new(&redis.url(), ShardId::default())?;
    let thief = ShardLease::new(shard, "another", "127.0.0.1:9", LeaseConfig::default());
    let taken = tokio::task::spawn_blocking(move || thief.try_acquire()).await??;
    let Acquisition::Acquired { token: stolen } = taken else {
        panic!("the lease was not free: {taken:?}");
    };

    let refused = command
        .create_incident(incident("after-deposed".into(), grid.centre(), 1))
        .await
        .expect_err("a deposed owner cannot acknowledge a write");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let exit = owner.wait_exit(PROMPTLY).await?;
    let log = owner.log();
    assert!(!exit.success(), "exited with {exit}; log:\n{log}");
    println!("the deposed owner's last words: {}", last_line(&log));
    assert!(
        log.contains(&format!(
            "the dispatcher owner stopped; stepping down: another dispatcher took over shard city with token {stolen}; \
             this one (token "
        )),
        "the log does not say the append was fenced:\n{log}"
    );
    let events = stream_events(&redis).await?;
    assert!(events.iter().any(|event| event.incident_id.as_deref() == Some("while-owning")));
    assert!(events.iter().all(|event| event.incident_id.as_deref() != Some("after-deposed")), "a fenced write is in the stream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_under_load_refuses_writes_cleanly_then_the_service_comes_back() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir(&redis_dir)?;
    let mut redis = tokio::task::block_in_place(|| RedisServer::start_with(&redis_dir, Persistence::AppendFsyncAlways))?;
    let mut dispatcher = SharedDispatcher::start(&options(dir.path(), &redis, "dispatcher.log")?).await?;
    dispatcher.wait_owner(PROMPTLY).await?;
    let mut command = dispatcher.command().await?;
    let grid = area_box(&mut command, "d2-s1-c1-g1").await?;

    let (outcome_sender, mut outcomes) = mpsc::channel(100_000);
    let (stop_load, load_stop) = tokio::sync::watch::channel(false);
    let at = grid.centre();
    let load =
        tokio::spawn(steady_creates(dispatcher.address(), move |id, index| incident(id, at, index), outcome_sender, load_stop));
    let before = first_acknowledged(&mut outcomes, 20, "before redis went away").await?;

    // Redis dies. The dispatcher's next write fails and is refused with
    // `unavailable`; the process stays up, refusing writes and answering
    // reads from memory.
    tokio::task::block_in_place(|| redis.kill());
    let mut probe = dispatcher.command().await?;
    let mut down_answer = None;
    wait_until(PROMPTLY, "a create refused because redis is unreachable", async || {
        let id = format!("probe-{}", now_ms());
        let answer = probe.create_incident(incident(id.clone(), grid.centre(), 0)).await;
        if let Err(status) = &answer
            && status.code() == tonic::Code::Unavailable
            && status.message().contains("cannot be reached")
        {
            down_answer = Some((id, status.message().to_owned()));
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    let (refused_id, down_answer) = down_answer.unwrap_or_default();
    println!("a write while redis is down: {down_answer}");
    // Not ready (gRPC health) while writes are refused.
    let mut health = tonic_health::pb::health_client::HealthClient::new(dispatcher.channel().await?);
    wait_until(PROMPTLY, "health NOT_SERVING while redis is down", async || {
        Ok(serving_status(&mut health, "pingji.v1.CommandService").await == Some(ServingStatus::NotServing))
    })
    .await?;
    // The refused create changed nothing.
    let unknown = probe.get_incident(pb::GetIncidentRequest { id: refused_id.clone() }).await;
    assert_eq!(unknown.map_err(|status| status.code()).err(), Some(tonic::Code::NotFound), "{refused_id} was refused but exists");
    let read = probe.get_incident(pb::GetIncidentRequest { id: before[0].clone() }).await?.into_inner();
    assert_eq!(read.id, before[0], "reads are served from memory while redis is down");
    let listed = probe.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner();
    assert!(listed.incidents.len() >= before.len(), "{} incidents listed while redis is down", listed.incidents.len());
    // Past the lease's ttl too: Redis out of reach is no reason to stop.
    tokio::time::sleep(lease().ttl + Duration::from_secs(1)).await;
    assert!(!dispatcher.has_exited(), "the dispatcher stopped while redis was down:\n{}", dispatcher.log());
    probe.get_incident(pb::GetIncidentRequest { id: before[0].clone() }).await?;

    // Redis comes back from its append-only file; the same process takes
    // its lease back (nobody else took it), and creates succeed again.
    let restarted_at = Instant::now();
    tokio::task::block_in_place(|| redis.restart())?;
    let mut gap = Vec::new();
    let mut after = Vec::new();
    let mut acknowledged: Vec<String> = before.clone();
    while after.len() < 10 {
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) if !gap.is_empty() => {
                acknowledged.push(id.clone());
                after.push(id);
            }
            Some(Outcome::Acknowledged(id)) => acknowledged.push(id),
            Some(Outcome::Refused(code, message)) => gap.push((code, message)),
            None => anyhow::bail!("the load stopped early: {:?}", load.await),
        }
    }
    let _ = stop_load.send(true);
    load.await??;
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Acknowledged(id) = outcome {
            acknowledged.push(id);
        }
    }
    println!(
        "{} creates acknowledged before the gap, {} refused during it ({:?}), {} acknowledged after",
        before.len(),
        gap.len(),
        gap.iter().map(|(code, _)| format!("{code:?}")).collect::<BTreeSet<_>>(),
        after.len()
    );
    assert!(!gap.is_empty(), "no create was refused while redis was down");
    // `unavailable` from the dispatcher, or from the client's transport when
    // the process was down. A request racing the close of its connection
    // (the process stepping down, or a standby handing over to the owner it
    // became) is never sent, and the client reports hyper's "operation was
    // canceled": not processed, retried like `unavailable`.
    let clean = |(code, message): &(tonic::Code, String)| {
        *code == tonic::Code::Unavailable || (*code == tonic::Code::Cancelled && message.contains("operation was canceled"))
    };
    assert!(gap.iter().all(clean), "refusals during the gap were not all `unavailable`: {gap:?}");

    println!("serving writes again {} ms after redis restarted", restarted_at.elapsed().as_millis());
    assert!(!dispatcher.has_exited(), "the dispatcher stopped:\n{}", dispatcher.log());
    assert!(dispatcher.log().contains("writes resume"), "{}", dispatcher.log());
    wait_until(PROMPTLY, "health SERVING again", async || {
        Ok(serving_status(&mut health, "pingji.v1.CommandService").await == Some(ServingStatus::Serving))
    })
    .await?;

    // Every acknowledged create is in the shared record: a process
    // recovering from Redis alone (an auditor's read of the stream) sees it.
    let journaled = reported_in_stream(&redis).await?;
    let mut command = dispatcher.command().await?;
    for id in &acknowledged {
        let found = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await;
        anyhow::ensure!(found.is_ok(), "acknowledged incident {id} is missing after redis restarted: {found:?}");
        anyhow::ensure!(journaled.contains(id), "acknowledged incident {id} is not in the redis stream");
    }
    Ok(())
}

/// Redis paused (SIGSTOP) for less than the lease's ttl, under load and
/// with a person's session open: the dispatcher keeps its sessions and its
/// lease, reads are served from memory throughout, a write made during the
/// pause either waits for Redis and is acknowledged or is refused with
/// `unavailable` (and a RetryInfo saying when to try again), and writes go
/// through once Redis runs again. Nothing acknowledged is lost; nobody else
/// became owner (the fencing token is the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_pause_shorter_than_the_lease_keeps_sessions_and_loses_nothing() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir(&redis_dir)?;
    let redis = tokio::task::block_in_place(|| RedisServer::start_with(&redis_dir, Persistence::AppendFsyncAlways))?;
    let pid = redis.pid().ok_or_else(|| anyhow::anyhow!("redis-server has no pid"))?.to_string();
    let mut dispatcher = SharedDispatcher::start(&options(dir.path(), &redis, "dispatcher.log")?).await?;
    dispatcher.wait_owner(PROMPTLY).await?;
    let owner_before = lease_holder(&redis).await?;
    let mut command = dispatcher.command().await?;
    let grid = area_box(&mut command, "d2-s1-c1-g1").await?;
    let person = available_people(&mut command, "d2-s1-c1-g1", 1).await?.remove(0);
    let (lon, lat) = grid.centre();
    let mut session =
        connect_located(&mut command, &mut AgentServiceClient::new(dispatcher.channel().await?), &person, lon, lat).await?;

    let (outcome_sender, mut outcomes) = mpsc::channel(100_000);
    let (stop_load, load_stop) = tokio::sync::watch::channel(false);
    let at = grid.centre();
    let load =
        tokio::spawn(steady_creates(dispatcher.address(), move |id, index| incident(id, at, index), outcome_sender, load_stop));
    let mut acknowledged = first_acknowledged(&mut outcomes, 20, "before the pause").await?;

    // The pause: two thirds of the lease's ttl.
    let pause = lease().ttl * 2 / 3;
    let stop = std::process::Command::new("kill").args(["-STOP", &pid]).status()?;
    anyhow::ensure!(stop.success(), "cannot pause redis-server");
    let paused_at = Instant::now();
    let mut probe = dispatcher.command().await?;
    let read = probe.get_incident(pb::GetIncidentRequest { id: acknowledged[0].clone() }).await?.into_inner();
    assert_eq!(read.id, acknowledged[0], "a read during the pause is served from memory");
    let write = tokio::spawn({
        let mut probe = dispatcher.command().await?;
        async move { probe.create_incident(incident("during-pause".into(), (lon, lat), 0)).await }
    });
    tokio::time::sleep(pause.saturating_sub(paused_at.elapsed())).await;
    let resumed = std::process::Command::new("kill").args(["-CONT", &pid]).status()?;
    anyhow::ensure!(resumed.success(), "cannot resume redis-server");
    let resumed_at = Instant::now();
    match write.await? {
        Ok(created) => acknowledged.push(created.into_inner().id),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::Unavailable, "a write during the pause: {status:?}");
            let retry = pingji_client::errors::retry_after(&status);
            assert!(retry.is_some(), "the refusal says when to try again: {status:?}");
        }
    }

    // Writes go through again; the session is still open.
    let mut after = 0;
    let mut refused = Vec::new();
    while after < 10 {
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) => {
                after += 1;
                acknowledged.push(id);
            }
            Some(Outcome::Refused(code, message)) => refused.push((code, message)),
            None => anyhow::bail!("the load stopped early: {:?}", load.await),
        }
    }
    let _ = stop_load.send(true);
    load.await??;
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Acknowledged(id) = outcome {
            acknowledged.push(id);
        }
    }
    println!(
        "redis paused {} ms: {} creates refused ({:?}), writes through again {} ms after it resumed",
        pause.as_millis(),
        refused.len(),
        refused.iter().map(|(code, _)| format!("{code:?}")).collect::<BTreeSet<_>>(),
        resumed_at.elapsed().as_millis()
    );
    assert!(
        refused.iter().all(|(code, _)| *code == tonic::Code::Unavailable),
        "refusals were not all `unavailable`: {refused:?}"
    );
    session.send_location(lon, lat).await?;
    let agent = command.get_agent(pb::GetAgentRequest { id: person.clone() }).await?.into_inner();
    assert!(agent.connected, "the session outlived the pause");
    // The stream is still open (the person is being offered the load's incidents).
    loop {
        match session.next_message_within(Duration::from_millis(500)).await {
            Ok(_) => continue,
            Err(error) if error.to_string().contains("received no message") => break,
            Err(error) => anyhow::bail!("the session did not outlive the pause: {error:#}"),
        }
    }
    assert!(!dispatcher.has_exited(), "the dispatcher stopped:\n{}", dispatcher.log());
    assert_eq!(lease_holder(&redis).await?, owner_before, "the same owner, with the same fencing token");

    let journaled = reported_in_stream(&redis).await?;
    for id in &acknowledged {
        anyhow::ensure!(journaled.contains(id), "acknowledged incident {id} is not in the redis stream");
    }
    Ok(())
}

/// A failover to a replica under load, as Sentinel makes one: the replica
/// is promoted (`REPLICAOF NO ONE`) and the old primary demoted to follow
/// it. The old owner, still connected to the old primary, can write no more
/// (a replica refuses writes): its creates are refused with `unavailable`
/// and none is acknowledged after the promotion. A dispatcher on the
/// promoted replica takes the shard once the replicated lease runs out,
/// with a larger fencing token, and writes there. What the old owner
/// acknowledged is in the new primary's stream unless it was acknowledged
/// within the replication lag before the promotion: that is what a failover
/// to a replica can lose, and the test prints it. The demoted primary
/// replicates the new token, so the old owner steps down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_promoted_under_load_fences_the_old_owner_and_serves_on() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let (primary_dir, replica_dir) = (dir.path().join("primary"), dir.path().join("replica"));
    std::fs::create_dir(&primary_dir)?;
    std::fs::create_dir(&replica_dir)?;
    let primary = tokio::task::block_in_place(|| RedisServer::start_with(&primary_dir, Persistence::AppendFsyncAlways))?;
    let replica = tokio::task::block_in_place(|| RedisServer::start_with(&replica_dir, Persistence::AppendFsyncAlways))?;
    let primary_port = primary.port().to_string();
    tokio::task::block_in_place(|| replica.execute(&["REPLICAOF", "127.0.0.1", &primary_port]))?;
    let mut old_owner = SharedDispatcher::start(&options(dir.path(), &primary, "old-owner.log")?).await?;
    old_owner.wait_owner(PROMPTLY).await?;
    let (old_token, _) = lease_holder(&primary).await?.ok_or_else(|| anyhow::anyhow!("no lease on the primary"))?;
    let mut command = old_owner.command().await?;
    let grid = area_box(&mut command, "d2-s1-c1-g1").await?;
    wait_until(PROMPTLY, "the replica follows the primary", async || {
        Ok(lease_holder(&replica).await.ok().flatten().is_some_and(|(token, _)| token == old_token))
    })
    .await?;

    let (outcome_sender, mut outcomes) = mpsc::channel(100_000);
    let (stop_load, load_stop) = tokio::sync::watch::channel(false);
    let at = grid.centre();
    let load =
        tokio::spawn(steady_creates(old_owner.address(), move |id, index| incident(id, at, index), outcome_sender, load_stop));
    let mut before = first_acknowledged(&mut outcomes, 30, "before the failover").await?;

    // The failover.
    let replica_port = replica.port().to_string();
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        replica.execute(&["REPLICAOF", "NO", "ONE"])?;
        primary.execute(&["REPLICAOF", "127.0.0.1", &replica_port])
    })?;
    // Answers to creates sent before the promotion may still arrive; after
    // a refusal, nothing more may be acknowledged by the old owner.
    let mut refused = Vec::new();
    let mut acknowledged_after_refusal = Vec::new();
    let promoted_at = Instant::now();
    while refused.len() < 5 {
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) if refused.is_empty() => before.push(id),
            Some(Outcome::Acknowledged(id)) => acknowledged_after_refusal.push(id),
            Some(Outcome::Refused(code, message)) => refused.push((code, message)),
            None => anyhow::bail!("the load stopped early: {:?}", load.await),
        }
    }
    let _ = stop_load.send(true);
    load.await??;
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Acknowledged(id) = outcome {
            acknowledged_after_refusal.push(id);
        }
    }
    assert!(
        acknowledged_after_refusal.is_empty(),
        "the old owner acknowledged after the failover: {acknowledged_after_refusal:?}"
    );
    assert!(refused.iter().all(|(code, _)| *code == tonic::Code::Unavailable), "refusals: {refused:?}");

    // A dispatcher on the promoted replica takes the shard, with a larger token.
    let mut new_owner = SharedDispatcher::start(&options(dir.path(), &replica, "new-owner.log")?).await?;
    new_owner.wait_owner(takeover_limit() + PROMPTLY).await?;
    let taken_after = promoted_at.elapsed();
    let (new_token, _) = lease_holder(&replica).await?.ok_or_else(|| anyhow::anyhow!("no lease on the new primary"))?;
    assert!(new_token > old_token, "the new owner's token {new_token} is above the old {old_token}");
    let mut command = new_owner.command().await?;
    let created = command.create_incident(incident("after-failover".into(), grid.centre(), 0)).await?.into_inner();

    let journaled = reported_in_stream(&replica).await?;
    assert!(journaled.contains(&created.id), "the new owner's create is in the new primary's stream");
    // The demoted primary follows the new one, so the old owner's next
    // fence check sees the new token: it steps down.
    old_owner.wait_exit(PROMPTLY).await?;
    assert!(old_owner.log().contains("another dispatcher took over"), "{}", old_owner.log());
    let lost: Vec<&String> = before.iter().filter(|id| !journaled.contains(*id)).collect();
    println!(
        "failover to a replica: {} creates acknowledged before it, {} of them not replicated (lost): {lost:?}; the new owner \
         served {} ms after the promotion",
        before.len(),
        lost.len(),
        taken_after.as_millis()
    );
    Ok(())
}

/// `drill live` given both dispatchers keeps going through a kill -9 of
/// the owner: its operator calls and its event watch follow the shard to
/// the new owner (incidents carry the run's ids, so a retried create is not
/// made twice), and its people's sessions reconnect there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_drill_follows_the_owner_through_a_failover() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (mut owner, mut standby) = owner_and_standby(dir.path(), &redis).await?;
    let drill_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/smoke.toml");
    let mut drill = pingji_scenarios::drill::load(&drill_path).map_err(anyhow::Error::msg)?;
    // The timeline ends at 11 min (the burst); what this test checks is
    // over by 15 min of drill time, so the run stops there (15 s, not 30).
    drill.file.duration_s = 900;
    let out = tempfile::tempdir()?;
    let mut options =
        pingji_scenarios::live::LiveOptions::new(&format!("{},{}", standby.url(), owner.url()), Some(pingji_tests::ADMIN_TOKEN))?;
    options.speed = 60.0;
    let run = pingji_scenarios::live::run(&drill, &options, out.path(), |_| {});
    tokio::pin!(run);
    // The burst of incidents runs from 6 to 11 s of the run at speed 60:
    // the owner dies in the middle of it.
    let killed_at = Instant::now() + Duration::from_millis(7_500);
    let mut killed = false;
    let report = loop {
        tokio::select! {
            report = &mut run => break report?,
            () = tokio::time::sleep_until(killed_at), if !killed => {
                killed = true;
                owner.kill().await?;
                let took = time_takeover(&mut standby, Instant::now()).await?;
                println!("the standby took over {took:?} after the kill");
            }
        }
    };
    assert!(killed && owner.has_exited(), "the owner was killed during the run");
    assert_eq!(report.totals.incidents, 8, "every incident of the timeline was created, across the failover");
    let mut command = standby.command().await?;
    let incidents =
        command.list_incidents(pb::ListIncidentsRequest { limit: 100, ..Default::default() }).await?.into_inner().incidents;
    assert_eq!(incidents.len(), 8, "none twice: {:?}", incidents.iter().map(|incident| &incident.id).collect::<Vec<_>>());
    assert!(incidents.iter().all(|incident| incident.id.starts_with("drill-")));
    Ok(())
}
