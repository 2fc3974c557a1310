//! What a journal holds and promises: [`StoredEvent`], [`JournalError`],
//! the [`Journal`] trait, and the helpers every implementation shares
//! (sequence checks, ISO-8601 times).

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
    /// One incident's events with seq >= from_seq, in order, at most
    /// `limit`; and where to go on from (`None`: the journal's end was
    /// reached). This default reads the journal in pages and keeps the
    /// incident's, which costs a pass over the events held; a journal with
    /// an index by incident answers from it.
    fn read_incident(
        &self,
        incident_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<u64>), JournalError> {
        const PAGE: usize = 1_000;
        let mut found = Vec::new();
        let mut next = from_seq;
        while found.len() < limit {
            let page = self.read_from(next, PAGE)?;
            let Some(last) = page.last() else { return Ok((found, None)) };
            next = last.seq + 1;
            for event in page {
                if event.incident_id.as_deref() == Some(incident_id) {
                    let after = event.seq + 1;
                    found.push(event);
                    if found.len() == limit {
                        return Ok((found, Some(after)));
                    }
                }
            }
        }
        Ok((found, Some(next)))
    }
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
