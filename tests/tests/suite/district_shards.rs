//! One shard per district: dispatcher processes started with `--shard d1`
//! and `--shard d2` on one redis-server (started by the test on a free
//! port). Each keeps its own district's people and incidents, and sends
//! whatever concerns the other district to that shard's owner, which the
//! console and the test's clients follow.

use std::path::Path;
use std::time::Duration;

use pingji_dispatcher::lease::{LeaseConfig, ShardLease};
use pingji_dispatcher::shard::{RedisShard, ShardId};
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_tests::cli::run_pingji;
use pingji_tests::redis::{RedisServer, SharedDispatcher, SharedStoreOptions, owner_of};
use pingji_tests::{AgentSession, Commands, sample_city, sample_roster};
use tokio::time::Instant;

/// A point in district d1 and one in d2 of the sample city.
const IN_D1: (f64, f64) = (120.12, 30.26);
const IN_D2: (f64, f64) = (120.18, 30.26);
/// How long a takeover or a directory write may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(15);

fn options(dir: &Path, redis: &RedisServer, shard: &str, log: &str) -> SharedStoreOptions {
    SharedStoreOptions { shard: Some(shard.to_string()), ..default_options(dir, redis, log) }
}

/// Without --shard: one shard per district of the map.
fn default_options(dir: &Path, redis: &RedisServer, log: &str) -> SharedStoreOptions {
    SharedStoreOptions {
        redis_url: redis.url(),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        lease_ms: None,
        shard: None,
        log: dir.join(log),
        tls: None,
        photos_dir: None,
    }
}

async fn start_owner(dir: &Path, redis: &RedisServer, shard: &str, log: &str) -> anyhow::Result<SharedDispatcher> {
    let mut dispatcher = SharedDispatcher::start(&options(dir, redis, shard, log)).await?;
    dispatcher.wait_owner(WITHIN).await?;
    Ok(dispatcher)
}

fn incident(id: &str, (lon, lat): (f64, f64)) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "welfare_check".into(),
        priority: 2,
        headcount: 1,
        ..Default::default()
    }
}

async fn roster_ids(command: &mut Commands) -> anyhow::Result<Vec<(String, String)>> {
    let listed = command.list_agents(pb::ListAgentsRequest { limit: 10_000, ..Default::default() }).await?.into_inner();
    Ok(listed.agents.into_iter().filter_map(|agent| agent.spec.map(|spec| (spec.id, spec.home_area_id))).collect())
}

/// The refusal of a call that belongs to another shard: `unavailable`
/// naming that shard's owner.
fn assert_sent_to(result: Result<impl std::fmt::Debug, tonic::Status>, owner: &SharedDispatcher, what: &str) {
    let status = match result {
        Ok(answer) => panic!("{what}: answered here instead of being sent on: {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{what}: {status:?}");
    assert_eq!(owner_of(&status), Some(owner.address().to_string()), "{what}: {status:?}");
}

/// Polls `call` until it is sent to `owner` (the directory is written just
/// after the journal).
async fn eventually_sent_to<T: std::fmt::Debug>(
    owner: &SharedDispatcher,
    what: &str,
    mut call: impl AsyncFnMut() -> Result<T, tonic::Status>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let result = call().await;
        if let Err(status) = &result
            && owner_of(status) == Some(owner.address().to_string())
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: never sent to {}: {result:?}", owner.address());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it holds (the directory is written just after the
/// journal).
async fn eventually(command: &mut Commands, what: &str, mut check: impl AsyncFnMut(&mut Commands) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WITHIN;
    while !check(command).await {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_district_has_its_shard_and_calls_about_the_other_are_sent_to_its_owner() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let east = start_owner(dir.path(), &redis, "d1", "d1.log").await?;
    let mut west = start_owner(dir.path(), &redis, "d2", "d2.log").await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);

    // Each loaded its own district's half of the one roster file.
    for (command, district) in [(&mut at_east, "d1"), (&mut at_west, "d2")] {
        let people = roster_ids(command).await?;
        assert_eq!(people.len(), 160, "{district}: {people:?}");
        assert!(people.iter().all(|(_, home)| home.starts_with(&format!("{district}-"))), "{district}: {people:?}");
    }

    // An incident is created by its district's shard, whoever is asked.
    assert_sent_to(at_east.create_incident(incident("west-1", IN_D2)).await, &west, "a d2 incident created at d1");
    let created = at_west.create_incident(incident("", IN_D2)).await?.into_inner();
    assert!(created.id.starts_with("d2-inc-"), "ids made by a district's shard carry it: {}", created.id);
    let east_url = format!("http://{}", east.address());
    let console = run_pingji(
        &east_url,
        &[
            "incident",
            "create",
            "--at",
            "120.18,30.26",
            "--category",
            "medical",
            "--priority",
            "1",
            "--need",
            "1",
            "--id",
            "west-2",
        ],
    )
    .await?
    .success()?;
    assert!(console.stdout.contains("west-2"), "{}", console.stdout);
    at_west.get_incident(pb::GetIncidentRequest { id: "west-2".into() }).await?;
    at_east.create_incident(incident("east-1", IN_D1)).await?;

    // Asked about an incident of the other shard, d1 sends the caller on.
    eventually_sent_to(&west, "GetIncident west-2 at d1", async || {
        at_east.get_incident(pb::GetIncidentRequest { id: "west-2".into() }).await
    })
    .await?;
    assert_sent_to(
        at_east.close_incident(pb::CloseIncidentRequest { id: "west-2".into(), feedback: "done".into() }).await,
        &west,
        "closing a d2 incident at d1",
    );
    let unknown = at_east.get_incident(pb::GetIncidentRequest { id: "nowhere".into() }).await.expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");

    // A switch of the whole city, made at d1, reaches d2.
    let city_emergency =
        pb::SetModeRequest { area_id: "city".into(), mode: pb::Mode::EmergencyIi as i32, reason: "typhoon".into() };
    at_east.set_mode(city_emergency).await?;
    eventually(&mut at_west, "the city switched at d2 too", async |west| {
        let areas = west.list_areas(pb::ListAreasRequest::default()).await.map(|listed| listed.into_inner().areas);
        areas.is_ok_and(|areas| areas.iter().any(|area| area.id == "city" && area.mode == pb::Mode::EmergencyIi as i32))
    })
    .await?;

    // People: switches, additions and sessions go to the person's shard.
    assert_sent_to(
        at_east
            .set_mode(pb::SetModeRequest { area_id: "d2-s1".into(), mode: pb::Mode::EmergencyI as i32, reason: "flood".into() })
            .await,
        &west,
        "switching a d2 street at d1",
    );
    let westerner = pb::AgentSpec {
        id: "w-new".into(),
        name: "新人".into(),
        role: pb::Role::Volunteer as i32,
        home_area_id: "d2-s1-c1-g1".into(),
        on_duty: true,
        ..Default::default()
    };
    assert_sent_to(
        at_east.upsert_agent(pb::UpsertAgentRequest { agent: Some(westerner.clone()) }).await,
        &west,
        "adding a d2 person at d1",
    );
    let easterner = pb::AgentSpec { id: "e-new".into(), home_area_id: "d1-s1-c1-g1".into(), ..westerner.clone() };
    let mixed = at_east
        .import_agents(pb::ImportAgentsRequest { agents: vec![easterner, westerner.clone()] })
        .await
        .expect_err("a mixed import is refused");
    assert_eq!(mixed.code(), tonic::Code::FailedPrecondition, "{mixed:?}");
    assert!(mixed.message().contains("w-new (d2)") && mixed.message().contains("nothing was changed"), "{mixed:?}");
    assert_eq!(roster_ids(&mut at_east).await?.len(), 160, "the refused import changed nothing");

    let token = pingji_tests::agent_token(&mut at_west, "p0200").await?;
    let mut sessions_at_east = AgentServiceClient::new(east.channel().await?);
    let refused = AgentSession::try_open(&mut sessions_at_east, "p0200", &token).await.map(|_| ());
    assert_sent_to(refused, &west, "a d2 person saying hello at d1");
    let mut sessions_at_west = AgentServiceClient::new(west.channel().await?);
    AgentSession::open(&mut sessions_at_west, "p0200", &token).await?;
    assert_sent_to(
        at_east.issue_agent_token(pb::IssueAgentTokenRequest { agent_id: "p0200".into() }).await,
        &west,
        "a d2 person's token issued at d1",
    );

    // Operator accounts live in one shard and open every shard: d2 checks
    // the token against the hash d1 publishes, and sends changes to d1.
    let duty_token = pingji_tests::add_operator(&mut at_east, "duty", pb::OperatorRole::Dispatcher).await?;
    let mut duty_at_west = pingji_tests::commands_with(west.channel().await?, Some(&duty_token));
    eventually(&mut duty_at_west, "duty's token opens d2", async |duty| {
        duty.who_am_i(pb::WhoAmIRequest {}).await.map(|me| me.into_inner().name == "duty").unwrap_or(false)
    })
    .await?;
    duty_at_west.create_incident(incident("west-duty", IN_D2)).await?;
    let operators = at_west.list_operators(pb::ListOperatorsRequest {}).await?.into_inner().operators;
    assert!(operators.iter().any(|operator| operator.name == "duty"), "{operators:?}");
    let twice = at_west
        .add_operator(pb::AddOperatorRequest { name: "duty".into(), role: pb::OperatorRole::Viewer as i32, expires_in_s: 0 })
        .await;
    assert_eq!(twice.map(|_| ()).expect_err("a second duty").code(), tonic::Code::AlreadyExists);
    assert_sent_to(
        at_west.remove_operator(pb::RemoveOperatorRequest { name: "duty".into() }).await,
        &east,
        "removing d1's account at d2",
    );
    at_east.remove_operator(pb::RemoveOperatorRequest { name: "duty".into() }).await?;
    eventually(&mut duty_at_west, "duty's token refused at d2 after the removal", async |duty| {
        duty.list_incidents(pb::ListIncidentsRequest::default())
            .await
            .is_err_and(|status| status.code() == tonic::Code::Unauthenticated)
    })
    .await?;

    // The console picks a shard for lists: d1's process sends it to d2.
    let listed = run_pingji(&east_url, &["--shard", "d2", "incident", "list"]).await?.success()?;
    assert!(listed.stdout.contains("west-2") && !listed.stdout.contains("east-1"), "{}", listed.stdout);
    let here = run_pingji(&east_url, &["incident", "list"]).await?.success()?;
    assert!(here.stdout.contains("east-1") && !here.stdout.contains("west-2"), "{}", here.stdout);
    assert!(here.stderr.contains("incidents of shard d1 only"), "a split city's list says whose it is: {}", here.stderr);

    // d2's owner dies; a spare standing by for both districts takes d2 (d1
    // is owned), and d1 now sends d2's callers there.
    let mut spare = SharedDispatcher::start(&options(dir.path(), &redis, "d1,d2", "spare.log")).await?;
    let standing_by = spare.wait_standby(WITHIN).await?;
    assert_eq!(owner_of(&standing_by), Some(east.address().to_string()), "a spare names the first shard's owner");
    west.kill().await?;
    spare.wait_owner(WITHIN).await?;
    let mut at_spare = spare.command().await?;
    at_spare.get_incident(pb::GetIncidentRequest { id: "west-2".into() }).await?;
    assert!(spare.log().contains("serving one district's shard shard=d2"), "{}", spare.log());
    assert_sent_to(at_east.create_incident(incident("west-3", IN_D2)).await, &spare, "a d2 incident after the failover");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_is_not_a_district_on_the_map_is_refused_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let mut nowhere = SharedDispatcher::start(&options(dir.path(), &redis, "d9", "d9.log")).await?;
    let status = nowhere.wait_exit(WITHIN).await?;
    assert!(!status.success(), "{status:?}");
    let log = nowhere.log();
    assert!(log.contains("shard d9 is not a district on the map") && log.contains("d1, d2"), "{log}");
    Ok(())
}

/// `drill live` given one district's process runs the whole city: it sets
/// up and watches every district's shard, its incidents and people go to
/// their district's shard, and the report has them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_drill_runs_across_the_district_shards() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let east = start_owner(dir.path(), &redis, "d1", "d1.log").await?;
    let west = start_owner(dir.path(), &redis, "d2", "d2.log").await?;
    let drill_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/smoke.toml");
    let drill = pingji_scenarios::drill::load(&drill_path).map_err(anyhow::Error::msg)?;
    let out = tempfile::tempdir()?;
    let mut options = pingji_scenarios::live::LiveOptions::new(&east.url(), Some(pingji_tests::ADMIN_TOKEN))?;
    options.speed = 180.0;
    let report = pingji_scenarios::live::run(&drill, &options, out.path(), |_| {}).await?;
    assert_eq!(report.totals.incidents, 8, "{:?}", report.totals);
    assert_eq!(report.totals.mode_switches, 1, "{:?}", report.totals);
    assert!(report.totals.accepted >= 8, "people of both districts accepted: {:?}", report.totals);

    let drill_incidents = async |dispatcher: &SharedDispatcher| -> anyhow::Result<Vec<String>> {
        let mut command = dispatcher.command().await?;
        let listed = command.list_incidents(pb::ListIncidentsRequest { limit: 100, ..Default::default() }).await?;
        Ok(listed.into_inner().incidents.into_iter().map(|incident| incident.id).filter(|id| id.starts_with("drill-")).collect())
    };
    // The incident at 120.18,30.29 is d2's; the other seven are d1's.
    assert_eq!(drill_incidents(&east).await?.len(), 7);
    assert_eq!(drill_incidents(&west).await?.len(), 1);
    Ok(())
}

/// Who holds `shard`'s lease: (owner id, address).
async fn holder(redis: &RedisServer, shard: &str) -> anyhow::Result<Option<(String, String)>> {
    let shard = RedisShard::new(&redis.url(), ShardId::new(shard).map_err(anyhow::Error::msg)?)?;
    let lease = ShardLease::new(shard, "test", "", LeaseConfig::default());
    let holder = tokio::task::spawn_blocking(move || lease.holder()).await??;
    Ok(holder.map(|holder| (holder.owner_id, holder.address)))
}

/// Without --shard each district of the map is a shard. The first
/// dispatcher takes them all (d1 on its port, d2 on a port of its own), a
/// second stands by for all, and takes them all over when the first dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_each_district_is_a_shard_and_a_standby_takes_them_all_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let mut first = SharedDispatcher::start(&default_options(dir.path(), &redis, "first.log")).await?;
    first.wait_owner(WITHIN).await?;
    let deadline = Instant::now() + WITHIN;
    let (d1, d2) = loop {
        if let (Some(d1), Some(d2)) = (holder(&redis, "d1").await?, holder(&redis, "d2").await?) {
            break (d1, d2);
        }
        anyhow::ensure!(Instant::now() < deadline, "the first did not take both districts:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d1.0, d2.0, "one process owns both");
    assert_eq!(d1.1, first.address().to_string());
    assert_ne!(d2.1, d1.1, "d2 is served on a port of its own");
    let mut second = SharedDispatcher::start(&default_options(dir.path(), &redis, "second.log")).await?;
    let standing_by = second.wait_standby(WITHIN).await?;
    assert_eq!(owner_of(&standing_by), Some(first.address().to_string()));

    // The console, given the standby, finds each district's shard.
    let second_url = format!("http://{}", second.address());
    for (id, at) in [("east", "120.12,30.26"), ("west", "120.18,30.26")] {
        let created = run_pingji(
            &second_url,
            &["incident", "create", "--at", at, "--category", "medical", "--priority", "1", "--need", "1", "--id", id],
        )
        .await?
        .success()?;
        assert!(created.stdout.contains(id), "{}", created.stdout);
    }

    first.kill().await?;
    second.wait_owner(WITHIN).await?;
    let deadline = Instant::now() + WITHIN;
    loop {
        let d2 = holder(&redis, "d2").await?;
        if d2.as_ref().is_some_and(|(owner, _)| *owner != d1.0) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "d2 was not taken over: {d2:?}\n{}", second.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in ["east", "west"] {
        let shown = run_pingji(&second_url, &["incident", "show", id]).await?.success()?;
        assert!(shown.stdout.contains(id), "{}", shown.stdout);
    }
    Ok(())
}

/// The dispatcher binary serving only `shard`, started without a bootstrap
/// admin token (the fixtures always give one): its stderr goes to `log`.
fn spawn_shard_without_admin(
    binary: &Path,
    redis: &RedisServer,
    shard: &str,
    log: &Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let address = pingji_tests::process::free_port()?.to_string();
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["--listen", &address, "--advertise", &address, "--store", &redis.url(), "--shard", shard, "--areas"])
        .arg(sample_city())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    Ok((command.spawn()?, address))
}

/// A shard with no account of its own is not "without accounts" while
/// another shard publishes some: only when none is published anywhere does
/// it say so (and warn at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_without_accounts_of_its_own_counts_those_other_shards_publish() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let binary = pingji_tests::dispatcher_binary().await?;
    // The first admin goes into the first district's shard, d1.
    let made = tokio::process::Command::new(&binary)
        .args(["bootstrap-admin", "--store", &redis.url(), "--areas"])
        .arg(sample_city())
        .env_remove("PINGJI_BOOTSTRAP_ADMIN_TOKEN")
        .output()
        .await?;
    anyhow::ensure!(made.status.success(), "bootstrap-admin: {}", String::from_utf8_lossy(&made.stderr));
    let admin_token = String::from_utf8(made.stdout)?.trim().to_string();

    // Only d2 is served: d1's account is not published yet.
    let (_west, west_address) = spawn_shard_without_admin(&binary, &redis, "d2", &dir.path().join("d2.log"))?;
    let channel = pingji_tests::connect_with_retry(west_address.parse()?, WITHIN).await?;
    let mut as_admin = pingji_tests::commands_with(channel.clone(), Some(&admin_token));
    let deadline = Instant::now() + WITHIN;
    let status = loop {
        let status = as_admin.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("no account to open");
        if status.code() == tonic::Code::Unauthenticated || Instant::now() >= deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pingji_client::errors::reason(&status), Some(pb::ErrorReason::NoOperatorAccounts), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("d2.log"))?;
    assert!(log.contains("this shard has no operator accounts and no other shard has published any yet"), "{log}");

    // d1's owner publishes the admin: d2 lets the token in, and the token
    // of an account nobody has is just wrong there.
    let (_east, _) = spawn_shard_without_admin(&binary, &redis, "d1", &dir.path().join("d1.log"))?;
    eventually(&mut as_admin, "the admin's token opens d2", async |admin| admin.who_am_i(pb::WhoAmIRequest {}).await.is_ok())
        .await?;
    let wrong = "pjo_nobody_0000000000000000000000000000000000000000000000000000000000000000";
    let status = pingji_tests::commands_with(channel, Some(wrong))
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .expect_err("a wrong token");
    assert_eq!(pingji_client::errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");
    Ok(())
}

/// Photos with Redis: every dispatcher of the city reads one shared photo
/// directory (`--photos-dir`), so a photo uploaded through the d1 shard's
/// dispatcher is read through d2's, byte for byte, and uploading it again
/// there stores nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_photo_uploaded_through_one_dispatcher_is_read_through_the_other() -> anyhow::Result<()> {
    use pingji_client::field::{AgentCredentials, FieldClient};
    let dir = tempfile::tempdir()?;
    let shared = dir.path().join("shared-photos");
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let with_photos = |shard: &str, log: &str| SharedStoreOptions {
        photos_dir: Some(shared.clone()),
        ..options(dir.path(), &redis, shard, log)
    };
    let mut east = SharedDispatcher::start(&with_photos("d1", "d1.log")).await?;
    east.wait_owner(WITHIN).await?;
    let mut west = SharedDispatcher::start(&with_photos("d2", "d2.log")).await?;
    west.wait_owner(WITHIN).await?;
    let (mut at_east, mut at_west) = (east.command().await?, west.command().await?);

    let (person, _) = roster_ids(&mut at_east).await?.into_iter().next().expect("d1 has people");
    let token = pingji_tests::agent_token(&mut at_east, &person).await?;
    let phone = FieldClient::new(east.channel().await?, AgentCredentials::new(&person, &token).map_err(anyhow::Error::msg)?);
    let photo = include_bytes!("../../../dispatcher/web/src/field/icon-512.png").to_vec();
    let uploaded = phone.upload_photo(photo.clone()).await?;
    assert!(!uploaded.already_stored, "{uploaded:?}");

    let read = at_west.get_photo(pb::GetPhotoRequest { photo_ref: uploaded.photo_ref.clone() }).await?.into_inner();
    assert_eq!(read.data, photo, "d2's dispatcher reads the photo d1's stored");
    assert_eq!(read.content_type, "image/png");
    let again = phone.upload_photo(photo).await?;
    assert!(again.already_stored && again.photo_ref == uploaded.photo_ref, "{again:?}");
    let files = std::fs::read_dir(&shared)?.count();
    assert_eq!(files, 1, "one file in the shared directory");
    Ok(())
}
