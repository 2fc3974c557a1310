//! Duty rosters (#22) on real dispatchers over real gRPC, journaling to a
//! real SQLite file: in normal mode the person on shift is offered before a
//! nearer one off shift, off-shift people are used as the policy says, at
//! grade II everyone is eligible, ExplainIncident says "off shift"; a swap
//! needs a commander's approval and then takes effect; check-in and
//! check-out hours are in the activity report; the iCalendar feed has the
//! lines RFC 5545 requires and lists the shifts; roles are checked; and
//! everything is there after a SIGKILL; a person's own shifts on the phone
//! API (FieldService.MyShifts and friends), never anyone else's; the
//! subscribable calendar URL (`/calendar/<secret>.ics`), made by an admin
//! or the person, revoked, 404 for anything unknown, kept over a restart;
//! the
//! command map's 值班 panel in a
//! real headless Chromium (screenshots of a desk and a phone in
//! `target/web-screenshots/`).

use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_dispatcher::server::Store;
use pingji_engine::policy::OffShift;
use pingji_proto::v1::roster_service_client::RosterServiceClient;
use pingji_tests::browser::{
    self, DESK, PHONE, TestBrowser, accessibility_problems, eval, resize, screenshot, screenshot_folder, wait_for,
};
use pingji_tests::cli::run_pingji;
use pingji_tests::{
    ADMIN_TOKEN, AgentSession, Commands, DispatcherProcess, EventWatch, ProcessOptions, TestServer, add_operator, area_box,
    offset_m, pb, person, sample_city, sample_roster,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Rosters = RosterServiceClient<InterceptedService<Channel, BearerToken>>;

const WITHIN: Duration = Duration::from_secs(20);
const GRID: &str = "d1-s1-c1-g1";

fn rosters_with(channel: Channel, token: &str) -> Rosters {
    RosterServiceClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap_or_default())
}

/// A shift that runs all day every day (local midnight to midnight), so
/// that whoever works it is on shift whenever the test runs.
fn all_day(id: &str, area: &str, people: &[&str]) -> pb::Shift {
    pb::Shift {
        id: id.to_string(),
        area_id: area.to_string(),
        duty: "duty_officer".to_string(),
        days: (1..=7).collect(),
        start_minute: 0,
        length_minutes: 24 * 60,
        agent_ids: people.iter().map(|person| person.to_string()).collect(),
    }
}

async fn server_with(dir: &tempfile::TempDir, off_shift: OffShift) -> anyhow::Result<TestServer> {
    let journal = dir.path().join("pingji.db");
    TestServer::start(move |config| {
        config.store = Store::Sqlite(journal);
        config.policy.rosters.off_shift_in_normal = off_shift;
    })
    .await
}

/// `near` 100 m east of the grid's centre and `officer` 600 m east.
async fn two_people(server: &TestServer, command: &mut Commands) -> anyhow::Result<(Vec<AgentSession>, (f64, f64))> {
    let centre = area_box(command, GRID).await?.centre();
    let (near_lon, near_lat) = offset_m(centre.0, centre.1, 100.0, 0.0);
    let near = server.connect_person_at(person("near", GRID, &[]), near_lon, near_lat).await?;
    let (officer_lon, officer_lat) = offset_m(centre.0, centre.1, 600.0, 0.0);
    let officer = server.connect_person_at(person("officer", GRID, &[]), officer_lon, officer_lat).await?;
    Ok((vec![near, officer], centre))
}

fn incident_at(id: &str, (lon, lat): (f64, f64)) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "medical".to_string(),
        priority: 2,
        headcount: 1,
        ..Default::default()
    }
}

fn explain(incident: &str, agent: &str) -> pb::ExplainIncidentRequest {
    pb::ExplainIncidentRequest { incident_id: incident.to_string(), agent_id: agent.to_string(), candidates: 0, passed_over: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_on_shift_is_offered_before_a_nearer_one_off_shift() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with(&dir, OffShift::AfterOnShift).await?;
    let mut command = server.command().await?;
    let (people, centre) = two_people(&server, &mut command).await?;
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);

    // Without a roster: the nearest, as always.
    let before = command.create_incident(incident_at("before", centre)).await?.into_inner();
    assert_eq!(before.open_offers[0].agent_id, "near");
    command.cancel_incident(pb::CancelIncidentRequest { id: "before".into(), reason: "test".into() }).await?;

    rosters.set_shifts(pb::SetShiftsRequest { shifts: vec![all_day("g1-duty", GRID, &["officer"])] }).await?;
    let on_duty = rosters.on_duty_now(pb::OnDutyNowRequest { area_id: "d1-s1".into() }).await?.into_inner();
    assert_eq!(on_duty.on_duty.len(), 1);
    assert_eq!(on_duty.on_duty[0].agent_ids, ["officer"]);
    assert_eq!(on_duty.utc_offset_minutes, 480, "China Standard Time by default");

    let incident = command.create_incident(incident_at("fall-1", centre)).await?.into_inner();
    assert_eq!(incident.open_offers[0].agent_id, "officer", "on shift first, though 500 m farther");
    let explanation = command.explain_incident(explain("fall-1", "")).await?.into_inner();
    let ranked: Vec<(&str, bool)> =
        explanation.candidates.iter().map(|candidate| (candidate.agent_id.as_str(), candidate.off_shift)).collect();
    assert_eq!(ranked, [("officer", false), ("near", true)], "{explanation:?}");

    // The console shows who is on duty.
    let url = format!("http://{}", server.address());
    let now = run_pingji(&url, &["rosters", "now", "--area", "d1-s1"]).await?.success()?;
    assert!(now.stdout.contains("g1-duty") && now.stdout.contains("officer"), "{}", now.stdout);
    drop(people);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_shift_people_are_offered_only_as_the_policy_allows_and_at_grade_ii_everyone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with(&dir, OffShift::Never).await?;
    let mut command = server.command().await?;
    let (people, centre) = two_people(&server, &mut command).await?;
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);
    // A roster nobody works now: nobody is on shift.
    rosters.set_shifts(pb::SetShiftsRequest { shifts: vec![all_day("g1-duty", GRID, &[])] }).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;

    let incident = command.create_incident(incident_at("fall-2", centre)).await?.into_inner();
    assert!(incident.open_offers.is_empty(), "never: nobody off shift is offered it: {incident:?}");
    let near = command.explain_incident(explain("fall-2", "near")).await?.into_inner();
    assert_eq!(near.passed_over[0].reason, pb::PassOverReason::OffShift as i32, "{near:?}");
    let url = format!("http://{}", server.address());
    let why = run_pingji(&url, &["incident", "why", "fall-2"]).await?.success()?;
    assert!(why.stdout.contains("off shift"), "{}", why.stdout);

    // At grade II everyone mobilisable is eligible, as without a roster.
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "typhoon".into() })
        .await?;
    let offer = events
        .wait_for(WITHIN, "an offer at grade II", |event| event.kind == "offer_sent" && event.incident_id == "fall-2")
        .await?;
    assert_eq!(offer.agent_id, "near");
    drop(events);
    drop(people);
    server.shutdown().await
}

/// The lines RFC 5545 requires of a calendar and of each event.
fn check_ics(ics: &str) -> Vec<String> {
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    assert!(ics.ends_with("END:VCALENDAR\r\n"), "{ics}");
    let lines: Vec<&str> = ics.split("\r\n").collect();
    assert!(lines.contains(&"VERSION:2.0"));
    assert!(lines.iter().any(|line| line.starts_with("PRODID:")));
    assert!(lines.iter().all(|line| line.len() <= 75), "folded at 75 octets");
    let mut starts = Vec::new();
    for event in ics.split("BEGIN:VEVENT\r\n").skip(1) {
        let event = event.split("END:VEVENT").next().unwrap_or_default();
        for required in ["UID:", "DTSTAMP:", "DTSTART:"] {
            assert!(event.contains(&format!("\r\n{required}")) || event.starts_with(required), "{required} in {event}");
        }
        let start = event.split("DTSTART:").nth(1).and_then(|rest| rest.split("\r\n").next()).unwrap_or_default();
        assert_eq!(start.len(), 16, "UTC basic form: {start}");
        assert!(start.ends_with('Z'));
        starts.push(start.to_string());
    }
    starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_needs_a_commanders_approval_and_check_ins_count_in_the_activity_report() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with(&dir, OffShift::AfterOnShift).await?;
    let mut command = server.command().await?;
    let (people, _) = two_people(&server, &mut command).await?;
    let viewer = add_operator(&mut command, "watcher", pb::OperatorRole::Viewer).await?;
    let desk = add_operator(&mut command, "desk", pb::OperatorRole::Dispatcher).await?;
    let chief = add_operator(&mut command, "chief", pb::OperatorRole::Commander).await?;
    let mut as_viewer = rosters_with(server.channel().await?, &viewer);
    let mut as_desk = rosters_with(server.channel().await?, &desk);
    let mut as_chief = rosters_with(server.channel().await?, &chief);

    // Roles: shifts are the commander's; a viewer sees who is on duty.
    let shifts = pb::SetShiftsRequest { shifts: vec![all_day("g1-duty", GRID, &["officer"])] };
    assert_eq!(as_desk.set_shifts(shifts.clone()).await.expect_err("dispatcher").code(), Code::PermissionDenied);
    as_chief.set_shifts(shifts).await?;
    as_viewer.on_duty_now(pb::OnDutyNowRequest::default()).await?;
    let calendar = pb::PersonCalendarRequest { agent_id: "officer".into(), days: 7 };
    assert_eq!(as_viewer.person_calendar(calendar.clone()).await.expect_err("viewer").code(), Code::PermissionDenied);

    // Bad input: a clear error, nothing changed.
    let mut bad = all_day("bad", GRID, &["nobody"]);
    let refused = as_chief.set_shifts(pb::SetShiftsRequest { shifts: vec![bad.clone()] }).await.expect_err("unknown person");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("nobody"), "{}", refused.message());
    bad.agent_ids.clear();
    bad.days = vec![9];
    assert_eq!(
        as_chief.set_shifts(pb::SetShiftsRequest { shifts: vec![bad] }).await.expect_err("day 9").code(),
        Code::InvalidArgument
    );
    let listed = as_viewer.list_shifts(pb::ListShiftsRequest::default()).await?.into_inner().shifts;
    assert_eq!(listed.iter().map(|shift| shift.id.as_str()).collect::<Vec<_>>(), ["g1-duty"]);

    // The calendar: a week of daily shifts, each with the required lines.
    let ics = as_desk.person_calendar(calendar.clone()).await?.into_inner();
    assert_eq!(ics.shifts, 7);
    assert_eq!(check_ics(&ics.ics).len(), 7);

    // The swap: asked by the desk, decided by the commander only.
    let now_ms = as_viewer.on_duty_now(pb::OnDutyNowRequest::default()).await?.into_inner().now_ms;
    let swap = as_desk
        .request_swap(pb::RequestSwapRequest {
            shift_id: "g1-duty".into(),
            day: 0,
            from_agent_id: "officer".into(),
            to_agent_id: "near".into(),
            starts_at_ms: now_ms,
        })
        .await?
        .into_inner();
    assert_eq!(swap.status, pb::SwapStatus::Requested as i32);
    let still = as_viewer.on_duty_now(pb::OnDutyNowRequest::default()).await?.into_inner();
    assert_eq!(still.on_duty[0].agent_ids, ["officer"], "not in effect before approval");
    let decide = pb::DecideSwapRequest { swap_id: swap.id.clone(), approve: true, reason: String::new() };
    assert_eq!(as_desk.decide_swap(decide.clone()).await.expect_err("dispatcher").code(), Code::PermissionDenied);
    let approved = as_chief.decide_swap(decide.clone()).await?.into_inner();
    assert_eq!((approved.status, approved.decided_by.as_str()), (pb::SwapStatus::Approved as i32, "operator:chief"));
    assert_eq!(as_chief.decide_swap(decide).await.expect_err("decided once").code(), Code::FailedPrecondition);
    let swapped = as_viewer.on_duty_now(pb::OnDutyNowRequest::default()).await?.into_inner();
    assert_eq!(swapped.on_duty[0].agent_ids, ["near"]);
    let officer_week = as_desk.person_calendar(calendar).await?.into_inner();
    assert_eq!(officer_week.shifts, 6, "today's shift went to near");

    // Check-in: only whoever is on duty; the hours reach the activity report.
    let check_in = pb::CheckInShiftRequest { agent_id: "officer".into(), shift_id: "g1-duty".into() };
    assert_eq!(as_desk.check_in_shift(check_in).await.expect_err("swapped away").code(), Code::FailedPrecondition);
    let checked_in = as_desk
        .check_in_shift(pb::CheckInShiftRequest { agent_id: "near".into(), shift_id: "g1-duty".into() })
        .await?
        .into_inner();
    let checked_out = as_desk.check_out_shift(pb::CheckOutShiftRequest { agent_id: "near".into() }).await?.into_inner();
    assert_eq!(checked_out.since_ms, checked_in.since_ms);
    assert!(checked_out.until_ms >= checked_out.since_ms);
    let report = command
        .activity_report(pb::ActivityReportRequest {
            from_ms: checked_in.since_ms - 3_600_000,
            to_ms: checked_out.until_ms + 3_600_000,
            area_id: String::new(),
            staffed_within_s: 0,
        })
        .await?
        .into_inner();
    let near = report.people.iter().find(|row| row.agent_id == "near").expect("near has a row");
    assert_eq!(near.shifts_worked, 1);
    let expected_h = (checked_out.until_ms - checked_out.since_ms) as f64 / 3_600_000.0;
    assert!((near.on_shift_h - expected_h).abs() < 1e-9, "{} vs {expected_h}", near.on_shift_h);
    drop(people);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_swaps_and_check_ins_are_there_after_a_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: Some(3),
        log: dir.path().join("dispatcher.log"),
    };
    let first = DispatcherProcess::start(&options).await?;
    let mut rosters = rosters_with(first.channel().await?, ADMIN_TOKEN);
    rosters.set_shifts(pb::SetShiftsRequest { shifts: vec![all_day("g1-duty", GRID, &["p0001", "p0002"])] }).await?;
    let now_ms = rosters.on_duty_now(pb::OnDutyNowRequest::default()).await?.into_inner().now_ms;
    rosters
        .record_absence(pb::RecordAbsenceRequest {
            absence: Some(pb::Absence {
                agent_id: "p0002".into(),
                from_ms: now_ms - 3_600_000,
                until_ms: now_ms + 30 * 86_400_000,
                kind: pb::AbsenceKind::Sick as i32,
            }),
        })
        .await?;
    let swap = rosters
        .request_swap(pb::RequestSwapRequest {
            shift_id: "g1-duty".into(),
            from_agent_id: "p0001".into(),
            to_agent_id: "p0003".into(),
            starts_at_ms: now_ms,
            day: 0,
        })
        .await?
        .into_inner();
    rosters.decide_swap(pb::DecideSwapRequest { swap_id: swap.id.clone(), approve: true, reason: String::new() }).await?;
    rosters.check_in_shift(pb::CheckInShiftRequest { agent_id: "p0003".into(), shift_id: "g1-duty".into() }).await?;
    first.kill().await?;

    let second = DispatcherProcess::start(&options).await?;
    let mut rosters = rosters_with(second.channel().await?, ADMIN_TOKEN);
    let on_duty = rosters.on_duty_now(pb::OnDutyNowRequest { area_id: GRID.into() }).await?.into_inner();
    assert_eq!(on_duty.on_duty.len(), 1);
    assert_eq!(on_duty.on_duty[0].agent_ids, ["p0003"], "p0001 swapped away, p0002 sick");
    assert_eq!(on_duty.on_duty[0].checked_in_agent_ids, ["p0003"]);
    let swaps = rosters.list_swaps(pb::ListSwapsRequest::default()).await?.into_inner().swaps;
    assert_eq!(swaps.len(), 1);
    assert_eq!(swaps[0].status, pb::SwapStatus::Approved as i32);
    let out = rosters.check_out_shift(pb::CheckOutShiftRequest { agent_id: "p0003".into() }).await?.into_inner();
    assert_eq!(out.shift_id, "g1-duty");
    second.kill().await?;

    let third = DispatcherProcess::start(&options).await?;
    let mut command = third.command().await?;
    let mut watch = EventWatch::start(&mut command, 1).await?;
    watch.wait_for(WITHIN, "the check-out", |event| event.kind == "shift_checked_out" && event.agent_id == "p0003").await?;
    drop(watch);
    third.kill().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_maps_duty_panel_shows_who_is_on_duty_now() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|config| config.agents_file = Some(sample_roster())).await?;
    let url = format!("http://{}/", server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);
    let mut officers = all_day("s1-duty-officer", "d1-s1", &["p0001"]);
    officers.duty = "24小时值班领导".to_string();
    let grid_leaders = all_day("c1-on-call", "d1-s1-c1", &["p0002", "p0003"]);
    rosters.set_shifts(pb::SetShiftsRequest { shifts: vec![officers, grid_leaders] }).await?;
    rosters.check_in_shift(pb::CheckInShiftRequest { agent_id: "p0001".into(), shift_id: "s1-duty-officer".into() }).await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(ADMIN_TOKEN).await?.press_key("Enter").await?;
    wait_for(&page, "the map shows", "document.getElementById('login-view').hidden").await?;
    wait_for(&page, "the areas are read", "document.getElementById('map').dataset.areas").await?;
    let pressed: bool = eval(
        &page,
        "(() => { document.getElementById('duty-area').value = 'd1-s1'; document.getElementById('duty-show').click(); return true; })()",
    )
    .await?;
    anyhow::ensure!(pressed, "the Show button is there");
    wait_for(&page, "both shifts are listed", "document.querySelectorAll('#duty-result li.duty-shift').length === 2").await?;
    let shown: String = eval(&page, "document.getElementById('duty-result').textContent").await?;
    assert!(shown.contains("24小时值班领导") && shown.contains("p0001") && shown.contains("已签到"), "{shown}");
    assert!(shown.contains("p0002") && shown.contains("p0003"), "{shown}");
    // Areas by name, not id.
    let mut command = server.command().await?;
    let names: std::collections::HashMap<String, String> = command
        .list_areas(pb::ListAreasRequest::default())
        .await?
        .into_inner()
        .areas
        .into_iter()
        .map(|area| (area.id, area.name))
        .collect();
    let titles: Vec<String> =
        eval(&page, "[...document.querySelectorAll('#duty-result h3')].map((title) => title.textContent)").await?;
    let mut expected = vec![names["d1-s1"].clone(), names["d1-s1-c1"].clone()];
    expected.sort();
    let mut titles_sorted = titles.clone();
    titles_sorted.sort();
    assert_eq!(titles_sorted, expected, "{titles:?}");
    // A check-in shows without pressing Show: the panel follows the event
    // stream (its fallback poll is minutes away).
    rosters.check_in_shift(pb::CheckInShiftRequest { agent_id: "p0002".into(), shift_id: "c1-on-call".into() }).await?;
    wait_for(
        &page,
        "the check-in shows from the event stream",
        "[...document.querySelectorAll('#duty-result li.duty-person.in')].some((person) => person.textContent.startsWith('p0002'))",
    )
    .await?;
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems:\n{}", problems.join("\n"));
    eval::<bool>(&page, "(() => { document.getElementById('duty-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("desk-duty-zh.png")).await?;
    resize(&page, PHONE).await?;
    eval::<bool>(&page, "(() => { document.getElementById('duty-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("phone-duty-zh.png")).await?;
    resize(&page, DESK).await?;
    browser.close().await?;
    server.shutdown().await
}

/// Chinese names of the sample people the phone test uses.
fn named(id: &str, name: &str) -> pb::AgentSpec {
    pb::AgentSpec { name: name.to_string(), ..person(id, GRID, &[]) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_checks_in_to_and_swaps_only_their_own_shifts_from_the_phone_api() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server_with(&dir, OffShift::AfterOnShift).await?;
    let mut command = server.command().await?;
    for (id, name) in [("wang", "王芳"), ("li", "李明"), ("zhao", "赵强")] {
        command.upsert_agent(pb::UpsertAgentRequest { agent: Some(named(id, name)) }).await?;
    }
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);
    let shifts =
        vec![all_day("g1-duty", GRID, &["wang"]), all_day("g1-backup", GRID, &["li"]), all_day("s1-duty", "d1-s1", &["zhao"])];
    rosters.set_shifts(pb::SetShiftsRequest { shifts }).await?;
    let token = server.agent_token("wang").await?;
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("wang", &token).map_err(anyhow::Error::msg)?);
    let mut field = phone.grpc();

    // Her own shifts only: the one running now first, then the coming days.
    let mine = field.my_shifts(pb::MyShiftsRequest { days: 3 }).await?.into_inner();
    assert!(mine.shifts.len() >= 3, "today's and the next days': {mine:?}");
    assert!(mine.shifts.iter().all(|shift| shift.occurrence.as_ref().is_some_and(|o| o.shift_id == "g1-duty")), "{mine:?}");
    assert!(mine.shifts[0].now && !mine.shifts[0].checked_in);
    assert!(mine.shifts[1..].iter().all(|shift| !shift.now));
    assert!(!mine.shifts[0].area_name.is_empty() && mine.shifts[0].area_name != GRID, "the area's name: {mine:?}");
    let colleagues: Vec<(&str, &str)> = mine.colleagues.iter().map(|c| (c.agent_id.as_str(), c.name.as_str())).collect();
    assert_eq!(colleagues, [("li", "李明")], "people of the same area's shifts, not the street's");
    let too_long = field.my_shifts(pb::MyShiftsRequest { days: 400 }).await.expect_err("400 days");
    assert_eq!(too_long.code(), Code::InvalidArgument);

    // Not her shift: refused clearly, nothing changes.
    let other = pb::CheckInMyShiftRequest { shift_id: "s1-duty".into() };
    let refused = field.check_in_my_shift(other).await.expect_err("zhao's shift");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("not on duty in shift s1-duty"), "{}", refused.message());
    let tomorrow = mine.shifts[1].occurrence.as_ref().map_or(0, |occurrence| occurrence.day);
    let not_hers = pb::RequestMySwapRequest { shift_id: "s1-duty".into(), day: tomorrow, to_agent_id: "li".into() };
    let refused = field.request_my_swap(not_hers).await.expect_err("zhao's shift");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("does not work that occurrence"), "{}", refused.message());
    let no_one = pb::RequestMySwapRequest { shift_id: "g1-duty".into(), day: tomorrow, to_agent_id: " ".into() };
    assert_eq!(field.request_my_swap(no_one).await.expect_err("no colleague").code(), Code::InvalidArgument);
    assert!(rosters.list_swaps(pb::ListSwapsRequest::default()).await?.into_inner().swaps.is_empty());
    let wrong_person =
        FieldClient::new(server.channel().await?, AgentCredentials::new("li", &token).map_err(anyhow::Error::msg)?);
    let refused = wrong_person.grpc().my_shifts(pb::MyShiftsRequest::default()).await.expect_err("wang's token is not li's");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Her own: checked in, and out; a swap a commander approves.
    let attendance = field.check_in_my_shift(pb::CheckInMyShiftRequest { shift_id: "g1-duty".into() }).await?.into_inner();
    assert_eq!((attendance.shift_id.as_str(), attendance.until_ms), ("g1-duty", 0));
    let on_duty = rosters.on_duty_now(pb::OnDutyNowRequest { area_id: GRID.into() }).await?.into_inner();
    assert!(on_duty.on_duty.iter().any(|o| o.shift_id == "g1-duty" && o.checked_in_agent_ids == ["wang"]), "{on_duty:?}");
    assert!(field.my_shifts(pb::MyShiftsRequest::default()).await?.into_inner().shifts[0].checked_in);
    let asked = pb::RequestMySwapRequest { shift_id: "g1-duty".into(), day: tomorrow, to_agent_id: "li".into() };
    let swap = field.request_my_swap(asked).await?.into_inner();
    assert_eq!((swap.from_agent_id.as_str(), swap.to_agent_id.as_str()), ("wang", "li"));
    assert_eq!((swap.status(), swap.requested_by.as_str()), (pb::SwapStatus::Requested, "agent:wang"));
    rosters.decide_swap(pb::DecideSwapRequest { swap_id: swap.id.clone(), approve: true, reason: String::new() }).await?;
    let mine = field.my_shifts(pb::MyShiftsRequest { days: 3 }).await?.into_inner();
    assert!(mine.shifts.iter().all(|shift| shift.occurrence.as_ref().is_some_and(|o| o.day != tomorrow)), "swapped away");
    assert_eq!(mine.swaps.iter().map(|swap| swap.status()).collect::<Vec<_>>(), [pb::SwapStatus::Approved]);
    let out = field.check_out_my_shift(pb::CheckOutMyShiftRequest {}).await?.into_inner();
    assert!(out.until_ms >= out.since_ms && out.until_ms > 0, "{out:?}");
    let again = field.check_out_my_shift(pb::CheckOutMyShiftRequest {}).await.expect_err("checked out already");
    assert_eq!(again.code(), Code::FailedPrecondition);
    server.shutdown().await
}

async fn calendar_server(journal: &std::path::Path) -> anyhow::Result<TestServer> {
    let journal = journal.to_path_buf();
    TestServer::start_with_web(move |config| config.store = Store::Sqlite(journal)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_link_serves_the_persons_shifts_until_revoked_and_unknown_links_get_404() -> anyhow::Result<()> {
    use pingji_tests::metrics::http_get;
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("pingji.db");
    let server = calendar_server(&journal).await?;
    let mut command = server.command().await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(named("wang", "王芳")) }).await?;
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);
    rosters.set_shifts(pb::SetShiftsRequest { shifts: vec![all_day("g1-duty", GRID, &["wang"])] }).await?;

    // Admins only: a commander may not hand out someone's calendar.
    let chief = add_operator(&mut command, "chief", pb::OperatorRole::Commander).await?;
    let refused = rosters_with(server.channel().await?, &chief)
        .create_calendar_link(pb::CreateCalendarLinkRequest { agent_id: "wang".into() })
        .await
        .expect_err("a commander");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = rosters.create_calendar_link(pb::CreateCalendarLinkRequest { agent_id: "nobody".into() }).await;
    assert_eq!(unknown.expect_err("not on the roster").code(), Code::InvalidArgument);

    let mut events = EventWatch::start(&mut command, 0).await?;
    let link = rosters.create_calendar_link(pb::CreateCalendarLinkRequest { agent_id: "wang".into() }).await?.into_inner();
    assert!(link.path.starts_with("/calendar/") && link.path.ends_with(".ics") && link.path.len() > 40, "{link:?}");
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let (status, ics) = http_get(web, &link.path).await?;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.contains("DTSTART:") && ics.matches("BEGIN:VEVENT").count() >= 27,
        "{ics}"
    );
    // Unknown secrets and other names: 404, the same words, no hint of who exists.
    let (missing, missing_body) = http_get(web, "/calendar/0123456789abcdef0123456789abcdef.ics").await?;
    assert!(missing.contains(" 404 "), "{missing}");
    let (by_name, by_name_body) = http_get(web, "/calendar/wang.ics").await?;
    assert!(by_name.contains(" 404 ") && by_name_body == missing_body, "{by_name}: {by_name_body}");
    // The record keeps a hash of the secret, never the secret.
    let set = events.wait_for_kind(WITHIN, "calendar_link_set", "").await?;
    let secret = link.path.trim_start_matches("/calendar/").trim_end_matches(".ics").to_string();
    assert!(!format!("{set:?}").contains(&secret), "{set:?}");

    // The person makes a new one from the phone: the old link stops working.
    let token = server.agent_token("wang").await?;
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("wang", &token).map_err(anyhow::Error::msg)?);
    let mine = phone.grpc().create_my_calendar_link(pb::CreateMyCalendarLinkRequest {}).await?.into_inner();
    assert_ne!(mine.path, link.path);
    assert!(http_get(web, &link.path).await?.0.contains(" 404 "), "replaced");
    assert!(http_get(web, &mine.path).await?.0.contains(" 200 "));

    // Kept over a restart from the journal, then revoked: 404.
    server.shutdown().await?;
    let server = calendar_server(&journal).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    assert!(http_get(web, &mine.path).await?.0.contains(" 200 "), "after a restart");
    let mut rosters = rosters_with(server.channel().await?, ADMIN_TOKEN);
    rosters.revoke_calendar_link(pb::RevokeCalendarLinkRequest { agent_id: "wang".into() }).await?;
    let (status, body) = http_get(web, &mine.path).await?;
    assert!(status.contains(" 404 ") && body == missing_body, "{status}: {body}");
    let again = rosters.revoke_calendar_link(pb::RevokeCalendarLinkRequest { agent_id: "wang".into() }).await;
    assert_eq!(again.expect_err("revoked already").code(), Code::FailedPrecondition);
    server.shutdown().await
}
