//! A model of the one Redis the dispatchers share: per shard the fence
//! counter, the lease with its expiry, the journal and its snapshot.
//!
//! What is modelled and what is real:
//! - The lease scripts (`ACQUIRE`, `RENEW`, `RELEASE` in
//!   `pingji_dispatcher::lease`) are Lua run inside Redis; here each is a
//!   method that does the same checks and writes in the same order, on the
//!   simulated clock (a lease key "expires" when its `expires_at` passes).
//! - The fenced append (the journal's Lua script: compare the caller's
//!   token with the fence, then check that the batch continues the stream,
//!   then `XADD`) is modelled for the fence half; the continuity half is
//!   the real [`MemoryJournal`], whose `append` runs the same
//!   `check_continues` as the Redis and SQLite journals.
//! - The snapshot is the engine's `State` after the shard's setup, as JSON
//!   in the journal (`save_snapshot`), which a new owner loads with the
//!   real `pingji_dispatcher::runtime::recover_from`; the same state is
//!   also kept as a value, which an owner goes back to (with the events
//!   since) when an append fails.
//!
//! Redis itself never loses a write here (`appendfsync always`, no
//! failover): losing acknowledged writes in Redis is outside what the
//! simulation checks (docs/redis.md covers it).

use std::collections::BTreeMap;
use std::sync::Arc;

use pingji_dispatcher::journal::{Journal, JournalError, MemoryJournal, StoredEvent};
use pingji_engine::engine::State;

/// Which simulated process holds a lease.
pub type ProcessId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    pub owner: ProcessId,
    pub expires_at: i64,
}

/// Mirrors `pingji_dispatcher::lease::Acquisition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquisition {
    Acquired { token: u64 },
    Held { token: u64, owner: ProcessId },
}

/// Mirrors `pingji_dispatcher::lease::Renewal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    Lost { current_token: u64 },
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendRefused {
    /// The caller's token is not the fence: another owner took over.
    Fenced { fence: u64 },
    /// The batch does not continue the journal (the real check).
    Journal(JournalError),
}

/// One shard's keys: `pingji:{shard}:fence`, `:lease`, `:events`, `:snapshot`.
#[derive(Debug)]
pub struct ShardKeys {
    pub fence: u64,
    pub lease: Option<Lease>,
    pub journal: MemoryJournal,
    /// The snapshot's seq and its state as a value.
    pub snapshot: (u64, Arc<State>),
}

#[derive(Debug, Default)]
pub struct RedisModel {
    pub shards: BTreeMap<String, ShardKeys>,
}

impl RedisModel {
    /// A shard whose journal holds `setup` and whose snapshot is the state
    /// after it.
    pub fn add_shard(
        &mut self,
        shard: &str,
        setup: &[StoredEvent],
        snapshot: &[u8],
        state: Arc<State>,
    ) -> Result<(), JournalError> {
        let mut journal = MemoryJournal::new();
        journal.append(setup)?;
        let seq = journal.last_seq()?;
        journal.save_snapshot(seq, snapshot)?;
        self.shards.insert(shard.to_owned(), ShardKeys { fence: 0, lease: None, journal, snapshot: (seq, state) });
        Ok(())
    }

    fn keys(&mut self, shard: &str) -> &mut ShardKeys {
        self.shards.get_mut(shard).unwrap_or_else(|| panic!("the simulation has no shard {shard}"))
    }

    /// The lease if its key has not expired by `now`.
    pub fn live_lease(&self, shard: &str, now: i64) -> Option<&Lease> {
        self.shards.get(shard)?.lease.as_ref().filter(|lease| lease.expires_at > now)
    }

    /// `ACQUIRE`: the next token is the larger of fence + 1 and the clock
    /// in µs.
    pub fn acquire(&mut self, shard: &str, owner: ProcessId, now: i64, ttl_ms: i64) -> Acquisition {
        if let Some(lease) = self.live_lease(shard, now) {
            return Acquisition::Held { token: lease.token, owner: lease.owner };
        }
        let keys = self.keys(shard);
        let token = (keys.fence + 1).max(u64::try_from(now).unwrap_or(0) * 1000);
        keys.fence = token;
        keys.lease = Some(Lease { token, owner, expires_at: now + ttl_ms });
        Acquisition::Acquired { token }
    }

    /// `RENEW`: extend when the lease carries my token; take it back when it
    /// expired and the fence still holds my token.
    pub fn renew(&mut self, shard: &str, token: u64, owner: ProcessId, now: i64, ttl_ms: i64) -> Renewal {
        let held = self.live_lease(shard, now).map(|lease| lease.token);
        let keys = self.keys(shard);
        match held {
            Some(held) if held == token => {
                if let Some(lease) = keys.lease.as_mut() {
                    lease.expires_at = now + ttl_ms;
                }
                Renewal::Renewed
            }
            Some(held) => Renewal::Lost { current_token: held },
            None if keys.fence == token => {
                keys.lease = Some(Lease { token, owner, expires_at: now + ttl_ms });
                Renewal::Renewed
            }
            None => Renewal::Lost { current_token: keys.fence },
        }
    }

    /// The fenced append. `check_fence: false` is the deliberately broken
    /// protocol of the checker's own test.
    pub fn append(&mut self, shard: &str, token: u64, events: &[StoredEvent], check_fence: bool) -> Result<(), AppendRefused> {
        let keys = self.keys(shard);
        if check_fence && keys.fence != token {
            return Err(AppendRefused::Fenced { fence: keys.fence });
        }
        keys.journal.append(events).map_err(AppendRefused::Journal)
    }

    pub fn fence(&self, shard: &str) -> u64 {
        self.shards.get(shard).map_or(0, |keys| keys.fence)
    }

    pub fn last_seq(&self, shard: &str) -> u64 {
        self.shards.get(shard).and_then(|keys| keys.journal.last_seq().ok()).unwrap_or(0)
    }

    pub fn read_from(&self, shard: &str, from_seq: u64) -> Vec<StoredEvent> {
        self.shards.get(shard).and_then(|keys| keys.journal.read_from(from_seq, usize::MAX).ok()).unwrap_or_default()
    }

    pub fn snapshot(&self, shard: &str) -> Option<(u64, Arc<State>)> {
        self.shards.get(shard).map(|keys| keys.snapshot.clone())
    }
}
