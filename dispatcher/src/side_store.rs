//! What the small stores kept beside the journal share (the ladder's
//! notices, push subscriptions, webhooks): their error, their SQLite
//! connection in the journal's file, and their Redis link, a connection made
//! when first needed and again after a failure, to keys
//! `pingji:{SHARD}:NAME` so that whichever process owns the shard finds them.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::shard::{COMMAND_TIMEOUT, RedisConnection, RedisShard, ShardId};

/// What went wrong in a store beside the journal.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError(error.to_string())
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        StoreError(format!("redis: {error}"))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError(format!("a stored record cannot be read: {error}"))
    }
}

/// A connection to the SQLite file at `path` (the journal's), waiting for
/// the journal's writer rather than failing, synced as the journal is.
pub fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

pub struct RedisLink {
    shard: RedisShard,
    connection: Mutex<Option<RedisConnection>>,
    prefix: String,
}

impl RedisLink {
    /// A link to `url` (one Redis or a cluster, see [`RedisShard::new`])
    /// for `shard`'s keys; the reason when the URL is not one.
    pub fn open(url: &str, shard: &ShardId) -> Result<RedisLink, String> {
        let redis = RedisShard::new(url, shard.clone()).map_err(|error| error.to_string())?;
        Ok(RedisLink { shard: redis, connection: Mutex::new(None), prefix: format!("pingji:{{{shard}}}:") })
    }

    /// The key `pingji:{SHARD}:name`. Every key of a store carries the
    /// shard's hash tag, so on a Redis Cluster they share the slot of the
    /// shard's journal and a transaction over several of them is allowed.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `action` on the connection; a failed action drops it, so the
    /// next one connects afresh.
    pub fn with<T>(&self, action: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        let mut slot = self.slot();
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => self.shard.connect(COMMAND_TIMEOUT).map_err(|error| StoreError(error.to_string()))?,
        };
        let result = action(&mut connection);
        if result.is_ok() {
            *slot = Some(connection);
        }
        Ok(result?)
    }

    fn slot(&self) -> MutexGuard<'_, Option<RedisConnection>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
