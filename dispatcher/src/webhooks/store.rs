//! Where subscribers, their cursors and dead letters are kept: tables in the
//! SQLite journal's file (the default), keys beside the shard in Redis, or
//! memory for `--ephemeral`. Calls block: run them off the async threads.
//!
//! The cursor is written with `synchronous=NORMAL` in WAL mode: it survives
//! a kill -9, and a power cut loses at most the last few advances, which
//! means those events are delivered again (at least once, never skipped).

use crate::shard::RedisConnection;
pub use crate::side_store::StoreError;
use crate::side_store::{RedisLink, open_sqlite};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// A registered partner. The secret is never logged or listed.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Subscriber {
    pub id: String,
    pub url: String,
    pub kinds: Vec<String>,
    pub area_ids: Vec<String>,
    pub secret: String,
    pub precise: bool,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("kinds", &self.kinds)
            .field("area_ids", &self.area_ids)
            .field("precise", &self.precise)
            .finish_non_exhaustive()
    }
}

/// A subscriber as kept: with its cursor and how many dead letters it has.
#[derive(Clone, Debug, PartialEq)]
pub struct Registered {
    pub subscriber: Subscriber,
    pub next_seq: u64,
    pub dead_letters: u64,
}

/// An event given up on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub kind: String,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at_ms: i64,
}

pub trait WebhookStore: Send {
    fn load(&self) -> Result<Vec<Registered>, StoreError>;
    fn add(&mut self, subscriber: &Subscriber, next_seq: u64) -> Result<(), StoreError>;
    /// False when there was no such subscriber.
    fn remove(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Moves the cursor (of a subscriber that still exists).
    fn advance(&mut self, id: &str, next_seq: u64) -> Result<(), StoreError>;
    /// Keeps `letter` and moves the cursor past it, both or neither.
    fn dead_letter(&mut self, id: &str, letter: &DeadLetter, next_seq: u64) -> Result<(), StoreError>;
    fn dead_letters(&self, id: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Moves the cursor back to `from_seq` and drops the dead letters from there on.
    fn replay(&mut self, id: &str, from_seq: u64) -> Result<(), StoreError>;
}

pub type SharedStore = Arc<Mutex<Box<dyn WebhookStore>>>;

pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    /// The webhook tables in the journal's file at `path` (made if missing).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = open_sqlite(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS webhook_subscribers (
                 id TEXT PRIMARY KEY,
                 url TEXT NOT NULL,
                 kinds TEXT NOT NULL,
                 area_ids TEXT NOT NULL,
                 secret TEXT NOT NULL,
                 precise INTEGER NOT NULL,
                 created_at_ms INTEGER NOT NULL,
                 next_seq INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS webhook_dead_letters (
                 subscriber_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 attempts INTEGER NOT NULL,
                 last_error TEXT NOT NULL,
                 failed_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (subscriber_id, seq)
             );",
        )?;
        Ok(SqliteStore { connection })
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn list_text(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

impl WebhookStore for SqliteStore {
    fn load(&self) -> Result<Vec<Registered>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, url, kinds, area_ids, secret, precise, created_at_ms, next_seq,
                    (SELECT COUNT(*) FROM webhook_dead_letters WHERE subscriber_id = id)
             FROM webhook_subscribers ORDER BY created_at_ms, id",
        )?;
        let rows = statement.query_map([], |row| {
            let kinds: String = row.get(2)?;
            let area_ids: String = row.get(3)?;
            let next_seq: i64 = row.get(7)?;
            let dead_letters: i64 = row.get(8)?;
            Ok(Registered {
                subscriber: Subscriber {
                    id: row.get(0)?,
                    url: row.get(1)?,
                    kinds: list(&kinds),
                    area_ids: list(&area_ids),
                    secret: row.get(4)?,
                    precise: row.get::<_, i64>(5)? != 0,
                    created_at_ms: row.get(6)?,
                },
                next_seq: u64::try_from(next_seq).unwrap_or(0),
                dead_letters: u64::try_from(dead_letters).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn add(&mut self, subscriber: &Subscriber, next_seq: u64) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT INTO webhook_subscribers (id, url, kinds, area_ids, secret, precise, created_at_ms, next_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                subscriber.id,
                subscriber.url,
                list_text(&subscriber.kinds),
                list_text(&subscriber.area_ids),
                subscriber.secret,
                i64::from(subscriber.precise),
                subscriber.created_at_ms,
                to_i64(next_seq)
            ],
        )?;
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<bool, StoreError> {
        let transaction = self.connection.transaction()?;
        transaction.execute("DELETE FROM webhook_dead_letters WHERE subscriber_id = ?1", params![id])?;
        let removed = transaction.execute("DELETE FROM webhook_subscribers WHERE id = ?1", params![id])?;
        transaction.commit()?;
        Ok(removed > 0)
    }

    fn advance(&mut self, id: &str, next_seq: u64) -> Result<(), StoreError> {
        self.connection.execute("UPDATE webhook_subscribers SET next_seq = ?2 WHERE id = ?1", params![id, to_i64(next_seq)])?;
        Ok(())
    }

    fn dead_letter(&mut self, id: &str, letter: &DeadLetter, next_seq: u64) -> Result<(), StoreError> {
        let transaction = self.connection.transaction()?;
        let exists: Option<i64> =
            transaction.query_row("SELECT 1 FROM webhook_subscribers WHERE id = ?1", params![id], |row| row.get(0)).optional()?;
        if exists.is_some() {
            transaction.execute(
                "INSERT OR REPLACE INTO webhook_dead_letters (subscriber_id, seq, kind, attempts, last_error, failed_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, to_i64(letter.seq), letter.kind, letter.attempts, letter.last_error, letter.failed_at_ms],
            )?;
            transaction.execute("UPDATE webhook_subscribers SET next_seq = ?2 WHERE id = ?1", params![id, to_i64(next_seq)])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn dead_letters(&self, id: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT seq, kind, attempts, last_error, failed_at_ms FROM webhook_dead_letters
             WHERE subscriber_id = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = statement.query_map(params![id, to_i64(limit as u64)], |row| {
            let seq: i64 = row.get(0)?;
            Ok(DeadLetter {
                seq: u64::try_from(seq).unwrap_or(0),
                kind: row.get(1)?,
                attempts: row.get(2)?,
                last_error: row.get(3)?,
                failed_at_ms: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn replay(&mut self, id: &str, from_seq: u64) -> Result<(), StoreError> {
        let transaction = self.connection.transaction()?;
        transaction
            .execute("DELETE FROM webhook_dead_letters WHERE subscriber_id = ?1 AND seq >= ?2", params![id, to_i64(from_seq)])?;
        transaction.execute("UPDATE webhook_subscribers SET next_seq = ?2 WHERE id = ?1", params![id, to_i64(from_seq)])?;
        transaction.commit()?;
        Ok(())
    }
}

/// Memory only, for `--ephemeral` dispatchers: lost at exit like their journal.
#[derive(Default)]
pub struct MemoryStore {
    subscribers: BTreeMap<String, (Subscriber, u64, BTreeMap<u64, DeadLetter>)>,
}

impl WebhookStore for MemoryStore {
    fn load(&self) -> Result<Vec<Registered>, StoreError> {
        let mut registered: Vec<Registered> = self
            .subscribers
            .values()
            .map(|(subscriber, next_seq, letters)| Registered {
                subscriber: subscriber.clone(),
                next_seq: *next_seq,
                dead_letters: letters.len() as u64,
            })
            .collect();
        registered.sort_by(|left, right| {
            (left.subscriber.created_at_ms, &left.subscriber.id).cmp(&(right.subscriber.created_at_ms, &right.subscriber.id))
        });
        Ok(registered)
    }

    fn add(&mut self, subscriber: &Subscriber, next_seq: u64) -> Result<(), StoreError> {
        self.subscribers.insert(subscriber.id.clone(), (subscriber.clone(), next_seq, BTreeMap::new()));
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self.subscribers.remove(id).is_some())
    }

    fn advance(&mut self, id: &str, next_seq: u64) -> Result<(), StoreError> {
        if let Some((_, cursor, _)) = self.subscribers.get_mut(id) {
            *cursor = next_seq;
        }
        Ok(())
    }

    fn dead_letter(&mut self, id: &str, letter: &DeadLetter, next_seq: u64) -> Result<(), StoreError> {
        if let Some((_, cursor, letters)) = self.subscribers.get_mut(id) {
            letters.insert(letter.seq, letter.clone());
            *cursor = next_seq;
        }
        Ok(())
    }

    fn dead_letters(&self, id: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.subscribers.get(id).map(|(_, _, letters)| letters.values().take(limit).cloned().collect()).unwrap_or_default())
    }

    fn replay(&mut self, id: &str, from_seq: u64) -> Result<(), StoreError> {
        if let Some((_, cursor, letters)) = self.subscribers.get_mut(id) {
            letters.retain(|seq, _| *seq < from_seq);
            *cursor = from_seq;
        }
        Ok(())
    }
}

/// Keys beside the shard's (`pingji:{SHARD}:webhooks`, `…:webhook_cursors`,
/// `…:webhook_dead:ID`), so that whichever process owns the shard delivers.
pub struct RedisWebhookStore {
    link: RedisLink,
    subscribers: String,
    cursors: String,
}

impl RedisWebhookStore {
    pub fn open(url: &str, shard: &crate::shard::ShardId) -> Result<Self, StoreError> {
        let link = RedisLink::open(url, shard).map_err(StoreError)?;
        Ok(RedisWebhookStore { subscribers: link.key("webhooks"), cursors: link.key("webhook_cursors"), link })
    }

    fn with<T>(&self, action: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        self.link.with(action)
    }

    fn dead_key(&self, id: &str) -> String {
        self.link.key(&format!("webhook_dead:{id}"))
    }
}

impl WebhookStore for RedisWebhookStore {
    fn load(&self) -> Result<Vec<Registered>, StoreError> {
        let (records, cursors): (BTreeMap<String, String>, BTreeMap<String, u64>) = self.with(|connection| {
            Ok((
                redis::cmd("HGETALL").arg(&self.subscribers).query(connection)?,
                redis::cmd("HGETALL").arg(&self.cursors).query(connection)?,
            ))
        })?;
        let mut registered = Vec::new();
        for (id, record) in records {
            let subscriber: Subscriber = serde_json::from_str(&record)?;
            let dead_letters: u64 = self.with(|connection| redis::cmd("ZCARD").arg(self.dead_key(&id)).query(connection))?;
            registered.push(Registered { subscriber, next_seq: cursors.get(&id).copied().unwrap_or(1), dead_letters });
        }
        registered.sort_by(|left, right| {
            (left.subscriber.created_at_ms, &left.subscriber.id).cmp(&(right.subscriber.created_at_ms, &right.subscriber.id))
        });
        Ok(registered)
    }

    fn add(&mut self, subscriber: &Subscriber, next_seq: u64) -> Result<(), StoreError> {
        let record = serde_json::to_string(subscriber)?;
        let id = subscriber.id.clone();
        self.with(|connection| {
            redis::pipe()
                .atomic()
                .hset(&self.subscribers, &id, &record)
                .hset(&self.cursors, &id, next_seq)
                .query::<()>(connection)
        })
    }

    fn remove(&mut self, id: &str) -> Result<bool, StoreError> {
        let (removed, _, _): (u64, u64, u64) = self.with(|connection| {
            redis::pipe().atomic().hdel(&self.subscribers, id).hdel(&self.cursors, id).del(self.dead_key(id)).query(connection)
        })?;
        Ok(removed > 0)
    }

    fn advance(&mut self, id: &str, next_seq: u64) -> Result<(), StoreError> {
        self.with(|connection| {
            // Only for a subscriber still registered: a removal wins.
            let exists: bool = redis::cmd("HEXISTS").arg(&self.subscribers).arg(id).query(connection)?;
            if exists {
                redis::cmd("HSET").arg(&self.cursors).arg(id).arg(next_seq).query::<()>(connection)?;
            }
            Ok(())
        })
    }

    fn dead_letter(&mut self, id: &str, letter: &DeadLetter, next_seq: u64) -> Result<(), StoreError> {
        let record = serde_json::to_string(letter)?;
        self.with(|connection| {
            let exists: bool = redis::cmd("HEXISTS").arg(&self.subscribers).arg(id).query(connection)?;
            if exists {
                redis::pipe()
                    .atomic()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(self.dead_key(id))
                    .arg(letter.seq)
                    .arg(letter.seq)
                    .cmd("ZADD")
                    .arg(self.dead_key(id))
                    .arg(letter.seq)
                    .arg(&record)
                    .hset(&self.cursors, id, next_seq)
                    .query::<()>(connection)?;
            }
            Ok(())
        })
    }

    fn dead_letters(&self, id: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let records: Vec<String> = self.with(|connection| {
            redis::cmd("ZRANGE").arg(self.dead_key(id)).arg(0).arg(limit.saturating_sub(1) as i64).query(connection)
        })?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        records.iter().map(|record| Ok(serde_json::from_str(record)?)).collect()
    }

    fn replay(&mut self, id: &str, from_seq: u64) -> Result<(), StoreError> {
        self.with(|connection| {
            redis::pipe()
                .atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(self.dead_key(id))
                .arg(from_seq)
                .arg("+inf")
                .hset(&self.cursors, id, from_seq)
                .query::<()>(connection)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(id: &str, at: i64) -> Subscriber {
        Subscriber {
            id: id.to_string(),
            url: "http://127.0.0.1:9/hook".to_string(),
            kinds: vec!["incident_reported".to_string()],
            area_ids: vec![],
            secret: "a-secret-of-sixteen".to_string(),
            precise: false,
            created_at_ms: at,
        }
    }

    fn letter(seq: u64) -> DeadLetter {
        DeadLetter { seq, kind: "incident_reported".into(), attempts: 3, last_error: "503".into(), failed_at_ms: 7 }
    }

    fn conformance(store: &mut dyn WebhookStore) {
        store.add(&subscriber("wh_b", 2), 5).expect("add");
        store.add(&subscriber("wh_a", 1), 1).expect("add");
        store.advance("wh_b", 9).expect("advance");
        store.dead_letter("wh_b", &letter(9), 10).expect("dead letter");
        store.dead_letter("wh_b", &letter(12), 13).expect("dead letter");
        store.dead_letter("wh_gone", &letter(1), 2).expect("a removed subscriber's letter is dropped");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.iter().map(|r| r.subscriber.id.as_str()).collect::<Vec<_>>(), ["wh_a", "wh_b"]);
        assert_eq!((loaded[1].next_seq, loaded[1].dead_letters), (13, 2));
        assert_eq!(loaded[1].subscriber, subscriber("wh_b", 2), "the secret and lists round-trip");
        assert_eq!(store.dead_letters("wh_b", 1).expect("letters"), vec![letter(9)]);
        store.replay("wh_b", 10).expect("replay");
        assert_eq!(store.dead_letters("wh_b", 10).expect("letters"), vec![letter(9)], "letters from 10 on are delivered again");
        assert_eq!(store.load().expect("load")[1].next_seq, 10);
        assert!(store.remove("wh_b").expect("remove"));
        assert!(!store.remove("wh_b").expect("remove again"));
        assert!(store.dead_letters("wh_b", 10).expect("letters").is_empty());
        assert_eq!(store.load().expect("load").len(), 1);
    }

    #[test]
    fn memory_store() {
        conformance(&mut MemoryStore::default());
    }

    /// On a Redis Cluster: the store's keys share the shard's slot, so its
    /// transactions and scripts run there.
    #[test]
    fn redis_cluster_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = pingji_test_redis::RedisCluster::start(dir.path()).expect("redis cluster");
        let shard = crate::shard::ShardId::new("d1").expect("shard id");
        conformance(&mut RedisWebhookStore::open(&cluster.url(), &shard).expect("open"));
    }

    #[test]
    fn redis_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = pingji_test_redis::RedisServer::start(dir.path()).expect("redis-server");
        let shard = crate::shard::ShardId::default();
        conformance(&mut RedisWebhookStore::open(&server.url(), &shard).expect("open"));
    }

    #[test]
    fn sqlite_store_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pingji.db");
        conformance(&mut SqliteStore::open(&path).expect("open"));
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(reopened.load().expect("load")[0].subscriber.id, "wh_a");
    }
}
