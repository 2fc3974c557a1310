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
//! - `record.rs`: [`StoredEvent`], [`JournalError`], the [`Journal`] trait and
//!   the helpers every implementation shares (sequence checks, ISO-8601 times).
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
mod record;
mod redis;
mod sqlite;

pub use memory::MemoryJournal;
pub use record::{
    DEFAULT_RETENTION, DEFAULT_RETENTION_DAYS, Journal, JournalError, StoredEvent, check_continues, check_snapshot_seq,
    iso8601_utc_from_ms,
};
pub use redis::{RedisJournal, RedisReader};
pub use sqlite::{SCHEMA_VERSION, SqliteJournal, SqliteReader};

/// Checks shared by both implementations, written once against `dyn Journal`.
#[cfg(test)]
pub(crate) mod conformance {
    use super::record::{Journal, JournalError, StoredEvent};

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
        read_one_incident(journal);
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

    /// Runs after `read_from_offset_and_limit`: events 1..=10 are held, the
    /// even ones of incident `inc-{seq:04}`.
    fn read_one_incident(journal: &mut dyn Journal) {
        let (found, next) = journal.read_incident("inc-0006", 0, 10).expect("read incident");
        assert_eq!((seqs_of(&found), next), (vec![6], None));
        let (found, next) = journal.read_incident("inc-0006", 0, 1).expect("read incident");
        assert_eq!((seqs_of(&found), next), (vec![6], Some(7)), "a full page says where to go on");
        let (found, next) = journal.read_incident("inc-0006", 7, 10).expect("read incident");
        assert_eq!((seqs_of(&found), next), (vec![], None));
        assert!(journal.read_incident("inc-0005", 0, 10).expect("read incident").0.is_empty(), "odd seqs have none");
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
