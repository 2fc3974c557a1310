//! Who may connect and what they may do: every refusal path of operator and
//! agent tokens, roles checked before any handler, masking for viewers, the
//! audit of precise reads, one session per person, and the first admin.

use std::time::Duration;

use pingji_client::errors;
use pingji_tests::{
    ADMIN_TOKEN, AgentSession, EventWatch, PeopleWatch, TestServer, add_operator, agent_token, pb, person, sample_roster, typed,
};
use tonic::Code;

const PROMPTLY: Duration = Duration::from_secs(10);
const IN_CITY: (f64, f64) = (120.0950, 30.2320);

fn incident(id: &str) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.into(),
        location: Some(pb::Location::wgs84(IN_CITY.0, IN_CITY.1)),
        category: "welfare_check".into(),
        priority: 2,
        headcount: 1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_calls_without_a_valid_operator_token_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let incidents_before = admin.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents.len();

    let refusals: Vec<(Option<String>, &str)> = vec![
        (None, "no operator token"),
        (Some("pjo_admin_0000000000000000000000000000000000000000000000000000000000000000".into()), "wrong"),
        (Some("pjo_nobody_5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed".into()), "wrong"),
        (Some("letmein".into()), "not an operator token"),
    ];
    for (token, says) in refusals {
        let mut client = server.command_with(token.as_deref()).await?;
        let status = client.create_incident(incident("sneaky")).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}: {status:?}");
        assert!(status.message().contains(says), "{token:?}: {}", status.message());
        // Reads too.
        let status = client.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // A person's token never opens the command API.
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("li", "d1-s1-c1-g1", &[])) }).await?;
    let person_token = agent_token(&mut admin, "li").await?;
    let status = server
        .command_with(Some(&person_token))
        .await?
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .expect_err("an agent token on the command API");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("agent token"), "{}", status.message());

    let incidents_after = admin.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents.len();
    assert_eq!(incidents_before, incidents_after, "a refused create made an incident");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_its_own_work_and_no_more() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let dispatcher = add_operator(&mut admin, "zhao.dispatcher", pb::OperatorRole::Dispatcher).await?;
    let commander = add_operator(&mut admin, "li.commander", pb::OperatorRole::Commander).await?;
    let set_mode =
        || pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() };

    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    as_viewer.list_incidents(pb::ListIncidentsRequest::default()).await?;
    let who = as_viewer.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    assert_eq!((who.name.as_str(), who.role), ("wang.viewer", pb::OperatorRole::Viewer as i32));
    let status = as_viewer.create_incident(incident("by-viewer")).await.expect_err("a viewer creates nothing");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("dispatcher role") && status.message().contains("viewer"), "{}", status.message());
    let status = as_viewer.set_mode(set_mode()).await.expect_err("a viewer switches no mode");
    assert_eq!(status.code(), Code::PermissionDenied);

    let mut as_dispatcher = server.command_with(Some(&dispatcher)).await?;
    let created = as_dispatcher.create_incident(incident("by-dispatcher")).await?.into_inner();
    assert_eq!(created.reported_by, "operator:zhao.dispatcher", "the actor is the token's account");
    let status = as_dispatcher.set_mode(set_mode()).await.expect_err("only commanders switch modes");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("commander role"), "{}", status.message());

    let mut as_commander = server.command_with(Some(&commander)).await?;
    as_commander.set_mode(set_mode()).await?;
    let status = as_commander
        .import_agents(pb::ImportAgentsRequest { agents: vec![person("new", "d1-s1-c1-g1", &[])] })
        .await
        .expect_err("only admins import rosters");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = as_commander
        .add_operator(pb::AddOperatorRequest { name: "mallory".into(), role: pb::OperatorRole::Admin as i32, expires_in_s: 0 })
        .await
        .expect_err("only admins manage accounts");
    assert_eq!(status.code(), Code::PermissionDenied);
    let operators = admin.list_operators(pb::ListOperatorsRequest {}).await?.into_inner().operators;
    assert!(!operators.iter().any(|operator| operator.name == "mallory"));

    // A rotated token stops working at once; the new one works.
    let rotated = as_commander.rotate_own_token(pb::RotateOwnTokenRequest::default()).await?.into_inner().token;
    let status = as_commander.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("the old token");
    assert_eq!(status.code(), Code::Unauthenticated);
    server.command_with(Some(&rotated)).await?.list_incidents(pb::ListIncidentsRequest::default()).await?;
    // A removed account is refused; the last admin cannot be removed.
    admin.remove_operator(pb::RemoveOperatorRequest { name: "zhao.dispatcher".into() }).await?;
    let status = as_dispatcher.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("removed");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = admin.remove_operator(pb::RemoveOperatorRequest { name: "admin".into() }).await.expect_err("last admin");
    assert_eq!(status.code(), Code::FailedPrecondition);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_people_masked_and_precise_reads_are_audited() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let mut spec = person("chen", "d1-s1-c1-g1", &[]);
    spec.phone = "13912345678".into();
    let (lon, lat) = (120.095_123_4, 30.232_987_6);
    let _session = server.connect_person_at(spec, lon, lat).await?;
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let dispatcher = add_operator(&mut admin, "zhao.dispatcher", pb::OperatorRole::Dispatcher).await?;
    let mut events = EventWatch::start(&mut admin, 1).await?;

    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    let seen = as_viewer.get_agent(pb::GetAgentRequest { id: "chen".into() }).await?.into_inner();
    let spec = seen.spec.expect("spec");
    assert_eq!(spec.phone, "139****5678");
    let at = seen.location.expect("location");
    assert_eq!((at.lon, at.lat), (120.10, 30.23), "coarsened to 0.01 degrees");
    let listed = as_viewer.list_agents(pb::ListAgentsRequest::default()).await?.into_inner().agents;
    assert!(listed.iter().all(|agent| agent.spec.as_ref().is_some_and(|spec| !spec.phone.contains("12345"))));
    let nearby = as_viewer
        .nearby_agents(pb::NearbyAgentsRequest { at: Some(pb::Location::wgs84(lon, lat)), k: 5, ..Default::default() })
        .await?
        .into_inner()
        .agents;
    let nearest = nearby.first().and_then(|nearby| nearby.agent.as_ref()).and_then(|agent| agent.location).expect("one");
    assert_eq!((nearest.lon, nearest.lat), (120.10, 30.23));
    // Distances cannot be trilaterated: from three points 300 m apart the
    // viewer is told the same whole kilometre, never metres.
    for (east, north) in [(0.0, 0.0), (300.0, 0.0), (0.0, 300.0)] {
        let (from_lon, from_lat) = pingji_tests::offset_m(lon, lat, east, north);
        let answer = as_viewer
            .nearby_agents(pb::NearbyAgentsRequest {
                at: Some(pb::Location::wgs84(from_lon, from_lat)),
                k: 5,
                ..Default::default()
            })
            .await?
            .into_inner()
            .agents;
        let chen = answer
            .iter()
            .find(|nearby| nearby.agent.as_ref().and_then(|agent| agent.spec.as_ref()).is_some_and(|spec| spec.id == "chen"));
        let distance = chen.map(|nearby| nearby.distance_m).expect("chen is near");
        assert_eq!(distance, 1000.0, "a viewer gets distances to the kilometre, at least 1 km");
    }

    let mut as_dispatcher = server.command_with(Some(&dispatcher)).await?;
    let precise = as_dispatcher.get_agent(pb::GetAgentRequest { id: "chen".into() }).await?.into_inner();
    assert_eq!(precise.spec.expect("spec").phone, "13912345678");
    assert_eq!(precise.location.map(|at| (at.lon, at.lat)), Some((lon, lat)));
    let audit = events
        .wait_for(PROMPTLY, "the audit of the read", |event| {
            event.kind == "personal_data_read" && event.actor == "operator:zhao.dispatcher"
        })
        .await?;
    let audit = typed!(audit, PersonalDataRead);
    assert_eq!((audit.rpc.as_str(), audit.subject.as_str(), audit.people), ("GetAgent", "agent chen", 1));
    // The viewer's reads are audited too, aggregated: each call with its
    // subject and set of people once (the second look from the same point
    // is the same read).
    let viewer_reads: Vec<String> = events
        .seen()
        .iter()
        .filter_map(|event| match &event.body {
            Some(pb::event::Body::PersonalDataRead(read)) if event.actor == "operator:wang.viewer" => Some(read.rpc.clone()),
            _ => None,
        })
        .collect();
    // (They came before the dispatcher's read, which the watch has seen.)
    assert_eq!(
        viewer_reads,
        ["GetAgent", "ListAgents", "NearbyAgents", "NearbyAgents", "NearbyAgents"],
        "one audit per distinct read"
    );
    let subjects = events.seen().iter().filter_map(|event| match &event.body {
        Some(pb::event::Body::PersonalDataRead(read)) if event.actor == "operator:wang.viewer" => Some(read.subject.clone()),
        _ => None,
    });
    assert!(subjects.into_iter().all(|subject| subject.ends_with("(coarse)")));
    // Token hashes never reach watchers.
    let issued = events.seen().iter().filter(|event| event.kind.contains("token") || event.kind == "operator_added");
    for event in issued {
        let shown = format!("{event:?}");
        assert!(!shown.contains("argon2") && !shown.contains("token_hash"), "{shown}");
    }
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_the_persons_current_token_and_one_session_replaces_the_other() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let mut admin = server.command().await?;
    let mut agents = server.agents().await?;
    // Added with UpsertAgent: the token comes once, in the answer.
    let added = admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("new", "d1-s1-c1-g1", &[])) }).await?;
    let token = added.into_inner().issued_token;
    assert!(token.starts_with("pja_"), "{token}");
    let again = admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("new", "d1-s1-c1-g1", &["first_aid"])) }).await?;
    assert!(again.into_inner().issued_token.is_empty(), "a change to a known person issues no token");

    for (id, wrong) in [("new", ""), ("new", "pja_0000"), ("p0001", token.as_str()), ("nobody", token.as_str())] {
        let status = AgentSession::try_open(&mut agents, id, wrong).await.err().expect("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{id}/{wrong}: {status:?}");
    }
    // An operator's token does not open a session either, and the refusal
    // says that is what it is (not that the id may be off the roster).
    let status = AgentSession::try_open(&mut agents, "new", ADMIN_TOKEN).await.err().expect("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::OperatorToken), "{status:?}");
    assert!(status.message().contains("that is an operator token"), "{}", status.message());
    assert!(status.message().contains("pingji roster token new --rotate"), "{}", status.message());
    assert!(!status.message().contains("not on the roster"), "{}", status.message());
    // A person's own wrong token is still refused as before.
    let status = AgentSession::try_open(&mut agents, "new", "pja_0000").await.err().expect("refused");
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");

    let mut first = AgentSession::open(&mut agents, "new", &token).await?;
    // A second session with the same token replaces the first, which is told why.
    let second = AgentSession::open(&mut agents, "new", &token).await?;
    let told = first.expect_refusal_within(PROMPTLY).await?;
    assert_eq!(told.code, "replaced");
    assert_eq!(told.reason, pb::ErrorReason::SessionReplaced as i32);
    assert!(told.message.contains("newer session"), "{}", told.message);
    first.expect_end_within(PROMPTLY).await?;
    drop(second);

    // A rotation ends the live session and the old token stops working.
    let mut live = AgentSession::open(&mut agents, "new", &token).await?;
    let rotated = agent_token(&mut admin, "new").await?;
    let told = live.expect_refusal_within(PROMPTLY).await?;
    assert_eq!(told.code, "unauthenticated");
    assert_eq!(told.reason, pb::ErrorReason::TokenInvalid as i32);
    assert!(told.message.contains("replaced by an admin"), "{}", told.message);
    let status = AgentSession::try_open(&mut agents, "new", &token).await.err().expect("the old token");
    assert_eq!(status.code(), Code::Unauthenticated);
    AgentSession::open(&mut agents, "new", &rotated).await?;
    // Imports hand out one token per person.
    let imported = admin
        .import_agents(pb::ImportAgentsRequest {
            agents: vec![person("imp-1", "d1-s1-c1-g1", &[]), person("imp-2", "d1-s1-c1-g1", &[])],
        })
        .await?
        .into_inner();
    assert_eq!(imported.tokens.iter().map(|issued| issued.subject.as_str()).collect::<Vec<_>>(), ["imp-1", "imp-2"]);
    AgentSession::open(&mut agents, "imp-2", &imported.tokens[1].token).await?;
    server.shutdown().await
}

/// `dispatcher bootstrap-admin` writes the first admin into the SQLite
/// journal and prints its token once; a second run is refused; the
/// dispatcher started on that file accepts the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_comes_from_the_bootstrap_subcommand() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("pingji.db");
    let binary = pingji_tests::dispatcher_binary().await?;
    let run = |name: &'static str| {
        let mut command = std::process::Command::new(&binary);
        command.args(["--data"]).arg(&data).args(["bootstrap-admin", "--name", name]);
        command.env_remove("PINGJI_BOOTSTRAP_ADMIN_TOKEN");
        command.output()
    };
    let first = run("root")?;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let token = String::from_utf8(first.stdout)?.trim().to_string();
    assert!(token.starts_with("pjo_root_"), "{token}");
    let second = run("other")?;
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already has an admin"));

    let server = TestServer::start(|config| config.store = pingji_dispatcher::server::Store::Sqlite(data.clone())).await?;
    let who = server.command_with(Some(&token)).await?.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    assert_eq!((who.name.as_str(), who.role), ("root", pb::OperatorRole::Admin as i32));
    // The test fixture's own bootstrap token was ignored: there was an admin.
    let status = server.command().await?.who_am_i(pb::WhoAmIRequest {}).await.expect_err("not added");
    assert_eq!(status.code(), Code::Unauthenticated);
    server.shutdown().await
}

/// A command client that sends `authorization: VALUE` as given, without
/// adding the `Bearer ` scheme as the Pingji clients do.
async fn command_with_raw_authorization(
    server: &TestServer,
    value: String,
) -> anyhow::Result<
    pb::command_service_client::CommandServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, impl tonic::service::Interceptor + use<>>,
    >,
> {
    let header: tonic::metadata::AsciiMetadataValue = value.parse()?;
    let interceptor = move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", header.clone());
        Ok(request)
    };
    Ok(pb::command_service_client::CommandServiceClient::with_interceptor(server.channel().await?, interceptor))
}

/// Issue #17, item 11 (first half): the token must come as `authorization:
/// Bearer TOKEN` (the scheme in any case, RFC 7235); a bare token or another
/// scheme is refused, and so is a 64 KiB token, with `unauthenticated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_must_come_as_a_bearer_and_a_huge_one_is_unauthenticated() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;

    for value in [ADMIN_TOKEN.to_string(), format!("Basic {ADMIN_TOKEN}"), format!("Bearer{ADMIN_TOKEN}")] {
        let mut client = command_with_raw_authorization(&server, value.clone()).await?;
        let status = client.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("not a bearer token");
        assert_eq!(status.code(), Code::Unauthenticated, "{value}: {status:?}");
        assert!(status.message().contains("authorization: Bearer"), "{value}: {}", status.message());
        assert!(!status.message().contains(ADMIN_TOKEN), "the token is a secret: {}", status.message());
    }
    let mut lower_case = command_with_raw_authorization(&server, format!("bearer {ADMIN_TOKEN}")).await?;
    lower_case.list_incidents(pb::ListIncidentsRequest::default()).await?;

    let huge = format!("pjo_admin_{}", "0".repeat(64 * 1024));
    let status = server
        .command_with(Some(&huge))
        .await?
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .expect_err("a 64 KiB token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("not an operator token"), "{}", status.message());
    server.command().await?.list_incidents(pb::ListIncidentsRequest::default()).await?;
    server.shutdown().await
}

/// A dispatcher without any operator account tells every client so (with
/// the way to the first admin) rather than that their token is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_without_accounts_says_so_instead_of_blaming_the_token() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.bootstrap_admin_token = None).await?;
    let status =
        server.command().await?.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("no account to open");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::NoOperatorAccounts), "{status:?}");
    assert!(status.message().contains("this dispatcher has no operator accounts yet"), "{}", status.message());
    assert!(status.message().contains("dispatcher bootstrap-admin"), "{}", status.message());
    assert!(status.message().contains("PINGJI_BOOTSTRAP_ADMIN_TOKEN"), "{}", status.message());
    assert!(!status.message().contains("rotated"), "{}", status.message());
    assert!(!status.message().contains("  "), "one sentence, no runs of spaces: {}", status.message());
    server.shutdown().await?;

    // With an account, a wrong token is just wrong.
    let server = TestServer::start(|_| {}).await?;
    let wrong = "pjo_admin_0000000000000000000000000000000000000000000000000000000000000000";
    let status =
        server.command_with(Some(wrong)).await?.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("wrong");
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");
    server.shutdown().await
}

/// The `dispatcher` binary started on a fresh journal file without a
/// bootstrap token warns at start, naming the command that fixes it; with
/// one, it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_without_accounts_warns_at_start_with_the_fix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("fresh.db");
    let log = dir.path().join("dispatcher.log");
    let binary = pingji_tests::dispatcher_binary().await?;
    let address = pingji_tests::process::free_port()?;
    let mut command = tokio::process::Command::new(&binary);
    command
        .args(["--listen", &address.to_string(), "--data"])
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    let mut child = command.spawn()?;
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    pingji_tests::wait_until(Duration::from_secs(60), "the dispatcher listens", async || {
        Ok(read_log().contains("dispatcher listening"))
    })
    .await?;
    child.kill().await?;
    let text = read_log();
    let warning =
        text.lines().find(|line| line.contains("no operator accounts")).unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&format!("dispatcher --data {} bootstrap-admin", data.display())), "{warning}");
    assert!(warning.contains("PINGJI_BOOTSTRAP_ADMIN_TOKEN"), "{warning}");

    // The usual test process starts with a bootstrap admin: no warning.
    let options = pingji_tests::ProcessOptions {
        data: dir.path().join("with-admin.db"),
        policy: None,
        areas: None,
        agents: None,
        snapshot_every: None,
        log: dir.path().join("with-admin.log"),
    };
    let process = pingji_tests::DispatcherProcess::start(&options).await?;
    assert!(!process.log().contains("no operator accounts"), "{}", process.log());
    process.kill().await
}

/// Issue #17, item 11: operator tokens expire (90 days unless the issuer
/// says otherwise) on the dispatcher's clock, and the expiry is journaled:
/// it holds across a restart. An expired token is refused with its own
/// reason and a message naming the fix; an admin lists accounts with their
/// expiry (never the token), issues new tokens and revokes them, which ends
/// the holder's open streams at once. When no admin token works any more,
/// the bootstrap admin brings one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tokens_expire_on_the_dispatchers_clock_and_can_be_listed_and_revoked() -> anyhow::Result<()> {
    const DAY: Duration = Duration::from_secs(86_400);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("pingji.db");
    let start_ms = 1_750_000_000_000; // 2025-06-15
    let clock = pingji_tests::TestClock::at(start_ms);
    let start = |clock: pingji_tests::TestClock, data: std::path::PathBuf| {
        TestServer::start(move |config| {
            config.store = pingji_dispatcher::server::Store::Sqlite(data);
            config.clock = clock.for_dispatcher();
        })
    };
    let server = start(clock.clone(), data.clone()).await?;
    let mut admin = server.command().await?;
    let hour = admin
        .add_operator(pb::AddOperatorRequest { name: "li.na".into(), role: pb::OperatorRole::Viewer as i32, expires_in_s: 3600 })
        .await?
        .into_inner();
    assert_eq!(hour.expires_at_ms, start_ms + 3_600_000);
    let dispatcher = add_operator(&mut admin, "zhao", pb::OperatorRole::Dispatcher).await?;
    let listed = admin.list_operators(pb::ListOperatorsRequest {}).await?.into_inner().operators;
    let expiry = |name: &str| listed.iter().find(|operator| operator.name == name).map(|operator| operator.token_expires_at_ms);
    assert_eq!(expiry("li.na"), Some(start_ms + 3_600_000));
    assert_eq!(expiry("zhao"), Some(start_ms + 90 * 86_400_000), "90 days by default");
    assert_eq!(expiry("admin"), Some(start_ms + 90 * 86_400_000), "the bootstrap admin's too");
    let too_long =
        pb::AddOperatorRequest { name: "x".into(), role: pb::OperatorRole::Viewer as i32, expires_in_s: 5000 * 86_400 };
    let status = admin.add_operator(too_long).await.expect_err("longer than the longest lifetime");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Revoking works at once, on calls and on open streams.
    let mut as_zhao = server.command_with(Some(&dispatcher)).await?;
    let mut zhao_events = EventWatch::start(&mut as_zhao, 0).await?;
    let revoked = admin.revoke_operator_token(pb::RevokeOperatorTokenRequest { name: "zhao".into() }).await?.into_inner();
    assert_eq!(revoked.token_revoked_at_ms, start_ms);
    let status = as_zhao.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");
    assert!(status.message().contains("revoked by an admin"), "{}", status.message());
    let ended = loop {
        match zhao_events.next_within(PROMPTLY).await {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    let ended = ended.chain().find_map(|cause| cause.downcast_ref::<tonic::Status>()).cloned().expect("a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");

    // The hour passes on the dispatcher's clock: li.na's token expires.
    let mut as_li = server.command_with(Some(&hour.token)).await?;
    as_li.list_incidents(pb::ListIncidentsRequest::default()).await?;
    let mut li_people = PeopleWatch::open(&mut as_li, pb::WatchAgentsRequest::default()).await?;
    li_people.wait_for(PROMPTLY, "the opening", |_| true).await?;
    clock.advance(Duration::from_secs(3601));
    let status = as_li.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenExpired), "{status:?}");
    assert!(status.message().contains("the operator token of li.na expired at 2025-06-15 16:06:40Z"), "{}", status.message());
    assert!(status.message().contains("pingji account token li.na --rotate"), "{}", status.message());
    let ended = li_people.expect_end_within(PROMPTLY).await?;
    assert_eq!(errors::reason(&ended), Some(pb::ErrorReason::TokenExpired), "{ended:?}");
    // Only the holder of the right secret learns it expired.
    let wrong = "pjo_li.na_0000000000000000000000000000000000000000000000000000000000000000";
    let status =
        server.command_with(Some(wrong)).await?.list_incidents(pb::ListIncidentsRequest::default()).await.expect_err("wrong");
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");
    server.shutdown().await?;

    // The expiry and the revocation were journaled: a restart keeps them.
    let server = start(clock.clone(), data.clone()).await?;
    let mut admin = server.command().await?;
    let status = server.command_with(Some(&hour.token)).await?.who_am_i(pb::WhoAmIRequest {}).await.expect_err("expired");
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenExpired), "{status:?}");
    let status = server.command_with(Some(&dispatcher)).await?.who_am_i(pb::WhoAmIRequest {}).await.expect_err("revoked");
    assert_eq!(errors::reason(&status), Some(pb::ErrorReason::TokenInvalid), "{status:?}");
    // An admin issues li.na a new token for two hours.
    let renewed = admin
        .issue_operator_token(pb::IssueOperatorTokenRequest { name: "li.na".into(), expires_in_s: 7200 })
        .await?
        .into_inner();
    assert_eq!(renewed.expires_at_ms, clock.now_ms() + 7_200_000);
    let who = server.command_with(Some(&renewed.token)).await?.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    assert_eq!((who.name.as_str(), who.token_expires_at_ms), ("li.na", renewed.expires_at_ms));
    // The last admin whose token works cannot be revoked.
    let status = admin.revoke_operator_token(pb::RevokeOperatorTokenRequest { name: "admin".into() }).await.expect_err("last");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    server.shutdown().await?;

    // 91 days on, the admin's own token has expired too; the bootstrap
    // admin token given at start brings it back rather than lock everyone out.
    clock.advance(91 * DAY);
    let server = start(clock.clone(), data).await?;
    let who = server.command().await?.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    assert_eq!(who.token_expires_at_ms, clock.now_ms() + 90 * 86_400_000, "{who:?}");
    server.shutdown().await
}
