//! Web Push to the installed phone app (#20): a real push service on
//! loopback (`pingji_tests::push_service`) takes the subscription's pushes,
//! checks each VAPID token's ES256 signature and decrypts the RFC 8291
//! payload with the private key the phone (the test) kept. An offer made
//! to the person arrives there; a subscription the push service says is
//! gone (410) is forgotten; bad subscriptions are refused and keep nothing.

use std::time::Duration;

use pingji_client::errors::{bad_fields, reason};
use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::push_service::{PushService, TestSubscription};
use pingji_tests::{Commands, TestServer, agent_token, area_box, offset_m, pb, person, quick_policy, wait_until};
use tonic::Code;

const PROMPTLY: Duration = Duration::from_secs(20);
const GRID: &str = "d1-s1-c1-g1";

/// A dispatcher taking http:// push endpoints on loopback (the local push service).
async fn server() -> anyhow::Result<TestServer> {
    TestServer::start(|config| {
        config.policy = quick_policy();
        config.push.allow_loopback_http = true;
        config.push.subject = "mailto:ops@pingji.test".to_string();
    })
    .await
}

async fn phone(server: &TestServer, command: &mut Commands, id: &str) -> anyhow::Result<FieldClient> {
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, GRID, &["first_aid"])) }).await?;
    let token = agent_token(command, id).await?;
    Ok(FieldClient::new(server.channel().await?, AgentCredentials::new(id, &token).map_err(anyhow::Error::msg)?))
}

async fn register(client: &FieldClient, subscription: &TestSubscription) -> Result<pb::RegisterPushResponse, tonic::Status> {
    let request = pb::RegisterPushRequest {
        endpoint: subscription.endpoint.clone(),
        p256dh: subscription.p256dh.clone(),
        auth: subscription.auth.clone(),
    };
    Ok(client.grpc().register_push(request).await?.into_inner())
}

async fn message_to(command: &mut Commands, id: &str, text: &str) -> anyhow::Result<String> {
    let to = pb::MessageAudience { to: Some(pb::message_audience::To::AgentId(id.to_string())) };
    Ok(command.send_message(pb::SendMessageRequest { to: Some(to), text: text.to_string() }).await?.into_inner().id)
}

/// `id` listens, is located in the grid, and is offered a new incident
/// 150 m away: the stream, the incident and the offer.
async fn offered(
    command: &mut Commands,
    client: &FieldClient,
    id: &str,
) -> anyhow::Result<(tonic::Streaming<pb::DispatchMessage>, pb::Incident, pb::Offer)> {
    let (_, mut stream) = client.listen().await?;
    let (lon, lat) = area_box(command, GRID).await?.centre();
    client.report_location(lon, lat).await?;
    wait_until(PROMPTLY, "the person is located", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: id.into() }).await?.into_inner();
        Ok(agent.location.is_some())
    })
    .await?;
    let (incident_lon, incident_lat) = offset_m(lon, lat, 150.0, 0.0);
    let incident = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(incident_lon, incident_lat)),
            category: "积水".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            description: "地下车库进水".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let offer = loop {
        let message = tokio::time::timeout(PROMPTLY, stream.message()).await??.ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        if let Some(Incoming::Offer(offer)) = message.body {
            break offer;
        }
    };
    Ok((stream, incident, offer))
}

#[tokio::test]
async fn an_offer_reaches_the_phone_through_its_push_service_signed_and_encrypted() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = server().await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-1").await?;
    let key = client.grpc().get_push_key(pb::GetPushKeyRequest {}).await?.into_inner().application_server_key;
    assert_eq!(key.len(), 87, "65 bytes in base64url: {key}");
    let subscription = push.subscribe()?;
    assert_eq!(register(&client, &subscription).await?.subscriptions, 1);

    let (stream, incident, offer) = offered(&mut command, &client, "push-1").await?;
    wait_until(PROMPTLY, "the offer's push", async || Ok(push.delivered() >= 1)).await?;

    let pushed = push.pushed().into_iter().find(|pushed| pushed.json()["kind"] == "offer").expect("the offer's push");
    assert_eq!(pushed.status, 201, "{pushed:?}");
    let claims = pushed.vapid.clone().map_err(anyhow::Error::msg)?;
    assert_eq!(claims["aud"], push.origin());
    assert_eq!(claims["sub"], "mailto:ops@pingji.test");
    assert!(pushed.headers["authorization"].ends_with(&format!("k={key}")), "signed with the key the app was given");
    let notice = pushed.json();
    assert_eq!(notice["id"], offer.offer_id.as_str());
    assert_eq!(notice["incident_id"], incident.id.as_str());
    assert_eq!(notice["title"], "新任务：积水");
    assert_eq!(notice["deadline_ms"], offer.deadline_ms);
    assert!(notice.get("location").is_none() && !notice.to_string().contains("地下车库"), "nothing more than needed: {notice}");
    assert_eq!(pushed.headers["urgency"], "high");
    assert_eq!(pushed.headers["content-encoding"], "aes128gcm");
    assert_eq!(pushed.headers["topic"].len(), 32);
    let ttl: u64 = pushed.headers["ttl"].parse()?;
    assert!((1..=120).contains(&ttl), "an offer is worth delivering until its deadline: ttl {ttl}");

    // Accepted through the normal call, as the notification's action does.
    client.accept_offer(&offer.offer_id, &client.new_key()).await?;
    drop(stream);
    server.shutdown().await
}

/// The app closed (its session ended) on a phone that takes push: the
/// person keeps the offer they were answering, stays a candidate for new
/// incidents until their location is stale, is offered through the push
/// service, and accepts from the notification (which opens a session and
/// accepts, as the service worker does). Without a subscription, closing
/// the app withdraws the offer, as before.
#[tokio::test]
async fn with_the_app_closed_a_phone_that_takes_push_is_still_offered_and_accepts_from_the_notification() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = server().await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-closed").await?;
    register(&client, &push.subscribe()?).await?;
    let (stream, first, first_offer) = offered(&mut command, &client, "push-closed").await?;
    drop(stream);
    wait_until(PROMPTLY, "the session ended", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "push-closed".into() }).await?.into_inner();
        Ok(!agent.connected)
    })
    .await?;
    let agent = command.get_agent(pb::GetAgentRequest { id: "push-closed".into() }).await?.into_inner();
    assert!(agent.location.is_some(), "still located: a candidate with the app closed");
    let incident = command.get_incident(pb::GetIncidentRequest { id: first.id.clone() }).await?.into_inner();
    assert!(
        incident.open_offers.iter().any(|offer| offer.offer_id == first_offer.offer_id),
        "the offer stays open: {incident:?}"
    );
    // Declined from the notification, then a new incident nearby: offered
    // to the closed app through the push service.
    let (_, reopened) = client.listen().await?;
    client.decline_offer(&first_offer.offer_id, "busy").await?;
    drop(reopened);
    wait_until(PROMPTLY, "the session ended again", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "push-closed".into() }).await?.into_inner();
        Ok(!agent.connected)
    })
    .await?;
    let pushed_before = push.delivered();
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    let (incident_lon, incident_lat) = offset_m(lon, lat, 0.0, 120.0);
    let second = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(incident_lon, incident_lat)),
            category: "老人跌倒".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    wait_until(PROMPTLY, "the new offer pushed", async || {
        Ok(push.pushed().iter().skip(pushed_before).any(|pushed| pushed.json()["incident_id"] == second.id.as_str()))
    })
    .await?;
    let pushed = push.pushed().into_iter().skip(pushed_before).find(|pushed| pushed.json()["kind"] == "offer").expect("pushed");
    assert_eq!(pushed.json()["title"], "新任务：老人跌倒");
    let offer_id = pushed.json()["id"].as_str().unwrap_or_default().to_string();
    // The notification's 接受: a session, then the normal call.
    let (welcome, _stream) = client.listen().await?;
    assert!(welcome.open_offers.iter().any(|offer| offer.offer_id == offer_id), "the welcome carries the open offer");
    client.accept_offer(&offer_id, &client.new_key()).await?;
    let incident = command.get_incident(pb::GetIncidentRequest { id: second.id.clone() }).await?.into_inner();
    assert!(incident.assignments.iter().any(|assignment| assignment.agent_id == "push-closed"), "{incident:?}");

    // Someone without a subscription: closing the app withdraws the offer.
    let other = phone(&server, &mut command, "no-push").await?;
    let (stream, third, _) = offered(&mut command, &other, "no-push").await?;
    drop(stream);
    wait_until(PROMPTLY, "the offer withdrawn", async || {
        let incident = command.get_incident(pb::GetIncidentRequest { id: third.id.clone() }).await?.into_inner();
        let agent = command.get_agent(pb::GetAgentRequest { id: "no-push".into() }).await?.into_inner();
        Ok(incident.open_offers.is_empty() && agent.location.is_none())
    })
    .await?;
    server.shutdown().await
}

/// The command map draws a person whose app is closed but whose phone
/// takes push where they last were, marked as away (dashed ring, "应用已关闭，
/// 可收通知"): they are still offered tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_draws_a_person_with_the_app_closed_who_takes_notifications_as_away() -> anyhow::Result<()> {
    use pingji_tests::browser::{self, TestBrowser, eval, screenshot, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let push = PushService::start().await?;
    let server = TestServer::start_with_web(|config| {
        config.policy = quick_policy();
        config.push.allow_loopback_http = true;
    })
    .await?;
    let mut command = server.command().await?;
    let token = pingji_tests::add_operator(&mut command, "duty", pb::OperatorRole::Dispatcher).await?;
    let client = phone(&server, &mut command, "push-away").await?;
    register(&client, &push.subscribe()?).await?;
    let (_, stream) = client.listen().await?;
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    client.report_location(lon, lat).await?;
    drop(stream);
    wait_until(PROMPTLY, "the app closed", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "push-away".into() }).await?.into_inner();
        Ok(!agent.connected && agent.location.is_some())
    })
    .await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let url = format!("http://{}/", server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let page = browser.open(&url).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(&token).await?.press_key("Enter").await?;
    wait_for(
        &page,
        "the person is drawn as away",
        "document.querySelector('#map circle.person.away[data-agent-id=\"push-away\"]') !== null",
    )
    .await?;
    let title: String = eval(&page, "document.querySelector('#map circle.person.away title').textContent").await?;
    assert!(title.contains("应用已关闭，可收通知"), "{title}");
    screenshot(&page, &browser::screenshot_folder().join("desk-person-away-zh.png")).await?;
    server.shutdown().await
}

/// With an escalation ladder in the policy, pushes come from its push
/// rung only (journaled as `notified`), not also from the journal follower.
#[tokio::test]
async fn with_a_ladder_its_push_rung_pushes_once_and_is_journaled() -> anyhow::Result<()> {
    use pingji_engine::event::NoticeChannel;
    use pingji_engine::policy::{Ladder, LadderStep};
    let push = PushService::start().await?;
    let server = TestServer::start(|config| {
        config.policy = quick_policy();
        let steps = vec![LadderStep { channel: NoticeChannel::Push, after_s: 0, if_connected_after_s: Some(0) }];
        config.policy.ladder = Some(Ladder { normal: steps, ..Ladder::default() });
        config.push.allow_loopback_http = true;
    })
    .await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-ladder").await?;
    register(&client, &push.subscribe()?).await?;
    let mut events = pingji_tests::EventWatch::start(&mut command, 0).await?;

    let message = message_to(&mut command, "push-ladder", "请到东门集合").await?;
    let sent = events
        .wait_for(PROMPTLY, "the push rung journaled", |event| {
            matches!(&event.body, Some(pb::event::Body::Notified(notified))
                if notified.channel == pb::NoticeChannel::Push as i32 && notified.outcome == pb::NoticeOutcome::Sent as i32)
        })
        .await?;
    assert!(matches!(&sent.body, Some(pb::event::Body::Notified(notified)) if notified.agent_id == "push-ladder"));
    wait_until(PROMPTLY, "the message pushed", async || Ok(push.delivered() >= 1)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushed = push.pushed();
    assert_eq!(pushed.len(), 1, "pushed once, by the ladder: {pushed:?}");
    assert_eq!(pushed[0].json()["kind"], "message");
    assert_eq!(pushed[0].json()["id"], message.as_str());

    // An offer's push is worth delivering only until the offer runs out.
    let (stream, incident, offer) = offered(&mut command, &client, "push-ladder").await?;
    wait_until(PROMPTLY, "the offer pushed", async || Ok(push.delivered() >= 2)).await?;
    let pushed = push.pushed().into_iter().find(|pushed| pushed.json()["kind"] == "offer").expect("the offer's push");
    assert_eq!(pushed.json()["id"], offer.offer_id.as_str());
    assert_eq!(pushed.json()["incident_id"], incident.id.as_str());
    assert_eq!(pushed.json()["deadline_ms"], offer.deadline_ms);
    assert_eq!(pushed.json()["title"], "新任务：积水", "the rung names the category as the follower does");
    let ttl: u64 = pushed.headers["ttl"].parse()?;
    assert!((1..=120).contains(&ttl), "ttl {ttl} s, not past the offer's deadline");
    drop(stream);
    server.shutdown().await
}

#[tokio::test]
async fn a_subscription_the_push_service_says_is_gone_is_forgotten() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = server().await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-2").await?;
    let old_phone = push.subscribe()?;
    let new_phone = push.subscribe()?;
    register(&client, &old_phone).await?;
    assert_eq!(register(&client, &new_phone).await?.subscriptions, 2);
    push.answer(&old_phone, 410);

    message_to(&mut command, "push-2", "请到东门集合").await?;
    wait_until(PROMPTLY, "both phones pushed", async || Ok(push.pushed().len() >= 2)).await?;
    let statuses: Vec<u16> = push.pushed().iter().map(|pushed| pushed.status).collect();
    assert!(statuses.contains(&410) && statuses.contains(&201), "{statuses:?}");
    let delivered = push.pushed().into_iter().find(|pushed| pushed.status == 201).expect("the new phone's");
    assert_eq!(delivered.json()["kind"], "message");
    assert_eq!(delivered.json()["body"], "请到东门集合");
    assert_eq!(delivered.headers["urgency"], "normal");

    // The old phone's subscription is gone: the next message reaches only the new one.
    message_to(&mut command, "push-2", "收到请回复").await?;
    wait_until(PROMPTLY, "the second message pushed", async || Ok(push.delivered() >= 2)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(push.pushed().iter().filter(|pushed| pushed.status == 410).count(), 1, "not pushed to the gone phone again");
    let removed = client.grpc().remove_push(pb::RemovePushRequest { endpoint: old_phone.endpoint.clone() }).await?.into_inner();
    assert!(!removed.removed, "already forgotten");
    let removed = client.grpc().remove_push(pb::RemovePushRequest { endpoint: new_phone.endpoint.clone() }).await?.into_inner();
    assert!(removed.removed, "the person unsubscribed in the app");
    server.shutdown().await
}

/// A push service busy for a moment (429, then 503) gets the push again,
/// after a second and then two: delivered once, on the third try.
#[tokio::test]
async fn a_push_the_push_service_cannot_take_yet_is_tried_again_with_backoff() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = server().await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-busy").await?;
    let subscription = push.subscribe()?;
    register(&client, &subscription).await?;
    push.answer_next(&subscription, &[429, 503]);
    let message = message_to(&mut command, "push-busy", "请到东门集合").await?;
    wait_until(PROMPTLY, "the message pushed on the third try", async || Ok(push.delivered() >= 1)).await?;
    let pushed = push.pushed();
    let statuses: Vec<u16> = pushed.iter().map(|pushed| pushed.status).collect();
    assert_eq!(statuses, vec![429, 503, 201]);
    assert!(pushed.iter().all(|pushed| pushed.json()["id"] == message.as_str()), "the same notice each time");
    server.shutdown().await
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_the_field_and_keep_nothing() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = server().await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-3").await?;
    let good = push.subscribe()?;
    let bad = |endpoint: &str, p256dh: &str, auth: &str| TestSubscription {
        endpoint: endpoint.to_string(),
        p256dh: p256dh.to_string(),
        auth: auth.to_string(),
    };
    let cases = [
        (bad("ftp://push.example/x", &good.p256dh, &good.auth), "endpoint"),
        (bad("http://push.example/x", &good.p256dh, &good.auth), "endpoint"),
        (bad("", &good.p256dh, &good.auth), "endpoint"),
        (bad(&good.endpoint, &good.p256dh[..40], &good.auth), "p256dh"),
        (bad(&good.endpoint, &format!("B{}", "A".repeat(86)), &good.auth), "p256dh"),
        (bad(&good.endpoint, &good.p256dh, &good.auth[..10]), "auth"),
        (bad(&good.endpoint, &good.p256dh, "not base64!"), "auth"),
    ];
    for (subscription, field) in cases {
        let refused = register(&client, &subscription).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(reason(&refused), Some(pb::ErrorReason::InvalidArgument));
        let fields = bad_fields(&refused);
        assert_eq!(fields.first().map(|(name, _)| name.as_str()), Some(field), "{refused:?}");
        assert!(!refused.message().contains(&good.endpoint), "the endpoint is not echoed: {}", refused.message());
    }
    // Someone else's token is no way in.
    let anonymous =
        FieldClient::new(server.channel().await?, AgentCredentials::new("push-3", "pja_wrong").map_err(anyhow::Error::msg)?);
    assert_eq!(register(&anonymous, &good).await.expect_err("no token").code(), Code::Unauthenticated);

    // Nothing was kept: a message to the person is pushed nowhere.
    message_to(&mut command, "push-3", "测试").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(push.pushed().is_empty(), "{:?}", push.pushed());
    server.shutdown().await
}

#[tokio::test]
async fn without_the_test_setting_a_loopback_http_endpoint_is_refused() -> anyhow::Result<()> {
    let push = PushService::start().await?;
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let client = phone(&server, &mut command, "push-4").await?;
    let refused = register(&client, &push.subscribe()?).await.expect_err("http is for tests only");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("https://"), "{}", refused.message());
    server.shutdown().await
}

/// A dispatcher with the web port, a person on the roster and their phone
/// (headless Chromium, 390×844, touch, notifications allowed) signed in
/// by the operator's link; `None` without Chromium.
struct WebPhone {
    server: TestServer,
    browser: pingji_tests::browser::TestBrowser,
    page: chromiumoxide::page::Page,
    origin: String,
    at: (f64, f64),
}

async fn web_phone(id: &str, worker: bool) -> anyhow::Result<Option<WebPhone>> {
    use pingji_tests::browser::{self, TestBrowser, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(None);
    };
    const PHONE_GRID: &str = "d1-s1-c1-g2";
    let server = TestServer::start_with_web(|config| config.push.allow_loopback_http = true).await?;
    let address = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let mut command = server.command().await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, PHONE_GRID, &["first_aid"])) }).await?;
    let token = agent_token(&mut command, id).await?;
    let at = area_box(&mut command, PHONE_GRID).await?.at(0.4, 0.4);
    let browser = TestBrowser::launch(&chromium).await?;
    let origin = format!("http://{address}");
    browser.allow_geolocation(&origin).await?;
    browser.allow_notifications(&origin).await?;
    let url = format!("{origin}/field/#t={token}&a={id}");
    let page = if worker {
        browser.open_phone_with_worker(&url, at.0, at.1).await?
    } else {
        browser.open_phone(&url, at.0, at.1).await?
    };
    wait_for(&page, "the session opens", "document.getElementById('connection').dataset.state === 'online'").await?;
    Ok(Some(WebPhone { server, browser, page, origin, at }))
}

/// The phone app in headless Chromium as a phone: the "接收通知" opt-in
/// shows after sign-in (not on load), the person's keys and session are
/// where the service worker reads them, and a tap asks; offline,
/// `pushManager.subscribe` (it needs Google's push service) fails and the
/// card says so. Screenshot: `target/web-screenshots/field-push-optin.png`.
#[tokio::test]
async fn the_phone_app_asks_for_notifications_by_a_tap_after_sign_in_and_keeps_the_workers_keys() -> anyhow::Result<()> {
    use pingji_tests::browser::{eval, screenshot, screenshot_folder, tap, wait_for};
    let Some(WebPhone { server, browser, page, .. }) = web_phone("push-web", false).await? else {
        return Ok(());
    };
    wait_for(
        &page,
        "the opt-in shows",
        "!document.getElementById('push-card').hidden && !document.getElementById('push-enable').hidden",
    )
    .await?;
    let button: String = eval(&page, "document.getElementById('push-enable').textContent").await?;
    assert_eq!(button, "接收通知");
    eval::<bool>(&page, "(document.getElementById('push-card').scrollIntoView({ block: 'center' }), true)").await?;
    screenshot(&page, &screenshot_folder().join("field-push-optin.png")).await?;

    // The worker reads who the person is and their open session from IndexedDB.
    let kept: serde_json::Value = eval(
        &page,
        "new Promise((resolve) => { const open = indexedDB.open('pingji-field', 2); open.onsuccess = () => { \
         const get = open.result.transaction('keys').objectStore('keys').get('credentials'); \
         get.onsuccess = () => resolve({ agent: get.result?.agentId, session: get.result?.sessionId, \
         token: get.result?.token === localStorage.getItem('pingji.field.token') }); }; })",
    )
    .await?;
    assert_eq!(kept["agent"], "push-web");
    assert_eq!(kept["token"], true, "the worker has the app's token");
    assert!(kept["session"].as_str().is_some_and(|session| !session.is_empty()), "the open session: {kept}");

    // A tap asks the browser; offline, the subscription fails and the card says so.
    tap(&page, "#push-enable").await?;
    wait_for(&page, "the opt-in answers", "['failed', 'on'].includes(document.getElementById('push-card').dataset.state)")
        .await?;
    let state: String = eval(&page, "document.getElementById('push-state').textContent").await?;
    assert!(state.starts_with("无法开启通知") || state.starts_with("通知已开启"), "{state}");
    screenshot(&page, &screenshot_folder().join("field-push-failed.png")).await?;
    browser.close().await?;
    server.shutdown().await
}

async fn incident_near(command: &mut Commands, at: (f64, f64), description: &str) -> anyhow::Result<String> {
    let (lon, lat) = offset_m(at.0, at.1, 100.0, 110.0);
    let incident = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            description: description.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(incident.id)
}

/// The id of the offer the app shows, once it shows one other than `before`.
async fn offer_on_page(page: &chromiumoxide::Page, before: &str) -> anyhow::Result<String> {
    use pingji_tests::browser::{eval, wait_for};
    let shown = format!(
        "document.getElementById('offer-view').dataset.offerId && document.getElementById('offer-view').dataset.offerId !== {}",
        serde_json::to_string(before)?
    );
    wait_for(page, "the offer shows", &shown).await?;
    eval(page, "document.getElementById('offer-view').dataset.offerId").await
}

/// The actions of the notification tagged `tag`, once the worker shows it.
async fn wait_for_notification(
    browser: &pingji_tests::browser::TestBrowser,
    worker: &str,
    tag: &str,
) -> anyhow::Result<serde_json::Value> {
    let actions = format!(
        "self.registration.getNotifications().then((list) => list.filter((n) => n.tag === {}).map((n) => n.actions.map((a) => `${{a.action}}:${{a.title}}`)))",
        serde_json::to_string(tag)?
    );
    let mut shown = serde_json::Value::Null;
    wait_until(PROMPTLY, "the notification shows", async || {
        shown = browser.eval_in_worker(worker, &actions).await?;
        Ok(shown.as_array().is_some_and(|list| !list.is_empty()))
    })
    .await?;
    Ok(shown[0].clone())
}

/// JavaScript for the worker: a click on `action` of the notification
/// tagged `tag`, as the browser would dispatch it.
fn click(tag: &str, action: &str) -> String {
    let (tag, action) = (serde_json::to_string(tag).unwrap_or_default(), serde_json::to_string(action).unwrap_or_default());
    format!(
        "self.registration.getNotifications().then((list) => {{ \
           const notification = list.find((n) => n.tag === {tag}); \
           if (!notification) throw new Error('no notification ' + {tag}); \
           self.dispatchEvent(new NotificationEvent('notificationclick', {{ notification, action: {action} }})); \
           return true; }})"
    )
}

/// A push (delivered with the DevTools protocol, as a push service would)
/// shows as a notification with 接受 / 拒绝 for an offer and 签到 for a
/// call-up, and its actions answer through FieldService:
/// - 拒绝 and 接受 with the app open: the worker hands the answer to the
///   app's session, and the offer leaves the app's screen;
/// - 签到 with the app closed: a check-in needs the position, which a worker
///   cannot read, so it waits in the app's outbox and the app opens (the
///   test opens it: a dispatched click may not open windows) and checks in.
///
/// DevTools cannot click a notification's action, so the test dispatches
/// the `notificationclick` the browser would, in the worker, with the
/// notification the push showed: the worker's own handler runs. (A
/// synthetic event's `waitUntil` throws after the handler has started the
/// answer; a real click's does not.)
#[tokio::test]
async fn a_push_shows_as_a_notification_whose_actions_answer() -> anyhow::Result<()> {
    use pingji_tests::browser::{deliver_push, eval, wait_for};
    use pingji_tests::events::EventWatch;
    use pingji_tests::typed;
    let Some(WebPhone { server, browser, page, origin, at }) = web_phone("push-web-2", true).await? else {
        return Ok(());
    };
    // Activated, the worker claims the page (clients.claim): then it controls it.
    wait_until(Duration::from_secs(60), "the service worker controls the page", async || {
        eval::<bool>(&page, "navigator.serviceWorker.controller !== null").await
    })
    .await?;
    let mut command = server.command().await?;
    let mut events = EventWatch::start(&mut command, 0).await?;
    let scope = format!("{origin}/field/");
    let worker = format!("{origin}/field/sw.js");
    let shown = "navigator.serviceWorker.getRegistration('/field/').then((registration) => registration.getNotifications()).then((shown) => shown.map((n) => ({ title: n.title, tag: n.tag, actions: n.actions.map((a) => `${a.action}:${a.title}`) })))";
    // (wait_for takes a condition, not a promise: this polls an awaited one.)
    let count = format!("{shown}.then((list) => list.length)");

    // 拒绝, with the app open.
    let first = incident_near(&mut command, at, "老人在楼道摔倒").await?;
    let offer_id = offer_on_page(&page, "").await?;
    let notice = serde_json::json!({
        "kind": "offer", "id": offer_id, "incident_id": first,
        "title": "新任务：medical", "body": "附近有任务需要你，请尽快接受或拒绝。",
    });
    deliver_push(&page, &origin, &scope, &notice.to_string()).await?;
    wait_until(PROMPTLY, "the notification shows", async || Ok(eval::<u32>(&page, &count).await? >= 1)).await?;
    let notifications: serde_json::Value = eval(&page, shown).await?;
    assert_eq!(notifications[0]["title"], "新任务：medical");
    assert_eq!(notifications[0]["tag"], format!("offer:{offer_id}"));
    assert_eq!(notifications[0]["actions"], serde_json::json!(["accept:接受", "decline:拒绝"]));
    browser.eval_in_worker(&worker, &click(&format!("offer:{offer_id}"), "decline")).await?;
    let declined = events.wait_for_kind(PROMPTLY, "offer_declined", &first).await?;
    assert_eq!(typed!(declined, OfferDeclined).reason, "在通知中拒绝");
    assert_eq!(eval::<u32>(&page, &count).await?, 0, "the clicked notification closes");

    // 接受, with the app open: the person is assigned.
    let second = incident_near(&mut command, at, "独居老人无人应门").await?;
    let offer_id = offer_on_page(&page, &offer_id).await?;
    let notice = serde_json::json!({
        "kind": "offer", "id": offer_id, "incident_id": second, "title": "新任务：medical", "body": "附近有任务需要你",
    });
    deliver_push(&page, &origin, &scope, &notice.to_string()).await?;
    let tag = format!("offer:{offer_id}");
    wait_for_notification(&browser, &worker, &tag).await?;
    browser.eval_in_worker(&worker, &click(&tag, "accept")).await?;
    wait_until(PROMPTLY, "the offer is accepted from its notification", async || {
        let now = command.get_incident(pb::GetIncidentRequest { id: second.clone() }).await?.into_inner();
        Ok(now.assignments.iter().any(|assignment| assignment.agent_id == "push-web-2" && assignment.offer_id == offer_id))
    })
    .await?;
    wait_for(&page, "the app shows the task", "document.getElementById('offer-view').hidden").await?;

    // The app closes. (Pushes are delivered through a tab; this one is not the app's.)
    let other = browser.open("about:blank").await?;
    page.close().await?;

    // 签到, with the app closed: the app opens, reads the position, checks in.
    let callup = command
        .call_up(pb::CallUpRequest {
            area_id: "d1-s1-c1-g2".into(),
            roles: vec![pb::Role::Volunteer as i32],
            reason: "台风预警".into(),
            deadline_s: 600,
        })
        .await?
        .into_inner();
    assert!(callup.people.iter().any(|person| person.agent_id == "push-web-2"), "{callup:?}");
    let notice =
        serde_json::json!({ "kind": "callup", "id": callup.id, "title": "集结令：请签到", "body": "台风预警，请到社区集合" });
    let tag = format!("callup:{}", callup.id);
    deliver_push(&other, &origin, &scope, &notice.to_string()).await?;
    let actions = wait_for_notification(&browser, &worker, &tag).await?;
    assert_eq!(actions, serde_json::json!(["checkin:签到"]));
    browser.eval_in_worker(&worker, &click(&tag, "checkin")).await?;
    // The browser opens the app for a real click; a dispatched one has no
    // user gesture to open a window with, so the person opens it here.
    let app = browser.open_phone_with_worker(&scope, at.0, at.1).await?;
    wait_until(PROMPTLY, "the check-in from the notification is in", async || {
        let callups = command.callup_status(pb::CallupStatusRequest::default()).await?.into_inner().callups;
        Ok(callups
            .iter()
            .filter(|status| status.id == callup.id)
            .flat_map(|status| status.people.iter())
            .any(|person| person.agent_id == "push-web-2" && person.checked_in_at_ms > 0))
    })
    .await?;
    app.close().await?;
    browser.close().await?;
    server.shutdown().await
}
