//! TLS end to end with the real clients (issue #7): the `dispatcher` binary
//! serving TLS with certificates made by the test, the `pingji` console
//! binary with `--ca`, `AgentClient` sessions and a live drill; plain text
//! against the TLS port, a client that does not trust the CA, mutual TLS
//! with and without a client certificate, a standby's redirect over TLS,
//! and bad certificate files refused at start.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pingji_client::tls::ClientTls;
use pingji_field_agent::{AgentClient, AgentConfig, AgentEvent, BackoffPolicy, Location};
use pingji_tests::cli::run_pingji;
use pingji_tests::process::{free_port, spawn_dispatcher};
use pingji_tests::redis::{RedisServer, SharedDispatcher, SharedStoreOptions, owner_of};
use pingji_tests::tls::TestPki;
use pingji_tests::{DispatcherProcess, ProcessOptions, area_box, dispatcher_binary, pb, sample_city, sample_roster, wait_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Generous deadline for anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(30);

fn process_options(dir: &Path) -> ProcessOptions {
    ProcessOptions {
        data: dir.join("pingji.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        log: dir.join("dispatcher.log"),
    }
}

fn tls_args(pki: &TestPki, client_ca: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        vec!["--tls-cert".into(), pki.server_cert.clone().into(), "--tls-key".into(), pki.server_key.clone().into()];
    if client_ca {
        args.extend(["--tls-client-ca".into(), pki.ca.clone().into()]);
    }
    args
}

/// A session for `agent_id` at `server`, retrying quickly.
fn start_agent(
    server: &str,
    agent_id: &str,
    token: &str,
    tls: ClientTls,
) -> anyhow::Result<(AgentClient, mpsc::Receiver<AgentEvent>)> {
    let mut config = AgentConfig::new(server, agent_id, token);
    config.backoff = BackoffPolicy {
        initial: Duration::from_millis(100),
        cap: Duration::from_millis(500),
        healthy_after: Duration::from_secs(1),
    };
    config.connect.tls = tls;
    Ok(AgentClient::start(config)?)
}

/// Reads events until one matches; fails after `within` with what was seen.
async fn wait_for_event(
    events: &mut mpsc::Receiver<AgentEvent>,
    within: Duration,
    what: &str,
    matches: impl Fn(&AgentEvent) -> bool,
) -> anyhow::Result<AgentEvent> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no {what} within {within:?}; events: {seen:#?}"))?
            .with_context(|| format!("the session ended while waiting for {what}; events: {seen:#?}"))?;
        if matches(&event) {
            return Ok(event);
        }
        seen.push(event);
    }
}

/// The error of the first lost connection; fails if the session is welcomed.
/// An agent with a certificate from another CA is refused (either the
/// dispatcher's alert arrives, unknown CA, or only the closed connection
/// does; both are explained); one with the CA's client certificate is
/// welcomed.
async fn strangers_refused_and_the_cas_certificate_welcomed(url: &str, pki: &TestPki, token: &str) -> anyhow::Result<()> {
    let (stranger, mut stranger_events) = start_agent(url, "p0001", "pja_unused", pki.client_with_strangers_certificate()?)?;
    let error = first_connection_error(&mut stranger_events).await?;
    assert!(error.contains("this client's certificate") && error.contains("client CA"), "{error}");
    stranger.close().await;
    let (client, mut events) = start_agent(url, "p0001", token, pki.client_with_certificate()?)?;
    wait_for_event(&mut events, PROMPTLY, "the welcome", |event| matches!(event, AgentEvent::Welcome(_))).await?;
    client.close().await;
    Ok(())
}

async fn first_connection_error(events: &mut mpsc::Receiver<AgentEvent>) -> anyhow::Result<String> {
    let event = wait_for_event(events, PROMPTLY, "a lost connection", |event| {
        matches!(event, AgentEvent::ConnectionLost { .. } | AgentEvent::Welcome(_))
    })
    .await?;
    match event {
        AgentEvent::ConnectionLost { error, .. } => Ok(error),
        other => anyhow::bail!("the session was let in: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_a_field_agent_work_over_tls_and_plain_text_is_told_to_use_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let mut dispatcher =
        DispatcherProcess::start_tls(&process_options(dir.path()), &tls_args(&pki, false), pki.client()?).await?;
    let url = dispatcher.url();
    assert!(url.starts_with("https://"), "{url}");
    let ca = pki.ca.to_string_lossy().into_owned();

    // The console binary with --ca creates an incident and lists it over https.
    let mut command = dispatcher.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let at = format!("{lon},{lat}");
    let create =
        ["--ca", &ca, "incident", "create", "--at", &at, "--category", "medical", "--priority", "2", "--need", "1", "--json"];
    let created = run_pingji(&url, &create).await?.success()?.json()?;
    let incident_id = created["id"].as_str().unwrap_or_default().to_string();
    assert!(incident_id.starts_with("inc-"), "{created}");
    assert_eq!(created["reported_by"], "operator:admin", "the actor is the account of the token");
    let listed = run_pingji(&url, &["--ca", &ca, "incident", "list", "--open", "--json"]).await?.success()?.json()?;
    assert!(
        listed["incidents"].as_array().into_iter().flatten().any(|incident| incident["id"] == incident_id.as_str()),
        "{incident_id} is not listed over https: {listed}"
    );

    // A field agent trusting the CA is welcomed and gets an offer over TLS.
    let token = pingji_tests::agent_token(&mut command, "p0001").await?;
    let (client, mut events) = start_agent(&url, "p0001", &token, pki.client()?)?;
    wait_for_event(&mut events, PROMPTLY, "the welcome", |event| matches!(event, AgentEvent::Welcome(_))).await?;
    let here = grid.at(0.5, 0.5);
    client.report_location(Location::new(here.0, here.1))?;
    wait_until(PROMPTLY, "p0001 is connected and located", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "p0001".to_string() }).await?.into_inner();
        Ok(agent.connected && agent.location.is_some())
    })
    .await?;
    // The incident the console created is offered to the only person connected.
    let offer = wait_for_event(&mut events, PROMPTLY, "the offer", |event| matches!(event, AgentEvent::Offer(_))).await?;
    let AgentEvent::Offer(offer) = offer else { unreachable!("matched above") };
    assert_eq!(offer.incident_id.as_str(), incident_id);
    client.close().await;

    // Plain text against the TLS port: refused, and told to use https and --ca.
    let plain_url = format!("http://{}", dispatcher.address());
    let plain = run_pingji(&plain_url, &["incident", "list"]).await?;
    assert_eq!(plain.code(), Some(1), "{plain:?}");
    assert!(plain.stderr.contains("https://") && plain.stderr.contains("--ca"), "{}", plain.stderr);
    assert!(plain.stdout.is_empty(), "{}", plain.stdout);
    let (plain_agent, mut plain_events) = start_agent(&plain_url, "p0002", "pja_unused", ClientTls::default())?;
    let error = first_connection_error(&mut plain_events).await?;
    assert!(error.contains("https://") && error.contains("--ca"), "{error}");
    plain_agent.close().await;

    // https without --ca: the test CA is not among the system's roots.
    let untrusted = run_pingji(&url, &["incident", "list"]).await?;
    assert_eq!(untrusted.code(), Some(1), "{untrusted:?}");
    assert!(untrusted.stderr.contains("pass --ca"), "{}", untrusted.stderr);
    // A CA given with an http:// address is a mistake, said before connecting.
    let mixed = run_pingji(&plain_url, &["--ca", &ca, "incident", "list"]).await?;
    assert!(mixed.stderr.contains("use https://"), "{}", mixed.stderr);

    let log = dispatcher.log();
    assert!(log.contains("serving TLS"), "{log}");
    assert!(!log.contains("serving plain text"), "{log}");
    dispatcher.terminate().await?;
    let exit = dispatcher.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", dispatcher.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_certificates_required_only_clients_with_one_from_the_ca_get_in() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let mut dispatcher =
        DispatcherProcess::start_tls(&process_options(dir.path()), &tls_args(&pki, true), pki.client_with_certificate()?).await?;
    let url = dispatcher.url();

    // No client certificate: refused, and told to pass one.
    let (refused, mut refused_events) = start_agent(&url, "p0001", "pja_unused", pki.client()?)?;
    let error = first_connection_error(&mut refused_events).await?;
    assert!(error.contains("--client-cert"), "{error}");
    refused.close().await;

    let token = pingji_tests::agent_token(&mut dispatcher.command().await?, "p0001").await?;
    strangers_refused_and_the_cas_certificate_welcomed(&url, &pki, &token).await?;

    // The console too: refused without a certificate, served with one.
    let ca = pki.ca.to_string_lossy().into_owned();
    let without = run_pingji(&url, &["--ca", &ca, "areas", "list"]).await?;
    assert_eq!(without.code(), Some(1), "{without:?}");
    assert!(without.stderr.contains("--client-cert"), "{}", without.stderr);
    let cert = pki.client_cert.to_string_lossy().into_owned();
    let key = pki.client_key.to_string_lossy().into_owned();
    let with = run_pingji(&url, &["--ca", &ca, "--client-cert", &cert, "--client-key", &key, "areas", "list", "--json"])
        .await?
        .success()?
        .json()?;
    assert!(with["areas"].as_array().is_some_and(|areas| !areas.is_empty()), "{with}");

    assert!(dispatcher.log().contains("client certificates required of every connection"), "{}", dispatcher.log());
    dispatcher.terminate().await?;
    let exit = dispatcher.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", dispatcher.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_certificates_for_agents_only_consoles_connect_without_and_sessions_need_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let mut args = tls_args(&pki, true);
    args.extend(["--tls-require-client-cert".into(), "agents".into()]);
    // The fixture's own clients (health, commands) have no certificate.
    let mut dispatcher = DispatcherProcess::start_tls(&process_options(dir.path()), &args, pki.client()?).await?;
    let url = dispatcher.url();
    let ca = pki.ca.to_string_lossy().into_owned();
    let areas = run_pingji(&url, &["--ca", &ca, "areas", "list", "--json"]).await?.success()?.json()?;
    assert!(areas["areas"].as_array().is_some_and(|areas| !areas.is_empty()), "{areas}");

    // A session without a certificate is refused for good, saying why.
    let (refused, mut refused_events) = start_agent(&url, "p0001", "pja_unused", pki.client()?)?;
    let stopped = wait_for_event(&mut refused_events, PROMPTLY, "the refusal", |event| {
        matches!(event, AgentEvent::Stopped { .. } | AgentEvent::Welcome(_))
    })
    .await?;
    let AgentEvent::Stopped { error: Some(error) } = stopped else { anyhow::bail!("the session was not refused: {stopped:?}") };
    assert!(error.starts_with("unauthenticated: ") && error.contains("--client-cert"), "{error}");
    refused.close().await;

    // A certificate from another CA is still refused in the handshake.
    let token = pingji_tests::agent_token(&mut dispatcher.command().await?, "p0001").await?;
    strangers_refused_and_the_cas_certificate_welcomed(&url, &pki, &token).await?;
    assert!(dispatcher.log().contains("client certificates required of agent sessions"), "{}", dispatcher.log());
    dispatcher.terminate().await?;
    let exit = dispatcher.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", dispatcher.log());
    Ok(())
}

/// A live drill over TLS: the command connection and every simulated
/// person's session trust the test CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_drill_runs_over_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let options = ProcessOptions { agents: None, ..process_options(dir.path()) };
    let mut dispatcher = DispatcherProcess::start_tls(&options, &tls_args(&pki, false), pki.client()?).await?;
    let drill_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/smoke.toml");
    let drill = pingji_scenarios::drill::load(&drill_path).map_err(anyhow::Error::msg)?;
    let out = tempfile::tempdir()?;
    let mut live = pingji_scenarios::live::LiveOptions::new(&dispatcher.url(), Some(pingji_tests::ADMIN_TOKEN))?;
    live.speed = 180.0;
    live.connect.tls = pki.client()?;
    let report = pingji_scenarios::live::run(&drill, &live, out.path(), |_| {}).await?;
    assert!(report.drill.people >= 200, "{} people", report.drill.people);
    assert_eq!(report.totals.incidents, 8, "every incident of the timeline was created over TLS");
    assert!(report.totals.accepted >= 1, "people accepted offers over their TLS sessions");
    dispatcher.terminate().await?;
    let exit = dispatcher.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", dispatcher.log());
    Ok(())
}

/// Two dispatchers on one Redis, both serving TLS: the console and a field
/// agent given the standby are sent on to the owner, and stay on https.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_tls_too_and_its_redirect_to_the_owner_stays_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let options = |log: &str| -> anyhow::Result<SharedStoreOptions> {
        Ok(SharedStoreOptions {
            redis_url: redis.url(),
            policy: None,
            areas: Some(sample_city()),
            agents: Some(sample_roster()),
            snapshot_every: None,
            lease_ms: None,
            // The whole city as one shard.
            shard: Some("city".to_string()),
            log: dir.path().join(log),
            tls: Some((tls_args(&pki, false), pki.client()?)),
            photos_dir: None,
        })
    };
    let mut owner = SharedDispatcher::start(&options("owner.log")?).await?;
    owner.wait_owner(PROMPTLY).await?;
    let mut standby = SharedDispatcher::start(&options("standby.log")?).await?;
    let answer = standby.wait_standby(PROMPTLY).await?;
    assert_eq!(owner_of(&answer), Some(owner.address().to_string()));

    let ca = pki.ca.to_string_lossy().into_owned();
    let create = [
        "--ca",
        &ca,
        "incident",
        "create",
        "--at",
        "120.0956,30.2353",
        "--category",
        "welfare_check",
        "--priority",
        "2",
        "--need",
        "1",
        "--id",
        "via-standby",
    ];
    let created = run_pingji(&standby.url(), &create).await?.success()?;
    assert!(created.stdout.contains("via-standby"), "{}", created.stdout);
    owner.command().await?.get_incident(pb::GetIncidentRequest { id: "via-standby".into() }).await?;

    // A field agent given only the standby, as host:port without a scheme
    // (https, because a CA is given): the welcome can only come from the
    // owner, reached through the redirect.
    let token = pingji_tests::agent_token(&mut owner.command().await?, "p0001").await?;
    let (client, mut events) = start_agent(&standby.address().to_string(), "p0001", &token, pki.client()?)?;
    let welcomed = wait_for_event(&mut events, PROMPTLY, "the welcome from the owner", |event| {
        matches!(event, AgentEvent::Welcome(_) | AgentEvent::ConnectionLost { .. })
    })
    .await?;
    assert!(matches!(welcomed, AgentEvent::Welcome(_)), "the redirect was not followed over https: {welcomed:?}");
    client.close().await;
    assert!(standby.log().contains("serving TLS"), "{}", standby.log());
    Ok(())
}

/// Runs the dispatcher binary with `args` until it exits by itself; its log.
async fn refused_at_start(dir: &Path, name: &str, args: &[OsString]) -> anyhow::Result<String> {
    let binary = dispatcher_binary().await?;
    let log = dir.join(format!("{name}.log"));
    let mut child = spawn_dispatcher(&binary, args, &log)?;
    let status = tokio::time::timeout(PROMPTLY, child.wait()).await.context("the dispatcher kept running")??;
    let output = std::fs::read_to_string(&log)?;
    assert!(!status.success(), "{name} was accepted: {output}");
    assert!(!output.contains("dispatcher listening"), "{name} served: {output}");
    Ok(output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_are_refused_at_start_naming_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let listen = free_port()?.to_string();
    let base = |cert: &Path, key: &Path| -> Vec<OsString> {
        vec![
            "--listen".into(),
            listen.clone().into(),
            "--ephemeral".into(),
            "--tls-cert".into(),
            cert.into(),
            "--tls-key".into(),
            key.into(),
        ]
    };
    let missing = dir.path().join("no-such-cert.pem");
    let output = refused_at_start(dir.path(), "missing", &base(&missing, &pki.server_key)).await?;
    let expected = format!("tls.cert: cannot read the certificate {}", missing.display());
    assert!(output.contains(&expected), "expected {expected:?} in:\n{output}");
    assert!(output.contains("give the PEM file of the dispatcher's certificate"), "{output}");

    // A key that is not the certificate's (the client's key).
    let output = refused_at_start(dir.path(), "mismatch", &base(&pki.server_cert, &pki.client_key)).await?;
    assert!(output.contains("tls.cert: cannot serve TLS with"), "{output}");
    assert!(output.contains("check that the key is the certificate's"), "{output}");

    // The certificate where the key should be.
    let output = refused_at_start(dir.path(), "swapped", &base(&pki.server_cert, &pki.server_cert)).await?;
    let expected = format!("tls.key: {} is not a PEM private key", pki.server_cert.display());
    assert!(output.contains(&expected), "expected {expected:?} in:\n{output}");

    // A client CA file that is missing.
    let mut args = base(&pki.server_cert, &pki.server_key);
    let missing_ca = dir.path().join("no-such-ca.pem");
    args.extend(["--tls-client-ca".into(), missing_ca.clone().into()]);
    let output = refused_at_start(dir.path(), "missing-ca", &args).await?;
    assert!(
        output.contains(&format!("tls.client_ca: cannot read the client CA certificate {}", missing_ca.display())),
        "{output}"
    );

    // A certificate without its key.
    let args: Vec<OsString> =
        vec!["--listen".into(), listen.clone().into(), "--ephemeral".into(), "--tls-cert".into(), pki.server_cert.clone().into()];
    let output = refused_at_start(dir.path(), "half", &args).await?;
    assert!(output.contains("--tls-key"), "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_off_loopback_is_served_with_a_warning_and_on_loopback_without() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let binary = dispatcher_binary().await?;
    for (host, warned) in [("0.0.0.0", true), ("127.0.0.1", false)] {
        let port = free_port()?.port();
        let log = dir.path().join(format!("{host}.log"));
        let args: Vec<OsString> = vec!["--listen".into(), format!("{host}:{port}").into(), "--ephemeral".into()];
        let mut child = spawn_dispatcher(&binary, &args, &log)?;
        wait_until(PROMPTLY, &format!("the dispatcher on {host} listens"), async || {
            anyhow::ensure!(child.try_wait()?.is_none(), "the dispatcher exited: {}", std::fs::read_to_string(&log)?);
            Ok(std::fs::read_to_string(&log)?.contains("dispatcher listening"))
        })
        .await?;
        let output = std::fs::read_to_string(&log)?;
        assert_eq!(
            output.matches("serving plain text on a non-loopback address").count(),
            usize::from(warned),
            "{host}:\n{output}"
        );
        if warned {
            assert!(output.contains("set --tls-cert and --tls-key"), "{output}");
        }
        child.kill().await?;
    }
    Ok(())
}
