//! People's live locations, written to Redis in batches so that a process
//! taking a shard over can warm its in-memory index from them instead of
//! waiting for every phone to report again.
//!
//! Locations are not part of the journal (they change every few seconds and
//! only the latest matters), and nearest-person search stays in the
//! in-memory index; Redis holds a copy: the hash `pingji:{<shard>}:locations`,
//! agent id → `"lon,lat,at_ms"`.
//!
//! [`LocationWriter::record`] never blocks and never waits for Redis: it puts
//! the update on a bounded queue. A writer thread keeps the latest update per
//! person and writes them all with one `HSET` (one round trip) when
//! [`LocationBatching::max_pending`] people are pending or
//! [`LocationBatching::max_delay`] after the oldest pending update, whichever
//! comes first. When the queue is full (Redis slower than the city), updates
//! are dropped and counted: the person's next report replaces them anyway.
//! When Redis is unreachable a batch is dropped with a warning, and writing
//! resumes when it is back.
//!
//! The writes are not fenced: a deposed owner may write a few stale
//! positions before it stops, each stamped with its time (`at_ms`), which a
//! reader can compare.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::shard::{COMMAND_TIMEOUT, RedisConnection, RedisShard, RedisStoreError};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::spatial::Position;

/// When to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationBatching {
    /// Write as soon as this many people have a pending update.
    pub max_pending: usize,
    /// Write at the latest this long after the oldest pending update.
    pub max_delay: Duration,
    /// Updates queued for the writer thread before new ones are dropped.
    pub queue: usize,
}

impl Default for LocationBatching {
    fn default() -> Self {
        LocationBatching { max_pending: 500, max_delay: Duration::from_millis(50), queue: 65_536 }
    }
}

/// One person's last known location, as read back from Redis.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredLocation {
    pub agent: AgentId,
    pub at: Position,
    /// When the person reported it.
    pub reported_at: Millis,
}

struct Update {
    agent: AgentId,
    /// `None`: the person's session ended; their entry is deleted.
    at: Option<(Position, Millis)>,
}

/// What the writer thread did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocationWriterStats {
    /// Updates taken from the queue.
    pub received: u64,
    /// Locations written (after keeping only the latest per person).
    pub written: u64,
    /// Round trips to Redis that wrote (one `HSET` each).
    pub flushes: u64,
    /// Locations lost because Redis failed.
    pub failed: u64,
    /// Updates dropped because the queue was full.
    pub dropped: u64,
}

/// The sending side, for the runtime. Cheap to clone; the writer thread
/// stops (after a last write) when every clone is dropped.
#[derive(Clone)]
pub struct LocationWriter {
    updates: SyncSender<Update>,
    dropped: Arc<AtomicU64>,
}

/// The writer thread; join it after dropping every [`LocationWriter`].
pub struct LocationFlusher {
    thread: JoinHandle<LocationWriterStats>,
}

impl LocationWriter {
    /// Starts the writer thread for `shard`.
    pub fn start(shard: RedisShard, batching: LocationBatching) -> std::io::Result<(LocationWriter, LocationFlusher)> {
        let (updates, queue) = std::sync::mpsc::sync_channel(batching.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut flusher = Flusher {
            shard,
            batching,
            connection: None,
            failing: false,
            stats: LocationWriterStats::default(),
            dropped: dropped.clone(),
        };
        let thread = std::thread::Builder::new().name("location-writer".to_owned()).spawn(move || flusher.run(queue))?;
        Ok((LocationWriter { updates, dropped }, LocationFlusher { thread }))
    }

    /// Queues `agent`'s location; never blocks. False when it was dropped
    /// because the queue is full.
    pub fn record(&self, agent: &AgentId, at: Position, reported_at: Millis) -> bool {
        self.send(Update { agent: agent.clone(), at: Some((at, reported_at)) })
    }

    /// Queues the deletion of `agent`'s location (their session ended: the
    /// location is kept no longer than dispatch needs it); never blocks.
    pub fn forget(&self, agent: &AgentId) -> bool {
        self.send(Update { agent: agent.clone(), at: None })
    }

    fn send(&self, update: Update) -> bool {
        match self.updates.try_send(update) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

impl LocationFlusher {
    /// Waits for the thread to write what is pending and stop, which it does
    /// once every [`LocationWriter`] is dropped. Blocking.
    pub fn join(self) -> LocationWriterStats {
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

struct Flusher {
    shard: RedisShard,
    batching: LocationBatching,
    connection: Option<RedisConnection>,
    /// The last write failed: warn once per outage, not per batch.
    failing: bool,
    stats: LocationWriterStats,
    dropped: Arc<AtomicU64>,
}

impl Flusher {
    fn run(&mut self, queue: Receiver<Update>) -> LocationWriterStats {
        let mut pending: HashMap<AgentId, Option<String>> = HashMap::new();
        let mut oldest_pending: Option<Instant> = None;
        loop {
            let received = match oldest_pending {
                None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => {
                    let due = since + self.batching.max_delay;
                    queue.recv_timeout(due.saturating_duration_since(Instant::now()))
                }
            };
            match received {
                Ok(update) => {
                    self.take(&mut pending, update);
                    oldest_pending.get_or_insert_with(Instant::now);
                    // Take what is already queued without waiting.
                    while pending.len() < self.batching.max_pending {
                        let Ok(update) = queue.try_recv() else { break };
                        self.take(&mut pending, update);
                    }
                    let due = oldest_pending.is_some_and(|since| since.elapsed() >= self.batching.max_delay);
                    if pending.len() >= self.batching.max_pending || due {
                        self.flush(&mut pending);
                        oldest_pending = None;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush(&mut pending);
                    oldest_pending = None;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush(&mut pending);
                    break;
                }
            }
        }
        self.stats.dropped = self.dropped.load(Ordering::Relaxed);
        info!(
            received = self.stats.received,
            written = self.stats.written,
            flushes = self.stats.flushes,
            failed = self.stats.failed,
            dropped = self.stats.dropped,
            "location writer stopped"
        );
        self.stats
    }

    fn take(&mut self, pending: &mut HashMap<AgentId, Option<String>>, update: Update) {
        self.stats.received += 1;
        let value = update.at.map(|(at, reported_at)| format!("{},{},{}", at.lon, at.lat, reported_at.0));
        pending.insert(update.agent, value);
    }

    /// One round trip: an `HSET` of the latest locations and an `HDEL` of
    /// the people whose sessions ended, pipelined.
    fn flush(&mut self, pending: &mut HashMap<AgentId, Option<String>>) {
        if pending.is_empty() {
            return;
        }
        let count = pending.len() as u64;
        let key = &self.shard.keys().locations;
        let (mut set, mut delete) = (redis::cmd("HSET"), redis::cmd("HDEL"));
        set.arg(key);
        delete.arg(key);
        let (mut sets, mut deletes) = (0, 0);
        for (agent, value) in pending.drain() {
            match value {
                Some(value) => {
                    set.arg(agent.as_str()).arg(value);
                    sets += 1;
                }
                None => {
                    delete.arg(agent.as_str());
                    deletes += 1;
                }
            }
        }
        let mut pipeline = redis::pipe();
        if sets > 0 {
            pipeline.add_command(set).ignore();
        }
        if deletes > 0 {
            pipeline.add_command(delete).ignore();
        }
        match self.write(&pipeline) {
            Ok(()) => {
                if self.failing {
                    info!(redis = %self.shard.url(), "writing live locations to redis again");
                    self.failing = false;
                }
                self.stats.written += count;
                self.stats.flushes += 1;
            }
            Err(error) => {
                if !self.failing {
                    warn!(%error, "cannot write live locations to redis; dropping them until it is back");
                    self.failing = true;
                }
                self.stats.failed += count;
            }
        }
    }

    fn write(&mut self, command: &redis::Pipeline) -> Result<(), RedisStoreError> {
        let action = "write live locations";
        let connection = match self.connection.as_mut() {
            Some(connection) => connection,
            None => self.connection.insert(self.shard.connect(COMMAND_TIMEOUT)?),
        };
        command.exec(connection).map_err(|cause| {
            // Never reuse a connection whose answer may still be on its way.
            self.connection = None;
            self.shard.failure(action, &cause)
        })
    }
}

/// Reads every stored location of the shard, for a new owner to warm its
/// index from. Blocking. Entries that cannot be read are skipped (they are a
/// cache, not a record).
pub fn read_locations(shard: &RedisShard) -> Result<Vec<StoredLocation>, RedisStoreError> {
    let action = "read live locations";
    let mut connection = shard.connect(COMMAND_TIMEOUT)?;
    let entries: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&shard.keys().locations)
        .query(&mut connection)
        .map_err(|cause| shard.failure(action, &cause))?;
    let mut locations: Vec<StoredLocation> =
        entries.into_iter().filter_map(|(agent, value)| parse_location(agent, &value)).collect();
    locations.sort_by(|a, b| a.agent.cmp(&b.agent));
    Ok(locations)
}

fn parse_location(agent: String, value: &str) -> Option<StoredLocation> {
    let mut parts = value.split(',');
    let lon = parts.next()?.parse::<f64>().ok()?;
    let lat = parts.next()?.parse::<f64>().ok()?;
    let reported_at = parts.next()?.parse::<i64>().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(StoredLocation { agent: AgentId::new(agent), at: Position { lon, lat }, reported_at: Millis(reported_at) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::ShardId;
    use pingji_test_redis::RedisServer;

    fn position(lon: f64, lat: f64) -> Position {
        Position { lon, lat }
    }

    #[test]
    fn the_latest_location_of_each_person_is_written_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = RedisServer::start(dir.path()).expect("redis-server");
        let shard = RedisShard::new(&server.url(), ShardId::default()).expect("url");
        let (writer, flusher) = LocationWriter::start(shard.clone(), LocationBatching::default()).expect("start");
        let alice = AgentId::new("alice");
        let bob = AgentId::new("bob");
        assert!(writer.record(&alice, position(121.1, 31.1), Millis(1_000)));
        assert!(writer.record(&bob, position(121.2, 31.2), Millis(1_001)));
        assert!(writer.record(&alice, position(121.123_456_789, 31.987_654_321), Millis(2_000)));
        // Carol's session ended: her location is not kept.
        let carol = AgentId::new("carol");
        assert!(writer.record(&carol, position(121.3, 31.3), Millis(1_002)));
        assert!(writer.forget(&carol));
        drop(writer);
        let stats = flusher.join();
        assert_eq!(stats.received, 5);
        assert!(stats.flushes >= 1 && stats.written >= 2, "{stats:?}");
        assert_eq!((stats.failed, stats.dropped), (0, 0));

        let stored = read_locations(&shard).expect("read");
        assert_eq!(
            stored,
            vec![
                StoredLocation { agent: alice, at: position(121.123_456_789, 31.987_654_321), reported_at: Millis(2_000) },
                StoredLocation { agent: bob, at: position(121.2, 31.2), reported_at: Millis(1_001) },
            ]
        );
    }

    #[test]
    fn many_updates_take_few_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = RedisServer::start(dir.path()).expect("redis-server");
        let shard = RedisShard::new(&server.url(), ShardId::default()).expect("url");
        let (writer, flusher) = LocationWriter::start(shard.clone(), LocationBatching::default()).expect("start");
        let people: Vec<AgentId> = (0..2_000).map(|n| AgentId::new(format!("p{n:05}"))).collect();
        for round in 0..5 {
            for (index, person) in people.iter().enumerate() {
                let at = position(121.0 + index as f64 * 1e-5, 31.0 + f64::from(round) * 1e-5);
                while !writer.record(person, at, Millis(i64::from(round))) {
                    std::thread::yield_now();
                }
            }
        }
        drop(writer);
        let stats = flusher.join();
        assert_eq!(stats.received, 10_000);
        assert!(stats.flushes <= 10_000 / 500 + 5, "{} round trips for 10 000 updates: {stats:?}", stats.flushes);
        assert_eq!(read_locations(&shard).expect("read").len(), 2_000);
    }

    #[test]
    fn redis_down_drops_batches_without_blocking_the_caller() {
        let shard = RedisShard::new("redis://127.0.0.1:1", ShardId::default()).expect("url");
        let (writer, flusher) = LocationWriter::start(shard, LocationBatching::default()).expect("start");
        for n in 0..1_000 {
            writer.record(&AgentId::new(format!("p{n}")), position(121.0, 31.0), Millis(n));
        }
        drop(writer);
        let stats = flusher.join();
        assert_eq!(stats.written, 0);
        assert_eq!(stats.failed + stats.dropped, 1_000, "{stats:?}");
    }

    #[test]
    fn unreadable_entries_are_skipped() {
        assert!(parse_location("p1".into(), "121.5,31.2,1000").is_some());
        for bad in ["", "121.5", "121.5,31.2", "a,b,c", "1,2,3,4"] {
            assert!(parse_location("p1".into(), bad).is_none(), "{bad}");
        }
    }
}
