//! The `pingji` console end to end: the compiled binary against a real
//! dispatcher on port 0, checked the way an operator or a script reads it
//! (exit code, stdout tables or JSON, one-line errors on stderr).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use pingji_tests::cli::{CliOutput, RunningCli, pingji_binary, run_pingji};
use pingji_tests::{AgentSession, TestServer, area_box, pb, person, sample_city, sample_roster};
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

/// Runs `pingji --server URL ARGS...` with no token at all: the shared
/// helper always gives the test admin's, so this one starts the binary
/// itself, with every `PINGJI_*` variable removed from its environment.
async fn run_pingji_without_token(url: &str, args: &[&str]) -> anyhow::Result<CliOutput> {
    let mut command = tokio::process::Command::new(pingji_binary().await?);
    command.arg("--server").arg(url).args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    command.env_remove("PINGJI_TOKEN");
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .context("pingji did not finish within 60 s")?
        .context("cannot run pingji")?;
    Ok(CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The token the console printed alone on stdout.
fn token_shown_once(stdout: &str) -> anyhow::Result<String> {
    stdout
        .lines()
        .find_map(|line| Some(line.trim()).filter(|line| line.starts_with("pj")).map(str::to_string))
        .ok_or_else(|| anyhow::anyhow!("no token shown once in:\n{stdout}"))
}

/// Whether `token` looks like one the dispatcher issues: `prefix` then 64
/// hex digits.
fn is_token(token: &str, prefix: &str) -> bool {
    let secret = token.strip_prefix(prefix).map(|rest| rest.rsplit('_').next().unwrap_or(rest));
    secret.is_some_and(|secret| secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_imports_reports_and_switches_mode_from_the_command_line() -> anyhow::Result<()> {
    let server = empty_server().await?;
    let url = server_url(&server);

    // Areas and roster, through the CLI.
    let imported = run_pingji(&url, &["areas", "import", &path_arg(&sample_city())?]).await?.success()?;
    let mut lines = imported.stdout.lines();
    assert_eq!(lines.next(), Some(format!("imported 47 areas and 12 service centres from {}", sample_city().display()).as_str()));
    assert_eq!(lines.next(), Some("added 47, changed 0, unchanged 0, retired 0"));
    let areas = run_pingji(&url, &["areas", "list", "--level", "district", "--json"]).await?.success()?.json()?;
    let districts: Vec<&str> = areas["areas"].as_array().into_iter().flatten().filter_map(|area| area["id"].as_str()).collect();
    assert_eq!(districts, ["d1", "d2"]);
    // The people's tokens go to a new file only its owner can read.
    let directory = tempfile::tempdir()?;
    let tokens_file = directory.path().join("tokens.csv");
    let roster =
        run_pingji(&url, &["roster", "import", &path_arg(&sample_roster())?, "--tokens-out", &path_arg(&tokens_file)?, "--json"])
            .await?
            .success()?
            .json()?;
    assert_eq!(roster, serde_json::json!({ "imported": 320, "skipped": [], "tokens_file": path_arg(&tokens_file)? }));
    assert_eq!(roster_ids(&server).await?.len(), 320);
    let tokens = std::fs::read_to_string(&tokens_file)?;
    let mut token_lines = tokens.lines();
    assert_eq!(token_lines.next(), Some("agent_id,token"));
    let token_rows: Vec<(&str, &str)> = token_lines.filter_map(|line| line.split_once(',')).collect();
    assert_eq!(token_rows.len(), 320, "{tokens}");
    assert!(token_rows.iter().all(|(_, token)| is_token(token, "pja_")), "{tokens}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tokens_file)?.permissions().mode();
        assert_eq!(mode & 0o077, 0, "the tokens file is private: mode {mode:o}");
    }
    // A token from the file opens that person's field session.
    let (first_id, first_token) = token_rows[0];
    let session = AgentSession::open(&mut server.agents().await?, first_id, first_token).await?;
    session.disconnect();

    // A person in full, phone included; the list aligns Chinese names.
    let shown = run_pingji(&url, &["roster", "show", "p0001"]).await?.success()?;
    assert!(shown.stdout.contains("name:               黄磊\n"), "{}", shown.stdout);
    assert!(shown.stdout.contains("phone:              13959505353\n"), "{}", shown.stdout);
    let listed = run_pingji(&url, &["roster", "list", "--area", "d1-s1-c1-g1"]).await?.success()?;
    assert!(listed.stdout.contains("10 people"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("13959505353"), "no phones in lists:\n{}", listed.stdout);

    // An incident, reported by a dispatcher account the admin adds: the
    // record names the account whose token was sent.
    let added = run_pingji(&url, &["account", "add", "li.na", "--role", "dispatcher", "--json"]).await?.success()?.json()?;
    assert_eq!(added["name"], "li.na");
    assert_eq!(added["role"], "dispatcher");
    let dispatcher_token = added["token"].as_str().unwrap_or_default().to_string();
    assert!(is_token(&dispatcher_token, "pjo_li.na_"), "{added}");
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let at = format!("{lon},{lat}");
    let created = run_pingji(
        &url,
        &[
            "--token",
            &dispatcher_token,
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
    // The test admin, bootstrapped at start, is the first event.
    assert!(kinds.starts_with(&["operator_added", "areas_imported"]), "{kinds:?}");
    let reported = events
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["kind"] == "incident_reported" && event["incident_id"] == incident_id.as_str())
        .ok_or_else(|| anyhow::anyhow!("no incident_reported for {incident_id} in {kinds:?}"))?;
    assert_eq!(reported["actor"], "operator:li.na");
    assert_eq!(reported["detail"]["spec"]["category"], "medical");
    let human_events = run_pingji(&url, &["events"]).await?.success()?;
    // Events about tokens read as lines, without their hashes.
    assert!(human_events.stdout.contains("operator admin added as admin"), "{}", human_events.stdout);
    assert!(human_events.stdout.contains("new tokens issued for 320 people"), "{}", human_events.stdout);
    assert!(human_events.stdout.contains("operator li.na added as dispatcher"), "{}", human_events.stdout);
    assert!(!human_events.stdout.contains("argon2"), "{}", human_events.stdout);
    assert!(
        human_events.stdout.contains(&format!("incident_reported      {incident_id} medical P2 x1 needs first_aid")),
        "{}",
        human_events.stdout
    );

    // Emergency in a district: shown with its own and effective mode, and
    // through it in the district's streets.
    let switched = run_pingji(&url, &["mode", "set", "d1", "emergency", "--grade", "II", "--reason", "台风登陆", "--json"])
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
    // The incident was reported in normal mode: it says so beside the mode now.
    let shown = run_pingji(&url, &["incident", "show", &incident_id]).await?.success()?;
    assert!(shown.stdout.contains("mode:         emergency II (orange) now, normal when reported\n"), "{}", shown.stdout);
    assert!(shown.stdout.contains("needs:        1 person with first_aid\n"), "{}", shown.stdout);
    let shown = run_pingji(&url, &["incident", "show", &incident_id, "--json"]).await?.success()?.json()?;
    assert_eq!((&shown["mode"], &shown["reported_mode"]), (&"emergency_ii".into(), &"normal".into()), "{shown}");

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
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "fire".to_string(),
            priority: 1,
            required_skills: Vec::new(),
            headcount: 1,
            description: String::new(),
            force: false,
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

/// The new user's trip of issue #25: a point in another city and a
/// misspelt skill are refused with what to do (exit 1), and `--force`
/// reports them anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_off_the_map_or_with_an_unknown_skill_is_refused_unless_forced() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let url = server_url(&server);
    let create = |at: &'static str, skill: &'static str| {
        ["incident", "create", "--at", at, "--category", "medical", "--priority", "1", "--need", "1", "--skill", skill]
    };
    let off_the_map = run_pingji(&url, &create("121.47,31.23", "first_aid")).await?;
    assert_one_line_error(&off_the_map, 1, "pingji: invalid argument: location 121.47000,31.23000 is outside every area");
    assert!(off_the_map.stderr.contains("pass --force"), "{}", off_the_map.stderr);
    assert_single_line(&off_the_map.stderr);
    let misspelt = run_pingji(&url, &create("120.0956,30.2353", "firstaid")).await?;
    assert_one_line_error(&misspelt, 1, "nobody on the roster has the skill \"firstaid\" (nearest known: first_aid");
    assert_single_line(&misspelt.stderr);
    let mut command = server.command().await?;
    assert!(command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents.is_empty());

    let mut forced = create("121.47,31.23", "first_aid").to_vec();
    forced.push("--force");
    let reported = run_pingji(&url, &forced).await?.success()?;
    assert!(reported.stdout.contains("outside every grid"), "{}", reported.stdout);
    let mut forced = create("120.0956,30.2353", "firstaid").to_vec();
    forced.push("--force");
    let reported = run_pingji(&url, &forced).await?.success()?;
    assert!(reported.stdout.ends_with("\nit cannot be staffed: nobody on the roster has firstaid\n"), "{}", reported.stdout);
    assert_eq!(command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents.len(), 2);
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

    // Without --tokens-out, stdout is only the tokens' CSV (for `> file`);
    // the summary, the skipped lines and a warning go to stderr.
    let skipped = run_pingji(&url, &["roster", "import", &file, "--skip-bad"]).await?.success()?;
    assert!(
        skipped.stderr.contains("no --tokens-out: the tokens of the 2 people imported are printed on stdout"),
        "{}",
        skipped.stderr
    );
    assert!(skipped.stderr.contains(&format!("imported 2 people from {file}\n")), "{}", skipped.stderr);
    assert!(skipped.stderr.contains("skipped 2 lines with problems:"), "{}", skipped.stderr);
    assert!(skipped.stderr.contains("line 3: unknown role \"boss\""), "{}", skipped.stderr);
    assert!(skipped.stderr.contains("line 5: name is empty"), "{}", skipped.stderr);
    let csv: Vec<&str> = skipped.stdout.lines().collect();
    assert_eq!(csv.len(), 3, "{}", skipped.stdout);
    assert_eq!(csv[0], "agent_id,token");
    assert!(csv[1].starts_with("g1,pja_") && csv[2].starts_with("g2,pja_"), "{}", skipped.stdout);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_good_token_the_console_says_how_to_give_one() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);

    let no_token = run_pingji_without_token(&url, &["incident", "list"]).await?;
    assert_one_line_error(&no_token, 1, "pingji: unauthenticated: no operator token: pass --token or set PINGJI_TOKEN");
    assert_single_line(&no_token.stderr);

    let wrong_secret = format!("pjo_admin_{}", "0".repeat(64));
    let wrong = run_pingji(&url, &["--token", &wrong_secret, "incident", "list"]).await?;
    assert_one_line_error(&wrong, 1, "pingji: unauthenticated: the operator token is wrong");
    assert!(wrong.stderr.contains("--token or PINGJI_TOKEN"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains(&wrong_secret), "a refused token is not echoed: {}", wrong.stderr);

    // The old way of naming oneself is explained, not silently ignored.
    let old_flag = run_pingji(&url, &["--operator", "li.na", "incident", "list"]).await?;
    assert_eq!(old_flag.code(), Some(2), "{}", old_flag.stderr);
    assert!(old_flag.stderr.contains("--operator is no longer used"), "{}", old_flag.stderr);
    assert!(old_flag.stderr.contains("--token or set PINGJI_TOKEN"), "{}", old_flag.stderr);

    // Not sendable as a header: refused before connecting, not echoed.
    let unsendable = run_pingji(&url, &["--token", "pjo_admin_秘密", "incident", "list"]).await?;
    assert_one_line_error(&unsendable, 1, "pingji: the token from --token or PINGJI_TOKEN cannot be used");
    assert!(!unsendable.stderr.contains("秘密"), "{}", unsendable.stderr);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_added_listed_rotated_and_removed_and_roles_are_enforced() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);

    let whoami = run_pingji(&url, &["account", "whoami"]).await?.success()?;
    assert!(whoami.stdout.starts_with("admin (admin); token expires "), "{}", whoami.stdout);
    assert!(whoami.stdout.ends_with(" (in 89d23h)\n"), "90 days from its bootstrap: {}", whoami.stdout);

    let added = run_pingji(&url, &["account", "add", "li.na", "--role", "viewer"]).await?.success()?;
    assert!(added.stdout.starts_with("pjo_li.na_"), "{}", added.stdout);
    assert!(added.stderr.starts_with("added li.na as viewer; their token is on stdout, shown once"), "{}", added.stderr);
    let viewer_token = token_shown_once(&added.stdout)?;
    assert!(is_token(&viewer_token, "pjo_li.na_"), "{}", added.stdout);

    let whoami = run_pingji(&url, &["--token", &viewer_token, "account", "whoami", "--json"]).await?.success()?.json()?;
    assert_eq!(whoami["name"], "li.na");
    assert_eq!(whoami["role"], "viewer");

    // A viewer reads but does not switch modes; the refusal says what to do.
    run_pingji(&url, &["--token", &viewer_token, "mode", "show"]).await?.success()?;
    let refused =
        run_pingji(&url, &["--token", &viewer_token, "mode", "set", "d1", "emergency", "--grade", "II", "--reason", "r"]).await?;
    assert_one_line_error(
        &refused,
        1,
        "pingji: permission denied: SetMode needs the commander role or higher; li.na is a viewer",
    );
    assert!(refused.stderr.contains("pingji account add NAME --role ROLE"), "{}", refused.stderr);
    assert_single_line(&refused.stderr);
    let modes = run_pingji(&url, &["mode", "show"]).await?.success()?;
    assert_eq!(modes.stdout, "all areas normal\n", "the viewer switched nothing");
    // Nor manage accounts.
    let listing = run_pingji(&url, &["--token", &viewer_token, "account", "list"]).await?;
    assert_one_line_error(&listing, 1, "pingji: permission denied: ListOperators needs the admin role");

    let listed = run_pingji(&url, &["account", "list", "--json"]).await?.success()?.json()?;
    let accounts: Vec<(&str, &str)> = listed["operators"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|operator| Some((operator["name"].as_str()?, operator["role"].as_str()?)))
        .collect();
    assert_eq!(accounts, [("admin", "admin"), ("li.na", "viewer")]);
    let table = run_pingji(&url, &["account", "list"]).await?.success()?;
    assert!(table.stdout.starts_with("NAME   ROLE"), "{}", table.stdout);
    assert!(!table.stdout.contains("pjo_"), "no tokens in the list: {}", table.stdout);

    // Rotating one's own token: the new one works, the old one no longer.
    let rotated = run_pingji(&url, &["--token", &viewer_token, "account", "rotate"]).await?.success()?;
    let new_viewer_token = token_shown_once(&rotated.stdout)?;
    assert!(is_token(&new_viewer_token, "pjo_li.na_"), "{}", rotated.stdout);
    assert_ne!(new_viewer_token, viewer_token);
    let old = run_pingji(&url, &["--token", &viewer_token, "account", "whoami"]).await?;
    assert_one_line_error(&old, 1, "pingji: unauthenticated: ");
    run_pingji(&url, &["--token", &new_viewer_token, "account", "whoami"]).await?.success()?;

    // An admin revokes a token: it stops working at once, the account
    // stays; a new token (with its own lifetime) brings the account back.
    let revoked = run_pingji(&url, &["account", "revoke", "li.na"]).await?.success()?;
    assert!(revoked.stdout.starts_with("revoked the token of li.na: it no longer works"), "{}", revoked.stdout);
    let refused = run_pingji(&url, &["--token", &new_viewer_token, "account", "whoami"]).await?;
    assert_one_line_error(&refused, 1, "the operator token of li.na was revoked by an admin at ");
    let listed = run_pingji(&url, &["account", "list"]).await?.success()?;
    assert!(listed.stdout.lines().next().is_some_and(|header| header.ends_with("TOKEN EXPIRES")), "{}", listed.stdout);
    assert!(listed.stdout.lines().any(|row| row.starts_with("li.na") && row.contains("revoked ")), "{}", listed.stdout);
    let not_confirmed = run_pingji(&url, &["account", "token", "li.na"]).await?;
    assert_eq!(not_confirmed.code(), Some(2), "{}", not_confirmed.stderr);
    assert!(not_confirmed.stderr.contains("pingji account token li.na --rotate"), "{}", not_confirmed.stderr);
    let renewed = run_pingji(&url, &["account", "token", "li.na", "--rotate", "--expires", "2h"]).await?.success()?;
    assert!(renewed.stderr.starts_with("new token for li.na on stdout, shown once"), "{}", renewed.stderr);
    let renewed_token = token_shown_once(&renewed.stdout)?;
    let whoami = run_pingji(&url, &["--token", &renewed_token, "account", "whoami"]).await?.success()?;
    assert!(
        whoami.stdout.starts_with("li.na (viewer); token expires ") && whoami.stdout.contains("(in 1h59m)"),
        "{}",
        whoami.stdout
    );

    // A removed account's token stops working.
    let removed = run_pingji(&url, &["account", "remove", "li.na"]).await?.success()?;
    assert!(removed.stdout.starts_with("removed li.na"), "{}", removed.stdout);
    assert!(removed.stdout.ends_with("; their token no longer works\n"), "{}", removed.stdout);
    let gone = run_pingji(&url, &["--token", &renewed_token, "account", "whoami"]).await?;
    assert_one_line_error(&gone, 1, "pingji: unauthenticated: ");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_added_gets_a_token_once_and_rotating_it_replaces_the_old_one() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let add = ["roster", "add", "p0901", "--name", "王芳", "--role", "volunteer", "--skill", "first_aid"];
    let added = run_pingji(&url, &add).await?.success()?;
    assert!(added.stdout.starts_with("pja_"), "{}", added.stdout);
    assert!(added.stderr.starts_with("added p0901 (王芳); their token is on stdout"), "{}", added.stderr);
    let first_token = token_shown_once(&added.stdout)?;
    assert!(is_token(&first_token, "pja_"), "{}", added.stdout);
    // Saved again: the record changes, the token stays.
    let saved_again = run_pingji(&url, &[&add[..], &["--home-area", "d1-s1-c1-g1"]].concat()).await?.success()?;
    assert_eq!(saved_again.stdout, "saved p0901 (王芳); they were already on the roster, so they keep their token\n");
    let mut session = AgentSession::open(&mut server.agents().await?, "p0901", &first_token).await?;

    // The current token cannot be shown again: --rotate is required.
    let refused = run_pingji(&url, &["roster", "token", "p0901"]).await?;
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("shown only once"), "{}", refused.stderr);
    assert!(refused.stderr.contains("pingji roster token p0901 --rotate"), "{}", refused.stderr);

    let rotated = run_pingji(&url, &["roster", "token", "p0901", "--rotate"]).await?.success()?;
    assert!(rotated.stdout.starts_with("pja_") && rotated.stdout.lines().count() == 1, "{}", rotated.stdout);
    assert!(rotated.stderr.contains("it replaces the old one"), "{}", rotated.stderr);
    let new_token = token_shown_once(&rotated.stdout)?;
    assert!(is_token(&new_token, "pja_"), "{}", rotated.stdout);
    // The live session was ended; the old token is refused, the new one opens.
    session.expect_end_within(PROMPTLY).await?;
    let old = AgentSession::try_open(&mut server.agents().await?, "p0901", &first_token).await;
    assert!(old.is_err_and(|status| status.code() == tonic::Code::Unauthenticated));
    AgentSession::open(&mut server.agents().await?, "p0901", &new_token).await?.disconnect();

    let json = run_pingji(&url, &["roster", "token", "p0901", "--rotate", "--json"]).await?.success()?.json()?;
    assert_eq!(json["agent_id"], "p0901");
    assert!(json["token"].as_str().is_some_and(|token| is_token(token, "pja_")), "{json}");
    let unknown = run_pingji(&url, &["roster", "token", "nobody", "--rotate"]).await?;
    assert_one_line_error(&unknown, 1, "pingji: not found: ");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_never_writes_its_tokens_over_a_file() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let directory = tempfile::tempdir()?;
    let roster = directory.path().join("roster.csv");
    std::fs::write(&roster, "id,name,role\nq1,王芳,volunteer\n")?;
    let tokens_file = directory.path().join("tokens.csv");
    std::fs::write(&tokens_file, "agent_id,token\nold,pja_keep\n")?;
    let before = roster_ids(&server).await?;

    let refused = run_pingji(&url, &["roster", "import", &path_arg(&roster)?, "--tokens-out", &path_arg(&tokens_file)?]).await?;
    assert_one_line_error(&refused, 1, "already exists");
    assert!(refused.stderr.contains("nothing imported"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&tokens_file)?, "agent_id,token\nold,pja_keep\n");
    assert_eq!(roster_ids(&server).await?, before, "nothing was imported");

    // A new file is written; a refused import leaves none behind.
    let first_file = directory.path().join("tokens-1.csv");
    run_pingji(&url, &["roster", "import", &path_arg(&roster)?, "--tokens-out", &path_arg(&first_file)?]).await?.success()?;
    assert!(std::fs::read_to_string(&first_file)?.starts_with("agent_id,token\nq1,pja_"));
    let second_file = directory.path().join("tokens-2.csv");
    let again = run_pingji(&url, &["roster", "import", &path_arg(&roster)?, "--tokens-out", &path_arg(&second_file)?]).await?;
    assert_one_line_error(&again, 1, "already exists");
    assert!(!second_file.exists(), "the tokens file of a refused import is removed");

    // Without --tokens-out, --json carries the tokens; a warning says so.
    let more = directory.path().join("more.csv");
    std::fs::write(&more, "id,name,role\nq2,李强,volunteer\n")?;
    let printed = run_pingji(&url, &["roster", "import", &path_arg(&more)?, "--json"]).await?.success()?;
    assert!(printed.stderr.contains("no --tokens-out"), "{}", printed.stderr);
    let json = printed.json()?;
    assert_eq!(json["imported"], 1);
    assert_eq!(json["tokens"][0]["agent_id"], "q2");
    assert!(json["tokens"][0]["token"].as_str().is_some_and(|token| is_token(token, "pja_")), "{json}");
    server.shutdown().await
}

/// Issue #17, item 9: a row that is not UTF-8 (a spreadsheet saved as GBK)
/// is reported with its line, and so is a row whose home area is not on the
/// dispatcher's map; `--skip-bad` skips both and imports the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_rows_not_in_utf8_or_homed_off_the_map_are_reported_by_line_and_skipped() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let directory = tempfile::tempdir()?;
    let file = directory.path().join("roster.csv");
    let mut bytes = "id,name,role,home_area_id\ng1,王芳,volunteer,d1-s1-c1-g1\n".as_bytes().to_vec();
    bytes.extend_from_slice(b"gbk,\xcd\xf5\xb7\xbc,volunteer,d1-s1-c1-g1\n");
    bytes.extend_from_slice("lost,李强,volunteer,d9-s9\n".as_bytes());
    bytes.extend_from_slice("g2,欧阳桂英,volunteer,d1-s1-c1-g2\n".as_bytes());
    std::fs::write(&file, bytes)?;
    let file = path_arg(&file)?;
    let before = roster_ids(&server).await?;

    let refused = run_pingji(&url, &["roster", "import", &file]).await?;
    assert_eq!(refused.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("has problems on 2 lines; nothing imported"), "{}", refused.stderr);
    assert!(refused.stderr.contains("line 3: this row is not UTF-8"), "{}", refused.stderr);
    assert!(refused.stderr.contains("line 4: home_area_id \"d9-s9\" is not on the dispatcher's map"), "{}", refused.stderr);
    assert_eq!(roster_ids(&server).await?, before, "nothing was imported");

    let skipped = run_pingji(&url, &["roster", "import", &file, "--skip-bad", "--json"]).await?.success()?.json()?;
    assert_eq!(skipped["imported"], 2, "{skipped}");
    let lines: Vec<&Value> = skipped["skipped"].as_array().into_iter().flatten().map(|problem| &problem["line"]).collect();
    assert_eq!(lines, [3, 4], "{skipped}");
    let mut after = roster_ids(&server).await?;
    after.sort();
    assert_eq!(after, ["g1", "g2"], "only the good rows were imported");
    server.shutdown().await
}

/// Issue #17, item 11: people loaded with `--agents` at start have no
/// token; one command issues tokens for all of them into a new file readable
/// only by the admin (agent_id,token), and says on stdout how many and
/// where, never the tokens. A CSV of ids does the same for the people it
/// names, keeping tokens people have unless told to replace them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_issues_tokens_to_everyone_without_one_into_a_private_file() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let url = server_url(&server);
    let everyone = roster_ids(&server).await?;
    assert!(everyone.len() > 100, "the sample roster: {}", everyone.len());
    let directory = tempfile::tempdir()?;
    let out = directory.path().join("tokens.csv");

    let issued = run_pingji(&url, &["roster", "tokens", "--without-token", "--out", &path_arg(&out)?]).await?.success()?;
    assert_eq!(
        issued.stdout,
        format!(
            "issued {} tokens, written to {} (readable only by you, shown this once): give each person their own, then \
             delete the file\n",
            everyone.len(),
            out.display()
        )
    );
    assert!(!issued.stdout.contains("pja_") && !issued.stderr.contains("pja_"), "no token outside the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out)?.permissions().mode() & 0o777, 0o600);
    }
    let written = std::fs::read_to_string(&out)?;
    let mut rows = written.lines();
    assert_eq!(rows.next(), Some("agent_id,token"));
    let tokens: Vec<(String, String)> =
        rows.map(|row| row.split_once(',').map(|(id, token)| (id.to_string(), token.to_string())).expect("id,token")).collect();
    let mut ids: Vec<String> = tokens.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    assert_eq!(ids, everyone, "everyone once");
    assert!(tokens.iter().all(|(_, token)| is_token(token, "pja_")));
    for (id, token) in [&tokens[0], &tokens[tokens.len() - 1]] {
        AgentSession::open(&mut server.agents().await?, id, token).await?.disconnect();
    }

    // Nobody is left without one; an existing file is never written over.
    let again = directory.path().join("again.csv");
    let none = run_pingji(&url, &["roster", "tokens", "--without-token", "--out", &path_arg(&again)?]).await?.success()?;
    assert!(none.stdout.starts_with("issued 0 tokens"), "{}", none.stdout);
    let refused = run_pingji(&url, &["roster", "tokens", "--without-token", "--out", &path_arg(&out)?]).await?;
    assert_one_line_error(&refused, 1, "already exists");
    assert!(refused.stderr.contains("no token issued"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&out)?, written);

    // From a CSV of ids: people who have a token keep it unless --rotate.
    let (first_id, first_token) = tokens[0].clone();
    let ids_file = directory.path().join("ids.csv");
    std::fs::write(&ids_file, format!("id,name\n{first_id},someone\n"))?;
    let kept_out = directory.path().join("kept.csv");
    let kept = run_pingji(&url, &["roster", "tokens", "--ids", &path_arg(&ids_file)?, "--out", &path_arg(&kept_out)?])
        .await?
        .success()?;
    assert!(kept.stdout.starts_with("issued 0 tokens"), "{}", kept.stdout);
    assert!(kept.stdout.contains(&format!("1 person already had a token and kept it (--rotate replaces theirs): {first_id}")));
    let rotated_out = directory.path().join("rotated.csv");
    let rotated =
        run_pingji(&url, &["roster", "tokens", "--ids", &path_arg(&ids_file)?, "--rotate", "--out", &path_arg(&rotated_out)?])
            .await?
            .success()?;
    assert!(rotated.stdout.starts_with("issued 1 token, written to"), "{}", rotated.stdout);
    let new_token = std::fs::read_to_string(&rotated_out)?
        .lines()
        .nth(1)
        .and_then(|row| row.strip_prefix(&format!("{first_id},")).map(str::to_string))
        .expect("the new token");
    let old = AgentSession::try_open(&mut server.agents().await?, &first_id, &first_token).await;
    assert!(old.is_err_and(|status| status.code() == tonic::Code::Unauthenticated), "the old token was replaced");
    AgentSession::open(&mut server.agents().await?, &first_id, &new_token).await?.disconnect();
    let unknown_ids = directory.path().join("unknown.csv");
    std::fs::write(&unknown_ids, "nobody\n")?;
    let unknown = run_pingji(
        &url,
        &["roster", "tokens", "--ids", &path_arg(&unknown_ids)?, "--out", &path_arg(&directory.path().join("u.csv"))?],
    )
    .await?;
    assert_one_line_error(&unknown, 1, "agent nobody is not on the roster");
    assert!(!directory.path().join("u.csv").exists(), "a refused call leaves no file behind");
    server.shutdown().await
}

/// The console shows a report's photos (`incident show`) and saves one
/// (`photo get REF -o FILE`), never over an existing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_a_reports_photos_and_saves_one_to_a_file() -> anyhow::Result<()> {
    use pingji_client::field::{AgentCredentials, FieldClient};
    let folder = tempfile::tempdir()?;
    let photos_dir = folder.path().join("photos");
    let server = TestServer::start(move |config| {
        config.agents_file = Some(sample_roster());
        config.photos_dir = Some(photos_dir);
    })
    .await?;
    let url = server_url(&server);
    let mut command = server.command().await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("snapper", "d1-s1-c1-g1", &["first_aid"])) }).await?;
    let token = pingji_tests::agent_token(&mut command, "snapper").await?;
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("snapper", &token).map_err(anyhow::Error::msg)?);
    let (_, _session) = phone.listen().await?;
    let at = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let photo = include_bytes!("../../../dispatcher/web/src/field/icon-512.png").to_vec();
    let uploaded = phone.upload_photo(photo.clone()).await?;
    phone.submit_field_report(at, "flood", "water over the road", std::slice::from_ref(&uploaded.photo_ref)).await?;
    let mut report = None;
    pingji_tests::wait_until(PROMPTLY, "the report arrives", async || {
        let open = command.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?;
        report = open.into_inner().incidents.into_iter().find(|incident| !incident.photo_refs.is_empty());
        Ok(report.is_some())
    })
    .await?;
    let report = report.context("the report")?;

    let shown = run_pingji(&url, &["incident", "show", &report.id]).await?.success()?;
    anyhow::ensure!(
        shown.stdout.contains(&uploaded.photo_ref) && shown.stdout.contains("pingji photo get"),
        "incident show lists the photo and how to save it:\n{}",
        shown.stdout
    );
    let file = folder.path().join("report.png");
    let saved = run_pingji(&url, &["photo", "get", &uploaded.photo_ref, "-o", &path_arg(&file)?]).await?.success()?;
    assert!(saved.stdout.contains("image/png"), "{}", saved.stdout);
    assert_eq!(std::fs::read(&file)?, photo, "the file holds the photo");
    let again = run_pingji(&url, &["photo", "get", &uploaded.photo_ref, "-o", &path_arg(&file)?]).await?;
    assert!(!again.status.success() && again.stderr.contains("already exists"), "{}", again.stderr);
    server.shutdown().await
}
