//! The lease of a shard: which dispatcher process owns it, until when, and
//! with which fencing token.
//!
//! The lease is the hash `pingji:{<shard>}:lease` (`token`, `owner`,
//! `address`) with a time to live; the fencing token comes from the counter
//! `pingji:{<shard>}:fence`, which only grows. Each operation is one Lua
//! script, so Redis runs its check and its write with nothing in between:
//!
//! - acquire: if the lease is free (never taken, released, or expired), take
//!   the next token and write the lease with its ttl; otherwise say who
//!   holds it. The next token is the larger of the counter + 1 and Redis's
//!   clock in microseconds, so that tokens keep growing even if Redis lost
//!   the counter's latest value (a crash with `appendfsync everysec`, a
//!   failover to a replica that was behind): a process paused with an old
//!   token can then never be handed the same token again;
//! - renew: if the lease still carries my token, extend its ttl. If it
//!   expired but nobody took it (the counter still holds my token), take it
//!   back: nobody can have written in between;
//! - release (clean shutdown): delete the lease if it is still mine, so a
//!   standby takes over at its next poll rather than after the ttl.
//!
//! The journal checks the token on every write (see
//! [`crate::journal::RedisJournal`]), so the lease only decides who *should*
//! write; the fence makes sure nobody else *can*. An owner that was paused or
//! cut off for longer than the ttl finds, when it wakes, that its renewal and
//! its appends are refused, and steps down.
//!
//! A standby polls every [`LeaseConfig::renew_every`]; when an owner dies,
//! its lease expires at most `ttl` after its last renewal, so a standby takes
//! over within [`LeaseConfig::takeover_bound`] plus the time to recover.

use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use redis::{ConnectionLike, Script};

use crate::shard::{RedisConnection, RedisShard, RedisStoreError, reply_text};

/// Takes the lease if it is free. Returns
/// `{'acquired', token, owner, address}` or `{'held', token, owner, address}`.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the lease, KEYS[2] the fence counter
-- ARGV[1] owner id, ARGV[2] owner address, ARGV[3] ttl in ms
if redis.call('EXISTS', KEYS[1]) == 1 then
  local held = redis.call('HMGET', KEYS[1], 'token', 'owner', 'address')
  return {'held', held[1] or '0', held[2] or '', held[3] or ''}
end
local now = redis.call('TIME')
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1,
  tonumber(now[1]) * 1000000 + tonumber(now[2]))
token = string.format('%d', token)
redis.call('SET', KEYS[2], token)
redis.call('HSET', KEYS[1], 'token', token, 'owner', ARGV[1], 'address', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'acquired', token, ARGV[1], ARGV[2]}
",
    )
});

/// Extends the lease if it is still mine (or takes it back if it expired and
/// nobody took it). Returns `{'renewed', token, ''}` or
/// `{'lost', current_token, current_address}`.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the lease, KEYS[2] the fence counter
-- ARGV[1] my token, ARGV[2] owner id, ARGV[3] owner address, ARGV[4] ttl in ms
local held = redis.call('HGET', KEYS[1], 'token')
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'renewed', ARGV[1], ''}
end
if not held then
  local fence = redis.call('GET', KEYS[2])
  if fence == ARGV[1] then
    redis.call('HSET', KEYS[1], 'token', ARGV[1], 'owner', ARGV[2], 'address', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return {'renewed', ARGV[1], ''}
  end
  return {'lost', fence or '0', ''}
end
return {'lost', held, redis.call('HGET', KEYS[1], 'address') or ''}
",
    )
});

/// Deletes the lease if it is still mine. Returns 1 if it was.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the lease; ARGV[1] my token
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// How long a lease lasts and how often it is renewed (and a standby polls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig { ttl: Duration::from_secs(3), renew_every: Duration::from_secs(1) }
    }
}

impl LeaseConfig {
    /// Checks that an owner can renew at least twice within a ttl, so that
    /// one slow renewal does not lose the shard.
    pub fn new(ttl: Duration, renew_every: Duration) -> Result<Self, String> {
        if renew_every.is_zero() || renew_every.saturating_mul(2) > ttl {
            return Err(format!(
                "the lease renewal interval ({} ms) must be positive and at most half the \
                 lease ttl ({} ms)",
                renew_every.as_millis(),
                ttl.as_millis()
            ));
        }
        Ok(LeaseConfig { ttl, renew_every })
    }

    /// The longest a shard goes without an owner after its owner dies, before
    /// recovery: the lease runs out, then a standby notices at its next poll.
    pub fn takeover_bound(&self) -> Duration {
        self.ttl + self.renew_every
    }
}

/// Who holds a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub token: u64,
    pub owner_id: String,
    /// Where clients reach it (`HOST:PORT`).
    pub address: String,
}

/// The outcome of trying to take the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquisition {
    /// The shard is ours, with this fencing token.
    Acquired { token: u64 },
    /// Someone else holds it.
    Held(LeaseHolder),
}

/// The outcome of a renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// Another process took the shard with `current_token`; `address` is
    /// where it serves, when known.
    Lost {
        current_token: u64,
        address: Option<String>,
    },
}

/// One process's handle on one shard's lease. Blocking calls: use it from
/// `spawn_blocking` or a thread. It keeps its own connection, so a slow
/// journal write does not delay a renewal.
pub struct ShardLease {
    shard: RedisShard,
    owner_id: String,
    address: String,
    config: LeaseConfig,
    connection: Mutex<Option<RedisConnection>>,
}

impl ShardLease {
    /// `owner_id` names this process (unique per start); `address` is where
    /// clients reach it, told to clients that ask a standby.
    pub fn new(shard: RedisShard, owner_id: &str, address: &str, config: LeaseConfig) -> Self {
        ShardLease { shard, owner_id: owner_id.to_owned(), address: address.to_owned(), config, connection: Mutex::new(None) }
    }

    pub fn shard(&self) -> &RedisShard {
        &self.shard
    }

    pub fn config(&self) -> LeaseConfig {
        self.config
    }

    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// Takes the lease if it is free or expired.
    pub fn try_acquire(&self) -> Result<Acquisition, RedisStoreError> {
        let keys = self.shard.keys();
        let action = format!("acquire the lease {}", keys.lease);
        let (outcome, token, owner_id, address): (String, String, String, String) = self.run(&action, |connection| {
            ACQUIRE
                .key(&keys.lease)
                .key(&keys.fence)
                .arg(&self.owner_id)
                .arg(&self.address)
                .arg(ttl_ms(self.config.ttl))
                .invoke(connection)
        })?;
        let token = self.token(&action, &token)?;
        match outcome.as_str() {
            "acquired" => Ok(Acquisition::Acquired { token }),
            "held" => Ok(Acquisition::Held(LeaseHolder { token, owner_id, address })),
            other => Err(self.shard.unexpected(&action, other)),
        }
    }

    /// Extends the lease held with `token`.
    pub fn renew(&self, token: u64) -> Result<Renewal, RedisStoreError> {
        let keys = self.shard.keys();
        let action = format!("renew the lease {}", keys.lease);
        let (outcome, current, address): (String, String, String) = self.run(&action, |connection| {
            RENEW
                .key(&keys.lease)
                .key(&keys.fence)
                .arg(token.to_string())
                .arg(&self.owner_id)
                .arg(&self.address)
                .arg(ttl_ms(self.config.ttl))
                .invoke(connection)
        })?;
        match outcome.as_str() {
            "renewed" => Ok(Renewal::Renewed),
            "lost" => Ok(Renewal::Lost {
                current_token: self.token(&action, &current)?,
                address: Some(address).filter(|address| !address.is_empty()),
            }),
            other => Err(self.shard.unexpected(&action, other)),
        }
    }

    /// Gives the lease up (at a clean shutdown). False if it was not ours
    /// any more.
    pub fn release(&self, token: u64) -> Result<bool, RedisStoreError> {
        let keys = self.shard.keys();
        let action = format!("release the lease {}", keys.lease);
        let released: i64 = self.run(&action, |connection| RELEASE.key(&keys.lease).arg(token.to_string()).invoke(connection))?;
        Ok(released == 1)
    }

    /// Who holds the lease now, if anyone.
    pub fn holder(&self) -> Result<Option<LeaseHolder>, RedisStoreError> {
        let keys = self.shard.keys();
        let action = format!("read the lease {}", keys.lease);
        let fields: Vec<redis::Value> = self.run(&action, |connection| {
            redis::cmd("HMGET").arg(&keys.lease).arg("token").arg("owner").arg("address").query(connection)
        })?;
        let texts: Vec<Option<String>> = fields.iter().map(reply_text).collect();
        let [Some(token), owner_id, address] = texts.as_slice() else {
            return Ok(None);
        };
        Ok(Some(LeaseHolder {
            token: self.token(&action, token)?,
            owner_id: owner_id.clone().unwrap_or_default(),
            address: address.clone().unwrap_or_default(),
        }))
    }

    fn token(&self, action: &str, text: &str) -> Result<u64, RedisStoreError> {
        text.parse::<u64>().map_err(|_| self.shard.unexpected(action, format!("token {text:?} is not a number")))
    }

    fn run<T>(
        &self,
        action: &str,
        command: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisStoreError> {
        let mut slot = self.lock_connection();
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            // A renewal that waits longer than the interval is as good as
            // lost: give up then and try again at the next one.
            None => slot.insert(self.shard.connect(self.config.renew_every)?),
        };
        match command(connection) {
            Ok(value) => Ok(value),
            Err(cause) => {
                let error = self.shard.failure(action, &cause);
                if error.is_unreachable() || !connection.is_open() {
                    *slot = None;
                }
                Err(error)
            }
        }
    }

    fn lock_connection(&self) -> MutexGuard<'_, Option<RedisConnection>> {
        // A panic while holding the lock leaves at worst a connection in an
        // unknown state; drop it and carry on.
        self.connection.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        })
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{COMMAND_TIMEOUT, ShardId};
    use pingji_test_redis::RedisServer;

    fn start_redis() -> (tempfile::TempDir, RedisServer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = RedisServer::start(dir.path()).expect("start redis-server");
        (dir, server)
    }

    fn lease(server: &RedisServer, owner: &str, address: &str, ttl_ms: u64) -> ShardLease {
        let shard = RedisShard::new(&server.url(), ShardId::default()).expect("url");
        let config = LeaseConfig::new(Duration::from_millis(ttl_ms), Duration::from_millis(ttl_ms / 3)).expect("config");
        ShardLease::new(shard, owner, address, config)
    }

    fn acquired(acquisition: Acquisition) -> u64 {
        match acquisition {
            Acquisition::Acquired { token } => token,
            Acquisition::Held(holder) => panic!("held by {holder:?}"),
        }
    }

    /// Waits until the lease key is gone (its ttl ran out), polling.
    fn wait_expired(lease: &ShardLease) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while lease.holder().expect("holder").is_some() {
            assert!(std::time::Instant::now() < deadline, "the lease never expired");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn one_owner_at_a_time_and_tokens_only_grow() {
        let (_dir, server) = start_redis();
        let first = lease(&server, "first", "10.0.0.1:50051", 60_000);
        let second = lease(&server, "second", "10.0.0.2:50051", 60_000);

        let first_token = acquired(first.try_acquire().expect("acquire"));
        assert_eq!(
            second.try_acquire().expect("acquire"),
            Acquisition::Held(LeaseHolder { token: first_token, owner_id: "first".into(), address: "10.0.0.1:50051".into() })
        );
        assert_eq!(second.holder().expect("holder").map(|holder| holder.address), Some("10.0.0.1:50051".to_owned()));
        assert_eq!(first.renew(first_token).expect("renew"), Renewal::Renewed);

        assert!(first.release(first_token).expect("release"));
        assert_eq!(second.holder().expect("holder"), None);
        let second_token = acquired(second.try_acquire().expect("acquire"));
        assert!(second_token > first_token, "a released lease still moves the fence on");
        assert_eq!(
            first.renew(first_token).expect("renew"),
            Renewal::Lost { current_token: second_token, address: Some("10.0.0.2:50051".into()) }
        );
        assert!(!first.release(first_token).expect("release"), "not mine any more");
        assert_eq!(second.holder().expect("holder").map(|holder| holder.token), Some(second_token));
    }

    #[test]
    fn tokens_grow_even_when_redis_lost_the_counter() {
        let (_dir, server) = start_redis();
        let owner = lease(&server, "first", "a:1", 60_000);
        let token = acquired(owner.try_acquire().expect("acquire"));
        assert!(token > 1_600_000_000_000_000, "tokens start from Redis's clock in µs: {token}");
        // Redis comes back without the latest counter and lease (lost writes).
        server.execute(&["SET", "pingji:{city}:fence", "3"]).expect("set");
        server.execute(&["DEL", "pingji:{city}:lease"]).expect("del");
        let next = acquired(lease(&server, "second", "b:2", 60_000).try_acquire().expect("acquire"));
        assert!(next > token, "a token handed out again: {next} after {token}");
        assert!(matches!(owner.renew(token).expect("renew"), Renewal::Lost { .. }));
    }

    #[test]
    fn an_expired_lease_goes_to_the_next_and_fences_the_old_owner() {
        let (_dir, server) = start_redis();
        let old = lease(&server, "old", "a:1", 300);
        let new = lease(&server, "new", "b:2", 60_000);
        let old_token = acquired(old.try_acquire().expect("acquire"));
        wait_expired(&old);
        let new_token = acquired(new.try_acquire().expect("acquire"));
        assert!(new_token > old_token);
        assert_eq!(old.renew(old_token).expect("renew"), Renewal::Lost { current_token: new_token, address: Some("b:2".into()) });
    }

    #[test]
    fn an_expired_lease_nobody_took_is_taken_back_by_its_owner() {
        let (_dir, server) = start_redis();
        let owner = lease(&server, "slow", "a:1", 300);
        let token = acquired(owner.try_acquire().expect("acquire"));
        wait_expired(&owner);
        assert_eq!(owner.renew(token).expect("renew"), Renewal::Renewed);
        assert_eq!(
            owner.holder().expect("holder").map(|holder| holder.token),
            Some(token),
            "same token: nobody else could have written in between"
        );
        // Once someone else took the shard, the owner cannot take it back
        // even after that one's lease expired.
        wait_expired(&owner);
        let other = lease(&server, "other", "b:2", 300);
        let other_token = acquired(other.try_acquire().expect("acquire"));
        wait_expired(&other);
        assert_eq!(owner.renew(token).expect("renew"), Renewal::Lost { current_token: other_token, address: None });
    }

    #[test]
    fn the_lease_expires_by_its_ttl() {
        let (_dir, server) = start_redis();
        let owner = lease(&server, "owner", "a:1", 1_500);
        acquired(owner.try_acquire().expect("acquire"));
        let mut connection = owner.shard().connect(COMMAND_TIMEOUT).expect("connect");
        let ttl_left_ms: i64 = redis::cmd("PTTL").arg(&owner.shard().keys().lease).query(&mut connection).expect("pttl");
        assert!((1..=1_500).contains(&ttl_left_ms), "pttl {ttl_left_ms}");
    }

    #[test]
    fn config_needs_two_renewals_per_ttl() {
        assert!(LeaseConfig::new(Duration::from_secs(3), Duration::from_secs(1)).is_ok());
        let error = LeaseConfig::new(Duration::from_secs(3), Duration::from_secs(2)).expect_err("one renewal per ttl is too few");
        assert!(error.contains("at most half"), "{error}");
        assert!(LeaseConfig::new(Duration::from_secs(3), Duration::ZERO).is_err());
        assert_eq!(LeaseConfig::default().takeover_bound(), Duration::from_secs(4));
    }

    #[test]
    fn an_unreachable_redis_is_an_error_not_a_lost_lease() {
        let shard = RedisShard::new("redis://127.0.0.1:1", ShardId::default()).expect("url");
        let lease = ShardLease::new(shard, "owner", "a:1", LeaseConfig::default());
        assert!(lease.try_acquire().expect_err("down").is_unreachable());
        assert!(lease.renew(1).expect_err("down").is_unreachable());
    }
}
