//! Bad input end to end: each case gets the right gRPC code and a message a
//! person can act on, and changes nothing: `ListIncidents`, `ListAgents` and
//! `ListAreas` read the same before and after, and no event is recorded in
//! between (the next event after the bad call is a marker the test writes).

use std::time::Duration;

use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{AgentSession, EventWatch, TestServer, area_box, pb, person, quick_policy, sample_roster};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

const PROMPTLY: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq)]
struct Snapshot {
    incidents: Vec<pb::Incident>,
    agents: Vec<pb::Agent>,
    areas: pb::ListAreasResponse,
}

async fn snapshot(command: &mut pingji_tests::Commands) -> anyhow::Result<Snapshot> {
    Ok(Snapshot {
        incidents: command
            .list_incidents(pb::ListIncidentsRequest { open_only: false, limit: 0, ..Default::default() })
            .await?
            .into_inner()
            .incidents,
        agents: command.list_agents(pb::ListAgentsRequest::default()).await?.into_inner().agents,
        areas: command.list_areas(pb::ListAreasRequest { level: 0, with_geometry: true }).await?.into_inner(),
    })
}

/// Proof that nothing changed between `begin` and `verify`.
struct Unchanged {
    before: Snapshot,
    watch: EventWatch,
}

impl Unchanged {
    async fn begin(command: &mut pingji_tests::Commands) -> anyhow::Result<Unchanged> {
        let watch = EventWatch::start(command, 0).await?;
        Ok(Unchanged { before: snapshot(command).await?, watch })
    }

    async fn verify(mut self, command: &mut pingji_tests::Commands) -> anyhow::Result<()> {
        let after = snapshot(command).await?;
        assert_eq!(self.before, after, "the refused request changed the state");
        let marker = "marker after the refused request";
        let mut spec = person("marker", "", &[]);
        spec.name = marker.to_string();
        command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await?;
        // Reads are audited (personal_data_read): those are not changes.
        let mut next = self.watch.next_within(PROMPTLY).await?;
        while next.kind == "personal_data_read" {
            next = self.watch.next_within(PROMPTLY).await?;
        }
        let name = match &next.body {
            Some(pb::event::Body::AgentsUpserted(upserted)) => upserted.agents.first().map(|agent| agent.name.clone()),
            _ => None,
        };
        assert!(
            name.as_deref() == Some(marker),
            "the refused request recorded an event: the first event after it is #{} {} {:?}",
            next.seq,
            next.kind,
            next.body
        );
        Ok(())
    }
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>, code: Code, mentions: &[&str]) {
    let status = match result {
        Ok(response) => panic!("expected {code:?}, but the request succeeded: {:?}", response.into_inner()),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "message: {}", status.message());
    for needle in mentions {
        assert!(status.message().contains(needle), "the message {:?} should mention {needle:?}", status.message());
    }
}

fn incident(id: &str, lon: f64, lat: f64) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "fire".to_string(),
        priority: 1,
        required_skills: vec![],
        headcount: 1,
        description: String::new(),
        force: false,
    }
}

/// A point inside the sample city (grid d1-s1-c1-g1).
const IN_CITY: (f64, f64) = (120.0956, 30.2353);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_coordinates_are_invalid_arguments() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut session = server.connect_person_at(person("walker", "d1-s1-c1-g1", &[]), IN_CITY.0, IN_CITY.1).await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    assert_refused(
        command.create_incident(incident("north-of-the-pole", 120.1, 91.0)).await,
        Code::InvalidArgument,
        &["latitude 91", "between -90 and 90"],
    );
    assert_refused(
        command.create_incident(incident("far-east", 200.0, 30.0)).await,
        Code::InvalidArgument,
        &["longitude 200", "-180 and 180"],
    );
    assert_refused(command.create_incident(incident("nan", f64::NAN, 30.0)).await, Code::InvalidArgument, &["longitude"]);
    let mut nowhere = incident("nowhere", 0.0, 0.0);
    nowhere.location = None;
    assert_refused(command.create_incident(nowhere).await, Code::InvalidArgument, &["location is missing"]);
    let nearby =
        pb::NearbyAgentsRequest { at: Some(pb::Location::wgs84(120.1, -95.0)), k: 5, skills: vec![], available_only: false };
    assert_refused(command.nearby_agents(nearby).await, Code::InvalidArgument, &["latitude -95"]);
    // A person's own location report is refused on their session.
    session.send_location(181.0, 30.0).await?;
    match session.next_message_within(PROMPTLY).await? {
        Incoming::Refused(refused) => {
            assert_eq!(refused.code, "invalid_argument");
            assert!(refused.message.contains("longitude 181"), "message: {}", refused.message);
        }
        other => anyhow::bail!("expected refused, got {other:?}"),
    }

    unchanged.verify(&mut command).await?;
    drop(session);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_mode_on_an_unknown_area_is_not_found() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let request = pb::SetModeRequest { area_id: "d9-s9".into(), mode: pb::Mode::EmergencyI as i32, reason: "earthquake".into() };
    assert_refused(command.set_mode(request).await, Code::NotFound, &["d9-s9", "list areas"]);
    let unspecified =
        pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::Unspecified as i32, reason: "earthquake".into() };
    assert_refused(command.set_mode(unspecified).await, Code::InvalidArgument, &["MODE_EMERGENCY"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_agent_with_an_unknown_id_is_not_found() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    assert_refused(
        command.get_agent(pb::GetAgentRequest { id: "p9999".into() }).await,
        Code::NotFound,
        &["p9999", "not on the roster"],
    );

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_unknown_incident_is_not_found() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command.create_incident(incident("real-1", IN_CITY.0, IN_CITY.1)).await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let request = pb::CancelIncidentRequest { id: "inc-404".into(), reason: "false alarm".into() };
    assert_refused(command.cancel_incident(request).await, Code::NotFound, &["inc-404", "list incidents"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headcount_of_zero_is_invalid() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let mut request = incident("nobody-needed", IN_CITY.0, IN_CITY.1);
    request.headcount = 0;
    assert_refused(command.create_incident(request).await, Code::InvalidArgument, &["headcount 0", "1 to"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_of_nine_is_invalid() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let mut request = incident("very-urgent", IN_CITY.0, IN_CITY.1);
    request.priority = 9;
    assert_refused(command.create_incident(request).await, Code::InvalidArgument, &["priority 9", "1 (most urgent) to 4"]);
    let mut negative = incident("negative", IN_CITY.0, IN_CITY.1);
    negative.priority = -1;
    assert_refused(command.create_incident(negative).await, Code::InvalidArgument, &["priority -1"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_incident_id_already_exists() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command.create_incident(incident("dup-1", IN_CITY.0, IN_CITY.1)).await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let mut again = incident("dup-1", IN_CITY.0 + 0.01, IN_CITY.1);
    again.category = "flood".into();
    assert_refused(command.create_incident(again).await, Code::AlreadyExists, &["dup-1", "choose another id"]);

    unchanged.verify(&mut command).await?;
    let original = command.get_incident(pb::GetIncidentRequest { id: "dup-1".into() }).await?.into_inner();
    assert_eq!(original.category, "fire");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_an_agent_already_on_the_roster_already_exists() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let mut command = server.command().await?;
    let existing = command.get_agent(pb::GetAgentRequest { id: "p0001".into() }).await?.into_inner();
    let unchanged = Unchanged::begin(&mut command).await?;

    let mut changed = existing.spec.clone().ok_or_else(|| anyhow::anyhow!("p0001 has no spec"))?;
    changed.name = "someone else".into();
    let request = pb::ImportAgentsRequest { agents: vec![person("fresh-1", "d1-s1-c1-g1", &[]), changed] };
    assert_refused(command.import_agents(request).await, Code::AlreadyExists, &["p0001", "already on the roster"]);

    unchanged.verify(&mut command).await?;
    // The import is all or nothing: the new person in it was not added.
    assert_refused(command.get_agent(pb::GetAgentRequest { id: "fresh-1".into() }).await, Code::NotFound, &["fresh-1"]);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_geojson_is_invalid() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let truncated = r#"{"type": "FeatureCollection", "features": [{"type": "Feature""#;
    assert_refused(
        command.import_areas(pb::ImportAreasRequest { geojson: truncated.into(), ..Default::default() }).await,
        Code::InvalidArgument,
        &["not valid JSON"],
    );
    let not_a_collection = r#"{"type": "Feature", "properties": {}, "geometry": null}"#;
    assert_refused(
        command.import_areas(pb::ImportAreasRequest { geojson: not_a_collection.into(), ..Default::default() }).await,
        Code::InvalidArgument,
        &["FeatureCollection"],
    );

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_area_hierarchy_is_invalid() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let square = serde_json::json!({"type": "Polygon", "coordinates": [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]]});
    let feature = |id: &str, level: &str, parent: &str| serde_json::json!({"type": "Feature", "properties": {"id": id, "name": id, "level": level, "parent": parent}, "geometry": square});
    let cyclic = serde_json::json!({"type": "FeatureCollection", "features": [
        feature("loop-a", "district", "loop-b"),
        feature("loop-b", "street", "loop-a"),
    ]});
    assert_refused(
        command.import_areas(pb::ImportAreasRequest { geojson: cyclic.to_string(), ..Default::default() }).await,
        Code::InvalidArgument,
        &["cycle", "loop-a", "loop-b"],
    );

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_must_open_with_hello_from_someone_on_the_roster() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut agents = server.agents().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    // Someone not on the roster is refused as any wrong token is (tests/auth.rs).
    let stranger = AgentSession::try_open(&mut agents, "stranger", "pja_guess")
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a stranger was let in"))?;
    assert_eq!(stranger.code(), Code::Unauthenticated, "message: {}", stranger.message());
    assert!(stranger.message().contains("stranger"), "{}", stranger.message());

    let (outbox, requests) = tokio::sync::mpsc::channel(1);
    outbox.send(pb::AgentMessage { body: Some(Outgoing::Location(pb::Location::wgs84(IN_CITY.0, IN_CITY.1))) }).await?;
    let status =
        agents.session(ReceiverStream::new(requests)).await.err().ok_or_else(|| anyhow::anyhow!("no hello was accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument, "message: {}", status.message());
    assert!(status.message().contains("hello"), "{}", status.message());

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_an_expired_offer_is_refused() -> anyhow::Result<()> {
    let server = TestServer::start(|config| {
        config.policy = quick_policy();
        config.policy.normal.offer_timeout_s = 1;
    })
    .await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let mut late = server.connect_person_at(person("late", "d1-s1-c1-g1", &[]), lon, lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    command.create_incident(incident("expired-1", lon, lat)).await?;
    let offer = late.expect_offer_within(PROMPTLY).await?;
    match late.next_message_within(Duration::from_secs(30)).await? {
        Incoming::OfferWithdrawn(withdrawn) => assert_eq!(withdrawn.offer_id, offer.offer_id),
        other => anyhow::bail!("expected the offer to time out, got {other:?}"),
    }
    // The timeout and what follows from it are recorded before we look.
    events.wait_for_kind(PROMPTLY, "no_candidates", "expired-1").await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    late.accept(&offer.offer_id).await?;
    match late.next_message_within(PROMPTLY).await? {
        Incoming::Refused(refused) => {
            assert_eq!(refused.code, "failed_precondition");
            assert_eq!(refused.offer_id, offer.offer_id);
            assert!(refused.message.contains("expired"), "message: {}", refused.message);
        }
        other => anyhow::bail!("expected refused, got {other:?}"),
    }

    unchanged.verify(&mut command).await?;
    let incident = command.get_incident(pb::GetIncidentRequest { id: "expired-1".into() }).await?.into_inner();
    assert!(incident.assignments.is_empty());
    drop((late, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_cancelled_incident_fails_its_precondition() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command.create_incident(incident("cancelled-1", IN_CITY.0, IN_CITY.1)).await?;
    let cancelled = command
        .cancel_incident(pb::CancelIncidentRequest { id: "cancelled-1".into(), reason: "false alarm".into() })
        .await?
        .into_inner();
    assert_eq!(cancelled.status, pb::IncidentStatus::Cancelled as i32);
    let unchanged = Unchanged::begin(&mut command).await?;

    let close = pb::CloseIncidentRequest { id: "cancelled-1".into(), feedback: "all done".into() };
    assert_refused(command.close_incident(close).await, Code::FailedPrecondition, &["cancelled-1", "already cancelled"]);
    let cancel_again = pb::CancelIncidentRequest { id: "cancelled-1".into(), reason: "again".into() };
    assert_refused(command.cancel_incident(cancel_again).await, Code::FailedPrecondition, &["cancelled-1"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

/// Server bug: a status value outside the enum is refused with the message
/// meant for a repeated hello ("empty or repeated hello message; ..."),
/// because `command_for` in dispatcher/src/server/agent.rs drops the reason
/// that `convert::status_from_pb` gives ("status is unknown; use available,
/// busy or off duty").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_value_is_refused_with_a_message_about_status() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut session = server.connect_person_at(person("odd", "d1-s1-c1-g1", &[]), IN_CITY.0, IN_CITY.1).await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    session.send(Outgoing::Status(42)).await?;
    match session.next_message_within(PROMPTLY).await? {
        Incoming::Refused(refused) => {
            assert_eq!(refused.code, "invalid_argument");
            // It should name the allowed values, not talk about hello.
            assert!(refused.message.contains("available") && !refused.message.contains("hello"), "message: {}", refused.message);
        }
        other => anyhow::bail!("expected refused, got {other:?}"),
    }

    unchanged.verify(&mut command).await?;
    drop(session);
    server.shutdown().await
}

/// The longest status message a refusal of the inputs below may carry: a
/// status message travels in a header, and stock gRPC clients refuse a
/// response whose headers pass 8 KiB (grpc-core's default).
const SHORT_MESSAGE: usize = 512;

/// Checks that `status` quotes `input` (much longer than a message may be)
/// by its first characters and its length, and stays short.
#[track_caller]
fn assert_quoted_briefly(what: &str, status: &Status, input: &str) {
    let message = status.message();
    let start: String = message.chars().take(200).collect();
    assert!(message.len() <= SHORT_MESSAGE, "{what}: a message of {} bytes: {start}…", message.len());
    assert!(message.contains(&input[..64]), "{what}: the message does not show the input's start: {message}");
    let length = format!("{} characters", input.chars().count());
    assert!(message.contains(&length), "{what}: the message does not say how long the input was: {message}");
}

/// Issue #17, item 6: a 10 KB id comes back in the status message as its
/// first characters and its length, never whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_a_short_prefix_of_a_long_input() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut session = server.connect_person_at(person("quoted", "d1-s1-c1-g1", &[]), IN_CITY.0, IN_CITY.1).await?;
    let unchanged = Unchanged::begin(&mut command).await?;
    let long = format!("d1-{}", "x".repeat(10_000 - 3));

    let refusals = vec![
        (
            "SetMode",
            command
                .set_mode(pb::SetModeRequest { area_id: long.clone(), mode: pb::Mode::EmergencyI as i32, reason: "flood".into() })
                .await
                .err(),
        ),
        ("Coverage", command.coverage(pb::CoverageRequest { area_id: long.clone() }).await.err()),
        ("ListAgents", command.list_agents(pb::ListAgentsRequest { area_id: long.clone(), ..Default::default() }).await.err()),
        ("CallupStatus", command.callup_status(pb::CallupStatusRequest { area_id: long.clone(), open_only: false }).await.err()),
        (
            "CallUp",
            command
                .call_up(pb::CallUpRequest { area_id: long.clone(), reason: "flood".into(), ..Default::default() })
                .await
                .err(),
        ),
        ("GetAgent", command.get_agent(pb::GetAgentRequest { id: long.clone() }).await.err()),
        ("GetIncident", command.get_incident(pb::GetIncidentRequest { id: long.clone() }).await.err()),
        (
            "CancelIncident",
            command.cancel_incident(pb::CancelIncidentRequest { id: long.clone(), reason: "x".into() }).await.err(),
        ),
        ("IssueAgentToken", command.issue_agent_token(pb::IssueAgentTokenRequest { agent_id: long.clone() }).await.err()),
        ("CreateIncident", command.create_incident(incident(&long, IN_CITY.0, IN_CITY.1)).await.err()),
        (
            "UpsertAgent id",
            command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(&long, "d1-s1-c1-g1", &[])) }).await.err(),
        ),
        (
            "UpsertAgent home",
            command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("homeless", &long, &[])) }).await.err(),
        ),
        (
            "ActivatePlan",
            command
                .activate_plan(pb::ActivatePlanRequest { plan_id: long.clone(), area_id: "d1".into(), reason: "flood".into() })
                .await
                .err(),
        ),
        (
            "DeactivatePlan",
            command.deactivate_plan(pb::DeactivatePlanRequest { activation_id: long.clone(), reason: "over".into() }).await.err(),
        ),
        (
            "TriageReport",
            command
                .triage_report(pb::TriageReportRequest {
                    report_id: long.clone(),
                    action: Some(pb::triage_report_request::Action::RejectReason("no".into())),
                })
                .await
                .err(),
        ),
        (
            "AddOperator",
            command
                .add_operator(pb::AddOperatorRequest {
                    name: long.clone(),
                    role: pb::OperatorRole::Viewer as i32,
                    expires_in_s: 0,
                })
                .await
                .err(),
        ),
        ("RemoveOperator", command.remove_operator(pb::RemoveOperatorRequest { name: long.clone() }).await.err()),
        ("hello", AgentSession::try_open(&mut server.agents().await?, &long, "pja_guess").await.err()),
    ];
    for (what, refused) in refusals {
        let status = refused.ok_or_else(|| anyhow::anyhow!("{what} with a 10,000-character id was accepted"))?;
        assert_quoted_briefly(what, &status, &long);
    }
    // On a person's session too: accepting an offer that does not exist.
    session.accept(&long).await?;
    match session.next_message_within(PROMPTLY).await? {
        Incoming::Refused(refused) => assert_quoted_briefly("Accept", &Status::new(Code::Unknown, refused.message), &long),
        other => anyhow::bail!("expected refused, got {other:?}"),
    }

    unchanged.verify(&mut command).await?;
    drop(session);
    server.shutdown().await
}

/// Issue #17, item 7: skills, names, free text and ids have limits on
/// length, count and characters (docs/security.md#input-limits); a value
/// over one is `invalid_argument` naming the field and the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_over_their_limits_are_invalid_arguments_naming_the_field_and_limit() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command.create_incident(incident("limits-1", IN_CITY.0, IN_CITY.1)).await?;
    let unchanged = Unchanged::begin(&mut command).await?;
    let upsert = |spec: pb::AgentSpec| pb::UpsertAgentRequest { agent: Some(spec) };

    let huge_skill = "a".repeat(1024 * 1024);
    let status = command.upsert_agent(upsert(person("skilled", "d1-s1-c1-g1", &[&huge_skill]))).await.expect_err("a 1 MiB skill");
    assert_refused::<()>(Err(status.clone()), Code::InvalidArgument, &["skill", "32 characters"]);
    assert!(status.message().len() <= SHORT_MESSAGE, "{} bytes", status.message().len());
    let many: Vec<String> = (0..10_000).map(|n| format!("skill_{n}")).collect();
    let mut spec = person("skilled", "d1-s1-c1-g1", &[]);
    spec.skills = many.clone();
    assert_refused(command.upsert_agent(upsert(spec)).await, Code::InvalidArgument, &["10000 skills", "at most 32"]);
    assert_refused(
        command.upsert_agent(upsert(person("skilled", "d1-s1-c1-g1", &["first aid"]))).await,
        Code::InvalidArgument,
        &["skill", "first aid", "a-z"],
    );
    for bad_id in ["p 1", "p/1", "张三", "p\u{7}1"] {
        assert_refused(
            command.upsert_agent(upsert(person(bad_id, "d1-s1-c1-g1", &[]))).await,
            Code::InvalidArgument,
            &["id", "A-Z"],
        );
    }
    let mut long_name = person("named", "d1-s1-c1-g1", &[]);
    long_name.name = "王".repeat(101);
    assert_refused(command.upsert_agent(upsert(long_name)).await, Code::InvalidArgument, &["name", "100 characters"]);
    let mut control = person("named", "d1-s1-c1-g1", &[]);
    control.name = "li\u{1b}[31m".into();
    assert_refused(command.upsert_agent(upsert(control)).await, Code::InvalidArgument, &["name", "control character"]);

    let mut described = incident("limits-2", IN_CITY.0, IN_CITY.1);
    described.description = "水".repeat(2001);
    assert_refused(command.create_incident(described).await, Code::InvalidArgument, &["description", "2000 characters"]);
    let mut needy = incident("limits-3", IN_CITY.0, IN_CITY.1);
    needy.required_skills = many[..33].to_vec();
    assert_refused(command.create_incident(needy).await, Code::InvalidArgument, &["33 skills", "at most 32"]);
    let mut slashed = incident("limits/4", IN_CITY.0, IN_CITY.1);
    slashed.category = "fire".into();
    assert_refused(command.create_incident(slashed).await, Code::InvalidArgument, &["incident id", "A-Z"]);
    let cancel = pb::CancelIncidentRequest { id: "limits-1".into(), reason: "x".repeat(2001) };
    assert_refused(command.cancel_incident(cancel).await, Code::InvalidArgument, &["reason", "2000 characters"]);
    let switch = pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyI as i32, reason: "flood\u{0}".into() };
    assert_refused(command.set_mode(switch).await, Code::InvalidArgument, &["reason", "control character"]);

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

/// Issue #17, item 8: `UpsertAgent` refuses what the roster CSV refuses,
/// by the same checks (the CSV's are in `roster_csv`'s unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_agent_refuses_what_the_roster_csv_refuses() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let mut spec = person("phoned", "d1-s1-c1-g1", &[]);
    spec.phone = "17066554433abc".into();
    let status = command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await.expect_err("a phone with letters");
    assert_refused::<()>(Err(status.clone()), Code::InvalidArgument, &["phone is not a phone number", "digits"]);
    assert!(!status.message().contains("17066554433"), "the phone is personal data: {}", status.message());
    let mut spec = person("travelling", "d1-s1-c1-g1", &[]);
    spec.travel_mode = 9;
    assert_refused(
        command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await,
        Code::InvalidArgument,
        &["travel_mode", "TRAVEL_MODE_WALK"],
    );
    // The CSV's rules, on the same values, through the import.
    let csv = "id,name,role,phone\nphoned,李强,volunteer,17066554433abc\n";
    let (_, problems) = pingji_client::roster_csv::parse_roster_csv_lenient(csv);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("phone is not a phone number"), "{problems:?}");

    unchanged.verify(&mut command).await?;
    server.shutdown().await
}

/// `incident create --at 121.47,31.23` (Shanghai, off the sample city) and
/// a misspelt skill are refused as the likely mistakes they are, naming the
/// field and what to do; `force` reports them anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_off_the_map_or_a_skill_nobody_has_is_refused_naming_the_field_unless_forced() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let mut command = server.command().await?;
    let unchanged = Unchanged::begin(&mut command).await?;

    let off_the_map = command.create_incident(incident("shanghai", 121.47, 31.23)).await.expect_err("refused");
    assert_eq!(off_the_map.code(), Code::InvalidArgument, "{off_the_map:?}");
    assert_eq!(pingji_client::errors::reason(&off_the_map), Some(pb::ErrorReason::InvalidArgument));
    let fields = pingji_client::errors::bad_fields(&off_the_map);
    assert_eq!(fields.iter().map(|(field, _)| field.as_str()).collect::<Vec<_>>(), ["location"], "{off_the_map:?}");
    assert!(off_the_map.message().contains("outside every area of the map"), "{}", off_the_map.message());
    assert!(off_the_map.message().contains("--force"), "{}", off_the_map.message());

    let mut misspelt = incident("misspelt", IN_CITY.0, IN_CITY.1);
    misspelt.required_skills = vec!["firstaid".into()];
    let unknown_skill = command.create_incident(misspelt.clone()).await.expect_err("refused");
    assert_eq!(unknown_skill.code(), Code::InvalidArgument);
    let fields = pingji_client::errors::bad_fields(&unknown_skill);
    assert_eq!(fields.iter().map(|(field, _)| field.as_str()).collect::<Vec<_>>(), ["required_skills"]);
    assert!(
        unknown_skill.message().contains("nobody on the roster has the skill \"firstaid\" (nearest known: first_aid"),
        "{}",
        unknown_skill.message()
    );
    unchanged.verify(&mut command).await?;

    // Forced, both are reported.
    let mut forced = incident("shanghai", 121.47, 31.23);
    forced.force = true;
    let far = command.create_incident(forced).await?.into_inner();
    assert_eq!((far.grid_id.as_str(), far.district_id.as_str()), ("", ""));
    misspelt.force = true;
    let waiting = command.create_incident(misspelt).await?.into_inner();
    assert_eq!(waiting.required_skills, ["firstaid"]);
    server.shutdown().await
}
