//! Where the VAPID key and the subscriptions are kept: tables in the SQLite
//! journal's file (the default), keys beside the shard in Redis, or memory
//! for `--ephemeral` (the key is then new at each start, and phones
//! subscribe again). Calls block: run them off the async threads.

use crate::shard::RedisConnection;
pub use crate::side_store::StoreError;
use crate::side_store::{RedisLink, open_sqlite};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use rusqlite::{Connection, params};

use super::subscription::{MAX_PER_PERSON, Subscription};

pub trait PushStore: Send {
    /// The kept VAPID key (PKCS#8); keeps `generated` first when there is none.
    fn vapid_key(&mut self, generated: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// A person's subscriptions, oldest first.
    fn subscriptions(&self, person: &str) -> Result<Vec<Subscription>, StoreError>;
    /// Keeps `subscription` (replacing one with its endpoint), drops the
    /// person's oldest past [`MAX_PER_PERSON`]; how many they have now.
    fn put(&mut self, subscription: &Subscription) -> Result<usize, StoreError>;
    /// False when there was no such subscription.
    fn remove(&mut self, person: &str, endpoint: &str) -> Result<bool, StoreError>;
    /// Everyone with at least one subscription.
    fn people(&self) -> Result<Vec<String>, StoreError>;
}

pub type SharedStore = Arc<Mutex<Box<dyn PushStore>>>;

pub struct SqlitePushStore {
    connection: Connection,
}

impl SqlitePushStore {
    /// The push tables in the journal's file at `path` (made if missing).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = open_sqlite(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS push_vapid (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 pkcs8 BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS push_subscriptions (
                 person TEXT NOT NULL,
                 endpoint TEXT NOT NULL,
                 p256dh TEXT NOT NULL,
                 auth TEXT NOT NULL,
                 created_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (person, endpoint)
             );",
        )?;
        Ok(SqlitePushStore { connection })
    }
}

impl PushStore for SqlitePushStore {
    fn vapid_key(&mut self, generated: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.connection.execute("INSERT OR IGNORE INTO push_vapid (id, pkcs8) VALUES (1, ?1)", params![generated])?;
        Ok(self.connection.query_row("SELECT pkcs8 FROM push_vapid WHERE id = 1", [], |row| row.get(0))?)
    }

    fn subscriptions(&self, person: &str) -> Result<Vec<Subscription>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT endpoint, p256dh, auth, created_at_ms FROM push_subscriptions
             WHERE person = ?1 ORDER BY created_at_ms, endpoint",
        )?;
        let rows = statement.query_map(params![person], |row| {
            Ok(Subscription {
                person: person.to_string(),
                endpoint: row.get(0)?,
                p256dh: row.get(1)?,
                auth: row.get(2)?,
                created_at_ms: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn put(&mut self, subscription: &Subscription) -> Result<usize, StoreError> {
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT OR REPLACE INTO push_subscriptions (person, endpoint, p256dh, auth, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                subscription.person,
                subscription.endpoint,
                subscription.p256dh,
                subscription.auth,
                subscription.created_at_ms
            ],
        )?;
        transaction.execute(
            "DELETE FROM push_subscriptions WHERE person = ?1 AND endpoint NOT IN (
                 SELECT endpoint FROM push_subscriptions WHERE person = ?1
                 ORDER BY created_at_ms DESC, endpoint DESC LIMIT ?2)",
            params![subscription.person, MAX_PER_PERSON as i64],
        )?;
        let count: i64 = transaction.query_row(
            "SELECT COUNT(*) FROM push_subscriptions WHERE person = ?1",
            params![subscription.person],
            |row| row.get(0),
        )?;
        transaction.commit()?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    fn remove(&mut self, person: &str, endpoint: &str) -> Result<bool, StoreError> {
        let removed = self
            .connection
            .execute("DELETE FROM push_subscriptions WHERE person = ?1 AND endpoint = ?2", params![person, endpoint])?;
        Ok(removed > 0)
    }

    fn people(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.connection.prepare("SELECT DISTINCT person FROM push_subscriptions ORDER BY person")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }
}

/// Memory only, for `--ephemeral` dispatchers: lost at exit like their journal.
#[derive(Default)]
pub struct MemoryPushStore {
    vapid: Option<Vec<u8>>,
    people: BTreeMap<String, Vec<Subscription>>,
}

fn oldest_first(subscriptions: &mut [Subscription]) {
    subscriptions.sort_by(|left, right| (left.created_at_ms, &left.endpoint).cmp(&(right.created_at_ms, &right.endpoint)));
}

impl PushStore for MemoryPushStore {
    fn vapid_key(&mut self, generated: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.vapid.get_or_insert_with(|| generated.to_vec()).clone())
    }

    fn subscriptions(&self, person: &str) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.people.get(person).cloned().unwrap_or_default())
    }

    fn put(&mut self, subscription: &Subscription) -> Result<usize, StoreError> {
        let kept = self.people.entry(subscription.person.clone()).or_default();
        kept.retain(|other| other.endpoint != subscription.endpoint);
        kept.push(subscription.clone());
        oldest_first(kept);
        let excess = kept.len().saturating_sub(MAX_PER_PERSON);
        kept.drain(..excess);
        Ok(kept.len())
    }

    fn remove(&mut self, person: &str, endpoint: &str) -> Result<bool, StoreError> {
        let Some(kept) = self.people.get_mut(person) else {
            return Ok(false);
        };
        let before = kept.len();
        kept.retain(|other| other.endpoint != endpoint);
        let removed = kept.len() < before;
        if kept.is_empty() {
            self.people.remove(person);
        }
        Ok(removed)
    }

    fn people(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.people.keys().cloned().collect())
    }
}

/// The names of the keys matching `ARGV[1]`, by `SCAN` inside a script.
/// On a Redis Cluster a plain `SCAN` cannot be routed by key (it lists one
/// node's keys); the script is routed by `KEYS[1]`, a key of the shard, to
/// the node holding the shard's slot, where all its keys are. It runs once
/// when the pusher opens (an owner's start or takeover).
static KEYS_MATCHING: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
-- KEYS[1] a key of the shard (routes the script); ARGV[1] the pattern
local cursor = '0'
local found = {}
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    found[#found + 1] = key
  end
until cursor == '0'
return found
",
    )
});

/// Keys beside the shard's: `pingji:{SHARD}:vapid` and one hash per person,
/// `pingji:{SHARD}:push:PERSON` (endpoint → subscription JSON), so that
/// whichever process owns the shard pushes with the same key.
pub struct RedisPushStore {
    link: RedisLink,
    vapid: String,
}

impl RedisPushStore {
    pub fn open(url: &str, shard: &crate::shard::ShardId) -> Result<Self, StoreError> {
        let link = RedisLink::open(url, shard).map_err(StoreError)?;
        Ok(RedisPushStore { vapid: link.key("vapid"), link })
    }

    fn with<T>(&self, action: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        self.link.with(action)
    }

    fn person_key(&self, person: &str) -> String {
        self.link.key(&format!("push:{person}"))
    }
}

impl PushStore for RedisPushStore {
    fn vapid_key(&mut self, generated: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.with(|connection| {
            redis::cmd("SET").arg(&self.vapid).arg(generated).arg("NX").query::<()>(connection)?;
            redis::cmd("GET").arg(&self.vapid).query(connection)
        })
    }

    fn subscriptions(&self, person: &str) -> Result<Vec<Subscription>, StoreError> {
        let records: BTreeMap<String, String> =
            self.with(|connection| redis::cmd("HGETALL").arg(self.person_key(person)).query(connection))?;
        let mut kept = records.values().map(|record| serde_json::from_str(record)).collect::<Result<Vec<Subscription>, _>>()?;
        oldest_first(&mut kept);
        Ok(kept)
    }

    fn put(&mut self, subscription: &Subscription) -> Result<usize, StoreError> {
        let record = serde_json::to_string(subscription)?;
        let key = self.person_key(&subscription.person);
        self.with(|connection| {
            redis::cmd("HSET").arg(&key).arg(&subscription.endpoint).arg(&record).query::<()>(connection)?;
            let records: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&key).query(connection)?;
            let mut kept: Vec<Subscription> = records.values().filter_map(|record| serde_json::from_str(record).ok()).collect();
            oldest_first(&mut kept);
            let excess = kept.len().saturating_sub(MAX_PER_PERSON);
            for old in kept.drain(..excess) {
                redis::cmd("HDEL").arg(&key).arg(&old.endpoint).query::<()>(connection)?;
            }
            Ok(kept.len())
        })
    }

    fn remove(&mut self, person: &str, endpoint: &str) -> Result<bool, StoreError> {
        let key = self.person_key(person);
        let removed: u64 = self.with(|connection| redis::cmd("HDEL").arg(&key).arg(endpoint).query(connection))?;
        Ok(removed > 0)
    }

    fn people(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.person_key("");
        let keys: Vec<String> =
            self.with(|connection| KEYS_MATCHING.key(&self.vapid).arg(format!("{prefix}*")).invoke(connection))?;
        let mut people: Vec<String> = keys.iter().filter_map(|key| key.strip_prefix(&prefix)).map(str::to_string).collect();
        people.sort();
        Ok(people)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(person: &str, endpoint: &str, at: i64) -> Subscription {
        Subscription {
            person: person.to_string(),
            endpoint: format!("https://push.example/{endpoint}"),
            p256dh: "BCVx".to_string(),
            auth: "BTBZ".to_string(),
            created_at_ms: at,
        }
    }

    fn conformance(store: &mut dyn PushStore) {
        assert_eq!(store.vapid_key(b"first").expect("key"), b"first");
        assert_eq!(store.vapid_key(b"second").expect("key"), b"first", "the first key stays");
        assert_eq!(store.put(&subscription("p1", "a", 1)).expect("put"), 1);
        assert_eq!(store.put(&subscription("p1", "b", 2)).expect("put"), 2);
        let mut renewed = subscription("p1", "a", 3);
        renewed.auth = "other".to_string();
        assert_eq!(store.put(&renewed).expect("put"), 2, "the same endpoint is replaced");
        assert_eq!(store.put(&subscription("p2", "a", 1)).expect("put"), 1);
        let kept = store.subscriptions("p1").expect("list");
        assert_eq!(kept, vec![subscription("p1", "b", 2), renewed]);
        for at in 10..16 {
            store.put(&subscription("p1", &format!("n{at}"), at)).expect("put");
        }
        let kept = store.subscriptions("p1").expect("list");
        assert_eq!(kept.len(), MAX_PER_PERSON);
        assert_eq!(kept[0].endpoint, "https://push.example/n11", "the oldest went");
        assert!(store.remove("p1", "https://push.example/n11").expect("remove"));
        assert!(!store.remove("p1", "https://push.example/n11").expect("remove again"));
        assert!(!store.remove("p9", "https://push.example/a").expect("nobody"));
        assert_eq!(store.subscriptions("p2").expect("list").len(), 1);
        assert!(store.subscriptions("p9").expect("list").is_empty());
        assert_eq!(store.people().expect("people"), vec!["p1".to_string(), "p2".to_string()]);
        assert!(store.remove("p2", "https://push.example/a").expect("remove"));
        assert_eq!(store.people().expect("people"), vec!["p1".to_string()], "nobody left without a subscription");
    }

    #[test]
    fn memory_store() {
        conformance(&mut MemoryPushStore::default());
    }

    /// On a Redis Cluster: the store's keys share the shard's slot, so its
    /// transactions and scripts run there.
    #[test]
    fn redis_cluster_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = pingji_test_redis::RedisCluster::start(dir.path()).expect("redis cluster");
        let shard = crate::shard::ShardId::new("d1").expect("shard id");
        conformance(&mut RedisPushStore::open(&cluster.url(), &shard).expect("open"));
    }

    #[test]
    fn redis_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = pingji_test_redis::RedisServer::start(dir.path()).expect("redis-server");
        let shard = crate::shard::ShardId::default();
        conformance(&mut RedisPushStore::open(&server.url(), &shard).expect("open"));
    }

    #[test]
    fn sqlite_store_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pingji.db");
        conformance(&mut SqlitePushStore::open(&path).expect("open"));
        let mut reopened = SqlitePushStore::open(&path).expect("reopen");
        assert_eq!(reopened.vapid_key(b"third").expect("key"), b"first");
        assert_eq!(reopened.subscriptions("p1").expect("list").len(), MAX_PER_PERSON - 1);
    }
}
