//! Dispatch end to end: a real server on port 0, real tonic clients, real
//! agent sessions. Each test runs its own server.

use std::collections::BTreeSet;
use std::time::Duration;

use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{AgentSession, EventWatch, TestServer, area_box, offset_m, pb, person, quick_policy, sample_roster, typed};
use tokio_stream::StreamExt;

/// Generous deadline for anything the server should do promptly, so that a
/// loaded machine does not fail the test; a healthy run takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(20);
/// Deadline for messages that wait on an offer timeout of the quick policy.
const AFTER_TIMEOUT: Duration = Duration::from_secs(30);

fn incident_at(id: &str, (lon, lat): (f64, f64), skills: &[&str]) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "medical".to_string(),
        priority: 2,
        required_skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount: 1,
        description: "an elderly resident fell on the stairs".to_string(),
        force: false,
    }
}

fn offered_agents(incident: &pb::Incident) -> BTreeSet<String> {
    incident.open_offers.iter().map(|offer| offer.agent_id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_goes_to_the_nearest_qualified_person_and_accepting_staffs_the_incident() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    // The nearest person lacks the skill; of the two who have it, the nearer wins.
    let mut unskilled =
        server.connect_person_at(person("a-unskilled", "d1-s1-c1-g1", &["elder_care"]), lon, lat + 0.0009).await?;
    let (near_lon, near_lat) = offset_m(lon, lat, 300.0, 0.0);
    let mut near = server.connect_person_at(person("b-near", "d1-s1-c1-g1", &["first_aid"]), near_lon, near_lat).await?;
    let (far_lon, far_lat) = offset_m(lon, lat, 0.0, -600.0);
    let mut far = server.connect_person_at(person("c-far", "d1-s1-c1-g1", &["first_aid", "driving"]), far_lon, far_lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    let incident = command.create_incident(incident_at("fall-1", (lon, lat), &["first_aid"])).await?.into_inner();
    assert_eq!(incident.grid_id, "d1-s1-c1-g1");
    assert_eq!(incident.status, pb::IncidentStatus::Offered as i32);
    assert_eq!(offered_agents(&incident), set(&["b-near"]), "one offer, to the nearest person with first aid");

    let offer = near.expect_offer_within(PROMPTLY).await?;
    assert_eq!(offer.incident_id, "fall-1");
    assert_eq!(offer.agent_id, "b-near");
    assert_eq!(offer.required_skills, vec!["first_aid".to_string()]);
    assert_eq!(offer.level, pb::AreaLevel::Grid as i32, "normal mode offers in the grid first");
    assert!((offer.distance_m - 300.0).abs() < 5.0, "distance {} m, expected about 300 m", offer.distance_m);
    let normal_timeout_ms = server.policy().normal.offer_timeout_s as i64 * 1000;
    assert_eq!(offer.deadline_ms, incident.reported_at_ms + normal_timeout_ms, "the normal-mode offer timeout applies");

    near.accept(&offer.offer_id).await?;
    let assigned = events.wait_for_kind(PROMPTLY, "assigned", "fall-1").await?;
    assert_eq!(assigned.agent_id, "b-near");
    assert_eq!(assigned.offer_id, offer.offer_id);
    events.wait_for_kind(PROMPTLY, "incident_staffed", "fall-1").await?;
    match near.next_message_within(PROMPTLY).await? {
        Incoming::AssignmentConfirmed(confirmed) => {
            assert_eq!(confirmed.offer.map(|offer| offer.offer_id), Some(offer.offer_id.clone()));
        }
        other => anyhow::bail!("expected assignment_confirmed, got {other:?}"),
    }

    let staffed = command.get_incident(pb::GetIncidentRequest { id: "fall-1".into() }).await?.into_inner();
    assert_eq!(staffed.status, pb::IncidentStatus::Staffed as i32);
    assert_eq!(staffed.assignments.len(), 1);
    assert_eq!(staffed.assignments[0].agent_id, "b-near");
    assert_eq!(staffed.assignments[0].offer_id, offer.offer_id);
    assert!(staffed.open_offers.is_empty());
    let holder = command.get_agent(pb::GetAgentRequest { id: "b-near".into() }).await?.into_inner();
    assert_eq!(holder.current_incident_id, "fall-1");
    assert_eq!(holder.status, pb::AgentStatus::Busy as i32);
    // The others were never asked.
    unskilled.expect_no_offer_for(Duration::from_millis(200)).await?;
    far.expect_no_offer_for(Duration::from_millis(200)).await?;

    drop((unskilled, near, far, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_offer_goes_to_the_next_person_and_not_back() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g2").await?.centre();
    let (near_lon, near_lat) = offset_m(lon, lat, 100.0, 0.0);
    let mut near = server.connect_person_at(person("near", "d1-s1-c1-g2", &[]), near_lon, near_lat).await?;
    let (next_lon, next_lat) = offset_m(lon, lat, -400.0, 0.0);
    let mut next = server.connect_person_at(person("next", "d1-s1-c1-g2", &[]), next_lon, next_lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    command.create_incident(incident_at("leak-1", (lon, lat), &[])).await?;
    let first = near.expect_offer_within(PROMPTLY).await?;
    near.decline(&first.offer_id, "busy with my child").await?;

    let declined = events.wait_for_kind(PROMPTLY, "offer_declined", "leak-1").await?;
    assert_eq!(declined.agent_id, "near");
    assert_eq!(declined.offer_id, first.offer_id);
    assert_eq!(typed!(declined, OfferDeclined).reason, "busy with my child");
    let second = next.expect_offer_within(PROMPTLY).await?;
    assert_eq!(second.incident_id, "leak-1");
    assert_ne!(second.offer_id, first.offer_id);
    let resent = events.wait_for_kind(PROMPTLY, "offer_sent", "leak-1").await?;
    assert_eq!(resent.agent_id, "next");

    // When the second person declines too, nobody is left: the one who
    // declined is not asked again.
    next.decline(&second.offer_id, "").await?;
    events.wait_for_kind(PROMPTLY, "no_candidates", "leak-1").await?;
    let waiting = command.get_incident(pb::GetIncidentRequest { id: "leak-1".into() }).await?.into_inner();
    assert_eq!(waiting.status, pb::IncidentStatus::Waiting as i32);
    assert!(waiting.open_offers.is_empty());
    near.expect_no_offer_for(Duration::from_millis(200)).await?;

    drop((near, next, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_offer_is_withdrawn_and_goes_to_the_next_person() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.policy = quick_policy()).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let (near_lon, near_lat) = offset_m(lon, lat, 0.0, 150.0);
    let mut silent = server.connect_person_at(person("silent", "d1-s1-c2-g1", &[]), near_lon, near_lat).await?;
    let (next_lon, next_lat) = offset_m(lon, lat, 0.0, -450.0);
    let mut next = server.connect_person_at(person("next", "d1-s1-c2-g1", &[]), next_lon, next_lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    let incident = command.create_incident(incident_at("smoke-1", (lon, lat), &[])).await?.into_inner();
    let first = silent.expect_offer_within(PROMPTLY).await?;
    assert_eq!(first.deadline_ms, incident.reported_at_ms + 2_000, "the quick policy's 2 s normal timeout applies");

    // Nobody answers: the offer times out, is withdrawn, and goes on.
    match silent.next_message_within(AFTER_TIMEOUT).await? {
        Incoming::OfferWithdrawn(withdrawn) => {
            assert_eq!(withdrawn.offer_id, first.offer_id);
            assert_eq!(withdrawn.incident_id, "smoke-1");
            assert!(withdrawn.reason.contains("timed out"), "reason: {}", withdrawn.reason);
        }
        other => anyhow::bail!("expected offer_withdrawn, got {other:?}"),
    }
    let second = next.expect_offer_within(AFTER_TIMEOUT).await?;
    assert_eq!(second.incident_id, "smoke-1");
    let timed_out = events.wait_for_kind(PROMPTLY, "offer_timed_out", "smoke-1").await?;
    assert_eq!(timed_out.offer_id, first.offer_id);
    assert_eq!(timed_out.agent_id, "silent");
    let resent = events.wait_for_kind(PROMPTLY, "offer_sent", "smoke-1").await?;
    assert_eq!(resent.offer_id, second.offer_id);
    assert!(resent.seq > timed_out.seq);

    drop((silent, next, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_offers_flat_in_parallel_and_the_first_accept_wins() -> anyhow::Result<()> {
    // These people walk up to 2.5 km; grade II's longest acceptable travel
    // time (20 min) would rule the far ones out, which is not this test's point.
    let server = TestServer::start(|config| config.policy.emergency_ii.max_travel_s = 3600).await?;
    let mut command = server.command().await?;
    // The incident lies in d1 near the border with d2.
    let incident_point = area_box(&mut command, "d1-s1-c2-g2").await?.at(0.8, 0.5);
    let same_grid = area_box(&mut command, "d1-s1-c2-g2").await?.at(0.95, 0.5);
    let other_grid = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let other_community = area_box(&mut command, "d1-s1-c1-g2").await?.centre();
    let far_street = area_box(&mut command, "d1-s2-c1-g3").await?.centre();
    // Nearer than everyone but the first, yet in the other district.
    let other_district = area_box(&mut command, "d2-s1-c1-g1").await?.at(0.05, 0.9);

    let mut people = Vec::new();
    for (id, home, (lon, lat)) in [
        ("e1-same-grid", "d1-s1-c2-g2", same_grid),
        ("e2-other-grid", "d1-s1-c2-g1", other_grid),
        ("e3-other-community", "d1-s1-c1-g2", other_community),
        ("e5-far-street", "d1-s2-c1-g3", far_street),
    ] {
        people.push(server.connect_person_at(person(id, home, &[]), lon, lat).await?);
    }
    let mut outsider =
        server.connect_person_at(person("e4-other-district", "d2-s1-c1-g1", &[]), other_district.0, other_district.1).await?;

    let switched = command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "flood warning".into() })
        .await?
        .into_inner();
    assert_eq!(switched.mode, pb::Mode::EmergencyIi as i32);
    let interval = server.policy().emergency_ii.location_interval_s;
    for session in &mut people {
        match session.next_message_within(PROMPTLY).await? {
            Incoming::ModeChanged(changed) => {
                assert_eq!(changed.area_id, "d1");
                assert_eq!(changed.mode, pb::Mode::EmergencyIi as i32);
                assert_eq!(changed.reason, "flood warning");
                assert_eq!(changed.location_interval_s, interval);
            }
            other => anyhow::bail!("{} expected mode_changed, got {other:?}", session.agent_id()),
        }
    }
    outsider.expect_silence_for(Duration::from_millis(300)).await?;

    let incident = command.create_incident(incident_at("flood-1", incident_point, &[])).await?.into_inner();
    assert_eq!(incident.mode, pb::Mode::EmergencyIi as i32);
    let parallel = server.policy().emergency_ii.parallel_offers as usize;
    assert_eq!(parallel, 3, "this test expects the default of three parallel offers");
    assert_eq!(
        offered_agents(&incident),
        set(&["e1-same-grid", "e2-other-grid", "e3-other-community"]),
        "flat: the three nearest in the emergency area, across grids and communities, none outside it"
    );
    let emergency_timeout_ms = server.policy().emergency_ii.offer_timeout_s as i64 * 1000;
    assert!(server.policy().emergency_ii.offer_timeout_s < server.policy().normal.offer_timeout_s);
    let mut offers = Vec::new();
    for session in &mut people[..3] {
        let offer = session.expect_offer_within(PROMPTLY).await?;
        assert_eq!(offer.incident_id, "flood-1");
        assert_eq!(offer.deadline_ms, incident.reported_at_ms + emergency_timeout_ms, "the shorter emergency II deadline");
        assert_eq!(offer.level, pb::AreaLevel::District as i32, "flat dispatch over the emergency area");
        offers.push(offer);
    }

    // The second-nearest answers first and wins.
    people[1].accept(&offers[1].offer_id).await?;
    match people[1].next_message_within(PROMPTLY).await? {
        Incoming::AssignmentConfirmed(confirmed) => {
            assert_eq!(confirmed.offer.map(|offer| offer.offer_id), Some(offers[1].offer_id.clone()));
        }
        other => anyhow::bail!("expected assignment_confirmed, got {other:?}"),
    }
    for index in [0, 2] {
        match people[index].next_message_within(PROMPTLY).await? {
            Incoming::NoLongerNeeded(void) => {
                assert_eq!(void.offer_id, offers[index].offer_id);
                assert_eq!(void.incident_id, "flood-1");
            }
            other => anyhow::bail!("{} expected no_longer_needed, got {other:?}", people[index].agent_id()),
        }
    }
    // A late accept changes nothing.
    people[0].accept(&offers[0].offer_id).await?;
    match people[0].next_message_within(PROMPTLY).await? {
        Incoming::Refused(refused) => {
            assert_eq!(refused.code, "failed_precondition");
            assert_eq!(refused.reason, pb::ErrorReason::OfferNotOpen as i32);
        }
        other => anyhow::bail!("expected refused, got {other:?}"),
    }
    let staffed = command.get_incident(pb::GetIncidentRequest { id: "flood-1".into() }).await?.into_inner();
    assert_eq!(staffed.status, pb::IncidentStatus::Staffed as i32);
    let assignees: Vec<&str> = staffed.assignments.iter().map(|assignment| assignment.agent_id.as_str()).collect();
    assert_eq!(assignees, vec!["e2-other-grid"]);
    people[3].expect_no_offer_for(Duration::from_millis(200)).await?;
    outsider.expect_no_offer_for(Duration::from_millis(200)).await?;

    drop((people, outsider));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_mode_widens_level_by_level_before_offering() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let incident_point = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    // The only person is in the same street but another community.
    let (lon, lat) = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let mut neighbour = server.connect_person_at(person("neighbour", "d1-s1-c2-g1", &[]), lon, lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    let incident = command.create_incident(incident_at("cat-1", incident_point, &[])).await?.into_inner();
    assert_eq!(incident.scope, pb::AreaLevel::Street as i32);
    events.wait_for_kind(PROMPTLY, "offer_sent", "cat-1").await?;
    let about_incident: Vec<&pb::Event> = events.seen().iter().filter(|event| event.incident_id == "cat-1").collect();
    let kinds: Vec<&str> = about_incident.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, vec!["incident_reported", "widened", "widened", "offer_sent"]);
    let steps: Vec<(String, String)> = about_incident
        .iter()
        .filter(|event| event.kind == "widened")
        .map(|event| {
            let widened = typed!(**event, Widened);
            anyhow::ensure!(widened.reason == pb::WidenReason::NoCandidates as i32, "widening reason: {widened:?}");
            let name =
                |level: i32| pb::AreaLevel::try_from(level).map(|level| level.as_str_name().to_string()).unwrap_or_default();
            Ok((name(widened.from), name(widened.to)))
        })
        .collect::<anyhow::Result<_>>()?;
    let step = |from: &str, to: &str| (from.to_string(), to.to_string());
    assert_eq!(steps, vec![step("AREA_LEVEL_GRID", "AREA_LEVEL_COMMUNITY"), step("AREA_LEVEL_COMMUNITY", "AREA_LEVEL_STREET")]);

    let offer = neighbour.expect_offer_within(PROMPTLY).await?;
    assert_eq!(offer.level, pb::AreaLevel::Street as i32);
    assert_eq!(offer.incident_id, "cat-1");

    drop((neighbour, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_resumes_from_seq_without_gaps_or_duplicates() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let point = area_box(&mut command, "d2-s2-c1-g1").await?.centre();
    // With nobody connected each incident records several events.
    for index in 1..=3 {
        command.create_incident(incident_at(&format!("r{index}"), point, &[])).await?;
    }

    let mut first_watch = EventWatch::start(&mut command, 1).await?;
    for _ in 0..7 {
        first_watch.next_within(PROMPTLY).await?;
    }
    let first_part = first_watch.seen().to_vec();
    drop(first_watch);
    let last_seen = first_part.last().map(|event| event.seq).unwrap_or_default();

    // Events happen while nobody watches, and more while the watcher resumes.
    for index in 4..=6 {
        command.create_incident(incident_at(&format!("r{index}"), point, &[])).await?;
    }
    let mut resumed = EventWatch::start(&mut command, last_seen + 1).await?;
    let mut writer = server.command().await?;
    let concurrent = tokio::spawn(async move {
        for index in 7..=9 {
            writer.create_incident(incident_at(&format!("r{index}"), point, &[])).await?;
        }
        anyhow::Ok(())
    });
    // The roster is empty: each incident's last event says nobody on it could take it.
    resumed.wait_for_kind(PROMPTLY, "incident_unstaffable", "r9").await?;
    concurrent.await??;

    let combined: Vec<pb::Event> = first_part.iter().chain(resumed.seen()).cloned().collect();
    let seqs: Vec<u64> = combined.iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "sequence numbers run from 1 without gap or duplicate across the reconnect");
    assert_eq!(resumed.seen().first().map(|event| event.seq), Some(last_seen + 1));
    let reported: Vec<&str> =
        combined.iter().filter(|event| event.kind == "incident_reported").map(|event| event.incident_id.as_str()).collect();
    assert_eq!(reported, vec!["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]);

    // A fresh watcher from the start sees exactly the same record.
    let mut full = EventWatch::start(&mut command, 1).await?;
    for _ in 0..combined.len() {
        full.next_within(PROMPTLY).await?;
    }
    assert_eq!(full.seen(), combined.as_slice());

    // from_seq 0 means only new events.
    let mut live_only = EventWatch::start(&mut command, 0).await?;
    command.create_incident(incident_at("r10", point, &[])).await?;
    let next = live_only.next_within(PROMPTLY).await?;
    assert_eq!((next.seq, next.kind.as_str(), next.incident_id.as_str()), (seqs.len() as u64 + 1, "incident_reported", "r10"));
    let last = live_only.wait_for_kind(PROMPTLY, "incident_unstaffable", "r10").await?.seq;

    // replay_last starts with the most recent events (what a live view
    // shows first), then goes on with new ones.
    let mut recent = command.watch_events(pb::WatchEventsRequest { from_seq: 0, replay_last: 4 }).await?.into_inner();
    let mut recent_seqs = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(PROMPTLY, recent.next()).await?.ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        recent_seqs.push(event.seq);
    }
    assert_eq!(recent_seqs, (last - 3..=last).collect::<Vec<u64>>());
    command.create_incident(incident_at("r11", point, &[])).await?;
    let event = tokio::time::timeout(PROMPTLY, recent.next()).await?.ok_or_else(|| anyhow::anyhow!("stream ended"))??;
    assert_eq!((event.seq, event.incident_id.as_str()), (last + 1, "r11"));

    drop((resumed, full, live_only, recent));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_with_an_open_offer_withdraws_it_and_offers_the_next_person() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d2-s1-c2-g3").await?.centre();
    let (near_lon, near_lat) = offset_m(lon, lat, 50.0, 50.0);
    let mut leaving = server.connect_person_at(person("leaving", "d2-s1-c2-g3", &[]), near_lon, near_lat).await?;
    let (next_lon, next_lat) = offset_m(lon, lat, -300.0, 0.0);
    let mut next = server.connect_person_at(person("staying", "d2-s1-c2-g3", &[]), next_lon, next_lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    command.create_incident(incident_at("gas-1", (lon, lat), &[])).await?;
    let offer = leaving.expect_offer_within(PROMPTLY).await?;
    leaving.disconnect();

    let withdrawn = events.wait_for_kind(PROMPTLY, "offer_withdrawn", "gas-1").await?;
    assert_eq!(withdrawn.offer_id, offer.offer_id);
    assert_eq!(withdrawn.agent_id, "leaving");
    assert_eq!(typed!(withdrawn, OfferWithdrawn).reason, pb::WithdrawReason::Disconnected as i32);
    let resent = events.wait_for_kind(PROMPTLY, "offer_sent", "gas-1").await?;
    assert_eq!(resent.agent_id, "staying");
    let second = next.expect_offer_within(PROMPTLY).await?;
    assert_eq!(second.offer_id, resent.offer_id);
    let gone = command.get_agent(pb::GetAgentRequest { id: "leaving".into() }).await?.into_inner();
    assert!(!gone.connected);
    assert!(gone.location.is_none(), "a disconnected person's live location is forgotten");

    drop((next, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_describe_the_services() -> anyhow::Result<()> {
    use prost::Message as _;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let server = TestServer::start(|_| {}).await?;
    let mut health = server.health().await?;
    for service in ["pingji.v1.CommandService", "pingji.v1.AgentService", ""] {
        let response = health.check(tonic_health::pb::HealthCheckRequest { service: service.to_string() }).await?.into_inner();
        assert_eq!(
            response.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }
    let unknown = health.check(tonic_health::pb::HealthCheckRequest { service: "pingji.v1.Nothing".into() }).await;
    assert_eq!(unknown.map(|_| ()).map_err(|status| status.code()), Err(tonic::Code::NotFound));

    let mut reflection = ServerReflectionClient::new(server.channel().await?);
    let ask = |request: MessageRequest| ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let requests = tokio_stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("pingji.v1.CommandService".into())),
    ]);
    let responses: Vec<ServerReflectionResponse> =
        reflection.server_reflection_info(requests).await?.into_inner().collect::<Result<_, _>>().await?;
    assert_eq!(responses.len(), 2);
    let Some(MessageResponse::ListServicesResponse(listed)) = &responses[0].message_response else {
        anyhow::bail!("expected a list of services, got {:?}", responses[0].message_response);
    };
    let services: BTreeSet<&str> = listed.service.iter().map(|service| service.name.as_str()).collect();
    for expected in ["pingji.v1.CommandService", "pingji.v1.AgentService", "grpc.health.v1.Health"] {
        assert!(services.contains(expected), "{expected} missing from {services:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) = &responses[1].message_response else {
        anyhow::bail!("expected a file descriptor, got {:?}", responses[1].message_response);
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()))
        .collect::<Result<_, _>>()?;
    let api = files
        .iter()
        .find(|file| file.package() == "pingji.v1")
        .ok_or_else(|| anyhow::anyhow!("no pingji.v1 file in {files:?}"))?;
    assert_eq!(api.name(), "pingji/v1/pingji.proto");
    let command_service = api.service.iter().find(|service| service.name() == "CommandService");
    let methods: BTreeSet<&str> =
        command_service.map(|service| service.method.iter().map(|method| method.name()).collect()).unwrap_or_default();
    assert!(methods.contains("WatchEvents") && methods.contains("CreateIncident"), "methods: {methods:?}");

    drop((health, reflection));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_of_two_is_offered_in_parallel_staffed_and_released_on_cancel() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d2-s2-c2-g1").await?.centre();
    let mut sessions = Vec::new();
    for (id, east_m) in [("t1", 50.0), ("t2", 150.0), ("t3", 400.0)] {
        let (person_lon, person_lat) = offset_m(lon, lat, east_m, 0.0);
        sessions.push(server.connect_person_at(person(id, "d2-s2-c2-g1", &[]), person_lon, person_lat).await?);
    }
    let mut events = EventWatch::start(&mut command, 1).await?;

    let mut request = incident_at("move-1", (lon, lat), &[]);
    request.headcount = 2;
    let incident = command.create_incident(request).await?.into_inner();
    assert_eq!(offered_agents(&incident), set(&["t1", "t2"]), "one offer per person needed");
    let first = sessions[0].expect_offer_within(PROMPTLY).await?;
    let second = sessions[1].expect_offer_within(PROMPTLY).await?;

    // Going off duty with an offer open withdraws it and the next person is asked.
    sessions[0].set_status(pb::AgentStatus::OffDuty).await?;
    match sessions[0].next_message_within(PROMPTLY).await? {
        Incoming::OfferWithdrawn(withdrawn) => assert_eq!(withdrawn.offer_id, first.offer_id),
        other => anyhow::bail!("expected offer_withdrawn, got {other:?}"),
    }
    let withdrawn = events.wait_for_kind(PROMPTLY, "offer_withdrawn", "move-1").await?;
    assert_eq!(typed!(withdrawn, OfferWithdrawn).reason, pb::WithdrawReason::Unavailable as i32);
    let third = sessions[2].expect_offer_within(PROMPTLY).await?;

    sessions[1].accept(&second.offer_id).await?;
    sessions[2].accept(&third.offer_id).await?;
    for index in [1, 2] {
        sessions[index].expect_assignment_confirmed_within(PROMPTLY).await?;
    }
    events.wait_for_kind(PROMPTLY, "incident_staffed", "move-1").await?;
    let staffed = command.get_incident(pb::GetIncidentRequest { id: "move-1".into() }).await?.into_inner();
    let mut assignees: Vec<&str> = staffed.assignments.iter().map(|assignment| assignment.agent_id.as_str()).collect();
    assignees.sort();
    assert_eq!(assignees, vec!["t2", "t3"]);

    // Cancelling ends both assignments and frees both people.
    let request = pb::CancelIncidentRequest { id: "move-1".into(), reason: "the family moved already".into() };
    let cancelled = command.cancel_incident(request).await?.into_inner();
    assert_eq!(cancelled.status, pb::IncidentStatus::Cancelled as i32);
    for index in [1, 2] {
        match sessions[index].next_message_within(PROMPTLY).await? {
            Incoming::AssignmentEnded(ended) => {
                assert_eq!(ended.incident_id, "move-1");
                assert!(ended.reason.contains("the family moved already"), "reason: {}", ended.reason);
            }
            other => anyhow::bail!("expected assignment_ended, got {other:?}"),
        }
        let id = sessions[index].agent_id().to_string();
        let agent = command.get_agent(pb::GetAgentRequest { id }).await?.into_inner();
        assert_eq!(agent.status, pb::AgentStatus::Available as i32);
        assert_eq!(agent.current_incident_id, "");
    }

    drop((sessions, events));
    server.shutdown().await
}

/// Closing a session and opening a new one right away works: the old
/// session's close travels asynchronously, so the new hello may briefly meet
/// already_exists (a second live session is refused, see bad_input), and the
/// message says to retry; a retry within a couple of seconds gets in. A
/// client that disappears without closing is noticed by HTTP/2 keepalive
/// (10 s interval, 10 s timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_reconnect_right_after_closing_their_session() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("flaky-network", "d1-s1-c1-g1", &[])) }).await?;
    let mut agents = server.agents().await?;
    let token = server.agent_token("flaky-network").await?;
    let mut refused = 0;
    for _attempt in 0..50 {
        let retry_until = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            match AgentSession::try_open(&mut agents, "flaky-network", &token).await {
                Ok(session) => {
                    session.disconnect();
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
                    assert!(status.message().contains("retry"), "the refusal says to retry: {}", status.message());
                    refused += 1;
                    assert!(std::time::Instant::now() < retry_until, "a reconnect was refused for 3 s");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    println!("{refused} of 50 immediate reconnects needed a retry");
    server.shutdown().await
}

/// The contract seen from outside: a Python client generated from the
/// .proto alone (tests/python/outside_client.py) follows a whole incident
/// and a mode switch on WatchEvents from typed messages. It needs python3
/// with grpcio-tools; without them the test says so and passes, unless
/// PINGJI_REQUIRE_PYTHON=1 (as in .ci/run), when it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_python_client_follows_an_incident_from_typed_events() -> anyhow::Result<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/outside_client.py");
    let has_python = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_python {
        anyhow::ensure!(
            std::env::var("PINGJI_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "python3 with grpcio and grpcio-tools is required (pip install grpcio grpcio-tools)"
        );
        eprintln!("skipped: python3 with grpcio and grpcio-tools is not installed");
        return Ok(());
    }
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g2").await?.centre();
    let (near_lon, near_lat) = offset_m(lon, lat, 100.0, 0.0);
    let near = server.connect_person_at(person("near", "d1-s1-c1-g2", &[]), near_lon, near_lat).await?;
    let (next_lon, next_lat) = offset_m(lon, lat, -400.0, 0.0);
    let mut next = server.connect_person_at(person("next", "d1-s1-c1-g2", &[]), next_lon, next_lat).await?;
    let mut near = near;

    let outside = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--server", &server.address().to_string(), "--incident", "leak-1", "--area", "d1", "--timeout-s", "60"])
        .env("PINGJI_TOKEN", pingji_tests::ADMIN_TOKEN)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;

    command.create_incident(incident_at("leak-1", (lon, lat), &[])).await?;
    let first = near.expect_offer_within(PROMPTLY).await?;
    near.decline(&first.offer_id, "busy with my child").await?;
    let second = next.expect_offer_within(PROMPTLY).await?;
    next.accept(&second.offer_id).await?;
    next.expect_assignment_confirmed_within(PROMPTLY).await?;
    next.send(pb::agent_message::Body::Arrived(pb::Arrived { incident_id: "leak-1".into() })).await?;
    next.complete("leak-1", "valve closed").await?;
    // The last assignment completed closes the incident.
    let mut events = EventWatch::start(&mut command, 1).await?;
    events.wait_for_kind(PROMPTLY, "incident_closed", "leak-1").await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "flood warning".into() })
        .await?;

    let output = tokio::time::timeout(Duration::from_secs(120), outside.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the outside client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("near declined") && stdout.contains("'busy with my child'"), "{stdout}");
    assert!(stdout.contains("next accepted") && stdout.contains("MODE_NORMAL -> MODE_EMERGENCY_II"), "{stdout}");
    drop((near, next, events));
    server.shutdown().await
}

/// An incident nobody on the whole roster could take raises
/// `incident_unstaffable` (not only `no_candidates`), typed, for every
/// watcher; an incident that merely waits for someone to come does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_nobody_on_the_roster_could_take_raises_an_alert_event() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(sample_roster())).await?;
    let mut command = server.command().await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();

    let mut forced = incident_at("dive-1", (lon, lat), &["diving"]);
    forced.force = true;
    command.create_incident(forced).await?;
    events.wait_for_kind(PROMPTLY, "no_candidates", "dive-1").await?;
    let raised = events.wait_for_kind(PROMPTLY, "incident_unstaffable", "dive-1").await?;
    let body = typed!(raised, IncidentUnstaffable);
    assert_eq!((body.needed, body.possible, body.missing_skills.as_slice()), (1, 0, ["diving".to_string()].as_slice()));
    assert_eq!(raised.actor, "dispatcher");

    // Nobody is connected, but people on the roster could come: it waits, no alert.
    command.create_incident(incident_at("fall-2", (lon, lat), &["first_aid"])).await?;
    events.wait_for_kind(PROMPTLY, "no_candidates", "fall-2").await?;
    let marker = command.create_incident(incident_at("marker", (lon, lat), &[])).await?.into_inner();
    events.wait_for_kind(PROMPTLY, "incident_reported", &marker.id).await?;
    let alerts: Vec<&str> = events
        .seen()
        .iter()
        .filter(|event| event.kind == "incident_unstaffable")
        .map(|event| event.incident_id.as_str())
        .collect();
    assert_eq!(alerts, ["dive-1"]);
    // Reading the incidents says the same, worked out afresh.
    let dive = command.get_incident(pb::GetIncidentRequest { id: "dive-1".into() }).await?.into_inner();
    assert_eq!(dive.unstaffable.map(|shortfall| shortfall.missing_skills), Some(vec!["diving".to_string()]));
    let fall = command.get_incident(pb::GetIncidentRequest { id: "fall-2".into() }).await?.into_inner();
    assert_eq!(fall.unstaffable, None);
    server.shutdown().await
}

/// A client on a Chinese map SDK sends GCJ-02 and says so: the person and
/// the incident land where they are in WGS84 (same grid, within a
/// centimetre), and the dispatcher answers in WGS84. Sent unconverted, the
/// same numbers would be hundreds of metres off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcj02_positions_from_a_client_land_where_they_are() -> anyhow::Result<()> {
    use pingji_engine::crs::CoordinateSystem;
    use pingji_engine::spatial::Position;
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g2").await?.centre();
    let (gcj_lon, gcj_lat) = CoordinateSystem::Gcj02.from_wgs84(lon, lat);
    let gcj02 = |lon: f64, lat: f64| pb::Location { lon, lat, crs: pb::CoordinateSystem::Gcj02 as i32 };
    let metres = |location: &pb::Location| Position { lon, lat }.distance_m(Position { lon: location.lon, lat: location.lat });
    assert!(metres(&pb::Location::wgs84(gcj_lon, gcj_lat)) > 300.0, "the sample city is in the GCJ-02 region");

    // The person: placed with a WGS84 position first, then moved by a GCJ-02 one.
    let session = server.connect_person_at(person("amap", "d1-s1-c1-g2", &[]), lon + 0.001, lat).await?;
    session.send(pingji_proto::v1::agent_message::Body::Location(gcj02(gcj_lon, gcj_lat))).await?;
    pingji_tests::wait_until(PROMPTLY, "the GCJ-02 location is taken in", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "amap".into() }).await?.into_inner();
        Ok(agent.location.as_ref().is_some_and(|location| metres(location) < 0.01))
    })
    .await?;
    let agent = command.get_agent(pb::GetAgentRequest { id: "amap".into() }).await?.into_inner();
    assert_eq!(agent.grid_id, "d1-s1-c1-g2");
    assert_eq!(agent.location.as_ref().map(|location| location.crs), Some(0), "answers are WGS84");

    // The incident: reported at the GCJ-02 position, kept at the WGS84 one.
    let mut request = incident_at("amap-1", (0.0, 0.0), &[]);
    request.location = Some(gcj02(gcj_lon, gcj_lat));
    let incident = command.create_incident(request).await?.into_inner();
    let at = incident.location.as_ref().ok_or_else(|| anyhow::anyhow!("the incident has no location"))?;
    assert!(metres(at) < 0.01, "the incident is {} m from where it was reported", metres(at));
    assert_eq!(incident.grid_id, "d1-s1-c1-g2");
    drop(session);
    server.shutdown().await
}
