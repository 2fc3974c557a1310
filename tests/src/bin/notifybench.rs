//! The escalation ladder's throughput and delay: a call-up of PEOPLE
//! reserves without a session, each sent an SMS at once by the ladder
//! through the generic webhook gateway on loopback, from a dispatcher in
//! this process with the SQLite journal (cursor, notices and idempotency
//! keys kept durably, a `notified` event journaled per SMS).
//!
//! `cargo run --release -p pingji-tests --bin notifybench -- [PEOPLE] [GATEWAY_PER_SECOND]`
//!
//! Prints SMS per second (from the call-up to the last SMS request) and
//! the delay from the call-up's event to each SMS request reaching the
//! gateway, p50/p99/max; then, one at a time, the delay from a call-up of
//! one person, and from an offer to a person whose app is closed (their
//! phone takes Web Push, from a push service on loopback) to its SMS.

use std::time::{Duration, Instant};

use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_dispatcher::notify::{DEFAULT_TEMPLATE, Gateway, NotifyConfig};
use pingji_dispatcher::server::Store;
use pingji_engine::event::NoticeChannel;
use pingji_engine::policy::{Ladder, LadderStep};
use pingji_proto::v1 as pb;
use pingji_tests::mobilisation::person_with_role;
use pingji_tests::push_service::PushService;
use pingji_tests::server::TestServer;
use pingji_tests::sms_gateway::{GATEWAY_SECRET, INBOUND_SECRET, SmsGateway};
use pingji_tests::{agent_token, area_box, offset_m, person};

/// Call-ups of one person each, for the unloaded delay.
const SINGLE: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let people: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(2_000);
    let per_second: u32 = args.next().map(|count| count.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("pingji.db");
    let gateway = SmsGateway::start().await?;
    let url = gateway.url();
    let server = TestServer::start(|config| {
        config.store = Store::Sqlite(journal.clone());
        config.retention = None;
        config.push.allow_loopback_http = true;
        config.policy.ladder = Some(Ladder {
            emergency_ii: vec![LadderStep { channel: NoticeChannel::Sms, after_s: 0, if_connected_after_s: None }],
            ..Ladder::default()
        });
        config.notify = NotifyConfig {
            sms: Some(Gateway::Webhook {
                url: url.clone(),
                secret: GATEWAY_SECRET.to_string(),
                template: DEFAULT_TEMPLATE.to_string(),
            }),
            inbound_secret: Some(INBOUND_SECRET.to_string()),
            gateway_per_second: per_second,
            ..NotifyConfig::default()
        };
    })
    .await?;
    let mut command = server.command().await?;
    // Reserves across d1's grids, each with a phone, none with a session.
    let grids = ["d1-s1-c1-g1", "d1-s1-c1-g2", "d1-s2-c1-g1", "d1-s1-c2-g1"];
    let agents: Vec<pb::AgentSpec> = (0..people)
        .map(|index| pb::AgentSpec {
            phone: format!("+86 139-{:04}-{:04}", index / 10_000, index % 10_000),
            ..person_with_role(&format!("reserve-{index:05}"), pb::Role::SunkCadre, grids[index % grids.len()])
        })
        .collect();
    for chunk in agents.chunks(1000) {
        command.import_agents(pb::ImportAgentsRequest { agents: chunk.to_vec() }).await?;
    }
    let mut watch = command.watch_events(pb::WatchEventsRequest { from_seq: 0, replay_last: 0 }).await?.into_inner();
    let started = Instant::now();
    command
        .set_mode(pb::SetModeRequest { area_id: "d1".into(), mode: pb::Mode::EmergencyIi as i32, reason: "bench".into() })
        .await?;
    let issued_ms = loop {
        let event = watch.message().await?.ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
        if event.kind == "callup_issued" {
            break event.at_ms;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while gateway.receiver.received().len() < people {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {people} SMS in 10 minutes", gateway.receiver.received().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let received = gateway.receiver.received();
    let mut delays: Vec<i64> = received.iter().map(|request| request.arrived_ms - issued_ms).collect();
    delays.sort_unstable();
    let at = |share: f64| delays[((delays.len() as f64 * share).ceil() as usize).clamp(1, delays.len()) - 1];
    let last_ms = received.iter().map(|request| request.arrived_ms).max().unwrap_or(issued_ms);
    let span_s = ((last_ms - issued_ms) as f64 / 1000.0).max(0.001);
    println!("notifybench: {people} reserves called up, one SMS each through the ladder (SQLite store)");
    println!("  gateway limit         {per_second} requests/s");
    println!("  SMS per second        {:.0} (call-up to last request {:.2} s)", people as f64 / span_s, span_s);
    println!("  call-up to SMS delay  p50 {} ms, p99 {} ms, max {} ms", at(0.50), at(0.99), at(1.0));
    println!("  wall time             {:.2} s (set_mode to the last request)", elapsed.as_secs_f64());

    // One at a time: a call-up of one new reserve, then wait for its SMS,
    // so the delay is the ladder's own, not a queue behind 2,000 others.
    let mut single = Vec::new();
    for index in 0..SINGLE {
        let id = format!("single-{index:04}");
        let spec = pb::AgentSpec {
            phone: format!("+86 137-0000-{index:04}"),
            ..person_with_role(&id, pb::Role::SunkCadre, "d1-s2-c1-g2")
        };
        command.import_agents(pb::ImportAgentsRequest { agents: vec![spec] }).await?;
        let before = gateway.receiver.received().len();
        let called = command
            .call_up(pb::CallUpRequest {
                area_id: "d1-s2-c1-g2".into(),
                roles: vec![pb::Role::SunkCadre as i32],
                reason: "bench".into(),
                deadline_s: 0,
            })
            .await?
            .into_inner();
        let deadline = Instant::now() + Duration::from_secs(30);
        while gateway.receiver.received().len() <= before {
            anyhow::ensure!(Instant::now() < deadline, "no SMS for {id} in 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let arrived = gateway.receiver.received().last().map_or(0, |request| request.arrived_ms);
        single.push(arrived - called.issued_at_ms);
    }
    single.sort_unstable();
    let at = |share: f64| single[((single.len() as f64 * share).ceil() as usize).clamp(1, single.len()) - 1];
    println!("  one at a time ({SINGLE} call-ups of one person): call-up to SMS p50 {} ms, p99 {} ms", at(0.50), at(0.99));

    let offers = offers_with_the_app_closed(&server, &mut command, &gateway).await?;
    let at = |share: f64| offers[((offers.len() as f64 * share).ceil() as usize).clamp(1, offers.len()) - 1];
    println!("  one at a time ({SINGLE} offers, app closed): offer to SMS p50 {} ms, p99 {} ms", at(0.50), at(0.99));
    server.shutdown().await
}

/// SINGLE people with phones that take push are located and close the
/// app; then an incident at a time is offered to the next of them (those
/// before hold their unanswered offers) and the ladder's SMS rung (grade
/// II, at once for people without a session) sends the offer by SMS: the
/// delays from each `offer_sent` event to its SMS request, sorted.
async fn offers_with_the_app_closed(
    server: &TestServer,
    command: &mut pingji_tests::Commands,
    gateway: &SmsGateway,
) -> anyhow::Result<Vec<i64>> {
    let push = PushService::start().await?;
    let grid = "d1-s2-c2-g1";
    let (lon, lat) = area_box(command, grid).await?.centre();
    for index in 0..SINGLE {
        let id = format!("closed-{index:04}");
        let spec = pb::AgentSpec { phone: format!("+86 136-0000-{index:04}"), ..person(&id, grid, &["first_aid"]) };
        command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await?;
        let token = agent_token(command, &id).await?;
        let client = FieldClient::new(server.channel().await?, AgentCredentials::new(&id, &token).map_err(anyhow::Error::msg)?);
        let subscription = push.subscribe()?;
        let request =
            pb::RegisterPushRequest { endpoint: subscription.endpoint, p256dh: subscription.p256dh, auth: subscription.auth };
        client.grpc().register_push(request).await?;
        let (_, stream) = client.listen().await?;
        let (at_lon, at_lat) = offset_m(lon, lat, 10.0 * index as f64, 0.0);
        client.report_location(at_lon, at_lat).await?;
        drop(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let agents = command
            .list_agents(pb::ListAgentsRequest { area_id: grid.into(), connected_only: true, ..Default::default() })
            .await?
            .into_inner()
            .agents;
        if agents.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{} sessions still open after 60 s", agents.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut watch = command.watch_events(pb::WatchEventsRequest { from_seq: 0, replay_last: 0 }).await?.into_inner();
    let mut delays = Vec::new();
    for index in 0..SINGLE {
        let before = gateway.receiver.received().len();
        let incident = command
            .create_incident(pb::CreateIncidentRequest {
                location: Some(pb::Location::wgs84(lon, lat)),
                category: "积水".into(),
                priority: 1,
                required_skills: vec!["first_aid".into()],
                headcount: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        let offered_ms = loop {
            let event = watch.message().await?.ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
            if event.kind == "offer_sent" && event.incident_id == incident.id {
                break event.at_ms;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let arrived = loop {
            let received = gateway.receiver.received();
            let sms = received[before..].iter().find(|request| String::from_utf8_lossy(&request.body).contains(&incident.id));
            if let Some(sms) = sms {
                break sms.arrived_ms;
            }
            anyhow::ensure!(Instant::now() < deadline, "no SMS for offer {index} in 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        delays.push(arrived - offered_ms);
    }
    delays.sort_unstable();
    Ok(delays)
}
