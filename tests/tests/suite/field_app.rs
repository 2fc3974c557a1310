//! The phone app (#19) in a real headless Chromium as a phone (390×844,
//! touch, an emulated position), against a real dispatcher with the sample
//! city over grpc-web: a person signs in with the operator's link, gets an
//! offer near them, accepts, arrives and completes with a photo from the
//! "camera"; an accept made offline is sent once when the network is back;
//! an accept that reaches the dispatcher after the offer expired is refused
//! clearly; a sign-in elsewhere ends the page's session without a
//! reconnect loop; a message and its reply round-trip; the app is
//! installable (manifest, icons, service worker); the app's files go
//! gzipped to a browser that takes it, the same bytes once unzipped; 我的班次:
//! a person sees their shifts, checks in and out, and asks a colleague to
//! swap, which a commander approves.
//! Screenshots of every screen go to `target/web-screenshots/field-*.png`.
//!
//! Without Chromium these tests skip with a hint (`apt-get install
//! chromium`), except in CI (`CI=true`), where they fail.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::page::Page;
use pingji_proto::v1 as pb;
use pingji_proto::v1::roster_service_client::RosterServiceClient;
use pingji_tests::browser::{
    self, TestBrowser, accessibility_problems, choose_files, eval, screenshot, screenshot_folder, set_offline, tap, text,
    type_text, wait_for,
};
use pingji_tests::events::EventWatch;
use pingji_tests::sample::{area_box, offset_m, person, sample_roster};
use pingji_tests::server::TestServer;
use pingji_tests::session::AgentSession;
use pingji_tests::typed;
use pingji_tests::wait::wait_until;

/// The grid the person stands in.
const GRID: &str = "d1-s1-c1-g2";

struct Phone {
    server: TestServer,
    browser: TestBrowser,
    page: Page,
    agent_id: String,
    token: String,
    /// Where the phone is.
    at: (f64, f64),
    folder: tempfile::TempDir,
    photo: PathBuf,
}

/// A dispatcher with the web port, a person on the roster, and their phone
/// signed in with the link an operator gives them, located in [`GRID`].
async fn signed_in_phone(
    agent_id: &str,
    tweak: impl FnOnce(&mut pingji_dispatcher::server::Config),
) -> anyhow::Result<Option<Phone>> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(None);
    };
    let photos = tempfile::tempdir()?;
    let photos_dir = photos.path().join("photos");
    let server = TestServer::start_with_web(|config| {
        config.agents_file = Some(sample_roster());
        config.photos_dir = Some(photos_dir);
        tweak(config);
    })
    .await?;
    let address = server.web_address().context("the server has a web port")?;
    let mut admin = server.command().await?;
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(agent_id, GRID, &["first_aid"])) }).await?;
    let token = server.agent_token(agent_id).await?;
    let grid = area_box(&mut admin, GRID).await?;
    let at = grid.at(0.4, 0.4);
    let browser = TestBrowser::launch(&chromium).await?;
    let origin = format!("http://{address}");
    browser.allow_geolocation(&origin).await?;
    let page = browser.open_phone(&format!("{origin}/field/#t={token}&a={agent_id}"), at.0, at.1).await?;
    // The camera's photo: the app's own icon, a real PNG.
    let photo = photos.path().join("camera.png");
    std::fs::write(&photo, include_bytes!("../../../dispatcher/web/src/field/icon-512.png"))?;
    let phone = Phone { server, browser, page, agent_id: agent_id.to_string(), token, at, folder: photos, photo };
    wait_for(&phone.page, "the session opens", "document.getElementById('connection').dataset.state === 'online'").await?;
    // The dispatcher has the phone's position.
    let mut admin = phone.server.command().await?;
    wait_until(Duration::from_secs(20), "the phone's position reaches the dispatcher", async || {
        let agent = admin.get_agent(pb::GetAgentRequest { id: phone.agent_id.clone() }).await?.into_inner();
        Ok(agent.connected
            && agent.location.is_some_and(|place| (place.lon - at.0).abs() < 1e-6 && (place.lat - at.1).abs() < 1e-6))
    })
    .await?;
    Ok(Some(phone))
}

impl Phone {
    async fn close(self) -> anyhow::Result<()> {
        self.browser.close().await?;
        self.server.shutdown().await
    }

    /// An incident 150 m north-east of the phone, needing first aid.
    async fn incident_nearby(&self) -> anyhow::Result<String> {
        let (lon, lat) = offset_m(self.at.0, self.at.1, 100.0, 110.0);
        let mut admin = self.server.command().await?;
        let incident = admin
            .create_incident(pb::CreateIncidentRequest {
                location: Some(pb::Location { lon, lat, crs: 0 }),
                category: "medical".to_string(),
                priority: 1,
                required_skills: vec!["first_aid".to_string()],
                headcount: 1,
                description: "老人在楼道摔倒，需要急救".to_string(),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(incident.id)
    }

    async fn incident(&self, id: &str) -> anyhow::Result<pb::Incident> {
        let mut admin = self.server.command().await?;
        Ok(admin.get_incident(pb::GetIncidentRequest { id: id.to_string() }).await?.into_inner())
    }

    async fn wait_for_offer(&self, incident_id: &str) -> anyhow::Result<()> {
        wait_for(
            &self.page,
            "the offer takes the screen",
            &format!(
                "!document.getElementById('offer-view').hidden && \
                 document.getElementById('offer-countdown').textContent !== '' && \
                 document.querySelector('#offer-sketch svg') && \
                 document.getElementById('offer-view').dataset.offerId && '{incident_id}' !== ''"
            ),
        )
        .await
    }

    async fn shot(&self, name: &str) -> anyhow::Result<()> {
        screenshot(&self.page, &screenshot_folder().join(format!("field-{name}.png"))).await
    }
}

/// A promise of every action waiting in the page's outbox (IndexedDB).
const OUTBOX: &str = "new Promise((resolve) => { const open = indexedDB.open('pingji-field'); open.onsuccess = () => { \
     const all = open.result.transaction('outbox').objectStore('outbox').getAll(); all.onsuccess = () => resolve(all.result); }; })";

/// An uncompressed 24-bit BMP of `width`×`height` (a soft gradient): a
/// photo far over the upload limit that every browser can draw.
fn bitmap(width: u32, height: u32) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let size = 54 + row * height;
    let mut file = Vec::with_capacity(size as usize);
    file.extend_from_slice(b"BM");
    file.extend_from_slice(&size.to_le_bytes());
    file.extend_from_slice(&[0; 4]);
    file.extend_from_slice(&54u32.to_le_bytes());
    file.extend_from_slice(&40u32.to_le_bytes());
    file.extend_from_slice(&width.to_le_bytes());
    file.extend_from_slice(&height.to_le_bytes());
    file.extend_from_slice(&1u16.to_le_bytes());
    file.extend_from_slice(&24u16.to_le_bytes());
    file.extend_from_slice(&[0; 24]);
    for y in 0..height {
        for x in 0..width {
            file.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
        }
        file.resize(file.len() + (row - width * 3) as usize, 0);
    }
    file
}

/// No serious axe-core findings, and every control shown is a touch target
/// of at least 48×48 CSS pixels.
async fn assert_accessible(page: &Page, what: &str) -> anyhow::Result<()> {
    let problems = accessibility_problems(page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems on {what}:\n{}", problems.join("\n"));
    let small: Vec<String> = eval(
        page,
        "[...document.querySelectorAll('button, select, input:not(.visually-hidden), textarea, .photo-button')]
            .filter((node) => node.getClientRects().length > 0)
            .map((node) => [node, node.getBoundingClientRect()])
            .filter(([, box]) => box.width < 48 || box.height < 48)
            .map(([node, box]) => `${node.id || node.className || node.tagName} ${Math.round(box.width)}x${Math.round(box.height)}`)",
    )
    .await?;
    anyhow::ensure!(small.is_empty(), "touch targets under 48 px on {what}: {small:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_by_link_accepts_arrives_and_completes_with_a_photo() -> anyhow::Result<()> {
    let Some(phone) = signed_in_phone("phone-medic", |_| {}).await? else {
        return Ok(());
    };
    let page = &phone.page;
    // The token left the address at once, and stays on the phone only.
    let address: String = eval(page, "window.location.href").await?;
    anyhow::ensure!(!address.contains(&phone.token) && !address.contains('#'), "the token is in the URL: {address}");
    anyhow::ensure!(
        eval::<String>(page, "localStorage.getItem('pingji.field.token')").await? == phone.token,
        "the token is kept on the phone"
    );
    wait_for(page, "the person's name shows", "document.getElementById('whoami').textContent.includes('phone-medic')").await?;
    wait_for(page, "the location line says it is sent", "/\\d/.test(document.getElementById('location-state').textContent)")
        .await?;
    phone.shot("home").await?;
    assert_accessible(page, "the home screen").await?;

    // Installable: the manifest and icons are served, the service worker holds the shell.
    let manifest: serde_json::Value =
        serde_json::from_str(&eval::<String>(page, "fetch('/field/manifest.webmanifest').then((r) => r.text())").await?)?;
    assert_eq!(manifest["start_url"], "/field/");
    assert_eq!(manifest["display"], "standalone");
    for icon in manifest["icons"].as_array().context("the manifest lists icons")? {
        let source = icon["src"].as_str().context("an icon has a src")?;
        let kind: String = eval(page, &format!("fetch('{source}').then((r) => r.headers.get('content-type'))")).await?;
        assert_eq!(kind, "image/png", "{source} is served as a PNG");
    }
    let manifest_kind: String =
        eval(page, "fetch('/field/manifest.webmanifest').then((r) => r.headers.get('content-type'))").await?;
    assert_eq!(manifest_kind, "application/manifest+json");
    wait_for(
        page,
        "the service worker is active",
        "navigator.serviceWorker.getRegistration().then((registration) => registration?.active?.state === 'activated')",
    )
    .await?;
    let scope: String =
        eval(page, "navigator.serviceWorker.getRegistration().then((registration) => registration.scope)").await?;
    anyhow::ensure!(scope.ends_with("/field/"), "the service worker's scope is /field/: {scope}");
    wait_for(
        page,
        "the shell is cached",
        "caches.keys().then((names) => names.some((name) => name.startsWith('pingji-field-')))",
    )
    .await?;

    // An offer takes the screen: what, where, distance, ETA, countdown.
    let incident_id = phone.incident_nearby().await?;
    phone.wait_for_offer(&incident_id).await?;
    let what = text(page, "#offer-what").await?;
    anyhow::ensure!(what.contains("医疗救助"), "the offer says what, in Chinese: {what}");
    let distance = text(page, "#offer-distance").await?;
    anyhow::ensure!(distance.contains(" m"), "the offer says how far: {distance}");
    anyhow::ensure!(!text(page, "#offer-eta").await?.is_empty(), "the offer gives an ETA");
    phone.shot("offer").await?;
    assert_accessible(page, "the offer").await?;
    // Declining offers one-tap reasons; changing one's mind goes back.
    tap(page, "#decline").await?;
    wait_for(page, "the reasons show", "document.querySelectorAll('#decline-reasons button').length >= 4").await?;
    phone.shot("offer-decline").await?;
    tap(page, "#decline").await?;

    tap(page, "#accept").await?;
    wait_for(
        page,
        "the task shows",
        &format!(
            "!document.getElementById('task').hidden && document.getElementById('task').dataset.incidentId === '{incident_id}'"
        ),
    )
    .await?;
    anyhow::ensure!(eval::<bool>(page, "document.getElementById('offer-view').hidden").await?, "the offer has left the screen");
    phone.shot("task").await?;
    assert_accessible(page, "the task").await?;

    tap(page, "#arrived").await?;
    wait_until(Duration::from_secs(20), "the arrival reaches the dispatcher", async || {
        let incident = phone.incident(&incident_id).await?;
        Ok(incident.assignments.iter().any(|assignment| assignment.agent_id == "phone-medic" && assignment.arrived_at_ms > 0))
    })
    .await?;
    wait_for(page, "the arrival shows", "!document.getElementById('task-arrived').hidden").await?;

    choose_files(page, "#complete-photos", &[phone.photo.as_path()]).await?;
    wait_for(page, "the photo is counted", "document.getElementById('complete-photo-count').textContent !== ''").await?;
    type_text(page, "#feedback", "已送医，家属陪同").await?;
    phone.shot("task-complete").await?;
    tap(page, "#complete").await?;
    let completed_by_phone = |incident: &pb::Incident| {
        incident
            .assignments
            .iter()
            .find(|assignment| assignment.agent_id == "phone-medic" && assignment.completed_at_ms > 0)
            .cloned()
    };
    wait_until(Duration::from_secs(20), "the completion with its photo reaches the dispatcher", async || {
        Ok(completed_by_phone(&phone.incident(&incident_id).await?).is_some())
    })
    .await?;
    let completed = completed_by_phone(&phone.incident(&incident_id).await?).context("the completion")?;
    assert_eq!(completed.feedback, "已送医，家属陪同");
    assert_eq!(completed.photo_refs.len(), 1, "the photo came with the completion");
    anyhow::ensure!(completed.photo_refs[0].starts_with("sha256:"), "a content-addressed photo: {}", completed.photo_refs[0]);
    wait_for(page, "the page is idle again", "document.getElementById('task').hidden").await?;
    phone.shot("done").await?;

    // A message from the command centre; the person reads and replies.
    let mut admin = phone.server.command().await?;
    let sent = admin
        .send_message(pb::SendMessageRequest {
            to: Some(pb::MessageAudience { to: Some(pb::message_audience::To::AgentId("phone-medic".to_string())) }),
            text: "请在原地待命".to_string(),
        })
        .await?
        .into_inner();
    tap(page, "#tab-messages").await?;
    wait_for(
        page,
        "the message shows, unread",
        &format!("document.querySelector('#messages li.unread[data-message-id=\"{}\"]')", sent.id),
    )
    .await?;
    phone.shot("messages").await?;
    assert_accessible(page, "the messages").await?;
    type_text(page, &format!("#reply-{}", sent.id), "收到").await?;
    tap(page, &format!("#messages li[data-message-id=\"{}\"] button[type=submit]", sent.id)).await?;
    let mut answered = None;
    wait_until(Duration::from_secs(20), "the reply and the read receipt reach the dispatcher", async || {
        let messages = admin
            .list_messages(pb::ListMessagesRequest { agent_id: "phone-medic".to_string(), ..Default::default() })
            .await?
            .into_inner()
            .messages;
        answered = messages
            .into_iter()
            .find(|message| message.id == sent.id && !message.replies.is_empty() && !message.read_by.is_empty());
        Ok(answered.is_some())
    })
    .await?;
    let answered = answered.context("the answered message")?;
    assert_eq!(answered.replies[0].text, "收到");

    // A field report (随手拍) with a photo, from where the phone is.
    tap(page, "#tab-report").await?;
    wait_for(page, "the report form shows", "!document.getElementById('report-view').hidden").await?;
    page.evaluate("document.getElementById('report-category').value = 'hazard'").await?;
    type_text(page, "#report-text", "井盖缺失").await?;
    // Two photos: the small one, and one over the 10 MiB limit (an
    // uncompressed bitmap), which the phone scales down before sending.
    let big_photo = phone.folder.path().join("big.bmp");
    std::fs::write(&big_photo, bitmap(2400, 1800))?;
    anyhow::ensure!(std::fs::metadata(&big_photo)?.len() > 10 * 1024 * 1024, "the big photo is over the limit");
    choose_files(page, "#report-photos", &[phone.photo.as_path(), big_photo.as_path()]).await?;
    wait_for(page, "the report's photos show", "document.querySelectorAll('#report-thumbs img').length === 2").await?;
    phone.shot("report").await?;
    assert_accessible(page, "the report form").await?;
    tap(page, "#report-send").await?;
    let mut report = None;
    wait_until(Duration::from_secs(30), "the report with both photos reaches the dispatcher", async || {
        report = admin
            .list_incidents(pb::ListIncidentsRequest { ..Default::default() })
            .await?
            .into_inner()
            .incidents
            .into_iter()
            .find(|incident| incident.reported_by.contains("phone-medic") && incident.description.contains("井盖缺失"));
        Ok(report.is_some())
    })
    .await?;
    let report = report.context("the report")?;
    assert_eq!(report.category, "hazard");
    assert_eq!(report.photo_refs.len(), 2, "both photos came with the report: {:?}", report.photo_refs);
    for photo_ref in &report.photo_refs {
        let photo = admin.get_photo(pb::GetPhotoRequest { photo_ref: photo_ref.clone() }).await?.into_inner();
        anyhow::ensure!(photo.data.len() <= 10 * 1024 * 1024, "{photo_ref} is within the limit: {} bytes", photo.data.len());
    }

    // English, then sign out: nothing of the person is left on the phone.
    tap(page, "#tab-home").await?;
    tap(page, "#language").await?;
    wait_for(page, "the page speaks English", "document.documentElement.lang === 'en'").await?;
    phone.shot("home-en").await?;
    tap(page, "#home-view .sign-out").await?;
    wait_for(page, "the sign-in screen shows", "!document.getElementById('signin-view').hidden").await?;
    anyhow::ensure!(
        eval::<bool>(page, "localStorage.getItem('pingji.field.token') === null").await?,
        "signing out removes the token"
    );
    phone.shot("signed-out").await?;
    phone.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_made_offline_is_sent_once_when_the_network_is_back() -> anyhow::Result<()> {
    let Some(phone) = signed_in_phone("phone-offline", |_| {}).await? else {
        return Ok(());
    };
    let page = &phone.page;
    let incident_id = phone.incident_nearby().await?;
    phone.wait_for_offer(&incident_id).await?;
    set_offline(page, true).await?;
    wait_for(page, "the page knows it is offline", "document.getElementById('connection').dataset.state === 'offline'").await?;
    tap(page, "#accept").await?;
    wait_for(page, "the accept waits in the queue", "document.getElementById('queued').dataset.count === '1'").await?;
    let queued: serde_json::Value = eval(page, &format!("{OUTBOX}.then((all) => all[0])")).await?;
    let key = queued["key"].as_str().context("the queued action has a key")?.to_string();
    anyhow::ensure!(key.len() >= 16, "the action has the idempotency key made when the person acted: {key}");
    assert_eq!(queued["kind"], "accept");
    phone.shot("offline-queued").await?;
    anyhow::ensure!(phone.incident(&incident_id).await?.assignments.is_empty(), "nothing was applied while offline");

    set_offline(page, false).await?;
    wait_for(page, "the queue is sent", "document.getElementById('queued').dataset.count === '0'").await?;
    wait_for(
        page,
        "the task shows",
        &format!(
            "document.getElementById('task').dataset.incidentId === '{incident_id}' && !document.getElementById('task').hidden"
        ),
    )
    .await?;
    let incident = phone.incident(&incident_id).await?;
    assert_eq!(incident.assignments.len(), 1, "one assignment: {:?}", incident.assignments);
    assert_eq!(incident.status, pb::IncidentStatus::Staffed as i32);

    // The answer was lost, say, and the phone sends the same action again
    // with its key: the dispatcher answers it as the first time, and
    // applies nothing twice (a second accept would be refused as not open).
    page.evaluate(format!(
        "new Promise((resolve) => {{ const open = indexedDB.open('pingji-field'); open.onsuccess = () => {{ \
         const put = open.result.transaction('outbox', 'readwrite').objectStore('outbox').put({queued}); \
         put.onsuccess = () => {{ window.dispatchEvent(new Event('online')); resolve(true); }}; }}; }})"
    ))
    .await?;
    wait_for(page, "the repeat is answered", &format!("{OUTBOX}.then((all) => all.length === 0)")).await?;
    anyhow::ensure!(
        eval::<bool>(page, "document.getElementById('notice').dataset.kind !== 'problem'").await?,
        "the repeat was refused: {}",
        text(page, "#notice").await?
    );
    let incident = phone.incident(&incident_id).await?;
    assert_eq!(incident.assignments.len(), 1, "still one assignment: {:?}", incident.assignments);
    phone.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_that_arrives_after_the_offer_expired_is_refused_clearly() -> anyhow::Result<()> {
    const OFFER_TIMEOUT_S: u64 = 10;
    let Some(phone) = signed_in_phone("phone-late", |config| config.policy.normal.offer_timeout_s = OFFER_TIMEOUT_S).await?
    else {
        return Ok(());
    };
    let page = &phone.page;
    let incident_id = phone.incident_nearby().await?;
    phone.wait_for_offer(&incident_id).await?;
    // Accepted in time, but offline: it reaches the dispatcher too late.
    set_offline(page, true).await?;
    tap(page, "#accept").await?;
    wait_for(page, "the accept waits in the queue", "document.getElementById('queued').dataset.count === '1'").await?;
    tokio::time::sleep(Duration::from_secs(OFFER_TIMEOUT_S + 2)).await;
    set_offline(page, false).await?;
    wait_for(
        page,
        "the refusal shows, with its reason",
        "document.getElementById('notice').dataset.reason === 'OFFER_NOT_OPEN' && !document.getElementById('notice').hidden",
    )
    .await?;
    let said = text(page, "#notice").await?;
    anyhow::ensure!(said.contains("不能接受"), "the refusal is said plainly: {said}");
    wait_for(page, "the queue is empty", "document.getElementById('queued').dataset.count === '0'").await?;
    anyhow::ensure!(
        phone.incident(&incident_id).await?.assignments.iter().all(|assignment| assignment.agent_id != "phone-late"),
        "the late accept changed nothing"
    );
    // The refusal as the person sees it (any new offer moved aside).
    page.evaluate("document.getElementById('offer-view').hidden = true").await?;
    phone.shot("refused").await?;
    phone.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_on_another_phone_ends_this_one_clearly_without_a_reconnect_loop() -> anyhow::Result<()> {
    let Some(phone) = signed_in_phone("phone-replaced", |_| {}).await? else {
        return Ok(());
    };
    let page = &phone.page;
    // The same person opens a session elsewhere (a native client).
    let mut elsewhere = AgentSession::open(&mut phone.server.agents().await?, &phone.agent_id, &phone.token).await?;
    wait_for(
        page,
        "the page says why it stopped",
        "document.getElementById('ended-view').dataset.why === 'replaced' && !document.getElementById('ended-view').hidden",
    )
    .await?;
    phone.shot("replaced").await?;
    assert_accessible(page, "the replaced screen").await?;
    // No loop: the page does not take the session back (which would end the other one).
    elsewhere.expect_silence_for(Duration::from_secs(4)).await.context("the page reconnected by itself")?;
    anyhow::ensure!(
        eval::<bool>(page, "!document.getElementById('ended-view').hidden").await?,
        "the page did not reconnect by itself"
    );
    phone.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_up_is_checked_in_with_one_tap_and_the_location_follows_the_mode_and_stops_off_duty() -> anyhow::Result<()> {
    const GRADE_I_INTERVAL_S: u32 = 2;
    let Some(phone) =
        signed_in_phone("phone-callup", |config| config.policy.emergency_i.location_interval_s = GRADE_I_INTERVAL_S).await?
    else {
        return Ok(());
    };
    let page = &phone.page;
    let mut admin = phone.server.command().await?;
    // An offer declined with one tap on a common reason.
    let mut events = EventWatch::start(&mut admin, 0).await?;
    let incident_id = phone.incident_nearby().await?;
    phone.wait_for_offer(&incident_id).await?;
    tap(page, "#decline").await?;
    wait_for(page, "the reasons show", "document.querySelector('#decline-reasons button')").await?;
    let reason = text(page, "#decline-reasons button").await?;
    tap(page, "#decline-reasons button").await?;
    let declined = events.wait_for_kind(Duration::from_secs(20), "offer_declined", &incident_id).await?;
    assert_eq!(typed!(declined, OfferDeclined).reason, reason);
    wait_for(page, "the offer leaves the screen", "document.getElementById('offer-view').hidden").await?;

    let callup = admin
        .call_up(pb::CallUpRequest {
            area_id: "d1-s1".into(),
            roles: vec![pb::Role::Volunteer as i32],
            reason: "防汛备勤：到社区服务中心集结".into(),
            deadline_s: 600,
        })
        .await?
        .into_inner();
    wait_for(
        page,
        "the call-up shows with its deadline",
        &format!("document.querySelector('#callups [data-callup-id=\"{}\"] .deadline')?.textContent.includes(':')", callup.id),
    )
    .await?;
    phone.shot("callup").await?;
    assert_accessible(page, "the call-up").await?;
    tap(page, "#callups .check-in").await?;
    wait_until(Duration::from_secs(20), "the check-in reaches the dispatcher", async || {
        let callups = admin.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
        Ok(callups
            .iter()
            .flat_map(|callup| callup.people.iter())
            .any(|person| person.agent_id == "phone-callup" && person.checked_in_at_ms > 0))
    })
    .await?;
    wait_for(page, "the check-in shows", "document.querySelector('#callups .check-in').disabled").await?;

    // Grade I: the phone reports as often as the grade asks.
    admin.set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyI as i32, reason: "台风".into() }).await?;
    wait_for(
        page,
        "the page reports at the grade's interval",
        &format!(
            "document.getElementById('location-state').textContent.includes('{GRADE_I_INTERVAL_S}') && \
             document.getElementById('mode').dataset.mode === '{}'",
            pb::Mode::EmergencyI as i32
        ),
    )
    .await?;
    phone.shot("emergency").await?;
    let moved = offset_m(phone.at.0, phone.at.1, 30.0, 0.0);
    browser::set_position(page, moved.0, moved.1).await?;
    wait_until(Duration::from_secs(20), "the new position reaches the dispatcher at the grade's interval", async || {
        let agent = admin.get_agent(pb::GetAgentRequest { id: phone.agent_id.clone() }).await?.into_inner();
        Ok(agent.location.is_some_and(|place| (place.lon - moved.0).abs() < 1e-6))
    })
    .await?;

    // Off duty: the status reaches the dispatcher, and the position no longer does.
    tap(page, "#statuses button[data-status=OFF_DUTY]").await?;
    wait_until(Duration::from_secs(20), "off duty reaches the dispatcher", async || {
        let agent = admin.get_agent(pb::GetAgentRequest { id: phone.agent_id.clone() }).await?.into_inner();
        Ok(agent.status == pb::AgentStatus::OffDuty as i32)
    })
    .await?;
    let away = offset_m(phone.at.0, phone.at.1, 300.0, 300.0);
    browser::set_position(page, away.0, away.1).await?;
    tokio::time::sleep(Duration::from_secs(u64::from(GRADE_I_INTERVAL_S) * 3)).await;
    let agent = admin.get_agent(pb::GetAgentRequest { id: phone.agent_id.clone() }).await?.into_inner();
    anyhow::ensure!(
        agent.location.is_none_or(|place| (place.lon - away.0).abs() > 1e-6),
        "no position is sent off duty: {:?}",
        agent.location
    );
    anyhow::ensure!(text(page, "#location-state").await?.contains("下班"), "the page says no position is sent");
    phone.shot("off-duty").await?;
    phone.close().await
}

/// A reserve off duty (the app sends no position then) is called up and
/// checks in with one tap: the check-in says "I am here", so the app reads
/// and sends the position first; the dispatcher refuses a check-in without
/// a fresh one, and the position from before going off duty is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_duty_reserve_checks_in_with_one_tap_and_the_position_goes_with_it() -> anyhow::Result<()> {
    const STALE_S: u64 = 2;
    let Some(phone) = signed_in_phone("phone-reserve", |config| config.policy.location_stale_s = STALE_S).await? else {
        return Ok(());
    };
    let page = &phone.page;
    let mut admin = phone.server.command().await?;
    tap(page, "#statuses button[data-status=OFF_DUTY]").await?;
    wait_until(Duration::from_secs(20), "off duty reaches the dispatcher", async || {
        let agent = admin.get_agent(pb::GetAgentRequest { id: phone.agent_id.clone() }).await?.into_inner();
        Ok(agent.status == pb::AgentStatus::OffDuty as i32)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(STALE_S + 1)).await;
    let callup = admin
        .call_up(pb::CallUpRequest {
            area_id: "d1-s1".into(),
            roles: vec![pb::Role::Volunteer as i32],
            reason: "防汛备勤：到社区服务中心集结".into(),
            deadline_s: 600,
        })
        .await?
        .into_inner();
    let button = format!("#callups [data-callup-id=\"{}\"] .check-in", callup.id);
    wait_for(page, "the call-up shows", &format!("document.querySelector('{button}')")).await?;
    tap(page, &button).await?;
    wait_until(Duration::from_secs(20), "the check-in reaches the dispatcher", async || {
        let callups = admin.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
        Ok(callups
            .iter()
            .filter(|status| status.id == callup.id)
            .flat_map(|status| status.people.iter())
            .any(|person| person.agent_id == "phone-reserve" && person.checked_in_at_ms > 0))
    })
    .await?;
    wait_for(page, "the check-in shows", &format!("document.querySelector('{button}').disabled")).await?;
    phone.close().await
}

/// One HTTP/1.1 GET with `headers`; the answer's head (lowercased) and its body's bytes.
async fn get(address: std::net::SocketAddr, path: &str, headers: &str) -> anyhow::Result<(String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let end = answer.windows(4).position(|window| window == b"\r\n\r\n").context("no end of the answer's head")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    Ok((head, answer[end + 4..].to_vec()))
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

#[tokio::test]
async fn the_apps_files_go_gzipped_to_a_browser_that_takes_it_and_unzip_to_the_same_bytes() -> anyhow::Result<()> {
    use std::io::Read;
    let server = TestServer::start_with_web(|_| {}).await?;
    let address = server.web_address().context("the server has a web port")?;
    let text_files =
        ["/field/", "/field/app.js", "/field/app.css", "/field/sw.js", "/field/manifest.webmanifest", "/", "/app.js"];
    for path in text_files {
        let (plain_head, plain) = get(address, path, "").await?;
        assert!(plain_head.starts_with("http/1.1 200"), "{path}: {plain_head}");
        assert_eq!(header_value(&plain_head, "content-encoding"), None, "{path} without Accept-Encoding: {plain_head}");
        let (gzip_head, gzipped) = get(address, path, "Accept-Encoding: gzip, deflate, br\r\n").await?;
        assert!(gzip_head.starts_with("http/1.1 200"), "{path}: {gzip_head}");
        assert_eq!(header_value(&gzip_head, "content-encoding"), Some("gzip"), "{path}: {gzip_head}");
        assert_eq!(header_value(&gzip_head, "vary"), Some("accept-encoding"), "{path}: {gzip_head}");
        assert_eq!(header_value(&plain_head, "vary"), Some("accept-encoding"), "{path}: {plain_head}");
        assert_eq!(header_value(&gzip_head, "content-type"), header_value(&plain_head, "content-type"), "{path}");
        assert!(gzipped.len() < plain.len(), "{path}: gzipped {} bytes, plain {}", gzipped.len(), plain.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(gzipped.as_slice()).read_to_end(&mut unzipped)?;
        assert!(unzipped == plain, "{path}: the gzipped answer unzips to other bytes than the plain one");
        // Each form has its own validator, and a browser's current copy gets a 304 with no body.
        let plain_tag = header_value(&plain_head, "etag").context("no etag")?.to_string();
        let gzip_tag = header_value(&gzip_head, "etag").context("no etag")?.to_string();
        assert_ne!(plain_tag, gzip_tag, "{path}");
        let (again, body) = get(address, path, &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gzip_tag}\r\n")).await?;
        assert!(again.starts_with("http/1.1 304") && body.is_empty(), "{path}: {again}");
        let (other, body) = get(address, path, &format!("If-None-Match: {gzip_tag}\r\n")).await?;
        assert!(other.starts_with("http/1.1 200") && body == plain, "{path}: the gzipped form's tag for the plain form: {other}");
    }
    // Images are already compressed: sent as they are, whatever the browser takes.
    let (head, _) = get(address, "/field/icon-512.png", "Accept-Encoding: gzip\r\n").await?;
    assert!(head.starts_with("http/1.1 200") && header_value(&head, "content-encoding").is_none(), "{head}");
    server.shutdown().await
}

/// A shift of `GRID` every day from local midnight for 24 hours, so that
/// whoever works it is on shift whenever the test runs.
fn all_day(id: &str, people: &[&str]) -> pb::Shift {
    pb::Shift {
        id: id.to_string(),
        area_id: GRID.to_string(),
        duty: "duty_officer".to_string(),
        days: (1..=7).collect(),
        start_minute: 0,
        length_minutes: 24 * 60,
        agent_ids: people.iter().map(|person| person.to_string()).collect(),
    }
}

/// Scrolls the 我的班次 card into view for a screenshot.
async fn show_shifts(page: &Page) -> anyhow::Result<()> {
    eval::<bool>(
        page,
        "(() => { document.getElementById('shifts-card').scrollIntoView(); \
         window.scrollBy(0, -document.querySelector('header').offsetHeight); return true; })()",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_their_shifts_checks_in_and_out_and_asks_a_colleague_to_swap() -> anyhow::Result<()> {
    let Some(phone) = signed_in_phone("phone-shifts", |_| {}).await? else {
        return Ok(());
    };
    let page = &phone.page;
    let mut admin = phone.server.command().await?;
    let colleague = pb::AgentSpec { name: "李明".to_string(), ..person("li-ming", GRID, &[]) };
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(colleague) }).await?;
    let mut rosters = RosterServiceClient::with_interceptor(
        phone.server.channel().await?,
        pingji_client::auth::BearerToken::new(Some(pingji_tests::ADMIN_TOKEN)).unwrap_or_default(),
    );
    let shifts = vec![all_day("g2-duty", &[&phone.agent_id]), all_day("g2-backup", &["li-ming"])];
    rosters.set_shifts(pb::SetShiftsRequest { shifts }).await?;
    let area_name = admin
        .list_areas(pb::ListAreasRequest::default())
        .await?
        .into_inner()
        .areas
        .into_iter()
        .find(|area| area.id == GRID)
        .map(|area| area.name)
        .context("the grid is on the map")?;

    // Today's shift first, running now, in Chinese with the area's name.
    tap(page, "#shifts-refresh").await?;
    wait_for(page, "the shifts show", "document.querySelectorAll('#shifts-list li.shift').length >= 7").await?;
    let first = text(page, "#shifts-list li.shift").await?;
    assert!(first.contains(&format!("值班领导 · {area_name}")) && first.contains("今天") && first.contains("进行中"), "{first}");
    assert!(first.contains("00:00–次日00:00"), "a 24-hour shift ends the next day: {first}");
    assert!(!first.contains(GRID), "the area's name, not its id: {first}");
    assert!(text(page, "#shifts-list li.shift:nth-child(2)").await?.contains("明天"));
    show_shifts(page).await?;
    phone.shot("shifts").await?;
    assert_accessible(page, "my shifts").await?;

    tap(page, "#shift-check-in").await?;
    wait_for(
        page,
        "the check-in shows",
        "document.getElementById('shift-check-out') && document.querySelector('#shifts-list .badge.done')",
    )
    .await?;
    let on_duty = rosters.on_duty_now(pb::OnDutyNowRequest { area_id: GRID.into() }).await?.into_inner();
    assert!(on_duty.on_duty.iter().any(|o| o.shift_id == "g2-duty" && o.checked_in_agent_ids == [phone.agent_id.clone()]));
    show_shifts(page).await?;
    phone.shot("shifts-checked-in").await?;

    // Tomorrow's, to the colleague, by name.
    tap(page, "#shifts-list li.shift:nth-child(2) .ask-swap").await?;
    wait_for(page, "the swap form shows", "document.getElementById('swap-to')").await?;
    assert_eq!(text(page, "#swap-to option").await?, "李明");
    phone.shot("shifts-swap").await?;
    assert_accessible(page, "the swap form").await?;
    tap(page, "#swap-send").await?;
    wait_for(page, "the swap shows as waiting", "document.querySelector('#shifts-swaps li[data-status=REQUESTED]')").await?;
    let swaps = rosters.list_swaps(pb::ListSwapsRequest { agent_id: phone.agent_id.clone() }).await?.into_inner().swaps;
    assert_eq!(swaps.len(), 1, "{swaps:?}");
    assert_eq!((swaps[0].to_agent_id.as_str(), swaps[0].status()), ("li-ming", pb::SwapStatus::Requested));
    let tomorrow: String = eval(page, "document.querySelector('#shifts-list li.shift:nth-child(2)').dataset.day").await?;
    assert_eq!(tomorrow, swaps[0].day.to_string());

    // A commander approves; the phone shows it, and the day is gone.
    rosters.decide_swap(pb::DecideSwapRequest { swap_id: swaps[0].id.clone(), approve: true, reason: String::new() }).await?;
    tap(page, "#shifts-refresh").await?;
    wait_for(page, "the approval shows", "document.querySelector('#shifts-swaps li[data-status=APPROVED]')").await?;
    let swap = text(page, "#shifts-swaps li").await?;
    assert!(swap.contains("李明") && swap.contains("已批准") && swap.contains("明天"), "{swap}");
    let days: Vec<String> =
        eval(page, "[...document.querySelectorAll('#shifts-list li.shift')].map((item) => item.dataset.day)").await?;
    assert!(!days.contains(&tomorrow), "{days:?}");
    show_shifts(page).await?;
    phone.shot("shifts-swapped").await?;

    tap(page, "#shift-check-out").await?;
    wait_for(page, "the check-out shows", "document.getElementById('shift-check-in')").await?;
    let on_duty = rosters.on_duty_now(pb::OnDutyNowRequest { area_id: GRID.into() }).await?.into_inner();
    assert!(on_duty.on_duty.iter().all(|o| o.checked_in_agent_ids.is_empty()), "{on_duty:?}");
    // A calendar link, to paste into a calendar app; stopped again.
    tap(page, "#calendar-create").await?;
    wait_for(page, "the link shows", "document.getElementById('calendar-url').value.includes('/calendar/')").await?;
    let url: String = eval(page, "document.getElementById('calendar-url').value").await?;
    let path = url.split_once("/calendar/").map(|(_, secret)| format!("/calendar/{secret}")).context("a calendar path")?;
    let web = phone.server.web_address().context("the web port")?;
    let (head, ics) = get(web, &path, "").await?;
    assert!(head.starts_with("http/1.1 200") && String::from_utf8_lossy(&ics).contains("BEGIN:VEVENT"), "{head}");
    eval::<bool>(page, "(() => { document.getElementById('calendar-url').scrollIntoView({ block: 'center' }); return true; })()")
        .await?;
    phone.shot("shifts-calendar").await?;
    assert_accessible(page, "the calendar link").await?;
    tap(page, "#calendar-revoke").await?;
    wait_for(page, "the link is stopped", "document.getElementById('calendar-url').hidden").await?;
    assert!(get(web, &path, "").await?.0.starts_with("http/1.1 404"));
    // In English too.
    tap(page, "#language").await?;
    wait_for(page, "English", "document.querySelector('#shifts-list li.shift').textContent.includes('Duty officer')").await?;
    show_shifts(page).await?;
    phone.shot("shifts-en").await?;
    phone.close().await
}
