//! Live locations to Redis: the batched [`LocationWriter`] against one round
//! trip per update, on a real `redis-server` started on a free port.
//!
//! Run with `cargo bench -p pingji-dispatcher --bench redis_locations`
//! (release build; needs `redis-server`). Prints, for each way of writing,
//! updates per second end to end (until Redis holds them all), round trips,
//! and Redis's own CPU time per update from `INFO commandstats`. Asserts
//! nothing about speed.

use std::time::{Duration, Instant};

use pingji_dispatcher::locations::{LocationBatching, LocationWriter, read_locations};
use pingji_dispatcher::shard::{COMMAND_TIMEOUT, RedisShard, ShardId};
use pingji_engine::ids::{AgentId, Millis};
use pingji_engine::spatial::Position;
use pingji_test_redis::RedisServer;

/// People reporting, and updates sent in the batched run.
const PEOPLE: usize = 50_000;
const BATCHED_UPDATES: usize = 500_000;
/// Updates sent one round trip each (slower: fewer).
const SINGLE_UPDATES: usize = 20_000;

/// Redis's count of HSET calls and the microseconds it spent in them.
struct HsetStats {
    calls: u64,
    usec: u64,
}

fn hset_stats(connection: &mut redis::Connection) -> HsetStats {
    let info: String = redis::cmd("INFO").arg("commandstats").query(connection).expect("info commandstats");
    let line = info.lines().find(|line| line.starts_with("cmdstat_hset:")).unwrap_or("cmdstat_hset:calls=0,usec=0");
    let field = |name: &str| {
        line.split([':', ','])
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    HsetStats { calls: field("calls"), usec: field("usec") }
}

fn reset_stats(connection: &mut redis::Connection) {
    redis::cmd("CONFIG").arg("RESETSTAT").exec(connection).expect("config resetstat");
    redis::cmd("DEL").arg("pingji:{city}:locations").exec(connection).expect("del");
}

fn position(n: usize) -> Position {
    Position { lon: 120.1 + (n % 1_000) as f64 * 1e-4, lat: 30.2 + (n / 1_000 % 1_000) as f64 * 1e-4 }
}

fn report(name: &str, updates: usize, elapsed: Duration, redis: &HsetStats) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{name:<28} {updates:>8} updates in {seconds:>6.2} s = {:>9.0} updates/s; \
         {:>6} round trips ({:>6.1} updates each); redis cpu {:.2} µs/update ({:.1} µs/call)",
        updates as f64 / seconds,
        redis.calls,
        updates as f64 / redis.calls.max(1) as f64,
        redis.usec as f64 / updates as f64,
        redis.usec as f64 / redis.calls.max(1) as f64,
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = RedisServer::start(dir.path()).expect("start redis-server (is it installed?)");
    let shard = RedisShard::new(&server.url(), ShardId::default()).expect("url");
    let mut connection = shard.connect(COMMAND_TIMEOUT).expect("connect");
    let people: Vec<AgentId> = (0..PEOPLE).map(|n| AgentId::new(format!("p{n:06}"))).collect();
    println!(
        "{PEOPLE} people; batching: flush at {} pending or after {:?}",
        LocationBatching::default().max_pending,
        LocationBatching::default().max_delay
    );

    // Batched: the writer the runtime uses. The producer retries when the
    // queue is full, to measure what the writer sustains rather than what
    // it drops.
    reset_stats(&mut connection);
    let (writer, flusher) = LocationWriter::start(shard.clone(), LocationBatching::default()).expect("start writer");
    let started = Instant::now();
    let mut full_queue = 0u64;
    let mut record_time = Duration::ZERO;
    for n in 0..BATCHED_UPDATES {
        let person = &people[n % PEOPLE];
        let at = position(n);
        loop {
            let before = Instant::now();
            let accepted = writer.record(person, at, Millis(n as i64));
            record_time += before.elapsed();
            if accepted {
                break;
            }
            full_queue += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    drop(writer);
    let stats = flusher.join();
    let elapsed = started.elapsed();
    report("batched (LocationWriter)", BATCHED_UPDATES, elapsed, &hset_stats(&mut connection));
    println!(
        "{:<28} {} written after keeping the latest per person, {} flushes; \
         record() {:.0} ns on average; queue full {full_queue} times",
        "",
        stats.written,
        stats.flushes,
        record_time.as_nanos() as f64 / BATCHED_UPDATES as f64
    );
    let stored = read_locations(&shard).expect("read back");
    assert_eq!(stored.len(), PEOPLE, "every person's last location is stored");
    let read_started = Instant::now();
    let warm = read_locations(&shard).expect("read back");
    println!("{:<28} read back {} locations for a warm-up in {} ms", "", warm.len(), read_started.elapsed().as_millis());

    // One round trip per update, for comparison.
    reset_stats(&mut connection);
    let started = Instant::now();
    for n in 0..SINGLE_UPDATES {
        let at = position(n);
        redis::cmd("HSET")
            .arg("pingji:{city}:locations")
            .arg(people[n % PEOPLE].as_str())
            .arg(format!("{},{},{n}", at.lon, at.lat))
            .exec(&mut connection)
            .expect("hset");
    }
    let elapsed = started.elapsed();
    report("one round trip per update", SINGLE_UPDATES, elapsed, &hset_stats(&mut connection));
}
