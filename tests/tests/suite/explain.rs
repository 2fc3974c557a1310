//! Why this person, why not X (`ExplainIncident`, `pingji incident why`),
//! the shortfall in `no_candidates`, and duplicates at intake
//! (`FindDuplicates`, `MergeIncidents`, `pingji incident create`), over
//! real gRPC on a dispatcher journaling to a real SQLite file.

use std::time::Duration;

use pingji_dispatcher::server::Store;
use pingji_tests::cli::run_pingji;
use pingji_tests::mobilisation::report_from_field;
use pingji_tests::{AgentSession, EventWatch, TestServer, add_operator, area_box, offset_m, pb, person, typed};
use tonic::Code;

const PROMPTLY: Duration = Duration::from_secs(20);

fn incident_at(id: &str, (lon, lat): (f64, f64), category: &str, skills: &[&str]) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: category.to_string(),
        priority: 2,
        required_skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount: 1,
        description: "an elderly resident fell on the stairs".to_string(),
        force: false,
    }
}

fn explain(incident: &str, agent: &str) -> pb::ExplainIncidentRequest {
    pb::ExplainIncidentRequest { incident_id: incident.to_string(), agent_id: agent.to_string(), candidates: 0, passed_over: 0 }
}

async fn server_with_sqlite(dir: &tempfile::TempDir) -> anyhow::Result<TestServer> {
    let journal = dir.path().join("pingji.db");
    TestServer::start(move |config| config.store = Store::Sqlite(journal)).await
}

fn reason_of(explanation: &pb::ExplainIncidentResponse, agent: &str) -> Option<pb::PassedOverAgent> {
    explanation.passed_over.iter().find(|passed| passed.agent_id == agent).cloned()
}

/// People around the centre of grid d1-s1-c1-g1: two who qualify, one
/// without the skill, one busy, one off duty.
async fn crowd(server: &TestServer, (lon, lat): (f64, f64)) -> anyhow::Result<Vec<AgentSession>> {
    let grid = "d1-s1-c1-g1";
    let at = |east_m: f64| offset_m(lon, lat, east_m, 0.0);
    let (near_lon, near_lat) = at(100.0);
    let near = server.connect_person_at(person("near", grid, &["first_aid"]), near_lon, near_lat).await?;
    let (next_lon, next_lat) = at(300.0);
    let next = server.connect_person_at(person("next", grid, &["first_aid"]), next_lon, next_lat).await?;
    let (unskilled_lon, unskilled_lat) = at(50.0);
    let unskilled = server.connect_person_at(person("unskilled", grid, &["elder_care"]), unskilled_lon, unskilled_lat).await?;
    let (busy_lon, busy_lat) = at(60.0);
    let busy = server.connect_person_at(person("busy", grid, &["first_aid"]), busy_lon, busy_lat).await?;
    busy.set_status(pb::AgentStatus::Busy).await?;
    let (off_lon, off_lat) = at(70.0);
    let off = server.connect_person_at(person("off", grid, &["first_aid"]), off_lon, off_lat).await?;
    off.set_status(pb::AgentStatus::OffDuty).await?;
    Ok(vec![near, next, unskilled, busy, off])
}

/// Waits until the dispatcher has seen the statuses set in `crowd`.
async fn wait_statuses(command: &mut pingji_tests::Commands) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let busy = command.get_agent(pb::GetAgentRequest { id: "busy".into() }).await?.into_inner();
        let off = command.get_agent(pb::GetAgentRequest { id: "off".into() }).await?.into_inner();
        if busy.status == pb::AgentStatus::Busy as i32 && off.status == pb::AgentStatus::OffDuty as i32 {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "statuses not applied: {busy:?} {off:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explanation_ranks_whom_the_engine_offers_and_says_why_not_the_others() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with_sqlite(&dir).await?;
    let mut command = server.command().await?;
    let centre = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let mut people = crowd(&server, centre).await?;
    wait_statuses(&mut command).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let incident = command.create_incident(incident_at("fall-1", centre, "medical", &["first_aid"])).await?.into_inner();
    let offer = &incident.open_offers[0];
    assert_eq!(offer.agent_id, "near");

    let before = command.get_incident(pb::GetIncidentRequest { id: "fall-1".into() }).await?.into_inner();
    events.wait_for_kind(PROMPTLY, "offer_sent", "fall-1").await?;
    let seen_before = events.seen().len();
    let explanation = command.explain_incident(explain("fall-1", "")).await?.into_inner();
    // The ranking: the person holding the offer first, as the engine chose,
    // at the ETA and distance the offer carries; then who comes next.
    let ranked: Vec<(u32, &str, bool)> =
        explanation.candidates.iter().map(|c| (c.rank, c.agent_id.as_str(), c.offered)).collect();
    assert_eq!(ranked, [(1, "near", true), (2, "next", false)], "{explanation:?}");
    assert_eq!(explanation.candidates[0].eta_s, offer.eta_s);
    assert_eq!(explanation.candidates[0].distance_m, offer.distance_m);
    assert_eq!(explanation.candidates[0].travel_mode, pb::TravelMode::Walk as i32);
    assert_eq!(explanation.level, pb::AreaLevel::Grid as i32);
    assert_eq!(explanation.mode, pb::Mode::Normal as i32);
    // Each person passed over, with the reason set up for them.
    let unskilled = reason_of(&explanation, "unskilled").expect("unskilled listed");
    assert_eq!(unskilled.reason, pb::PassOverReason::LacksSkill as i32);
    assert_eq!(unskilled.lacking_skills, ["first_aid"]);
    assert!(unskilled.located && (unskilled.distance_m - 50.0).abs() < 2.0, "{unskilled:?}");
    assert_eq!(reason_of(&explanation, "busy").map(|p| p.reason), Some(pb::PassOverReason::Busy as i32));
    assert_eq!(reason_of(&explanation, "off").map(|p| p.reason), Some(pb::PassOverReason::OffDuty as i32));
    let counted: u32 = explanation.reason_counts.iter().map(|count| count.people).sum();
    assert!(counted >= 3, "{:?}", explanation.reason_counts);

    // Reading changed nothing: the incident is as it was and the journal
    // only gained the audit of the read.
    let after = command.get_incident(pb::GetIncidentRequest { id: "fall-1".into() }).await?.into_inner();
    assert_eq!(before, after);
    events.wait_for(PROMPTLY, "the audit of the read", |event| event.kind == "personal_data_read").await?;
    assert!(
        events.seen()[seen_before..].iter().all(|event| event.kind == "personal_data_read"),
        "{:?}",
        events.seen()[seen_before..].iter().map(|event| event.kind.clone()).collect::<Vec<_>>()
    );

    // One person: their rank among everyone.
    let next = command.explain_incident(explain("fall-1", "next")).await?.into_inner();
    assert_eq!(next.candidates.len(), 1);
    assert_eq!((next.candidates[0].rank, next.candidates[0].agent_id.as_str()), (2, "next"));
    assert!(next.passed_over.is_empty());
    let off = command.explain_incident(explain("fall-1", "off")).await?.into_inner();
    assert!(off.candidates.is_empty());
    assert_eq!(off.passed_over.len(), 1);
    assert_eq!(off.passed_over[0].reason, pb::PassOverReason::OffDuty as i32);

    // The engine offers next whom the explanation ranked next; the one who
    // declined is then "declined".
    people[0].decline(&offer.offer_id, "cannot go").await?;
    let resent =
        events.wait_for(PROMPTLY, "the next offer", |event| event.kind == "offer_sent" && event.agent_id != "near").await?;
    assert_eq!(resent.agent_id, "next");
    let after_decline = command.explain_incident(explain("fall-1", "near")).await?.into_inner();
    assert_eq!(after_decline.passed_over[0].reason, pb::PassOverReason::Declined as i32);

    // Unknown incidents and people are not found; bounds are checked.
    let missing = command.explain_incident(explain("nope", "")).await.expect_err("no such incident");
    assert_eq!(missing.code(), Code::NotFound);
    let nobody = command.explain_incident(explain("fall-1", "nobody")).await.expect_err("no such person");
    assert_eq!(nobody.code(), Code::NotFound);
    let mut too_many = explain("fall-1", "");
    too_many.candidates = 201;
    assert_eq!(command.explain_incident(too_many).await.expect_err("bounded").code(), Code::InvalidArgument);

    // The console says the same in words.
    let url = format!("http://{}", server.address());
    let why = run_pingji(&url, &["incident", "why", "fall-1"]).await?.success()?;
    assert!(why.stdout.contains("next") && why.stdout.contains("offered now"), "{}", why.stdout);
    assert!(why.stdout.contains("lacks first_aid") && why.stdout.contains("off duty"), "{}", why.stdout);
    assert!(why.stdout.contains("declined this incident earlier"), "{}", why.stdout);
    let one = run_pingji(&url, &["incident", "why", "fall-1", "--agent", "busy"]).await?.success()?;
    assert!(one.stdout.contains("busy") && !one.stdout.contains("unskilled"), "{}", one.stdout);

    people.clear();
    drop(events);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_reasons_and_banded_distances_only_and_cannot_merge() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with_sqlite(&dir).await?;
    let mut command = server.command().await?;
    let centre = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let people = crowd(&server, centre).await?;
    wait_statuses(&mut command).await?;
    command.create_incident(incident_at("fall-2", centre, "medical", &["first_aid"])).await?;
    let viewer_token = add_operator(&mut command, "watcher", pb::OperatorRole::Viewer).await?;
    let mut viewer = server.command_with(Some(&viewer_token)).await?;

    let seen = viewer.explain_incident(explain("fall-2", "")).await?.into_inner();
    assert_eq!(seen.candidates.len(), 2);
    for candidate in &seen.candidates {
        assert_eq!((candidate.rank, candidate.eta_s), (0, 0.0), "no ranks or ETAs for a viewer: {candidate:?}");
        assert_eq!(candidate.distance_m % 1000.0, 0.0, "banded: {candidate:?}");
        assert!(candidate.distance_m >= 1000.0);
    }
    for passed in seen.passed_over.iter().filter(|passed| passed.located) {
        assert_eq!(passed.distance_m % 1000.0, 0.0, "banded: {passed:?}");
    }
    assert_eq!(reason_of(&seen, "unskilled").map(|p| p.reason), Some(pb::PassOverReason::LacksSkill as i32));

    // Duplicates and merges are for dispatchers.
    let find = pb::FindDuplicatesRequest {
        location: Some(pb::Location::wgs84(centre.0, centre.1)),
        category: "medical".into(),
        incident_id: String::new(),
    };
    assert_eq!(viewer.find_duplicates(find.clone()).await.expect_err("viewer").code(), Code::PermissionDenied);
    let merge = pb::MergeIncidentsRequest { incident_id: "fall-2".into(), into_incident_id: "x".into(), report: None };
    assert_eq!(viewer.merge_incidents(merge).await.expect_err("viewer").code(), Code::PermissionDenied);
    let dispatcher_token = add_operator(&mut command, "desk", pb::OperatorRole::Dispatcher).await?;
    let mut dispatcher = server.command_with(Some(&dispatcher_token)).await?;
    assert_eq!(dispatcher.find_duplicates(find).await?.into_inner().duplicates.len(), 1);

    drop(people);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_fits_carries_the_shortfall_by_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with_sqlite(&dir).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let grid = "d1-s1-c1-g1";
    let (a_lon, a_lat) = offset_m(lon, lat, 40.0, 0.0);
    let a = server.connect_person_at(person("plain-a", grid, &[]), a_lon, a_lat).await?;
    let (b_lon, b_lat) = offset_m(lon, lat, 80.0, 0.0);
    let b = server.connect_person_at(person("plain-b", grid, &[]), b_lon, b_lat).await?;
    let (c_lon, c_lat) = offset_m(lon, lat, 120.0, 0.0);
    let c = server.connect_person_at(person("medic-busy", grid, &["first_aid"]), c_lon, c_lat).await?;
    c.set_status(pb::AgentStatus::Busy).await?;
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while command.get_agent(pb::GetAgentRequest { id: "medic-busy".into() }).await?.into_inner().status
        != pb::AgentStatus::Busy as i32
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "status not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = EventWatch::start(&mut command, 1).await?;
    command.create_incident(incident_at("fall-3", (lon, lat), "medical", &["first_aid"])).await?;
    let none = events.wait_for_kind(PROMPTLY, "no_candidates", "fall-3").await?;
    let shortfall = typed!(none, NoCandidates).shortfall.expect("the shortfall is in the event");
    // Nobody fitted in the grid, so the search widened to the whole city first.
    assert_eq!(shortfall.level, pb::AreaLevel::City as i32);
    assert_eq!((shortfall.in_reach, shortfall.qualified), (3, 0), "{shortfall:?}");
    assert_eq!(shortfall.lacking, [pb::SkillCount { skill: "first_aid".into(), people: 2 }]);
    let busy = shortfall.reasons.iter().find(|count| count.reason == pb::PassOverReason::Busy as i32);
    assert_eq!(busy.map(|count| count.people), Some(1), "{shortfall:?}");
    // The console's event line says it in words.
    let url = format!("http://{}", server.address());
    let printed = run_pingji(&url, &["events", "--from", &none.seq.to_string()]).await?.success()?;
    assert!(printed.stdout.contains("nobody fits at city level (within "), "{}", printed.stdout);
    assert!(printed.stdout.contains("3 people; 2 lack first_aid, 1 busy"), "{}", printed.stdout);
    drop((a, b, c, events));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_found_within_the_thresholds_and_a_merge_keeps_both_reporters_and_one_timeline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with_sqlite(&dir).await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let grid = "d1-s1-c1-g1";
    let mut first_reporter = server.connect_person_at(person("reporter-1", grid, &[]), lon, lat).await?;
    let mut second_reporter = server.connect_person_at(person("reporter-2", grid, &[]), lon, lat).await?;
    let first = report_from_field(&mut first_reporter, (lon, lat), "flooding", "water in the basement", PROMPTLY).await?;
    let near = offset_m(lon, lat, 120.0, 0.0);
    let second = report_from_field(&mut second_reporter, near, "water_leak", "a pipe burst", PROMPTLY).await?;

    let find = |at: (f64, f64), category: &str| pb::FindDuplicatesRequest {
        location: Some(pb::Location::wgs84(at.0, at.1)),
        category: category.to_string(),
        incident_id: String::new(),
    };
    let found = command.find_duplicates(find(near, "flooding")).await?.into_inner();
    let ids: Vec<String> = found.duplicates.iter().filter_map(|d| d.incident.as_ref()).map(|i| i.id.clone()).collect();
    assert_eq!(ids, [second.clone(), first.clone()], "nearest first, same and similar categories");
    assert_eq!((found.within_m, found.within_minutes), (300, 60), "the policy's thresholds");
    assert!(found.duplicates[0].same_category == false && found.duplicates[1].same_category);
    // Outside the distance, or of an unrelated category: none.
    let far = offset_m(lon, lat, 900.0, 0.0);
    assert!(command.find_duplicates(find(far, "flooding")).await?.into_inner().duplicates.is_empty());
    assert!(command.find_duplicates(find(near, "noise")).await?.into_inner().duplicates.is_empty());
    // Triage: the report asks about the others.
    let of_second = pb::FindDuplicatesRequest { incident_id: second.clone(), ..Default::default() };
    let triage = command.find_duplicates(of_second).await?.into_inner();
    assert_eq!(triage.duplicates.len(), 1);
    assert_eq!(triage.duplicates[0].incident.as_ref().map(|i| i.id.as_str()), Some(first.as_str()));
    // The console shows them with the report awaiting triage.
    let url = format!("http://{}", server.address());
    let shown = run_pingji(&url, &["incident", "show", &second]).await?.success()?;
    assert!(
        shown.stdout.contains("possible duplicates") && shown.stdout.contains(&format!("  {first} flooding")),
        "{}",
        shown.stdout
    );
    let bad = command.find_duplicates(find(near, " ")).await.expect_err("no category");
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Merge the second into the first: both reporters, one timeline.
    let merge = pb::MergeIncidentsRequest { incident_id: second.clone(), into_incident_id: first.clone(), report: None };
    let merged = command.merge_incidents(merge.clone()).await?.into_inner();
    assert_eq!(merged.id, first);
    assert_eq!(merged.reporters, ["reporter-1", "reporter-2"]);
    assert_eq!(merged.merged_from, [second.clone()]);
    let gone = command.get_incident(pb::GetIncidentRequest { id: second.clone() }).await?.into_inner();
    assert_eq!(gone.status, pb::IncidentStatus::Merged as i32);
    assert_eq!(gone.merged_into, first);
    let timeline = command
        .incident_timeline(pb::IncidentTimelineRequest { incident_id: first.clone(), from_seq: 0, limit: 0 })
        .await?
        .into_inner();
    let reported: Vec<&str> =
        timeline.events.iter().filter(|e| e.kind == "field_reported").map(|e| e.incident_id.as_str()).collect();
    assert_eq!(reported, [first.as_str(), second.as_str()], "one timeline holds both reports");
    assert!(timeline.events.iter().any(|event| event.kind == "report_merged"));
    assert!(timeline.events.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    // Merged once: a second time is refused and changes nothing.
    let again = command.merge_incidents(merge).await.expect_err("already merged");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // A new report merged at intake: recorded, merged, offered to nobody.
    let report = incident_at("dup-1", near, "flooding", &[]);
    let intake = pb::MergeIncidentsRequest { incident_id: String::new(), into_incident_id: first.clone(), report: Some(report) };
    let merged = command.merge_incidents(intake).await?.into_inner();
    assert_eq!(merged.merged_from, [second.clone(), "dup-1".to_string()]);
    let duplicate = command.get_incident(pb::GetIncidentRequest { id: "dup-1".into() }).await?.into_inner();
    assert_eq!(duplicate.status, pb::IncidentStatus::Merged as i32);
    assert!(duplicate.open_offers.is_empty());

    // The console asks before creating: without a terminal it stops and
    // names the flags; --anyway creates, --merge-into records a duplicate.
    let create = |extra: &[&str]| {
        let mut args: Vec<String> = ["incident", "create", "--at", &format!("{},{}", near.0, near.1), "--category", "flooding"]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
        args.extend(["--priority", "2", "--need", "1"].iter().map(|arg| arg.to_string()));
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let stopped = run_pingji(&url, &create(&[])).await?;
    assert_eq!(stopped.code(), Some(1), "{}", stopped.stderr);
    assert!(stopped.stderr.contains(&first) && stopped.stderr.contains("--anyway"), "{}", stopped.stderr);
    let recorded = run_pingji(&url, &create(&["--merge-into", &first])).await?.success()?;
    assert!(recorded.stdout.contains("as a duplicate of"), "{}", recorded.stdout);
    let created = run_pingji(&url, &create(&["--anyway"])).await?.success()?;
    assert!(created.stdout.starts_with("reported "), "{}", created.stdout);
    let open = command.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?.into_inner();
    assert_eq!(open.incidents.len(), 2, "the first report and the one created anyway");

    drop((first_reporter, second_reporter));
    server.shutdown().await
}

/// The command map: the incident panel's "为什么" section, and the create
/// form showing a possible duplicate before anything is created. In a real
/// headless Chromium; skipped without one (except in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_explains_an_incident_and_offers_to_merge_a_duplicate_before_creating() -> anyhow::Result<()> {
    use pingji_tests::browser::{
        self, DESK, PHONE, TestBrowser, accessibility_problems, click_now, eval, resize, screenshot, wait_for,
    };
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|_| {}).await?;
    let url = format!("http://{}/", server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let mut command = server.command().await?;
    let token = add_operator(&mut command, "desk", pb::OperatorRole::Dispatcher).await?;
    let centre = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let people = crowd(&server, centre).await?;
    wait_statuses(&mut command).await?;
    command.create_incident(incident_at("fall-w", centre, "medical", &["first_aid"])).await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    wait_for(&page, "the login form", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(&token).await?.press_key("Enter").await?;
    wait_for(&page, "the incident is listed", "document.querySelector('#incident-list button[data-incident-id=\"fall-w\"]')")
        .await?;
    // The list is drawn again as events arrive, which can replace the
    // button between finding it and clicking it.
    click_now(&page, "#incident-list button[data-incident-id=\"fall-w\"]").await?;
    wait_for(&page, "the panel shows", "document.getElementById('incident-detail').dataset.incidentId === 'fall-w'").await?;
    page.find_element("#why-button").await?.click().await?;
    wait_for(
        &page,
        "the explanation shows",
        "document.querySelector('#why-result .why-candidates li[data-agent-id=near] .why-offered') && \
         document.querySelector('#why-result .why-candidates li[data-agent-id=next]') && \
         document.querySelector('#why-result .why-passed li[data-agent-id=unskilled][data-reason=\"1\"]') && \
         document.querySelector('#why-result .why-passed li[data-agent-id=off][data-reason=\"3\"]')",
    )
    .await?;
    let order: Vec<String> =
        eval(&page, "[...document.querySelectorAll('#why-result .why-candidates li')].map((li) => li.dataset.agentId)").await?;
    assert_eq!(order, ["near", "next"]);
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core: {}", problems.join("\n"));
    page.evaluate("document.getElementById('why-result').scrollIntoView()").await?;
    screenshot(&page, &browser::screenshot_folder().join("desk-why-zh.png")).await?;
    resize(&page, PHONE).await?;
    wait_for(&page, "the phone layout", "window.innerWidth === 390").await?;
    page.evaluate("document.getElementById('why-result').scrollIntoView()").await?;
    screenshot(&page, &browser::screenshot_folder().join("phone-why-zh.png")).await?;
    resize(&page, DESK).await?;

    // A second report of the same thing nearby: the form shows the open
    // incident before creating, and records the report as its duplicate.
    let (lon, lat) = offset_m(centre.0, centre.1, 60.0, 0.0);
    page.evaluate(format!(
        "document.getElementById('lon').value = '{lon}'; document.getElementById('lat').value = '{lat}'; \
         document.getElementById('category').value = 'medical'"
    ))
    .await?;
    page.find_element("#create-button").await?.click().await?;
    wait_for(
        &page,
        "the possible duplicate shows",
        "!document.getElementById('create-duplicates').hidden && \
         document.querySelector('#create-duplicates button[data-merge-into=\"fall-w\"]')",
    )
    .await?;
    page.evaluate("document.getElementById('create-duplicates').scrollIntoView()").await?;
    screenshot(&page, &browser::screenshot_folder().join("desk-duplicate-zh.png")).await?;
    let open = command.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?;
    assert_eq!(open.into_inner().incidents.len(), 1, "nothing was created before the operator chose");
    page.find_element("#create-duplicates button[data-merge-into=\"fall-w\"]").await?.click().await?;
    wait_for(&page, "the duplicate is recorded", "document.getElementById('create-result').classList.contains('ok')").await?;
    let merged = command.get_incident(pb::GetIncidentRequest { id: "fall-w".into() }).await?.into_inner();
    assert_eq!(merged.merged_from.len(), 1, "{merged:?}");

    // A field report of the same nearby: its triage form offers fall-w
    // first, marked as a possible duplicate, and chosen.
    let mut people = people;
    let report = report_from_field(&mut people[2], (lon, lat), "medical", "有人摔倒", PROMPTLY).await?;
    let button = format!("#incident-list button[data-incident-id=\"{report}\"]");
    wait_for(&page, "the report is listed", &format!("document.querySelector('{button}')")).await?;
    click_now(&page, &button).await?;
    wait_for(
        &page,
        "the triage form suggests the duplicate",
        "!document.getElementById('triage-form').hidden && \
         document.getElementById('triage-merge-into').value === 'fall-w' && \
         document.querySelector('#triage-merge-into option[value=\"fall-w\"]').textContent.includes('可能重复')",
    )
    .await?;

    browser.close().await?;
    drop(people);
    server.shutdown().await
}
