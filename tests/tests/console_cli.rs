//! The `pingji` console end to end: the compiled binary against a real
//! dispatcher on port 0, checked the way an operator or a script reads it
//! (exit code, stdout tables or JSON, one-line errors on stderr).

use std::time::Duration;

use pingji_tests::cli::{RunningCli, run_pingji};
use pingji_tests::{TestServer, area_box, pb, person, sample_city, sample_roster};
use serde_json::Value;

/// Generous deadline for anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(20);

/// A dispatcher with nothing loaded: the console imports the map itself.
async fn empty_server() -> anyhow::Result<TestServer> {
    TestServer::start(|config| config.areas_file = None).await
}

fn server_url(server: &TestServer) -> String {
    format!("http://{}", server.address())
}

fn path_arg(path: &std::path::Path) -> anyhow::Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("path is not UTF-8: {}", path.display()))
}

/// Every person on the roster, by id.
async fn roster_ids(server: &TestServer) -> anyhow::Result<Vec<String>> {
    let mut command = server.command().await?;
    let agents = command.list_agents(pb::ListAgentsRequest::default()).await?.into_inner().agents;
    Ok(agents.into_iter().filter_map(|agent| agent.spec.map(|spec| spec.id)).collect())
}

/// Checks a failed command: the exit code, and one line on stderr that
/// contains `expected`.
fn assert_one_line_error(output: &pingji_tests::cli::CliOutput, code: i32, expected: &str) {
    assert_eq!(output.code(), Some(code), "exit code; stderr: {}", output.stderr);
    assert!(output.stderr.contains(expected), "stderr should contain {expected:?}:\n{}", output.stderr);
    assert!(output.stdout.is_empty(), "nothing on stdout:\n{}", output.stdout);
}

fn assert_single_line(stderr: &str) {
    assert!(stderr.starts_with("pingji: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line on stderr:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_imports_reports_and_switches_mode_from_the_command_line() -> anyhow::Result<()> {
    let server = empty_server().await?;
    let url = server_url(&server);

    // Areas and roster, through the CLI.
    let imported = run_pingji(&url, &["areas", "import", &path_arg(&sample_city())?]).await?.success()?;
    assert_eq!(imported.stdout.trim_end(), format!("imported 47 areas and 12 service centres from {}", sample_city().display()));
    let areas = run_pingji(&url, &["areas", "list", "--level", "district", "--json"]).await?.success()?.json()?;
    let districts: Vec<&str> = areas["areas"].as_array().into_iter().flatten().filter_map(|area| area["id"].as_str()).collect();
    assert_eq!(districts, ["d1", "d2"]);
    let roster = run_pingji(&url, &["roster", "import", &path_arg(&sample_roster())?, "--json"]).await?.success()?.json()?;
    assert_eq!(roster, serde_json::json!({ "imported": 320, "skipped": [] }));
    assert_eq!(roster_ids(&server).await?.len(), 320);

    // A person in full, phone included; the list aligns Chinese names.
    let shown = run_pingji(&url, &["roster", "show", "p0001"]).await?.success()?;
    assert!(shown.stdout.contains("name:               黄磊\n"), "{}", shown.stdout);
    assert!(shown.stdout.contains("phone:              13959505353\n"), "{}", shown.stdout);
    let listed = run_pingji(&url, &["roster", "list", "--area", "d1-s1-c1-g1"]).await?.success()?;
    assert!(listed.stdout.contains("10 people"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("13959505353"), "no phones in lists:\n{}", listed.stdout);

    // An incident, seen in the list and in the record.
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let at = format!("{lon},{lat}");
    let created = run_pingji(
        &url,
        &[
            "--operator",
            "li.na",
            "incident",
            "create",
            "--at",
            &at,
            "--category",
            "medical",
            "--priority",
            "2",
            "--skill",
            "first_aid",
            "--need",
            "1",
            "--description",
            "老人摔倒",
            "--json",
        ],
    )
    .await?
    .success()?
    .json()?;
    let incident_id = created["id"].as_str().unwrap_or_default().to_string();
    assert!(incident_id.starts_with("inc-"), "{created}");
    assert_eq!(created["grid_id"], "d1-s1-c1-g1");
    assert_eq!(created["reported_by"], "operator:li.na");

    let listed = run_pingji(&url, &["incident", "list", "--open", "--json"]).await?.success()?.json()?;
    let listed_incident = listed["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|incident| incident["id"] == incident_id.as_str())
        .ok_or_else(|| anyhow::anyhow!("{incident_id} is not in incident list --json: {listed}"))?;
    assert_eq!(listed_incident["category"], "medical");
    assert_eq!(listed_incident["priority"], 2);
    assert_eq!(listed_incident["required_skills"], serde_json::json!(["first_aid"]));
    assert_eq!(listed_incident["description"], "老人摔倒");

    let shown = run_pingji(&url, &["incident", "show", &incident_id]).await?.success()?;
    assert!(shown.stdout.contains(&format!("id:           {incident_id}")), "{}", shown.stdout);
    assert!(shown.stdout.contains("assignments: none"), "{}", shown.stdout);

    let events = run_pingji(&url, &["events", "--from", "1", "--json"]).await?.success()?.json()?;
    let kinds: Vec<&str> = events.as_array().into_iter().flatten().filter_map(|event| event["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"areas_imported"), "{kinds:?}");
    let reported = events
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["kind"] == "incident_reported" && event["incident_id"] == incident_id.as_str())
        .ok_or_else(|| anyhow::anyhow!("no incident_reported for {incident_id} in {kinds:?}"))?;
    assert_eq!(reported["actor"], "operator:li.na");
    assert_eq!(reported["detail"]["spec"]["category"], "medical");
    let human_events = run_pingji(&url, &["events"]).await?.success()?;
    assert!(
        human_events.stdout.contains(&format!("incident_reported      {incident_id} medical P2 x1 needs first_aid")),
        "{}",
        human_events.stdout
    );

    // Emergency in a district: shown with its own and effective mode, and
    // through it in the district's streets.
    let switched = run_pingji(
        &url,
        &["--operator", "commander", "mode", "set", "d1", "emergency", "--grade", "II", "--reason", "台风登陆", "--json"],
    )
    .await?
    .success()?
    .json()?;
    assert_eq!(switched["id"], "d1");
    assert_eq!(switched["mode"], "emergency_ii");
    let modes = run_pingji(&url, &["mode", "show", "--json"]).await?.success()?.json()?;
    let mode_of = |id: &str| -> Option<(String, String)> {
        modes["areas"].as_array()?.iter().find(|area| area["id"] == id).map(|area| {
            (
                area["mode"].as_str().unwrap_or_default().to_string(),
                area["effective_mode"].as_str().unwrap_or_default().to_string(),
            )
        })
    };
    assert_eq!(mode_of("d1"), Some(("emergency_ii".to_string(), "emergency_ii".to_string())), "{modes}");
    assert_eq!(mode_of("d1-s1"), Some(("normal".to_string(), "emergency_ii".to_string())), "{modes}");
    assert_eq!(mode_of("d2"), None, "d2 stays normal: {modes}");
    let modes_text = run_pingji(&url, &["mode", "show"]).await?.success()?;
    assert!(modes_text.stdout.lines().nth(1).is_some_and(|line| line.starts_with("d1 ")), "{}", modes_text.stdout);

    run_pingji(&url, &["mode", "set", "d1", "normal", "--reason", "台风过境"]).await?.success()?;
    let all_normal = run_pingji(&url, &["mode", "show"]).await?.success()?;
    assert_eq!(all_normal.stdout, "all areas normal\n");

    // Ending the incident: cancel works once; closing it afterwards is refused.
    let cancelled = run_pingji(&url, &["incident", "cancel", &incident_id, "--reason", "家属已送医"]).await?.success()?;
    assert_eq!(cancelled.stdout, format!("cancelled {incident_id}\n"));
    let closed_again = run_pingji(&url, &["incident", "close", &incident_id, "--feedback", "done"]).await?;
    assert_one_line_error(&closed_again, 1, &format!("pingji: failed precondition: incident {incident_id} is already cancelled"));
    assert_single_line(&closed_again.stderr);

    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_new_events_as_they_happen() -> anyhow::Result<()> {
    // The sample city is loaded at start: event 1 is areas_imported.
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let mut follow = RunningCli::spawn(&url, &["events", "--follow", "--from", "1", "--json"]).await?;
    let first = follow.wait_for_line(PROMPTLY, "for the replayed areas_imported", |line| line.contains("areas_imported")).await?;
    let first: Value = serde_json::from_str(&first)?;
    assert_eq!(first["seq"], 1);

    // Now live: an incident reported after the follower started.
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d2-s1-c1-g1").await?.centre();
    let created = command
        .create_incident(pb::CreateIncidentRequest {
            id: "inc-follow".to_string(),
            location: Some(pb::Location { lon, lat }),
            category: "fire".to_string(),
            priority: 1,
            required_skills: Vec::new(),
            headcount: 1,
            description: String::new(),
        })
        .await?
        .into_inner();
    let line = follow
        .wait_for_line(PROMPTLY, "for incident_reported of inc-follow", |line| {
            line.contains("\"incident_reported\"") && line.contains("inc-follow")
        })
        .await?;
    let reported: Value = serde_json::from_str(&line)?;
    assert_eq!(reported["incident_id"], created.id.as_str());
    assert_eq!(reported["detail"]["spec"]["priority"], 1);
    // One JSON object per line, every line.
    for seen in follow.seen() {
        serde_json::from_str::<Value>(seen).map_err(|error| anyhow::anyhow!("not a JSON line ({error}): {seen}"))?;
    }
    follow.kill().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearby_lists_connected_people_by_arrival_time() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let _near = server.connect_person_at(person("near", "d1-s1-c1-g1", &["first_aid"]), lon + 0.001, lat).await?;
    let _far = server.connect_person_at(person("far", "d1-s1-c1-g1", &["first_aid"]), lon + 0.01, lat).await?;
    let _unskilled = server.connect_person_at(person("unskilled", "d1-s1-c1-g1", &[]), lon, lat).await?;
    let at = format!("{lon},{lat}");
    let nearby = run_pingji(&url, &["agents", "nearby", "--at", &at, "-k", "5", "--skill", "first_aid", "--json"])
        .await?
        .success()?
        .json()?;
    let ids: Vec<&str> = nearby["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|candidate| candidate["agent"]["spec"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["near", "far"]);
    let table = run_pingji(&url, &["agents", "nearby", "--at", &at, "--available"]).await?.success()?;
    let first_row = table.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(first_row.trim_start().starts_with("1  unskilled"), "{}", table.stdout);
    let connected = run_pingji(&url, &["roster", "list", "--connected", "--json"]).await?.success()?.json()?;
    assert_eq!(connected["agents"].as_array().map(Vec::len), Some(3), "{connected}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_incident_is_one_clear_line_and_exit_code_1() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let output = run_pingji(&url, &["incident", "show", "inc-9"]).await?;
    assert_one_line_error(&output, 1, "pingji: not found: incident inc-9 does not exist; list incidents to find its id");
    assert_single_line(&output.stderr);
    let cancel = run_pingji(&url, &["incident", "cancel", "inc-9", "--reason", "test"]).await?;
    assert_one_line_error(&cancel, 1, "not found: incident inc-9 does not exist");
    let unknown_area = run_pingji(&url, &["mode", "set", "d9", "emergency", "--grade", "I", "--reason", "test"]).await?;
    assert_one_line_error(&unknown_area, 1, "pingji: not found: area d9 is not on the map");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_usage_errors_with_exit_code_2() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let create = |at: &'static str| ["incident", "create", "--at", at, "--category", "medical", "--priority", "1", "--need", "1"];
    let outside = run_pingji(&url, &create("200,30")).await?;
    assert_one_line_error(&outside, 2, "longitude 200 is outside -180..180");
    let swapped = run_pingji(&url, &create("30.27,120.15")).await?;
    assert_one_line_error(&swapped, 2, "did you give LAT,LON?");
    let not_a_pair = run_pingji(&url, &create("120.15")).await?;
    assert_one_line_error(&not_a_pair, 2, "\"120.15\" is not LON,LAT");
    let no_grade = run_pingji(&url, &["mode", "set", "d1", "emergency", "--reason", "test"]).await?;
    assert_one_line_error(&no_grade, 2, "an emergency needs a grade");
    let grade_for_normal = run_pingji(&url, &["mode", "set", "d1", "normal", "--grade", "II", "--reason", "test"]).await?;
    assert_one_line_error(&grade_for_normal, 2, "normal mode has no grade");
    let bad_grade = run_pingji(&url, &["mode", "set", "d1", "emergency", "--grade", "V", "--reason", "test"]).await?;
    assert_one_line_error(&bad_grade, 2, "\"V\" is not an emergency grade");
    // Nothing reached the dispatcher.
    let mut command = server.command().await?;
    let incidents = command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    assert!(incidents.is_empty(), "{incidents:?}");
    server.shutdown().await
}

const ROSTER_WITH_TWO_BAD_ROWS: &str = "\
id,name,role,skills,phone,home_area_id,travel_mode,on_duty
g1,王芳,grid_leader,first_aid,13900000001,d1-s1-c1-g1,walk,true
b1,李强,boss,,13900000002,d1-s1-c1-g1,walk,true
g2,欧阳桂英,volunteer,elder_care,,d1-s1-c1-g2,bike,yes
b2,,volunteer,,,d1-s1-c1-g1,walk,true
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_with_bad_rows_imports_nothing_unless_told_to_skip_them() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let directory = tempfile::tempdir()?;
    let file = directory.path().join("roster.csv");
    std::fs::write(&file, ROSTER_WITH_TWO_BAD_ROWS)?;
    let file = path_arg(&file)?;
    let before = roster_ids(&server).await?;

    let refused = run_pingji(&url, &["roster", "import", &file]).await?;
    assert_eq!(refused.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(refused.stderr.contains("has problems on 2 lines; nothing imported"), "{}", refused.stderr);
    assert!(refused.stderr.contains("line 3: unknown role \"boss\""), "{}", refused.stderr);
    assert!(refused.stderr.contains("line 5: name is empty"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--skip-bad"), "{}", refused.stderr);
    assert_eq!(roster_ids(&server).await?, before, "nothing was imported");

    let skipped = run_pingji(&url, &["roster", "import", &file, "--skip-bad"]).await?.success()?;
    assert!(skipped.stdout.starts_with(&format!("imported 2 people from {file}\n")), "{}", skipped.stdout);
    assert!(skipped.stdout.contains("skipped 2 lines with problems:"), "{}", skipped.stdout);
    assert!(skipped.stdout.contains("line 3: unknown role \"boss\""), "{}", skipped.stdout);
    assert!(skipped.stdout.contains("line 5: name is empty"), "{}", skipped.stdout);
    let mut after = roster_ids(&server).await?;
    after.sort();
    assert_eq!(after, ["g1", "g2"], "only the good rows were imported");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_that_is_not_running_is_reported_as_such() -> anyhow::Result<()> {
    // A port that was free a moment ago, with nobody listening.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let url = format!("http://{address}");
    let output = run_pingji(&url, &["incident", "list"]).await?;
    assert_one_line_error(&output, 1, &format!("pingji: cannot reach the dispatcher at {url} (is it running?)"));
    assert_single_line(&output.stderr);
    Ok(())
}
