//! The command map in a real headless Chromium against a real dispatcher
//! with the sample city and real field agents: an operator logs in with
//! their token, sees the city, and (a dispatcher) creates an incident by
//! clicking the map; a commander switches a grid to grade I and sees the
//! flat offers, follows an incident's offers and answers in its panel,
//! activates and ends a plan, issues a call-up and watches the roll-call,
//! and triages field reports; a viewer sees coarse positions and no
//! controls; a wrong token gets a clear message; wall mode hides every
//! control. The page has no serious accessibility problems (axe-core).
//! Screenshots of a desk and a phone go to `target/web-screenshots/`.
//!
//! Without Chromium these tests skip with a hint (`apt-get install
//! chromium`), except in CI (`CI=true`), where they fail.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::page::Page;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_tests::auth::{ADMIN_TOKEN, add_operator};
use pingji_tests::browser::{
    self, DESK, PHONE, TestBrowser, accessibility_problems, click_middle, eval, resize, screenshot, screenshot_folder, text,
    wait_for,
};
use pingji_tests::mobilisation::{
    check_in, expect_call_up, expect_offer, expect_outcome, person_with_role, plan_toml, report_from_field,
};
use pingji_tests::sample::{area_box, person, sample_roster};
use pingji_tests::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Areas of the sample city drawn on the map: all 47 but the city itself.
const SAMPLE_AREAS_DRAWN: usize = 46;

async fn server_with_web() -> anyhow::Result<(TestServer, String)> {
    let server = TestServer::start_with_web(|config| config.agents_file = Some(sample_roster())).await?;
    let address = server.web_address().context("the server has a web port")?;
    Ok((server, format!("http://{address}/")))
}

/// How long a person's app may take to hear from the dispatcher.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Types `token` into the login form and sends it.
async fn log_in(page: &Page, token: &str) -> anyhow::Result<()> {
    wait_for(page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(token).await?.press_key("Enter").await?;
    Ok(())
}

async fn wait_for_city(page: &Page) -> anyhow::Result<()> {
    wait_for(
        page,
        "the sample city's areas are drawn",
        &format!("document.querySelectorAll('#map path.area').length === {SAMPLE_AREAS_DRAWN}"),
    )
    .await
}

async fn assert_accessible(page: &Page, what: &str) -> anyhow::Result<()> {
    let problems = accessibility_problems(page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems on {what}:\n{}", problems.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_logs_in_sees_the_city_and_creates_an_incident_by_clicking_the_map() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (server, url) = server_with_web().await?;
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "duty", pb::OperatorRole::Dispatcher).await?;
    // A person on duty with their app open, in the grid the test clicks.
    let grid = area_box(&mut admin, "d1-s1-c1-g2").await?;
    let (lon, lat) = grid.at(0.25, 0.25);
    let mut medic = server.connect_person_at(person("web-medic", "d1-s1-c1-g2", &["first_aid"]), lon, lat).await?;
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;

    log_in(&page, &token).await?;
    wait_for_city(&page).await?;
    wait_for(&page, "the connected person is drawn", "document.querySelectorAll('#map circle.person').length === 1").await?;
    wait_for(&page, "the role shows", "document.getElementById('whoami').dataset.role === 'DISPATCHER'").await?;
    anyhow::ensure!(eval::<bool>(&page, "!document.getElementById('create-panel').hidden").await?, "no create form");
    // The token stays out of the address bar.
    let address: String = eval(&page, "window.location.href").await?;
    anyhow::ensure!(!address.contains("pjo_"), "the token is in the URL: {address}");
    // People available, from the WatchAgents stream, as the API counts them.
    let available = admin
        .list_agents(pb::ListAgentsRequest { status: pb::AgentStatus::Available as i32, ..Default::default() })
        .await?
        .into_inner()
        .agents
        .len();
    anyhow::ensure!(available > 0, "the sample roster has people available");
    wait_for(
        &page,
        "the key figures count the people available",
        &format!("document.querySelector('[data-figure=available] dd')?.textContent === '{available}'"),
    )
    .await?;
    assert_accessible(&page, "the map at a desk").await?;

    // A place outside the map is refused with the typed error's field.
    page.evaluate("document.getElementById('lon').value = '121.9'; document.getElementById('lat').value = '31.9'").await?;
    page.find_element("#create-button").await?.click().await?;
    wait_for(&page, "the refusal shows", "document.getElementById('create-result').dataset.reason === 'INVALID_ARGUMENT'")
        .await?;
    let refusal = text(&page, "#create-result").await?;
    anyhow::ensure!(refusal.contains("location"), "the refusal names the field: {refusal}");

    // The keyboard picks a place too: focus the map, move the cross, Enter.
    page.find_element("#map").await?.focus().await?.press_key("ArrowLeft").await?.press_key("Enter").await?;
    wait_for(&page, "the keyboard picks a place", "document.getElementById('lon').value !== '121.9'").await?;
    anyhow::ensure!(
        eval::<bool>(&page, "document.activeElement.id === 'category'").await?,
        "after picking, the form's first choice has the focus"
    );

    // Click in a grid, choose what is needed, create.
    page.evaluate("document.getElementById('lon').value = ''").await?;
    click_middle(&page, "#map path[data-area-id='d1-s1-c1-g2']").await?;
    wait_for(&page, "the click fills the place", "document.getElementById('lon').value !== ''").await?;
    page.evaluate("document.getElementById('category').value = 'medical'; document.getElementById('priority').value = '1'")
        .await?;
    page.find_element("#skills input[value='first_aid']").await?.click().await?;
    page.find_element("#create-button").await?.click().await?;
    wait_for(&page, "the incident is created", "document.getElementById('create-result').dataset.incidentId").await?;
    let incident_id: String = eval(&page, "document.getElementById('create-result').dataset.incidentId").await?;
    wait_for(
        &page,
        "the new incident is drawn",
        &format!("document.querySelector('#map circle[data-incident-id=\"{incident_id}\"]')"),
    )
    .await?;
    wait_for(&page, "the feed shows it", "document.querySelector('#feed li[data-kind=incident_reported]')").await?;
    wait_for(&page, "the offer to the person shows in the feed", "document.querySelector('#feed li[data-kind=offer_sent]')")
        .await?;
    // The offer to the person as a dashed line; accepted, a solid one and the incident staffed.
    let offer = medic.expect_offer_within(Duration::from_secs(10)).await?;
    assert_eq!(offer.incident_id, incident_id);
    wait_for(
        &page,
        "the offer line shows",
        &format!("document.querySelector('#map line.offer[data-agent-id=\"web-medic\"][data-incident-id=\"{incident_id}\"]')"),
    )
    .await?;
    medic.accept(&offer.offer_id).await?;
    wait_for(
        &page,
        "the incident shows staffed, with the person's line solid",
        &format!(
            "document.querySelector('#map circle[data-incident-id=\"{incident_id}\"]')?.dataset.status === 'STAFFED' && \
             document.querySelector('#map line.assignment[data-agent-id=\"web-medic\"]') && \
             document.querySelector('#map circle.person[data-agent-id=\"web-medic\"]')?.dataset.status === 'BUSY' && \
             !document.querySelector('#map line.offer')"
        ),
    )
    .await?;
    wait_for(
        &page,
        "the person on the task no longer counts as available",
        &format!("document.querySelector('[data-figure=available] dd')?.textContent === '{}'", available - 1),
    )
    .await?;
    wait_for(&page, "the figures count it", "document.querySelector('[data-figure=p1] dd')?.textContent === '1'").await?;
    // Where the click was, as the dispatcher placed it.
    let incident = admin.get_incident(pb::GetIncidentRequest { id: incident_id.clone() }).await?.into_inner();
    assert_eq!(incident.grid_id, "d1-s1-c1-g2", "the incident lies where the map was clicked");
    assert_eq!((incident.category.as_str(), incident.priority), ("medical", 1));
    assert_eq!(incident.required_skills, vec!["first_aid".to_string()]);
    // A street switched to grade II and a grid to grade I: their leaves change colour live.
    for (area_id, mode) in [("d2-s1", pb::Mode::EmergencyIi), ("d1-s1-c1-g1", pb::Mode::EmergencyI)] {
        let request = pb::SetModeRequest { area_id: area_id.to_string(), mode: mode as i32, reason: "drill".to_string() };
        admin.set_mode(request).await.with_context(|| format!("set {area_id} to {mode:?}"))?;
    }
    wait_for(
        &page,
        "the switched areas are coloured by their grades",
        &format!(
            "document.querySelector(\"#map path[data-area-id='d1-s1-c1-g1']\").dataset.mode === '{}' && \
             document.querySelector(\"#map path[data-area-id='d2-s1-c1-g1']\").dataset.mode === '{}' && \
             document.querySelector(\"#map path[data-area-id='d2-s1']\").classList.contains('own-mode')",
            pb::Mode::EmergencyI as i32,
            pb::Mode::EmergencyIi as i32
        ),
    )
    .await?;
    anyhow::ensure!(
        eval::<String>(&page, "document.querySelector(\"#map path[data-area-id='d1-s1-c1-g2']\").dataset.mode").await?
            == (pb::Mode::Normal as i32).to_string(),
        "a grid beside the switched one stays normal"
    );
    screenshot(&page, &screenshot_folder().join("desk-dispatcher-zh.png")).await?;

    // The incident opened from its mark on the map: its details and
    // timeline; closed with feedback, it leaves the map and the list.
    click_middle(&page, &format!("#map circle[data-incident-id='{incident_id}']")).await?;
    wait_for(
        &page,
        "the incident's details show",
        &format!(
            "document.getElementById('incident-detail').dataset.incidentId === '{incident_id}' && \
             !document.getElementById('incident-detail').hidden && \
             document.querySelector('#detail-timeline li[data-kind=assigned]')"
        ),
    )
    .await?;
    assert_accessible(&page, "the map with an incident's details").await?;
    screenshot(&page, &screenshot_folder().join("desk-incident-zh.png")).await?;
    page.find_element("#close-incident").await?.click().await?;
    wait_for(&page, "an empty feedback is refused", "document.getElementById('end-result').classList.contains('failed')").await?;
    // Chinese comes through an input method, not keys: set as it would leave the field.
    page.evaluate("document.getElementById('end-note').value = '已送医'").await?;
    page.find_element("#close-incident").await?.click().await?;
    wait_for(
        &page,
        "the closed incident leaves the map and the list",
        &format!(
            "document.getElementById('end-result').classList.contains('ok') && \
             !document.querySelector('#map circle[data-incident-id=\"{incident_id}\"]') && \
             !document.querySelector('#incident-list button[data-incident-id=\"{incident_id}\"]') && \
             document.querySelector('[data-figure=open] dd')?.textContent === '0'"
        ),
    )
    .await?;
    let closed = admin.get_incident(pb::GetIncidentRequest { id: incident_id.clone() }).await?.into_inner();
    assert_eq!((closed.status, closed.feedback.as_str()), (pb::IncidentStatus::Closed as i32, "已送医"));

    // English, and a phone.
    page.find_element("#language").await?.click().await?;
    wait_for(&page, "the page is in English", "document.documentElement.lang === 'en'").await?;
    anyhow::ensure!(text(&page, "#create-title").await? == "New incident", "the create form is in English");
    resize(&page, PHONE).await?;
    wait_for(&page, "the phone layout", "window.innerWidth === 390").await?;
    assert_accessible(&page, "the map on a phone").await?;
    screenshot(&page, &screenshot_folder().join("phone-dispatcher-en.png")).await?;
    resize(&page, DESK).await?;

    browser.close().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_create_control_and_a_wrong_token_gets_a_clear_message() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (server, url) = server_with_web().await?;
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;
    // A person on duty somewhere not on a round 0.01 degree.
    let (lon, lat) = area_box(&mut admin, "d1-s1-c1-g3").await?.at(0.37, 0.41);
    let _helper = server.connect_person_at(person("web-helper", "d1-s1-c1-g3", &[]), lon, lat).await?;
    let browser = TestBrowser::launch(&chromium).await?;

    let wrong = browser.open(&url).await?;
    log_in(&wrong, &ADMIN_TOKEN.replace("5eed", "bad0")).await?;
    wait_for(&wrong, "the refusal shows", "document.getElementById('login-error').dataset.reason === 'TOKEN_INVALID'").await?;
    let message = text(&wrong, "#login-error").await?;
    anyhow::ensure!(message.contains("令牌无效"), "the message says the token is not valid: {message}");
    anyhow::ensure!(
        eval::<bool>(&wrong, "sessionStorage.length === 0 && document.getElementById('command-view').hidden").await?,
        "a refused token is neither kept nor let in"
    );
    assert_accessible(&wrong, "the login form with its error").await?;
    screenshot(&wrong, &screenshot_folder().join("desk-wrong-token-zh.png")).await?;

    let viewer = browser.open(&url).await?;
    log_in(&viewer, &token).await?;
    wait_for_city(&viewer).await?;
    wait_for(&viewer, "the role shows", "document.getElementById('whoami').dataset.role === 'VIEWER'").await?;
    anyhow::ensure!(eval::<bool>(&viewer, "document.getElementById('create-panel').hidden").await?, "a create form");
    for control in ["#command-panel", "#callup-form", "#mode-form", "#plan-form"] {
        anyhow::ensure!(!shown(&viewer, control).await?, "a viewer sees {control}");
    }
    // The viewer's map has the person where the server puts them for a
    // viewer: to 0.01 degree (about 1 km), not where they are.
    wait_for(&viewer, "the person is drawn", "document.querySelector('#map circle.person[data-agent-id=\"web-helper\"]')")
        .await?;
    let (shown_lon, shown_lat): (String, String) = eval(
        &viewer,
        "(() => { const dot = document.querySelector('#map circle.person[data-agent-id=\"web-helper\"]'); \
         return [dot.dataset.lon, dot.dataset.lat]; })()",
    )
    .await?;
    let shown = (shown_lon.parse::<f64>()?, shown_lat.parse::<f64>()?);
    let coarse = pingji_dispatcher::convert::coarsen(pb::Location::wgs84(lon, lat));
    assert!((shown.0 - coarse.lon).abs() < 1e-6 && (shown.1 - coarse.lat).abs() < 1e-6, "{shown:?} is not {coarse:?}");
    assert!((shown.0 - lon).abs() > 1e-4 || (shown.1 - lat).abs() > 1e-4, "a viewer sees {shown:?}, the precise position");
    // A click on the map picks nothing for a viewer.
    click_middle(&viewer, "#map path[data-area-id='d1-s1-c1-g2']").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    anyhow::ensure!(eval::<String>(&viewer, "document.getElementById('lon').value").await?.is_empty(), "a place was picked");
    // The person's panel, for a viewer too.
    click_middle(&viewer, "#map circle.person[data-agent-id='web-helper']").await?;
    wait_for(&viewer, "the person's panel shows", "document.getElementById('person-facts').dataset.agentId === 'web-helper'")
        .await?;
    screenshot(&viewer, &screenshot_folder().join("desk-viewer-zh.png")).await?;

    browser.close().await?;
    server.shutdown().await
}

/// Sets form fields by id (Chinese comes through an input method, not keys:
/// set as it would leave the field).
async fn fill(page: &Page, fields: &[(&str, &str)]) -> anyhow::Result<()> {
    for (id, value) in fields {
        let script = format!("document.getElementById({}).value = {}", serde_json::to_string(id)?, serde_json::to_string(value)?);
        page.evaluate(script).await.with_context(|| format!("cannot fill #{id}"))?;
    }
    Ok(())
}

/// Presses the button `selector` finds, at once: lists on the page are
/// redrawn as changes arrive, so a button found in one step may be gone by
/// the next.
async fn press(page: &Page, selector: &str) -> anyhow::Result<()> {
    let quoted = serde_json::to_string(selector)?;
    let pressed: bool =
        eval(page, &format!("(() => {{ const found = document.querySelector({quoted}); found?.click(); return !!found; }})()"))
            .await?;
    anyhow::ensure!(pressed, "nothing to press at {selector}");
    Ok(())
}

/// Whether what `selector` finds is laid out on the screen (not hidden by
/// the page or by wall mode).
async fn shown(page: &Page, selector: &str) -> anyhow::Result<bool> {
    let quoted = serde_json::to_string(selector)?;
    eval(
        page,
        &format!(
            "(() => {{ const found = document.querySelector({quoted}); return !!found && found.getClientRects().length > 0; }})()"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commander_switches_a_grid_to_grade_i_runs_a_plan_and_a_call_up_and_triages_reports() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    // Grid staffing checked every second: grade I wants 3 people available in a grid.
    let server = TestServer::start_with_web(|config| {
        config.agents_file = Some(sample_roster());
        config.policy.staffing_check_s = 1;
    })
    .await?;
    let url = format!("http://{}/", server.web_address().context("the server has a web port")?);
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "chief", pb::OperatorRole::Commander).await?;
    admin.import_plans(pb::ImportPlansRequest { plans_toml: vec![plan_toml("flood-web")] }).await?;
    // Three medics in the grid to be switched, a registered member at home
    // in another street, a courier who reports what they see.
    let grid = area_box(&mut admin, "d1-s1-c1-g1").await?;
    let mut medics = Vec::new();
    for (index, (east, north)) in [(0.3, 0.3), (0.6, 0.4), (0.4, 0.7)].into_iter().enumerate() {
        let (lon, lat) = grid.at(east, north);
        let spec = person(&format!("web-medic-{index}"), "d1-s1-c1-g1", &["first_aid"]);
        medics.push(server.connect_person_at(spec, lon, lat).await?);
    }
    let (lon, lat) = area_box(&mut admin, "d2-s1-c1-g1").await?.at(0.5, 0.5);
    let mut reserve =
        server.connect_person_at(person_with_role("web-reserve", pb::Role::RegisteredMember, "d2-s1-c1-g1"), lon, lat).await?;
    let courier_at = area_box(&mut admin, "d1-s1-c2-g1").await?.at(0.5, 0.5);
    let mut courier = server
        .connect_person_at(person_with_role("web-courier", pb::Role::NewEmployment, "d1-s1-c2-g1"), courier_at.0, courier_at.1)
        .await?;
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, &token).await?;
    wait_for_city(&page).await?;
    wait_for(&page, "the role shows", "document.getElementById('whoami').dataset.role === 'COMMANDER'").await?;
    anyhow::ensure!(shown(&page, "#command-panel").await? && shown(&page, "#callup-form").await?, "no commander controls");
    wait_for(
        &page,
        "the service centres and their circles are drawn",
        "document.querySelector('#map .centre-group circle.reach')",
    )
    .await?;
    let coverage = admin.coverage(pb::CoverageRequest::default()).await?.into_inner();
    let (within, grids) = coverage
        .communities
        .iter()
        .fold((0, 0), |(within, grids), community| (within + community.grids_within_15_min, grids + community.grids));
    anyhow::ensure!(grids > 0, "the sample city has grids");
    let share = (100.0 * f64::from(within) / f64::from(grids)).round();
    wait_for(
        &page,
        "the share of grids within the 15-minute circle is the Coverage answer's",
        &format!("document.querySelector('[data-figure=circle] dd')?.textContent === '{share}%'"),
    )
    .await?;

    // Grade I from the page: the grid turns red.
    fill(
        &page,
        &[
            ("mode-area", "d1-s1-c1-g1"),
            ("mode-mode", &(pb::Mode::EmergencyI as i32).to_string()),
            ("mode-reason", "暴雨红色预警"),
        ],
    )
    .await?;
    page.find_element("#mode-button").await?.click().await?;
    wait_for(
        &page,
        "the grid is drawn in grade I",
        &format!(
            "document.getElementById('mode-result').classList.contains('ok') && \
             document.querySelector(\"#map path[data-area-id='d1-s1-c1-g1']\").dataset.mode === '{}' && \
             document.querySelector(\"#map path[data-area-id='d1-s1-c1-g1']\").getAttribute('fill') === '#d93025'",
            pb::Mode::EmergencyI as i32
        ),
    )
    .await?;
    let switched = admin.list_areas(pb::ListAreasRequest::default()).await?.into_inner();
    let area = switched.areas.iter().find(|area| area.id == "d1-s1-c1-g1").context("the grid is listed")?;
    assert_eq!(area.mode, pb::Mode::EmergencyI as i32, "the page switched the grid");

    // An incident there: flat offers to several people at once, each a line
    // with its countdown, and in the incident's panel.
    wait_for(&page, "the medics are drawn", "document.querySelectorAll('#map circle.person').length >= 5").await?;
    let (lon, lat) = grid.centre();
    let incident = admin
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let id = incident.id.clone();
    wait_for(
        &page,
        "flat offers show as lines with countdowns",
        &format!(
            "document.querySelectorAll('#map line.offer[data-incident-id=\"{id}\"]').length >= 2 && \
             /^\\d+s$/.test(document.querySelector('#map text.countdown')?.textContent ?? '')"
        ),
    )
    .await?;
    press(&page, &format!("#incident-list button[data-incident-id='{id}']")).await?;
    wait_for(
        &page,
        "the panel lists the flat offers",
        "document.querySelectorAll('#detail-offers li[data-outcome=open]').length >= 2 && document.querySelector('#detail-offers .tag')",
    )
    .await?;
    let offer = expect_offer(&mut medics[0], PROMPTLY).await?;
    assert_eq!(offer.incident_id, id);
    medics[0].accept(&offer.offer_id).await?;
    wait_for(
        &page,
        "the panel shows who accepted, the others' offers withdrawn, the timeline, the way left",
        "document.querySelector('#detail-offers li[data-agent-id=\"web-medic-0\"][data-outcome=accepted] .route[data-left]') && \
         document.querySelector('#detail-offers li[data-outcome=withdrawn]') && \
         !document.querySelector('#detail-offers li[data-outcome=open]') && \
         document.querySelector('#detail-timeline li[data-kind=offer_sent]') && \
         document.querySelector('#detail-timeline li[data-kind=assigned]')",
    )
    .await?;
    // On the way: the distance left shrinks with the person's live
    // position, and the bar moves; arrived, the panel and the figure say so.
    let left_before: f64 =
        eval::<String>(&page, "document.querySelector('#detail-offers .route').dataset.left").await?.parse()?;
    let (medic_lon, medic_lat) = grid.at(0.3, 0.3);
    medics[0].send_location((medic_lon + lon) / 2.0, (medic_lat + lat) / 2.0).await?;
    wait_for(
        &page,
        "halfway, the distance left shrinks and the bar moves",
        &format!(
            "Number(document.querySelector('#detail-offers .route')?.dataset.left) < {} && \
             document.querySelector('#detail-offers .route progress')?.value > 0.3",
            left_before * 0.7
        ),
    )
    .await?;
    medics[0].send(Outgoing::Arrived(pb::Arrived { incident_id: id.clone() })).await?;
    wait_for(
        &page,
        "arrived, in the panel and the figures",
        "document.querySelector('#detail-offers .route')?.dataset.left === '0' && \
         document.querySelector('[data-figure=arrive] dd').textContent !== '— / —'",
    )
    .await?;
    // Two of three left available in a grade I grid: short of people.
    wait_for(
        &page,
        "the grid shows short of people",
        "document.querySelector('#short-grids li[data-grid-id=\"d1-s1-c1-g1\"]') && \
         document.querySelector(\"#map path[data-area-id='d1-s1-c1-g1']\").classList.contains('short-staffed')",
    )
    .await?;
    // The person's panel: role, skills, status, task.
    click_middle(&page, "#map circle.person[data-agent-id='web-medic-0']").await?;
    wait_for(&page, "the person's panel shows", "document.getElementById('person-facts').dataset.agentId === 'web-medic-0'")
        .await?;
    // Busy with the task once the people stream (every 2 s) brings the change.
    wait_for(
        &page,
        "the person's panel shows role, skills, status and task",
        &format!("['志愿者', '急救', '执行任务', '{id}'].every((word) => document.getElementById('person-facts').textContent.includes(word))"),
    )
    .await?;
    wait_for(
        &page,
        "the time to accept is measured",
        "document.querySelector('[data-figure=accept] dd').textContent.includes('s')",
    )
    .await?;
    assert_accessible(&page, "the commander's map with an incident's panel").await?;
    screenshot(&page, &screenshot_folder().join("desk-commander-zh.png")).await?;

    // A plan activated on a street from the page, then ended.
    fill(&page, &[("plan-plan", "flood-web"), ("plan-area", "d2-s1")]).await?;
    page.find_element("#plan-button").await?.click().await?;
    wait_for(&page, "a plan without a reason is refused", "document.getElementById('plan-result').classList.contains('failed')")
        .await?;
    fill(&page, &[("plan-reason", "暴雨橙色预警")]).await?;
    page.find_element("#plan-button").await?.click().await?;
    wait_for(&page, "the plan's activation is answered", "!document.getElementById('plan-result').classList.contains('failed')")
        .await?;
    wait_for(&page, "the plan's activation is answered", "document.getElementById('plan-result').textContent !== ''").await?;
    let answer = text(&page, "#plan-result").await?;
    anyhow::ensure!(eval::<bool>(&page, "document.getElementById('plan-result').classList.contains('ok')").await?, "{answer}");
    wait_for(
        &page,
        "the activation is listed and counted",
        "document.querySelector('#activations li[data-activation-id]') && document.querySelector('[data-figure=plans] dd').textContent === '1'",
    )
    .await?;
    let listed = admin.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    let activation = listed.activations.iter().find(|found| found.plan_id == "flood-web").context("the plan is active")?;
    assert_eq!((activation.area_id.as_str(), activation.ended_at_ms), ("d2-s1", 0));
    expect_call_up(&mut reserve, PROMPTLY).await.context("the plan calls the reserve up")?;
    fill(&page, &[("plan-reason", "预警解除")]).await?;
    press(&page, &format!("#activations li[data-activation-id='{}'] button", activation.id)).await?;
    wait_for(&page, "the plan has ended", "document.querySelector('#activations li.empty')").await?;
    let listed = admin.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    assert!(listed.activations.iter().all(|found| found.ended_at_ms > 0), "{:?}", listed.activations);

    // A call-up from the page; the roll-call moves when the reserve checks in.
    fill(&page, &[("callup-area", "d2-s1"), ("callup-reason", "防汛备勤")]).await?;
    page.find_element(format!("#callup-roles input[value='{}']", pb::Role::RegisteredMember as i32)).await?.click().await?;
    page.find_element("#callup-button").await?.click().await?;
    wait_for(&page, "the call-up is issued", "document.getElementById('callup-result').dataset.callupId").await?;
    let callup_id: String = eval(&page, "document.getElementById('callup-result').dataset.callupId").await?;
    let entry = format!("#rollcall li[data-callup-id='{callup_id}']");
    wait_for(
        &page,
        "the roll-call shows the reserve not checked in yet",
        &format!(
            "document.querySelector(\"{entry}\")?.dataset.checkedIn === '0' && \
             document.querySelector(\"{entry} li[data-agent-id=web-reserve]\")?.dataset.checkedIn === 'false'"
        ),
    )
    .await?;
    let call_up = expect_call_up(&mut reserve, PROMPTLY).await?;
    assert_eq!(call_up.callup_id, callup_id);
    check_in(&reserve, &callup_id).await?;
    wait_for(
        &page,
        "the roll-call moves",
        &format!(
            "document.querySelector(\"{entry}\")?.dataset.checkedIn === '1' && \
             document.querySelector(\"{entry} li[data-agent-id=web-reserve]\")?.dataset.checkedIn === 'true' && \
             document.querySelector('[data-figure=rollcall] dd').textContent.startsWith('1 / ')"
        ),
    )
    .await?;

    // Field reports triaged from the page: one accepted, one rejected with
    // feedback for the reporter.
    let accepted = report_from_field(&mut courier, courier_at, "flooding", "地下车库进水", PROMPTLY).await?;
    wait_for(
        &page,
        "the report is listed",
        &format!("document.querySelector('#incident-list button[data-incident-id=\"{accepted}\"]')"),
    )
    .await?;
    press(&page, &format!("#incident-list button[data-incident-id='{accepted}']")).await?;
    wait_for(
        &page,
        "the triage form shows",
        "!document.getElementById('triage-form').hidden && document.getElementById('end-form').hidden",
    )
    .await?;
    assert_accessible(&page, "the triage form").await?;
    fill(&page, &[("triage-priority", "2")]).await?;
    page.find_element("#triage-accept").await?.click().await?;
    wait_for(&page, "the report is accepted", "document.getElementById('end-result').classList.contains('ok')").await?;
    expect_outcome(&mut courier, PROMPTLY, &accepted, "accepted").await?;
    let read = admin.get_incident(pb::GetIncidentRequest { id: accepted.clone() }).await?.into_inner();
    assert_ne!(read.status, pb::IncidentStatus::Reported as i32, "accepted from the page: {read:?}");
    assert_eq!(read.priority, 2);

    let rejected = report_from_field(&mut courier, courier_at, "flooding", "同一处积水", PROMPTLY).await?;
    wait_for(
        &page,
        "the second report is listed",
        &format!("document.querySelector('#incident-list button[data-incident-id=\"{rejected}\"]')"),
    )
    .await?;
    press(&page, &format!("#incident-list button[data-incident-id='{rejected}']")).await?;
    wait_for(&page, "the triage form shows", "!document.getElementById('triage-form').hidden").await?;
    page.find_element("#triage-reject").await?.click().await?;
    wait_for(
        &page,
        "a rejection without a reason is refused",
        "document.getElementById('end-result').classList.contains('failed')",
    )
    .await?;
    fill(&page, &[("triage-reason", "重复上报，已在处置")]).await?;
    page.find_element("#triage-reject").await?.click().await?;
    wait_for(
        &page,
        "the rejected report leaves the list",
        &format!(
            "document.getElementById('end-result').classList.contains('ok') && \
             !document.querySelector('#incident-list button[data-incident-id=\"{rejected}\"]')"
        ),
    )
    .await?;
    let outcome = expect_outcome(&mut courier, PROMPTLY, &rejected, "rejected").await?;
    assert_eq!(outcome.reason, "重复上报，已在处置", "the reporter hears why");

    // A third report of the same flooding merged into the accepted one.
    let merged = report_from_field(&mut courier, courier_at, "flooding", "车库入口也在进水", PROMPTLY).await?;
    wait_for(
        &page,
        "the third report is listed",
        &format!("document.querySelector('#incident-list button[data-incident-id=\"{merged}\"]')"),
    )
    .await?;
    press(&page, &format!("#incident-list button[data-incident-id='{merged}']")).await?;
    wait_for(
        &page,
        "the merge choices hold the accepted report",
        &format!("!document.getElementById('triage-form').hidden && document.querySelector('#triage-merge-into option[value=\"{accepted}\"]')"),
    )
    .await?;
    fill(&page, &[("triage-merge-into", &accepted)]).await?;
    page.find_element("#triage-merge").await?.click().await?;
    wait_for(&page, "the report is merged", "document.getElementById('end-result').classList.contains('ok')").await?;
    let outcome = expect_outcome(&mut courier, PROMPTLY, &merged, "merged").await?;
    assert_eq!(outcome.incident_id, accepted, "merged into the accepted report");

    // The feed filtered to one incident shows only its events.
    fill(&page, &[("filter-incident", &id)]).await?;
    page.evaluate("document.getElementById('filter-incident').dispatchEvent(new Event('input'))").await?;
    wait_for(
        &page,
        "the feed shows the incident's events only",
        &format!(
            "document.querySelectorAll('#feed li').length > 0 && \
             [...document.querySelectorAll('#feed li')].every((item) => item.textContent.includes('{id}'))"
        ),
    )
    .await?;
    fill(&page, &[("filter-incident", "")]).await?;
    page.evaluate("document.getElementById('filter-incident').dispatchEvent(new Event('input'))").await?;
    // By area and kind: the offers made in the street of the grade I grid.
    fill(&page, &[("filter-area", "d1-s1"), ("filter-kind", "offer_sent")]).await?;
    page.evaluate("document.getElementById('filter-kind').dispatchEvent(new Event('input'))").await?;
    wait_for(
        &page,
        "the feed shows the street's offers only",
        &format!(
            "[...document.querySelectorAll('#feed li')].some((item) => item.textContent.includes('{id}')) && \
             [...document.querySelectorAll('#feed li')].every((item) => item.dataset.kind === 'offer_sent')"
        ),
    )
    .await?;
    fill(&page, &[("filter-area", "d2"), ("filter-kind", "offer_sent")]).await?;
    page.evaluate("document.getElementById('filter-area').dispatchEvent(new Event('input'))").await?;
    wait_for(
        &page,
        "the other district's feed has none of the grid's offers",
        &format!("![...document.querySelectorAll('#feed li')].some((item) => item.textContent.includes('{id}'))"),
    )
    .await?;
    fill(&page, &[("filter-area", ""), ("filter-kind", "")]).await?;
    page.evaluate("document.getElementById('filter-area').dispatchEvent(new Event('input'))").await?;

    // Wall mode by its key: no controls, the figures and the map stay.
    page.find_element("#map").await?.focus().await?.press_key("w").await?;
    wait_for(&page, "wall mode", "document.body.classList.contains('wall') && window.location.hash === '#wall'").await?;
    for control in
        ["#command-panel", "#callup-form", "#create-panel", "#zoom-in", "#wall-button", "#logout", "#language", ".filters"]
    {
        anyhow::ensure!(!shown(&page, control).await?, "wall mode shows {control}");
    }
    anyhow::ensure!(shown(&page, "#figures").await? && shown(&page, "#map").await?, "wall mode shows the map and the figures");
    assert_accessible(&page, "wall mode").await?;
    screenshot(&page, &screenshot_folder().join("desk-wall-zh.png")).await?;
    page.find_element("#map").await?.press_key("Escape").await?;
    wait_for(&page, "wall mode ends", "!document.body.classList.contains('wall') && window.location.hash === ''").await?;
    // The phone, in English.
    page.find_element("#language").await?.click().await?;
    resize(&page, PHONE).await?;
    wait_for(&page, "the phone layout", "window.innerWidth === 390 && document.documentElement.lang === 'en'").await?;
    assert_accessible(&page, "the commander's map on a phone").await?;
    screenshot(&page, &screenshot_folder().join("phone-commander-en.png")).await?;

    // A link to the wall (the fragment carries no secret) opens in wall mode after login.
    let wall = browser.open(&format!("{url}#wall")).await?;
    log_in(&wall, &token).await?;
    wait_for_city(&wall).await?;
    wait_for(&wall, "the wall link opens wall mode", "document.body.classList.contains('wall')").await?;
    anyhow::ensure!(!shown(&wall, "#mode-form").await?, "the wall shows a control");

    browser.close().await?;
    server.shutdown().await
}

/// People above the page's cluster threshold (300 in view).
const CROWD: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_is_drawn_as_clusters_at_city_zoom_and_as_people_zoomed_in() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (server, url) = server_with_web().await?;
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;
    // A crowd spread over the city on a lattice, each a real session.
    let city = area_box(&mut admin, "city").await?;
    let side = (CROWD as f64).sqrt().ceil() as usize;
    let spot = |index: usize| city.at((0.5 + (index % side) as f64) / side as f64, (0.5 + (index / side) as f64) / side as f64);
    let specs: Vec<pb::AgentSpec> = (0..CROWD).map(|index| person(&format!("crowd-{index:03}"), "d1-s1-c1-g1", &[])).collect();
    let imported = admin.import_agents(pb::ImportAgentsRequest { agents: specs }).await?.into_inner();
    anyhow::ensure!(imported.tokens.len() == CROWD, "a token per person: {}", imported.tokens.len());
    let mut agents = server.agents().await?;
    let mut crowd = Vec::new();
    for (index, issued) in imported.tokens.iter().enumerate() {
        let session = pingji_tests::AgentSession::open(&mut agents, &issued.subject, &issued.token).await?;
        let (lon, lat) = spot(index);
        session.send_location(lon, lat).await?;
        crowd.push(session);
    }
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, &token).await?;
    wait_for_city(&page).await?;
    wait_for(
        &page,
        "the whole crowd is drawn as clusters, not one node each",
        &format!(
            "document.getElementById('map').dataset.people === '{CROWD}' && \
             document.querySelectorAll('#map circle.person').length === 0 && \
             [...document.querySelectorAll('#map g.cluster')].reduce((sum, cluster) => sum + Number(cluster.dataset.count), 0) === {CROWD}"
        ),
    )
    .await?;
    let clusters: usize = eval(&page, "document.querySelectorAll('#map g.cluster').length").await?;
    anyhow::ensure!(clusters < CROWD / 2, "{clusters} clusters for {CROWD} people");
    assert_accessible(&page, "the map with clusters").await?;
    screenshot(&page, &screenshot_folder().join("desk-clusters-zh.png")).await?;
    // Zoomed in (keyboard), fewer people are in view: each is a dot again.
    let map = page.find_element("#map").await?;
    map.focus().await?;
    for _ in 0..4 {
        map.press_key("+").await?;
    }
    wait_for(
        &page,
        "zoomed in, people are dots",
        "Number(document.getElementById('map').dataset.zoom) > 4 && document.querySelectorAll('#map circle.person').length > 0 && \
         !document.querySelector('#map g.cluster')",
    )
    .await?;
    map.press_key("0").await?;
    wait_for(&page, "back to the whole city, clusters again", "document.querySelector('#map g.cluster')").await?;

    drop(crowd);
    browser.close().await?;
    server.shutdown().await
}

/// A 1×1 PNG, the tile a stand-in tile server answers with.
const TILE_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A stand-in for a city's tile server on a free port: answers every GET
/// with [`TILE_PNG`] and hands each request's head to the test.
async fn tile_server() -> anyhow::Result<(SocketAddr, tokio::sync::mpsc::Receiver<String>, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (heads, received) = tokio::sync::mpsc::channel(256);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    TILE_PNG.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(TILE_PNG).await;
                let _ = heads.try_send(String::from_utf8_lossy(&head).to_ascii_lowercase());
            });
        }
    });
    Ok((address, received, task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_tile_server_is_drawn_under_the_areas_and_only_its_origin_is_allowed() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (tiles, mut requests, tile_task) = tile_server().await?;
    let template = format!("http://{tiles}/{{z}}/{{x}}/{{y}}.png");
    let server = TestServer::start_with_web(|config| config.web_tiles = Some(template.clone())).await?;
    let address = server.web_address().context("the server has a web port")?;
    let (head, body) = http(address, "GET", "/").await?;
    assert!(head.contains(&format!("img-src 'self' data: http://{tiles}; connect-src 'self'")), "{head}");
    assert!(body.contains(&format!("<meta name=\"pingji-tiles\" content=\"{template}\">")), "{body}");
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&format!("http://{address}/")).await?;
    log_in(&page, &token).await?;
    wait_for_city(&page).await?;
    wait_for(
        &page,
        "the tiles are drawn under the areas",
        &format!("document.querySelector('#map g.tiles image')?.getAttribute('href')?.startsWith('http://{tiles}/')"),
    )
    .await?;
    let head = tokio::time::timeout(Duration::from_secs(20), requests.recv()).await?.context("the tile server is asked")?;
    assert!(head.starts_with("get /") && head.contains(".png"), "{head}");
    assert!(!head.contains("authorization") && !head.contains("referer"), "a tile request carries no token and no page: {head}");
    screenshot(&page, &screenshot_folder().join("desk-tiles-zh.png")).await?;

    browser.close().await?;
    tile_task.abort();
    server.shutdown().await
}

/// One plain HTTP/1.1 request; the head and body of the answer.
async fn http(address: SocketAddr, method: &str, path: &str) -> anyhow::Result<(String, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").context("no end of the answer's head")?;
    Ok((head.to_ascii_lowercase(), body.to_string()))
}

#[tokio::test]
async fn the_web_port_serves_the_embedded_page_with_a_strict_policy_and_nothing_else() -> anyhow::Result<()> {
    let server = TestServer::start_with_web(|_| {}).await?;
    let address = server.web_address().context("the server has a web port")?;
    let (head, body) = http(address, "GET", "/").await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(body.contains("/app.js"), "{body}");
    for (path, content_type) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let (head, _) = http(address, "GET", path).await?;
        assert!(head.starts_with("http/1.1 200") && head.contains(content_type), "{path}: {head}");
    }
    let (head, _) = http(address, "GET", "/../Cargo.toml").await?;
    assert!(head.starts_with("http/1.1 404") || head.starts_with("http/1.1 400"), "{head}");
    let (head, _) = http(address, "DELETE", "/").await?;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    // No CORS: another origin's page gets no permission to call.
    let (head, _) = http(address, "OPTIONS", "/pingji.v1.CommandService/WhoAmI").await?;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    server.shutdown().await
}

/// Issue #18: an incident's panel shows its whole timeline, also when its
/// first events are older than the events the page reads when it opens
/// (the last 2,000): the panel reads them from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_panel_reads_the_whole_timeline_from_before_the_page_opened() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (server, url) = server_with_web().await?;
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "duty", pb::OperatorRole::Dispatcher).await?;
    let at = area_box(&mut admin, "d1-s1-c1-g2").await?.at(0.5, 0.5);
    let request = |category: &str| pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(at.0, at.1)),
        category: category.into(),
        priority: 3,
        headcount: 1,
        ..Default::default()
    };
    let early = admin.create_incident(request("elder_care")).await?.into_inner();
    // Over 2,000 events after it: 1,100 incidents reported and cancelled.
    let mut busy = tokio::task::JoinSet::new();
    for worker in 0..10 {
        let mut client = server.command().await?;
        let create = request("noise");
        busy.spawn(async move {
            for n in 0..110 {
                let id = client.create_incident(create.clone()).await?.into_inner().id;
                let reason = format!("worker {worker}, number {n}: a test");
                client.cancel_incident(pb::CancelIncidentRequest { id, reason }).await?;
            }
            anyhow::Ok(())
        });
    }
    for done in busy.join_all().await {
        done?;
    }
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, &token).await?;
    wait_for_city(&page).await?;
    let button = format!("#incident-list button[data-incident-id='{}']", early.id);
    wait_for(&page, "the early incident is listed", &format!("document.querySelector({})", serde_json::to_string(&button)?))
        .await?;
    press(&page, &button).await?;
    wait_for(
        &page,
        "the panel shows the incident's report, read from the journal",
        "document.querySelector('#detail-timeline li[data-kind=incident_reported]') && \
         !document.querySelector('#detail-timeline li.empty')",
    )
    .await?;
    server.shutdown().await
}

/// Issue #19: a dispatcher messages a person from the map; the person
/// (a real session) reads it and replies; the map shows the read receipt
/// and the reply. A viewer sees the message listed, with no form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_messages_a_person_from_the_map_and_sees_the_read_receipt_and_the_reply() -> anyhow::Result<()> {
    use pingji_proto::v1::dispatch_message::Body as Incoming;
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let (server, url) = server_with_web().await?;
    let mut admin = server.command().await?;
    let token = add_operator(&mut admin, "duty", pb::OperatorRole::Dispatcher).await?;
    let viewer = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;
    let (lon, lat) = area_box(&mut admin, "d1-s1-c1-g2").await?.at(0.3, 0.3);
    let mut ann = server.connect_person_at(person("msg-ann", "d1-s1-c1-g2", &[]), lon, lat).await?;
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, &token).await?;
    wait_for_city(&page).await?;

    // Nothing to send to: refused on the page, nothing sent.
    press(&page, "#message-button").await?;
    wait_for(&page, "the empty audience is refused", "document.getElementById('message-result').classList.contains('failed')")
        .await?;
    fill(&page, &[("message-to", "msg-ann"), ("message-text", "请在原地待命")]).await?;
    press(&page, "#message-button").await?;
    wait_for(&page, "the message is sent", "document.getElementById('message-result').dataset.messageId").await?;
    let message_id: String = eval(&page, "document.getElementById('message-result').dataset.messageId").await?;

    let message = loop {
        if let Incoming::Message(message) = ann.next_message_within(PROMPTLY).await? {
            break message;
        }
    };
    assert_eq!((message.id.as_str(), message.text.as_str()), (message_id.as_str(), "请在原地待命"));
    ann.send(Outgoing::Read(pb::MessageReadReceipt { message_id: message_id.clone() })).await?;
    ann.send(Outgoing::Reply(pb::MessageReply { message_id: message_id.clone(), text: "收到，待命中".into() })).await?;
    let item = format!("#messages li[data-message-id='{message_id}']");
    wait_for(
        &page,
        "the read receipt and the reply show",
        &format!(
            "(() => {{ const item = document.querySelector({}); return item && item.dataset.read === '1' && \
             item.dataset.replies === '1' && item.textContent.includes('收到，待命中'); }})()",
            serde_json::to_string(&item)?
        ),
    )
    .await?;
    screenshot(&page, &screenshot_folder().join("desk-messages-zh.png")).await?;
    assert_accessible(&page, "the map with a message").await?;

    // A viewer sees the message listed (its text masked) and no form.
    let watching = browser.open(&url).await?;
    log_in(&watching, &viewer).await?;
    wait_for_city(&watching).await?;
    wait_for(&watching, "the message is listed", &format!("document.querySelector({})", serde_json::to_string(&item)?)).await?;
    anyhow::ensure!(!shown(&watching, "#message-form").await?, "a viewer sees the message form");
    let listed: String = eval(&watching, "document.getElementById('messages').textContent").await?;
    anyhow::ensure!(!listed.contains("请在原地待命"), "a viewer reads the text: {listed}");
    server.shutdown().await
}
