//! A connection to Redis made when first needed and made again after a
//! failure, for the small stores kept beside a shard's keys (the ladder's
//! notices, push subscriptions, webhooks): their keys are
//! `pingji:{SHARD}:NAME`, so whichever process owns the shard finds them.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::shard::ShardId;

/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RedisLink {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    prefix: String,
}

impl RedisLink {
    /// A link to `url` for `shard`'s keys; the reason when the URL is not one.
    pub fn open(url: &str, shard: &ShardId) -> Result<RedisLink, String> {
        let client = redis::Client::open(url).map_err(|_| "invalid redis url".to_string())?;
        Ok(RedisLink { client, connection: Mutex::new(None), prefix: format!("pingji:{{{shard}}}:") })
    }

    /// The key `pingji:{SHARD}:name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `action` on the connection; a failed action drops it, so the
    /// next one connects afresh.
    pub fn with<T>(&self, action: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> redis::RedisResult<T> {
        let mut slot = self.slot();
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?,
        };
        let result = action(&mut connection);
        if result.is_ok() {
            *slot = Some(connection);
        }
        result
    }

    fn slot(&self) -> MutexGuard<'_, Option<redis::Connection>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
