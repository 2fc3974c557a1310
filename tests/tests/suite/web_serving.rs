//! How the command map is served: the demo in one command (`drill demo`:
//! a dispatcher with the map and a live drill on a clock at the drill's
//! speed), the web port with the Redis store and with TLS, and replay of a
//! drill's journal (`dispatcher --replay`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use pingji_dispatcher::server::{RedisStore, Store};
use pingji_tests::binaries::workspace_binary;
use pingji_tests::browser::{self, TestBrowser};
use pingji_tests::people::shown_at;
use pingji_tests::process::free_port;
use pingji_tests::redis::RedisServer;
use pingji_tests::tls::TestPki;
use pingji_tests::{
    ADMIN_TOKEN, DispatcherProcess, PeopleWatch, ProcessOptions, TestServer, commands_with, connect_with_retry, grpc_web,
    metrics::http_get, pb, sample_city, sample_roster, wait_until,
};
use prost::Message;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the demo may take to say where it serves.
const STARTED_WITHIN: Duration = Duration::from_secs(60);
/// How long a drill at speed may take to show what a test waits for.
const SHOWN_WITHIN: Duration = Duration::from_secs(90);

fn drill_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills").join(name)
}

/// What `drill demo` printed about where it serves.
struct DemoAddresses {
    web: SocketAddr,
    grpc: SocketAddr,
    token: String,
}

/// Starts `drill demo` on free ports with `args` after the usual ones; its
/// stderr goes to `log`.
async fn start_demo(dir: &Path, drill: &str, speed: &str) -> anyhow::Result<(Child, DemoAddresses)> {
    let binary = workspace_binary("pingji-scenarios", "drill").await?;
    let log = std::fs::File::create(dir.join("demo.log"))?;
    let mut command = Command::new(&binary);
    command
        .arg("demo")
        .arg(drill_file(drill))
        .args(["--speed", speed, "--web", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--out"])
        .arg(dir.join("demo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    let mut child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut web, mut grpc, mut token) = (None, None, None);
    let reading = async {
        while web.is_none() || grpc.is_none() || token.is_none() {
            let line = lines.next_line().await?.context("the demo ended before saying where it serves")?;
            let line = line.trim();
            if let Some(url) = line.strip_prefix("command map: ") {
                web = Some(url.trim_start_matches("http://").trim_end_matches('/').parse::<SocketAddr>()?);
            } else if let Some(value) = line.strip_prefix("operator token: ") {
                token = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("gRPC: ") {
                grpc = Some(value.split_whitespace().next().unwrap_or_default().parse::<SocketAddr>()?);
            }
        }
        anyhow::Ok(())
    };
    let log_text = || std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
    tokio::time::timeout(STARTED_WITHIN, reading)
        .await
        .with_context(|| format!("the demo did not say where it serves within {STARTED_WITHIN:?}; log:\n{}", log_text()))?
        .with_context(|| format!("log:\n{}", log_text()))?;
    // The rest of stdout is read (and dropped) so that the demo never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addresses = DemoAddresses {
        web: web.context("no map address")?,
        grpc: grpc.context("no gRPC address")?,
        token: token.context("no token")?,
    };
    Ok((child, addresses))
}

async fn terminate(child: &mut Child, dir: &Path) -> anyhow::Result<()> {
    let pid = child.id().context("the demo has already exited")?;
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
    let exited = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .context("the demo did not stop within 60 s of SIGTERM")??;
    let log = std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
    anyhow::ensure!(exited.success(), "the demo exited with {exited}; log:\n{log}");
    Ok(())
}

/// `WhoAmI` over grpc-web on the web port, as the page logs in.
async fn who_am_i_over_grpc_web(web: SocketAddr, token: &str) -> anyhow::Result<pb::Operator> {
    let stream = tokio::net::TcpStream::connect(web).await?;
    let answer =
        grpc_web::call(stream, &web.to_string(), "/pingji.v1.CommandService/WhoAmI", Some(token), &pb::WhoAmIRequest {}).await?;
    anyhow::ensure!(answer.grpc_status == Some(0), "WhoAmI over grpc-web answered {answer:?}");
    Ok(pb::Operator::decode(answer.message.context("no message")?.as_slice())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_map_and_shows_people_and_incidents_moving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut demo, at) = start_demo(dir.path(), "smoke.toml", "30").await?;

    let (status, page) = http_get(at.web, "/").await?;
    anyhow::ensure!(status.contains(" 200 "), "GET / on the map's port answered {status}");
    anyhow::ensure!(page.contains("<html") || page.contains("<!DOCTYPE"), "not a page: {page:.200}");
    anyhow::ensure!(!page.contains(&at.token), "the token is in the page");
    let operator = who_am_i_over_grpc_web(at.web, &at.token).await?;
    anyhow::ensure!(operator.role == pb::OperatorRole::Admin as i32, "the demo's token is not an admin's: {operator:?}");

    let channel = connect_with_retry(at.grpc, Duration::from_secs(10)).await?;
    let mut commands = commands_with(channel, Some(&at.token));
    // The drill's people come on duty and report where they are.
    let mut people = PeopleWatch::open(&mut commands, pb::WatchAgentsRequest::default()).await?;
    people
        .wait_for(SHOWN_WITHIN, "the drill's people on the map", |shown| {
            shown.values().filter(|agent| agent.location.is_some()).count() >= 100
        })
        .await?;
    let first_seen: BTreeMap<String, (f64, f64)> =
        people.people().keys().filter_map(|id| Some((id.clone(), shown_at(people.people(), id)?))).collect();
    // Someone assigned sets off, and their position changes as they go.
    people
        .wait_for(SHOWN_WITHIN, "a person moving", |shown| {
            first_seen.iter().any(|(id, at)| shown_at(shown, id).is_some_and(|now| now != *at))
        })
        .await?;
    // The drill's incidents come in and are staffed, at the drill's speed.
    let mut incidents = Vec::new();
    wait_until(SHOWN_WITHIN, "an incident of the drill staffed", async || {
        incidents = commands.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
        Ok(incidents.iter().any(|incident| !incident.assignments.is_empty()))
    })
    .await?;
    // What a person opening the demo sees: the city, people, incidents.
    if let Some(chromium) = browser::chromium()? {
        let browser = TestBrowser::launch(&chromium).await?;
        let page = browser.open(&format!("http://{}/", at.web)).await?;
        log_in_and_see_the_city(&page, &at.token).await?;
        browser::wait_for(&page, "the drill's people are drawn", "document.querySelectorAll('#map circle.person').length >= 100")
            .await?;
        browser::screenshot(&page, &browser::screenshot_folder().join("demo-map.png")).await?;
        browser.close().await?;
    }
    terminate(&mut demo, dir.path()).await?;
    let log = std::fs::read_to_string(dir.path().join("demo.log"))?;
    anyhow::ensure!(!log.contains(&at.token), "the token is in the demo's log");
    anyhow::ensure!(dir.path().join("demo/journal.db").exists(), "no journal of the demo");
    Ok(())
}

/// Types `token` into the page's login form and waits for the sample city.
async fn log_in_and_see_the_city(page: &chromiumoxide::page::Page, token: &str) -> anyhow::Result<()> {
    browser::wait_for(page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(token).await?.press_key("Enter").await?;
    browser::wait_for(page, "the sample city's areas are drawn", "document.querySelectorAll('#map path.area').length === 46")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_map_is_served_by_a_dispatcher_on_the_redis_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let url = redis.url();
    let server = TestServer::start_with_web(|config| {
        config.store = Store::Redis(RedisStore::new(&url, "127.0.0.1:0"));
        config.agents_file = Some(sample_roster());
    })
    .await?;
    let web = server.web_address().context("the server has a web port")?;
    let (status, _) = http_get(web, "/").await?;
    anyhow::ensure!(status.contains(" 200 "), "GET / answered {status}");
    let operator = who_am_i_over_grpc_web(web, ADMIN_TOKEN).await?;
    anyhow::ensure!(operator.role == pb::OperatorRole::Admin as i32, "not the admin: {operator:?}");
    // An incident made on the Redis-backed dispatcher shows on the page.
    let mut admin = server.command().await?;
    admin
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location { lon: 120.17, lat: 30.27, ..Default::default() }),
            category: "medical".to_string(),
            priority: 1,
            headcount: 1,
            ..Default::default()
        })
        .await?;
    if let Some(chromium) = browser::chromium()? {
        let browser = TestBrowser::launch(&chromium).await?;
        let page = browser.open(&format!("http://{web}/")).await?;
        log_in_and_see_the_city(&page, ADMIN_TOKEN).await?;
        browser::wait_for(&page, "the incident is drawn", "document.querySelectorAll('#map .incident').length >= 1").await?;
        browser::screenshot(&page, &browser::screenshot_folder().join("redis-store-map.png")).await?;
        browser.close().await?;
    }
    drop(admin);
    server.shutdown().await?;
    drop(redis);
    Ok(())
}

/// An HTTPS connection to `address` that trusts only the test CA.
async fn https_connection(
    pki: &TestPki,
    address: SocketAddr,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&pki.ca).context("cannot read the test CA")?)?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    connector.connect(ServerName::try_from("localhost")?, tcp).await.context("the TLS handshake with the web port failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_map_is_served_over_tls_with_the_grpc_ports_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = TestPki::create(dir.path())?;
    let web = free_port()?;
    let options = ProcessOptions {
        data: dir.path().join("pingji.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let args: Vec<OsString> = vec![
        "--tls-cert".into(),
        pki.server_cert.clone().into(),
        "--tls-key".into(),
        pki.server_key.clone().into(),
        "--web".into(),
        web.to_string().into(),
    ];
    let dispatcher = DispatcherProcess::start_tls(&options, &args, pki.client()?).await?;

    // The page, over HTTPS, with the certificate the test CA signed.
    let mut https = https_connection(&pki, web).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", web.port());
    tokio::io::AsyncWriteExt::write_all(&mut https, request.as_bytes()).await?;
    let mut response = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut https, &mut response).await;
    let response = String::from_utf8_lossy(&response);
    anyhow::ensure!(response.starts_with("HTTP/1.1 200"), "GET / over TLS answered {:.300}", response);
    anyhow::ensure!(response.contains("content-security-policy"), "no CSP over TLS: {:.600}", response);
    // The API over grpc-web, over TLS.
    let answer = grpc_web::call(
        https_connection(&pki, web).await?,
        &format!("localhost:{}", web.port()),
        "/pingji.v1.CommandService/WhoAmI",
        Some(ADMIN_TOKEN),
        &pb::WhoAmIRequest {},
    )
    .await?;
    anyhow::ensure!(answer.grpc_status == Some(0), "WhoAmI over grpc-web and TLS answered {answer:?}");
    let operator = pb::Operator::decode(answer.message.context("no message")?.as_slice())?;
    anyhow::ensure!(operator.role == pb::OperatorRole::Admin as i32, "not the admin: {operator:?}");
    // Nothing in clear text on the TLS port.
    let plain = http_get(web, "/").await;
    anyhow::ensure!(
        plain.as_ref().is_err() || plain.as_ref().is_ok_and(|(status, _)| !status.contains(" 200 ")),
        "the TLS web port answered a plain-text GET: {plain:?}"
    );
    anyhow::ensure!(dispatcher.log().contains(&format!("https://{web}/")), "the log does not say https:\n{}", dispatcher.log());
    dispatcher.kill().await?;
    Ok(())
}

/// A `dispatcher --replay JOURNAL` process on free ports: its gRPC and web
/// addresses, and the viewer token it printed.
async fn start_replay(dir: &Path, journal: &Path, speed: &str) -> anyhow::Result<(Child, SocketAddr, SocketAddr, String)> {
    let binary = pingji_tests::dispatcher_binary().await?;
    let (grpc, web) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.join("replay.log"))?;
    let mut command = Command::new(&binary);
    command
        .arg("--replay")
        .arg(journal)
        .args(["--speed", speed, "--listen", &grpc.to_string(), "--web", &web.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    let mut child = command.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let line = tokio::time::timeout(STARTED_WITHIN, lines.next_line())
        .await
        .context("the replay printed no token")??
        .context("the replay ended before printing its token")?;
    let token = line.strip_prefix("replay viewer token: ").with_context(|| format!("not a token line: {line}"))?.to_string();
    Ok((child, grpc, web, token))
}

/// A real drill run (the smoke drill) in `dir`: its journal, the event log
/// to review, and the events it holds.
fn smoke_journal(dir: &Path) -> anyhow::Result<(PathBuf, Vec<pingji_engine::event::Event>)> {
    let drill = pingji_scenarios::drill::load(&drill_file("smoke.toml")).map_err(anyhow::Error::msg)?;
    let out = dir.join("smoke");
    tokio::task::block_in_place(|| pingji_scenarios::run_in_process(&drill, &out, |_| {}))?;
    let journal = out.join("journal.db");
    let source = pingji_scenarios::read_journal(&journal)?;
    Ok((journal, source))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drills_journal_is_replayed_at_speed_and_nothing_can_be_changed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (journal, source) = smoke_journal(dir.path())?;
    let last = source.last().context("the drill's journal is empty")?.clone();
    let first_at = source.first().context("no first event")?.at;
    let drill_ms = last.at.0 - first_at.0;
    anyhow::ensure!(drill_ms > 20 * 60 * 1000, "the smoke drill's journal spans only {drill_ms} ms");

    // 1,800 drill seconds at 120 times real speed: about 15 s.
    let (mut replay, grpc, web, token) = start_replay(dir.path(), &journal, "120").await?;
    let channel = connect_with_retry(grpc, Duration::from_secs(30)).await?;
    let mut viewer = commands_with(channel.clone(), Some(&token));
    let whoami = wait_for_answer(async || Ok(viewer.who_am_i(pb::WhoAmIRequest {}).await?.into_inner())).await?;
    anyhow::ensure!(whoami.role == pb::OperatorRole::Viewer as i32, "the replay's account is not a viewer: {whoami:?}");
    let mut events = viewer.watch_events(pb::WatchEventsRequest { from_seq: 1, replay_last: 0 }).await?.into_inner();
    // The events come as in the journal, with its times, in order and at speed.
    let started = tokio::time::Instant::now();
    let mut seen = 0u64;
    let mut first_incident_seen_after = None;
    while seen < last.seq {
        let event = tokio::time::timeout(SHOWN_WITHIN, events.message())
            .await
            .with_context(|| format!("no event after {seen} of {} within {SHOWN_WITHIN:?}", last.seq))??
            .context("the event stream ended")?;
        let expected = source.get(event.seq as usize - 1).context("an event the journal does not hold")?;
        anyhow::ensure!(event.seq == seen + 1, "event {} after {seen}", event.seq);
        anyhow::ensure!(
            event.at_ms == expected.at.0,
            "event {} at {} in the replay, {} in the journal",
            event.seq,
            event.at_ms,
            expected.at.0
        );
        if first_incident_seen_after.is_none() && !event.incident_id.is_empty() {
            first_incident_seen_after = Some(started.elapsed());
        }
        seen = event.seq;
    }
    let took = started.elapsed();
    // Played at the pace of the drill times 120 (not all at once, not in real time).
    let expected = Duration::from_millis((drill_ms / 120) as u64);
    anyhow::ensure!(
        took >= expected / 2 && took <= expected * 4 + Duration::from_secs(10),
        "{} events spanning {drill_ms} ms replayed in {took:?} at speed 120 (expected about {expected:?})",
        last.seq
    );
    // The state followed: the drill's incidents, as they ended.
    let incidents = viewer.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    let reported =
        source.iter().filter(|event| matches!(event.kind, pingji_engine::event::EventKind::IncidentReported { .. })).count();
    anyhow::ensure!(incidents.len() == reported, "{} incidents in the replay, {reported} in the journal", incidents.len());
    let areas = viewer.list_areas(pb::ListAreasRequest::default()).await?.into_inner().areas;
    anyhow::ensure!(areas.len() == 47, "{} areas in the replay", areas.len());

    // Nothing can be changed, and the refusal says why.
    let refused = viewer
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location { lon: 120.17, lat: 30.27, ..Default::default() }),
            category: "medical".to_string(),
            priority: 1,
            headcount: 1,
            ..Default::default()
        })
        .await
        .expect_err("a viewer's create refused");
    anyhow::ensure!(refused.code() == tonic::Code::PermissionDenied, "a viewer's create: {refused:?}");
    // What a viewer may change (their own token) is refused too, saying why.
    let refused = viewer.rotate_own_token(pb::RotateOwnTokenRequest::default()).await.expect_err("a change refused");
    anyhow::ensure!(
        refused.code() == tonic::Code::FailedPrecondition && refused.message().contains("replays a journal"),
        "rotating the token in a replay: {refused:?}"
    );
    // Over grpc-web, as the page sees it.
    let answer = grpc_web::call(
        tokio::net::TcpStream::connect(web).await?,
        &web.to_string(),
        "/pingji.v1.CommandService/ListIncidents",
        Some(&token),
        &pb::ListIncidentsRequest::default(),
    )
    .await?;
    anyhow::ensure!(answer.grpc_status == Some(0), "ListIncidents over grpc-web: {answer:?}");
    let listed = pb::ListIncidentsResponse::decode(answer.message.context("no message")?.as_slice())?;
    anyhow::ensure!(listed.incidents.len() == reported, "grpc-web lists {} incidents", listed.incidents.len());
    let (status, _) = http_get(web, "/").await?;
    anyhow::ensure!(status.contains(" 200 "), "GET / on the replay's web port: {status}");
    // The page of the replay: the city, and the last events in its feed.
    if let Some(chromium) = browser::chromium()? {
        let browser = TestBrowser::launch(&chromium).await?;
        let page = browser.open(&format!("http://{web}/")).await?;
        log_in_and_see_the_city(&page, &token).await?;
        browser::wait_for(&page, "the replayed events are in the feed", "document.querySelectorAll('#feed li').length >= 10")
            .await?;
        browser::screenshot(&page, &browser::screenshot_folder().join("replay-map.png")).await?;
        browser.close().await?;
    }

    let pid = replay.id().context("the replay exited")?;
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    let exited = tokio::time::timeout(Duration::from_secs(30), replay.wait()).await??;
    let log = std::fs::read_to_string(dir.path().join("replay.log"))?;
    anyhow::ensure!(exited.success(), "the replay exited with {exited}; log:\n{log}");
    anyhow::ensure!(!log.contains(&token), "the viewer token is in the log");
    Ok(())
}

/// Issue #18: the reviewer pauses a replay, changes its speed and skips
/// ahead, from the API and from the page; it cannot go back, and a
/// dispatcher serving its own journal has no replay to steer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_paused_sped_up_and_skipped_ahead_and_cannot_go_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (journal, source) = smoke_journal(dir.path())?;
    let last = source.last().context("the drill's journal is empty")?.clone();

    // At real speed a 30-minute drill would take 30 minutes.
    let (mut replay, grpc, web, token) = start_replay(dir.path(), &journal, "1").await?;
    let channel = connect_with_retry(grpc, Duration::from_secs(30)).await?;
    let mut viewer = commands_with(channel.clone(), Some(&token));
    let state = wait_for_answer(async || Ok(viewer.get_replay(pb::GetReplayRequest {}).await?.into_inner())).await?;
    anyhow::ensure!(state.journal == "journal.db" && state.speed == 1.0 && !state.paused, "{state:?}");
    anyhow::ensure!(state.last_seq == last.seq && state.last_at_ms == last.at.0, "{state:?}");

    // Paused, the clock stands still.
    let paused =
        viewer.set_replay(pb::SetReplayRequest { play: pb::ReplayPlay::Pause as i32, ..Default::default() }).await?.into_inner();
    anyhow::ensure!(paused.paused, "{paused:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = viewer.get_replay(pb::GetReplayRequest {}).await?.into_inner();
    anyhow::ensure!(still.clock_ms == paused.clock_ms, "the clock moved while paused: {paused:?} then {still:?}");
    // It cannot go back, nor run at a speed it cannot keep; neither changes it.
    let back = viewer
        .set_replay(pb::SetReplayRequest { skip_to_ms: paused.clock_ms - 60_000, ..Default::default() })
        .await
        .expect_err("going back");
    anyhow::ensure!(back.code() == tonic::Code::InvalidArgument && back.message().contains("cannot go back"), "{back:?}");
    let too_fast = viewer.set_replay(pb::SetReplayRequest { speed: 50_000.0, ..Default::default() }).await.expect_err("too fast");
    anyhow::ensure!(too_fast.code() == tonic::Code::InvalidArgument, "{too_fast:?}");
    let unchanged = viewer.get_replay(pb::GetReplayRequest {}).await?.into_inner();
    anyhow::ensure!(unchanged.paused && unchanged.speed == 1.0 && unchanged.clock_ms == paused.clock_ms, "{unchanged:?}");

    // The page shows the replay's controls; its pause button plays on, and
    // the speed chosen there holds.
    if let Some(chromium) = browser::chromium()? {
        let browser = TestBrowser::launch(&chromium).await?;
        let page = browser.open(&format!("http://{web}/")).await?;
        log_in_and_see_the_city(&page, &token).await?;
        browser::wait_for(
            &page,
            "the replay bar shows paused",
            "document.getElementById('replay-bar').dataset.paused === 'true'",
        )
        .await?;
        page.find_element("#replay-play").await?.click().await?;
        browser::wait_for(&page, "the replay plays on", "document.getElementById('replay-bar').dataset.paused === 'false'")
            .await?;
        browser::eval::<bool>(
            &page,
            "(() => { const speed = document.getElementById('replay-speed'); speed.value = '600'; \
             speed.dispatchEvent(new Event('change')); return true; })()",
        )
        .await?;
        browser::wait_for(&page, "the speed is 600", "document.getElementById('replay-bar').dataset.speed === '600'").await?;
        browser::screenshot(&page, &browser::screenshot_folder().join("replay-controls.png")).await?;
        browser.close().await?;
        let state = viewer.get_replay(pb::GetReplayRequest {}).await?.into_inner();
        anyhow::ensure!(!state.paused && state.speed == 600.0, "the page's changes did not reach the replay: {state:?}");
    }

    // Skipped to the end, every event is shown at once.
    viewer.set_replay(pb::SetReplayRequest { skip_to_ms: last.at.0, ..Default::default() }).await?;
    let mut shown = 0;
    for _ in 0..100 {
        shown = viewer.get_replay(pb::GetReplayRequest {}).await?.into_inner().shown_seq;
        if shown == last.seq {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(shown == last.seq, "{shown} of {} events shown 10 s after skipping to the end", last.seq);
    let incidents = viewer.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    anyhow::ensure!(!incidents.is_empty(), "no incidents after skipping to the end");

    let pid = replay.id().context("the replay exited")?;
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    tokio::time::timeout(Duration::from_secs(30), replay.wait()).await??;

    // A dispatcher serving its own journal has no replay to steer.
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let live = admin.get_replay(pb::GetReplayRequest {}).await.expect_err("a live dispatcher's replay");
    anyhow::ensure!(live.code() == tonic::Code::FailedPrecondition && live.message().contains("--replay"), "{live:?}");
    server.shutdown().await
}

/// The answer of `call`, retried while the process is still starting.
async fn wait_for_answer<T>(mut call: impl AsyncFnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + STARTED_WITHIN;
    loop {
        match call().await {
            Ok(answer) => return Ok(answer),
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => return Err(error),
        }
    }
}
