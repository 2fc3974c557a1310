//! The event journal: the durable, ordered record of everything the
//! dispatcher decided or was told, from which its state is rebuilt after a
//! restart and which an auditor reads after an incident.
//!
//! The runtime turns the engine's typed events into [`StoredEvent`]s and
//! appends them in batches; an append returns only once the batch is durable,
//! and only then are the effects of those events sent to anyone. Recovery
//! loads the latest snapshot and replays the events after it.
//!
//! Sequence numbers start at 1 and have no gaps. Every append states the
//! sequence numbers it writes, and the journal refuses a batch that does not
//! continue exactly where the journal ends: a writer whose idea of the journal
//! is stale (a second process on the same file, a bug) is stopped before it
//! can write anything.
//!
//! Events hold personal data (coarse locations, answers, field reports), so
//! they are not kept forever: once a snapshot covers them and they are older
//! than the retention limit, [`Journal::forget_before`] deletes them from the
//! head of the journal. The events held are always one run without holes,
//! from [`Journal::first_seq`] to [`Journal::last_seq`]; the sequence numbers
//! go on from where they were, also when every event was deleted (the
//! snapshot then says where the journal ends).
//!
//! # Layout
//!
//! - `mod.rs`: [`StoredEvent`], [`JournalError`], the [`Journal`] trait and the
//!   helpers both implementations share (sequence checks, ISO-8601 times).
//! - `sqlite.rs`: [`SqliteJournal`], the embedded default (one SQLite file in
//!   WAL mode with `synchronous=FULL`), and [`SqliteReader`], a read-only
//!   connection for live views that read while the owner appends.
//! - `memory.rs`: [`MemoryJournal`], the same semantics in memory, for
//!   `--ephemeral` runs and tests.
//! - `redis.rs`: [`RedisJournal`], one shard's journal in a Redis Stream
//!   shared by several dispatcher processes, every write checked against the
//!   shard's fencing token; and [`RedisReader`], for reading it without
//!   owning the shard.

mod memory;
mod redis;
mod sqlite;

pub use memory::MemoryJournal;
pub use redis::{RedisJournal, RedisReader};
pub use sqlite::{SCHEMA_VERSION, SqliteJournal, SqliteReader};

use crate::shard::RedisStoreError;

use std::path::PathBuf;
use std::time::Duration;

/// How long journaled events are kept when the settings do not say
/// (`journal.retention_days`): 90 days covers an incident's after-action
/// review, complaints and the audits that follow it, without keeping
/// where people were and what they reported for longer than that work
/// needs. The reasons are in docs/security.md.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
/// [`DEFAULT_RETENTION_DAYS`] as a duration.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400);

/// One journaled event in its stored form. The runtime turns the engine's typed events into this.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,      // 1, 2, 3 ... without gaps
    pub at_ms: i64,    // event time, ms since Unix epoch
    pub actor: String, // "operator:alice", "agent:p0001", "dispatcher"
    pub kind: String,  // snake_case event name, e.g. "offer_sent"
    pub incident_id: Option<String>,
    pub agent_id: Option<String>,
    pub area_id: Option<String>,
    pub body: String, // the whole event as JSON
}

/// Everything that can go wrong with a journal. Each message says what was
/// being done, what is wrong and what to do about it.
///
/// The SQLite error is part of the message rather than exposed through
/// `Error::source`, so that printing the error once says everything without
/// repeating the cause; the `cause` field keeps it for code that needs the
/// error code.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed while doing `action` (e.g. "cannot open journal at PATH").
    #[error("{action}: {cause}{hint}")]
    Storage {
        action: String,
        cause: rusqlite::Error,
        /// Empty, or "; " followed by what to do.
        hint: String,
    },

    /// An append did not continue the journal exactly (a gap or an overlap,
    /// at the start of the batch or inside it). Nothing was written.
    #[error(
        "journal sequence mismatch on append: expected seq {expected}, got {got}; \
         nothing was written, reload the state from the journal before appending \
         (another writer may be using this journal)"
    )]
    Sequence { expected: u64, got: u64 },

    /// A snapshot was offered for events the journal does not hold yet.
    #[error(
        "snapshot after seq {seq} is ahead of the journal, which ends at seq {last_seq}; \
         append the events before saving the state they produce"
    )]
    SnapshotAhead { seq: u64, last_seq: u64 },

    /// A stored row or snapshot cannot be decoded.
    #[error(
        "corrupt {what}: {detail}; restore the journal from a backup or inspect it \
         (sqlite3 for a file, redis-cli for redis)"
    )]
    Corrupt { what: String, detail: String },

    /// The file was written by a newer dispatcher.
    #[error(
        "journal at {path} has schema version {found}, newer than version {supported} \
         that this dispatcher understands; run a newer dispatcher or use another journal file"
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },

    /// The file exists and is readable but cannot serve as a journal.
    #[error("cannot use journal at {path}: {reason}")]
    Unusable { path: PathBuf, reason: String },

    /// Another dispatcher took over the shard: this one's fencing token is
    /// stale. Nothing was written, and nothing this process writes will be.
    #[error(
        "another dispatcher took over shard {shard} with token {current}; \
         this one (token {mine}) must stop"
    )]
    Fenced { shard: String, current: u64, mine: u64 },

    /// The journal's Redis could not be reached, or failed.
    #[error(transparent)]
    Redis(#[from] RedisStoreError),
}

impl JournalError {
    /// Whether the journal's store was out of reach (Redis down or cut off),
    /// as opposed to refusing the write or being damaged.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, JournalError::Redis(error) if error.is_unreachable())
    }

    /// Whether another process took over the journal.
    pub fn is_fenced(&self) -> bool {
        matches!(self, JournalError::Fenced { .. })
    }
}

/// The durable record. `append` returns only once the events are durable (for SQLite: committed with synchronous=FULL), all of them or none.
pub trait Journal: Send {
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), JournalError>;
    /// Events with seq >= from_seq, in order, at most `limit`.
    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError>;
    /// Highest seq appended, 0 when empty. Still right when the oldest
    /// events were forgotten, all of them included.
    fn last_seq(&self) -> Result<u64, JournalError>;
    /// Lowest seq still held; `None` when no event is held (an empty
    /// journal, or every event forgotten).
    fn first_seq(&self) -> Result<Option<u64>, JournalError>;
    /// Stores a snapshot of the state after event `seq` (replaces older ones).
    fn save_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError>;
    /// The latest snapshot, if any.
    fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError>;
    /// Deletes events from the head of the journal for the retention limit,
    /// and returns how many were deleted. It stops before the first event
    /// that is after `up_to_seq`, after the stored snapshot's seq (recovery
    /// needs every event after the snapshot; without a snapshot nothing is
    /// deleted), or not older than `older_than_ms` (ms since the Unix
    /// epoch). Stopping at the first recent event, rather than skipping it,
    /// keeps the events held one run without holes even if the clock once
    /// went back.
    fn forget_before(&mut self, up_to_seq: u64, older_than_ms: i64) -> Result<u64, JournalError>;
}

/// Checks that `events` continue a journal ending at `last_seq` without a
/// gap or an overlap: the first is `last_seq + 1` and each next one is one
/// more. Both implementations call this before writing anything.
pub fn check_continues(last_seq: u64, events: &[StoredEvent]) -> Result<(), JournalError> {
    let mut expected = last_seq.saturating_add(1);
    for event in events {
        if event.seq != expected {
            return Err(JournalError::Sequence { expected, got: event.seq });
        }
        expected = expected.saturating_add(1);
    }
    Ok(())
}

/// Checks that a snapshot after `seq` does not claim events the journal does
/// not hold: recovery would otherwise skip events that were never written.
pub fn check_snapshot_seq(seq: u64, last_seq: u64) -> Result<(), JournalError> {
    if seq > last_seq {
        return Err(JournalError::SnapshotAhead { seq, last_seq });
    }
    Ok(())
}

/// Formats milliseconds since the Unix epoch as ISO-8601 UTC with
/// milliseconds, e.g. `2000-02-29T00:00:00.000Z`.
///
/// Correct for every `i64` (proleptic Gregorian calendar, Howard Hinnant's
/// `civil_from_days`); years outside 0000..=9999 get an explicit sign, as
/// ISO-8601 expanded years do.
pub fn iso8601_utc_from_ms(at_ms: i64) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    // i128 so that the day arithmetic below cannot overflow even at the
    // extremes of i64.
    let days_since_epoch = i128::from(at_ms.div_euclid(MS_PER_DAY));
    let ms_of_day = at_ms.rem_euclid(MS_PER_DAY);

    let (year, month, day) = civil_from_days(days_since_epoch);

    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1_000 % 60;
    let millisecond = ms_of_day % 1_000;

    let year_text = if (0..=9999).contains(&year) { format!("{year:04}") } else { format!("{year:+05}") };
    format!("{year_text}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31).
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>
fn civil_from_days(days_since_epoch: i128) -> (i128, i128, i128) {
    // Shift the epoch to 0000-03-01 so that the leap day ends the year.
    let days = days_since_epoch + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 }; // [1, 12]
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// Checks shared by both implementations, written once against `dyn Journal`.
#[cfg(test)]
pub(crate) mod conformance {
    use super::{Journal, JournalError, StoredEvent};

    /// A varied event: some fields are `None`, the body has non-ASCII text
    /// and quotes, so a round trip through storage is really checked.
    pub(crate) fn event(seq: u64) -> StoredEvent {
        // `match` rather than `is_multiple_of`, which is newer than our MSRV.
        let incident_id = match seq % 2 {
            0 => Some(format!("inc-{seq:04}")),
            _ => None,
        };
        let actor = match seq % 3 {
            0 => "operator:alice",
            _ => "dispatcher",
        };
        StoredEvent {
            seq,
            at_ms: 1_773_563_445_000 + i64::try_from(seq).expect("small seq") * 250,
            actor: actor.to_owned(),
            kind: "offer_sent".to_owned(),
            incident_id,
            agent_id: Some(format!("p{seq:04}")),
            area_id: None,
            body: format!(r#"{{"seq":{seq},"note":"naïve \"quoted\" text"}}"#),
        }
    }

    pub(crate) fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
        seqs.map(event).collect()
    }

    fn seqs_of(events: &[StoredEvent]) -> Vec<u64> {
        events.iter().map(|event| event.seq).collect()
    }

    /// Runs every shared check on one fresh, empty journal.
    pub(crate) fn run_all(journal: &mut dyn Journal) {
        empty_journal(journal);
        append_then_read_back(journal);
        read_from_offset_and_limit(journal);
        gap_is_rejected_and_nothing_written(journal);
        overlap_is_rejected_and_nothing_written(journal);
        batch_with_inner_gap_is_all_or_none(journal);
        empty_append_is_a_no_op(journal);
        snapshot_replace_and_load(journal);
        snapshot_ahead_of_journal_is_rejected(journal);
        forgetting_stops_at_the_limit_the_time_and_the_snapshot(journal);
        forgetting_everything_keeps_the_numbering(journal);
    }

    fn empty_journal(journal: &mut dyn Journal) {
        assert_eq!(journal.last_seq().expect("last_seq"), 0);
        assert_eq!(journal.first_seq().expect("first_seq"), None);
        assert!(journal.read_from(0, 100).expect("read").is_empty());
        assert!(journal.read_from(1, 100).expect("read").is_empty());
        assert_eq!(journal.load_snapshot().expect("load snapshot"), None);
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 0);
    }

    fn append_then_read_back(journal: &mut dyn Journal) {
        let written = events(1..=3);
        journal.append(&written).expect("append 1..=3");
        journal.append(&[event(4)]).expect("append 4");
        assert_eq!(journal.last_seq().expect("last_seq"), 4);

        let read = journal.read_from(1, 100).expect("read");
        let mut expected = written;
        expected.push(event(4));
        assert_eq!(read, expected, "events come back exactly as written");
        assert_eq!(journal.first_seq().expect("first_seq"), Some(1));

        // Without a snapshot every event is needed to recover: none goes.
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 0);
        assert_eq!(journal.read_from(1, 100).expect("read").len(), 4);
    }

    fn read_from_offset_and_limit(journal: &mut dyn Journal) {
        journal.append(&events(5..=10)).expect("append 5..=10");

        assert_eq!(seqs_of(&journal.read_from(4, 3).expect("read")), vec![4, 5, 6]);
        assert_eq!(seqs_of(&journal.read_from(9, 100).expect("read")), vec![9, 10]);
        assert_eq!(seqs_of(&journal.read_from(10, 1).expect("read")), vec![10]);
        assert!(journal.read_from(11, 100).expect("read").is_empty());
        assert!(journal.read_from(u64::MAX, 100).expect("read").is_empty());
        assert!(journal.read_from(3, 0).expect("read").is_empty());
        // 0 is before the first event, so it reads from the start.
        assert_eq!(seqs_of(&journal.read_from(0, 2).expect("read")), vec![1, 2]);
        assert_eq!(journal.read_from(7, 1).expect("read"), vec![event(7)]);
    }

    fn assert_unchanged_at_10(journal: &mut dyn Journal) {
        assert_eq!(journal.last_seq().expect("last_seq"), 10);
        assert!(journal.read_from(11, 100).expect("read").is_empty());
        assert_eq!(journal.read_from(10, 100).expect("read"), vec![event(10)]);
    }

    fn gap_is_rejected_and_nothing_written(journal: &mut dyn Journal) {
        let error = journal.append(&events(12..=13)).expect_err("a batch starting after a gap is refused");
        assert!(matches!(error, JournalError::Sequence { expected: 11, got: 12 }), "unexpected error: {error}");
        let message = error.to_string();
        assert!(message.contains("expected seq 11, got 12"), "{message}");
        assert_unchanged_at_10(journal);
    }

    fn overlap_is_rejected_and_nothing_written(journal: &mut dyn Journal) {
        let mut overlapping = events(10..=12);
        overlapping[0].kind = "offer_accepted".to_owned();
        let error = journal.append(&overlapping).expect_err("a batch repeating the last seq is refused");
        assert!(matches!(error, JournalError::Sequence { expected: 11, got: 10 }), "unexpected error: {error}");
        assert_unchanged_at_10(journal);
    }

    fn batch_with_inner_gap_is_all_or_none(journal: &mut dyn Journal) {
        let mut batch = events(11..=13);
        batch.push(event(15));
        let error = journal.append(&batch).expect_err("a batch with a hole inside is refused");
        assert!(matches!(error, JournalError::Sequence { expected: 14, got: 15 }), "unexpected error: {error}");
        assert_unchanged_at_10(journal);

        // The same batch without the hole goes in whole.
        journal.append(&events(11..=14)).expect("append 11..=14");
        assert_eq!(journal.last_seq().expect("last_seq"), 14);
        assert_eq!(journal.read_from(11, 100).expect("read"), events(11..=14));
    }

    fn empty_append_is_a_no_op(journal: &mut dyn Journal) {
        journal.append(&[]).expect("an empty batch is fine");
        assert_eq!(journal.last_seq().expect("last_seq"), 14);
    }

    fn snapshot_replace_and_load(journal: &mut dyn Journal) {
        journal.save_snapshot(3, b"state after 3").expect("save snapshot 3");
        assert_eq!(journal.load_snapshot().expect("load"), Some((3, b"state after 3".to_vec())));

        let binary_state: Vec<u8> = (0..=255).collect();
        journal.save_snapshot(14, &binary_state).expect("save snapshot 14");
        assert_eq!(journal.load_snapshot().expect("load"), Some((14, binary_state)), "the newer snapshot replaces the older one");
    }

    fn snapshot_ahead_of_journal_is_rejected(journal: &mut dyn Journal) {
        let error = journal.save_snapshot(15, b"from the future").expect_err("a snapshot past the last event is refused");
        assert!(matches!(error, JournalError::SnapshotAhead { seq: 15, last_seq: 14 }), "unexpected error: {error}");
        assert_eq!(journal.load_snapshot().expect("load").map(|(seq, _)| seq), Some(14));
    }

    /// Events 1..=14 are journaled and the snapshot is after 14.
    fn forgetting_stops_at_the_limit_the_time_and_the_snapshot(journal: &mut dyn Journal) {
        let at_ms = |seq: u64| event(seq).at_ms;
        assert_eq!(journal.forget_before(14, at_ms(1)).expect("forget"), 0, "no event is older than the first");

        // Stops at `up_to_seq`, though 6 and 7 are old enough too.
        assert_eq!(journal.forget_before(5, at_ms(8)).expect("forget"), 5);
        assert_eq!(journal.first_seq().expect("first_seq"), Some(6));
        assert_eq!(journal.last_seq().expect("last_seq"), 14);
        assert_eq!(seqs_of(&journal.read_from(0, 2).expect("read")), vec![6, 7]);
        assert_eq!(seqs_of(&journal.read_from(1, 2).expect("read")), vec![6, 7], "below the head reads from the head");
        assert_eq!(journal.read_from(6, 1).expect("read"), vec![event(6)]);

        // Stops at the first event not older than the cut-off (9).
        assert_eq!(journal.forget_before(u64::MAX, at_ms(9)).expect("forget"), 3);
        assert_eq!(journal.first_seq().expect("first_seq"), Some(9));

        // Stops at the snapshot: 15 and 16 are old but recovery needs them.
        journal.append(&events(15..=16)).expect("append 15..=16");
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 6, "9..=14");
        assert_eq!(seqs_of(&journal.read_from(0, 100).expect("read")), vec![15, 16]);
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget again"), 0);
        assert_eq!(journal.load_snapshot().expect("load").map(|(seq, _)| seq), Some(14), "the snapshot stays");
    }

    /// Events 15..=16 are held and the snapshot is after 14.
    fn forgetting_everything_keeps_the_numbering(journal: &mut dyn Journal) {
        journal.save_snapshot(16, b"state after 16").expect("save snapshot 16");
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 2);
        assert_eq!(journal.first_seq().expect("first_seq"), None);
        assert_eq!(journal.last_seq().expect("last_seq"), 16, "the snapshot says where the journal ends");
        assert!(journal.read_from(0, 100).expect("read").is_empty());
        assert!(journal.read_from(16, 100).expect("read").is_empty());

        // Appends go on from 17, not from 1 and not with a gap.
        let error = journal.append(&[event(1)]).expect_err("seq 1 again is refused");
        assert!(matches!(error, JournalError::Sequence { expected: 17, got: 1 }), "unexpected error: {error}");
        journal.append(&[event(17)]).expect("append 17");
        assert_eq!(journal.first_seq().expect("first_seq"), Some(17));
        assert_eq!(journal.last_seq().expect("last_seq"), 17);
        assert_eq!(journal.read_from(1, 100).expect("read"), vec![event(17)]);
        assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 0, "17 is after the snapshot");
        let error = journal.save_snapshot(18, b"ahead").expect_err("still checked against the last seq");
        assert!(matches!(error, JournalError::SnapshotAhead { seq: 18, last_seq: 17 }), "unexpected error: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_instants() {
        assert_eq!(iso8601_utc_from_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc_from_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc_from_ms(1_773_563_445_123), "2026-03-15T08:30:45.123Z");
        // 2100 is not a leap year: the day after Feb 28 is Mar 1.
        assert_eq!(iso8601_utc_from_ms(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(iso8601_utc_from_ms(4_107_542_400_000 - 1), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso8601_utc_from_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn iso8601_before_the_epoch_and_at_the_extremes() {
        assert_eq!(iso8601_utc_from_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc_from_ms(-2_203_891_201_000), "1900-02-28T23:59:59.000Z");
        assert_eq!(iso8601_utc_from_ms(253_402_300_800_000), "+10000-01-01T00:00:00.000Z");
        // No panic or overflow anywhere in the i64 range.
        assert_eq!(iso8601_utc_from_ms(i64::MAX), "+292278994-08-17T07:12:55.807Z");
        assert_eq!(iso8601_utc_from_ms(i64::MIN), "-292275055-05-16T16:47:04.192Z");
    }

    #[test]
    fn check_continues_accepts_only_the_exact_continuation() {
        let batch = conformance::events(6..=8);
        assert!(check_continues(5, &batch).is_ok());
        assert!(matches!(check_continues(4, &batch), Err(JournalError::Sequence { expected: 5, got: 6 })));
        assert!(matches!(check_continues(6, &batch), Err(JournalError::Sequence { expected: 7, got: 6 })));
        assert!(check_continues(5, &[]).is_ok());
    }
}
