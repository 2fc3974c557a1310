//! SMS and voice gateways and the escalation ladder (#20): a real gateway
//! on loopback records the dispatcher's requests and posts receipts and
//! replies back, signed. A called-up person without a session gets push
//! (skipped: no push service), SMS, then a call per the ladder and checks
//! in by SMS reply; a connected person who does not answer an offer gets
//! an SMS and accepts by reply; forged inbound posts are refused and
//! journaled; a gateway down is retried, then the failure is an event and
//! in the roll-call, and the ladder goes on; a kill -9 sends no rung twice
//! under two keys; no phone number in events or the log.

use std::ffi::OsString;
use std::time::Duration;

use pingji_dispatcher::notify::{DEFAULT_TEMPLATE, Gateway, NotifyConfig};
use pingji_dispatcher::server::Config;
use pingji_engine::event::NoticeChannel;
use pingji_engine::policy::{Ladder, LadderStep};
use pingji_tests::events::summary;
use pingji_tests::mobilisation::person_with_role;
use pingji_tests::sms_gateway::{GATEWAY_SECRET, INBOUND_SECRET, SmsGateway, now_s, post_inbound, post_raw};
use pingji_tests::wait::wait_until;
use pingji_tests::webhook_receiver::Answer;
use pingji_tests::{DispatcherProcess, EventWatch, ProcessOptions, TestServer, area_box, pb, sample_city};

const WITHIN: Duration = Duration::from_secs(30);
/// As the roster has it, and as a phone sends it back.
const PHONE: &str = "+86 138-0000-0001";
const PHONE_REPLYING: &str = "+8613800000001";
const PHONE_DIGITS: &str = "13800000001";

fn step(channel: NoticeChannel, after_s: u64, if_connected_after_s: Option<u64>) -> LadderStep {
    LadderStep { channel, after_s, if_connected_after_s }
}

/// Push at once, SMS at once (or after 1 s unanswered in a session), a
/// call after 2 s without a session, in normal mode and at grade II.
fn ladder() -> Ladder {
    let steps =
        vec![step(NoticeChannel::Push, 0, Some(0)), step(NoticeChannel::Sms, 0, Some(1)), step(NoticeChannel::Voice, 2, None)];
    Ladder { normal: steps.clone(), emergency_ii: steps, ..Ladder::default() }
}

fn gateway(url: &str) -> Gateway {
    Gateway::Webhook { url: url.to_string(), secret: GATEWAY_SECRET.to_string(), template: DEFAULT_TEMPLATE.to_string() }
}

fn notify_config(url: &str, max_attempts: u32) -> NotifyConfig {
    NotifyConfig {
        sms: Some(gateway(url)),
        voice: Some(gateway(url)),
        inbound_secret: Some(INBOUND_SECRET.to_string()),
        max_attempts,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        ..NotifyConfig::default()
    }
}

fn with_ladder(config: &mut Config, url: &str, max_attempts: u32, ladder: Ladder) {
    config.policy.ladder = Some(ladder);
    config.notify = notify_config(url, max_attempts);
}

fn cadre(id: &str, phone: &str) -> pb::AgentSpec {
    pb::AgentSpec { phone: phone.to_string(), ..person_with_role(id, pb::Role::SunkCadre, "d1-s1-c1-g1") }
}

/// The `notified` events seen, as (agent, channel, step, outcome).
fn notices(events: &EventWatch) -> Vec<(String, i32, u32, i32)> {
    events
        .seen()
        .iter()
        .filter_map(|event| match &event.body {
            Some(pb::event::Body::Notified(notified)) => {
                Some((notified.agent_id.clone(), notified.channel, notified.step, notified.outcome))
            }
            _ => None,
        })
        .collect()
}

fn notified(channel: pb::NoticeChannel, outcome: pb::NoticeOutcome) -> impl Fn(&pb::Event) -> bool {
    move |event| {
        matches!(&event.body, Some(pb::event::Body::Notified(notified))
            if notified.channel == channel as i32 && notified.outcome == outcome as i32)
    }
}

fn no_phone_in(events: &[pb::Event]) {
    for event in events {
        let text = format!("{event:?}");
        assert!(!text.contains(PHONE_DIGITS) && !text.contains("138-0000"), "a phone number in an event: {}", summary(event));
    }
}

/// A connected person with a phone, at the centre of a grid, and an
/// incident there offered to them: the console, the person's session, the
/// event watch from the start, and the incident's id.
async fn offer_to_a_person_with_a_phone(
    server: &TestServer,
    id: &str,
) -> anyhow::Result<(pingji_tests::Commands, pingji_tests::AgentSession, EventWatch, String)> {
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let spec = pb::AgentSpec { phone: PHONE.to_string(), ..pingji_tests::sample::person(id, "d1-s1-c1-g1", &[]) };
    let session = server.connect_person_at(spec, lon, lat).await?;
    let events = EventWatch::start(&mut command, 0).await?;
    let incident = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "welfare_check".into(),
            priority: 2,
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .id;
    Ok((command, session, events, incident))
}

async fn roll_call(command: &mut pingji_tests::Commands) -> anyhow::Result<Vec<pb::CalledPerson>> {
    let callups = command.callup_status(pb::CallupStatusRequest { area_id: "d1".into(), open_only: true }).await?.into_inner();
    Ok(callups.callups.into_iter().flat_map(|callup| callup.people).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_called_up_person_without_a_session_gets_sms_then_a_call_and_checks_in_by_reply() -> anyhow::Result<()> {
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 3, ladder())).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let mut command = server.command().await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![cadre("cadre-1", PHONE)] }).await?;
    let mut events = EventWatch::start(&mut command, 0).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() })
        .await?;

    // Push (nobody has a subscription on this build) and the SMS, both due
    // at once: two senders journal them in either order.
    events.seen_or_wait_for(WITHIN, "the push step", notified(pb::NoticeChannel::Push, pb::NoticeOutcome::Skipped)).await?;
    events.seen_or_wait_for(WITHIN, "the SMS sent", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Sent)).await?;
    let sms = gateway.on("sms");
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0]["to"], PHONE, "the number goes to the gateway, as on the roster");
    assert!(sms[0]["text"].as_str().is_some_and(|text| text.contains("到")), "{}", sms[0]);
    let sms_key = sms[0]["key"].as_str().unwrap_or_default().to_string();
    assert!(sms_key.starts_with("cadre-1|callup:") && sms_key.ends_with("|2"), "person + subject + rung: {sms_key}");
    let request = &gateway.receiver.received()[0];
    assert_eq!(request.headers["idempotency-key"], sms_key);
    assert_eq!(
        request.headers["x-pingji-signature"],
        pingji_dispatcher::webhooks::signature(GATEWAY_SECRET, &request.headers["x-pingji-timestamp"], &request.body),
        "signed like the outbound webhooks"
    );

    // The gateway's receipt is journaled.
    let (status, answer) = gateway.receipt(web, &sms_key, "delivered").await?;
    assert_eq!((status, answer["result"].as_str()), (200, Some("taken")), "{answer}");
    events.wait_for(WITHIN, "the SMS delivered", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Delivered)).await?;
    assert_eq!(roll_call(&mut command).await?[0].reached, "sms delivered");

    // No answer: the call 2 s later.
    events.wait_for(WITHIN, "the call", notified(pb::NoticeChannel::Voice, pb::NoticeOutcome::Sent)).await?;
    let calls = gateway.on("voice");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0]["key"].as_str().is_some_and(|key| key.ends_with("|3")));

    // "到" by SMS checks in, through the same engine command as the app.
    let (status, answer) = gateway.reply(web, PHONE_REPLYING, "到").await?;
    assert_eq!((status, answer["result"].as_str()), (200, Some("answered")), "{answer}");
    let checked_in = events.wait_for(WITHIN, "the check-in", |event| event.kind == "checked_in").await?;
    assert_eq!(checked_in.actor, "agent:cadre-1");
    events.wait_for(WITHIN, "the answer", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Answered)).await?;
    let people = roll_call(&mut command).await?;
    assert!(people[0].checked_in_at_ms > 0, "{people:?}");
    assert_eq!(people[0].reached, "sms answered");

    let steps = notices(&events);
    let rungs: Vec<u32> =
        steps.iter().filter(|(_, _, _, outcome)| *outcome == pb::NoticeOutcome::Sent as i32).map(|s| s.2).collect();
    assert_eq!(rungs, [2, 3], "SMS then the call, once each: {steps:?}");
    // The ladder stopped at the answer: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.requests().len(), 2);
    no_phone_in(events.seen());
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_offer_goes_by_sms_and_a_reply_of_1_accepts_it() -> anyhow::Result<()> {
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 3, ladder())).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let (mut command, _session, mut events, incident) = offer_to_a_person_with_a_phone(&server, "vol-1").await?;
    events.wait_for_kind(WITHIN, "offer_sent", &incident).await?;
    // In a session: no call, but an SMS after 1 s without an answer.
    events.wait_for(WITHIN, "the SMS sent", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Sent)).await?;
    let sms = gateway.on("sms");
    assert!(sms[0]["text"].as_str().is_some_and(|text| text.contains("reply 1")), "{}", sms[0]);
    let (status, answer) = gateway.reply(web, PHONE_REPLYING, "1").await?;
    assert_eq!((status, answer["result"].as_str()), (200, Some("answered")), "{answer}");
    let assigned = events.wait_for_kind(WITHIN, "assigned", &incident).await?;
    assert_eq!(assigned.actor, "agent:vol-1");
    let answered = events.wait_for(WITHIN, "the answer", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Answered)).await?;
    assert_eq!(answered.incident_id, incident, "in the incident's timeline");
    let timeline = command
        .incident_timeline(pb::IncidentTimelineRequest { incident_id: incident.clone(), ..Default::default() })
        .await?
        .into_inner();
    assert!(timeline.events.iter().any(|event| event.kind == "notified"), "the timeline shows the notice steps");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(gateway.on("voice").is_empty(), "a connected person gets no call from this ladder");
    no_phone_in(events.seen());
    server.shutdown().await
}

/// Twilio as it is: its SMS request names a status callback with the
/// step's key, its own signed status callback is a receipt, its own signed
/// message "1" accepts the offer, and a post with a wrong signature or
/// replayed is refused. The public address Twilio signs for is not the
/// test's loopback one, as behind a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_posts_its_own_signed_receipts_and_replies() -> anyhow::Result<()> {
    use pingji_tests::sms_gateway::post_twilio;
    const TOKEN: &str = "twilio-auth-token-0123";
    const PUBLIC: &str = "https://pingji.example.org";
    let gateway = SmsGateway::start().await?;
    let twilio = Gateway::Twilio {
        api_base: gateway.url(),
        account_sid: "ACtest".into(),
        auth_token: TOKEN.into(),
        from: "+15005550006".into(),
        callback_url: Some(PUBLIC.into()),
    };
    let server = TestServer::start_with_web(|config| {
        config.policy.ladder = Some(ladder());
        config.notify = NotifyConfig { sms: Some(twilio), voice: None, ..notify_config("http://127.0.0.1:9/", 3) };
    })
    .await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let (_command, _session, mut events, incident) = offer_to_a_person_with_a_phone(&server, "vol-t").await?;
    events.wait_for(WITHIN, "the SMS sent", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Sent)).await?;
    let request = gateway.receiver.received().into_iter().next().ok_or_else(|| anyhow::anyhow!("no request at the gateway"))?;
    let form: Vec<(String, String)> = url_form(&request.body);
    let callback = form.iter().find(|(name, _)| name == "StatusCallback").map(|(_, value)| value.clone()).unwrap_or_default();
    let path =
        callback.strip_prefix(PUBLIC).ok_or_else(|| anyhow::anyhow!("the status callback is under {PUBLIC}: {callback}"))?;
    assert!(path.starts_with("/notify/inbound/twilio?key="), "{path}");

    let receipt = [("MessageSid", "SM0001"), ("MessageStatus", "delivered"), ("AccountSid", "ACtest")];
    let (status, _) = post_twilio(web, PUBLIC, path, "another-token-0123456", &receipt).await?;
    assert_eq!(status, 401, "signed with another token");
    let (status, answer) = post_twilio(web, PUBLIC, path, TOKEN, &receipt).await?;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("<Response/>"), "empty TwiML: {answer}");
    events.wait_for(WITHIN, "the receipt", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Delivered)).await?;
    let (status, _) = post_twilio(web, PUBLIC, path, TOKEN, &receipt).await?;
    assert_eq!(status, 401, "the same post again is a replay");

    let message = [("MessageSid", "SM0002"), ("From", PHONE_REPLYING), ("To", "+15005550006"), ("Body", "1")];
    let (status, answer) = post_twilio(web, PUBLIC, "/notify/inbound/twilio", TOKEN, &message).await?;
    assert_eq!(status, 200, "{answer}");
    let assigned = events.wait_for_kind(WITHIN, "assigned", &incident).await?;
    assert_eq!(assigned.actor, "agent:vol-t");
    no_phone_in(events.seen());
    server.shutdown().await
}

/// The fields of a form body.
fn url_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                index += 2;
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_inbound_posts_are_refused_and_journaled() -> anyhow::Result<()> {
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 3, ladder())).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let mut command = server.command().await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![cadre("cadre-1", PHONE)] }).await?;
    let mut events = EventWatch::start(&mut command, 0).await?;
    let reply = serde_json::json!({ "type": "reply", "from": PHONE_REPLYING, "text": "1" }).to_string();

    let (status, _) = post_inbound(web, &reply, now_s(), "not-the-secret-0123456").await?;
    assert_eq!(status, 401, "another secret");
    let (status, _) = post_raw(web, &reply, &[]).await?;
    assert_eq!(status, 401, "no signature");
    let (status, _) = post_inbound(web, &reply, now_s() - 3600, INBOUND_SECRET).await?;
    assert_eq!(status, 401, "an hour old");
    let timestamp = now_s();
    let (status, first) = post_inbound(web, &reply, timestamp, INBOUND_SECRET).await?;
    assert_eq!((status, first["result"].as_str()), (200, Some("ignored")), "signed, nothing waiting: {first}");
    let (status, _) = post_inbound(web, &reply, timestamp, INBOUND_SECRET).await?;
    assert_eq!(status, 401, "the same post again is a replay");

    let mut reasons = Vec::new();
    while reasons.len() < 4 {
        let event = events.wait_for(WITHIN, "inbound_refused", |event| event.kind == "inbound_refused").await?;
        if let Some(pb::event::Body::InboundRefused(refused)) = &event.body {
            reasons.push(refused.reason.clone());
        }
    }
    assert!(reasons[0].contains("bad signature") && reasons[1].contains("timestamp"), "{reasons:?}");
    assert!(reasons[2].contains("window") && reasons[3].contains("replayed"), "{reasons:?}");
    no_phone_in(events.seen());
    assert!(gateway.requests().is_empty(), "nothing was sent: nobody is called up");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_down_is_retried_then_the_failure_is_shown_and_the_ladder_goes_on() -> anyhow::Result<()> {
    let gateway = SmsGateway::start().await?;
    gateway.receiver.answer(Answer::Status(503));
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 4, ladder())).await?;
    let mut command = server.command().await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![cadre("cadre-1", PHONE)] }).await?;
    let mut events = EventWatch::start(&mut command, 0).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() })
        .await?;
    let failed = events.wait_for(WITHIN, "the SMS failed", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Failed)).await?;
    let Some(pb::event::Body::Notified(failed)) = failed.body else { anyhow::bail!("not a notice") };
    assert!(failed.detail.contains("503") && failed.detail.contains("4 attempts"), "{failed:?}");
    assert_eq!(gateway.receiver.refused(), 4, "retried up to max_attempts");
    assert_eq!(roll_call(&mut command).await?[0].reached, "sms failed", "the operator sees it in the roll-call");

    // The gateway is back: the next rung goes through.
    gateway.receiver.answer(Answer::Ok);
    events.wait_for(WITHIN, "the call", notified(pb::NoticeChannel::Voice, pb::NoticeOutcome::Sent)).await?;
    assert_eq!(gateway.on("voice").len(), 1);
    assert_eq!(roll_call(&mut command).await?[0].reached, "voice sent");
    no_phone_in(events.seen());
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_sends_no_rung_twice_under_two_keys_and_no_phone_reaches_the_log() -> anyhow::Result<()> {
    const PEOPLE: usize = 30;
    let dir = tempfile::tempdir()?;
    let gateway = SmsGateway::start().await?;
    // A slow gateway, so that the kill lands while SMS are under way.
    gateway.receiver.answer(Answer::After(Duration::from_millis(60)));
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[ladder.emergency_ii]]\nchannel = \"sms\"\nafter_s = 0\n")?;
    let settings = dir.path().join("dispatcher.toml");
    std::fs::write(
        &settings,
        format!(
            "[notify]\ninbound_secret = \"{INBOUND_SECRET}\"\nconcurrency = 2\nretry_initial_ms = 20\nretry_max_ms = 100\n\
             [notify.sms]\nprovider = \"webhook\"\nurl = \"{}\"\nsecret = \"{GATEWAY_SECRET}\"\n",
            gateway.url()
        ),
    )?;
    let options = ProcessOptions {
        data: dir.path().join("pingji.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let extra: Vec<OsString> = vec!["--config".into(), settings.into_os_string()];
    let first = DispatcherProcess::start_with_args(&options, &extra).await?;
    let mut command = first.command().await?;
    let people: Vec<pb::AgentSpec> =
        (0..PEOPLE).map(|index| cadre(&format!("cadre-{index:02}"), &format!("+86 138-0000-{index:04}"))).collect();
    command.import_agents(pb::ImportAgentsRequest { agents: people }).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() })
        .await?;
    wait_until(WITHIN, "some SMS were sent", async || Ok(gateway.requests().len() >= 3)).await?;
    first.kill().await?;
    let before_kill = gateway.requests().len();
    assert!(before_kill < PEOPLE, "the kill came mid-sending ({before_kill} of {PEOPLE})");

    let second = DispatcherProcess::start_with_args(&options, &extra).await?;
    let keys = || -> Vec<String> {
        gateway.requests().iter().map(|request| request["key"].as_str().unwrap_or_default().to_string()).collect()
    };
    wait_until(WITHIN, "everyone's SMS", async || {
        let mut unique = keys();
        unique.sort();
        unique.dedup();
        Ok(unique.len() >= PEOPLE)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = keys();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), PEOPLE, "one key per person's rung: {unique:?}");
    assert!(unique.iter().all(|key| key.ends_with("|1")), "{unique:?}");
    // At most the two in flight at the kill come again, with the same key
    // (a gateway dedupes them by it).
    assert!(all.len() - unique.len() <= 2, "{} requests for {} keys", all.len(), unique.len());
    let log = second.log();
    assert!(!log.contains("138-0000") && !log.contains("1380000"), "a phone number in the dispatcher's log");
    let mut command = second.command().await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    wait_until(WITHIN, "every SMS journaled", async || {
        while let Ok(_event) = events.next_within(Duration::from_millis(200)).await {}
        Ok(notices(&events).len() >= PEOPLE)
    })
    .await?;
    no_phone_in(events.seen());
    second.kill().await?;
    Ok(())
}

/// On the Redis store the notices, keys and cursor are kept beside the
/// shard: a dispatcher started again on the same Redis (the owner's
/// successor) goes on with the ladder and sends nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_successor_goes_on_with_the_ladder_and_sends_nothing_twice() -> anyhow::Result<()> {
    use pingji_dispatcher::server::{RedisStore, Store};
    use pingji_test_redis::RedisServer;
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let redis_url = redis.url();
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    // SMS at once, a call 4 s later: the call falls to the successor.
    let steps = vec![step(NoticeChannel::Sms, 0, None), step(NoticeChannel::Voice, 4, None)];
    let ladder = Ladder { emergency_ii: steps, ..Ladder::default() };
    let on_redis = |config: &mut Config| {
        config.store = Store::Redis(RedisStore::new(&redis_url, "127.0.0.1:0"));
        with_ladder(config, &url, 3, ladder.clone());
    };
    let first = TestServer::start(on_redis).await?;
    let mut command = first.command().await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![cadre("cadre-1", PHONE)] }).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "台风登陆".into() })
        .await?;
    wait_until(WITHIN, "the SMS", async || Ok(gateway.on("sms").len() == 1)).await?;
    first.shutdown().await?;

    let second = TestServer::start(on_redis).await?;
    wait_until(WITHIN, "the call, by the successor", async || Ok(gateway.on("voice").len() == 1)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.on("sms").len(), 1, "the SMS is not sent again");
    let mut command = second.command().await?;
    assert_eq!(roll_call(&mut command).await?[0].reached, "voice sent");
    second.shutdown().await
}

/// The command map's incident panel shows the offer's notices in the
/// timeline (channel and outcome, never a phone number).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maps_incident_timeline_shows_the_sms_of_an_unanswered_offer() -> anyhow::Result<()> {
    use pingji_tests::browser::{self, TestBrowser, eval, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 3, ladder())).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let (_command, _session, mut events, incident) = offer_to_a_person_with_a_phone(&server, "vol-1").await?;
    events.wait_for(WITHIN, "the SMS sent", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Sent)).await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&format!("http://{web}/")).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(pingji_tests::ADMIN_TOKEN).await?.press_key("Enter").await?;
    let button = format!("#incident-list button[data-incident-id='{incident}']");
    let found = format!("document.querySelector({})", serde_json::to_string(&button)?);
    wait_for(&page, "the incident is listed", &found).await?;
    let _: bool = eval(&page, &format!("(() => {{ {found}.click(); return true; }})()")).await?;
    wait_for(&page, "the timeline shows the notice", "document.querySelector('#detail-timeline li[data-kind=notified]')").await?;
    let lines: Vec<String> =
        eval(&page, "[...document.querySelectorAll('#detail-timeline li[data-kind=notified]')].map((li) => li.textContent)")
            .await?;
    let shot = browser::screenshot_folder().join("notify-incident-timeline.png");
    browser::screenshot(&page, &shot).await?;
    let says_sms_sent = |line: &String| line.contains("SMS sent") || line.contains("短信 已发送");
    assert!(lines.iter().any(|line| line.contains("vol-1") && says_sms_sent(line)), "{lines:?}");
    assert!(lines.iter().all(|line| !line.contains(PHONE_DIGITS) && !line.contains("138-0000")), "{lines:?}");
    browser.close().await?;
    server.shutdown().await
}

/// An operator's message reaches people without a session by SMS, not
/// those off duty in normal mode; an SMS reply is the person's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_goes_by_sms_to_people_on_duty_without_a_session_and_a_reply_comes_back() -> anyhow::Result<()> {
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start_with_web(|config| with_ladder(config, &url, 3, ladder())).await?;
    let web = server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?;
    let mut command = server.command().await?;
    let on_duty = pb::AgentSpec { phone: PHONE.to_string(), ..pingji_tests::sample::person("vol-on", "d1-s1-c1-g3", &[]) };
    let off_duty = pb::AgentSpec {
        phone: "+86 138-0000-0002".to_string(),
        on_duty: false,
        ..pingji_tests::sample::person("vol-off", "d1-s1-c1-g3", &[])
    };
    command.import_agents(pb::ImportAgentsRequest { agents: vec![on_duty, off_duty] }).await?;
    let mut events = EventWatch::start(&mut command, 0).await?;
    let sent = command
        .send_message(pb::SendMessageRequest {
            to: Some(pb::MessageAudience { to: Some(pb::message_audience::To::AreaId("d1-s1-c1-g3".into())) }),
            text: "明早 7 点集合".into(),
        })
        .await?
        .into_inner();
    events.wait_for(WITHIN, "the SMS sent", notified(pb::NoticeChannel::Sms, pb::NoticeOutcome::Sent)).await?;
    let sms = gateway.on("sms");
    assert_eq!(sms.len(), 1, "only the person on duty: {sms:?}");
    assert_eq!(sms[0]["agent"], "vol-on");
    assert!(sms[0]["text"].as_str().is_some_and(|text| text.contains("明早 7 点集合")), "{}", sms[0]);
    let (status, answer) = gateway.reply(web, PHONE_REPLYING, "收到").await?;
    assert_eq!((status, answer["result"].as_str()), (200, Some("answered")), "{answer}");
    let replied = events.wait_for(WITHIN, "the reply", |event| event.kind == "message_replied").await?;
    assert_eq!(replied.actor, "agent:vol-on");
    let Some(pb::event::Body::MessageReplied(reply)) = replied.body else { anyhow::bail!("not a reply") };
    assert_eq!((reply.message_id.as_str(), reply.text.as_str()), (sent.id.as_str(), "收到"));
    // Answered: no call follows, and the person off duty got nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(gateway.on("voice").is_empty(), "{:?}", gateway.requests());
    assert!(notices(&events).iter().all(|(agent, ..)| agent == "vol-on"), "{:?}", notices(&events));
    no_phone_in(events.seen());
    server.shutdown().await
}
