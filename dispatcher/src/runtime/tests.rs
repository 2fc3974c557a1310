use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::journal::{SqliteJournal, SqliteReader};
use pingji_engine::engine::Command;
use pingji_engine::roster::{AgentProfile, Role, TravelMode};

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_773_563_445_000;

fn profile(id: &str) -> AgentProfile {
    AgentProfile {
        id: AgentId::new(id),
        name: format!("person {id}"),
        role: Role::Volunteer,
        skills: BTreeSet::new(),
        phone: "13900000000".to_string(),
        home_area: None,
        travel_mode: TravelMode::Walk,
        on_duty: true,
        home: None,
    }
}

async fn add_people(dispatcher: &Dispatcher, ids: std::ops::RangeInclusive<u32>) {
    for number in ids {
        let command =
            Command::UpsertAgents { agents: vec![profile(&format!("p{number:04}"))], all_new: true, tokens: Vec::new() };
        dispatcher.execute(command, "operator:test".to_string(), |_, _| ()).await.expect("person added");
    }
}

async fn last_seq(dispatcher: &Dispatcher) -> u64 {
    dispatcher.query(|engine, _| engine.state().last_seq).await.expect("query")
}

fn open_shared(path: &std::path::Path) -> SharedJournal {
    Arc::new(Mutex::new(Box::new(SqliteJournal::open(path).expect("open journal")) as Box<dyn Journal>))
}

/// Events older than the retention limit go once a snapshot covers
/// them; recent ones stay; readers asking for deleted ones are told;
/// and a restart recovers the same state from what is left.
#[tokio::test]
async fn old_events_are_deleted_after_a_snapshot_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.sqlite");
    let journal = open_shared(&path);
    let clock_ms = Arc::new(AtomicI64::new(START_MS));
    let clock = clock_ms.clone();
    let config = RuntimeConfig {
        policy: Policy::default(),
        snapshot_every: 5,
        clock: Clock::new(move || Millis(clock.load(Ordering::Relaxed))),
        locations: None,
        wait_for_store: false,
        append_timer: None,
        retention: Some(Duration::from_millis(DAY_MS as u64)),
        read_only: None,
    };
    let (stop, shutdown) = watch::channel(false);
    let (dispatcher, owner) = start(Engine::new(Policy::default()), journal.clone(), config, shutdown);

    // Snapshots are taken on the first day: nothing is old enough yet.
    add_people(&dispatcher, 1..=6).await;
    let last_old_seq = last_seq(&dispatcher).await;
    let reader = SqliteReader::open(&path).expect("reader");
    assert_eq!(reader.first_seq().expect("first_seq"), Some(1));

    // Two days later, the next snapshot lets the first day's events go.
    clock_ms.fetch_add(2 * DAY_MS, Ordering::Relaxed);
    add_people(&dispatcher, 7..=12).await;
    let last_recent_seq = last_seq(&dispatcher).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reader.first_seq().expect("first_seq") != Some(last_old_seq + 1) {
        assert!(std::time::Instant::now() < deadline, "the first day's events are still there: {:?}", reader.first_seq());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kept = reader.read_from(0, 1_000).expect("read");
    assert_eq!(kept.first().map(|event| event.seq), Some(last_old_seq + 1));
    assert_eq!(kept.last().map(|event| event.seq), Some(last_recent_seq), "recent events are all kept");
    assert!(kept.iter().all(|event| event.at_ms >= START_MS + 2 * DAY_MS));

    // A reader asking for deleted events is told where history starts.
    let error = dispatcher.read_events(1, 100).await.expect_err("seq 1 was deleted");
    let message = error.to_string();
    assert!(matches!(&error, DispatchError::Rejected(Rejection::FailedPrecondition(_))), "unexpected error: {message}");
    assert!(message.contains(&format!("events before seq {} are no longer kept", last_old_seq + 1)), "{message}");
    let from_head = dispatcher.read_events(last_old_seq + 1, 100).await.expect("read from the first kept event");
    assert_eq!(from_head, kept);
    assert_eq!(dispatcher.read_events(0, 100).await.expect("read from 0"), kept);
    assert!(dispatcher.read_events(last_recent_seq + 1, 100).await.expect("read past the end").is_empty());

    // A restart recovers the same state from the snapshot and what is left.
    let before = dispatcher.query(|engine, _| engine.state().clone()).await.expect("state");
    assert_eq!(before.agents.len(), 12);
    stop.send(true).expect("stop the owner");
    owner.await.expect("owner task").expect("owner stopped cleanly");
    drop(dispatcher);
    drop(journal);
    let recovered = recover(&open_shared(&path), Policy::default()).await.expect("recover");
    assert_eq!(recovered.state(), &before);
}

/// The count toward the next snapshot goes on from the journal's last
/// snapshot across restarts, so a dispatcher restarted (or killed)
/// more often than every `snapshot_every` events still snapshots.
#[tokio::test]
async fn restarts_more_often_than_the_snapshot_interval_still_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.sqlite");
    let config = || RuntimeConfig {
        policy: Policy::default(),
        snapshot_every: 5,
        clock: Clock::new(|| Millis(START_MS)),
        locations: None,
        wait_for_store: false,
        append_timer: None,
        retention: None,
        read_only: None,
    };
    for (round, people) in [(1, 1..=3), (2, 4..=6)] {
        let journal = open_shared(&path);
        let engine = recover(&journal, Policy::default()).await.expect("recover");
        let (stop, shutdown) = watch::channel(false);
        let (dispatcher, owner) = start(engine, journal, config(), shutdown);
        add_people(&dispatcher, people).await;
        let reader = SqliteReader::open(&path).expect("reader");
        let snapshot_seq = || reader.load_snapshot().expect("snapshot").map(|(seq, _)| seq);
        if round == 2 {
            // 6 events since the journal began, over two runs: a snapshot.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while snapshot_seq().is_none() {
                assert!(std::time::Instant::now() < deadline, "no snapshot after 6 events over two runs");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Killed, not stopped: no snapshot at shutdown.
        owner.abort();
        let _ = owner.await;
        drop((dispatcher, stop));
        if round == 1 {
            assert_eq!(snapshot_seq(), None, "3 events are fewer than 5");
        }
    }
}

/// Without a retention limit nothing is deleted, however old.
#[tokio::test]
async fn without_a_retention_limit_every_event_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.sqlite");
    let clock_ms = Arc::new(AtomicI64::new(START_MS));
    let clock = clock_ms.clone();
    let config = RuntimeConfig {
        policy: Policy::default(),
        snapshot_every: 2,
        clock: Clock::new(move || Millis(clock.load(Ordering::Relaxed))),
        locations: None,
        wait_for_store: false,
        append_timer: None,
        retention: None,
        read_only: None,
    };
    let (stop, shutdown) = watch::channel(false);
    let (dispatcher, owner) = start(Engine::new(Policy::default()), open_shared(&path), config, shutdown);
    add_people(&dispatcher, 1..=3).await;
    clock_ms.fetch_add(3_650 * DAY_MS, Ordering::Relaxed);
    add_people(&dispatcher, 4..=6).await;
    stop.send(true).expect("stop the owner");
    owner.await.expect("owner task").expect("owner stopped cleanly");
    let reader = SqliteReader::open(&path).expect("reader");
    assert_eq!(reader.first_seq().expect("first_seq"), Some(1));
    assert!(reader.load_snapshot().expect("snapshot").is_some(), "snapshots were taken");
    drop(dispatcher);
}

/// Operators' messages follow the journal's retention: one untouched for
/// longer than the limit is forgotten, with its read receipts, at the next
/// snapshot; one read or replied to recently stays; numbers are not reused;
/// and a restart recovers the same messages.
#[tokio::test]
async fn messages_past_the_retention_limit_are_forgotten_at_the_next_snapshot() {
    use pingji_engine::message::Audience;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.sqlite");
    let journal = open_shared(&path);
    let clock_ms = Arc::new(AtomicI64::new(START_MS));
    let clock = clock_ms.clone();
    let config = RuntimeConfig {
        policy: Policy::default(),
        snapshot_every: 5,
        clock: Clock::new(move || Millis(clock.load(Ordering::Relaxed))),
        locations: None,
        wait_for_store: false,
        append_timer: None,
        retention: Some(Duration::from_millis(DAY_MS as u64)),
        read_only: None,
    };
    let (stop, shutdown) = watch::channel(false);
    let (dispatcher, owner) = start(Engine::new(Policy::default()), journal.clone(), config, shutdown);
    add_people(&dispatcher, 1..=2).await;
    let send = async |to: &str, text: &str| {
        let command = Command::SendMessage { to: Audience::Agent(AgentId::new(to)), text: text.to_string() };
        dispatcher.execute(command, "operator:test".to_string(), |_, _| ()).await.expect("message sent");
    };
    let messages =
        async || dispatcher.query(|engine, _| engine.state().messages.keys().cloned().collect::<Vec<_>>()).await.expect("query");
    send("p0001", "stand by").await;
    send("p0002", "not needed").await;
    let read = async |agent: &str, message: &str| {
        let command = Command::MarkMessageRead { agent: AgentId::new(agent), message: message.to_string() };
        dispatcher.execute(command, format!("agent:{agent}"), |_, _| ()).await.expect("read");
    };
    read("p0001", "msg-000001").await;

    // A day and a half later p0002 reads theirs; a day after that, the next
    // snapshot forgets the first (untouched for 2.5 days), not the second.
    clock_ms.fetch_add(3 * DAY_MS / 2, Ordering::Relaxed);
    read("p0002", "msg-000002").await;
    clock_ms.fetch_add(DAY_MS, Ordering::Relaxed);
    add_people(&dispatcher, 3..=8).await;
    let reader = SqliteReader::open(&path).expect("reader");
    let saved_messages = || {
        let (_, bytes) = reader.load_snapshot().expect("snapshot").unwrap_or_default();
        let saved: pingji_engine::engine::State = serde_json::from_slice(&bytes).unwrap_or_default();
        (saved.messages.keys().cloned().collect::<Vec<_>>(), String::from_utf8_lossy(&bytes).contains("stand by"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while saved_messages() != (vec!["msg-000002".to_string()], false) {
        assert!(std::time::Instant::now() < deadline, "the snapshot keeps {:?}", saved_messages());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(messages().await, ["msg-000002"], "forgotten in the live state too");
    // Numbers go on: a new message does not take the forgotten one's.
    send("p0001", "come to the centre").await;
    assert_eq!(messages().await, ["msg-000002", "msg-000003"]);

    let before = dispatcher.query(|engine, _| engine.state().clone()).await.expect("state");
    stop.send(true).expect("stop the owner");
    owner.await.expect("owner task").expect("owner stopped cleanly");
    drop(dispatcher);
    drop(journal);
    let recovered = recover(&open_shared(&path), Policy::default()).await.expect("recover");
    assert_eq!(recovered.state(), &before);
}
