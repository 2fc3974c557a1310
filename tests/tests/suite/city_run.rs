//! The city, run (issue #23, docs/scale.md): the `cityrun` bench binary's
//! `--quick` mode end to end, shortened to half a minute. A generated city
//! of 4 districts and 20,000 people, its own redis-server, two dispatcher
//! processes sharing the district shards, 200 sessions at their districts'
//! owners, a city-wide grade I switch, incidents (a third near borders) and
//! a kill -9 of one process half way. What is checked is that the run
//! holds together, not its speed: incidents are staffed, the killed
//! process's shards are taken over and served by the other, the sessions
//! cut off reconnect there, and nobody holds two assignments at once.

use pingji_tests::binaries::workspace_binary;
use pingji_tests::process::dispatcher_binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_city_run_staffs_its_incidents_and_takes_the_killed_shards_over() -> anyhow::Result<()> {
    let dispatcher = dispatcher_binary().await?;
    let cityrun = workspace_binary("pingji-tests", "cityrun").await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("run");
    let run = tokio::process::Command::new(&cityrun)
        .args(["--quick", "--minutes", "0.5", "--incidents", "40", "--out"])
        .arg(&out)
        .arg("--dispatcher")
        .arg(&dispatcher)
        .kill_on_drop(true)
        .output()
        .await?;
    let printed = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    anyhow::ensure!(run.status.success(), "cityrun --quick failed ({}):\n{printed}", run.status);
    let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("figures.json"))?)?;
    let number = |section: &str, key: &str| figures[section][key].as_u64().unwrap_or(0);

    assert_eq!(number("incidents", "reported"), 40, "{printed}");
    assert_eq!(number("incidents", "create_given_up"), 0, "{printed}");
    // Sparse sessions (200 over a 40 km city) leave a few incidents with
    // nobody in reach; most are staffed.
    assert!(number("incidents", "staffed") >= 30, "{printed}");
    assert_eq!(number("incidents", "people_with_two_assignments_at_once"), 0, "{printed}");

    let shards = figures["kill"]["shards"].as_array().map_or(0, Vec::len);
    assert!(shards >= 1, "the killed process owned shards: {printed}");
    assert_eq!(
        number("kill", "shards_taken_over"),
        shards as u64,
        "every shard of the killed process is served again: {printed}"
    );
    let broken = number("sessions", "broken");
    assert!(broken >= 1, "sessions at the killed process were cut off: {printed}");
    assert_eq!(number("sessions", "reconnected"), broken, "each reconnected at the new owner: {printed}");
    assert!(out.join("offer-latency.svg").is_file() && out.join("processes.svg").is_file());
    Ok(())
}

/// Rows of the large roster: all but a few live in d2, so that d1's owner
/// keeps few people and its time goes into reading the file.
const LARGE_ROSTER_ROWS: usize = 300_000;

/// A dispatcher reading a city's roster at start must go on renewing its
/// shard's lease meanwhile. Found by `cityrun`: with the file read and
/// parsed on the async workers, a 200,000-row roster kept them busy past
/// the lease's ttl, a standby took the shard, and the first owner stepped
/// down (and so on in turn). Here each process has one worker
/// (`TOKIO_WORKER_THREADS=1`, as on a busy small machine) and a 1 s lease;
/// the first owner must keep d1 through its load while a standby waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_owner_keeps_its_shard_while_it_reads_a_large_roster() -> anyhow::Result<()> {
    use pingji_tests::redis::RedisServer;
    use std::fmt::Write as _;
    use std::time::Duration;

    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let mut roster = String::from("id,name,role,skills,phone,home_area_id,travel_mode,on_duty,home_lon,home_lat\n");
    for n in 0..LARGE_ROSTER_ROWS {
        let district = if n < 10 { "d1" } else { "d2" };
        writeln!(roster, "r{n:07},王伟,volunteer,first_aid,139{:08},{district},walk,true,120.16,30.26", n)?;
    }
    let roster_path = dir.path().join("roster.csv");
    std::fs::write(&roster_path, roster)?;
    let binary = dispatcher_binary().await?;
    let start = |name: &str| -> anyhow::Result<(tokio::process::Child, String, std::path::PathBuf)> {
        let address = pingji_tests::load::free_address()?.to_string();
        let log = dir.path().join(format!("{name}.log"));
        let child = tokio::process::Command::new(&binary)
            .args(["--listen", &address, "--advertise", &address, "--store", &redis.url(), "--shard", "d1"])
            .args(["--lease-ttl-ms", "1000", "--lease-renew-ms", "250"])
            .arg("--areas")
            .arg(pingji_tests::sample_city())
            .arg("--agents")
            .arg(&roster_path)
            .env("TOKIO_WORKER_THREADS", "1")
            .env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", pingji_tests::ADMIN_TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        Ok((child, address, log))
    };
    let (mut first, first_address, first_log) = start("first")?;
    // The first takes d1 before the standby starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&first_log)?.contains("this dispatcher owns the shard now") {
        anyhow::ensure!(first.try_wait()?.is_none(), "the first exited: {}", std::fs::read_to_string(&first_log)?);
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the first did not take d1: {}",
            std::fs::read_to_string(&first_log)?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut standby, _, standby_log) = start("standby")?;

    let channel = pingji_tests::connect_with_retry(first_address.parse()?, Duration::from_secs(60)).await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let logs = || {
            format!(
                "first:\n{}\nstandby:\n{}",
                std::fs::read_to_string(&first_log).unwrap_or_default(),
                std::fs::read_to_string(&standby_log).unwrap_or_default()
            )
        };
        anyhow::ensure!(first.try_wait()?.is_none(), "the first owner stepped down while loading: {}", logs());
        anyhow::ensure!(standby.try_wait()?.is_none(), "the standby exited: {}", logs());
        let asked = tonic_health::pb::HealthCheckRequest { service: "pingji.v1.CommandService".into() };
        if let Ok(answer) = health.check(asked).await
            && answer.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the first owner never served d1: {}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(&first_log)?;
    assert!(log.contains("roster loaded"), "{log}");
    assert!(!log.contains("must stop"), "{log}");
    assert!(!std::fs::read_to_string(&standby_log)?.contains("owns the shard now"), "the standby never took d1");
    Ok(())
}
