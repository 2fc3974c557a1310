//! The command map's photos, sign-in QR codes and countdowns, in a real
//! headless Chromium against a real dispatcher (issues #18 and #19): a
//! person's field report and completion photos show in the incident's
//! panel for a dispatcher, open large on click or Enter, and are absent for
//! a viewer; an admin shows a person's sign-in link as a QR code, a viewer
//! and a dispatcher get no such button; offers' countdowns follow the
//! dispatcher's clock when it runs ten times fast, as in the demo.
//! Screenshots go to `target/web-screenshots/`.

use std::time::Duration;

use anyhow::Context;
use chromiumoxide::page::Page;
use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_tests::auth::{ADMIN_TOKEN, add_operator};
use pingji_tests::browser::{self, TestBrowser, accessibility_problems, eval, screenshot, screenshot_folder, wait_for};
use pingji_tests::sample::{area_box, person, sample_roster};
use pingji_tests::server::TestServer;
use pingji_tests::{Commands, agent_token, pb, wait_until};

const GRID: &str = "d1-s1-c1-g1";
const PROMPTLY: Duration = Duration::from_secs(20);
/// A real PNG the browser can draw: the phone app's icon.
const PHOTO: &[u8] = include_bytes!("../../../dispatcher/web/src/field/icon-512.png");

async fn log_in(page: &Page, token: &str) -> anyhow::Result<()> {
    wait_for(page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(token).await?.press_key("Enter").await?;
    wait_for(
        page,
        "the map shows",
        "!document.getElementById('command-view').hidden && document.getElementById('whoami').dataset.role",
    )
    .await
}

/// Clicks what `selector` finds at once (lists are redrawn as changes arrive).
async fn press(page: &Page, selector: &str) -> anyhow::Result<()> {
    let quoted = serde_json::to_string(selector)?;
    let pressed: bool =
        eval(page, &format!("(() => {{ const found = document.querySelector({quoted}); found?.click(); return !!found; }})()"))
            .await?;
    anyhow::ensure!(pressed, "nothing to press at {selector}");
    Ok(())
}

async fn assert_accessible(page: &Page, what: &str) -> anyhow::Result<()> {
    let problems = accessibility_problems(page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems on {what}:\n{}", problems.join("\n"));
    Ok(())
}

/// `id` on the roster in [`GRID`], signed in on the browser API where `at`.
/// The session lasts while the stream returned is kept.
async fn person_on_the_phone(
    server: &TestServer,
    admin: &mut Commands,
    id: &str,
    at: (f64, f64),
) -> anyhow::Result<(FieldClient, tonic::codec::Streaming<pb::DispatchMessage>)> {
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, GRID, &["first_aid"])) }).await?;
    let token = agent_token(admin, id).await?;
    let client = FieldClient::new(server.channel().await?, AgentCredentials::new(id, &token).map_err(anyhow::Error::msg)?);
    let (_, stream) = client.listen().await?;
    client.report_location(at.0, at.1).await?;
    wait_until(PROMPTLY, &format!("{id} is located"), async || {
        Ok(admin.get_agent(pb::GetAgentRequest { id: id.to_string() }).await?.into_inner().location.is_some())
    })
    .await?;
    Ok((client, stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_show_on_the_map_for_a_dispatcher_and_not_for_a_viewer() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let photos = tempfile::tempdir()?;
    let photos_dir = photos.path().to_path_buf();
    let server = TestServer::start_with_web(move |config| {
        config.agents_file = Some(sample_roster());
        config.photos_dir = Some(photos_dir);
    })
    .await?;
    let url = format!("http://{}/", server.web_address().context("a web port")?);
    let mut admin = server.command().await?;
    let at = area_box(&mut admin, GRID).await?.centre();
    let (phone, _session) = person_on_the_phone(&server, &mut admin, "snapper", at).await?;
    // A field report (随手拍) with a photo, as the phone app sends it.
    let uploaded = phone.upload_photo(PHOTO.to_vec()).await?;
    phone.submit_field_report(at, "flood", "water over the road", std::slice::from_ref(&uploaded.photo_ref)).await?;
    let mut report = None;
    wait_until(PROMPTLY, "the report is waiting for triage", async || {
        let open = admin.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?;
        report = open.into_inner().incidents.into_iter().find(|incident| incident.photo_refs.contains(&uploaded.photo_ref));
        Ok(report.is_some())
    })
    .await?;
    let report = report.context("the report")?;
    let dispatcher = add_operator(&mut admin, "desk", pb::OperatorRole::Dispatcher).await?;
    let viewer = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let desk = browser.open(&url).await?;
    log_in(&desk, &dispatcher).await?;
    let in_list = format!("#incident-list button[data-incident-id='{}']", report.id);
    wait_for(&desk, "the report is listed", &format!("document.querySelector({})", serde_json::to_string(&in_list)?)).await?;
    press(&desk, &in_list).await?;
    let thumbnail = format!("#detail-facts button.photo[data-photo-ref='{}']", uploaded.photo_ref);
    let quoted = serde_json::to_string(&thumbnail)?;
    wait_for(
        &desk,
        "the report's photo shows small in the triage panel",
        &format!(
            "document.querySelector({quoted})?.dataset.state === 'shown' && document.querySelector({quoted} + ' img').naturalWidth > 0"
        ),
    )
    .await?;
    anyhow::ensure!(
        eval::<bool>(&desk, "!document.getElementById('triage-form').hidden").await?,
        "the triage form shows beside the photo"
    );
    screenshot(&desk, &screenshot_folder().join("desk-report-photo.png")).await?;
    assert_accessible(&desk, "the report's panel with its photo").await?;
    // Enter on the thumbnail opens it large; Escape closes it.
    desk.find_element(&thumbnail).await?.focus().await?.press_key("Enter").await?;
    wait_for(
        &desk,
        "the photo opens large",
        "document.getElementById('photo-dialog').open && document.getElementById('photo-large').naturalWidth === 512",
    )
    .await?;
    screenshot(&desk, &screenshot_folder().join("desk-photo-large.png")).await?;
    desk.find_element("#photo-close").await?.click().await?;
    wait_for(&desk, "the photo closes", "!document.getElementById('photo-dialog').open").await?;

    // The viewer sees the report, but no photo, and never asks for one.
    let wall = browser.open(&url).await?;
    log_in(&wall, &viewer).await?;
    wait_for(
        &wall,
        "the report is listed for the viewer",
        &format!("document.querySelector({})", serde_json::to_string(&in_list)?),
    )
    .await?;
    press(&wall, &in_list).await?;
    wait_for(
        &wall,
        "the report's panel shows",
        &format!("document.getElementById('incident-detail').dataset.incidentId === '{}'", report.id),
    )
    .await?;
    anyhow::ensure!(
        eval::<bool>(&wall, "document.querySelectorAll('button.photo, #detail-facts .photos').length === 0").await?,
        "a viewer is shown no photos"
    );
    screenshot(&wall, &screenshot_folder().join("wall-report-no-photo.png")).await?;

    // Accepted and staffed, the person completes with another photo, which
    // closes the incident: off the map, its panel stays open with the
    // completion's photo in its facts and its timeline.
    admin
        .triage_report(pb::TriageReportRequest {
            report_id: report.id.clone(),
            action: Some(pb::triage_report_request::Action::Accept(pb::AcceptReport {
                priority: 2,
                headcount: 1,
                ..Default::default()
            })),
        })
        .await?;
    let mut offer_id = String::new();
    wait_until(PROMPTLY, "the offer reaches the person", async || {
        let incident = admin.get_incident(pb::GetIncidentRequest { id: report.id.clone() }).await?.into_inner();
        offer_id = incident.open_offers.first().map(|offer| offer.offer_id.clone()).unwrap_or_default();
        Ok(!offer_id.is_empty())
    })
    .await?;
    phone.accept_offer(&offer_id, &phone.new_key()).await?;
    phone.report_arrival(&report.id).await?;
    // Another photo: the same picture with a byte after its end.
    let mut other = PHOTO.to_vec();
    other.push(0);
    let done = phone.upload_photo(other).await?;
    anyhow::ensure!(done.photo_ref != uploaded.photo_ref, "two photos");
    phone.complete_assignment(&report.id, "road closed off", std::slice::from_ref(&done.photo_ref)).await?;
    // A tab in the background draws nothing (no animation frames): the
    // desk's comes to the front, as on the operator's screen.
    desk.bring_to_front().await?;
    wait_for(
        &desk,
        "the completion's photo shows in the timeline",
        &format!(
            "document.querySelector(\"#detail-timeline li[data-kind=assignment_completed] button.photo[data-photo-ref='{}']\")?.dataset.state === 'shown'",
            done.photo_ref
        ),
    )
    .await?;
    wait_for(
        &desk,
        "the closed incident's panel lists both photos",
        "document.querySelectorAll('#detail-facts button.photo').length === 2 && document.getElementById('end-form').hidden",
    )
    .await?;
    screenshot(&desk, &screenshot_folder().join("desk-completion-photo.png")).await?;
    wall.bring_to_front().await?;
    wait_for(
        &wall,
        "the viewer's panel has the completion",
        "document.querySelector('#detail-timeline li[data-kind=assignment_completed]')",
    )
    .await?;
    anyhow::ensure!(
        eval::<bool>(&wall, "document.querySelectorAll('button.photo').length === 0").await?,
        "a viewer is shown no completion photo either"
    );

    browser.close().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_shows_a_persons_sign_in_qr_code_and_others_get_no_button() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|config| config.agents_file = Some(sample_roster())).await?;
    let origin = format!("http://{}", server.web_address().context("a web port")?);
    let mut admin = server.command().await?;
    let at = area_box(&mut admin, GRID).await?.centre();
    let old = server.connect_person_at(person("qr-person", GRID, &["first_aid"]), at.0, at.1).await?;
    let dispatcher = add_operator(&mut admin, "desk", pb::OperatorRole::Dispatcher).await?;
    let viewer = add_operator(&mut admin, "wall", pb::OperatorRole::Viewer).await?;
    let browser = TestBrowser::launch(&chromium).await?;

    for (token, role) in [(viewer.as_str(), "viewer"), (dispatcher.as_str(), "dispatcher")] {
        let page = browser.open(&format!("{origin}/")).await?;
        log_in(&page, token).await?;
        page.find_element("#person-id").await?.click().await?.type_str("qr-person").await?.press_key("Enter").await?;
        wait_for(&page, "the person's facts show", "document.getElementById('person-facts').dataset.agentId === 'qr-person'")
            .await?;
        anyhow::ensure!(
            eval::<bool>(&page, "document.getElementById('sign-in').hidden").await?,
            "a {role} gets no sign-in QR button"
        );
        // Each tab holds two streams open; over HTTP/1.1 a browser opens
        // six connections to one origin.
        page.close().await?;
    }

    let page = browser.open(&format!("{origin}/")).await?;
    log_in(&page, ADMIN_TOKEN).await?;
    page.find_element("#person-id").await?.click().await?.type_str("qr-person").await?.press_key("Enter").await?;
    wait_for(&page, "the sign-in button shows for an admin", "!document.getElementById('sign-in').hidden").await?;
    press(&page, "#sign-in-button").await?;
    wait_for(&page, "the warning asks to confirm", "!document.getElementById('sign-in-confirm').hidden").await?;
    press(&page, "#sign-in-issue").await?;
    // A token is hashed slowly on purpose (argon2), slower still in a debug build.
    // A token is hashed slowly on purpose (argon2), slower in a debug build.
    wait_until(Duration::from_secs(60), "the QR code shows", async || {
        eval::<bool>(&page, "Boolean(document.querySelector('#sign-in-code svg.qr'))").await
    })
    .await?;
    page.evaluate("document.getElementById('sign-in-code').scrollIntoView({ block: 'center' })").await?;
    screenshot(&page, &screenshot_folder().join("desk-sign-in-qr.png")).await?;
    assert_accessible(&page, "the sign-in QR code").await?;
    let link: String = eval(&page, "document.getElementById('sign-in-link').value").await?;
    let prefix = format!("{origin}/field/#a=qr-person&t=");
    anyhow::ensure!(link.starts_with(&prefix), "the link opens the phone app with the token in the fragment: {link}");
    let token = &link[prefix.len()..];
    let modules: u32 = eval(&page, "Number(document.querySelector('#sign-in-code svg.qr').dataset.modules)").await?;
    anyhow::ensure!(modules >= 21 && (modules - 21) % 4 == 0, "a QR code's side is 21 + 4k modules: {modules}");
    // Dark squares that nothing paints over (the panel's styles once stroked them white).
    let (fill, stroke): (String, String) = eval(
        &page,
        "(() => { const dark = getComputedStyle(document.querySelector('#sign-in-code svg.qr path')); return [dark.fill, dark.stroke]; })()",
    )
    .await?;
    anyhow::ensure!(fill == "rgb(0, 0, 0)" && stroke == "none", "the squares are drawn black: fill {fill}, stroke {stroke}");
    // The token in the link signs the person in on the browser API.
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("qr-person", token).map_err(anyhow::Error::msg)?);
    let (welcome, _stream) = phone.listen().await.context("the link's token signs in")?;
    anyhow::ensure!(welcome.session_id > 0, "{welcome:?}");
    drop(old);

    browser.close().await?;
    server.shutdown().await
}

/// The demo's setting: the dispatcher's clock runs ten times as fast as
/// real time from the system time at its start, so it is soon well ahead
/// of the browser's. An offer's countdown on the map and in the incident's
/// panel counts on the dispatcher's clock: never more than the offer's
/// timeout, and ten seconds down each real second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_countdowns_follow_the_dispatchers_clock_in_the_demo_setting() -> anyhow::Result<()> {
    const SPEED: f64 = 10.0;
    const OFFER_TIMEOUT_S: u64 = 900;
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|config| {
        config.agents_file = Some(sample_roster());
        config.clock = pingji_dispatcher::runtime::Clock::faster(SPEED);
        config.policy.normal.offer_timeout_s = OFFER_TIMEOUT_S;
    })
    .await?;
    let url = format!("http://{}/", server.web_address().context("a web port")?);
    let mut admin = server.command().await?;
    // Until the dispatcher's clock is a minute ahead of this machine's.
    wait_until(Duration::from_secs(30), "the dispatcher's clock runs ahead", async || {
        let clock = admin.get_clock(pb::GetClockRequest {}).await?.into_inner();
        let system_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        anyhow::ensure!(clock.speed == SPEED, "GetClock tells the speed: {clock:?}");
        Ok(clock.now_ms - system_ms > 60_000)
    })
    .await?;
    let at = area_box(&mut admin, GRID).await?.centre();
    let _medic = server.connect_person_at(person("clock-medic", GRID, &["first_aid"]), at.0, at.1).await?;
    let incident = admin
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(at.0 + 0.001, at.1)),
            category: "medical".into(),
            priority: 2,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let dispatcher = add_operator(&mut admin, "desk", pb::OperatorRole::Dispatcher).await?;
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, &dispatcher).await?;
    wait_for(&page, "the page knows the dispatcher's speed", "document.body.dataset.clockSpeed === '10'").await?;
    let in_list = format!("#incident-list button[data-incident-id='{}']", incident.id);
    wait_for(&page, "the incident is listed", &format!("document.querySelector({})", serde_json::to_string(&in_list)?)).await?;
    press(&page, &in_list).await?;
    wait_for(&page, "the open offer counts down in the panel", "document.querySelector('#detail-offers [data-deadline]')")
        .await?;
    wait_for(
        &page,
        "the offer's line counts down on the map",
        "/^\\d+s$/.test(document.querySelector('#map text.countdown')?.textContent ?? '')",
    )
    .await?;
    let read = async |page: &Page| -> anyhow::Result<(u64, u64)> {
        let (panel, map): (String, String) = eval(
            page,
            "[document.querySelector('#detail-offers [data-deadline]').textContent, \
              document.querySelector('#map text.countdown').textContent]",
        )
        .await?;
        let digits = |text: &str| text.chars().filter(char::is_ascii_digit).collect::<String>().parse::<u64>();
        Ok((
            digits(&panel).with_context(|| format!("seconds in {panel:?}"))?,
            digits(&map).with_context(|| format!("seconds in {map:?}"))?,
        ))
    };
    let (panel_before, map_before) = read(&page).await?;
    // The browser's clock would show the timeout and the minute it is behind.
    anyhow::ensure!(panel_before <= OFFER_TIMEOUT_S && map_before <= OFFER_TIMEOUT_S, "{panel_before} s / {map_before} s left");
    screenshot(&page, &screenshot_folder().join("desk-countdown-speed-10.png")).await?;
    let real = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (panel_after, map_after) = read(&page).await?;
    let elapsed_s = real.elapsed().as_secs_f64();
    // Ten seconds a real second, give or take the ticks of a loaded machine.
    let least = ((elapsed_s - 1.2) * SPEED).max(0.0) as u64;
    anyhow::ensure!(
        panel_before.saturating_sub(panel_after) >= least && map_before.saturating_sub(map_after) >= least,
        "after {elapsed_s:.1} s the countdowns went {panel_before} → {panel_after} s and {map_before} → {map_after} s; \
         at speed 10 at least {least} s down"
    );
    let offer = admin.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    let clock = admin.get_clock(pb::GetClockRequest {}).await?.into_inner();
    let deadline_ms = offer.open_offers.first().context("the offer is open")?.deadline_ms;
    let expected_s = ((deadline_ms - clock.now_ms) as f64 / 1000.0).ceil() as i64;
    anyhow::ensure!(
        (panel_after as i64 - expected_s).abs() <= 25,
        "the panel shows {panel_after} s left; on the dispatcher's clock {expected_s} s"
    );

    browser.close().await?;
    server.shutdown().await
}

/// How far below the top of the supplies panel the panel after the
/// supplies, duty and shelter panels starts. (Measured from the supplies
/// panel: the figures panel above it grows by its per-area lines, which
/// is not these panels' doing.)
const ACTIVITY_TOP: &str = "Math.round(document.getElementById('activity-panel').getBoundingClientRect().top - \
     document.getElementById('supplies-panel').getBoundingClientRect().top)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panels_that_fill_in_after_load_move_nothing_below_them() -> anyhow::Result<()> {
    use pingji_proto::v1::roster_service_client::RosterServiceClient;
    use pingji_proto::v1::shelter_service_client::ShelterServiceClient;
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|config| config.agents_file = Some(sample_roster())).await?;
    let url = format!("http://{}/", server.web_address().context("the web port")?);
    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    log_in(&page, ADMIN_TOKEN).await?;
    // At once (the lists may still be reading), then once they have read.
    let at_once: i64 = eval(&page, ACTIVITY_TOP).await?;

    screenshot(&page, &screenshot_folder().join("desk-panels-at-once.png")).await?;
    wait_for(&page, "the shelters are read", "document.querySelector('#shelter-list li')").await?;
    let loaded: i64 = eval(&page, ACTIVITY_TOP).await?;
    assert_eq!(at_once, loaded, "the panel below moved while the lists filled in");

    // Shelters arrive by the event stream and the duty panel is shown.
    let bearer = || pingji_client::auth::BearerToken::new(Some(ADMIN_TOKEN)).unwrap_or_default();
    let mut shelters = ShelterServiceClient::with_interceptor(server.channel().await?, bearer());
    let shelter = |id: &str, lon: f64| pb::Shelter {
        id: id.to_string(),
        name: format!("第{id}小学"),
        location: Some(pb::Location::wgs84(lon, 30.27)),
        capacity: 200,
        ..Default::default()
    };
    let many: Vec<pb::Shelter> = (1..=6).map(|n| shelter(&n.to_string(), 120.15 + f64::from(n) * 0.002)).collect();
    shelters.import_shelters(pb::ImportSheltersRequest { shelters: many }).await?;
    let mut rosters = RosterServiceClient::with_interceptor(server.channel().await?, bearer());
    let shift = |id: &str, area: &str, people: &[&str]| pb::Shift {
        id: id.to_string(),
        area_id: area.to_string(),
        duty: "duty_officer".to_string(),
        days: (1..=7).collect(),
        start_minute: 0,
        length_minutes: 24 * 60,
        agent_ids: people.iter().map(|person| person.to_string()).collect(),
    };
    let shifts =
        vec![shift("s1", "d1-s1", &["p0001"]), shift("c1", "d1-s1-c1", &["p0002", "p0003"]), shift("g1", GRID, &["p0004"])];
    rosters.set_shifts(pb::SetShiftsRequest { shifts }).await?;
    press(&page, "#duty-show").await?;
    wait_for(&page, "the shelters show", "document.querySelectorAll('#shelter-list li').length === 6").await?;
    wait_for(&page, "the shifts show", "document.querySelectorAll('#duty-result li.duty-shift').length === 3").await?;
    let filled: i64 = eval(&page, ACTIVITY_TOP).await?;
    assert_eq!(at_once, filled, "the panel below moved when the lists grew");
    assert_accessible(&page, "the filled panels").await?;
    eval::<bool>(&page, "(() => { document.getElementById('supplies-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("desk-panels-filled.png")).await?;
    browser.close().await?;
    server.shutdown().await
}
