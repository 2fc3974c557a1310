//! An in-memory journal with the same semantics as the SQLite one, for
//! `--ephemeral` runs (drills, demos) and tests. Nothing survives the process.
//!
//! Clones share one storage, so a clone handed to a live view reads what the
//! owner appends, the way a second SQLite connection does.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::record::{Journal, JournalError, StoredEvent, check_continues, check_snapshot_seq};

/// A journal kept in memory. `Clone` shares the same storage.
#[derive(Debug, Clone, Default)]
pub struct MemoryJournal {
    shared: Arc<Mutex<MemoryStorage>>,
}

#[derive(Debug, Default)]
struct MemoryStorage {
    /// `events[i].seq == forgotten + i + 1`, guaranteed by the sequence
    /// check on append and by forgetting only from the front.
    events: Vec<StoredEvent>,
    /// How many events were deleted from the front by `forget_before`.
    forgotten: u64,
    snapshot: Option<(u64, Vec<u8>)>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn storage(&self) -> MutexGuard<'_, MemoryStorage> {
        // A panic while the lock was held cannot have left a half-made
        // change: every mutation is validated first and then done in one
        // step (`extend`, or replacing the snapshot). So the data is still
        // consistent and there is no reason to fail every later call.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryStorage {
    fn last_seq(&self) -> u64 {
        // usize always fits in u64 on the platforms we build for.
        self.forgotten + self.events.len() as u64
    }
}

impl Journal for MemoryJournal {
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), JournalError> {
        let mut storage = self.storage();
        check_continues(storage.last_seq(), events)?;
        storage.events.extend_from_slice(events);
        debug_assert!(storage.events.last().is_none_or(|event| event.seq == storage.last_seq()));
        Ok(())
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        let storage = self.storage();
        // Seq n lives at index n - 1 - forgotten; seq 0, and any seq already
        // forgotten, reads from the start.
        let start_index = usize::try_from(from_seq.saturating_sub(1).saturating_sub(storage.forgotten))
            .unwrap_or(usize::MAX)
            .min(storage.events.len());
        Ok(storage.events[start_index..].iter().take(limit).cloned().collect())
    }

    fn last_seq(&self) -> Result<u64, JournalError> {
        Ok(self.storage().last_seq())
    }

    fn save_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        let mut storage = self.storage();
        check_snapshot_seq(seq, storage.last_seq())?;
        storage.snapshot = Some((seq, state.to_vec()));
        Ok(())
    }

    fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        Ok(self.storage().events.first().map(|event| event.seq))
    }

    fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        Ok(self.storage().snapshot.clone())
    }

    fn forget_before(&mut self, up_to_seq: u64, older_than_ms: i64) -> Result<u64, JournalError> {
        let mut storage = self.storage();
        let Some(snapshot_seq) = storage.snapshot.as_ref().map(|(seq, _)| *seq) else {
            return Ok(0);
        };
        let last_removable = up_to_seq.min(snapshot_seq);
        let count = storage.events.iter().take_while(|event| event.seq <= last_removable && event.at_ms < older_than_ms).count();
        storage.events.drain(..count);
        storage.forgotten += count as u64;
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::conformance;

    #[test]
    fn memory_journal_passes_the_shared_checks() {
        let mut journal = MemoryJournal::new();
        conformance::run_all(&mut journal);
    }

    #[test]
    fn a_clone_sees_what_the_original_appends() {
        let mut writer = MemoryJournal::new();
        let reader = writer.clone();
        writer.append(&conformance::events(1..=2)).expect("append");
        assert_eq!(reader.last_seq().expect("last_seq"), 2);
        assert_eq!(reader.read_from(1, 10).expect("read"), conformance::events(1..=2));

        let reader_thread = std::thread::spawn(move || reader.last_seq().expect("last_seq"));
        assert_eq!(reader_thread.join().expect("reader thread"), 2);
    }
}
