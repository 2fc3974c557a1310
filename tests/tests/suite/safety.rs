//! Safety check-ins on scene (PAR, 报平安) and help calls (求助), over real
//! gRPC with a SQLite journal, on a clock the test moves by hand: a missed
//! check-in is an event after the policy's interval, the second miss sends
//! the nearest qualified person to look, a check-in starts the clock again,
//! and help reports a priority-1 incident, tells the caller's team and goes
//! through when the caller is over their rate limit.

use std::time::Duration;

use anyhow::Context;
use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_engine::policy::Policy;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{
    AgentSession, Commands, EventWatch, TestClock, TestServer, agent_token, area_box, body, offset_m, pb, person, quick_policy,
    wait_until,
};
use tonic::Code;

const PROMPTLY: Duration = Duration::from_secs(20);
const GRID: &str = "d1-s1-c1-g1";
const START_MS: i64 = 1_800_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);

/// Check-ins every 10 minutes in normal mode (off by default).
fn policy() -> Policy {
    let mut policy = quick_policy();
    policy.safety.interval_min.normal = Some(10);
    policy
}

async fn server(clock: &TestClock, journal: std::path::PathBuf, per_s: Option<u32>) -> anyhow::Result<TestServer> {
    let clock = clock.clone();
    TestServer::start(move |config| {
        config.policy = policy();
        config.store = pingji_dispatcher::server::Store::Sqlite(journal);
        config.clock = clock.for_dispatcher();
        if let Some(per_s) = per_s {
            config.limits.agent_messages_per_s = per_s;
        }
    })
    .await
}

/// `id` on the roster at home in the test grid, with a session, at `at`.
async fn located(server: &TestServer, command: &mut Commands, id: &str, at: (f64, f64)) -> anyhow::Result<AgentSession> {
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, GRID, &[])) }).await?;
    let session = server.open_session(id).await?;
    session.send_location(at.0, at.1).await?;
    wait_until(PROMPTLY, &format!("{id} is located"), async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: id.to_string() }).await?.into_inner();
        Ok(agent.location.is_some())
    })
    .await?;
    Ok(session)
}

/// The next message `pick` takes, skipping others.
async fn expect<T>(session: &mut AgentSession, what: &str, pick: impl Fn(Incoming) -> Option<T>) -> anyhow::Result<T> {
    for _ in 0..30 {
        let message = session.next_message_within(PROMPTLY).await.with_context(|| format!("waiting for {what}"))?;
        if let Some(found) = pick(message) {
            return Ok(found);
        }
    }
    anyhow::bail!("no {what} among the next 30 messages")
}

/// `worker` is offered an incident 100 m west of `at` and accepts it.
async fn assign(command: &mut Commands, worker: &mut AgentSession, at: (f64, f64)) -> anyhow::Result<String> {
    let (lon, lat) = offset_m(at.0, at.1, -100.0, 0.0);
    let request = pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "flooding".into(),
        priority: 2,
        headcount: 1,
        description: "water in a basement".into(),
        ..Default::default()
    };
    let incident = command.create_incident(request).await?.into_inner();
    let offer = expect(worker, "the offer", |message| match message {
        Incoming::Offer(offer) if offer.incident_id == incident.id => Some(offer),
        _ => None,
    })
    .await?;
    worker.accept(&offer.offer_id).await?;
    // The accept goes on the person's stream: wait until it is carried out,
    // or a clock moved on next could time the offer out before it arrives.
    wait_until(PROMPTLY, "the offer accepted", async || {
        let found = command.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
        Ok(!found.assignments.is_empty())
    })
    .await?;
    Ok(incident.id)
}

/// Moves the clock on and has the dispatcher look at it (any call to the
/// task that owns the engine makes it fire the deadlines now due).
async fn advance(clock: &TestClock, command: &mut Commands, by: Duration) -> anyhow::Result<()> {
    clock.advance(by);
    command.list_incidents(pb::ListIncidentsRequest::default()).await?;
    Ok(())
}

fn missed(event: &pb::Event) -> Option<&pb::event::SafetyCheckMissed> {
    match body(event).ok()? {
        pb::event::Body::SafetyCheckMissed(missed) => Some(missed),
        _ => None,
    }
}

#[tokio::test]
async fn a_missed_check_in_alerts_and_the_second_miss_sends_the_nearest_person_to_look() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::at(START_MS);
    let server = server(&clock, dir.path().join("pingji.db"), None).await?;
    let mut command = server.command().await?;
    let centre = area_box(&mut command, GRID).await?.centre();
    let mut worker = located(&server, &mut command, "worker", centre).await?;
    let near_at = offset_m(centre.0, centre.1, 300.0, 0.0);
    let far_at = offset_m(centre.0, centre.1, 900.0, 0.0);
    let mut near = located(&server, &mut command, "near", near_at).await?;
    let far = located(&server, &mut command, "far", far_at).await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;
    let incident = assign(&mut command, &mut worker, centre).await?;

    let due = expect(&mut worker, "when the first check-in is due", |message| match message {
        Incoming::SafetyCheckDue(due) => Some(due),
        _ => None,
    })
    .await?;
    assert_eq!((due.incident_id.as_str(), due.due_ms, due.interval_s), (incident.as_str(), START_MS + 600_000, 600));

    advance(&clock, &mut command, 10 * MINUTE).await?;
    let first = watch.wait_for(PROMPTLY, "the first miss", |event| missed(event).is_some()).await?;
    let first = missed(&first).context("a miss")?.clone();
    assert_eq!((first.agent_id.as_str(), first.miss, first.due_ms), ("worker", 1, START_MS + 600_000));
    assert!(first.welfare_incident_id.is_empty(), "one miss sends nobody");
    let told = expect(&mut worker, "the overdue notice", |message| match message {
        Incoming::SafetyCheckDue(due) => Some(due),
        _ => None,
    })
    .await?;
    assert_eq!((told.misses, told.due_ms), (1, START_MS + 1_200_000));

    // The others' phones keep reporting where they are; the worker's went quiet.
    advance(&clock, &mut command, 9 * MINUTE).await?;
    near.send_location(near_at.0, near_at.1).await?;
    far.send_location(far_at.0, far_at.1).await?;
    advance(&clock, &mut command, MINUTE).await?;
    let second =
        watch.wait_for(PROMPTLY, "the second miss", |event| missed(event).is_some_and(|missed| missed.miss == 2)).await?;
    let welfare = missed(&second).context("a miss")?.welfare_incident_id.clone();
    assert!(!welfare.is_empty(), "the second miss sends a welfare check");
    let check = command.get_incident(pb::GetIncidentRequest { id: welfare.clone() }).await?.into_inner();
    assert_eq!((check.category.as_str(), check.priority), ("welfare_check", 1));
    let offer = expect(&mut near, "the welfare check's offer", |message| match message {
        Incoming::Offer(offer) if offer.incident_id == welfare => Some(offer),
        _ => None,
    })
    .await?;
    assert!(offer.distance_m < 500.0, "the nearest: {offer:?}");
    let why = command.explain_incident(pb::ExplainIncidentRequest { incident_id: welfare.clone(), ..Default::default() }).await;
    assert!(why.is_ok(), "explainable like any incident: {why:?}");

    drop((worker, near, far, watch));
    server.shutdown().await
}

#[tokio::test]
async fn a_check_in_starts_the_clock_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::at(START_MS);
    let server = server(&clock, dir.path().join("pingji.db"), None).await?;
    let mut command = server.command().await?;
    let centre = area_box(&mut command, GRID).await?.centre();
    let mut worker = located(&server, &mut command, "worker", centre).await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;
    assign(&mut command, &mut worker, centre).await?;

    advance(&clock, &mut command, 8 * MINUTE).await?;
    worker.send(pb::agent_message::Body::SafetyCheckIn(pb::SafetyCheckIn {})).await?;
    watch.wait_for(PROMPTLY, "the check-in", |event| event.kind == "safety_check_in").await?;
    let due = expect(&mut worker, "the next due time", |message| match message {
        Incoming::SafetyCheckDue(due) if due.due_ms != START_MS + 600_000 => Some(due),
        _ => None,
    })
    .await?;
    assert_eq!(due.due_ms, START_MS + 18 * 60_000, "10 minutes after the check-in");

    // Past the old due time: nothing; at the new one: the miss.
    advance(&clock, &mut command, 3 * MINUTE).await?;
    advance(&clock, &mut command, 7 * MINUTE).await?;
    let miss = watch.wait_for(PROMPTLY, "a miss", |event| missed(event).is_some()).await?;
    assert_eq!(missed(&miss).map(|missed| missed.due_ms), Some(START_MS + 18 * 60_000), "not the old due time");

    drop((worker, watch));
    server.shutdown().await
}

#[tokio::test]
async fn help_reports_a_priority_one_incident_tells_the_team_and_is_never_rate_limited() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::at(START_MS);
    // 5 calls a second, bursts of 10.
    let server = server(&clock, dir.path().join("pingji.db"), Some(5)).await?;
    let mut command = server.command().await?;
    let centre = area_box(&mut command, GRID).await?.centre();
    let mut teammate = located(&server, &mut command, "teammate", offset_m(centre.0, centre.1, 400.0, 0.0)).await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("caller", GRID, &[])) }).await?;
    let token = agent_token(&mut command, "caller").await?;
    let caller = FieldClient::new(server.channel().await?, AgentCredentials::new("caller", &token).map_err(anyhow::Error::msg)?);
    let (_welcome, _stream) = caller.listen().await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;

    // The caller's phone is over its budget: other calls are refused...
    let mut spent = false;
    for _ in 0..40 {
        if let Err(status) = caller.mark_message_read("no-such-message").await
            && status.code() == Code::ResourceExhausted
        {
            spent = true;
            break;
        }
    }
    assert!(spent, "40 calls at once go over 5 a second");
    // ...but help goes through, at once, and many times over.
    let at = offset_m(centre.0, centre.1, 50.0, 0.0);
    for _ in 0..3 {
        caller.request_help(Some(at), "trapped by water").await.context("help is never rate-limited")?;
    }
    let help = watch.wait_for(PROMPTLY, "the help call", |event| event.kind == "help_requested").await?;
    let Ok(pb::event::Body::HelpRequested(help)) = body(&help) else { anyhow::bail!("not a help call: {help:?}") };
    assert_eq!(help.agent_id, "caller");
    assert_eq!(help.team_agent_ids, ["teammate"], "the people at home in the caller's grid");
    let incident = command.get_incident(pb::GetIncidentRequest { id: help.incident_id.clone() }).await?.into_inner();
    assert_eq!((incident.category.as_str(), incident.priority), ("help", 1));
    let place = incident.location.context("a place")?;
    assert!((place.lon - at.0).abs() < 1e-9 && (place.lat - at.1).abs() < 1e-9, "at the caller's position: {place:?}");
    let call = expect(&mut teammate, "the help call on the teammate's phone", |message| match message {
        Incoming::HelpCall(call) => Some(call),
        _ => None,
    })
    .await?;
    assert_eq!((call.agent_id.as_str(), call.incident_id.as_str()), ("caller", help.incident_id.as_str()));

    // Without a session too (a phone whose session was lost).
    caller.use_session(0);
    caller.request_help(None, "").await.context("help without a session")?;
    let without = watch
        .wait_for(PROMPTLY, "the second help call", |event| {
            event.kind == "help_requested" && event.incident_id != help.incident_id
        })
        .await?;
    assert_eq!(without.agent_id, "caller");

    drop((teammate, watch));
    server.shutdown().await
}

/// The phone app in a real headless Chromium (a phone, 390×844): the 报平安
/// prompt shows on the task when a check-in is due and one tap checks in;
/// the 求助 button asks before it sends (cancel sends nothing), sends with
/// the phone's position, and offline waits in the outbox and goes when the
/// network is back; the command map shows the help call as an alert with
/// the person. Screenshots: `target/web-screenshots/safety-*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_app_checks_in_safe_and_sends_help_after_confirming_and_the_map_alerts() -> anyhow::Result<()> {
    use pingji_tests::browser::{self, TestBrowser, accessibility_problems, eval, resize, screenshot, screenshot_folder};
    use pingji_tests::browser::{set_offline, tap, type_text, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    const PHONE_GRID: &str = "d1-s1-c1-g2";
    // Check-ins every minute: the prompt shows as soon as the task starts.
    let server = TestServer::start_with_web(|config| {
        config.policy = policy();
        config.policy.safety.interval_min.normal = Some(1);
    })
    .await?;
    let address = server.web_address().context("a web port")?;
    let mut admin = server.command().await?;
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("phone-safe", PHONE_GRID, &["first_aid"])) }).await?;
    let token = server.agent_token("phone-safe").await?;
    let at = area_box(&mut admin, PHONE_GRID).await?.at(0.4, 0.4);
    let browser = TestBrowser::launch(&chromium).await?;
    let origin = format!("http://{address}");
    browser.allow_geolocation(&origin).await?;
    let page = browser.open_phone(&format!("{origin}/field/#t={token}&a=phone-safe"), at.0, at.1).await?;
    wait_for(&page, "the session opens", "document.getElementById('connection').dataset.state === 'online'").await?;
    wait_until(PROMPTLY, "the phone is located", async || {
        let agent = admin.get_agent(pb::GetAgentRequest { id: "phone-safe".into() }).await?.into_inner();
        Ok(agent.location.is_some())
    })
    .await?;
    let mut watch = EventWatch::start(&mut admin, 0).await?;
    let shot = |name: &str| screenshot_folder().join(format!("safety-{name}.png"));

    // The help button is there before any task, in Chinese, with a label.
    wait_for(&page, "the help button shows", "!document.getElementById('help').hidden").await?;
    let label: String = eval(&page, "document.getElementById('help').textContent.trim()").await?;
    anyhow::ensure!(label.starts_with("求助"), "the button says 求助 first: {label}");

    // A task, accepted on the phone: the check-in prompt shows.
    let (lon, lat) = offset_m(at.0, at.1, 100.0, 110.0);
    let incident = admin
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            description: "老人在楼道摔倒".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    wait_for(&page, "the offer takes the screen", "!document.getElementById('offer-view').hidden").await?;
    tap(&page, "#accept").await?;
    wait_for(&page, "the check-in prompt shows", "!document.getElementById('safety').hidden").await?;
    let prompt: String = eval(&page, "document.getElementById('safety').textContent").await?;
    anyhow::ensure!(prompt.contains("报平安"), "the prompt says 报平安: {prompt}");
    screenshot(&page, &shot("phone-check-in")).await?;
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core on the check-in prompt:\n{}", problems.join("\n"));
    tap(&page, "#safety-check-in").await?;
    let checked = watch.wait_for(PROMPTLY, "the check-in", |event| event.kind == "safety_check_in").await?;
    assert_eq!((checked.agent_id.as_str(), checked.incident_id.as_str()), ("phone-safe", incident.id.as_str()));

    // 求助: the first tap only asks; cancel sends nothing.
    tap(&page, "#help").await?;
    wait_for(&page, "the confirmation asks", "!document.getElementById('help-confirm').hidden").await?;
    screenshot(&page, &shot("phone-help-confirm")).await?;
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core on the help confirmation:\n{}", problems.join("\n"));
    tap(&page, "#help-cancel").await?;
    wait_for(&page, "the confirmation closes", "document.getElementById('help-confirm').hidden").await?;
    // Offline, it waits on the phone; back online, it goes.
    set_offline(&page, true).await?;
    wait_for(&page, "the page knows it is offline", "document.getElementById('connection').dataset.state === 'offline'").await?;
    tap(&page, "#help").await?;
    type_text(&page, "#help-text", "水漫进楼道，被困").await?;
    tap(&page, "#help-send").await?;
    wait_for(&page, "the help call waits in the outbox", "document.getElementById('queued').dataset.count === '1'").await?;
    screenshot(&page, &shot("phone-help-queued")).await?;
    anyhow::ensure!(
        !watch.seen().iter().any(|event| event.kind == "help_requested"),
        "nothing was sent while offline or cancelled"
    );
    set_offline(&page, false).await?;
    let help = watch.wait_for(PROMPTLY, "the help call", |event| event.kind == "help_requested").await?;
    let Ok(pb::event::Body::HelpRequested(call)) = body(&help) else { anyhow::bail!("not a help call: {help:?}") };
    assert_eq!(
        (call.agent_id.as_str(), call.text.as_str(), call.position_from.as_str()),
        ("phone-safe", "水漫进楼道，被困", "sent")
    );
    wait_for(&page, "the outbox empties", "document.getElementById('queued').dataset.count === '0'").await?;
    resize(&page, (1280, 800)).await?;
    screenshot(&page, &shot("phone-desk")).await?;

    // The command map: the help call is an alert with the person and the time.
    let operator = pingji_tests::add_operator(&mut admin, "duty", pb::OperatorRole::Dispatcher).await?;
    let map = browser.open(&format!("{origin}/")).await?;
    wait_for(&map, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    map.find_element("#token").await?.click().await?.type_str(&operator).await?.press_key("Enter").await?;
    wait_for(
        &map,
        "the help alert shows",
        "!document.getElementById('safety-panel').hidden && \
         document.querySelector('#safety-alerts li[data-kind=\"help\"][data-agent-id=\"phone-safe\"] time') !== null",
    )
    .await?;
    screenshot(&map, &shot("map-alert")).await?;
    let problems = accessibility_problems(&map).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core on the map with an alert:\n{}", problems.join("\n"));

    drop(watch);
    browser.close().await?;
    server.shutdown().await
}
