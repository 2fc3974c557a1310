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

    let (_, mut stream) = client.listen().await?;
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    client.report_location(lon, lat).await?;
    wait_until(PROMPTLY, "push-1 is located", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "push-1".into() }).await?.into_inner();
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
