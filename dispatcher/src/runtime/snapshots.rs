//! Snapshots, the retention limit, and recovery: a snapshot every
//! `snapshot_every` events (and at a clean shutdown), old events deleted in
//! the background once a snapshot covers them, and the state loaded at start
//! from the latest snapshot and the events after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, warn};

use super::{Forgetting, Owner, SharedJournal};
use crate::convert;
use crate::journal::Journal;
use pingji_engine::engine::{Engine, State};
use pingji_engine::ids::Millis;
use pingji_engine::policy::Policy;

/// Most events deleted per journal call for the retention limit: the lock
/// is released between chunks, so appends wait at most one chunk's
/// deletion (SQLite: p50 9.5 ms, max 24 ms on the 2-core VM, from
/// `cargo bench --bench replay`).
pub const FORGET_CHUNK: u64 = 5_000;

/// Deletes the journal's events up to `snapshot_seq` older than
/// `older_than_ms`, [`FORGET_CHUNK`] at a time, taking the journal's lock
/// for each chunk only. Logs counts and sequence numbers, nothing personal.
fn forget_in_chunks(journal: &SharedJournal, snapshot_seq: u64, older_than_ms: i64, stop: &AtomicBool) {
    let mut removed_total = 0;
    loop {
        let removed = {
            let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.first_seq().and_then(|first| match first {
                Some(first) => journal.forget_before(snapshot_seq.min(first.saturating_add(FORGET_CHUNK - 1)), older_than_ms),
                None => Ok(0),
            })
        };
        match removed {
            Ok(removed) => {
                removed_total += removed;
                if removed < FORGET_CHUNK || stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Err(error) => {
                warn!(%error, "cannot delete old events from the journal now; trying again after the next snapshot");
                break;
            }
        }
    }
    if removed_total > 0 {
        info!(
            removed = removed_total,
            up_to_seq = snapshot_seq,
            older_than_ms,
            "old events deleted from the journal (retention limit)"
        );
    }
}

/// Loads the state from the journal (snapshot, then the events after it).
pub async fn recover(journal: &SharedJournal, policy: Policy) -> anyhow::Result<Engine> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Engine> {
        let journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        recover_from(journal.as_ref(), policy)
    })
    .await?
}

/// [`recover`], blocking.
pub fn recover_from(journal: &dyn Journal, policy: Policy) -> anyhow::Result<Engine> {
    let mut engine = match journal.load_snapshot()? {
        Some((seq, bytes)) => {
            let state: State = serde_json::from_slice(&bytes)
                .map_err(|error| anyhow::anyhow!("the snapshot at event {seq} cannot be read: {error}"))?;
            anyhow::ensure!(state.last_seq == seq, "the snapshot says event {} but is stored as {seq}", state.last_seq);
            Engine::restore(policy, state)
        }
        None => Engine::new(policy),
    };
    let from_snapshot = engine.state().last_seq;
    loop {
        let batch = journal.read_from(engine.state().last_seq + 1, 10_000)?;
        if batch.is_empty() {
            break;
        }
        for stored in &batch {
            let event = convert::event_from_stored(stored).map_err(anyhow::Error::msg)?;
            engine.replay(&event).map_err(anyhow::Error::msg)?;
        }
    }
    info!(snapshot_seq = from_snapshot, last_seq = engine.state().last_seq, "state recovered from the journal");
    Ok(engine)
}

impl Owner {
    pub(super) async fn snapshot(&mut self) -> anyhow::Result<()> {
        if self.since_snapshot == 0 {
            return Ok(());
        }
        self.forget_old_messages();
        let seq = self.engine.state().last_seq;
        let bytes = Arc::new(serde_json::to_vec(self.engine.state())?);
        let journal = self.journal.clone();
        let saving = bytes.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            journal.save_snapshot(seq, &saving)
        })
        .await?;
        match saved {
            Ok(()) => {
                info!(seq, "snapshot saved");
                self.forget_old_events(seq);
            }
            // The events are journaled; the snapshot is only a shortcut for
            // the next recovery: try again after the next events.
            Err(error) if self.config.wait_for_store && error.is_unreachable() => {
                warn!(%error, seq, "cannot save a snapshot now; trying again later");
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(committed) = &mut self.committed {
            committed.snapshot = Arc::unwrap_or_clone(bytes);
            committed.events.clear();
        }
        self.since_snapshot = 0;
        Ok(())
    }

    /// Forgets the operators' messages (with replies and read receipts)
    /// untouched for longer than the retention limit, so that the snapshot
    /// about to be saved no longer holds them (their events leave the
    /// journal by the same limit). Logs the count only.
    fn forget_old_messages(&mut self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let before = Millis(self.now().0.saturating_sub(retention_ms));
        let forgotten = self.engine.forget_messages_before(before);
        if forgotten > 0 {
            info!(forgotten, "old messages forgotten (retention limit)");
        }
    }

    /// Starts deleting, in the background, the events up to `snapshot_seq`
    /// that are older than the retention limit, unless the last deletion
    /// is still running (the next snapshot takes over its work).
    pub(super) fn forget_old_events(&mut self, snapshot_seq: u64) {
        let Some(retention) = self.config.retention else {
            return;
        };
        if self.forgetting.as_ref().is_some_and(|forgetting| !forgetting.task.is_finished()) {
            return;
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let older_than_ms = self.now().0.saturating_sub(retention_ms);
        let journal = self.journal.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::task::spawn_blocking(move || forget_in_chunks(&journal, snapshot_seq, older_than_ms, &stopping));
        self.forgetting = Some(Forgetting { task, stop });
    }
}
