//! Who served (`ActivityReport`, `MyActivity`, `pingji report activity`):
//! a scripted sequence of offers, answers, arrivals, reports and check-ins
//! on a dispatcher with a virtual clock, journaling to a real SQLite file,
//! over real gRPC; the figures are worked out by hand from the script.

use std::time::Duration;

use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_dispatcher::server::Store;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_tests::cli::run_pingji;
use pingji_tests::mobilisation::{check_in, expect_call_up, expect_offer, person_with_role, report_from_field};
use pingji_tests::{AgentSession, EventWatch, TestClock, TestServer, add_operator, area_box, offset_m, pb, person, typed};
use tonic::Code;

const PROMPTLY: Duration = Duration::from_secs(20);
/// 2026-03-01 08:00 UTC, the script's second 0.
const T0: i64 = 1_772_352_000_000;

fn at(seconds: i64) -> i64 {
    T0 + seconds * 1000
}

struct Script {
    server: TestServer,
    clock: TestClock,
    command: pingji_tests::Commands,
    events: EventWatch,
    _dir: tempfile::TempDir,
}

impl Script {
    /// Moves the virtual clock to `seconds` after T0.
    fn to(&self, seconds: i64) {
        let now = self.clock.now_ms();
        assert!(at(seconds) >= now, "the script goes forward");
        self.clock.advance(Duration::from_millis((at(seconds) - now) as u64));
    }

    async fn wait(&mut self, what: &str, kind: &str, agent: &str) -> anyhow::Result<pb::Event> {
        let (kind, agent) = (kind.to_string(), agent.to_string());
        self.events
            .wait_for(PROMPTLY, what, move |event| event.kind == kind && (agent.is_empty() || event.agent_id == agent))
            .await
    }
}

fn incident_at(id: &str, (lon, lat): (f64, f64)) -> pb::CreateIncidentRequest {
    pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "medical".to_string(),
        priority: 2,
        required_skills: vec!["first_aid".to_string()],
        headcount: 1,
        description: "a resident fell".to_string(),
        force: false,
    }
}

fn period(from_s: i64, to_s: i64, area: &str) -> pb::ActivityReportRequest {
    pb::ActivityReportRequest { from_ms: at(from_s), to_ms: at(to_s), area_id: area.to_string(), staffed_within_s: 0 }
}

fn row<'a>(report: &'a pb::ActivityReportResponse, agent: &str) -> &'a pb::PersonActivity {
    report.people.iter().find(|row| row.agent_id == agent).unwrap_or_else(|| panic!("{agent} has a row: {report:?}"))
}

fn hours(seconds: f64) -> f64 {
    seconds / 3600.0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The script, to second 1000 (see each step). a and b: volunteers with
/// first aid in grid d1-s1-c1-g1, on duty; c: a sunk cadre at home in
/// d1-s1-c2-g1, off duty; d: a sunk cadre at home in d1-s1-c1-g2, off duty
/// and never connected.
async fn scripted(with_web: bool) -> anyhow::Result<(Script, Vec<AgentSession>)> {
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("pingji.db");
    let clock = TestClock::at(T0);
    let dispatcher_clock = clock.for_dispatcher();
    let tweak = move |config: &mut pingji_dispatcher::server::Config| {
        config.store = Store::Sqlite(journal);
        config.clock = dispatcher_clock;
        // Offers lapse only when the script moves the clock past this.
        config.policy.normal.offer_timeout_s = 300;
    };
    let server = if with_web { TestServer::start_with_web(tweak).await? } else { TestServer::start(tweak).await? };
    let mut command = server.command().await?;
    let grid = "d1-s1-c1-g1";
    let centre = area_box(&mut command, grid).await?.centre();
    let (a_lon, a_lat) = offset_m(centre.0, centre.1, 100.0, 0.0);
    let a = server.connect_person_at(person("a", grid, &["first_aid"]), a_lon, a_lat).await?;
    let (b_lon, b_lat) = offset_m(centre.0, centre.1, 300.0, 0.0);
    let b = server.connect_person_at(person("b", grid, &["first_aid"]), b_lon, b_lat).await?;
    let mut c_spec = person_with_role("c", pb::Role::SunkCadre, "d1-s1-c2-g1");
    c_spec.on_duty = false;
    let c_home = area_box(&mut command, "d1-s1-c2-g1").await?.centre();
    let c = server.connect_person_at(c_spec, c_home.0, c_home.1).await?;
    let mut d_spec = person_with_role("d", pb::Role::SunkCadre, "d1-s1-c1-g2");
    d_spec.on_duty = false;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(d_spec) }).await?;
    let events = EventWatch::start(&mut command, 1).await?;
    let mut script = Script { server, clock, command, events, _dir: dir };
    let (mut a, mut b, mut c) = (a, b, c);

    // 60: i1; its offer goes to a, the nearest.
    script.to(60);
    script.command.create_incident(incident_at("i1", centre)).await?;
    let offer = expect_offer(&mut a, PROMPTLY).await?;
    // 90: a declines; the offer goes to b.
    script.to(90);
    a.decline(&offer.offer_id, "家里有事").await?;
    let offer = expect_offer(&mut b, PROMPTLY).await?;
    // 135: b accepts (45 s); 255: b arrives (120 s after accepting).
    script.to(135);
    b.accept(&offer.offer_id).await?;
    script.wait("i1 staffed", "incident_staffed", "").await?;
    script.to(255);
    b.send(Outgoing::Arrived(pb::Arrived { incident_id: "i1".into() })).await?;
    script.wait("b arrived", "agent_arrived", "b").await?;
    // 255: i2, offered to a (b is busy); a lets it lapse (deadline 555).
    script.command.create_incident(incident_at("i2", centre)).await?;
    expect_offer(&mut a, PROMPTLY).await?;
    script.to(560);
    script.wait("a's offer lapsed", "offer_timed_out", "a").await?;
    // 600: b completes i1 (on it 135 to 600) and is offered i2; 630: accepts (30 s).
    script.to(600);
    b.complete("i1", "helped her up").await?;
    let offer = expect_offer(&mut b, PROMPTLY).await?;
    script.to(630);
    b.accept(&offer.offer_id).await?;
    script.wait("i2 staffed", "incident_staffed", "").await?;
    // 640: a reports from the field; 650: rejected.
    script.to(640);
    let r1 = report_from_field(&mut a, centre, "litter", "bags on the pavement", PROMPTLY).await?;
    script.to(650);
    script
        .command
        .triage_report(pb::TriageReportRequest {
            report_id: r1,
            action: Some(pb::triage_report_request::Action::RejectReason("cleared already".into())),
        })
        .await?;
    // 660: c reports in c2; 670: merged into i2.
    script.to(660);
    let r2 = report_from_field(&mut c, c_home, "medical", "someone fell", PROMPTLY).await?;
    script.to(670);
    script
        .command
        .triage_report(pb::TriageReportRequest {
            report_id: r2,
            action: Some(pb::triage_report_request::Action::MergeInto("i2".into())),
        })
        .await?;
    // 700: the street calls up its sunk cadres c and d (deadline 820); 790: c checks in (90 s).
    script.to(700);
    let callup = script
        .command
        .call_up(pb::CallUpRequest {
            area_id: "d1-s1".into(),
            roles: vec![pb::Role::SunkCadre as i32],
            reason: "防汛备勤".into(),
            deadline_s: 120,
        })
        .await?
        .into_inner();
    expect_call_up(&mut c, PROMPTLY).await?;
    script.to(790);
    // A check-in needs a fresh location (locations are not journaled).
    c.send_location(c_home.0, c_home.1).await?;
    check_in(&c, &callup.id).await?;
    script.wait("c checked in", "checked_in", "c").await?;
    // 830: d missed the deadline.
    script.to(830);
    script.wait("the deadline passed", "callup_deadline_passed", "").await?;
    // 900: a goes off duty; the report is read at 1000.
    script.to(900);
    a.set_status(pb::AgentStatus::OffDuty).await?;
    script.wait("a off duty", "agent_status_changed", "a").await?;
    script.to(1000);
    Ok((script, vec![a, b, c]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_figures_are_the_hand_counted_ones_and_the_filters_cut() -> anyhow::Result<()> {
    let (mut script, sessions) = scripted(false).await?;
    let commander_token = add_operator(&mut script.command, "zhang.wei", pb::OperatorRole::Commander).await?;
    let mut commander = script.server.command_with(Some(&commander_token)).await?;

    // Everywhere, [30 s, 1000 s).
    let report = commander.activity_report(period(30, 1000, "")).await?.into_inner();
    assert!(!report.people_withheld);
    assert_eq!(report.people.iter().map(|row| row.agent_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    let a = row(&report, "a");
    assert_eq!((a.offers, a.accepted, a.declined, a.timed_out), (2, 0, 1, 1));
    assert_eq!(a.declined_by_reason, [pb::DeclineReasonCount { reason: "家里有事".into(), count: 1 }]);
    assert_eq!((a.reports, a.reports_accepted, a.reports_merged, a.reports_rejected), (1, 0, 0, 1));
    assert!(close(a.on_duty_h, hours(870.0)), "on duty 30 to 900: {a:?}");
    assert_eq!((a.on_assignment_h, a.median_accept_s), (0.0, None));
    let b = row(&report, "b");
    assert_eq!((b.offers, b.accepted, b.declined, b.timed_out), (2, 2, 0, 0));
    assert_eq!(b.accept_times_s, [45.0, 30.0]);
    assert_eq!(b.median_accept_s, Some(30.0), "the lower middle of 30 and 45");
    assert_eq!(b.median_arrive_s, Some(120.0));
    assert!(close(b.on_assignment_h, hours(465.0 + 370.0)), "i1 135 to 600, i2 630 to 1000: {b:?}");
    assert!(close(b.on_duty_h, hours(970.0)), "{b:?}");
    let c = row(&report, "c");
    assert_eq!((c.reports, c.reports_merged, c.callups, c.checked_in, c.missed_callups), (1, 1, 1, 1, 0));
    assert_eq!(c.median_check_in_s, Some(90.0));
    assert_eq!(c.offers, 0);
    let d = row(&report, "d");
    assert_eq!((d.callups, d.checked_in, d.missed_callups), (1, 0, 1));
    let areas: Vec<(&str, u32, u32, Option<f64>)> =
        report.areas.iter().map(|row| (row.area_id.as_str(), row.incidents, row.staffed_in_time, row.staffed_share)).collect();
    // i1 staffed after 75 s, i2 after 375 s: both within 600 s.
    assert_eq!(areas, [("d1-s1-c1", 2, 2, Some(1.0)), ("d1-s1-c1-g1", 2, 2, Some(1.0))]);
    assert_eq!(report.staffed_within_s, 600);
    assert!(report.first_kept_at_ms > 0 && report.events_read > 20, "{report:?}");

    // A community: c's report and the street's call-up are not in it.
    let c1 = commander.activity_report(period(30, 1000, "d1-s1-c1")).await?.into_inner();
    assert_eq!(c1.people.iter().map(|row| row.agent_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(row(&c1, "b"), row(&report, "b"));
    let c2 = commander.activity_report(period(30, 1000, "d1-s1-c2")).await?.into_inner();
    assert_eq!(
        c2.people.iter().map(|row| (row.agent_id.as_str(), row.reports_merged, row.callups)).collect::<Vec<_>>(),
        [("c", 1, 0)]
    );
    assert!(c2.areas.is_empty(), "{c2:?}");

    // The period's edges: a's decline at 90 is before 91, b's acceptance at
    // 135 is the end and not in it; only time on duty is left.
    let edges = commander.activity_report(period(91, 135, "")).await?.into_inner();
    let counted: Vec<(&str, u32, u32, u32)> =
        edges.people.iter().map(|row| (row.agent_id.as_str(), row.offers, row.declined, row.accepted)).collect();
    assert_eq!(counted, [("a", 0, 0, 0), ("b", 0, 0, 0)]);
    assert!(close(row(&edges, "a").on_duty_h, hours(44.0)) && close(row(&edges, "b").on_duty_h, hours(44.0)), "{edges:?}");
    assert!(close(row(&edges, "b").on_assignment_h, 0.0));
    assert!(edges.areas.is_empty());

    // Each read of per-person figures is audited: four reads, four audits.
    let mut audits = Vec::new();
    while audits.len() < 4 {
        let audit = script
            .events
            .wait_for(PROMPTLY, "the audit of a read", |event| {
                event.kind == "personal_data_read" && event.actor == "operator:zhang.wei"
            })
            .await?;
        let audit = typed!(audit, PersonalDataRead);
        audits.push((audit.rpc.clone(), audit.subject.clone(), audit.people));
    }
    assert_eq!(
        audits,
        [
            ("ActivityReport".to_string(), format!("activity everywhere from {} to {}", at(30), at(1000)), 4),
            ("ActivityReport".to_string(), format!("activity d1-s1-c1 from {} to {}", at(30), at(1000)), 2),
            ("ActivityReport".to_string(), format!("activity d1-s1-c2 from {} to {}", at(30), at(1000)), 1),
            ("ActivityReport".to_string(), format!("activity everywhere from {} to {}", at(91), at(135)), 2),
        ]
    );

    // The console: a table, CSV, and the charts with both tables in files.
    let url = format!("http://{}", script.server.address());
    let (from, to) = (at(30).to_string(), at(1000).to_string());
    let table = run_pingji(&url, &["report", "activity", "--from", &from, "--to", &to]).await?.success()?;
    assert!(table.stdout.contains("Who served in everywhere, 2026-03-01 08:00:30Z to 2026-03-01 08:16:40Z"), "{}", table.stdout);
    assert!(table.stdout.contains("a: 家里有事 ×1"), "{}", table.stdout);
    assert!(table.stdout.contains("d1-s1-c1-g1") && table.stdout.contains("100%"), "{}", table.stdout);
    let csv = run_pingji(&url, &["report", "activity", "--from", &from, "--to", &to, "--area", "d1-s1-c1", "--csv"])
        .await?
        .success()?;
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert!(lines[0].starts_with("agent_id,name,home_area_id,offers,accepted,declined,timed_out"), "{}", csv.stdout);
    assert!(
        lines[1].starts_with("a,test person a,d1-s1-c1-g1,2,0,1,1,0,家里有事 ×1,,,0.0000,0.2417,1,0,0,1,0,0,0,"),
        "{}",
        csv.stdout
    );
    assert!(lines[2].starts_with("b,test person b,d1-s1-c1-g1,2,2,0,0,0,,30,120,0.2319,0.2694,"), "{}", csv.stdout);
    assert_eq!(lines[3], "");
    assert_eq!(
        lines[5],
        "d1-s1-c1,d1-s1-c1 name,community,2,2,1.0000,0,0.0000,0.0000".replace("d1-s1-c1 name", areas_name(&report, "d1-s1-c1"))
    );
    let json = run_pingji(&url, &["--json", "report", "activity", "--from", &from, "--to", &to]).await?.success()?;
    let json: serde_json::Value = serde_json::from_str(&json.stdout)?;
    assert_eq!(json["people"].as_array().map(Vec::len), Some(4), "{json}");
    assert_eq!(json["people"][1]["accepted"], 2, "{json}");
    let charts = tempfile::tempdir()?;
    let dir = charts.path().join("activity");
    run_pingji(&url, &["report", "activity", "--from", &from, "--to", &to, "--svg", dir.to_str().expect("utf-8")])
        .await?
        .success()?;
    for name in ["offers.svg", "accept.svg", "staffed.svg"] {
        let svg = std::fs::read_to_string(dir.join(name))?;
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}");
    }
    let offers = std::fs::read_to_string(dir.join("offers.svg"))?;
    assert!(offers.contains("<title>b: accepted 2</title>") && offers.contains("<title>a: timed out 1</title>"), "{offers}");
    assert_eq!(std::fs::read_to_string(dir.join("people.csv"))?.lines().count(), 5, "a header and four people");

    drop(sessions);
    script.server.shutdown().await
}

fn areas_name<'a>(report: &'a pb::ActivityReportResponse, id: &str) -> &'a str {
    report.areas.iter().find(|area| area.area_id == id).map_or("", |area| area.name.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_below_commander_get_the_areas_only_and_a_person_their_own_record() -> anyhow::Result<()> {
    let (mut script, sessions) = scripted(false).await?;
    for (name, role) in [("li.viewer", pb::OperatorRole::Viewer), ("wang.dispatch", pb::OperatorRole::Dispatcher)] {
        let token = add_operator(&mut script.command, name, role).await?;
        let mut operator = script.server.command_with(Some(&token)).await?;
        let report = operator.activity_report(period(30, 1000, "")).await?.into_inner();
        assert!(report.people_withheld && report.people.is_empty(), "{name}: {report:?}");
        assert_eq!(report.areas.len(), 2, "{name}: the area rows all the same");
    }
    script.wait("the dispatcher's account", "operator_added", "").await?;
    script.wait("the dispatcher's account", "operator_added", "").await?;
    let seen = script.events.seen().len();

    // Bad input is refused, saying why, and journals nothing.
    let reversed = script.command.activity_report(period(1000, 30, "")).await.expect_err("reversed period");
    assert_eq!(reversed.code(), Code::InvalidArgument, "{reversed:?}");
    assert!(reversed.message().contains("to_ms"), "{reversed:?}");
    let nowhere = script.command.activity_report(period(30, 1000, "atlantis")).await.expect_err("unknown area");
    assert_eq!(nowhere.code(), Code::NotFound, "{nowhere:?}");

    // A person's own record, on their own token; another's id with it is refused.
    let token = pingji_tests::agent_token(&mut script.command, "b").await?;
    let phone = FieldClient::new(script.server.channel().await?, AgentCredentials::new("b", &token).map_err(anyhow::Error::msg)?);
    let mine = phone.my_activity(at(30), at(1000)).await?;
    let record = mine.person.expect("a record");
    assert_eq!((record.agent_id.as_str(), record.offers, record.accepted), ("b", 2, 2));
    assert_eq!(record.median_accept_s, Some(30.0));
    let impostor =
        FieldClient::new(script.server.channel().await?, AgentCredentials::new("a", &token).map_err(anyhow::Error::msg)?);
    let refused = impostor.my_activity(at(30), at(1000)).await.expect_err("b's token is not a's");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let reversed = phone.my_activity(at(1000), at(30)).await.expect_err("reversed period");
    assert_eq!(reversed.code(), Code::InvalidArgument);

    // Reading the areas, refusals and a person's own record journal
    // nothing: up to a marker, the one event is b's new token.
    script.command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("marker", "d1-s1-c1-g1", &[])) }).await?;
    script.wait("the marker", "agents_upserted", "").await?;
    let after: Vec<String> = script.events.seen()[seen..].iter().map(|event| event.kind.clone()).collect();
    assert_eq!(after, ["agent_tokens_issued", "agents_upserted"]);
    drop(sessions);
    script.server.shutdown().await
}

/// The command map's 考核 panel (a commander: people and areas, bars) and
/// the phone's 我的记录, in a real headless Chromium at a desk and on a
/// phone, with axe-core's checks; skipped without Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_shows_who_served_and_the_phone_shows_a_persons_own_record() -> anyhow::Result<()> {
    use pingji_tests::browser::{self, DESK, PHONE, TestBrowser, accessibility_problems, eval, resize, screenshot, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (mut script, sessions) = scripted(true).await?;
    let token = add_operator(&mut script.command, "zhang.wei", pb::OperatorRole::Commander).await?;
    let origin = format!("http://{}", script.server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&format!("{origin}/")).await?;
    resize(&page, DESK).await?;
    wait_for(&page, "the login form", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(&token).await?.press_key("Enter").await?;
    wait_for(&page, "the command view", "!document.getElementById('command-view').hidden").await?;
    // The script's day (its clock is 2026-03-01), the whole city.
    page.evaluate(
        "document.getElementById('activity-from').value = '2026-03-01'; \
         document.getElementById('activity-to').value = '2026-03-01';",
    )
    .await?;
    // Pressed by the page's own click: the duty and shelter panels above
    // fill in after load and move the button under a pointer (1 run in 3).
    page.evaluate("document.getElementById('activity-show').click()").await?;
    wait_for(&page, "the tables show", "document.querySelectorAll('#activity-result table').length === 2").await?;
    let people: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('#activity-result table:first-of-type tbody th')].map((cell) => cell.textContent)",
    )
    .await?;
    assert_eq!(people, ["a test person a", "b test person b", "c test person c", "d test person d"]);
    let b_row: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('#activity-result table:first-of-type tbody tr')[1].cells].map((cell) => cell.textContent)",
    )
    .await?;
    assert_eq!(&b_row[1..7], ["2", "2", "0", "0", "30", "120"], "{b_row:?}");
    let text: String = eval(&page, "document.getElementById('activity-result').textContent").await?;
    assert!(text.contains("家里有事 ×1") && text.contains("d1-s1-c1-g1") && text.contains("100%"), "{text}");
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core on the map's activity panel: {}", problems.join("\n"));
    // The side column scrolls on a desk: bring the panel to its top.
    let to_panel = "(() => { const side = document.querySelector('.side'); const panel = document.getElementById('activity-panel'); \
                    side.scrollTop = panel.offsetTop - side.offsetTop; })()";
    page.evaluate(to_panel).await?;
    screenshot(&page, &browser::screenshot_folder().join("desk-activity-zh.png")).await?;
    resize(&page, PHONE).await?;
    if let Err(error) = wait_for(&page, "the phone layout", "window.innerWidth === 390").await {
        let width: f64 = eval(&page, "window.innerWidth").await?;
        anyhow::bail!("{error:#}: the page is {width} px wide");
    }
    page.evaluate("document.getElementById('activity-panel').scrollIntoView()").await?;
    screenshot(&page, &browser::screenshot_folder().join("phone-activity-zh.png")).await?;

    // b's phone: 我的记录 shows b's own figures for the last 7 days.
    let b_token = pingji_tests::agent_token(&mut script.command, "b").await?;
    browser.allow_geolocation(&origin).await?;
    let centre = area_box(&mut script.command, "d1-s1-c1-g1").await?.centre();
    let phone = browser.open_phone(&format!("{origin}/field/#t={b_token}&a=b"), centre.0, centre.1).await?;
    wait_for(&phone, "the session opens", "document.getElementById('connection').dataset.state === 'online'").await?;
    phone.find_element("#record-show").await?.click().await?;
    wait_for(&phone, "the record shows", "document.querySelectorAll('#record-figures div').length === 10").await?;
    let figures: Vec<String> =
        eval(&phone, "[...document.querySelectorAll('#record-figures dd')].map((cell) => cell.textContent)").await?;
    assert_eq!(&figures[..5], ["2", "2", "0", "0", "30 秒"], "{figures:?}");
    let problems = accessibility_problems(&phone).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core on the phone's record: {}", problems.join("\n"));
    phone.evaluate("document.getElementById('record-card').scrollIntoView(); window.scrollBy(0, -80)").await?;
    screenshot(&phone, &browser::screenshot_folder().join("phone-record-zh.png")).await?;

    browser.close().await?;
    drop(sessions);
    script.server.shutdown().await
}
