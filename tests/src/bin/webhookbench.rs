//! Webhook delivery throughput: events per second posted, signed and
//! acknowledged one at a time in seq order to a partner endpoint on
//! loopback, from a dispatcher in this process.
//!
//! `cargo run --release -p pingji-tests --bin webhookbench -- [INCIDENTS] [sqlite|memory]`
//!
//! It reports INCIDENTS incidents first (no webhook yet), then registers a
//! subscriber from seq 1 and times how long the journal's events take to
//! arrive, with the SQLite cursor written after each event (the default
//! store) or in memory.

use std::time::{Duration, Instant};

use pingji_client::auth::BearerToken;
use pingji_dispatcher::server::Store;
use pingji_proto::v1 as pb;
use pingji_proto::v1::webhook_service_client::WebhookServiceClient;
use pingji_tests::server::TestServer;
use pingji_tests::webhook_receiver::WebhookReceiver;
use pingji_tests::{ADMIN_TOKEN, area_box};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let incidents: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(2_000);
    let store = args.next().unwrap_or_else(|| "sqlite".to_string());
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("pingji.db");
    let server = TestServer::start(|config| {
        if store == "sqlite" {
            config.store = Store::Sqlite(journal.clone());
        }
        config.retention = None;
    })
    .await?;
    let mut command = server.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    for index in 0..incidents {
        let request = pb::CreateIncidentRequest {
            id: format!("bench-{index:05}"),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "welfare_check".into(),
            priority: 2,
            headcount: 1,
            ..Default::default()
        };
        command.create_incident(request).await?;
    }
    let receiver = WebhookReceiver::start().await?;
    let mut webhooks = WebhookServiceClient::with_interceptor(
        server.channel().await?,
        BearerToken::new(Some(ADMIN_TOKEN)).map_err(anyhow::Error::msg)?,
    );
    let last_seq = {
        let mut watch = command.watch_events(pb::WatchEventsRequest { from_seq: 0, replay_last: 1 }).await?.into_inner();
        watch.message().await?.map(|event| event.seq).unwrap_or(0)
    };
    let started = Instant::now();
    let request = pb::AddWebhookRequest { url: receiver.url(), from_seq: 1, ..Default::default() };
    webhooks.add_webhook(request).await?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let listed = webhooks.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner().webhooks;
        if listed.first().is_some_and(|webhook| webhook.next_seq > last_seq) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let delivered = receiver.received().len();
    println!(
        "webhookbench: store {store}, {incidents} incidents, journal up to seq {last_seq}: {delivered} events delivered in {:.2} s = {:.0} events/s (one at a time, signed, cursor saved after each)",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );
    server.shutdown().await
}
