//! The field agent end to end: `AgentClient` sessions against real
//! dispatchers (a restarted `dispatcher` process, an in-process server with
//! hundreds of sessions) and the headless `field-agent` binary.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use pingji_dispatcher::server::Config;
use pingji_field_agent::{AgentClient, AgentConfig, AgentEvent, BackoffPolicy, Location, Offer, Welcome};
use pingji_tests::agent_fixtures::{RestartableDispatcher, field_agent_binary};
use pingji_tests::{ProcessOptions, TestServer, area_box, pb, sample_city, sample_roster, wait_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Generous deadline for anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(30);

/// A client config with a short backoff, so that reconnects in tests are quick.
fn quick_config(server: &str, agent_id: &str, token: &str) -> AgentConfig {
    let mut config = AgentConfig::new(server, agent_id, token);
    config.backoff =
        BackoffPolicy { initial: Duration::from_millis(100), cap: Duration::from_secs(1), healthy_after: Duration::from_secs(1) };
    config
}

/// Every event a client has reported, kept for assertions at the end.
struct EventLog {
    events: mpsc::Receiver<AgentEvent>,
    seen: Vec<AgentEvent>,
}

impl EventLog {
    fn new(events: mpsc::Receiver<AgentEvent>) -> Self {
        EventLog { events, seen: Vec::new() }
    }

    /// Reads events until one matches; fails after `within`.
    async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        matches: impl Fn(&AgentEvent) -> bool,
    ) -> anyhow::Result<AgentEvent> {
        let deadline = Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| anyhow::anyhow!("no {what} within {within:?}; events so far: {:#?}", self.seen))?
                .with_context(|| format!("the session ended while waiting for {what}; events: {:#?}", self.seen))?;
            self.seen.push(event.clone());
            if matches(&event) {
                return Ok(event);
            }
        }
    }

    /// Reads whatever arrives within `window`.
    async fn drain_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            self.seen.push(event);
        }
    }

    fn offers_surfaced(&self, offer_id: &str) -> usize {
        self.seen.iter().filter(|event| matches!(event, AgentEvent::Offer(offer) if offer.offer_id.as_str() == offer_id)).count()
    }
}

fn offer_of(event: AgentEvent) -> anyhow::Result<Offer> {
    match event {
        AgentEvent::Offer(offer) => Ok(offer),
        other => anyhow::bail!("expected an offer, got {other:?}"),
    }
}

fn welcome_of(event: AgentEvent) -> anyhow::Result<Welcome> {
    match event {
        AgentEvent::Welcome(welcome) => Ok(welcome),
        other => anyhow::bail!("expected a welcome, got {other:?}"),
    }
}

fn incident_at(id: &str, (lon, lat): (f64, f64)) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "medical".to_string(),
        priority: 2,
        required_skills: Vec::new(),
        headcount: 1,
        description: "a resident fell on the stairs".to_string(),
        force: false,
    }
}

/// Waits until the dispatcher shows the person connected at (lon, lat).
async fn wait_located(command: &mut pingji_tests::Commands, agent_id: &str, (lon, lat): (f64, f64)) -> anyhow::Result<()> {
    wait_until(PROMPTLY, &format!("{agent_id} is connected and located"), async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: agent_id.to_string() }).await?.into_inner();
        Ok(agent.connected && agent.location.is_some_and(|at| at.lon == lon && at.lat == lat))
    })
    .await
}

fn process_options(dir: &Path) -> anyhow::Result<ProcessOptions> {
    // Offers stay open for two minutes: long enough to outlive a restart.
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[normal]\noffer_timeout_s = 120\n")?;
    Ok(ProcessOptions {
        data: dir.join("pingji.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        log: dir.join("dispatcher.log"),
    })
}

/// How the dispatcher is stopped in the middle of the session.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill,
    Terminate,
}

/// Starts a dispatcher process, gives p0001 an offer, stops the process and
/// starts it again on the same address. Returns the client's events and the
/// offer, with the client reconnected.
async fn offer_then_restart(
    dir: &Path,
    stop: Stop,
) -> anyhow::Result<(RestartableDispatcher, AgentClient, EventLog, Offer, Welcome)> {
    let mut dispatcher = RestartableDispatcher::start(&process_options(dir)?).await?;
    let mut command = dispatcher.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let here = grid.at(0.4, 0.4);

    let token = pingji_tests::agent_token(&mut command, "p0001").await?;
    let (client, events) = AgentClient::start(quick_config(&dispatcher.url(), "p0001", &token))?;
    let mut log = EventLog::new(events);
    let first = welcome_of(log.wait_for(PROMPTLY, "the first welcome", |event| matches!(event, AgentEvent::Welcome(_))).await?)?;
    assert!(!first.resumed);
    client.report_location(Location::new(here.0, here.1))?;
    wait_located(&mut command, "p0001", here).await?;

    command.create_incident(incident_at("fall-1", grid.centre())).await?;
    let offer = offer_of(log.wait_for(PROMPTLY, "the offer", |event| matches!(event, AgentEvent::Offer(_))).await?)?;
    assert_eq!(offer.incident_id.as_str(), "fall-1");
    drop(command);

    match stop {
        Stop::Kill => dispatcher.kill().await?,
        Stop::Terminate => dispatcher.terminate().await?,
    }
    log.wait_for(PROMPTLY, "the connection loss", |event| matches!(event, AgentEvent::ConnectionLost { .. })).await?;
    dispatcher.restart().await?;
    let resumed = welcome_of(
        log.wait_for(
            PROMPTLY,
            "the welcome after the restart",
            |event| matches!(event, AgentEvent::Welcome(welcome) if welcome.resumed),
        )
        .await?,
    )?;
    Ok((dispatcher, client, log, offer, resumed))
}

/// Issue #3: the dispatcher process is killed (SIGKILL) and started again
/// mid-session while an offer waits for an answer. The client reconnects by
/// itself, the dispatcher re-delivers the offer in its welcome, the client
/// does not surface it a second time, and accepting it afterwards works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_dispatcher_restart_the_client_reconnects_and_the_pending_offer_is_surfaced_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (dispatcher, client, mut log, offer, resumed) = offer_then_restart(dir.path(), Stop::Kill).await?;
    // The dispatcher did re-deliver it: the dedupe below is not vacuous.
    assert_eq!(resumed.open_offers, 1, "the welcome after the restart carries the pending offer");

    client.accept(&offer.offer_id)?;
    let confirmed = log
        .wait_for(PROMPTLY, "the assignment confirmation", |event| matches!(event, AgentEvent::AssignmentConfirmed(_)))
        .await?;
    let AgentEvent::AssignmentConfirmed(confirmed) = confirmed else { unreachable!("matched above") };
    assert_eq!(confirmed.offer_id, offer.offer_id);
    log.drain_for(Duration::from_millis(300)).await;
    assert_eq!(log.offers_surfaced(offer.offer_id.as_str()), 1, "the offer was surfaced more than once: {:#?}", log.seen);
    assert!(
        !log.seen.iter().any(|event| matches!(event, AgentEvent::Refused(_) | AgentEvent::OfferWithdrawn { .. })),
        "{:#?}",
        log.seen
    );

    let mut command = dispatcher.command().await?;
    let incident = command.get_incident(pb::GetIncidentRequest { id: "fall-1".to_string() }).await?.into_inner();
    assert_eq!(incident.status, pb::IncidentStatus::Staffed as i32, "{incident:?}");
    assert!(
        incident
            .assignments
            .iter()
            .any(|assignment| assignment.agent_id == "p0001" && assignment.offer_id == offer.offer_id.as_str())
    );

    client.close().await;
    assert!(matches!(log.events.recv().await, Some(AgentEvent::Stopped { error: None })));
    Ok(())
}

/// The same with SIGTERM: the dispatcher drains and stops in an orderly way,
/// which may or may not withdraw the offer as the session ends. Either way
/// the client reconnects, shows no offer twice, and the record is consistent
/// with what the person saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_dispatcher_restart_no_offer_is_surfaced_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (dispatcher, client, mut log, offer, resumed) = offer_then_restart(dir.path(), Stop::Terminate).await?;
    log.drain_for(Duration::from_secs(1)).await;
    for event in &log.seen {
        if let AgentEvent::Offer(seen) = event {
            assert_eq!(log.offers_surfaced(seen.offer_id.as_str()), 1, "{} surfaced twice: {:#?}", seen.offer_id, log.seen);
        }
    }
    let withdrawn =
        log.seen.iter().any(|event| matches!(event, AgentEvent::OfferWithdrawn { offer_id, .. } if offer_id == &offer.offer_id));
    println!("after SIGTERM the offer was {}", if withdrawn { "withdrawn" } else { "still open" });
    // Open after the restart exactly when the person was not told it was withdrawn.
    assert_eq!(resumed.open_offers == 1, !withdrawn, "welcome {resumed:?} and events {:#?}", log.seen);
    let mut command = dispatcher.command().await?;
    let incident = command.get_incident(pb::GetIncidentRequest { id: "fall-1".to_string() }).await?.into_inner();
    let still_open = incident.open_offers.iter().any(|open| open.offer_id == offer.offer_id.as_str());
    assert_eq!(still_open, !withdrawn, "{incident:?}");
    client.close().await;
    Ok(())
}

/// Threads of this process, where the system says (Linux).
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| line.strip_prefix("Threads:")).and_then(|count| count.trim().parse().ok())
}

/// Drills run thousands of people in one process: 300 clients connect to one
/// dispatcher and are all welcomed, without a thread per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_sessions_in_one_process_are_all_welcomed() -> anyhow::Result<()> {
    const PEOPLE: usize = 300;
    let server = TestServer::start(|config: &mut Config| config.agents_file = Some(sample_roster())).await?;
    let url = format!("http://{}", server.address());
    let threads_before = thread_count();
    let mut clients = Vec::new();
    let mut logs = Vec::new();
    let mut command = server.command().await?;
    for number in 1..=PEOPLE {
        let id = format!("p{number:04}");
        let token = pingji_tests::agent_token(&mut command, &id).await?;
        let (client, events) = AgentClient::start(quick_config(&url, &id, &token))?;
        clients.push(client);
        logs.push(EventLog::new(events));
    }
    for log in &mut logs {
        let welcome = welcome_of(
            log.wait_for(Duration::from_secs(60), "a welcome", |event| matches!(event, AgentEvent::Welcome(_))).await?,
        )?;
        assert!(!welcome.resumed);
    }
    let threads_after = thread_count();
    // Other tests of this binary run at the same time and start threads of
    // their own; a thread per session would add 300.
    if let (Some(before), Some(after)) = (threads_before, threads_after) {
        assert!(
            after < before + PEOPLE / 3,
            "{PEOPLE} sessions took {} threads ({before} before, {after} after)",
            after.saturating_sub(before)
        );
    }
    let mut command = server.command().await?;
    let connected = |command: &mut pingji_tests::Commands| {
        let mut command = command.clone();
        async move {
            let request = pb::ListAgentsRequest { connected_only: true, limit: 1000, ..Default::default() };
            anyhow::Ok(command.list_agents(request).await?.into_inner().agents.len())
        }
    };
    assert_eq!(connected(&mut command).await?, PEOPLE);
    for log in &logs {
        assert!(!log.seen.iter().any(|event| matches!(event, AgentEvent::ConnectionLost { .. })), "{:#?}", log.seen);
    }

    for client in clients {
        client.close().await;
    }
    wait_until(PROMPTLY, "every session is closed on the dispatcher", async || Ok(connected(&mut command).await? == 0)).await?;
    for log in &mut logs {
        log.wait_for(PROMPTLY, "the stop", |event| matches!(event, AgentEvent::Stopped { error: None })).await?;
    }
    server.shutdown().await
}

/// Runs `field-agent` with `args`, waiting for it to exit; returns its exit
/// code, stdout and stderr.
async fn run_field_agent(args: &[String], within: Duration) -> anyhow::Result<(Option<i32>, String, String)> {
    let binary = field_agent_binary().await?;
    let mut command = tokio::process::Command::new(binary);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    let child = command.spawn().context("cannot start field-agent")?;
    let output = tokio::time::timeout(within, child.wait_with_output())
        .await
        .with_context(|| format!("field-agent {args:?} did not exit within {within:?}"))??;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// `field-agent --auto accept` accepts an offer, reports arrival and
/// completion, and exits after the one task; the dispatcher's record shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_auto_accept_takes_an_incident_through_to_completion() -> anyhow::Result<()> {
    // Built first (on a clean checkout this is a cargo build), so that the
    // wait for the program's first location below does not include it.
    field_agent_binary().await?;
    let server = TestServer::start(|config: &mut Config| config.agents_file = Some(sample_roster())).await?;
    let mut command = server.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g2").await?;
    let here = grid.at(0.3, 0.6);
    let token = pingji_tests::agent_token(&mut command, "p0011").await?;
    let args: Vec<String> = [
        "--server",
        &format!("http://{}", server.address()),
        "--agent",
        "p0011",
        "--token",
        &token,
        "--at",
        &format!("{},{}", here.0, here.1),
        "--auto",
        "accept",
        "--delay-s",
        "0.2",
        "--arrive-after-s",
        "0.2",
        "--complete-after-s",
        "0.2",
        "--feedback",
        "helped her up; no injury",
        "--exit-after-tasks",
        "1",
        "--json",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let agent = tokio::spawn(async move { run_field_agent(&args, Duration::from_secs(120)).await });
    wait_located(&mut command, "p0011", here).await?;
    command.create_incident(incident_at("fall-2", grid.centre())).await?;

    let (code, stdout, stderr) = agent.await??;
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not a JSON line: {line}")))
        .collect::<anyhow::Result<_>>()?;
    let kinds: Vec<&str> = lines.iter().filter_map(|line| line["event"].as_str()).collect();
    let position = |kind: &str| kinds.iter().position(|seen| *seen == kind).with_context(|| format!("no {kind} in {kinds:?}"));
    assert!(position("welcome")? < position("offer")?);
    assert!(position("offer")? < position("accept_sent")?);
    assert!(position("accept_sent")? < position("assignment_confirmed")?);
    assert!(position("assignment_confirmed")? < position("arrival_sent")?);
    assert!(position("arrival_sent")? < position("completion_sent")?);
    assert_eq!(kinds.iter().filter(|kind| **kind == "offer").count(), 1, "{kinds:?}");

    let incident = command.get_incident(pb::GetIncidentRequest { id: "fall-2".to_string() }).await?.into_inner();
    assert_eq!(incident.status, pb::IncidentStatus::Closed as i32, "{incident:?}");
    let assignment = incident.assignments.first().context("no assignment")?;
    assert_eq!(assignment.agent_id, "p0011");
    assert!(assignment.arrived_at_ms > 0 && assignment.completed_at_ms >= assignment.arrived_at_ms, "{assignment:?}");
    assert_eq!(assignment.feedback, "helped her up; no injury");
    // The program closed its session on the way out.
    wait_until(PROMPTLY, "p0011 is disconnected", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "p0011".to_string() }).await?.into_inner();
        Ok(!agent.connected)
    })
    .await?;
    server.shutdown().await
}

/// Bad flags and a person who is not on the roster: one clear line on
/// stderr and a non-zero exit, not a hang or a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_errors_are_one_line_and_a_non_zero_exit() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = format!("http://{}", server.address());
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--agent", "p0001", "--token", "pja_x", "--at", "181,30"], 2, "longitude 181 is out of range"),
        (&["--agent", "p0001", "--token", "pja_x", "--auto", "sometimes"], 2, "invalid value 'sometimes'"),
        (
            &["--agent", "p0001", "--token", "pja_x", "--track", "/nonexistent/walk.csv", "--auto", "ignore"],
            1,
            "track /nonexistent/walk.csv: cannot read",
        ),
        (
            &["--server", &url, "--agent", "nobody", "--token", "pja_wrong", "--at", "120.1,30.2", "--auto", "ignore"],
            1,
            "unauthenticated",
        ),
    ];
    for (args, expected_code, expected_text) in cases {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let (code, _stdout, stderr) = run_field_agent(&args, Duration::from_secs(60)).await?;
        assert_eq!(code, Some(expected_code), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: not one line:\n{stderr}");
        assert!(stderr.contains(expected_text), "{args:?}: {stderr}");
    }
    server.shutdown().await
}

/// One live session per person: a newer one replaces the older, which is
/// told why and does not reconnect by itself (the two would take turns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_session_replaces_the_older_which_stops_reconnecting() -> anyhow::Result<()> {
    let server = TestServer::start(|config: &mut Config| config.agents_file = Some(sample_roster())).await?;
    let url = format!("http://{}", server.address());
    let token = server.agent_token("p0003").await?;
    let (older, older_events) = AgentClient::start(quick_config(&url, "p0003", &token))?;
    let mut older_log = EventLog::new(older_events);
    welcome_of(older_log.wait_for(PROMPTLY, "the first welcome", |event| matches!(event, AgentEvent::Welcome(_))).await?)?;

    let newer = pingji_tests::AgentSession::open(&mut server.agents().await?, "p0003", &token).await?;
    let ended =
        older_log.wait_for(PROMPTLY, "the end of the older session", |event| matches!(event, AgentEvent::Stopped { .. })).await?;
    let AgentEvent::Stopped { error: Some(error) } = ended else { anyhow::bail!("stopped without a reason: {ended:?}") };
    assert!(error.starts_with("replaced") && error.contains("newer session"), "{error}");
    // The newer session is the live one.
    let mut command = server.command().await?;
    assert!(command.get_agent(pb::GetAgentRequest { id: "p0003".into() }).await?.into_inner().connected);
    drop(newer);
    older.close().await;
    server.shutdown().await
}
