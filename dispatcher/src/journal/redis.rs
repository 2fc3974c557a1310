//! One shard's journal in Redis, shared by the dispatcher processes that may
//! own the shard, of which one at a time does (see [`crate::lease`]).
//!
//! Events are entries of the stream `pingji:{<shard>}:events` whose entry id
//! is `<seq>-0`, so that reading from a sequence number is one `XRANGE`. The
//! latest snapshot is the hash `pingji:{<shard>}:snapshot`. Redis keeps the
//! stream in its ordering; an operator reads it with
//! `redis-cli XRANGE 'pingji:{city}:events' - + COUNT 10`.
//!
//! Every write is one Lua script, so Redis runs its checks and its writes
//! with nothing in between: the caller's fencing token must be the shard's
//! current one (a process that was paused or cut off while another took the
//! shard over is refused with [`JournalError::Fenced`]), and an append must
//! continue the stream without a gap or an overlap. Both are checked for the
//! whole batch before anything is written, so a batch goes in whole or not
//! at all.
//!
//! Events past the retention limit are deleted from the head of the stream
//! (`XTRIM MINID`), fence-checked like a write, and never past the
//! snapshot's seq. When every event was deleted, the snapshot's seq is where
//! the journal ends, so appends go on from there.
//!
//! The connection is synchronous: the runtime calls the journal from
//! `spawn_blocking`. A lost connection is opened again on the next call;
//! Redis being out of reach is reported as such
//! ([`JournalError::is_unreachable`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::{ConnectionLike, Script, Value};
use tracing::{debug, info};

use super::record::{Journal, JournalError, StoredEvent, iso8601_utc_from_ms};
use crate::shard::{COMMAND_TIMEOUT, RedisConnection, RedisShard, RedisStoreError, reply_text};

/// Appends a batch if the caller holds the shard and the batch continues the
/// stream. Returns `{outcome, a, b}`: `{'ok', last_seq, 0}`,
/// `{'fenced', current_token, 0}` or `{'sequence', expected, got}`.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the event stream, KEYS[2] the fence counter, KEYS[3] the snapshot hash
-- ARGV[1] the caller's token, ARGV[2] the number of events, then for each
-- event: its seq, its number of field/value pairs, and the pairs.
-- Everything is checked before anything is written: a script runs alone,
-- but a write done before a failing command would stay.
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then
  return {'fenced', tonumber(current or '0'), 0}
end
-- The last entry's seq, or the snapshot's when retention deleted them all.
local last = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then
  last = tonumber(string.match(top[1][1], '^%d+'))
else
  last = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
end
local count = tonumber(ARGV[2])
local expected = last + 1
local at = 3
for _ = 1, count do
  local seq = tonumber(ARGV[at])
  if seq ~= expected then
    return {'sequence', expected, seq}
  end
  expected = expected + 1
  at = at + 2 + 2 * tonumber(ARGV[at + 1])
end
at = 3
for _ = 1, count do
  local pair_count = tonumber(ARGV[at + 1])
  local command = {'XADD', KEYS[1], ARGV[at] .. '-0'}
  for i = 0, 2 * pair_count - 1 do
    command[#command + 1] = ARGV[at + 2 + i]
  end
  redis.call(unpack(command))
  at = at + 2 + 2 * pair_count
end
return {'ok', expected - 1, 0}
",
    )
});

/// Replaces the snapshot if the caller holds the shard and the stream holds
/// the events the snapshot was taken after. Returns `{'ok', last_seq, 0}`,
/// `{'fenced', current_token, 0}` or `{'ahead', last_seq, 0}`.
static SAVE_SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the snapshot hash, KEYS[2] the fence counter, KEYS[3] the event stream
-- ARGV[1] the caller's token, ARGV[2] seq, ARGV[3] state, ARGV[4] created_at_ms
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then
  return {'fenced', tonumber(current or '0'), 0}
end
local last = 0
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #top > 0 then
  last = tonumber(string.match(top[1][1], '^%d+'))
else
  last = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
end
if tonumber(ARGV[2]) > last then
  return {'ahead', last, 0}
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'state', ARGV[3], 'created_at_ms', ARGV[4])
return {'ok', last, 0}
",
    )
});

/// Deletes the stream's entries up to a seq if the caller holds the shard,
/// never past the snapshot's seq. The caller has checked that they are older
/// than the retention limit (entries up to the snapshot never change, so the
/// check stays true). Returns `{'ok', removed, 0}` or
/// `{'fenced', current_token, 0}`.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1] the event stream, KEYS[2] the fence counter, KEYS[3] the snapshot hash
-- ARGV[1] the caller's token, ARGV[2] the last seq to delete
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then
  return {'fenced', tonumber(current or '0'), 0}
end
local snapshot = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local cut = math.min(tonumber(ARGV[2]), snapshot)
if cut < 1 then
  return {'ok', 0, 0}
end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', cut + 1))
return {'ok', removed, 0}
",
    )
});

/// Entries read per page while looking for the first one too recent to delete.
const FORGET_SCAN_PAGE: usize = 1_000;

/// The journal of one shard, written by its owner with the fencing token it
/// got from the lease. `Send` but not `Sync`, like the SQLite journal.
pub struct RedisJournal {
    stream: StreamAccess,
    token: u64,
}

/// Reads a shard's journal without owning the shard (an audit, an export, a
/// test): no token, no writes.
pub struct RedisReader {
    stream: StreamAccess,
}

/// The reads both share, over one lazily (re)opened connection.
struct StreamAccess {
    shard: RedisShard,
    connection: RefCell<Option<RedisConnection>>,
}

impl RedisJournal {
    /// Opens the journal of `shard` for the owner holding fencing `token`.
    /// Connects at once, so that a wrong address fails at start.
    pub fn open(shard: RedisShard, token: u64) -> Result<Self, JournalError> {
        let stream = StreamAccess::open(shard)?;
        let last_seq = stream.last_seq()?;
        info!(redis = %stream.shard.url(), shard = %stream.shard.id(), token, last_seq, "redis journal opened");
        Ok(RedisJournal { stream, token })
    }

    /// The fencing token this journal writes with.
    pub fn token(&self) -> u64 {
        self.token
    }

    pub fn shard(&self) -> &RedisShard {
        &self.stream.shard
    }

    fn fenced(&self, current: i64) -> JournalError {
        JournalError::Fenced {
            shard: self.stream.shard.id().to_string(),
            current: u64::try_from(current).unwrap_or_default(),
            mine: self.token,
        }
    }
}

impl RedisReader {
    /// Opens a reader on the journal of `shard`; connects at once.
    pub fn open(shard: RedisShard) -> Result<Self, JournalError> {
        Ok(RedisReader { stream: StreamAccess::open(shard)? })
    }

    /// Events with seq >= from_seq, in order, at most `limit`.
    pub fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        self.stream.read_from(from_seq, limit)
    }

    /// Highest seq appended, 0 when empty.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        self.stream.last_seq()
    }

    /// Lowest seq still held, `None` when no event is.
    pub fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        self.stream.first_seq()
    }

    /// The latest snapshot, if any.
    pub fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        self.stream.load_snapshot()
    }
}

impl Journal for RedisJournal {
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), JournalError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let keys = self.stream.shard.keys();
        let action = format!("append events {}..={} to {}", first.seq, last.seq, keys.events);
        let mut invocation = APPEND.prepare_invoke();
        invocation.key(&keys.events).key(&keys.fence).key(&keys.snapshot).arg(self.token.to_string()).arg(events.len());
        for event in events {
            let fields = stream_fields(event);
            invocation.arg(event.seq).arg(fields.len());
            for (name, value) in fields {
                invocation.arg(name).arg(value);
            }
        }
        let (outcome, first_number, second_number): (String, i64, i64) =
            self.stream.run(&action, |connection| invocation.invoke(connection))?;
        match outcome.as_str() {
            "ok" => {
                debug!(first_seq = first.seq, count = events.len(), "redis journal append written");
                Ok(())
            }
            "fenced" => Err(self.fenced(first_number)),
            "sequence" => Err(JournalError::Sequence {
                expected: u64::try_from(first_number).unwrap_or_default(),
                got: u64::try_from(second_number).unwrap_or_default(),
            }),
            other => Err(self.stream.shard.unexpected(&action, other).into()),
        }
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        self.stream.read_from(from_seq, limit)
    }

    fn last_seq(&self) -> Result<u64, JournalError> {
        self.stream.last_seq()
    }

    fn save_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        let keys = self.stream.shard.keys();
        let action = format!("save the snapshot after seq {seq} to {}", keys.snapshot);
        let created_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
        let mut invocation = SAVE_SNAPSHOT.prepare_invoke();
        invocation
            .key(&keys.snapshot)
            .key(&keys.fence)
            .key(&keys.events)
            .arg(self.token.to_string())
            .arg(seq)
            .arg(state)
            .arg(created_at_ms.to_string());
        let (outcome, number, _): (String, i64, i64) = self.stream.run(&action, |connection| invocation.invoke(connection))?;
        match outcome.as_str() {
            "ok" => {
                debug!(seq, bytes = state.len(), "redis journal snapshot saved");
                Ok(())
            }
            "fenced" => Err(self.fenced(number)),
            "ahead" => Err(JournalError::SnapshotAhead { seq, last_seq: u64::try_from(number).unwrap_or_default() }),
            other => Err(self.stream.shard.unexpected(&action, other).into()),
        }
    }

    fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        self.stream.first_seq()
    }

    fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        self.stream.load_snapshot()
    }

    fn forget_before(&mut self, up_to_seq: u64, older_than_ms: i64) -> Result<u64, JournalError> {
        let Some(snapshot_seq) = self.stream.snapshot_seq()? else {
            return Ok(0);
        };
        let last_removable = up_to_seq.min(snapshot_seq);
        // Find the last entry to delete with plain reads, outside a script,
        // so that Redis is never blocked scanning a long stream.
        let mut cut = 0;
        let mut next = 0;
        'scan: loop {
            let page = self.stream.read_range(next, Some(last_removable), FORGET_SCAN_PAGE)?;
            for event in &page {
                if event.at_ms >= older_than_ms {
                    break 'scan;
                }
                cut = event.seq;
            }
            match page.last() {
                Some(last) if page.len() == FORGET_SCAN_PAGE => next = last.seq + 1,
                _ => break,
            }
        }
        if cut == 0 {
            return Ok(0);
        }
        let keys = self.stream.shard.keys();
        let action = format!("delete events up to seq {cut} from {}", keys.events);
        let mut invocation = FORGET.prepare_invoke();
        invocation.key(&keys.events).key(&keys.fence).key(&keys.snapshot).arg(self.token.to_string()).arg(cut);
        let (outcome, number, _): (String, i64, i64) = self.stream.run(&action, |connection| invocation.invoke(connection))?;
        match outcome.as_str() {
            "ok" => {
                debug!(up_to_seq = cut, removed = number, "redis journal events deleted");
                Ok(u64::try_from(number).unwrap_or_default())
            }
            "fenced" => Err(self.fenced(number)),
            other => Err(self.stream.shard.unexpected(&action, other).into()),
        }
    }
}

impl StreamAccess {
    fn open(shard: RedisShard) -> Result<Self, JournalError> {
        let connection = shard.connect(COMMAND_TIMEOUT)?;
        Ok(StreamAccess { shard, connection: RefCell::new(Some(connection)) })
    }

    /// Runs `command` on the connection, opening it first if an earlier
    /// failure dropped it.
    fn run<T>(
        &self,
        action: &str,
        command: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisStoreError> {
        let mut slot = self.connection.borrow_mut();
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => slot.insert(self.shard.connect(COMMAND_TIMEOUT)?),
        };
        match command(connection) {
            Ok(value) => Ok(value),
            Err(cause) => {
                let error = self.shard.failure(action, &cause);
                // After a timeout the answer may still arrive and be read as
                // the answer to the next command: never reuse the connection.
                if error.is_unreachable() || !connection.is_open() {
                    *slot = None;
                }
                Err(error)
            }
        }
    }

    fn last_seq(&self) -> Result<u64, JournalError> {
        let events = &self.shard.keys().events;
        let action = format!("read the last seq of {events}");
        let reply: Value = self.run(&action, |connection| {
            redis::cmd("XREVRANGE").arg(events).arg("+").arg("-").arg("COUNT").arg(1).query(connection)
        })?;
        let entries = self.decode_entries(reply)?;
        match entries.last() {
            Some(event) => Ok(event.seq),
            // Retention deleted every event up to the snapshot, if any.
            None => Ok(self.snapshot_seq()?.unwrap_or(0)),
        }
    }

    fn first_seq(&self) -> Result<Option<u64>, JournalError> {
        Ok(self.read_from(0, 1)?.first().map(|event| event.seq))
    }

    /// The seq of the latest snapshot, without reading its state.
    fn snapshot_seq(&self) -> Result<Option<u64>, JournalError> {
        let snapshot = &self.shard.keys().snapshot;
        let action = format!("read the seq of the snapshot {snapshot}");
        let seq: Option<String> =
            self.run(&action, |connection| redis::cmd("HGET").arg(snapshot).arg("seq").query(connection))?;
        seq.map(|seq| {
            seq.parse::<u64>().map_err(|_| JournalError::Corrupt {
                what: format!("snapshot {snapshot} on redis at {}", self.shard.url()),
                detail: format!("its seq {seq:?} is not a number"),
            })
        })
        .transpose()
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        self.read_range(from_seq, None, limit)
    }

    /// Events with seq >= from_seq, and <= until if given, in order, at most `limit`.
    fn read_range(&self, from_seq: u64, until: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let events = &self.shard.keys().events;
        let start = if from_seq == 0 { "-".to_owned() } else { format!("{from_seq}-0") };
        let end = until.map_or_else(|| "+".to_owned(), |until| format!("{until}-0"));
        let action = format!("read {events} from seq {from_seq}");
        let reply: Value = self.run(&action, |connection| {
            redis::cmd("XRANGE")
                .arg(events)
                .arg(&start)
                .arg(&end)
                .arg("COUNT")
                // Redis takes a signed 64-bit count.
                .arg(limit.min(i64::MAX as usize))
                .query(connection)
        })?;
        self.decode_entries(reply)
    }

    fn load_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let snapshot = &self.shard.keys().snapshot;
        let action = format!("read the snapshot {snapshot}");
        let (seq, state): (Option<String>, Option<Vec<u8>>) =
            self.run(&action, |connection| redis::cmd("HMGET").arg(snapshot).arg("seq").arg("state").query(connection))?;
        let corrupt = |detail: String| JournalError::Corrupt {
            what: format!("snapshot {snapshot} on redis at {}", self.shard.url()),
            detail,
        };
        match (seq, state) {
            (None, None) => Ok(None),
            (Some(seq), Some(state)) => {
                let seq = seq.parse::<u64>().map_err(|_| corrupt(format!("its seq {seq:?} is not a number")))?;
                Ok(Some((seq, state)))
            }
            _ => Err(corrupt("it has a seq or a state but not both".to_owned())),
        }
    }

    /// Decodes an `XRANGE` / `XREVRANGE` reply, in the order given.
    fn decode_entries(&self, reply: Value) -> Result<Vec<StoredEvent>, JournalError> {
        let events = &self.shard.keys().events;
        let corrupt =
            |detail: String| JournalError::Corrupt { what: format!("stream {events} on redis at {}", self.shard.url()), detail };
        let Value::Array(entries) = reply else {
            return Err(corrupt(format!("a range read answered {reply:?}")));
        };
        entries
            .into_iter()
            .map(|entry| {
                let Value::Array(mut parts) = entry else {
                    return Err(corrupt(format!("an entry is {entry:?}")));
                };
                if parts.len() != 2 {
                    return Err(corrupt(format!("an entry has {} parts", parts.len())));
                }
                let fields = parts.pop().unwrap_or_default();
                let id = reply_text(&parts[0]).unwrap_or_default();
                decode_event(&id, fields).map_err(|detail| corrupt(format!("entry {id}: {detail}")))
            })
            .collect()
    }
}

/// The stream fields of an event; absent optional ids are left out.
fn stream_fields(event: &StoredEvent) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("at_ms", event.at_ms.to_string()),
        // For people reading the stream with redis-cli; not read back.
        ("at", iso8601_utc_from_ms(event.at_ms)),
        ("actor", event.actor.clone()),
        ("kind", event.kind.clone()),
    ];
    for (name, value) in [("incident_id", &event.incident_id), ("agent_id", &event.agent_id), ("area_id", &event.area_id)] {
        if let Some(value) = value {
            fields.push((name, value.clone()));
        }
    }
    fields.push(("body", event.body.clone()));
    fields
}

fn decode_event(id: &str, fields: Value) -> Result<StoredEvent, String> {
    let seq = id.strip_suffix("-0").and_then(|seq| seq.parse::<u64>().ok()).ok_or_else(|| "its id is not <seq>-0".to_owned())?;
    let Value::Array(flat) = fields else {
        return Err(format!("its fields are {fields:?}"));
    };
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        let name = reply_text(&name).ok_or("a field name is not text")?;
        let value = match value {
            Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| format!("field {name} is not UTF-8"))?,
            other => reply_text(&other).ok_or_else(|| format!("field {name} is not text"))?,
        };
        by_name.insert(name, value);
    }
    let mut required = |name: &str| by_name.remove(name).ok_or_else(|| format!("field {name} is missing"));
    let at_ms_text = required("at_ms")?;
    let at_ms = at_ms_text.parse::<i64>().map_err(|_| format!("at_ms {at_ms_text:?} is not a number"))?;
    let actor = required("actor")?;
    let kind = required("kind")?;
    let body = required("body")?;
    Ok(StoredEvent {
        seq,
        at_ms,
        actor,
        kind,
        incident_id: by_name.remove("incident_id"),
        agent_id: by_name.remove("agent_id"),
        area_id: by_name.remove("area_id"),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::conformance::{self, event, events};
    use crate::lease::{Acquisition, LeaseConfig, ShardLease};
    use crate::shard::ShardId;
    use pingji_test_redis::RedisServer;

    fn start_redis() -> (tempfile::TempDir, RedisServer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = RedisServer::start(dir.path()).expect("start redis-server");
        (dir, server)
    }

    fn shard(server: &RedisServer, id: &str) -> RedisShard {
        RedisShard::new(&server.url(), ShardId::new(id).expect("shard id")).expect("redis url")
    }

    /// Takes the shard's lease as `owner` and returns its token.
    fn take_over(shard: &RedisShard, owner: &str) -> u64 {
        let lease = ShardLease::new(shard.clone(), owner, "127.0.0.1:1", LeaseConfig::default());
        match lease.try_acquire().expect("acquire") {
            Acquisition::Acquired { token } => token,
            Acquisition::Held(holder) => panic!("the lease is held by {holder:?}"),
        }
    }

    /// Makes `shard`'s lease free (as if its holder's ttl ran out), keeping
    /// the fence counter.
    fn expire_lease(shard: &RedisShard) {
        let mut connection = shard.connect(COMMAND_TIMEOUT).expect("connect");
        redis::cmd("DEL").arg(&shard.keys().lease).exec(&mut connection).expect("del lease");
    }

    /// On a Redis Cluster: the shared checks for two shards whose slots
    /// are on different primaries (the append, snapshot and retention
    /// scripts touch three keys of one slot), and the fence still stops a
    /// process whose lease was taken over.
    #[test]
    fn redis_journal_on_a_cluster_passes_the_shared_checks_and_fences() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = pingji_test_redis::RedisCluster::start(dir.path()).expect("start a redis cluster");
        let primaries: Vec<usize> = ["d1", "d2"]
            .iter()
            .map(|id| {
                let shard = RedisShard::new(&cluster.url(), ShardId::new(id).expect("shard id")).expect("cluster url");
                assert!(shard.is_cluster());
                let token = take_over(&shard, "test");
                let mut journal = RedisJournal::open(shard.clone(), token).expect("open");
                conformance::run_all(&mut journal);
                cluster.primary_for(&shard.keys().events).expect("primary")
            })
            .collect();
        assert_ne!(primaries[0], primaries[1], "d1 and d2 hash to slots of different primaries");

        let shard = RedisShard::new(&cluster.url(), ShardId::new("d3").expect("shard id")).expect("cluster url");
        let token = take_over(&shard, "first");
        let mut first = RedisJournal::open(shard.clone(), token).expect("open");
        first.append(&events(1..=2)).expect("append");
        expire_lease(&shard);
        let newer = take_over(&shard, "second");
        assert!(newer > token);
        let refused = first.append(&[event(3)]).expect_err("a stale owner is fenced on a cluster too");
        assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
        let mut second = RedisJournal::open(shard, newer).expect("open");
        second.append(&[event(3)]).expect("the new owner appends");
    }

    #[test]
    fn redis_journal_passes_the_shared_checks() {
        let (_dir, server) = start_redis();
        let shard = shard(&server, "city");
        let token = take_over(&shard, "test");
        let mut journal = RedisJournal::open(shard, token).expect("open");
        conformance::run_all(&mut journal);
    }

    #[test]
    fn events_are_stream_entries_with_the_seq_as_id() {
        let (_dir, server) = start_redis();
        let shard = shard(&server, "d7");
        let token = take_over(&shard, "test");
        let mut journal = RedisJournal::open(shard.clone(), token).expect("open");
        journal.append(&events(1..=2)).expect("append");

        let mut connection = shard.connect(COMMAND_TIMEOUT).expect("connect");
        let ids: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg("pingji:{d7}:events").arg("-").arg("+").query(&mut connection).expect("xrange");
        assert_eq!(ids.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["1-0", "2-0"]);
        let (_, first) = &ids[0];
        assert_eq!(first.get("actor").map(String::as_str), Some("dispatcher"));
        assert_eq!(first.get("at").map(String::as_str), Some("2026-03-15T08:30:45.250Z"));
        assert!(!first.contains_key("incident_id"), "None is left out: {first:?}");
    }

    #[test]
    fn a_writer_whose_token_is_stale_is_fenced_and_writes_nothing() {
        let (_dir, server) = start_redis();
        let shard = shard(&server, "city");
        let old_token = take_over(&shard, "old");
        let mut old_owner = RedisJournal::open(shard.clone(), old_token).expect("open");
        old_owner.append(&events(1..=3)).expect("append while owning");
        old_owner.save_snapshot(3, b"three").expect("snapshot while owning");

        // The old owner is paused past its ttl; another process takes over.
        expire_lease(&shard);
        let new_token = take_over(&shard, "new");
        assert!(new_token > old_token);

        let error = old_owner.append(&events(4..=5)).expect_err("a stale token cannot append");
        assert!(error.is_fenced(), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "another dispatcher took over shard city with token {new_token}; \
                 this one (token {old_token}) must stop"
            )
        );
        let snapshot_error = old_owner.save_snapshot(3, b"stale state").expect_err("a stale token cannot save a snapshot");
        assert!(snapshot_error.is_fenced(), "{snapshot_error}");
        let forget_error = old_owner.forget_before(3, i64::MAX).expect_err("a stale token cannot delete events");
        assert!(forget_error.is_fenced(), "{forget_error}");

        let mut new_owner = RedisJournal::open(shard.clone(), new_token).expect("open");
        assert_eq!(new_owner.last_seq().expect("last_seq"), 3);
        assert_eq!(new_owner.load_snapshot().expect("load"), Some((3, b"three".to_vec())));
        // The new owner continues where the stream ends.
        new_owner.append(&[event(4)]).expect("the new owner appends");
        assert_eq!(new_owner.read_from(1, 10).expect("read"), events(1..=4));
        // And the old one stays fenced, even with a batch that would continue.
        assert!(old_owner.append(&[event(5)]).expect_err("fenced").is_fenced());
        assert_eq!(new_owner.last_seq().expect("last_seq"), 4);
    }

    #[test]
    fn deleted_events_leave_the_stream_and_a_new_owner_goes_on_from_the_snapshot() {
        let (_dir, server) = start_redis();
        let shard = shard(&server, "city");
        let old_token = take_over(&shard, "old");
        let mut old_owner = RedisJournal::open(shard.clone(), old_token).expect("open");
        old_owner.append(&events(1..=4)).expect("append");
        old_owner.save_snapshot(4, b"four").expect("snapshot");
        assert_eq!(old_owner.forget_before(u64::MAX, i64::MAX).expect("forget"), 4);

        let mut connection = shard.connect(COMMAND_TIMEOUT).expect("connect");
        let length: u64 = redis::cmd("XLEN").arg(&shard.keys().events).query(&mut connection).expect("xlen");
        assert_eq!(length, 0, "the entries are gone from redis");

        expire_lease(&shard);
        let mut new_owner = RedisJournal::open(shard.clone(), take_over(&shard, "new")).expect("open");
        assert_eq!(new_owner.last_seq().expect("last_seq"), 4);
        new_owner.append(&[event(5)]).expect("append 5 after everything was deleted");
        let reader = RedisReader::open(shard).expect("reader");
        assert_eq!(reader.first_seq().expect("first_seq"), Some(5));
        assert_eq!(reader.read_from(1, 10).expect("read"), vec![event(5)]);
    }

    #[test]
    fn shards_do_not_see_each_other() {
        let (_dir, server) = start_redis();
        let first = shard(&server, "d1");
        let second = shard(&server, "d2");
        let mut first_journal = RedisJournal::open(first.clone(), take_over(&first, "a")).expect("open");
        let second_journal = RedisJournal::open(second.clone(), take_over(&second, "b")).expect("open");
        first_journal.append(&events(1..=2)).expect("append");
        assert_eq!(second_journal.last_seq().expect("last_seq"), 0);
        let reader = RedisReader::open(first).expect("reader");
        assert_eq!(reader.read_from(0, 10).expect("read"), events(1..=2));
    }

    #[test]
    fn redis_going_away_is_reported_as_unreachable_and_the_journal_reconnects() {
        let (dir, mut server) = start_redis();
        let shard = shard(&server, "city");
        let token = take_over(&shard, "owner");
        let mut journal = RedisJournal::open(shard, token).expect("open");
        journal.append(&events(1..=2)).expect("append");

        server.kill();
        let error = journal.append(&events(3..=3)).expect_err("redis is down");
        assert!(error.is_unreachable(), "{error}");
        let message = error.to_string();
        assert!(message.starts_with(&format!("redis at {} is unreachable: ", server.url())), "{message}");
        assert!(journal.last_seq().expect_err("still down").is_unreachable());

        // A Redis without persistence comes back empty, so this is only
        // about the connection: the next call opens a new one.
        server.restart().expect("restart redis");
        assert_eq!(journal.last_seq().expect("reconnected"), 0);
        drop(dir);
    }
}
