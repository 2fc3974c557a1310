//! Across district borders (docs/redis.md, "Across borders"): dispatcher
//! processes owning d1 and d2 of the sample city on one redis-server
//! (started by the test on a free port). A d1 incident 50 m from the d2
//! border, both districts at grade II, is offered to a nearer d2 person
//! through d2's owner, who reserves, offers and reports the answer; a busy
//! d2 person is not offered; a d2 owner killed mid-offer leaves no
//! reservation and the incident is staffed from d1; an old d1 owner's
//! reservation is refused after a takeover. A city-wide plan import,
//! activation and call-up asked at one shard reach both, with one roll-call.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pingji_dispatcher::lease::{LeaseConfig, ShardLease};
use pingji_dispatcher::server::border::PEER_METADATA;
use pingji_dispatcher::server::sharding::Sharding;
use pingji_dispatcher::shard::{RedisShard, ShardId};
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_proto::v1::shard_service_client::ShardServiceClient;
use pingji_tests::cli::run_pingji;
use pingji_tests::events::EventWatch;
use pingji_tests::redis::{RedisServer, SharedDispatcher, SharedStoreOptions};
use pingji_tests::tls::TestPki;
use pingji_tests::{AgentSession, Commands, sample_city, sample_roster};
use tokio::time::Instant;

/// The d1/d2 border of the sample city runs along this longitude.
const BORDER_LON: f64 = 120.154038;
const LAT: f64 = 30.26;
/// Degrees of longitude per metre at the sample city's latitude.
const LON_PER_M: f64 = 1.0 / (111_320.0 * 0.8638);
/// How long a takeover, a border round trip or an expiry may take on a
/// loaded machine.
const WITHIN: Duration = Duration::from_secs(20);

/// 50 m inside d1 from the border.
fn near_border() -> (f64, f64) {
    (BORDER_LON - 50.0 * LON_PER_M, LAT)
}

/// `metres` east of the border (negative: west, in d1).
fn east_of_border(metres: f64) -> (f64, f64) {
    (BORDER_LON + metres * LON_PER_M, LAT)
}

fn options(dir: &Path, redis: &RedisServer, shard: &str, log: &str, policy: &Path) -> SharedStoreOptions {
    SharedStoreOptions {
        redis_url: redis.url(),
        policy: Some(policy.to_path_buf()),
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        lease_ms: Some((2000, 500)),
        shard: Some(shard.to_string()),
        log: dir.join(log),
        tls: None,
        photos_dir: None,
    }
}

/// Offers at grade II time out after `offer_timeout_s`; people on a task
/// check in safe every 30 minutes.
fn policy(dir: &Path, offer_timeout_s: u64) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("policy-{offer_timeout_s}.toml"));
    let check_ins = "[safety.interval_min]\nII = 30\n";
    std::fs::write(&path, format!("staffing_check_s = 0\n{check_ins}[emergency_ii]\noffer_timeout_s = {offer_timeout_s}\n"))?;
    Ok(path)
}

async fn start_owner(options: &SharedStoreOptions) -> anyhow::Result<SharedDispatcher> {
    let mut dispatcher = SharedDispatcher::start(options).await?;
    dispatcher.wait_owner(WITHIN).await?;
    Ok(dispatcher)
}

/// The owners of d1 and d2, both at grade II, and a client of each; offers
/// time out after `offer_timeout_s`.
async fn owners_at_grade_ii(
    dir: &Path,
    redis: &RedisServer,
    offer_timeout_s: u64,
) -> anyhow::Result<(SharedDispatcher, SharedDispatcher, Commands, Commands)> {
    let policy = policy(dir, offer_timeout_s)?;
    let east = start_owner(&options(dir, redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir, redis, "d2", "d2.log", &policy)).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);
    grade_ii(&mut at_east, "d1").await?;
    grade_ii(&mut at_west, "d2").await?;
    Ok((east, west, at_east, at_west))
}

async fn grade_ii(command: &mut Commands, area: &str) -> anyhow::Result<()> {
    command
        .set_mode(pb::SetModeRequest { area_id: area.into(), mode: pb::Mode::EmergencyIi as i32, reason: "typhoon".into() })
        .await?;
    Ok(())
}

async fn person_at(
    dispatcher: &SharedDispatcher,
    command: &mut Commands,
    id: &str,
    (lon, lat): (f64, f64),
) -> anyhow::Result<AgentSession> {
    let token = pingji_tests::agent_token(command, id).await?;
    let mut client = AgentServiceClient::new(dispatcher.channel().await?);
    let session = AgentSession::open(&mut client, id, &token).await?;
    session.send_location(lon, lat).await?;
    Ok(session)
}

async fn create(command: &mut Commands, id: &str, (lon, lat): (f64, f64)) -> anyhow::Result<()> {
    command
        .create_incident(pb::CreateIncidentRequest {
            id: id.to_string(),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "welfare_check".into(),
            priority: 2,
            headcount: 1,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// The next offer `session` receives, skipping other messages.
async fn next_offer(session: &mut AgentSession, within: Duration) -> anyhow::Result<pb::Offer> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Incoming::Offer(offer) = session.next_message_within(left).await? {
            return Ok(offer);
        }
    }
}

/// Polls until `incident` at `command` holds `agent`.
async fn wait_assigned(command: &mut Commands, incident: &str, agent: &str) -> anyhow::Result<pb::Incident> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let found = command.get_incident(pb::GetIncidentRequest { id: incident.into() }).await?.into_inner();
        if found.assignments.iter().any(|held| held.agent_id == agent) {
            return Ok(found);
        }
        anyhow::ensure!(Instant::now() < deadline, "{incident} never assigned to {agent}: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_status(command: &mut Commands, id: &str) -> anyhow::Result<i32> {
    let agent = command.get_agent(pb::GetAgentRequest { id: id.into() }).await?.into_inner();
    Ok(agent.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_border_incident_is_offered_to_a_nearer_neighbour_and_a_busy_one_is_not() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (east, west, mut at_east, mut at_west) = owners_at_grade_ii(dir.path(), &redis, 60).await?;
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    let mut east_events = EventWatch::start(&mut at_east, 1).await?;

    // p0001 (d1, walks) 300 m inside d1; p0161 (d2, bike) 45 m inside d2.
    let mut near_east = person_at(&east, &mut at_east, "p0001", east_of_border(-350.0)).await?;
    let mut across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;

    create(&mut at_east, "border-1", near_border()).await?;
    let own = next_offer(&mut near_east, WITHIN).await?;
    assert_eq!(own.incident_id, "border-1");
    let offer = next_offer(&mut across, WITHIN).await?;
    assert_eq!(offer.incident_id, "border-1", "{offer:?}");
    assert_eq!(offer.category, "welfare_check");
    assert!(offer.eta_s < own.eta_s, "the neighbour is nearer: {offer:?} vs {own:?}");

    // Reserved and offered at home; the incident's shard offered it from d2.
    let reserved = west_events.wait_for_kind(WITHIN, "border_reserved", "border-1").await?;
    let Some(pb::event::Body::BorderReserved(reserved)) = reserved.body else { anyhow::bail!("{reserved:?}") };
    assert_eq!((reserved.agent_id.as_str(), reserved.incident_shard.as_str()), ("p0161", "d1"));
    let sent = east_events
        .wait_for(WITHIN, "the border offer at d1", |event| event.kind == "offer_sent" && event.agent_id == "p0161")
        .await?;
    let Some(pb::event::Body::OfferSent(sent)) = sent.body else { anyhow::bail!("{sent:?}") };
    assert_eq!(sent.from_area_id, "d2", "{sent:?}");

    across.accept(&offer.offer_id).await?;
    let staffed = wait_assigned(&mut at_east, "border-1", "p0161").await?;
    assert_eq!(staffed.status, pb::IncidentStatus::Staffed as i32, "{staffed:?}");
    assert_eq!(staffed.assignments.len(), 1, "nobody else holds it: {staffed:?}");
    west_events.wait_for_kind(WITHIN, "border_confirmed", "border-1").await?;
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Busy as i32);
    // The d1 person's offer was withdrawn: filled.
    east_events
        .wait_for(WITHIN, "p0001's offer withdrawn", |event| event.kind == "offer_withdrawn" && event.agent_id == "p0001")
        .await?;

    // p0161 holds border-1: a second incident at the border is not offered
    // to them, but to the d1 person.
    create(&mut at_east, "border-2", near_border()).await?;
    let second = next_offer(&mut near_east, WITHIN).await?;
    assert_eq!(second.incident_id, "border-2");
    if let Ok(Incoming::Offer(offer)) = across.next_message_within(Duration::from_secs(3)).await {
        anyhow::bail!("a busy person was offered {offer:?}");
    }
    near_east.accept(&second.offer_id).await?;
    wait_assigned(&mut at_east, "border-2", "p0001").await?;
    let twice = west_events.seen().iter().filter(|event| event.kind == "border_reserved").count();
    assert_eq!(twice, 1, "one reservation only: {:?}", west_events.seen().iter().map(|event| &event.kind).collect::<Vec<_>>());

    // The incident ends at d1: the d2 person is free again at home.
    at_east.close_incident(pb::CloseIncidentRequest { id: "border-1".into(), feedback: "resolved".into() }).await?;
    let released = west_events.wait_for_kind(WITHIN, "border_released", "border-1").await?;
    let Some(pb::event::Body::BorderReleased(released)) = released.body else { anyhow::bail!("{released:?}") };
    assert_eq!(released.end, "ended");
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Available as i32);
    Ok(())
}

/// An incident held for the batch window (another opened it) is offered
/// to its own people first; a neighbour's person who is farther is not
/// reserved meanwhile (before, the border offer went out during the window
/// and, taken at once, won against a nearer person of the district).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incident_waiting_for_the_batch_window_is_offered_at_home_first() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (east, west, mut at_east, mut at_west) = owners_at_grade_ii(dir.path(), &redis, 60).await?;
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    // p0001 (d1) 10 m from the incident; p0161 (d2) 95 m from it.
    let mut near_east = person_at(&east, &mut at_east, "p0001", east_of_border(-60.0)).await?;
    let mut across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;

    // An incident nobody can take opens the batch window; the border
    // incident reported just after waits for its matching.
    let (lon, lat) = east_of_border(-3000.0);
    let opener = pb::CreateIncidentRequest {
        id: "opener".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "diving".into(),
        priority: 3,
        headcount: 1,
        required_skills: vec!["diver".into()],
        force: true,
        ..Default::default()
    };
    at_east.create_incident(opener).await?;
    create(&mut at_east, "border-11", near_border()).await?;
    let own = next_offer(&mut near_east, WITHIN).await?;
    assert_eq!(own.incident_id, "border-11", "{own:?}");
    near_east.accept(&own.offer_id).await?;
    wait_assigned(&mut at_east, "border-11", "p0001").await?;
    if let Ok(Incoming::Offer(offer)) = across.next_message_within(Duration::from_secs(3)).await {
        anyhow::bail!("the farther person across the border was offered {offer:?}");
    }
    while west_events.next_within(Duration::from_millis(500)).await.is_ok() {}
    let reserved = west_events.seen().iter().filter(|event| event.kind == "border_reserved").count();
    assert_eq!(reserved, 0, "nobody reserved across the border");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_neighbour_killed_mid_offer_leaves_no_reservation_and_the_incident_is_staffed_at_home() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let (east, mut west, mut at_east, mut at_west) = owners_at_grade_ii(dir.path(), &redis, 4).await?;

    let mut across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;
    create(&mut at_east, "border-3", near_border()).await?;
    let offer = next_offer(&mut across, WITHIN).await?;
    assert_eq!(offer.incident_id, "border-3");

    // d2's owner dies before the person answers.
    west.kill().await?;
    // The d1 person comes on: offered the incident once d1's offer to the
    // d2 person timed out, and staffs it.
    let mut near_east = person_at(&east, &mut at_east, "p0001", east_of_border(-350.0)).await?;
    let own = next_offer(&mut near_east, WITHIN).await?;
    assert_eq!(own.incident_id, "border-3");
    near_east.accept(&own.offer_id).await?;
    let staffed = wait_assigned(&mut at_east, "border-3", "p0001").await?;
    assert_eq!(staffed.assignments.len(), 1, "{staffed:?}");

    // d2 comes back: the reservation nobody settled is released once it
    // expires, and the person is free.
    west.restart().await?;
    west.wait_owner(WITHIN).await?;
    let mut at_west = west.command().await?;
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    let released = west_events.wait_for_kind(WITHIN, "border_released", "border-3").await?;
    let Some(pb::event::Body::BorderReleased(released)) = released.body else { anyhow::bail!("{released:?}") };
    assert!(released.end == "expired" || released.end == "withdrawn", "{released:?}");
    let agent = at_west.get_agent(pb::GetAgentRequest { id: "p0161".into() }).await?.into_inner();
    assert!(agent.current_incident_id.is_empty(), "{agent:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_owner_cannot_reserve_across_the_border() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let policy = policy(dir.path(), 60)?;
    let mut east = start_owner(&options(dir.path(), &redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir.path(), &redis, "d2", "d2.log", &policy)).await?;
    let mut at_west = west.command().await?;
    grade_ii(&mut at_west, "d2").await?;
    let _across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;

    let d1_lease = ShardLease::new(
        RedisShard::new(&redis.url(), ShardId::new("d1").map_err(anyhow::Error::msg)?)?,
        "reader",
        "",
        LeaseConfig::default(),
    );
    let old_epoch = tokio::task::block_in_place(|| d1_lease.holder())?.map(|holder| holder.token).unwrap_or_default();
    let secret = Sharding::new(&redis.url(), ShardId::new("d2").map_err(anyhow::Error::msg)?)?.peer_secret().await?;
    let mut shards = ShardServiceClient::new(west.channel().await?);
    let reserve = |offer_id: &str, epoch: u64, secret: &str| {
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let mut request = tonic::Request::new(pb::ReserveAndOfferRequest {
            incident_shard: "d1".into(),
            epoch,
            offer: Some(pb::Offer {
                offer_id: offer_id.into(),
                incident_id: "d1-inc-x".into(),
                agent_id: "p0161".into(),
                category: "welfare_check".into(),
                priority: 2,
                location: Some(pb::Location::wgs84(near_border().0, LAT)),
                deadline_ms: now_ms + 60_000,
                level: pb::AreaLevel::District as i32,
                ..Default::default()
            }),
            expires_at_ms: now_ms + 65_000,
            safety_interval_s: 0,
        });
        if let Ok(value) = secret.parse() {
            request.metadata_mut().insert(PEER_METADATA, value);
        }
        request
    };

    // Without the city's peer secret: refused.
    let stranger = shards.reserve_and_offer(reserve("o-stranger", old_epoch, "wrong")).await.expect_err("no secret");
    assert_eq!(stranger.code(), tonic::Code::Unauthenticated, "{stranger:?}");

    // d1's owner dies and a new one takes d1 over: the old epoch is fenced.
    east.kill().await?;
    let _east_again = start_owner(&options(dir.path(), &redis, "d1", "d1-again.log", &policy)).await?;
    let fenced = shards.reserve_and_offer(reserve("o-old", old_epoch, &secret)).await.expect_err("an old owner's request");
    assert_eq!(fenced.code(), tonic::Code::FailedPrecondition, "{fenced:?}");
    assert!(fenced.message().contains("taken over"), "{fenced:?}");
    let agent = at_west.get_agent(pb::GetAgentRequest { id: "p0161".into() }).await?.into_inner();
    assert_eq!(agent.status, pb::AgentStatus::Available as i32, "nothing was reserved: {agent:?}");

    // The new owner's epoch is taken, once for the same id.
    let new_epoch = tokio::task::block_in_place(|| d1_lease.holder())?.map(|holder| holder.token).unwrap_or_default();
    assert!(new_epoch > old_epoch);
    shards.reserve_and_offer(reserve("o-new", new_epoch, &secret)).await?;
    shards.reserve_and_offer(reserve("o-new", new_epoch, &secret)).await?;
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    west_events.wait_for_kind(WITHIN, "border_reserved", "d1-inc-x").await?;
    // Whatever else comes within half a second of quiet.
    while west_events.next_within(Duration::from_millis(500)).await.is_ok() {}
    let count = west_events.seen().iter().filter(|event| event.kind == "border_reserved").count();
    assert_eq!(count, 1, "reserved once for one id");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_city_wide_plan_import_activation_and_callup_reach_every_shard_once_with_one_roll_call() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let policy = policy(dir.path(), 60)?;
    let east = start_owner(&options(dir.path(), &redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir.path(), &redis, "d2", "d2.log", &policy)).await?;
    let east_url = format!("http://{}", east.address());
    let plan = dir.path().join("storm.toml");
    std::fs::write(
        &plan,
        "id = \"storm-ii\"\nname = \"storm\"\ncategory = \"storm\"\ngrade = \"II\"\ncall_up = [\"volunteer\"]\n",
    )?;
    let plan = plan.to_str().context("a path in UTF-8")?.to_owned();
    // A wrong plan file is refused, named, and taken by no shard.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "id = \"storm-x\"\nname = \"storm\"\ncategory = \"storm\"\ngrade = \"VII\"\n")?;
    let refused = run_pingji(&east_url, &["plan", "import", wrong.to_str().context("a path in UTF-8")?]).await?;
    assert!(!refused.status.success() && refused.stderr.contains("wrong.toml"), "{refused:?}");
    // Imported once, at d1's owner: every district's shard has the plan.
    let imported = run_pingji(&east_url, &["plan", "import", &plan]).await?.success()?;
    assert!(imported.stdout.contains("imported 1 plan"), "{}", imported.stdout);
    for (command, shard) in [(&mut east.command().await?, "d1"), (&mut west.command().await?, "d2")] {
        let plans = command.list_plans(pb::ListPlansRequest {}).await?.into_inner();
        let ids: Vec<&str> = plans.plans.iter().map(|plan| plan.id.as_str()).collect();
        assert_eq!(ids, ["storm-ii"], "{shard}: {plans:?}");
    }

    // Asked at d1's owner, the activation of the city is made at both shards.
    let activated =
        run_pingji(&east_url, &["plan", "activate", "storm-ii", "city", "--reason", "storm drill"]).await?.success()?;
    let lines: Vec<&str> = activated.stdout.lines().filter(|line| line.starts_with("activated plan storm-ii on city")).collect();
    assert_eq!(lines.len(), 2, "{}", activated.stdout);
    for (command, shard) in [(&mut east.command().await?, "d1"), (&mut west.command().await?, "d2")] {
        let plans = command.list_plans(pb::ListPlansRequest {}).await?.into_inner();
        let active =
            plans.activations.iter().filter(|activation| activation.area_id == "city" && activation.ended_at_ms == 0).count();
        assert_eq!(active, 1, "{shard}: once: {plans:?}");
    }

    // A call-up of the city: both shards call their grid leaders, and the
    // roll-call shows it as one.
    let issued =
        run_pingji(&east_url, &["callup", "issue", "city", "--reason", "typhoon", "--role", "grid_leader"]).await?.success()?;
    assert_eq!(issued.stdout.lines().count(), 1, "{}", issued.stdout);
    let mut called = 0;
    for command in [&mut east.command().await?, &mut west.command().await?] {
        let status =
            command.callup_status(pb::CallupStatusRequest { area_id: "city".into(), open_only: true }).await?.into_inner();
        let parts: Vec<_> = status.callups.iter().filter(|callup| callup.reason == "typhoon").collect();
        assert_eq!(parts.len(), 1, "{status:?}");
        called += parts[0].people.len();
    }
    assert!(called > 0);
    let roll_call = run_pingji(&east_url, &["callup", "status", "city"]).await?.success()?;
    let typhoon: Vec<&str> = roll_call.stdout.lines().filter(|line| line.contains("in city: typhoon")).collect();
    assert_eq!(typhoon.len(), 1, "one roll-call: {}", roll_call.stdout);
    assert!(roll_call.stdout.contains(&format!("checked in 0 of {called} called")), "{}", roll_call.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_across_the_border_from_home_is_found_where_they_are() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let policy = policy(dir.path(), 60)?;
    let east = start_owner(&options(dir.path(), &redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir.path(), &redis, "d2", "d2.log", &policy)).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);
    // Only d1 is in emergency; p0161 lives in d2 but stands in d1.
    grade_ii(&mut at_east, "d1").await?;
    let mut visitor = person_at(&west, &mut at_west, "p0161", east_of_border(-150.0)).await?;
    create(&mut at_east, "border-4", near_border()).await?;
    let offer = next_offer(&mut visitor, WITHIN).await?;
    assert_eq!(offer.incident_id, "border-4", "{offer:?}");
    visitor.accept(&offer.offer_id).await?;
    wait_assigned(&mut at_east, "border-4", "p0161").await?;
    Ok(())
}

/// Both districts at grade II, d2's p0161 45 m across the border holding
/// d1's incident `id` by a border offer they accepted at home, confirmed
/// at home: the two owners, their consoles and event watches (from the
/// start), and p0161's session.
struct HeldAcross {
    east: SharedDispatcher,
    west: SharedDispatcher,
    at_east: Commands,
    at_west: Commands,
    east_events: EventWatch,
    west_events: EventWatch,
    across: AgentSession,
}

/// With `pki`, both serve TLS and trust its CA for calls between them.
async fn held_across(dir: &Path, redis: &RedisServer, id: &str, pki: Option<&TestPki>) -> anyhow::Result<HeldAcross> {
    let policy = policy(dir, 60)?;
    let with_tls = |mut options: SharedStoreOptions| -> anyhow::Result<SharedStoreOptions> {
        if let Some(pki) = pki {
            let args = [("--tls-cert", &pki.server_cert), ("--tls-key", &pki.server_key), ("--tls-peer-ca", &pki.ca)]
                .into_iter()
                .flat_map(|(flag, path)| [std::ffi::OsString::from(flag), path.clone().into_os_string()])
                .collect();
            options.tls = Some((args, pki.client()?));
        }
        Ok(options)
    };
    let east = start_owner(&with_tls(options(dir, redis, "d1", "d1.log", &policy))?).await?;
    let west = start_owner(&with_tls(options(dir, redis, "d2", "d2.log", &policy))?).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);
    grade_ii(&mut at_east, "d1").await?;
    grade_ii(&mut at_west, "d2").await?;
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    let east_events = EventWatch::start(&mut at_east, 1).await?;
    let mut across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;
    create(&mut at_east, id, near_border()).await?;
    let offer = next_offer(&mut across, WITHIN).await?;
    across.accept(&offer.offer_id).await?;
    wait_assigned(&mut at_east, id, "p0161").await?;
    west_events.wait_for_kind(WITHIN, "border_confirmed", id).await?;
    Ok(HeldAcross { east, west, at_east, at_west, east_events, west_events, across })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helper_from_across_the_border_reports_arrival_and_completion_at_home_and_is_freed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let HeldAcross { east: _east, west: _west, mut at_east, mut at_west, mut east_events, mut west_events, mut across } =
        held_across(dir.path(), &redis, "border-5", None).await?;

    // The session is at d2; the incident is d1's: the arrival is carried
    // out there, as if sent there.
    across.send(pb::agent_message::Body::Arrived(pb::Arrived { incident_id: "border-5".into() })).await?;
    let arrived = east_events.wait_for_kind(WITHIN, "agent_arrived", "border-5").await?;
    assert_eq!((arrived.agent_id.as_str(), arrived.actor.as_str()), ("p0161", "agent:p0161"), "{arrived:?}");
    // A second arrival is refused there, and the refusal reaches the
    // person at home with its reason.
    across.send(pb::agent_message::Body::Arrived(pb::Arrived { incident_id: "border-5".into() })).await?;
    let refused = across.expect_refusal_within(WITHIN).await?;
    assert_eq!(refused.code, "failed_precondition", "{refused:?}");
    assert!(refused.message.contains("already reported arrival"), "{refused:?}");

    across.complete("border-5", "树已清走").await?;
    let done = east_events.wait_for_kind(WITHIN, "assignment_completed", "border-5").await?;
    assert_eq!(done.agent_id, "p0161");
    east_events.wait_for_kind(WITHIN, "incident_closed", "border-5").await?;
    let found = at_east.get_incident(pb::GetIncidentRequest { id: "border-5".into() }).await?.into_inner();
    assert_eq!(found.status, pb::IncidentStatus::Closed as i32, "{found:?}");
    // Freed at home once the task is done there.
    let released = west_events.wait_for_kind(WITHIN, "border_released", "border-5").await?;
    let Some(pb::event::Body::BorderReleased(released)) = released.body else { anyhow::bail!("{released:?}") };
    assert_eq!(released.end, "ended", "{released:?}");
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Available as i32);
    Ok(())
}

/// The next safety check-in `session` is told is due, skipping other messages.
async fn next_check_in_due(session: &mut AgentSession) -> anyhow::Result<pb::SafetyCheckDue> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Incoming::SafetyCheckDue(due) = session.next_message_within(left).await? {
            return Ok(due);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helper_from_across_the_border_checks_in_safe_at_home_at_the_incidents_interval() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let HeldAcross { east: _east, west: _west, at_east: _, mut at_west, mut west_events, mut across, .. } =
        held_across(dir.path(), &redis, "border-8", None).await?;
    // Home (d2) keeps the clock, at the interval of the incident's grade
    // that d1 told with the offer.
    let due = next_check_in_due(&mut across).await?;
    assert_eq!((due.incident_id.as_str(), due.interval_s, due.misses), ("border-8", 1800, 0), "{due:?}");
    let accepted = west_events
        .seen_or_wait_for(WITHIN, "the acceptance", |event| event.kind == "border_accepted" && event.incident_id == "border-8")
        .await?;
    assert_eq!(due.due_ms, accepted.at_ms + 1_800_000, "due 30 minutes after accepting: {due:?}");

    across.send(pb::agent_message::Body::SafetyCheckIn(pb::SafetyCheckIn {})).await?;
    let checked = west_events.wait_for_kind(WITHIN, "safety_check_in", "border-8").await?;
    assert_eq!(checked.agent_id, "p0161", "{checked:?}");
    let again = next_check_in_due(&mut across).await?;
    assert_eq!(again.due_ms, checked.at_ms + 1_800_000, "the clock starts again at the check-in: {again:?}");

    // The person's own district asks nothing after the task ends there.
    let mut at_west_agent = at_west.get_agent(pb::GetAgentRequest { id: "p0161".into() }).await?.into_inner();
    assert_eq!(at_west_agent.status, pb::AgentStatus::Busy as i32, "{at_west_agent:?}");
    across.complete("border-8", "已处理").await?;
    west_events.wait_for_kind(WITHIN, "border_released", "border-8").await?;
    at_west_agent = at_west.get_agent(pb::GetAgentRequest { id: "p0161".into() }).await?.into_inner();
    assert_eq!(at_west_agent.status, pb::AgentStatus::Available as i32, "{at_west_agent:?}");
    across.send(pb::agent_message::Body::SafetyCheckIn(pb::SafetyCheckIn {})).await?;
    let refused = across.expect_refusal_within(WITHIN).await?;
    assert!(refused.message.contains("holds no assignment"), "{refused:?}");
    Ok(())
}

/// A browser's report is carried out only from the person's open session:
/// one sent with a session that has ended is refused at home and never
/// reaches the incident's district.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helper_across_the_border_reports_from_their_open_session_only() -> anyhow::Result<()> {
    use pingji_client::field::{AgentCredentials, FieldClient};
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let HeldAcross { east: _east, west, at_east: _, mut at_west, mut east_events, west_events: _, across: _across } =
        held_across(dir.path(), &redis, "border-9", None).await?;
    let token = pingji_tests::agent_token(&mut at_west, "p0161").await?;
    let phone = FieldClient::new(west.channel().await?, AgentCredentials::new("p0161", &token).map_err(anyhow::Error::msg)?);
    let (welcome, _stream) = phone.listen().await?;

    phone.use_session(welcome.session_id + 1);
    let refused = phone.report_arrival("border-9").await.expect_err("a session that is not open");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("is not agent p0161's open session"), "{refused:?}");

    phone.use_session(welcome.session_id);
    phone.report_arrival("border-9").await?;
    let arrived = east_events.wait_for_kind(WITHIN, "agent_arrived", "border-9").await?;
    assert_eq!(arrived.agent_id, "p0161");
    let arrivals = east_events.seen().iter().filter(|event| event.kind == "agent_arrived").count();
    assert_eq!(arrivals, 1, "the refused report never reached d1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helper_whose_release_was_lost_is_freed_when_home_asks() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let HeldAcross { east: _east, mut west, mut at_east, .. } = held_across(dir.path(), &redis, "border-6", None).await?;

    // d2's owner is down when the incident ends at d1: the release d1
    // sends is lost.
    west.kill().await?;
    at_east.close_incident(pb::CloseIncidentRequest { id: "border-6".into(), feedback: "resolved".into() }).await?;
    west.restart().await?;
    west.wait_owner(WITHIN).await?;
    let mut at_west = west.command().await?;
    let agent = at_west.get_agent(pb::GetAgentRequest { id: "p0161".into() }).await?.into_inner();
    assert_eq!(agent.current_incident_id, "border-6", "still held at home after the restart: {agent:?}");

    // Home asks d1 whether it still holds the person (every 10 s), and
    // frees them.
    let mut west_events = EventWatch::start(&mut at_west, 1).await?;
    let released = west_events
        .wait_for(WITHIN + WITHIN, "the release at home", |event| {
            event.kind == "border_released" && event.incident_id == "border-6"
        })
        .await?;
    let Some(pb::event::Body::BorderReleased(released)) = released.body else { anyhow::bail!("{released:?}") };
    assert_eq!(released.end, "ended", "{released:?}");
    assert!(released.reason.contains("no longer holds"), "{released:?}");
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Available as i32);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_normal_mode_an_incident_widened_to_the_city_is_offered_across_the_border() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    // Nobody of d1 comes on: the incident widens a level a second, from
    // its grid to the city.
    let policy = dir.path().join("policy-widen.toml");
    std::fs::write(&policy, "staffing_check_s = 0\n[normal.widen_after_s]\ngrid = 1\ncommunity = 1\nstreet = 1\ndistrict = 1\n")?;
    let east = start_owner(&options(dir.path(), &redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir.path(), &redis, "d2", "d2.log", &policy)).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);
    let mut east_events = EventWatch::start(&mut at_east, 1).await?;
    let mut across = person_at(&west, &mut at_west, "p0161", east_of_border(45.0)).await?;

    create(&mut at_east, "border-7", near_border()).await?;
    let offer = next_offer(&mut across, WITHIN).await?;
    assert_eq!(offer.incident_id, "border-7", "{offer:?}");
    assert_eq!(offer.level, pb::AreaLevel::City as i32, "offered only once widened to the city: {offer:?}");
    let sent =
        east_events.wait_for(WITHIN, "the offer at d1", |event| event.kind == "offer_sent" && event.agent_id == "p0161").await?;
    let Some(pb::event::Body::OfferSent(sent)) = sent.body else { anyhow::bail!("{sent:?}") };
    assert_eq!(sent.from_area_id, "d2", "named by the person's home district: {sent:?}");
    let widened = east_events.seen().iter().filter(|event| matches!(event.body, Some(pb::event::Body::Widened(_)))).count();
    assert_eq!(widened, 4, "grid to community to street to district to the city first");

    across.accept(&offer.offer_id).await?;
    let staffed = wait_assigned(&mut at_east, "border-7", "p0161").await?;
    assert_eq!(staffed.assignments.len(), 1, "{staffed:?}");
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Busy as i32);
    Ok(())
}

/// In normal mode, at the ladder's district step, a d2 person standing in
/// d1 is found for a d1 incident through d2's owner (their session and
/// location are there) and offered, being much sooner than the d1 person
/// 3 km away whom the ladder reached at that step; the incident does not
/// widen to the city, since d1 has someone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_normal_mode_a_person_standing_across_the_border_is_found_at_the_district_step() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    // Up to the district in three seconds; the city step waits ten minutes.
    let policy = dir.path().join("policy-district.toml");
    std::fs::write(
        &policy,
        "staffing_check_s = 0\n[normal.widen_after_s]\ngrid = 1\ncommunity = 1\nstreet = 1\ndistrict = 600\n",
    )?;
    let east = start_owner(&options(dir.path(), &redis, "d1", "d1.log", &policy)).await?;
    let west = start_owner(&options(dir.path(), &redis, "d2", "d2.log", &policy)).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);
    let mut east_events = EventWatch::start(&mut at_east, 1).await?;
    // In d1's other street (d1-s2), 3 km north.
    let mut far = person_at(&east, &mut at_east, "p0001", (east_of_border(-500.0).0, LAT + 0.027)).await?;
    let mut visitor = person_at(&west, &mut at_west, "p0161", east_of_border(-45.0)).await?;

    create(&mut at_east, "border-10", near_border()).await?;
    let local = next_offer(&mut far, WITHIN).await?;
    assert_eq!(local.level, pb::AreaLevel::District as i32, "d1's own person, at the district step: {local:?}");
    let offer = next_offer(&mut visitor, WITHIN).await?;
    assert_eq!(offer.incident_id, "border-10", "{offer:?}");
    assert_eq!(offer.level, pb::AreaLevel::District as i32, "at the district step, not the city: {offer:?}");
    let sent =
        east_events.wait_for(WITHIN, "the offer at d1", |event| event.kind == "offer_sent" && event.agent_id == "p0161").await?;
    let Some(pb::event::Body::OfferSent(sent)) = sent.body else { anyhow::bail!("{sent:?}") };
    assert_eq!((sent.from_area_id.as_str(), sent.flat), ("d2", false), "home district named, not flat command: {sent:?}");
    visitor.accept(&offer.offer_id).await?;
    wait_assigned(&mut at_east, "border-10", "p0161").await?;
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Busy as i32);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_the_owners_call_each_other_with_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let pki = TestPki::create(dir.path())?;
    // Offered, accepted at home and staffed at d1: every step a call
    // between the two owners, over TLS.
    let HeldAcross { east: _east, west: _west, mut at_east, mut at_west, mut west_events, across, .. } =
        held_across(dir.path(), &redis, "border-8", Some(&pki)).await?;
    across.complete("border-8", "done").await?;
    west_events.wait_for_kind(WITHIN, "border_released", "border-8").await?;
    assert_eq!(agent_status(&mut at_west, "p0161").await?, pb::AgentStatus::Available as i32);
    let found = at_east.get_incident(pb::GetIncidentRequest { id: "border-8".into() }).await?.into_inner();
    assert_eq!(found.status, pb::IncidentStatus::Closed as i32, "{found:?}");
    Ok(())
}
