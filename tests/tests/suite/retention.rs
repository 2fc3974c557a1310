//! The journal's retention limit seen by a client over real gRPC: once a
//! snapshot lets old events go, a watcher asking for them is told where the
//! history kept starts, and can watch from there or from now on.

use std::time::Duration;

use pingji_tests::{EventWatch, TestServer, pb, wait_until};

const PROMPTLY: Duration = Duration::from_secs(30);

fn person(n: u32) -> pb::AgentSpec {
    pb::AgentSpec {
        id: format!("r{n:04}"),
        name: format!("person {n}"),
        role: pb::Role::Volunteer as i32,
        travel_mode: pb::TravelMode::Walk as i32,
        on_duty: true,
        ..pb::AgentSpec::default()
    }
}

/// The first seq kept, from a refusal's message ("events before seq N ...").
fn first_kept(message: &str) -> Option<u64> {
    message.split("events before seq ").nth(1)?.split(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_asking_for_deleted_events_is_told_where_history_starts() -> anyhow::Result<()> {
    let server = TestServer::start(|config| {
        config.snapshot_every = 5;
        // Days in production; here every event is old a millisecond later,
        // so each snapshot lets everything before it go.
        config.retention = Some(Duration::from_millis(1));
    })
    .await?;
    let mut command = server.command().await?;
    for n in 1..=12 {
        command.import_agents(pb::ImportAgentsRequest { agents: vec![person(n)] }).await?;
    }

    let mut refusal = None;
    wait_until(PROMPTLY, "a watch from seq 1 is refused", async || {
        let mut stream = command.watch_events(pb::WatchEventsRequest { from_seq: 1, replay_last: 0 }).await?.into_inner();
        match tokio::time::timeout(PROMPTLY, stream.message()).await? {
            Err(status) => {
                refusal = Some(status);
                Ok(true)
            }
            Ok(_) => Ok(false),
        }
    })
    .await?;
    let status = refusal.expect("set when the wait ends");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let first = first_kept(status.message()).unwrap_or_else(|| panic!("no seq in {:?}", status.message()));
    assert!(first > 1, "{}", status.message());
    assert!(status.message().contains("retention"), "{}", status.message());

    // From the first event kept, the history is whole.
    let mut from_first = EventWatch::start(&mut command, first).await?;
    assert_eq!(from_first.next_within(PROMPTLY).await?.seq, first);
    // And watching new events only is not affected.
    let mut from_now = EventWatch::start(&mut command, 0).await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![person(13)] }).await?;
    let event = from_now.wait_for(PROMPTLY, "the new person", |event| event.kind == "agents_upserted").await?;
    assert!(event.seq > first);
    drop((from_first, from_now));
    server.shutdown().await
}
