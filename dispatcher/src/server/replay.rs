//! Replaying a drill's journal for the after-action review (`dispatcher
//! --replay`): a dispatcher that changes nothing, whose state follows the
//! events of another journal (a SQLite file, opened read-only) at the pace
//! they happened, times `speed`. The command map, the console and every
//! watch see them as they would have live: areas and modes, incidents,
//! offers and answers, the event feed.
//!
//! Every command and every person's session is refused, saying why, and
//! no deadline fires (the timeouts and widenings that happened are events
//! of the journal). The clock shows the journal's time. People's live
//! positions were never journaled (they are soft state, and personal
//! data), so people are not shown where they went.
//!
//! The one account is a viewer made for the replay, whose token the caller
//! shows once: the journal's own accounts come and go with its events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tracing::{error, info};

use super::config::{Config, Replay, Store};
use crate::convert;
use crate::journal::{MemoryJournal, SqliteReader};
use crate::runtime::{Clock, Dispatcher, Pace, SharedJournal};
use pingji_engine::accounts::{Operator, OperatorRole};
use pingji_engine::engine::{Engine, State};
use pingji_engine::event::Event;
use pingji_engine::ids::Millis;

/// Events read from the journal at once.
const READ_BATCH: usize = 1_000;
/// Events taken in at once when many are due together.
const TAKE_IN_BATCH: usize = 256;
/// How often the end of a journal still being written is read again.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// The replay's own account.
pub const REVIEWER: &str = "review";

/// Sets `config` up to replay `replay` (a memory journal, the replay's
/// clock) and returns that journal and the engine to serve: empty but for
/// the viewer's account.
pub(super) async fn prepare(config: &mut Config, replay: &Replay) -> anyhow::Result<(SharedJournal, Engine)> {
    anyhow::ensure!(
        replay.speed > 0.0 && replay.speed <= 10_000.0,
        "--speed {} cannot be used: replay between 0 and 10000 times real time",
        replay.speed
    );
    let path = replay.journal.clone();
    let (first_at, last_seq) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Millis, u64)> {
        let reader = open_reader(&path)?;
        let first_seq = reader.first_seq()?.with_context(|| format!("the journal {} has no events to replay", path.display()))?;
        anyhow::ensure!(
            first_seq == 1,
            "the journal {} starts at event {first_seq}: the ones before were deleted for its retention limit, and a \
             replay needs every event from the first",
            path.display()
        );
        let first = reader.read_from(1, 1)?;
        let first_at = first.first().map(|stored| Millis(stored.at_ms)).context("the journal's first event cannot be read")?;
        Ok((first_at, reader.last_seq()?))
    })
    .await??;
    let hashing = replay.viewer_token.clone();
    let token_hash =
        tokio::task::spawn_blocking(move || crate::tokens::hash_token(&hashing)).await?.map_err(anyhow::Error::msg)?;
    let mut state = State::default();
    state.operators.insert(
        REVIEWER.to_string(),
        Operator { role: OperatorRole::Viewer, token_hash, created_at: first_at, token_expires_at: None, token_revoked_at: None },
    );
    let engine = Engine::restore(config.policy.clone(), state);
    config.store = Store::Ephemeral;
    config.clock = Clock::paced(Pace::new(first_at, replay.speed));
    config.replay = Some(replay.clone());
    info!(journal = %replay.journal.display(), events = last_seq, speed = replay.speed, "replaying a journal");
    let journal: SharedJournal = Arc::new(Mutex::new(Box::new(MemoryJournal::new())));
    Ok((journal, engine))
}

fn open_reader(path: &std::path::Path) -> anyhow::Result<SqliteReader> {
    anyhow::ensure!(
        path.is_file(),
        "there is no journal at {} to replay; give the path of a journal.db or pingji.db",
        path.display()
    );
    SqliteReader::open(path).with_context(|| format!("cannot open the journal {} to replay", path.display()))
}

/// Feeds the journal's events to `dispatcher` as `clock` reaches their
/// times, then follows the journal's end (it may still be written).
pub(super) async fn follow(dispatcher: Dispatcher, replay: Replay, clock: Clock) {
    if let Err(error) = feed(&dispatcher, &replay, &clock).await {
        error!(error = %format!("{error:#}"), "the replay stopped");
    }
}

async fn feed(dispatcher: &Dispatcher, replay: &Replay, clock: &Clock) -> anyhow::Result<()> {
    let path = replay.journal.clone();
    let reader = tokio::task::spawn_blocking(move || open_reader(&path)).await??;
    let reader = Arc::new(Mutex::new(reader));
    let mut next_seq = 1;
    let mut said_end = false;
    loop {
        let reading = reader.clone();
        let batch = tokio::task::spawn_blocking(move || {
            let reader = reading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            reader.read_from(next_seq, READ_BATCH)
        })
        .await??;
        if batch.is_empty() {
            if !said_end {
                info!(last_seq = next_seq - 1, "the replay reached the end of the journal; following it");
                said_end = true;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            continue;
        }
        said_end = false;
        let mut due: Vec<Event> = Vec::new();
        for stored in &batch {
            let event = convert::event_from_stored(stored).map_err(anyhow::Error::msg)?;
            if (event.at > clock.now() || due.len() >= TAKE_IN_BATCH) && !due.is_empty() {
                dispatcher.take_in(std::mem::take(&mut due)).await?;
            }
            wait_until(clock, event.at).await;
            next_seq = event.seq + 1;
            due.push(event);
        }
        if !due.is_empty() {
            dispatcher.take_in(due).await?;
        }
    }
}

/// Waits until `clock` shows `at`, following its pace as the viewer pauses,
/// changes the speed or skips ahead.
async fn wait_until(clock: &Clock, at: Millis) {
    let mut changes = clock.pace().map(|pace| pace.changes());
    while clock.now() < at {
        let paused = clock.pace().is_some_and(|pace| pace.paused());
        let wait = clock.real_wait(at.0 - clock.now().0).max(std::time::Duration::from_millis(1));
        match changes.as_mut() {
            Some(changes) => {
                tokio::select! {
                    () = tokio::time::sleep(wait), if !paused => {}
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }
}

/// Where a replay is: its journal, pace and clock, and how far it has got.
pub(super) async fn state(
    replay: &Replay,
    clock: &Clock,
    dispatcher: &Dispatcher,
) -> anyhow::Result<pingji_proto::v1::ReplayState> {
    let path = replay.journal.clone();
    let (first_at, last_at, last_seq) = tokio::task::spawn_blocking(move || -> anyhow::Result<(i64, i64, u64)> {
        let reader = open_reader(&path)?;
        let last_seq = reader.last_seq()?;
        let first = reader.read_from(1, 1)?.first().map_or(0, |stored| stored.at_ms);
        let last = reader.read_from(last_seq, 1)?.first().map_or(first, |stored| stored.at_ms);
        Ok((first, last, last_seq))
    })
    .await??;
    let (_, shown_seq) = dispatcher.kept_seqs().await.map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(pingji_proto::v1::ReplayState {
        journal: replay.journal.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
        speed: clock.speed(),
        paused: clock.pace().is_some_and(|pace| pace.paused()),
        clock_ms: clock.now().0,
        first_at_ms: first_at,
        last_at_ms: last_at,
        last_seq,
        shown_seq,
    })
}
