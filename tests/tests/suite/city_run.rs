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
