//! Where the notifier keeps what it must not forget across a restart or a
//! kill -9: the journal cursor (the next event to read), the open notices
//! (who is being reached about what, and the next rung), and every step
//! tried, by its idempotency key (person + subject + rung), so that no
//! step is sent twice. Tables in the SQLite journal's file (the default),
//! keys beside the shard in Redis, or memory for `--ephemeral`. Calls
//! block: run them off the async threads.

use crate::shard::RedisConnection;
pub use crate::side_store::StoreError;
use crate::side_store::{RedisLink, open_sqlite};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use pingji_engine::event::NoticeChannel;
use pingji_engine::policy::Mode;

/// What a notice is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Offer { offer: String, incident: String },
    Callup { callup: String },
    Message { message: String },
}

impl Subject {
    /// `offer:ID`, `callup:ID` or `message:ID`, as in the events.
    pub fn name(&self) -> String {
        match self {
            Subject::Offer { offer, .. } => format!("offer:{offer}"),
            Subject::Callup { callup } => format!("callup:{callup}"),
            Subject::Message { message } => format!("message:{message}"),
        }
    }
}

/// One person being reached about one subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub agent: String,
    pub subject: Subject,
    /// The grade whose ladder is climbed, fixed when the notice started.
    pub mode: Mode,
    /// Whether the person had a live session when it started (the
    /// ladder's `if_connected_after_s` applies).
    pub connected: bool,
    pub started_at_ms: i64,
    /// What the SMS says and the call reads out.
    pub text: String,
    /// When the offer runs out (ms since the epoch; 0 for none): a push
    /// is not worth delivering after it.
    #[serde(default)]
    pub deadline_ms: i64,
    /// An offer's incident category, for the push's title; empty otherwise.
    #[serde(default)]
    pub category: String,
    /// The index of the next rung to try.
    pub next_step: u32,
}

impl Notice {
    pub fn key(&self) -> String {
        notice_key(&self.agent, &self.subject.name())
    }
}

pub fn notice_key(agent: &str, subject: &str) -> String {
    format!("{agent}|{subject}")
}

/// The idempotency key of rung `step` (from 1): sent to the gateway too.
pub fn step_key(agent: &str, subject: &str, step: u32) -> String {
    format!("{agent}|{subject}|{step}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Asked of the gateway, not yet taken (or taken just before a crash).
    Sending,
    Sent,
    Delivered,
    Failed,
    Skipped,
}

/// One rung tried towards one person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub key: String,
    pub agent: String,
    pub subject: Subject,
    pub channel: NoticeChannel,
    /// The rung, from 1.
    pub step: u32,
    pub state: StepState,
}

pub trait NotifyStore: Send {
    /// The next event to read; `None` before the first start.
    fn cursor(&self) -> Result<Option<u64>, StoreError>;
    /// Keeps `put`, forgets the notices `closed` and moves the cursor, all
    /// or nothing.
    fn save(&mut self, next_seq: u64, put: &[Notice], closed: &[String]) -> Result<(), StoreError>;
    fn notices(&self) -> Result<Vec<Notice>, StoreError>;
    fn step(&self, key: &str) -> Result<Option<StepRecord>, StoreError>;
    fn put_step(&mut self, record: &StepRecord) -> Result<(), StoreError>;
}

pub type SharedStore = Arc<Mutex<Box<dyn NotifyStore>>>;

pub struct SqliteNotifyStore {
    connection: Connection,
}

impl SqliteNotifyStore {
    /// The notify tables in the journal's file at `path` (made if missing).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = open_sqlite(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS notify_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), next_seq INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS notify_notices (key TEXT PRIMARY KEY, record TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS notify_steps (key TEXT PRIMARY KEY, record TEXT NOT NULL);",
        )?;
        Ok(SqliteNotifyStore { connection })
    }
}

impl NotifyStore for SqliteNotifyStore {
    fn cursor(&self) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> =
            self.connection.query_row("SELECT next_seq FROM notify_cursor WHERE id = 1", [], |row| row.get(0)).optional()?;
        Ok(next.map(|next| u64::try_from(next).unwrap_or(0)))
    }

    fn save(&mut self, next_seq: u64, put: &[Notice], closed: &[String]) -> Result<(), StoreError> {
        let transaction = self.connection.transaction()?;
        for notice in put {
            transaction.execute(
                "INSERT OR REPLACE INTO notify_notices (key, record) VALUES (?1, ?2)",
                params![notice.key(), serde_json::to_string(notice)?],
            )?;
        }
        for key in closed {
            transaction.execute("DELETE FROM notify_notices WHERE key = ?1", params![key])?;
        }
        transaction.execute(
            "INSERT OR REPLACE INTO notify_cursor (id, next_seq) VALUES (1, ?1)",
            params![i64::try_from(next_seq).unwrap_or(i64::MAX)],
        )?;
        transaction.commit()?;
        Ok(())
    }

    fn notices(&self) -> Result<Vec<Notice>, StoreError> {
        let mut statement = self.connection.prepare("SELECT record FROM notify_notices ORDER BY key")?;
        let records = statement.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        records.iter().map(|record| Ok(serde_json::from_str(record)?)).collect()
    }

    fn step(&self, key: &str) -> Result<Option<StepRecord>, StoreError> {
        let record: Option<String> = self
            .connection
            .query_row("SELECT record FROM notify_steps WHERE key = ?1", params![key], |row| row.get(0))
            .optional()?;
        record.map(|record| Ok(serde_json::from_str(&record)?)).transpose()
    }

    fn put_step(&mut self, record: &StepRecord) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR REPLACE INTO notify_steps (key, record) VALUES (?1, ?2)",
            params![record.key, serde_json::to_string(record)?],
        )?;
        Ok(())
    }
}

/// Memory only, for `--ephemeral` dispatchers: lost at exit like their journal.
#[derive(Default)]
pub struct MemoryNotifyStore {
    cursor: Option<u64>,
    notices: BTreeMap<String, Notice>,
    steps: BTreeMap<String, StepRecord>,
}

impl NotifyStore for MemoryNotifyStore {
    fn cursor(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.cursor)
    }

    fn save(&mut self, next_seq: u64, put: &[Notice], closed: &[String]) -> Result<(), StoreError> {
        for notice in put {
            self.notices.insert(notice.key(), notice.clone());
        }
        for key in closed {
            self.notices.remove(key);
        }
        self.cursor = Some(next_seq);
        Ok(())
    }

    fn notices(&self) -> Result<Vec<Notice>, StoreError> {
        Ok(self.notices.values().cloned().collect())
    }

    fn step(&self, key: &str) -> Result<Option<StepRecord>, StoreError> {
        Ok(self.steps.get(key).cloned())
    }

    fn put_step(&mut self, record: &StepRecord) -> Result<(), StoreError> {
        self.steps.insert(record.key.clone(), record.clone());
        Ok(())
    }
}

/// Keys beside the shard's (`pingji:{SHARD}:notify_cursor`,
/// `…:notify_notices`, `…:notify_steps`), so that whichever process owns
/// the shard goes on with the ladder.
pub struct RedisNotifyStore {
    link: RedisLink,
    cursor: String,
    notices: String,
    steps: String,
}

impl RedisNotifyStore {
    pub fn open(url: &str, shard: &crate::shard::ShardId) -> Result<Self, StoreError> {
        let link = RedisLink::open(url, shard).map_err(StoreError)?;
        Ok(RedisNotifyStore {
            cursor: link.key("notify_cursor"),
            notices: link.key("notify_notices"),
            steps: link.key("notify_steps"),
            link,
        })
    }

    fn with<T>(&self, action: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        self.link.with(action)
    }
}

impl NotifyStore for RedisNotifyStore {
    fn cursor(&self) -> Result<Option<u64>, StoreError> {
        self.with(|connection| redis::cmd("GET").arg(&self.cursor).query(connection))
    }

    fn save(&mut self, next_seq: u64, put: &[Notice], closed: &[String]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for notice in put {
            pipe.hset(&self.notices, notice.key(), serde_json::to_string(notice)?);
        }
        for key in closed {
            pipe.hdel(&self.notices, key);
        }
        pipe.set(&self.cursor, next_seq);
        self.with(|connection| pipe.query::<()>(connection))
    }

    fn notices(&self) -> Result<Vec<Notice>, StoreError> {
        let records: BTreeMap<String, String> =
            self.with(|connection| redis::cmd("HGETALL").arg(&self.notices).query(connection))?;
        records.values().map(|record| Ok(serde_json::from_str(record)?)).collect()
    }

    fn step(&self, key: &str) -> Result<Option<StepRecord>, StoreError> {
        let record: Option<String> = self.with(|connection| redis::cmd("HGET").arg(&self.steps).arg(key).query(connection))?;
        record.map(|record| Ok(serde_json::from_str(&record)?)).transpose()
    }

    fn put_step(&mut self, record: &StepRecord) -> Result<(), StoreError> {
        let text = serde_json::to_string(record)?;
        self.with(|connection| redis::cmd("HSET").arg(&self.steps).arg(&record.key).arg(text).query::<()>(connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(agent: &str, callup: &str) -> Notice {
        Notice {
            agent: agent.to_string(),
            subject: Subject::Callup { callup: callup.to_string() },
            mode: Mode::EmergencyI,
            connected: false,
            started_at_ms: 7,
            text: "call-up".to_string(),
            deadline_ms: 0,
            category: String::new(),
            next_step: 1,
        }
    }

    fn conformance(store: &mut dyn NotifyStore) {
        assert_eq!(store.cursor().expect("cursor"), None);
        store.save(5, &[notice("p1", "c1"), notice("p2", "c1")], &[]).expect("save");
        store.save(9, &[], &["p1|callup:c1".to_string()]).expect("save");
        assert_eq!(store.cursor().expect("cursor"), Some(9));
        assert_eq!(store.notices().expect("notices"), vec![notice("p2", "c1")]);
        let record = StepRecord {
            key: step_key("p2", "callup:c1", 1),
            agent: "p2".into(),
            subject: Subject::Callup { callup: "c1".into() },
            channel: NoticeChannel::Sms,
            step: 1,
            state: StepState::Sending,
        };
        store.put_step(&record).expect("put");
        store.put_step(&StepRecord { state: StepState::Sent, ..record.clone() }).expect("put");
        assert_eq!(store.step(&record.key).expect("step").map(|step| step.state), Some(StepState::Sent));
        assert_eq!(store.step("p9|callup:c1|1").expect("step"), None);
    }

    #[test]
    fn memory_store() {
        conformance(&mut MemoryNotifyStore::default());
    }

    #[test]
    fn sqlite_store_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pingji.db");
        conformance(&mut SqliteNotifyStore::open(&path).expect("open"));
        let reopened = SqliteNotifyStore::open(&path).expect("reopen");
        assert_eq!(reopened.cursor().expect("cursor"), Some(9));
        assert_eq!(reopened.notices().expect("notices").len(), 1);
    }

    /// On a Redis Cluster: the store's keys share the shard's slot, so its
    /// transactions and scripts run there.
    #[test]
    fn redis_cluster_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = pingji_test_redis::RedisCluster::start(dir.path()).expect("redis cluster");
        let shard = crate::shard::ShardId::new("d1").expect("shard id");
        conformance(&mut RedisNotifyStore::open(&cluster.url(), &shard).expect("open"));
    }

    #[test]
    fn redis_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = pingji_test_redis::RedisServer::start(dir.path()).expect("redis-server");
        let shard = crate::shard::ShardId::default();
        conformance(&mut RedisNotifyStore::open(&server.url(), &shard).expect("open"));
    }
}
