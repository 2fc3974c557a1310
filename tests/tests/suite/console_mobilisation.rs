//! The `pingji` console's 平急转换 commands end to end: the compiled binary
//! against a real dispatcher on port 0 — plans, call-ups and the roll-call,
//! triage of field reports, coverage — read as an operator or a script
//! would (exit code, tables, JSON, one-line errors).

use std::time::Duration;

use pingji_tests::cli::{CliOutput, run_pingji};
use pingji_tests::mobilisation::{check_in, expect_call_up, expect_outcome, person_with_role, plan_toml, report_from_field};
use pingji_tests::{EventWatch, TestServer, add_operator, area_box, pb, wait_until};
use serde_json::Value;

/// Generous deadline for anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(20);

fn server_url(server: &TestServer) -> String {
    format!("http://{}", server.address())
}

fn path_arg(path: &std::path::Path) -> anyhow::Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("path is not UTF-8: {}", path.display()))
}

/// A failed command: exit code 1, nothing on stdout, one line on stderr
/// that contains `expected`.
fn assert_failed_with(output: &CliOutput, expected: &str) {
    assert_eq!(output.code(), Some(1), "stderr: {}", output.stderr);
    assert!(output.stdout.is_empty(), "{}", output.stdout);
    assert!(output.stderr.starts_with("pingji: "), "{}", output.stderr);
    assert_eq!(output.stderr.trim_end().lines().count(), 1, "{}", output.stderr);
    assert!(output.stderr.contains(expected), "stderr should contain {expected:?}: {}", output.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_imported_listed_activated_and_deactivated_from_the_command_line() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let directory = tempfile::tempdir()?;
    let flood = directory.path().join("flood.toml");
    std::fs::write(&flood, plan_toml("flood-ii"))?;
    let fire = directory.path().join("fire.toml");
    std::fs::write(
        &fire,
        "id = \"fire-i\"\nname = \"火灾一级\"\ncategory = \"fire\"\ngrade = \"I\"\nauto_activate = true\n\
         [[task]]\ncategory = \"evacuate\"\nwhere = \"centroid\"\nneed = 4\npriority = 1\n",
    )?;
    let broken = directory.path().join("broken.toml");
    std::fs::write(
        &broken,
        "id = \"x\"\nname = \"x\"\ncategory = \"x\"\ngrade = \"V\"\n[[task]]\ncategory = \"a\"\nwhere = \"centroid\"\n",
    )?;
    let (flood, fire, broken) = (path_arg(&flood)?, path_arg(&fire)?, path_arg(&broken)?);

    // A bad file is named, and nothing is loaded.
    let refused = run_pingji(&url, &["plan", "import", &flood, &broken]).await?;
    assert_failed_with(&refused, &format!("{broken}: plan x: grade"));
    let empty = run_pingji(&url, &["plan", "list"]).await?.success()?;
    assert!(empty.stdout.starts_with("no plans loaded"), "{}", empty.stdout);

    let imported = run_pingji(&url, &["plan", "import", &flood, &fire]).await?.success()?;
    let lines: Vec<&str> = imported.stdout.lines().collect();
    assert_eq!(lines[0], "imported 2 plans from 2 file(s)", "{}", imported.stdout);
    assert!(lines[1].starts_with("PLAN "), "{}", imported.stdout);
    assert!(
        imported.stdout.contains("flood-ii  防汛二级 flood-ii  flood     II     no        2       2  registered_member"),
        "{}",
        imported.stdout
    );
    assert!(imported.stdout.contains("fire-i    火灾一级"), "{}", imported.stdout);

    // Activated by a commander: the activation names the account whose token
    // the console sent.
    let commander_token = add_operator(&mut server.command().await?, "zhang.wei", pb::OperatorRole::Commander).await?;
    let activated = run_pingji(&url, &["--token", &commander_token, "plan", "activate", "flood-ii", "d1-s1", "--reason", "暴雨"])
        .await?
        .success()?;
    assert!(activated.stdout.starts_with("activated plan flood-ii on d1-s1 as "), "{}", activated.stdout);
    assert!(activated.stdout.contains(": 4 task(s): "), "{}", activated.stdout);
    let listed = run_pingji(&url, &["plan", "list", "--json"]).await?.success()?.json()?;
    let plan_ids: Vec<&str> = listed["plans"].as_array().into_iter().flatten().filter_map(|plan| plan["id"].as_str()).collect();
    assert_eq!(plan_ids, ["fire-i", "flood-ii"]);
    let fire_plan = &listed["plans"][0];
    assert_eq!(fire_plan["grade"], "emergency_i");
    assert_eq!(fire_plan["auto_activate"], true);
    assert_eq!(fire_plan["tasks"][0]["where"], "the area's centroid");
    assert_eq!(fire_plan["tasks"][0]["headcount"], 4);
    assert_eq!(listed["plans"][1]["call_up"], serde_json::json!(["registered_member"]));
    let activation = &listed["activations"][0];
    assert_eq!(activation["plan_id"], "flood-ii");
    assert_eq!(activation["area_id"], "d1-s1");
    assert_eq!(activation["activated_by"], "operator:zhang.wei");
    assert_eq!(activation["ended_at_ms"], 0);
    assert_eq!(activation["incident_ids"].as_array().map(Vec::len), Some(4));
    let activation_id =
        activation["id"].as_str().ok_or_else(|| anyhow::anyhow!("the activation has no id: {activation}"))?.to_string();
    let table = run_pingji(&url, &["plan", "list"]).await?.success()?;
    assert!(table.stdout.contains(&format!("{activation_id}  flood-ii  d1-s1  open")), "{}", table.stdout);

    let ended = run_pingji(&url, &["plan", "deactivate", &activation_id, "--reason", "雨停"]).await?.success()?;
    assert_eq!(
        ended.stdout.trim_end(),
        format!("ended plan activation {activation_id} (flood-ii on d1-s1); its open tasks are cancelled")
    );
    let listed = run_pingji(&url, &["plan", "list", "--json"]).await?.success()?.json()?;
    assert!(listed["activations"][0]["ended_at_ms"].as_i64() > Some(0), "{listed}");
    let incidents = run_pingji(&url, &["incident", "list", "--json"]).await?.success()?.json()?;
    let statuses: Vec<&str> = incidents["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|incident| incident["plan_activation_id"] == activation_id.as_str())
        .filter_map(|incident| incident["status"].as_str())
        .collect();
    assert_eq!(statuses, ["cancelled"; 4]);
    let again = run_pingji(&url, &["plan", "deactivate", &activation_id, "--reason", "again"]).await?;
    assert_failed_with(&again, "failed precondition: ");
    let unknown = run_pingji(&url, &["plan", "activate", "nope", "d1", "--reason", "r"]).await?;
    assert_failed_with(&unknown, "not found: plan nope");
    let usage = run_pingji(&url, &["plan", "activate", "flood-ii", "d1"]).await?;
    assert_eq!(usage.code(), Some(2), "{}", usage.stderr);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roll_call_shows_who_checked_in_and_who_is_missing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let mut command = server.command().await?;
    let _agents = server.agents().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let mut present = server.connect_person_at(person_with_role("cadre-1", pb::Role::SunkCadre, "d1-s1-c1-g1"), lon, lat).await?;
    command
        .upsert_agent(pb::UpsertAgentRequest {
            agent: Some(pb::AgentSpec {
                name: "王芳".into(), ..person_with_role("cadre-2", pb::Role::SunkCadre, "d1-s2-c1-g1")
            }),
        })
        .await?;
    let mut events = EventWatch::start(&mut command, 0).await?;

    let issued =
        run_pingji(&url, &["callup", "issue", "d1", "--reason", "防汛备勤", "--role", "sunk_cadre", "--deadline-s", "1"])
            .await?
            .success()?;
    assert!(issued.stdout.starts_with("called up 2 people in d1 (callup-0001): check in by "), "{}", issued.stdout);
    let call_up = expect_call_up(&mut present, PROMPTLY).await?;
    check_in(&present, &call_up.callup_id).await?;
    events.wait_for(PROMPTLY, "callup_deadline_passed", |event| event.kind == "callup_deadline_passed").await?;
    wait_until(PROMPTLY, "cadre-1 has checked in", async || {
        let callups = command.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
        Ok(callups.first().is_some_and(|callup| callup.checked_in == 1))
    })
    .await?;
    // The second cadre connects late, without checking in.
    let absent = server.open_session("cadre-2").await?;

    let roll_call = run_pingji(&url, &["callup", "status", "d1"]).await?.success()?;
    let text = &roll_call.stdout;
    assert!(text.starts_with("callup-0001 in d1: 防汛备勤\n"), "{text}");
    assert!(text.contains("(open, deadline passed)"), "{text}");
    assert!(text.contains("checked in 1 of 2 called, 1 MISSING"), "{text}");
    let row = |id: &str| text.lines().find(|line| line.starts_with(id)).map(str::to_string).unwrap_or_default();
    let checked_in = row("cadre-1");
    assert!(checked_in.contains("sunk_cadre"), "{text}");
    assert!(checked_in.contains("Z  yes"), "a time, then connected: {text}");
    assert!(!checked_in.contains("MISSING"), "{text}");
    let missing = row("cadre-2");
    assert!(missing.contains("王芳"), "{text}");
    assert!(missing.contains("MISSING"), "{text}");
    // Connected late; no rung of a ladder tried (this policy has none).
    let last_two: Vec<&str> = missing.split_whitespace().rev().take(2).collect();
    assert_eq!(last_two, ["-", "yes"], "connected late: {text}");

    let json = run_pingji(&url, &["callup", "status", "--open", "--json"]).await?.success()?.json()?;
    let callup = &json["callups"][0];
    assert_eq!(callup["id"], "callup-0001");
    assert_eq!(callup["area_id"], "d1");
    assert_eq!((callup["checked_in"].as_u64(), callup["missing"].as_u64()), (Some(1), Some(1)));
    assert_eq!(callup["people"][0]["agent_id"], "cadre-1");
    assert!(callup["people"][0]["checked_in_at_ms"].as_i64() > Some(0), "{json}");
    assert_eq!(callup["people"][1]["checked_in_at_ms"], 0);
    assert_eq!(callup["people"][1]["role"], "sunk_cadre");
    let mut keys: Vec<&str> = callup.as_object().map(|object| object.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["area_id", "checked_in", "deadline_ms", "ended_at_ms", "id", "issued_at_ms", "issued_by", "missing", "people", "reason",]
    );

    let nobody = run_pingji(&url, &["callup", "issue", "d2", "--reason", "r", "--role", "sunk_cadre"]).await?;
    assert_failed_with(&nobody, "failed precondition: nobody with those roles");
    let bad_role = run_pingji(&url, &["callup", "issue", "d1", "--reason", "r", "--role", "boss"]).await?;
    assert_eq!(bad_role.code(), Some(2), "{}", bad_role.stderr);
    assert!(bad_role.stderr.contains("sunk_cadre"), "{}", bad_role.stderr);

    present.disconnect();
    absent.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_reports_are_listed_shown_and_triaged_from_the_command_line() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = server_url(&server);
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let mut courier =
        server.connect_person_at(person_with_role("courier-1", pb::Role::NewEmployment, "d1-s1-c1-g1"), lon, lat).await?;
    let flooding = report_from_field(&mut courier, (lon, lat), "flooding", "地下车库进水", PROMPTLY).await?;
    let noise = report_from_field(&mut courier, (lon, lat), "noise", "装修噪音", PROMPTLY).await?;

    let listed = run_pingji(&url, &["incident", "list", "--open"]).await?.success()?;
    let flooding_row = listed.stdout.lines().find(|line| line.starts_with(&flooding)).unwrap_or_default();
    assert!(flooding_row.contains("  reported  3  flooding"), "{}", listed.stdout);
    assert!(listed.stdout.contains("2 field report(s) wait for triage (status reported)"), "{}", listed.stdout);
    let shown = run_pingji(&url, &["incident", "show", &flooding]).await?.success()?;
    assert!(shown.stdout.contains("reporter:"), "{}", shown.stdout);
    assert!(shown.stdout.contains("courier-1"), "{}", shown.stdout);
    assert!(shown.stdout.contains("地下车库进水"), "{}", shown.stdout);
    assert!(shown.stdout.contains(&format!("pingji report triage {flooding} accept")), "{}", shown.stdout);
    let shown_json = run_pingji(&url, &["incident", "show", &flooding, "--json"]).await?.success()?.json()?;
    assert_eq!(shown_json["status"], "reported");
    assert_eq!(shown_json["reported_by_agent"], "courier-1");
    assert_eq!(shown_json["report_text"], "地下车库进水");

    // Triage is a dispatcher's job: a dispatcher account does it.
    let dispatcher_token = add_operator(&mut command, "li.na", pb::OperatorRole::Dispatcher).await?;
    let accepted = run_pingji(
        &url,
        &[
            "--token",
            &dispatcher_token,
            "report",
            "triage",
            &flooding,
            "accept",
            "--priority",
            "1",
            "--need",
            "2",
            "--skill",
            "rescue",
        ],
    )
    .await?
    .success()?;
    assert!(accepted.stdout.starts_with(&format!("accepted {flooding} (flooding P1, needs 2); ")), "{}", accepted.stdout);
    expect_outcome(&mut courier, PROMPTLY, &flooding, "accepted").await?;
    let rejected = run_pingji(&url, &["report", "triage", &noise, "reject", "--reason", "请联系物业"]).await?.success()?;
    assert_eq!(rejected.stdout, format!("rejected {noise}: 请联系物业\n"));
    let outcome = expect_outcome(&mut courier, PROMPTLY, &noise, "rejected").await?;
    assert_eq!(outcome.reason, "请联系物业");
    let shown = run_pingji(&url, &["incident", "show", &noise]).await?.success()?;
    assert!(shown.stdout.contains("rejected because:"), "{}", shown.stdout);

    let twice = run_pingji(&url, &["report", "triage", &noise, "reject", "--reason", "again"]).await?;
    assert_failed_with(&twice, "failed precondition: ");
    let unknown = run_pingji(&url, &["report", "triage", "inc-999999", "merge", &flooding]).await?;
    assert_failed_with(&unknown, "not found: report inc-999999");
    let json = run_pingji(&url, &["report", "triage", &flooding, "reject", "--reason", "x", "--json"]).await?;
    assert_failed_with(&json, "is not a field report waiting for triage");

    courier.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_is_a_table_for_people_and_a_document_for_scripts() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.policy.normal.grid_minimum = 1).await?;
    let url = server_url(&server);
    let json = run_pingji(&url, &["coverage", "--json"]).await?.success()?.json()?;
    assert_eq!(json["walk_mps"], 1.4);
    let communities = json["communities"].as_array().cloned().unwrap_or_default();
    assert_eq!(communities.len(), 8, "{json}");
    let mut keys: Vec<String> = communities[0].as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["community_id", "grids", "grids_within_15_min", "name", "share"]);
    for community in &communities {
        assert_eq!(community["grids"], 4, "{community}");
        let share = community["share"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&share), "{community}");
    }
    let grids = json["grids"].as_array().cloned().unwrap_or_default();
    assert_eq!(grids.len(), 32, "{json}");
    let mut keys: Vec<String> = grids[0].as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["available", "below", "grid_id", "minimum", "name"]);
    assert!(grids.iter().all(|grid| grid["below"] == Value::Bool(true)));

    let table = run_pingji(&url, &["coverage", "d1-s1"]).await?.success()?;
    assert!(table.stdout.starts_with("15-minute circle: grid centres within 1260 m of a service centre"), "{}", table.stdout);
    assert!(table.stdout.contains("d1-s1-c1   柳岸社区"), "{}", table.stdout);
    assert!(table.stdout.contains("2 communities: "), "{}", table.stdout);
    assert!(table.stdout.contains("8 of 8 grids below their minimum of available people"), "{}", table.stdout);
    let unknown = run_pingji(&url, &["coverage", "nowhere"]).await?;
    assert_failed_with(&unknown, "not found: area nowhere");
    server.shutdown().await
}
