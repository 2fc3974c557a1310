//! `pingji_client::event_stream` against a real `dispatcher` process that
//! is killed and started again: the stream says it lost the dispatcher,
//! comes back by itself, and goes on from the event after the last one it
//! gave, with no event missed or given twice.

use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::backoff::BackoffPolicy;
use pingji_client::connect::{ConnectOptions, Connection};
use pingji_client::event_stream::{EventStream, Watched};
use pingji_tests::agent_fixtures::RestartableDispatcher;
use pingji_tests::{ADMIN_TOKEN, ProcessOptions, pb, sample_city, sample_roster};

/// Generous deadline for anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(30);

/// What the stream gives next, within [`PROMPTLY`].
async fn next(events: &mut EventStream) -> anyhow::Result<Watched> {
    tokio::time::timeout(PROMPTLY, events.next())
        .await
        .map_err(|_| anyhow::anyhow!("nothing from the stream within {PROMPTLY:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_resumes_after_a_dispatcher_restart_with_no_gap_and_no_repeat() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ProcessOptions {
        data: dir.path().join("pingji.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let mut dispatcher = RestartableDispatcher::start(&options).await?;
    let mut connect = ConnectOptions::new(&dispatcher.url());
    connect.bearer = BearerToken::new(Some(ADMIN_TOKEN)).map_err(anyhow::Error::msg)?;
    let policy = BackoffPolicy { initial: Duration::from_millis(100), cap: Duration::from_secs(1), ..BackoffPolicy::default() };
    let mut events = EventStream::new(Connection::open(connect).await?, 1, policy);

    // The record so far: the map and the roster loaded at start.
    assert!(matches!(next(&mut events).await?, Watched::Opened));
    let mut seqs = Vec::new();
    while let Ok(watched) = tokio::time::timeout(Duration::from_millis(500), events.next()).await {
        match watched {
            Watched::Event(event) => seqs.push(event.seq),
            other => anyhow::bail!("{other:?} before the restart"),
        }
    }
    anyhow::ensure!(!seqs.is_empty(), "no events in the record");
    let last_before = seqs[seqs.len() - 1];
    assert_eq!(events.next_seq(), last_before + 1);

    dispatcher.kill().await?;
    let Watched::Lost { reason, retry_in, attempt } = next(&mut events).await? else {
        anyhow::bail!("the kill was not noticed");
    };
    assert_eq!(attempt, 1, "{reason}");
    assert!(retry_in <= Duration::from_millis(100), "{retry_in:?}");
    dispatcher.restart().await?;
    dispatcher
        .command()
        .await?
        .create_incident(pb::CreateIncidentRequest {
            id: "after-restart".to_string(),
            location: Some(pb::Location::wgs84(120.1, 30.23)),
            category: "medical".to_string(),
            priority: 2,
            headcount: 1,
            description: "reported while the stream was away".to_string(),
            ..Default::default()
        })
        .await?;

    // Tries while the process was down failed; then it is back, and the
    // next event is the one after the last seen.
    let resumed_seq = loop {
        match next(&mut events).await? {
            Watched::Lost { .. } | Watched::Opened => continue,
            Watched::Event(event) => break event.seq,
        }
    };
    assert_eq!(resumed_seq, last_before + 1, "resumed after #{last_before}");
    let reported = loop {
        match next(&mut events).await? {
            Watched::Event(event) if event.incident_id == "after-restart" => break event,
            Watched::Event(event) => assert!(event.seq > resumed_seq, "#{} given twice", event.seq),
            other => anyhow::bail!("{other:?} after the stream came back"),
        }
    };
    assert!(reported.seq > last_before);
    dispatcher.kill().await
}
