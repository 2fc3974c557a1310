//! 平急转换 end to end over real gRPC: emergency plans activated and
//! deactivated, call-ups with check-ins and the roll-call, field reports
//! through triage to their feedback, and coverage with grid staffing events.
//! Each test runs its own server.

use std::collections::BTreeSet;
use std::time::Duration;

use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::mobilisation::{
    check_in, expect_call_up, expect_offer, expect_outcome, expect_refused, expect_stand_down, next_matching, person_with_role,
    plan_toml, report_from_field,
};
use pingji_tests::{EventWatch, TestServer, area_box, offset_m, pb, person, typed, wait_until};
use tonic::Code;

/// Generous deadline for anything the server should do promptly, so that a
/// loaded machine does not fail the test; a healthy run takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(20);

fn ids(items: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_creates_its_tasks_calls_up_its_reserves_and_ends_them_all() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let areas = command.list_areas(pb::ListAreasRequest::default()).await?.into_inner();
    let centres_in_street = areas.service_centres.iter().filter(|centre| centre.area_id.starts_with("d1-s1")).count();
    assert_eq!(centres_in_street, 3, "the sample street has three centres");
    let centre = areas
        .service_centres
        .iter()
        .find(|centre| centre.id == "d1-s1-c1-sc")
        .and_then(|centre| centre.location)
        .ok_or_else(|| anyhow::anyhow!("the sample city has no centre d1-s1-c1-sc"))?;
    // A volunteer at a service centre, and a registered member of the street.
    let (lon, lat) = offset_m(centre.lon, centre.lat, 30.0, 0.0);
    let mut volunteer = server.connect_person_at(person("vol-1", "d1-s1-c1-g1", &[]), lon, lat).await?;
    let (member_lon, member_lat) = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let mut member = server
        .connect_person_at(person_with_role("member-1", pb::Role::RegisteredMember, "d1-s1-c2-g1"), member_lon, member_lat)
        .await?;

    let imported = command.import_plans(pb::ImportPlansRequest { plans_toml: vec![plan_toml("flood-test")] }).await?.into_inner();
    let plan = &imported.plans[0];
    assert_eq!(plan.id, "flood-test");
    assert_eq!(plan.grade, pb::Mode::EmergencyIi as i32);
    assert_eq!(plan.tasks.len(), 2);
    assert_eq!(plan.call_up, [pb::Role::RegisteredMember as i32]);
    let listed = command.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    assert_eq!(listed.plans.len(), 1);
    assert!(listed.activations.is_empty());

    let activation = command
        .activate_plan(pb::ActivatePlanRequest {
            plan_id: "flood-test".into(),
            area_id: "d1-s1".into(),
            reason: "暴雨红色预警".into(),
        })
        .await?
        .into_inner();
    assert_eq!(activation.plan_id, "flood-test");
    assert_eq!(activation.area_id, "d1-s1");
    assert_eq!(activation.reason, "暴雨红色预警");
    assert!(!activation.automatic);
    assert_eq!(activation.ended_at_ms, 0);
    // One task per service centre of the street, one at its centroid.
    assert_eq!(activation.incident_ids.len(), centres_in_street + 1, "{activation:?}");
    assert!(!activation.callup_id.is_empty(), "{activation:?}");
    let mut categories = Vec::new();
    for id in &activation.incident_ids {
        let incident = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await?.into_inner();
        assert_eq!(incident.plan_activation_id, activation.id, "{incident:?}");
        assert!(incident.street_id == "d1-s1", "{incident:?}");
        categories.push(incident.category);
    }
    categories.sort();
    assert_eq!(categories, ["pump", "sandbags", "sandbags", "sandbags"]);
    // The same plan on the same area twice is refused.
    let again = command
        .activate_plan(pb::ActivatePlanRequest { plan_id: "flood-test".into(), area_id: "d1-s1".into(), reason: "again".into() })
        .await
        .expect_err("a plan active on an area cannot be activated there again");
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    let unknown = command
        .activate_plan(pb::ActivatePlanRequest { plan_id: "no-such-plan".into(), area_id: "d1-s1".into(), reason: "r".into() })
        .await
        .expect_err("an unknown plan is refused");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // The tasks are offered at once; the registered member is called up.
    let offer = expect_offer(&mut volunteer, PROMPTLY).await?;
    assert!(activation.incident_ids.contains(&offer.incident_id), "{offer:?}");
    volunteer.accept(&offer.offer_id).await?;
    next_matching(&mut volunteer, PROMPTLY, "the assignment", |message| matches!(message, Incoming::AssignmentConfirmed(_)))
        .await?;
    let call_up = expect_call_up(&mut member, PROMPTLY).await?;
    assert_eq!(call_up.callup_id, activation.callup_id);
    assert_eq!(call_up.area_id, "d1-s1");
    assert!(call_up.reason.contains("暴雨红色预警"), "{call_up:?}");
    let listed = command.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    assert_eq!(listed.activations, std::slice::from_ref(&activation));

    // Deactivating cancels the open tasks, releases the assigned person and
    // stands the reserves down.
    let ended = command
        .deactivate_plan(pb::DeactivatePlanRequest { activation_id: activation.id.clone(), reason: "雨停".into() })
        .await?
        .into_inner();
    assert!(ended.ended_at_ms > 0, "{ended:?}");
    let released = next_matching(
        &mut volunteer,
        PROMPTLY,
        "the end of the assignment",
        |message| matches!(message, Incoming::AssignmentEnded(ended) if ended.incident_id == offer.incident_id),
    )
    .await?;
    let Incoming::AssignmentEnded(released) = released else {
        anyhow::bail!("not an assignment end: {released:?}");
    };
    assert!(released.reason.contains("雨停"), "{released:?}");
    let stand_down = expect_stand_down(&mut member, PROMPTLY).await?;
    assert_eq!(stand_down.callup_id, activation.callup_id);
    for id in &activation.incident_ids {
        let incident = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await?.into_inner();
        assert_eq!(incident.status, pb::IncidentStatus::Cancelled as i32, "{incident:?}");
        assert!(incident.open_offers.is_empty(), "{incident:?}");
    }
    let volunteer_now = command.get_agent(pb::GetAgentRequest { id: "vol-1".into() }).await?.into_inner();
    assert_eq!(volunteer_now.current_incident_id, "");
    assert_eq!(volunteer_now.status, pb::AgentStatus::Available as i32);
    let callups =
        command.callup_status(pb::CallupStatusRequest { area_id: "d1-s1".into(), open_only: false }).await?.into_inner().callups;
    assert_eq!(callups.len(), 1);
    assert!(callups[0].ended_at_ms > 0, "{callups:?}");
    let twice = command
        .deactivate_plan(pb::DeactivatePlanRequest { activation_id: activation.id.clone(), reason: "again".into() })
        .await
        .expect_err("an ended activation cannot end again");
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");

    volunteer.disconnect();
    member.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grade_ii_switch_calls_up_sunk_cadres_who_check_in_or_are_listed_missing() -> anyhow::Result<()> {
    // Long enough to check in first even on a loaded machine; short enough
    // for the test to see the deadline pass.
    const DEADLINE_S: u64 = 4;
    let server = TestServer::start(|config| {
        config.policy.emergency_ii.checkin_deadline_s = DEADLINE_S;
    })
    .await?;
    let mut command = server.command().await?;
    let _agents = server.agents().await?;
    let reserves = [
        person_with_role("cadre-1", pb::Role::SunkCadre, "d1-s1-c1-g1"),
        person_with_role("cadre-2", pb::Role::SunkCadre, "d1-s2-c1-g1"),
        person_with_role("cadre-d2", pb::Role::SunkCadre, "d2-s1-c1-g1"),
    ];
    command.import_agents(pb::ImportAgentsRequest { agents: reserves.to_vec() }).await?;
    // The first cadre is connected but has not reported a location yet.
    let mut cadre = server.open_session("cadre-1").await?;
    let (member_lon, member_lat) = area_box(&mut command, "d1-s1-c1-g2").await?.centre();
    let mut member = server
        .connect_person_at(person_with_role("member-1", pb::Role::RegisteredMember, "d1-s1-c1-g2"), member_lon, member_lat)
        .await?;
    let mut events = EventWatch::start(&mut command, 0).await?;

    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() })
        .await?;
    let call_up = expect_call_up(&mut cadre, PROMPTLY).await?;
    assert_eq!(call_up.area_id, "d1");
    assert_eq!(call_up.reason, "台风登陆");
    let issued = events.wait_for(PROMPTLY, "callup_issued", |event| event.kind == "callup_issued").await?;
    let issued = typed!(issued, CallupIssued);
    assert_eq!(issued.callup_id, call_up.callup_id);
    // Grade II calls up sunk cadres whose home is in the area: not the
    // registered member, not the cadre of the other district.
    let called: BTreeSet<String> = issued.agent_ids.iter().cloned().collect();
    assert_eq!(called, ids(["cadre-1", "cadre-2"]));
    next_matching(&mut member, PROMPTLY, "the mode change", |message| matches!(message, Incoming::ModeChanged(_))).await?;

    // One who connects later finds the call-up in the welcome.
    let late = server.open_session("cadre-2").await?;
    let welcome_calls: Vec<&str> = late.welcome().call_ups.iter().map(|call| call.callup_id.as_str()).collect();
    assert_eq!(welcome_calls, [call_up.callup_id.as_str()]);

    // Checking in needs a location first.
    check_in(&cadre, &call_up.callup_id).await?;
    let refused = expect_refused(&mut cadre, PROMPTLY).await?;
    assert_eq!(refused.code, "failed_precondition", "{refused:?}");
    assert!(refused.message.contains("location"), "{refused:?}");
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    cadre.send_location(lon, lat).await?;
    check_in(&cadre, &call_up.callup_id).await?;
    let checked_in = events
        .wait_for(PROMPTLY, "cadre-1 checked in", |event| event.kind == "checked_in" && event.agent_id == "cadre-1")
        .await?;
    let roll_call =
        command.callup_status(pb::CallupStatusRequest { area_id: "d1".into(), open_only: true }).await?.into_inner().callups;
    assert_eq!(roll_call.len(), 1, "{roll_call:?}");
    let first = roll_call[0]
        .people
        .iter()
        .find(|person| person.agent_id == "cadre-1")
        .ok_or_else(|| anyhow::anyhow!("cadre-1 is not in the roll-call: {roll_call:?}"))?;
    assert_eq!(first.checked_in_at_ms, checked_in.at_ms);
    assert!(first.connected);
    assert_eq!(first.role, pb::Role::SunkCadre as i32);
    assert_eq!(roll_call[0].checked_in, 1);
    assert!(checked_in.at_ms < roll_call[0].deadline_ms, "the check-in came in time: {roll_call:?}");
    // Another district's call-ups are not this one's.
    let elsewhere =
        command.callup_status(pb::CallupStatusRequest { area_id: "d2".into(), open_only: false }).await?.into_inner().callups;
    assert!(elsewhere.is_empty(), "{elsewhere:?}");

    // At the deadline the shortfall is an event.
    let passed = events
        .wait_for(Duration::from_secs(DEADLINE_S) + PROMPTLY, "callup_deadline_passed", |event| {
            event.kind == "callup_deadline_passed"
        })
        .await?;
    let passed_body = typed!(passed, CallupDeadlinePassed);
    assert_eq!(passed_body.callup_id, call_up.callup_id);
    assert_eq!(passed_body.missing_agent_ids, ["cadre-2"]);
    assert!(passed.at_ms >= call_up.deadline_ms, "{passed:?}");
    let roll_call = command.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
    assert_eq!((roll_call[0].checked_in, roll_call[0].missing), (1, 1));

    // Back to normal: the reserves are stood down.
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::Normal as i32, reason: "台风过境".into() })
        .await?;
    let stand_down = expect_stand_down(&mut cadre, PROMPTLY).await?;
    assert_eq!(stand_down.callup_id, call_up.callup_id);
    assert!(stand_down.reason.contains("台风过境"), "{stand_down:?}");
    let mut late = late;
    let late_stand_down = expect_stand_down(&mut late, PROMPTLY).await?;
    assert_eq!(late_stand_down.callup_id, call_up.callup_id);
    let roll_call = command.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
    assert!(roll_call[0].ended_at_ms > 0, "{roll_call:?}");
    let open =
        command.callup_status(pb::CallupStatusRequest { area_id: String::new(), open_only: true }).await?.into_inner().callups;
    assert!(open.is_empty(), "{open:?}");
    let unknown = command
        .callup_status(pb::CallupStatusRequest { area_id: "nowhere".into(), open_only: false })
        .await
        .expect_err("an unknown area is refused");
    assert_eq!(unknown.code(), Code::NotFound);

    cadre.disconnect();
    late.disconnect();
    member.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_reports_go_through_triage_and_their_reporters_hear_every_outcome() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let spot = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    // The volunteer is near the spot; the reporters are elsewhere, so that
    // the volunteer is the one offered the work.
    let (vol_lon, vol_lat) = offset_m(spot.0, spot.1, 50.0, 0.0);
    let mut volunteer = server.connect_person_at(person("vol-1", "d1-s1-c1-g1", &[]), vol_lon, vol_lat).await?;
    let (courier_lon, courier_lat) = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let mut courier = server
        .connect_person_at(person_with_role("courier-1", pb::Role::NewEmployment, "d1-s1-c2-g1"), courier_lon, courier_lat)
        .await?;
    let (rider_lon, rider_lat) = area_box(&mut command, "d1-s1-c2-g2").await?.centre();
    let mut rider = server
        .connect_person_at(person_with_role("rider-1", pb::Role::NewEmployment, "d1-s1-c2-g2"), rider_lon, rider_lat)
        .await?;

    // A report waits for triage: reported, no offers.
    let first = report_from_field(&mut courier, spot, "Flooding", "积水没过脚踝，井盖冒水", PROMPTLY).await?;
    let reported = command.get_incident(pb::GetIncidentRequest { id: first.clone() }).await?.into_inner();
    assert_eq!(reported.status, pb::IncidentStatus::Reported as i32);
    assert!(reported.open_offers.is_empty(), "{reported:?}");
    assert_eq!(reported.reported_by_agent, "courier-1");
    assert_eq!(reported.report_text, "积水没过脚踝，井盖冒水");
    assert_eq!(reported.category, "flooding");
    assert_eq!(reported.grid_id, "d1-s1-c1-g1");
    let open =
        command.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?.into_inner().incidents;
    assert!(open.iter().any(|incident| incident.id == first), "{open:?}");

    // Accepted: dispatched, and the reporter is told.
    let accepted = command
        .triage_report(pb::TriageReportRequest {
            report_id: first.clone(),
            action: Some(pb::triage_report_request::Action::Accept(pb::AcceptReport {
                priority: 2,
                headcount: 0,
                required_skills: Vec::new(),
            })),
        })
        .await?
        .into_inner();
    assert_eq!(accepted.priority, 2);
    assert_eq!(accepted.headcount, 1);
    assert_ne!(accepted.status, pb::IncidentStatus::Reported as i32);
    expect_outcome(&mut courier, PROMPTLY, &first, "accepted").await?;
    let offer = expect_offer(&mut volunteer, PROMPTLY).await?;
    assert_eq!(offer.incident_id, first);
    volunteer.accept(&offer.offer_id).await?;
    next_matching(&mut volunteer, PROMPTLY, "the assignment", |message| matches!(message, Incoming::AssignmentConfirmed(_)))
        .await?;

    // A second report of the same thing is merged into it.
    let (near_lon, near_lat) = offset_m(spot.0, spot.1, 20.0, 20.0);
    let second = report_from_field(&mut rider, (near_lon, near_lat), "flooding", "路口积水", PROMPTLY).await?;
    let merged = command
        .triage_report(pb::TriageReportRequest {
            report_id: second.clone(),
            action: Some(pb::triage_report_request::Action::MergeInto(first.clone())),
        })
        .await?
        .into_inner();
    assert_eq!(merged.status, pb::IncidentStatus::Merged as i32);
    assert_eq!(merged.merged_into, first);
    let merged_outcome = expect_outcome(&mut rider, PROMPTLY, &second, "merged").await?;
    assert_eq!(merged_outcome.incident_id, first);

    // A third is rejected with a reason the reporter hears.
    let third = report_from_field(&mut courier, spot, "noise", "广场舞太吵", PROMPTLY).await?;
    let rejected = command
        .triage_report(pb::TriageReportRequest {
            report_id: third.clone(),
            action: Some(pb::triage_report_request::Action::RejectReason(
                "not an emergency; the community office handles it".into(),
            )),
        })
        .await?
        .into_inner();
    assert_eq!(rejected.status, pb::IncidentStatus::Rejected as i32);
    let rejected_outcome = expect_outcome(&mut courier, PROMPTLY, &third, "rejected").await?;
    assert_eq!(rejected_outcome.reason, "not an emergency; the community office handles it");

    // Bad triage is refused with the right codes.
    let reject = |id: &str| pb::TriageReportRequest {
        report_id: id.to_string(),
        action: Some(pb::triage_report_request::Action::RejectReason("again".into())),
    };
    let unknown = command.triage_report(reject("inc-999999")).await.expect_err("an unknown report is refused");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let twice = command.triage_report(reject(&third)).await.expect_err("a rejected report cannot be rejected again");
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    let after_accept =
        command.triage_report(reject(&first)).await.expect_err("an accepted report is no longer waiting for triage");
    assert_eq!(after_accept.code(), Code::FailedPrecondition);
    let no_action = command
        .triage_report(pb::TriageReportRequest { report_id: first.clone(), action: None })
        .await
        .expect_err("triage needs a decision");
    assert_eq!(no_action.code(), Code::InvalidArgument);

    // The work is done: both reporters hear the feedback.
    volunteer.complete(&first, "pumped out the water").await?;
    let closed = expect_outcome(&mut courier, PROMPTLY, &first, "closed").await?;
    assert!(closed.feedback.contains("pumped out the water"), "{closed:?}");
    let closed_for_rider = expect_outcome(&mut rider, PROMPTLY, &first, "closed").await?;
    assert!(closed_for_rider.feedback.contains("pumped out the water"));
    let done = command.get_incident(pb::GetIncidentRequest { id: first.clone() }).await?.into_inner();
    assert_eq!(done.status, pb::IncidentStatus::Closed as i32);

    volunteer.disconnect();
    courier.disconnect();
    rider.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_of_the_sample_city_gives_each_community_its_share() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.policy.normal.grid_minimum = 1).await?;
    let mut command = server.command().await?;
    let coverage = command.coverage(pb::CoverageRequest::default()).await?.into_inner();
    assert_eq!(coverage.walk_mps, server.policy().speeds.walk_mps);
    assert_eq!(coverage.communities.len(), 8, "{coverage:?}");
    for community in &coverage.communities {
        assert_eq!(community.grids, 4, "{community:?}");
        assert!(community.grids_within_15_min <= community.grids, "{community:?}");
        let expected = f64::from(community.grids_within_15_min) / f64::from(community.grids);
        assert!((community.share - expected).abs() < 1e-9, "{community:?}");
        assert!(!community.name.is_empty(), "{community:?}");
        // Every sample community has a service centre of its own.
        assert!(community.grids_within_15_min > 0, "{community:?}");
    }
    assert_eq!(coverage.grids.len(), 32);
    // Nobody is connected: every grid is below its normal-mode minimum.
    for grid in &coverage.grids {
        assert_eq!(grid.available, 0, "{grid:?}");
        assert_eq!(grid.minimum, server.policy().normal.grid_minimum, "{grid:?}");
        assert!(grid.below, "{grid:?}");
    }

    // One person in a grid counts there, for coverage of an area too.
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let session = server.connect_person_at(person("vol-1", "d1-s1-c1-g1", &[]), lon, lat).await?;
    let district = command.coverage(pb::CoverageRequest { area_id: "d1".into() }).await?.into_inner();
    assert_eq!(district.communities.len(), 4);
    assert!(district.communities.iter().all(|community| community.community_id.starts_with("d1-")), "{district:?}");
    assert_eq!(district.grids.len(), 16);
    let staffed = district
        .grids
        .iter()
        .find(|grid| grid.grid_id == "d1-s1-c1-g1")
        .ok_or_else(|| anyhow::anyhow!("d1-s1-c1-g1 is missing: {district:?}"))?;
    assert_eq!(staffed.available, 1);
    assert!(!staffed.below, "{staffed:?}");
    let unknown =
        command.coverage(pb::CoverageRequest { area_id: "nowhere".into() }).await.expect_err("an unknown area is refused");
    assert_eq!(unknown.code(), Code::NotFound);

    session.disconnect();
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_without_enough_people_is_an_event_until_people_come() -> anyhow::Result<()> {
    let server = TestServer::start(|config| {
        config.policy.staffing_check_s = 1;
        config.policy.normal.grid_minimum = 2;
    })
    .await?;
    let mut command = server.command().await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let low = events
        .wait_for(PROMPTLY, "grid_staffing_low for d1-s1-c1-g1", |event| {
            event.kind == "grid_staffing_low" && event.area_id == "d1-s1-c1-g1"
        })
        .await?;
    let low_body = typed!(low, GridStaffingLow);
    assert_eq!((low_body.available, low_body.minimum), (0, 2));
    assert_eq!(low.actor, "dispatcher");

    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (first_lon, first_lat) = grid.at(0.4, 0.5);
    let (second_lon, second_lat) = grid.at(0.6, 0.5);
    let first = server.connect_person_at(person("vol-1", "d1-s1-c1-g1", &[]), first_lon, first_lat).await?;
    let second = server.connect_person_at(person("vol-2", "d1-s1-c1-g1", &[]), second_lon, second_lat).await?;
    let restored = events
        .wait_for(PROMPTLY, "grid_staffing_restored for d1-s1-c1-g1", |event| {
            event.kind == "grid_staffing_restored" && event.area_id == "d1-s1-c1-g1"
        })
        .await?;
    // Restored only once both had come: one is not enough.
    assert_eq!(typed!(restored, GridStaffingRestored).available, 2);
    let coverage = command.coverage(pb::CoverageRequest { area_id: "d1-s1-c1".into() }).await?.into_inner();
    let staffed = coverage
        .grids
        .iter()
        .find(|grid| grid.grid_id == "d1-s1-c1-g1")
        .ok_or_else(|| anyhow::anyhow!("d1-s1-c1-g1 is missing: {coverage:?}"))?;
    assert_eq!((staffed.available, staffed.minimum, staffed.below), (2, 2, false));
    // Other grids stay low: no restored event for them.
    assert!(
        !events.seen().iter().any(|event| event.kind == "grid_staffing_restored" && event.area_id != "d1-s1-c1-g1"),
        "{:?}",
        events.seen().iter().map(|event| &event.kind).collect::<Vec<_>>()
    );

    first.disconnect();
    second.disconnect();
    server.shutdown().await
}

/// `field-agent --auto accept --report ...` (headless, as a script runs it)
/// sends its report after the welcome and checks in to a call-up by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headless_field_agent_reports_and_checks_in_by_itself() -> anyhow::Result<()> {
    use anyhow::Context;
    use tokio::io::AsyncReadExt;

    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    command
        .upsert_agent(pb::UpsertAgentRequest { agent: Some(person_with_role("cadre-9", pb::Role::SunkCadre, "d1-s1-c1-g1")) })
        .await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let token = server.agent_token("cadre-9").await?;
    let binary = pingji_tests::agent_fixtures::field_agent_binary().await?;
    let mut agent = tokio::process::Command::new(binary);
    agent
        .args(["--server", &format!("http://{}", server.address())])
        .args(["--agent", "cadre-9", "--token", &token, "--at", &format!("{lon},{lat}")])
        .args(["--auto", "accept", "--delay-s", "0", "--json"])
        .args(["--report", "flooding:地下车库进水"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            agent.env_remove(&name);
        }
    }
    let mut child = agent.spawn().context("cannot start field-agent")?;

    let mut report_id = String::new();
    wait_until(PROMPTLY, "the field agent's report is in", async || {
        let incidents = command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
        if let Some(report) = incidents.iter().find(|incident| incident.reported_by_agent == "cadre-9") {
            report_id = report.id.clone();
            anyhow::ensure!(report.report_text == "地下车库进水", "{report:?}");
            anyhow::ensure!(report.category == "flooding", "{report:?}");
            anyhow::ensure!(report.grid_id == "d1-s1-c1-g1", "{report:?}");
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    let callup = command
        .call_up(pb::CallUpRequest {
            area_id: "d1-s1".into(),
            roles: vec![pb::Role::SunkCadre as i32],
            reason: "防汛备勤".into(),
            deadline_s: 600,
        })
        .await?
        .into_inner();
    assert_eq!(ids(callup.people.iter().map(|person| person.agent_id.clone())), ids(["cadre-9"]));
    wait_until(PROMPTLY, "cadre-9 checked in by itself", async || {
        let callups = command.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
        Ok(callups
            .iter()
            .flat_map(|callup| callup.people.iter())
            .any(|person| person.agent_id == "cadre-9" && person.checked_in_at_ms > 0))
    })
    .await?;

    child.kill().await.context("cannot stop field-agent")?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).await?;
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect::<anyhow::Result<_>>()?;
    let position =
        |event: &str| lines.iter().position(|line| line["event"] == event).with_context(|| format!("no {event} in:\n{stdout}"));
    assert!(position("welcome")? < position("field_report_sent")?);
    let received = &lines[position("report_outcome")?];
    assert_eq!(received["outcome"], "received", "{stdout}");
    assert_eq!(received["report_id"], report_id.as_str(), "{stdout}");
    assert!(position("call_up")? < position("check_in_sent")?);
    assert_eq!(lines[position("check_in_sent")?]["callup_id"], callup.id.as_str());
    server.shutdown().await
}
