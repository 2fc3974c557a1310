//! Dispatchers on a real local Redis Cluster (`--store
//! redis+cluster://...`): six `redis-server --cluster-enabled yes` nodes
//! started by the test, three primaries with a replica each. The sample
//! city's two district shards (`{d1}`, `{d2}`) hash to slots of different
//! primaries; each shard's keys share its slot, so its Lua scripts run on
//! one node. A primary is failed over by hand (`CLUSTER FAILOVER`: nothing
//! is lost) and killed (kill -9: its replica takes over after the node
//! timeout; what it had not replicated is lost), under a steady load of
//! creates.
//!
//! The tests run one at a time (each runs six Redis nodes and one or two
//! dispatchers on a shared 2-core machine) and assert no timing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pingji_dispatcher::journal::RedisReader;
use pingji_dispatcher::lease::{LeaseConfig, ShardLease};
use pingji_dispatcher::shard::{RedisShard, ShardId, ShardKeys};
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_tests::redis::{CreateOutcome as Outcome, steady_creates};
use pingji_tests::redis::{RedisCluster, SharedDispatcher, SharedStoreOptions, serving_status};
use pingji_tests::{AreaBox, area_box, available_people, connect_located, pb, sample_city, sample_roster};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tonic_health::pb::health_check_response::ServingStatus;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How long a start, a takeover or a failover may take on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(60);
/// A grid of district d1, and one of d2.
const D1_GRID: &str = "d1-s1-c1-g1";
const D2_GRID: &str = "d2-s1-c1-g1";

fn options(dir: &Path, cluster: &RedisCluster, shard: &str, log: &str) -> SharedStoreOptions {
    SharedStoreOptions {
        redis_url: cluster.url(),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        // Small, so that a restart reads a snapshot and then the stream.
        snapshot_every: Some(40),
        lease_ms: None,
        shard: Some(shard.to_string()),
        log: dir.join(log),
        tls: None,
        photos_dir: None,
    }
}

async fn start_cluster(dir: &Path) -> anyhow::Result<RedisCluster> {
    let cluster_dir = dir.join("cluster");
    std::fs::create_dir(&cluster_dir)?;
    tokio::task::block_in_place(|| RedisCluster::start(&cluster_dir))
}

fn incident(id: String, (lon, lat): (f64, f64)) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id,
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "welfare_check".into(),
        priority: 2,
        headcount: 1,
        description: "redis cluster test".into(),
        ..Default::default()
    }
}

/// The ids of the incidents reported in `shard`'s stream, read from the
/// cluster as an auditor would; checks that the seqs run 1, 2, 3 ...
async fn reported_in_stream(cluster: &RedisCluster, shard: &str) -> anyhow::Result<BTreeSet<String>> {
    let shard = RedisShard::new(&cluster.url(), ShardId::new(shard).map_err(anyhow::Error::msg)?)?;
    let events = tokio::task::spawn_blocking(move || RedisReader::open(shard).and_then(|reader| reader.read_from(1, usize::MAX)))
        .await??;
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    anyhow::ensure!(seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(), "the stream has gaps or repeats");
    Ok(events.iter().filter(|event| event.kind == "incident_reported").filter_map(|event| event.incident_id.clone()).collect())
}

/// The fencing token of `shard`'s lease holder, read from the cluster.
async fn lease_token(cluster: &RedisCluster, shard: &str) -> anyhow::Result<Option<u64>> {
    let shard = RedisShard::new(&cluster.url(), ShardId::new(shard).map_err(anyhow::Error::msg)?)?;
    let reader = ShardLease::new(shard, "reader", "", LeaseConfig::default());
    Ok(tokio::task::spawn_blocking(move || reader.holder()).await??.map(|holder| holder.token))
}

/// What a steady load saw around a failover.
struct Observed {
    before: Vec<String>,
    /// Refusals during the gap (code, message).
    gap: Vec<(tonic::Code, String)>,
    /// Acknowledged once the failover was over (and any after a refusal).
    after: Vec<String>,
}

/// Runs a steady load of creates at `owner` in `grid`, with `failover`
/// done after 20 acknowledged creates; returns once 10 more are
/// acknowledged after the failover has completed.
async fn load_through(
    owner: &SharedDispatcher,
    grid: AreaBox,
    failover: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Observed> {
    let (outcome_sender, mut outcomes) = mpsc::channel(100_000);
    let (stop_load, load_stop) = tokio::sync::watch::channel(false);
    let at = grid.centre();
    let load = tokio::spawn(steady_creates(owner.address(), move |id, _| incident(id, at), outcome_sender, load_stop));
    let mut before = Vec::new();
    while before.len() < 20 {
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) => before.push(id),
            other => anyhow::bail!("a create failed before the failover: {other:?}"),
        }
    }
    tokio::task::block_in_place(failover)?;
    // Outcomes queued while the failover ran belong to the gap: those
    // acknowledged were acknowledged while it happened.
    let mut gap = Vec::new();
    let mut after = Vec::new();
    while let Ok(outcome) = outcomes.try_recv() {
        match outcome {
            Outcome::Acknowledged(id) => after.push(id),
            Outcome::Refused(code, message) => gap.push((code, message)),
        }
    }
    let mut after_failover = 0;
    let deadline = Instant::now() + PROMPTLY;
    while after_failover < 10 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "creates were not acknowledged again within {PROMPTLY:?} of the failover; refusals: {:?}",
            gap.iter().rev().take(3).collect::<Vec<_>>()
        );
        match tokio::time::timeout(PROMPTLY, outcomes.recv()).await? {
            Some(Outcome::Acknowledged(id)) => {
                after.push(id);
                after_failover += 1;
            }
            Some(Outcome::Refused(code, message)) => gap.push((code, message)),
            None => anyhow::bail!("the load stopped early: {:?}", load.await),
        }
    }
    let _ = stop_load.send(true);
    load.await??;
    while let Ok(outcome) = outcomes.try_recv() {
        match outcome {
            Outcome::Acknowledged(id) => after.push(id),
            Outcome::Refused(code, message) => gap.push((code, message)),
        }
    }
    Ok(Observed { before, gap, after })
}

/// The refusals a client may see while the shard's primary is away:
/// `unavailable` from the dispatcher (the store is out of reach), never an
/// internal error or a wrong answer.
fn assert_refused_cleanly(gap: &[(tonic::Code, String)]) {
    assert!(gap.iter().all(|(code, _)| *code == tonic::Code::Unavailable), "refusals during the failover: {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn district_shards_live_on_different_primaries_and_a_restart_recovers_from_the_cluster() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cluster = start_cluster(dir.path()).await?;
    let mut east = SharedDispatcher::start(&options(dir.path(), &cluster, "d1", "d1.log")).await?;
    east.wait_owner(PROMPTLY).await?;
    let mut west = SharedDispatcher::start(&options(dir.path(), &cluster, "d2", "d2.log")).await?;
    west.wait_owner(PROMPTLY).await?;

    // Every key of a shard is in one slot; the two shards' slots belong to
    // different primaries.
    let mut primaries = BTreeSet::new();
    for shard in ["d1", "d2"] {
        let keys = ShardKeys::new(&ShardId::new(shard).map_err(anyhow::Error::msg)?);
        let slot = cluster.keyslot(&keys.events)?;
        for key in [&keys.snapshot, &keys.fence, &keys.lease, &keys.locations, &format!("pingji:{{{shard}}}:notify_cursor")] {
            assert_eq!(cluster.keyslot(key)?, slot, "{key} is not in the slot of {}", keys.events);
        }
        let primary = cluster.primary_for(&keys.events)?;
        // The shard's fence and lease are on that node (a node answers only
        // for its own slots).
        let fence: Option<u64> = cluster.query(primary, &["GET", &keys.fence])?;
        assert!(fence.is_some(), "{shard}'s fence is not on node {primary}, the primary of its slot {slot}");
        println!("shard {shard}: slot {slot}, primary node {primary} (port {})", cluster.node(primary).port());
        primaries.insert(primary);
    }
    assert_eq!(primaries.len(), 2, "the two districts' shards are on one primary: {primaries:?}");
    let nodes = cluster.cluster_nodes()?;
    assert_eq!(nodes.iter().filter(|node| node.primary).count(), 3, "{nodes:?}");

    // Incidents are created at their shards and offered to a person there.
    let mut at_east = east.command().await?;
    let grid = area_box(&mut at_east, D1_GRID).await?;
    let person = available_people(&mut at_east, D1_GRID, 1).await?.remove(0);
    let (lon, lat) = grid.centre();
    let mut session =
        connect_located(&mut at_east, &mut AgentServiceClient::new(east.channel().await?), &person, lon, lat).await?;
    let offered = at_east.create_incident(incident("east-1".into(), (lon, lat))).await?.into_inner();
    let offer = session.expect_offer_within(PROMPTLY).await?;
    assert_eq!(offer.incident_id, offered.id, "the d1 person is offered the d1 incident");
    let mut east_ids = vec![offered.id];
    for index in 2..=30 {
        east_ids.push(at_east.create_incident(incident(format!("east-{index}"), (lon, lat))).await?.into_inner().id);
    }
    let mut at_west = west.command().await?;
    let west_grid = area_box(&mut at_west, D2_GRID).await?;
    let mut west_ids = Vec::new();
    for index in 1..=30 {
        west_ids.push(at_west.create_incident(incident(format!("west-{index}"), west_grid.centre())).await?.into_inner().id);
    }
    drop(session);

    // kill -9 of d1's owner; started again, it recovers d1 from the
    // cluster (snapshot, then the stream) and serves every incident.
    east.kill().await?;
    east.restart().await?;
    east.wait_owner(PROMPTLY).await?;
    let mut at_east = east.command().await?;
    for id in &east_ids {
        at_east.get_incident(pb::GetIncidentRequest { id: id.clone() }).await?;
    }
    for id in &west_ids {
        at_west.get_incident(pb::GetIncidentRequest { id: id.clone() }).await?;
    }
    let east_stream = reported_in_stream(&cluster, "d1").await?;
    let west_stream = reported_in_stream(&cluster, "d2").await?;
    assert!(east_ids.iter().all(|id| east_stream.contains(id)), "d1's stream lacks an acknowledged incident");
    assert!(west_ids.iter().all(|id| west_stream.contains(id)), "d2's stream lacks an acknowledged incident");
    assert!(east_stream.is_disjoint(&west_stream), "a shard's stream holds the other's incidents");
    Ok(())
}

/// A manual failover (`CLUSTER FAILOVER` on the replica of the primary
/// holding d2) under a steady load of creates: the primary holds its
/// clients while the replica catches up, then answers `MOVED`; the
/// dispatcher follows the slot to the new primary in the same process,
/// with the same lease, and every acknowledged create is in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_failover_under_load_loses_nothing_and_the_owner_serves_on() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cluster = start_cluster(dir.path()).await?;
    let mut owner = SharedDispatcher::start(&options(dir.path(), &cluster, "d2", "owner.log")).await?;
    owner.wait_owner(PROMPTLY).await?;
    let token_before = lease_token(&cluster, "d2").await?;
    let mut command = owner.command().await?;
    let grid = area_box(&mut command, D2_GRID).await?;
    let primary = cluster.primary_for("pingji:{d2}:events")?;
    let replica = cluster.replica_of(primary)?;

    let started = Instant::now();
    let observed = load_through(&owner, grid, || cluster.manual_failover(replica)).await?;
    println!(
        "manual failover of node {primary} to node {replica}: {} creates acknowledged before, {} refused during it ({:?}), \
         {} acknowledged during and after; {} ms in all",
        observed.before.len(),
        observed.gap.len(),
        observed.gap.iter().map(|(code, _)| format!("{code:?}")).collect::<BTreeSet<_>>(),
        observed.after.len(),
        started.elapsed().as_millis()
    );
    assert_refused_cleanly(&observed.gap);
    assert_eq!(cluster.primary_for("pingji:{d2}:events")?, replica, "the replica serves d2's slot now");
    assert!(!owner.has_exited(), "the owner stopped:\n{}", owner.log());
    assert_eq!(lease_token(&cluster, "d2").await?, token_before, "the same owner holds the shard, with the same token");
    let mut health = tonic_health::pb::health_client::HealthClient::new(owner.channel().await?);
    assert_eq!(serving_status(&mut health, "pingji.v1.CommandService").await, Some(ServingStatus::Serving));

    let journaled = reported_in_stream(&cluster, "d2").await?;
    for id in observed.before.iter().chain(&observed.after) {
        anyhow::ensure!(journaled.contains(id), "acknowledged incident {id} is not in d2's stream after the failover");
        command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await?;
    }
    Ok(())
}

/// kill -9 of the primary holding d2, under a steady load of creates, with
/// a standby for d2. The owner's writes are refused with `unavailable`
/// until the replica is promoted (after the 1 s node timeout and an
/// election); it then goes on in the same process. Replication is
/// asynchronous, so a create acknowledged just before the kill may be
/// missing on the promoted replica: the test prints how many were. If one
/// is missing, the owner's next append is refused by the stream's sequence
/// check and the owner exits (it must not write past a hole); otherwise
/// nothing was lost. Either way no two processes write the shard: the
/// standby stands by while the owner holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_fails_over_and_the_owner_goes_on_or_stops_at_a_hole() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let mut cluster = start_cluster(dir.path()).await?;
    // A lease longer than the failover (node timeout 1 s, then an
    // election), so that the owner, not the standby, is expected to go on.
    let with_lease =
        |log: &str| SharedStoreOptions { lease_ms: Some((6_000, 1_000)), ..options(dir.path(), &cluster, "d2", log) };
    let mut owner = SharedDispatcher::start(&with_lease("owner.log")).await?;
    owner.wait_owner(PROMPTLY).await?;
    let mut standby = SharedDispatcher::start(&with_lease("standby.log")).await?;
    standby.wait_standby(PROMPTLY).await?;
    let token_before = lease_token(&cluster, "d2").await?;
    let mut command = owner.command().await?;
    let grid = area_box(&mut command, D2_GRID).await?;
    let primary = cluster.primary_for("pingji:{d2}:events")?;
    let replica = cluster.replica_of(primary)?;

    let killed_at = Instant::now();
    let observed = load_through(&owner, grid, || {
        cluster.kill(primary);
        cluster.wait_promoted(replica)
    })
    .await;
    let promoted_after = killed_at.elapsed();
    let journaled = reported_in_stream(&cluster, "d2").await?;
    let observed = match observed {
        Ok(observed) => observed,
        // The owner stopped at a hole: it must have said why, and the
        // standby takes the shard and recovers what the cluster kept.
        Err(error) if owner.has_exited() => {
            println!(
                "the owner stopped after the failover ({error}); its log ends: {}",
                owner.log().lines().last().unwrap_or("")
            );
            assert!(owner.log().contains("journal sequence mismatch"), "the owner stopped for another reason:\n{}", owner.log());
            standby.wait_owner(PROMPTLY).await?;
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let lost: Vec<&String> = observed.before.iter().filter(|id| !journaled.contains(*id)).collect();
    println!(
        "kill -9 of primary node {primary}: node {replica} promoted and 10 creates acknowledged again {} ms after the kill; {} creates \
         acknowledged before, {} refused during the gap ({:?}), {} acknowledged after; {} acknowledged before the kill \
         missing on the promoted replica: {lost:?}",
        promoted_after.as_millis(),
        observed.before.len(),
        observed.gap.len(),
        observed.gap.iter().map(|(code, _)| format!("{code:?}")).collect::<BTreeSet<_>>(),
        observed.after.len(),
        lost.len()
    );
    assert!(!observed.gap.is_empty(), "no create was refused while d2's slot had no primary");
    assert_refused_cleanly(&observed.gap);
    assert!(
        observed.gap.iter().any(|(_, message)| message.contains("cannot be reached")),
        "the refusals do not say the store is out of reach: {:?}",
        observed.gap
    );
    // The same process goes on with its lease; the standby never wrote.
    assert!(!owner.has_exited(), "the owner stopped:\n{}", owner.log());
    assert_eq!(lease_token(&cluster, "d2").await?, token_before, "the shard changed hands");
    standby.wait_standby(PROMPTLY).await?;
    // Everything acknowledged after the failover is in the stream, and the
    // stream has no hole (checked by reported_in_stream).
    for id in &observed.after {
        anyhow::ensure!(journaled.contains(id), "incident {id}, acknowledged after the failover, is not in d2's stream");
    }
    // Losing an acknowledged create and going on would be a silent hole;
    // with a loss the owner must have stopped (the branch above).
    assert!(lost.is_empty(), "acknowledged creates were lost and the owner went on writing: {lost:?}");

    // The killed node comes back as a replica of the new primary.
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        cluster.restart(primary)?;
        cluster.wait_ok()
    })?;
    assert_eq!(cluster.role(primary)?, "slave", "the old primary rejoined as a replica");
    Ok(())
}

/// Rebuilds the stream `KEYS[1]` without its last entry; returns that
/// entry's id.
const WITHOUT_THE_LAST_ENTRY: &str = r"
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
redis.call('DEL', KEYS[1])
for i = 1, #entries - 1 do
  redis.call('XADD', KEYS[1], entries[i][1], unpack(entries[i][2]))
end
return entries[#entries][1]
";

/// A promoted replica that lacks the last acknowledged event (what an
/// asynchronous failover can lose; made certain here by rebuilding the
/// stream without its last entry on the new primary after a manual
/// failover): the
/// owner's next append does not continue the stream, is refused by the
/// append script's sequence check, and the owner stops rather than write
/// past the hole. The standby takes the shard with a larger token and
/// serves what the cluster kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_whose_events_the_promoted_replica_lacks_stops_at_the_hole() -> anyhow::Result<()> {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cluster = start_cluster(dir.path()).await?;
    let mut owner = SharedDispatcher::start(&options(dir.path(), &cluster, "d2", "owner.log")).await?;
    owner.wait_owner(PROMPTLY).await?;
    let mut standby = SharedDispatcher::start(&options(dir.path(), &cluster, "d2", "standby.log")).await?;
    standby.wait_standby(PROMPTLY).await?;
    let token_before = lease_token(&cluster, "d2").await?.ok_or_else(|| anyhow::anyhow!("no lease"))?;
    let mut command = owner.command().await?;
    let grid = area_box(&mut command, D2_GRID).await?;
    for index in 1..=5 {
        command.create_incident(incident(format!("kept-{index}"), grid.centre())).await?;
    }

    let events = "pingji:{d2}:events";
    let replica = cluster.replica_of(cluster.primary_for(events)?)?;
    let lost_id = tokio::task::block_in_place(|| -> anyhow::Result<String> {
        cluster.manual_failover(replica)?;
        // The stream rebuilt without its last entry, as a replica that
        // never received it has it (XDEL would keep the stream's last id).
        cluster.query(replica, &["EVAL", WITHOUT_THE_LAST_ENTRY, "1", events])
    })?;
    println!("removed entry {lost_id} of {events} on the promoted replica");

    let refused = command.create_incident(incident("past-the-hole".into(), grid.centre())).await;
    let status = refused.err().ok_or_else(|| anyhow::anyhow!("a create past the hole was acknowledged"))?;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    owner.wait_exit(PROMPTLY).await?;
    assert!(owner.log().contains("journal sequence mismatch"), "the owner stopped for another reason:\n{}", owner.log());

    standby.wait_owner(PROMPTLY).await?;
    let token_after = lease_token(&cluster, "d2").await?.ok_or_else(|| anyhow::anyhow!("no lease"))?;
    assert!(token_after > token_before, "the new owner's token {token_after} is above the old {token_before}");
    let mut at_standby = standby.command().await?;
    let absent = at_standby.get_incident(pb::GetIncidentRequest { id: "past-the-hole".into() }).await;
    assert_eq!(absent.err().map(|status| status.code()), Some(tonic::Code::NotFound), "the refused create exists");
    let listed = at_standby.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    let served: BTreeSet<String> = listed.into_iter().map(|incident| incident.id).collect();
    // The deleted entry was the last, so the seqs still run 1, 2, 3 ...
    let kept = reported_in_stream(&cluster, "d2").await?;
    assert_eq!(served, kept, "the new owner serves exactly the incidents the cluster kept");
    at_standby.create_incident(incident("after-the-hole".into(), grid.centre())).await?;
    Ok(())
}
