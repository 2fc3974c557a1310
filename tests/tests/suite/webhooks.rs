//! Outbound webhooks (#20): a real partner endpoint on loopback receives
//! the journaled events as signed CloudEvents, in seq order, once each
//! when it was down for a while, dead letters when it keeps failing, a
//! replay when it is fixed, the same ids again after a kill -9; filters by
//! kind and area; registrations only by an admin, checked before anything
//! is kept.

use std::ffi::OsString;
use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_dispatcher::webhooks::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookConfig, signature};
use pingji_proto::v1 as pb;
use pingji_proto::v1::webhook_service_client::WebhookServiceClient;
use pingji_tests::server::TestServer;
use pingji_tests::wait::wait_until;
use pingji_tests::webhook_receiver::{Answer, Received, WebhookReceiver};
use pingji_tests::{ADMIN_TOKEN, Commands, DispatcherProcess, ProcessOptions, add_operator, area_box, sample_city};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Webhooks = WebhookServiceClient<InterceptedService<Channel, BearerToken>>;

const SECRET: &str = "partner-secret-0123456789";
const WITHIN: Duration = Duration::from_secs(30);

fn webhooks_with(channel: Channel, token: &str) -> Webhooks {
    WebhookServiceClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap_or_default())
}

/// Retries that are quick enough for a test.
fn quick(max_attempts: u32) -> WebhookConfig {
    WebhookConfig {
        max_attempts,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        source: "/pingji/test".to_string(),
        cap: Default::default(),
    }
}

async fn add(webhooks: &mut Webhooks, url: &str, kinds: &[&str], areas: &[&str]) -> anyhow::Result<pb::Webhook> {
    let request = pb::AddWebhookRequest {
        url: url.to_string(),
        kinds: kinds.iter().map(|kind| kind.to_string()).collect(),
        area_ids: areas.iter().map(|area| area.to_string()).collect(),
        secret: SECRET.to_string(),
        precise: false,
        from_seq: 0,
    };
    Ok(webhooks.add_webhook(request).await?.into_inner())
}

/// Reports an incident at the centre of `area`; returns its id.
async fn incident_in(command: &mut Commands, area: &str, id: &str) -> anyhow::Result<String> {
    let (lon, lat) = area_box(command, area).await?.centre();
    let request = pb::CreateIncidentRequest {
        id: id.to_string(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "welfare_check".into(),
        priority: 2,
        headcount: 1,
        ..Default::default()
    };
    Ok(command.create_incident(request).await?.into_inner().id)
}

async fn wait_for_incidents(receiver: &WebhookReceiver, ids: &[String]) -> anyhow::Result<()> {
    wait_until(WITHIN, "the partner has every incident", async || {
        let reported = reported_ids(&receiver.received());
        Ok(ids.iter().all(|id| reported.contains(id)))
    })
    .await
}

/// The incident ids of the `incident_reported` events received, in order.
fn reported_ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter(|delivery| delivery.kind() == "org.pingji.incident.reported")
        .map(|delivery| delivery.json()["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn strictly_increasing(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|pair| pair[0] < pair[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_signed_cloud_events_in_seq_order() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(5)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let receiver = WebhookReceiver::start().await?;
    let added = add(&mut webhooks, &receiver.url(), &[], &[]).await?;
    assert!(added.id.starts_with("wh_") && added.secret.is_empty(), "a given secret is not sent back: {added:?}");

    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(incident_in(&mut command, "d1-s1-c1-g1", &format!("signed-{index}")).await?);
    }
    wait_for_incidents(&receiver, &ids).await?;

    let received = receiver.received();
    assert_eq!(reported_ids(&received), ids, "incidents arrive in the order they were reported");
    assert!(strictly_increasing(&receiver.seqs()), "seq order, each once: {:?}", receiver.seqs());
    for delivery in &received {
        assert_eq!(delivery.headers["content-type"], "application/cloudevents+json");
        let timestamp = &delivery.headers[TIMESTAMP_HEADER];
        assert_eq!(
            delivery.headers[SIGNATURE_HEADER],
            signature(SECRET, timestamp, &delivery.body),
            "signed over timestamp.body with the subscriber's secret"
        );
        assert_ne!(delivery.headers[SIGNATURE_HEADER], signature("another-secret-0123", timestamp, &delivery.body));
        let event = delivery.json();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "/pingji/test");
        assert!(event["time"].as_str().is_some_and(|time| time.ends_with('Z')), "{event}");
        assert_eq!(event["data"]["seq"].as_str().map(String::from), Some(delivery.seq().to_string()), "{event}");
    }
    let first = received.iter().find(|delivery| delivery.kind() == "org.pingji.incident.reported").map(Received::json);
    let first = first.unwrap_or_default();
    assert_eq!(first["data"]["kind"], "incident_reported", "{first}");
    assert_eq!(first["data"]["incident_reported"]["incident_id"], ids[0].as_str(), "{first}");

    // The listing shows the cursor past what was delivered, once the
    // deliverer has saved it (just after the partner's answer).
    let delivered = receiver.seqs().last().copied().unwrap_or(0);
    wait_until(WITHIN, "the cursor is past what was delivered", async || {
        let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
        anyhow::ensure!(listed.len() == 1, "{listed:?}");
        anyhow::ensure!(listed[0].secret.is_empty(), "the secret is never listed");
        Ok(listed[0].next_seq > delivered)
    })
    .await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_kind_and_area() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(5)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let district_partner = WebhookReceiver::start().await?;
    let closings_partner = WebhookReceiver::start().await?;
    add(&mut webhooks, &district_partner.url(), &["incident_reported", "mode_switched"], &["d1"]).await?;
    add(&mut webhooks, &closings_partner.url(), &["incident_closed"], &[]).await?;

    let in_d1 = incident_in(&mut command, "d1-s1-c1-g1", "in-d1").await?;
    let in_d2 = incident_in(&mut command, "d2-s1-c1-g1", "in-d2").await?;
    command.close_incident(pb::CloseIncidentRequest { id: in_d2.clone(), feedback: "resolved by phone".into() }).await?;
    // A mode switch of the whole city concerns d1 too; one in d2 does not.
    for area in ["d2", "city"] {
        let request = pb::SetModeRequest { area_id: area.into(), mode: pb::Mode::EmergencyIv as i32, reason: "drill".into() };
        command.set_mode(request).await?;
    }
    let last = incident_in(&mut command, "d1-s2-c1-g1", "last-in-d1").await?;

    wait_for_incidents(&district_partner, std::slice::from_ref(&last)).await?;
    wait_until(WITHIN, "the closing reaches its partner", async || Ok(!closings_partner.received().is_empty())).await?;
    let district = district_partner.received();
    assert_eq!(reported_ids(&district), vec![in_d1, last], "d2's incident is not d1's partner's");
    let modes: Vec<String> = district
        .iter()
        .filter(|delivery| delivery.kind() == "org.pingji.mode.switched")
        .map(|delivery| delivery.json()["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(modes, vec!["city".to_string()], "the city's switch, not d2's");
    assert!(
        district
            .iter()
            .all(|delivery| ["org.pingji.incident.reported", "org.pingji.mode.switched"].contains(&delivery.kind().as_str()))
    );
    let closings = closings_partner.received();
    assert_eq!(closings.len(), 1, "{:?}", closings.iter().map(Received::kind).collect::<Vec<_>>());
    assert_eq!(closings[0].kind(), "org.pingji.incident.closed");
    assert_eq!(closings[0].json()["subject"], in_d2.as_str());
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_down_for_a_while_gets_every_event_once_in_order() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(10_000)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let mut receiver = WebhookReceiver::start().await?;
    add(&mut webhooks, &receiver.url(), &[], &[]).await?;
    let before = incident_in(&mut command, "d1-s1-c1-g1", "before").await?;
    wait_for_incidents(&receiver, std::slice::from_ref(&before)).await?;

    receiver.down().await;
    let mut while_down = Vec::new();
    for index in 0..8 {
        while_down.push(incident_in(&mut command, "d1-s1-c1-g1", &format!("while-down-{index}")).await?);
    }
    wait_until(WITHIN, "the dispatcher sees the partner failing", async || {
        let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
        Ok(listed.first().is_some_and(|webhook| webhook.failures >= 3 && !webhook.last_error.is_empty()))
    })
    .await?;
    receiver.up().await?;
    wait_for_incidents(&receiver, &while_down).await?;

    let seqs = receiver.seqs();
    assert!(strictly_increasing(&seqs), "every event once, in order: {seqs:?}");
    let mut expected = vec![before];
    expected.extend(while_down);
    assert_eq!(reported_ids(&receiver.received()), expected);
    let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
    assert_eq!(listed[0].dead_letters, 0, "nothing was given up on");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_gets_dead_letters_then_a_replay() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(3)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let receiver = WebhookReceiver::start().await?;
    receiver.answer(Answer::Status(503));
    let id = add(&mut webhooks, &receiver.url(), &["incident_reported"], &[]).await?.id;
    let mut failed = Vec::new();
    for index in 0..3 {
        failed.push(incident_in(&mut command, "d1-s1-c1-g1", &format!("failed-{index}")).await?);
    }
    let letters = async |webhooks: &mut Webhooks| -> anyhow::Result<Vec<pb::DeadLetter>> {
        let request = pb::ListDeadLettersRequest { id: id.clone(), limit: 0 };
        Ok(webhooks.list_dead_letters(request).await?.into_inner().dead_letters)
    };
    wait_until(WITHIN, "three dead letters", async || Ok(letters(&mut webhooks).await?.len() == 3)).await?;
    let dead = letters(&mut webhooks).await?;
    assert!(dead.iter().all(|letter| letter.attempts == 3 && letter.kind == "incident_reported"), "{dead:?}");
    assert!(dead[0].last_error.contains("503"), "{dead:?}");
    assert_eq!(receiver.refused(), 9, "three attempts each");

    // The partner is fixed: delivery goes on with new events...
    receiver.answer(Answer::Ok);
    let after = incident_in(&mut command, "d1-s1-c1-g1", "after-the-fix").await?;
    wait_for_incidents(&receiver, std::slice::from_ref(&after)).await?;
    assert_eq!(reported_ids(&receiver.received()), vec![after.clone()]);
    // ...and a replay from the first dead letter sends them again, in order.
    let replayed =
        webhooks.replay_webhook(pb::ReplayWebhookRequest { id: id.clone(), from_seq: dead[0].seq }).await?.into_inner();
    assert_eq!(replayed.dead_letters, 0, "the dead letters from there on are delivered again");
    wait_until(WITHIN, "the replay has arrived", async || Ok(reported_ids(&receiver.received()).len() == 5)).await?;
    let mut expected = vec![after.clone()];
    expected.extend(failed);
    expected.push(after);
    assert_eq!(reported_ids(&receiver.received()), expected);
    assert!(letters(&mut webhooks).await?.is_empty());

    // A replay from a seq the journal does not hold is refused.
    let refused = webhooks.replay_webhook(pb::ReplayWebhookRequest { id: id.clone(), from_seq: 0 }).await.expect_err("seq 0");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_registers_and_a_bad_registration_changes_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(3)).await?;
    let mut command = server.command().await?;
    let channel = server.channel().await?;
    let mut webhooks = webhooks_with(channel.clone(), ADMIN_TOKEN);
    let dispatcher_token = add_operator(&mut command, "desk", pb::OperatorRole::Dispatcher).await?;
    let mut as_dispatcher = webhooks_with(channel.clone(), &dispatcher_token);
    let refused = as_dispatcher.list_webhooks(pb::ListWebhooksRequest {}).await.expect_err("a dispatcher lists none");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("admin"), "{}", refused.message());
    let refused = add(&mut as_dispatcher, "http://127.0.0.1:9/hook", &[], &[]).await.expect_err("a dispatcher adds none");
    assert!(refused.to_string().contains("admin"), "{refused}");

    let cases: [(&str, &[&str], &[&str], &str, &str); 5] = [
        ("ftp://partner.example/hook", &[], &[], SECRET, "http://"),
        ("not a url", &[], &[], SECRET, "not a URL"),
        ("http://127.0.0.1:9/hook", &["incident_reportd"], &[], SECRET, "is not an event kind"),
        ("http://127.0.0.1:9/hook", &["operator_added"], &[], SECRET, "is not an event kind"),
        ("http://127.0.0.1:9/hook", &[], &["d9"], SECRET, "'pingji areas list'"),
    ];
    for (url, kinds, areas, secret, hint) in cases {
        let request = pb::AddWebhookRequest {
            url: url.into(),
            kinds: kinds.iter().map(|kind| kind.to_string()).collect(),
            area_ids: areas.iter().map(|area| area.to_string()).collect(),
            secret: secret.into(),
            ..Default::default()
        };
        let refused = webhooks.add_webhook(request).await.expect_err(url);
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(hint), "{url} {kinds:?} {areas:?}: {}", refused.message());
    }
    let short = pb::AddWebhookRequest { url: "http://127.0.0.1:9/hook".into(), secret: "short".into(), ..Default::default() };
    let refused = webhooks.add_webhook(short).await.expect_err("a short secret");
    assert!(refused.message().contains("at least 16"), "{}", refused.message());
    assert!(webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks.is_empty(), "nothing was kept");

    // Without a secret, one is made and shown once.
    let made =
        webhooks.add_webhook(pb::AddWebhookRequest { url: "http://127.0.0.1:9/hook".into(), ..Default::default() }).await?;
    assert!(made.get_ref().secret.starts_with("whsec_"), "{:?}", made.get_ref());
    let removed = webhooks.remove_webhook(pb::RemoveWebhookRequest { id: made.get_ref().id.clone() }).await?.into_inner();
    assert!(removed.secret.is_empty());
    let gone = webhooks.remove_webhook(pb::RemoveWebhookRequest { id: removed.id }).await.expect_err("removed already");
    assert_eq!(gone.code(), Code::NotFound);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_adds_lists_and_removes_webhooks() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(3)).await?;
    let address = format!("http://{}", server.address());
    let receiver = WebhookReceiver::start().await?;
    let run = |args: Vec<String>| {
        let address = address.clone();
        async move { pingji_tests::cli::run_pingji(&address, &args).await }
    };
    let added = run(vec![
        "webhooks".into(),
        "add".into(),
        receiver.url(),
        "--kinds".into(),
        "incident_reported,incident_closed".into(),
        "--areas".into(),
        "d1".into(),
    ])
    .await?
    .success()?;
    assert!(added.stdout.contains("signing secret (shown once"), "{}", added.stdout);
    let id = added.stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
    assert!(id.starts_with("wh_"), "{}", added.stdout);
    let listed = run(vec!["webhooks".into(), "list".into()]).await?.success()?;
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("kinds: incident_closed, incident_reported"),
        "{}",
        listed.stdout
    );
    let bad = run(vec!["webhooks".into(), "add".into(), receiver.url(), "--areas".into(), "nowhere".into()]).await?;
    assert_ne!(bad.code(), Some(0));
    assert!(bad.stderr.contains("'pingji areas list'"), "{}", bad.stderr);
    let letters = run(vec!["webhooks".into(), "dead-letters".into(), id.clone()]).await?.success()?;
    assert!(letters.stdout.contains("no dead letters"), "{}", letters.stdout);
    run(vec!["webhooks".into(), "remove".into(), id.clone()]).await?.success()?;
    let listed = run(vec!["webhooks".into(), "list".into(), "--json".into()]).await?.success()?;
    assert_eq!(listed.json()?, serde_json::json!([]));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_delivery_delivers_again_with_the_same_ids() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = dir.path().join("dispatcher.toml");
    std::fs::write(
        &settings,
        "[webhooks]\nmax_attempts = 10000\nretry_initial_ms = 20\nretry_max_ms = 200\nsource = \"/pingji/kill\"\n",
    )?;
    let options = ProcessOptions {
        data: dir.path().join("pingji.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let extra: Vec<OsString> = vec!["--config".into(), settings.into_os_string()];
    let first = DispatcherProcess::start_with_args(&options, &extra).await?;
    let mut command = first.command().await?;
    let mut webhooks = webhooks_with(first.channel().await?, ADMIN_TOKEN);
    let receiver = WebhookReceiver::start().await?;
    // A slow partner, so that the kill lands while deliveries are under way.
    receiver.answer(Answer::After(Duration::from_millis(40)));
    let id = add(&mut webhooks, &receiver.url(), &["incident_reported"], &[]).await?.id;
    let mut ids = Vec::new();
    for index in 0..20 {
        ids.push(incident_in(&mut command, "d1-s1-c1-g1", &format!("kill-{index}")).await?);
    }
    wait_until(WITHIN, "some deliveries arrived", async || Ok(receiver.received().len() >= 3)).await?;
    first.kill().await?;
    let before_kill = receiver.received().len();
    assert!(before_kill < ids.len(), "the kill came mid-delivery ({before_kill} of {})", ids.len());

    let second = DispatcherProcess::start_with_args(&options, &extra).await?;
    let mut webhooks = webhooks_with(second.channel().await?, ADMIN_TOKEN);
    let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
    assert_eq!(
        listed.iter().map(|webhook| webhook.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "the registration survived"
    );
    wait_for_incidents(&receiver, &ids).await?;

    // At least once: every incident, in order; a repeat has the same id.
    let seqs = receiver.seqs();
    let mut unique = seqs.clone();
    unique.dedup();
    let mut sorted = unique.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "every event, received by id: {seqs:?}");
    let first_run = &seqs[..before_kill];
    assert!(strictly_increasing(first_run), "{seqs:?}");
    let resumed = &seqs[before_kill..];
    assert!(strictly_increasing(resumed), "{seqs:?}");
    assert!(resumed.first().is_some_and(|first| *first <= first_run.last().copied().unwrap_or(0) + 100), "{seqs:?}");
    let mut by_id: Vec<String> = Vec::new();
    for id in reported_ids(&receiver.received()) {
        if !by_id.contains(&id) {
            by_id.push(id);
        }
    }
    assert_eq!(by_id, ids, "deduped by id, the incidents in the order reported");
    assert_eq!(
        receiver.received().iter().find(|delivery| delivery.seq() == seqs[0]).map(|delivery| delivery.json()["source"].clone()),
        Some(serde_json::json!("/pingji/kill"))
    );
    second.kill().await?;
    Ok(())
}

/// The signature check in docs/integrations.md, run as written with
/// python3 (standard library only) on a real delivery: it accepts it, and
/// refuses it with one byte of the body changed or another secret. Without
/// python3 the test says so and passes, unless PINGJI_REQUIRE_PYTHON=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_check_accepts_a_real_delivery() -> anyhow::Result<()> {
    let has_python = std::process::Command::new("python3").arg("--version").output().is_ok_and(|output| output.status.success());
    if !has_python {
        anyhow::ensure!(std::env::var("PINGJI_REQUIRE_PYTHON").as_deref() != Ok("1"), "python3 is required");
        eprintln!("skipped: python3 is not installed");
        return Ok(());
    }
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integrations.md");
    let docs = std::fs::read_to_string(&docs)?;
    let snippet = docs
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| anyhow::anyhow!("docs/integrations.md has no python block"))?;

    let server = TestServer::start(|config| config.webhooks = quick(5)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let receiver = WebhookReceiver::start().await?;
    add(&mut webhooks, &receiver.url(), &["incident_reported"], &[]).await?;
    let id = incident_in(&mut command, "d1-s1-c1-g1", "checked-in-python").await?;
    wait_for_incidents(&receiver, std::slice::from_ref(&id)).await?;
    let delivery = receiver.received().remove(0);

    let dir = tempfile::tempdir()?;
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, &delivery.body)?;
    let headers = serde_json::to_string(&delivery.headers)?;
    let script = format!(
        "{snippet}\nimport json, sys\nheaders = json.loads(sys.argv[1])\nbody = open(sys.argv[2], 'rb').read()\n\
         tampered = body[:-2] + (b'x' if body[-2:-1] != b'x' else b'y') + body[-1:]\n\
         print(verify(sys.argv[3], headers, body), verify(sys.argv[3], headers, tampered), verify('another-secret-0123', headers, body))\n"
    );
    let output =
        tokio::process::Command::new("python3").arg("-c").arg(&script).arg(&headers).arg(&body_path).arg(SECRET).output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim(), "True False False", "the real delivery passes; a changed body or another secret fails");
    server.shutdown().await
}

/// On the Redis store the registration lives beside the shard: the
/// owner's successor (here the same process restarted after a kill -9)
/// delivers to it from the saved cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_registration_outlives_its_owner() -> anyhow::Result<()> {
    use pingji_tests::redis::{RedisServer, SharedDispatcher, SharedStoreOptions};
    let dir = tempfile::tempdir()?;
    let redis = tokio::task::block_in_place(|| RedisServer::start(dir.path()))?;
    let options = SharedStoreOptions {
        redis_url: redis.url(),
        policy: None,
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        lease_ms: None,
        shard: Some("city".to_string()),
        log: dir.path().join("dispatcher.log"),
        tls: None,
        photos_dir: None,
    };
    let mut owner = SharedDispatcher::start(&options).await?;
    owner.wait_owner(WITHIN).await?;
    let mut command = owner.command().await?;
    let mut webhooks = webhooks_with(owner.channel().await?, ADMIN_TOKEN);
    let receiver = WebhookReceiver::start().await?;
    let id = add(&mut webhooks, &receiver.url(), &["incident_reported"], &["d1"]).await?.id;
    let first = incident_in(&mut command, "d1-s1-c1-g1", "on-redis-1").await?;
    wait_for_incidents(&receiver, std::slice::from_ref(&first)).await?;

    owner.kill().await?;
    owner.restart().await?;
    owner.wait_owner(WITHIN).await?;
    let mut command = owner.command().await?;
    let mut webhooks = webhooks_with(owner.channel().await?, ADMIN_TOKEN);
    let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
    assert_eq!(listed.iter().map(|webhook| webhook.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);
    assert_eq!(listed[0].area_ids, vec!["d1".to_string()]);
    let second = incident_in(&mut command, "d1-s1-c1-g1", "on-redis-2").await?;
    wait_for_incidents(&receiver, std::slice::from_ref(&second)).await?;
    let mut unique = reported_ids(&receiver.received());
    unique.dedup();
    assert_eq!(unique, vec![first, second], "each incident, in order (a repeat of the first would be at least once)");
    owner.kill().await?;
    Ok(())
}

/// A partner sees people's positions to about 1 km (offer origins on the
/// 0.01° grid, distances banded to the kilometre) unless it was granted
/// precision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_coarse_unless_the_partner_is_granted_precision() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.webhooks = quick(5)).await?;
    let mut command = server.command().await?;
    let mut webhooks = webhooks_with(server.channel().await?, ADMIN_TOKEN);
    let coarse = WebhookReceiver::start().await?;
    let precise = WebhookReceiver::start().await?;
    add(&mut webhooks, &coarse.url(), &["offer_sent"], &[]).await?;
    let request = pb::AddWebhookRequest {
        url: precise.url(),
        kinds: vec!["offer_sent".into()],
        secret: SECRET.into(),
        precise: true,
        ..Default::default()
    };
    webhooks.add_webhook(request).await?;

    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let (person_lon, person_lat) = pingji_tests::offset_m(lon, lat, 373.0, 211.0);
    let spec = pingji_tests::person("near", "d1-s1-c1-g1", &[]);
    let _session = server.connect_person_at(spec, person_lon, person_lat).await?;
    incident_in(&mut command, "d1-s1-c1-g1", "offered").await?;
    wait_until(WITHIN, "both partners have the offer", async || {
        Ok(!coarse.received().is_empty() && !precise.received().is_empty())
    })
    .await?;
    let origin = |receiver: &WebhookReceiver| {
        let event = receiver.received()[0].json();
        let origin = &event["data"]["offer_sent"]["origin"];
        (origin["lon"].as_f64().unwrap_or(f64::NAN), origin["lat"].as_f64().unwrap_or(f64::NAN), event)
    };
    let on_grid = |value: f64| ((value * 100.0) - (value * 100.0).round()).abs() < 1e-6;
    let (coarse_lon, coarse_lat, coarse_event) = origin(&coarse);
    assert!(on_grid(coarse_lon) && on_grid(coarse_lat), "{coarse_event}");
    let distance = coarse_event["data"]["offer_sent"]["distance_m"].as_f64().unwrap_or(f64::NAN);
    assert!(distance >= 1000.0 && distance % 1000.0 == 0.0, "banded to the kilometre: {coarse_event}");
    let (precise_lon, precise_lat, precise_event) = origin(&precise);
    assert!(!(on_grid(precise_lon) && on_grid(precise_lat)), "{precise_event}");
    assert!((precise_lon - person_lon).abs() < 0.002 && (precise_lat - person_lat).abs() < 0.002, "{precise_event}");
    server.shutdown().await
}
