//! The command map in a real headless Chromium against a real dispatcher
//! with the sample city: an operator logs in with their token, sees the
//! city, and (a dispatcher) creates an incident by clicking the map; a
//! viewer sees no create control; a wrong token gets a clear message. The
//! page has no serious accessibility problems (axe-core). Screenshots of a
//! desk and a phone go to `target/web-screenshots/`.
//!
//! Without Chromium these tests skip with a hint (`apt-get install
//! chromium`), except in CI (`CI=true`), where they fail.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::page::Page;
use pingji_proto::v1 as pb;
use pingji_tests::auth::{ADMIN_TOKEN, add_operator};
use pingji_tests::browser::{
    self, DESK, PHONE, TestBrowser, accessibility_problems, click_middle, eval, resize, screenshot, screenshot_folder, text,
    wait_for,
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
    screenshot(&viewer, &screenshot_folder().join("desk-viewer-zh.png")).await?;

    browser.close().await?;
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
