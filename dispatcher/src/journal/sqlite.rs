//! The embedded journal: one SQLite file in WAL mode with `synchronous=FULL`,
//! so that a committed append survives `kill -9` and power loss, and a second
//! connection can read while the owner writes.
//!
//! The file is meant to be read by people too: an auditor opens it with the
//! `sqlite3` shell and finds one row per event with its time in ISO-8601
//! (`at`), who did it (`actor`), what it was (`kind`), the incident, agent and
//! area it concerns, and the whole event as JSON (`body`).
//!
//! ```text
//! events(seq INTEGER PRIMARY KEY, at_ms, at, actor, kind,
//!        incident_id, agent_id, area_id, body)  -- indexed by incident_id and agent_id
//! snapshots(seq INTEGER PRIMARY KEY, created_at_ms, state)  -- only the latest row is kept
//! meta(key TEXT PRIMARY KEY, value)  -- 'schema_version' = SCHEMA_VERSION
//! ```
//!
//! Events older than the retention limit are deleted from the head of
//! `events` once the snapshot covers them, so the table may start above seq
//! 1, and may be empty with the snapshot saying where the journal ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tracing::{debug, info};

use super::record::{Journal, JournalError, StoredEvent, check_continues, check_snapshot_seq, iso8601_utc_from_ms};

/// The schema version this code writes and understands. A file with a newer
/// version is refused rather than misread.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection (a
/// checkpoint, an auditor's shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Created in one transaction on first open. The comments end up in the
/// stored schema, so `.schema` in the `sqlite3` shell shows them.
const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,  -- 1, 2, 3 ... without gaps
    at_ms INTEGER NOT NULL,   -- event time, ms since the Unix epoch
    at TEXT NOT NULL,         -- the same time as ISO-8601 UTC, for humans
    actor TEXT NOT NULL,      -- operator:NAME, agent:ID or dispatcher
    kind TEXT NOT NULL,       -- snake_case event name, e.g. offer_sent
    incident_id TEXT,
    agent_id TEXT,
    area_id TEXT,
    body TEXT NOT NULL        -- the whole event as JSON
);
CREATE INDEX IF NOT EXISTS events_by_incident ON events (incident_id);
CREATE INDEX IF NOT EXISTS events_by_agent ON events (agent_id);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,  -- the state after this event
    created_at_ms INTEGER,    -- wall clock when the snapshot was written
    state BLOB
);
";

const SELECT_EVENTS_FROM: &str = "SELECT seq, at_ms, actor, kind, incident_id, agent_id, area_id, body \
     FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2";

const SELECT_INCIDENT_EVENTS_FROM: &str = "SELECT seq, at_ms, actor, kind, incident_id, agent_id, area_id, body \
     FROM events WHERE incident_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3";

const INSERT_EVENT: &str = "INSERT INTO events \
     (seq, at_ms, at, actor, kind, incident_id, agent_id, area_id, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The journal in a SQLite file, owned by one writer.
///
/// `Send` but not `Sync`: share it behind a `Mutex`, or give readers their
/// own connection with [`SqliteJournal::open_reader`].
#[derive(Debug)]
pub struct SqliteJournal {
    connection: Connection,
    path: PathBuf,
}

/// A read-only connection to a journal file, for a live view or an export
/// that reads while the owner appends (WAL lets it read a consistent state
/// without blocking the writer).
#[derive(Debug)]
pub struct SqliteReader {
    connection: Connection,
    path: PathBuf,
}

impl SqliteJournal {
    /// Opens the journal at `path`, creating the file and the schema if they
    /// are missing, and sets WAL mode and `synchronous=FULL`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        // No SQLITE_OPEN_URI: a path is a path, even if it starts with "file:".
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|cause| open_error(path, "cannot open journal", cause))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|cause| open_error(path, "cannot set the busy timeout of journal", cause))?;

        // SQLite silently falls back to read-only when the file is
        // write-protected; the first append would then fail, far from here.
        let read_only =
            connection.is_readonly(rusqlite::MAIN_DB).map_err(|cause| open_error(path, "cannot open journal", cause))?;
        if read_only {
            return Err(JournalError::Unusable {
                path: path.to_owned(),
                reason: "the file is read-only for this process; make the file and its \
                         directory writable by the dispatcher, or open it with a reader"
                    .to_owned(),
            });
        }

        // Before changing anything in the file: is it ours, and can we read it?
        let existing_version = read_schema_version(&connection, path, "cannot open journal")?;

        let journal_mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|cause| open_error(path, "cannot switch to WAL mode the journal", cause))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "sqlite kept journal_mode={journal_mode} instead of wal; \
                     put the journal on a local filesystem"
                ),
            });
        }
        // Per connection, not stored in the file: set it on every open.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|cause| open_error(path, "cannot set synchronous=FULL on journal", cause))?;

        let mut journal = Self { connection, path: path.to_owned() };
        if existing_version.is_none() {
            journal.create_schema()?;
        }
        let last_seq = journal.last_seq()?;
        info!(path = %path.display(), last_seq, "journal opened");
        Ok(journal)
    }

    /// Opens a second, read-only connection on the journal at `path`, which
    /// must have been created by [`SqliteJournal::open`].
    pub fn open_reader(path: &Path) -> Result<SqliteReader, JournalError> {
        SqliteReader::open(path)
    }

    /// The file this journal is stored in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create_schema(&mut self) -> Result<(), JournalError> {
        let path = &self.path;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|cause| open_error(path, "cannot create the schema of journal", cause))?;
        transaction.execute_batch(SCHEMA_SQL).map_err(|cause| open_error(path, "cannot create the schema of journal", cause))?;
        // OR IGNORE: another process may have created the same file at the
        // same moment; its version row is as good as ours.
        transaction
            .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)", params![SCHEMA_VERSION.to_string()])
            .map_err(|cause| open_error(path, "cannot create the schema of journal", cause))?;
        transaction.commit().map_err(|cause| open_error(path, "cannot create the schema of journal", cause))?;
        info!(path = %path.display(), schema_version = SCHEMA_VERSION, "journal created");
        Ok(())
    }
}

impl Journal for SqliteJournal {
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), JournalError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let path = &self.path;
        let action = || format!("cannot append events {}..={} to journal at {}", first.seq, last.seq, path.display());

        // IMMEDIATE takes the write lock now, so the sequence check below
        // and the inserts see the same journal even if another process
        // writes to the file.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|cause| storage_error(action(), cause))?;
        let last_seq = query_last_seq(&transaction, path)?;
        // On any early return the transaction is dropped, which rolls back.
        check_continues(last_seq, events)?;
        {
            let mut insert = transaction.prepare_cached(INSERT_EVENT).map_err(|cause| storage_error(action(), cause))?;
            for event in events {
                let seq = i64::try_from(event.seq).map_err(|_| JournalError::Unusable {
                    path: path.clone(),
                    reason: format!("seq {} does not fit in sqlite's integer range; start a new journal", event.seq),
                })?;
                insert
                    .execute(params![
                        seq,
                        event.at_ms,
                        iso8601_utc_from_ms(event.at_ms),
                        event.actor,
                        event.kind,
                        event.incident_id,
                        event.agent_id,
                        event.area_id,
                        event.body,
                    ])
                    .map_err(|cause| storage_error(action(), cause))?;
            }
        }
        transaction.commit().map_err(|cause| storage_error(action(), cause))?;
        debug!(first_seq = first.seq, count = events.len(), "journal append committed");
        Ok(())
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        query_events(&self.connection, &self.path, from_seq, limit)
    }

    fn last_seq(&self) -> Result<u64, JournalError> {
        query_last_seq(&self.connection, &self.path)
    }

    fn read_incident(
        &self,
        incident_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<u64>), JournalError> {
        query_incident_events(&self.connection, &self.path, incident_id, from_seq, limit)
    }

    fn save_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        let path = &self.path;
        let action = || format!("cannot save the snapshot after seq {seq} to journal at {}", path.display());
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|cause| storage_error(action(), cause))?;
        check_snapshot_seq(seq, query_last_seq(&transaction, path)?)?;
        // seq <= last_seq, which came from an i64 column.
        let stored_seq = i64::try_from(seq).unwrap_or(i64::MAX);
        transaction.execute("DELETE FROM snapshots", []).map_err(|cause| storage_error(action(), cause))?;
        transaction
            .execute(
                "INSERT INTO snapshots (seq, created_at_ms, state) VALUES (?1, ?2, ?3)",
                params![stored_seq, wall_clock_ms(), state],
            )
            .map_err(|cause| storage_error(action(), cause))?;
        transaction.commit().map_err(|cause| storage_error(action(), cause))?;
        debug!(seq, bytes = state.len(), "journal snapshot saved");
        Ok(())
    }

    fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        query_first_seq(&self.connection, &self.path)
    }

    fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        query_latest_snapshot(&self.connection, &self.path)
    }

    fn forget_before(&mut self, up_to_seq: u64, older_than_ms: i64) -> Result<u64, JournalError> {
        let path = &self.path;
        let action = || format!("cannot delete old events up to seq {up_to_seq} from journal at {}", path.display());
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|cause| storage_error(action(), cause))?;
        let snapshot_seq: Option<i64> = transaction
            .query_row("SELECT MAX(seq) FROM snapshots", [], |row| row.get(0))
            .map_err(|cause| storage_error(action(), cause))?;
        let Some(snapshot_seq) = snapshot_seq else {
            return Ok(0);
        };
        // Stored seqs fit in i64; a larger limit means "all of them".
        let last_removable = i64::try_from(up_to_seq).unwrap_or(i64::MAX).min(snapshot_seq);
        // The first event that must stay because it is recent. Reading from
        // the head by seq scans only what is deleted, plus one row.
        let first_recent: Option<i64> = transaction
            .query_row(
                "SELECT seq FROM events WHERE seq <= ?1 AND at_ms >= ?2 ORDER BY seq LIMIT 1",
                params![last_removable, older_than_ms],
                |row| row.get(0),
            )
            .optional()
            .map_err(|cause| storage_error(action(), cause))?;
        let cut = first_recent.map_or(last_removable, |seq| seq - 1);
        let removed = transaction
            .execute("DELETE FROM events WHERE seq <= ?1", params![cut])
            .map_err(|cause| storage_error(action(), cause))?;
        transaction.commit().map_err(|cause| storage_error(action(), cause))?;
        debug!(up_to_seq = cut, removed, "journal events deleted");
        Ok(removed as u64)
    }
}

impl SqliteReader {
    /// Opens a read-only connection on the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags)
            .map_err(|cause| open_error(path, "cannot open a reader on journal", cause))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|cause| open_error(path, "cannot set the busy timeout of a reader on journal", cause))?;
        if read_schema_version(&connection, path, "cannot open a reader on journal")?.is_none() {
            return Err(JournalError::Unusable {
                path: path.to_owned(),
                reason: "it has no journal tables yet; open it with the dispatcher first".to_owned(),
            });
        }
        Ok(Self { connection, path: path.to_owned() })
    }

    /// Events with seq >= from_seq, in order, at most `limit`.
    pub fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        query_events(&self.connection, &self.path, from_seq, limit)
    }

    /// Highest seq appended, 0 when empty.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        query_last_seq(&self.connection, &self.path)
    }

    /// Lowest seq still held, `None` when no event is.
    pub fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        query_first_seq(&self.connection, &self.path)
    }

    /// The latest snapshot, if any.
    pub fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        query_latest_snapshot(&self.connection, &self.path)
    }

    /// The file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The schema version stored in the file, `None` for a new, empty file.
/// Refuses files of a newer version and SQLite files that are not journals.
/// `action` says what the caller was doing, e.g. "cannot open journal".
fn read_schema_version(connection: &Connection, path: &Path, action: &str) -> Result<Option<i64>, JournalError> {
    // The first read of the file: this is where a file that is not a SQLite
    // database is found out.
    let has_meta: bool = connection
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')", [], |row| row.get(0))
        .map_err(|cause| open_error(path, action, cause))?;
    if !has_meta {
        let object_count: i64 = connection
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(|cause| open_error(path, action, cause))?;
        if object_count > 0 {
            return Err(JournalError::Unusable {
                path: path.to_owned(),
                reason: "it is a sqlite database but not a pingji journal (it has no meta \
                         table); point the dispatcher at a journal file or a new path"
                    .to_owned(),
            });
        }
        return Ok(None);
    }

    let stored: Option<Option<String>> = connection
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
        .optional()
        .map_err(|cause| open_error(path, action, cause))?;
    let corrupt = |detail: String| JournalError::Corrupt {
        what: format!("schema version in the meta table of journal at {}", path.display()),
        detail,
    };
    let Some(Some(text)) = stored else {
        return Err(corrupt("the schema_version row is missing or empty".to_owned()));
    };
    let version: i64 = text.trim().parse().map_err(|_| corrupt(format!("{text:?} is not a number")))?;
    if version > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
    }
    if version < 1 {
        return Err(corrupt(format!("{version} is not a valid version")));
    }
    // Version 1 is the only one so far; migrations from older versions go here.
    Ok(Some(version))
}

/// The highest event seq, or the snapshot's when every event up to it was
/// deleted for the retention limit (a snapshot is never ahead of the events).
fn query_last_seq(connection: &Connection, path: &Path) -> Result<u64, JournalError> {
    let last_seq: i64 = connection
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), \
                        COALESCE((SELECT MAX(seq) FROM snapshots), 0))",
        )
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(|cause| storage_error(format!("cannot read the last seq of journal at {}", path.display()), cause))?;
    u64::try_from(last_seq).map_err(|_| JournalError::Corrupt {
        what: format!("events table of journal at {}", path.display()),
        detail: format!("the highest seq is {last_seq}, below 1"),
    })
}

fn query_first_seq(connection: &Connection, path: &Path) -> Result<Option<u64>, JournalError> {
    let first_seq: Option<i64> = connection
        .prepare_cached("SELECT MIN(seq) FROM events")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(|cause| storage_error(format!("cannot read the first seq of journal at {}", path.display()), cause))?;
    first_seq
        .map(|seq| {
            u64::try_from(seq).map_err(|_| JournalError::Corrupt {
                what: format!("events table of journal at {}", path.display()),
                detail: format!("the lowest seq is {seq}, below 1"),
            })
        })
        .transpose()
}

fn query_events(connection: &Connection, path: &Path, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
    // No stored seq is above i64::MAX, so such a start reads nothing.
    let Ok(from_seq) = i64::try_from(from_seq) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let row_limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let action = || format!("cannot read events from seq {from_seq} of journal at {}", path.display());

    let mut statement = connection.prepare_cached(SELECT_EVENTS_FROM).map_err(|cause| storage_error(action(), cause))?;
    let mut rows = statement.query(params![from_seq, row_limit]).map_err(|cause| storage_error(action(), cause))?;
    // Callers page with large limits; do not reserve for all of it up front.
    let mut events = Vec::with_capacity(limit.min(1024));
    while let Some(row) = rows.next().map_err(|cause| storage_error(action(), cause))? {
        events.push(decode_event(row, path)?);
    }
    Ok(events)
}

/// One incident's events from `from_seq` by the index on `incident_id`,
/// and the seq after the last one when the page is full (`None`: no more).
fn query_incident_events(
    connection: &Connection,
    path: &Path,
    incident_id: &str,
    from_seq: u64,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Option<u64>), JournalError> {
    let (Ok(from), Ok(row_limit)) = (i64::try_from(from_seq), i64::try_from(limit)) else {
        return Ok((Vec::new(), None));
    };
    if limit == 0 {
        return Ok((Vec::new(), Some(from_seq)));
    }
    let action = || format!("cannot read the events of incident {incident_id} from journal at {}", path.display());
    let mut statement = connection.prepare_cached(SELECT_INCIDENT_EVENTS_FROM).map_err(|cause| storage_error(action(), cause))?;
    let mut rows = statement.query(params![incident_id, from, row_limit]).map_err(|cause| storage_error(action(), cause))?;
    let mut events = Vec::with_capacity(limit.min(1024));
    while let Some(row) = rows.next().map_err(|cause| storage_error(action(), cause))? {
        events.push(decode_event(row, path)?);
    }
    let next = (events.len() == limit).then(|| events.last().map_or(from_seq, |event| event.seq + 1));
    Ok((events, next))
}

fn decode_event(row: &Row<'_>, path: &Path) -> Result<StoredEvent, JournalError> {
    let raw_seq: i64 = column(row, 0, "event row", path)?;
    let what = format!("event row at seq {raw_seq}");
    let seq = u64::try_from(raw_seq).ok().filter(|seq| *seq >= 1).ok_or_else(|| JournalError::Corrupt {
        what: format!("{what} of journal at {}", path.display()),
        detail: "seq is below 1".to_owned(),
    })?;
    Ok(StoredEvent {
        seq,
        at_ms: column(row, 1, &what, path)?,
        actor: column(row, 2, &what, path)?,
        kind: column(row, 3, &what, path)?,
        incident_id: column(row, 4, &what, path)?,
        agent_id: column(row, 5, &what, path)?,
        area_id: column(row, 6, &what, path)?,
        body: column(row, 7, &what, path)?,
    })
}

/// One column of a stored row; a value of the wrong type means someone or
/// something changed the file behind the dispatcher's back.
fn column<T: FromSql>(row: &Row<'_>, index: usize, what: &str, path: &Path) -> Result<T, JournalError> {
    row.get(index).map_err(|cause| JournalError::Corrupt {
        what: format!("{what} of journal at {}", path.display()),
        detail: cause.to_string(),
    })
}

fn query_latest_snapshot(connection: &Connection, path: &Path) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
    let action = || format!("cannot load the snapshot of journal at {}", path.display());
    let mut statement = connection
        .prepare_cached("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1")
        .map_err(|cause| storage_error(action(), cause))?;
    let mut rows = statement.query([]).map_err(|cause| storage_error(action(), cause))?;
    let Some(row) = rows.next().map_err(|cause| storage_error(action(), cause))? else {
        return Ok(None);
    };
    let raw_seq: i64 = column(row, 0, "snapshot", path)?;
    let what = format!("snapshot after seq {raw_seq}");
    let seq = u64::try_from(raw_seq).map_err(|_| JournalError::Corrupt {
        what: format!("{what} of journal at {}", path.display()),
        detail: "seq is negative".to_owned(),
    })?;
    let state: Vec<u8> = column(row, 1, &what, path)?;
    Ok(Some((seq, state)))
}

/// When a snapshot was written, for the auditor only: recovery never looks
/// at it, so it does not need the injected clock. `None` if the system clock
/// is before 1970.
fn wall_clock_ms() -> Option<i64> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}

/// A failure while opening or preparing the file, with what to do about it.
fn open_error(path: &Path, action: &str, cause: rusqlite::Error) -> JournalError {
    let hint = match cause.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "; point the dispatcher at a pingji journal file or a new path, \
             or move this file away"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            "; check that the path exists and that the file and its directory are readable \
             and writable by the dispatcher"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; another process holds the journal locked, stop it or use another file"
        }
        Some(ErrorCode::DatabaseCorrupt) => "; the file is damaged, restore it from a backup",
        _ => "",
    };
    JournalError::Storage { action: format!("{action} at {}", path.display()), cause, hint: hint.to_owned() }
}

/// A failure while reading or writing an open journal, with what to do.
fn storage_error(action: String, cause: rusqlite::Error) -> JournalError {
    let hint = match cause.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "; free disk space on the journal's filesystem",
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "; make the journal file and its directory writable by the dispatcher"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; another process holds the journal locked, stop it or retry"
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => "; the file is damaged, restore it from a backup",
        Some(ErrorCode::SystemIoFailure) => "; check the disk and the filesystem",
        _ => "",
    };
    JournalError::Storage { action, cause, hint: hint.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::conformance::{self, event, events};
    use std::time::Instant;

    fn journal_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("journal.sqlite")
    }

    #[test]
    fn sqlite_journal_passes_the_shared_checks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = SqliteJournal::open(&journal_path(&dir)).expect("open");
        conformance::run_all(&mut journal);
    }

    #[test]
    fn everything_is_there_after_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        {
            let mut journal = SqliteJournal::open(&path).expect("open");
            journal.append(&events(1..=5)).expect("append");
            journal.save_snapshot(4, b"state after 4").expect("snapshot");
        }
        let mut reopened = SqliteJournal::open(&path).expect("reopen");
        assert_eq!(reopened.last_seq().expect("last_seq"), 5);
        assert_eq!(reopened.read_from(1, 100).expect("read"), events(1..=5));
        assert_eq!(reopened.load_snapshot().expect("load"), Some((4, b"state after 4".to_vec())));
        // And it continues where it stopped, not from 1.
        assert!(matches!(reopened.append(&[event(1)]), Err(JournalError::Sequence { expected: 6, got: 1 })));
        reopened.append(&[event(6)]).expect("append 6 after reopening");
    }

    #[test]
    fn a_journal_whose_old_events_were_deleted_reopens_where_it_ended() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        {
            let mut journal = SqliteJournal::open(&path).expect("open");
            journal.append(&events(1..=5)).expect("append");
            journal.save_snapshot(5, b"state after 5").expect("snapshot");
            assert_eq!(journal.forget_before(u64::MAX, i64::MAX).expect("forget"), 5);
        }
        let auditor = Connection::open(&path).expect("auditor connection");
        let rows: i64 = auditor.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0)).expect("count");
        assert_eq!(rows, 0, "the rows are gone from the file, not hidden");

        let reader = SqliteReader::open(&path).expect("reader");
        assert_eq!(reader.last_seq().expect("last_seq"), 5);
        assert_eq!(reader.first_seq().expect("first_seq"), None);
        let mut reopened = SqliteJournal::open(&path).expect("reopen");
        assert_eq!(reopened.last_seq().expect("last_seq"), 5);
        reopened.append(&[event(6)]).expect("append 6 after reopening");
        assert_eq!(reader.first_seq().expect("first_seq"), Some(6));
    }

    #[test]
    fn connection_is_in_wal_mode_with_synchronous_full() {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = SqliteJournal::open(&journal_path(&dir)).expect("open");
        let journal_mode: String =
            journal.connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).expect("journal_mode");
        assert_eq!(journal_mode, "wal");
        let synchronous: i64 = journal.connection.pragma_query_value(None, "synchronous", |row| row.get(0)).expect("synchronous");
        assert_eq!(synchronous, 2, "2 is FULL");
        let busy_timeout_ms: i64 =
            journal.connection.pragma_query_value(None, "busy_timeout", |row| row.get(0)).expect("busy_timeout");
        assert_eq!(busy_timeout_ms, 5_000);
    }

    #[test]
    fn a_failing_insert_leaves_no_part_of_the_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = SqliteJournal::open(&journal_path(&dir)).expect("open");
        journal.append(&events(1..=2)).expect("append");
        // Make the storage itself fail on the third event of the batch, after
        // two inserts of the same transaction have gone through.
        journal
            .connection
            .execute_batch(
                "CREATE TEMP TRIGGER fail_on_boom BEFORE INSERT ON main.events \
                 WHEN NEW.kind = 'boom' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
            )
            .expect("create trigger");
        let mut batch = events(3..=5);
        batch[2].kind = "boom".to_owned();

        let error = journal.append(&batch).expect_err("the trigger fails the batch");
        let message = error.to_string();
        assert!(matches!(error, JournalError::Storage { .. }), "{message}");
        assert!(message.contains("cannot append events 3..=5"), "{message}");
        assert!(message.contains("disk on fire"), "{message}");

        assert_eq!(journal.last_seq().expect("last_seq"), 2);
        assert!(journal.read_from(3, 10).expect("read").is_empty());
        // The journal is still usable afterwards.
        journal.append(&events(3..=5)).expect("append after the failure");
    }

    #[test]
    fn stored_rows_are_readable_by_people() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let mut journal = SqliteJournal::open(&path).expect("open");
        let mut leap_day = event(1);
        leap_day.at_ms = 951_782_400_000;
        journal.append(&[leap_day.clone()]).expect("append");

        let auditor = Connection::open(&path).expect("auditor connection");
        let (at, actor, kind, body): (String, String, String, String) = auditor
            .query_row("SELECT at, actor, kind, body FROM events WHERE seq = 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .expect("row 1");
        assert_eq!(at, "2000-02-29T00:00:00.000Z");
        assert_eq!((actor, kind, body), (leap_day.actor, leap_day.kind, leap_day.body));

        let mut statement = auditor
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
            .expect("prepare");
        let index_names: Vec<String> =
            statement.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("index names");
        assert_eq!(index_names, vec!["events_by_agent", "events_by_incident"]);

        let version: String = auditor
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
            .expect("schema version");
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn snapshots_keep_only_the_latest_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let mut journal = SqliteJournal::open(&path).expect("open");
        journal.append(&events(1..=3)).expect("append");
        journal.save_snapshot(1, b"one").expect("snapshot 1");
        journal.save_snapshot(3, b"three").expect("snapshot 3");

        let auditor = Connection::open(&path).expect("auditor connection");
        let (rows, created_at_ms): (i64, Option<i64>) = auditor
            .query_row("SELECT COUNT(*), MAX(created_at_ms) FROM snapshots", [], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("count");
        assert_eq!(rows, 1);
        assert!(created_at_ms.is_some_and(|ms| ms > 1_700_000_000_000));
    }

    #[test]
    fn a_reader_sees_what_the_writer_appends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let mut writer = SqliteJournal::open(&path).expect("open writer");
        let reader = SqliteJournal::open_reader(&path).expect("open reader");
        assert_eq!(reader.last_seq().expect("last_seq"), 0);

        writer.append(&events(1..=3)).expect("append");
        assert_eq!(reader.last_seq().expect("last_seq"), 3);
        assert_eq!(reader.read_from(2, 10).expect("read"), events(2..=3));

        writer.save_snapshot(2, b"two").expect("snapshot");
        assert_eq!(reader.load_snapshot().expect("load"), Some((2, b"two".to_vec())));

        // The reader can also live on another thread while the writer goes on.
        let reader_thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let last_seq = reader.last_seq().expect("last_seq");
                if last_seq >= 50 {
                    return reader.read_from(1, 1_000).expect("read");
                }
                assert!(Instant::now() < deadline, "reader saw only up to seq {last_seq}");
                std::thread::yield_now();
            }
        });
        for seq in 4..=50 {
            writer.append(&[event(seq)]).expect("append");
        }
        let seen = reader_thread.join().expect("reader thread");
        assert_eq!(seen, events(1..=50));
    }

    #[test]
    fn a_reader_cannot_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let _writer = SqliteJournal::open(&path).expect("open writer");
        let reader = SqliteReader::open(&path).expect("open reader");
        let result = reader.connection.execute("DELETE FROM events", []);
        assert_eq!(result.expect_err("read-only").sqlite_error_code(), Some(ErrorCode::ReadOnly));
    }

    #[test]
    fn a_reader_on_a_missing_file_says_so() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let error = SqliteReader::open(&path).expect_err("no such file");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!path.exists(), "a reader must not create the file");
    }

    #[test]
    fn opening_a_garbage_file_names_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let garbage = "this is a shopping list, not a database\n".repeat(200);
        std::fs::write(&path, &garbage).expect("write garbage");

        let error = SqliteJournal::open(&path).expect_err("garbage is refused");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("not a database"), "{message}");
        assert!(message.contains("move this file away"), "{message}");

        let reader_error = SqliteReader::open(&path).expect_err("garbage is refused");
        assert!(reader_error.to_string().contains(&path.display().to_string()));
        // Nothing was done to the file.
        assert_eq!(std::fs::read_to_string(&path).expect("read back"), garbage);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        drop(SqliteJournal::open(&path).expect("create"));
        Connection::open(&path)
            .and_then(|connection| connection.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'", []))
            .expect("bump version");

        let error = SqliteJournal::open(&path).expect_err("newer schema is refused");
        assert!(matches!(error, JournalError::NewerSchema { found: 7, supported: 1, .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("schema version 7"), "{message}");
        assert!(SqliteReader::open(&path).is_err());
    }

    #[test]
    fn another_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        Connection::open(&path)
            .and_then(|connection| connection.execute_batch("CREATE TABLE recipes (name TEXT);"))
            .expect("create another database");

        let error = SqliteJournal::open(&path).expect_err("not a journal");
        let message = error.to_string();
        assert!(matches!(error, JournalError::Unusable { .. }), "{message}");
        assert!(message.contains("not a pingji journal"), "{message}");
    }

    #[test]
    fn corrupt_rows_are_reported_as_corrupt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        let mut journal = SqliteJournal::open(&path).expect("open");
        journal.append(&events(1..=3)).expect("append");
        journal.save_snapshot(3, b"three").expect("snapshot");
        Connection::open(&path)
            .and_then(|connection| {
                connection.execute_batch(
                    "UPDATE events SET actor = x'00ff' WHERE seq = 2; \
                     UPDATE snapshots SET state = 'not a blob';",
                )
            })
            .expect("damage rows");

        let error = journal.read_from(1, 10).expect_err("row 2 is damaged");
        let message = error.to_string();
        assert!(matches!(error, JournalError::Corrupt { .. }), "{message}");
        assert!(message.contains("event row at seq 2"), "{message}");
        assert_eq!(journal.read_from(3, 10).expect("row 3 is fine"), vec![event(3)]);

        let snapshot_error = journal.load_snapshot().expect_err("snapshot is damaged");
        assert!(matches!(snapshot_error, JournalError::Corrupt { .. }), "{snapshot_error}");
    }

    #[test]
    fn a_read_only_file_is_refused_with_what_to_do() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("temp dir");
        let path = journal_path(&dir);
        drop(SqliteJournal::open(&path).expect("create"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
            // Running as root: permissions do not stop this process, so there
            // is nothing to observe here.
            return;
        }
        let error = SqliteJournal::open(&path).expect_err("read-only file is refused");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("writable"), "{message}");
        // A reader is fine on a read-only file.
        assert_eq!(SqliteReader::open(&path).expect("reader").last_seq().expect("last_seq"), 0);
    }
}
