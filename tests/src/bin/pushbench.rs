//! Web Push throughput: notices per second encrypted (RFC 8291, a fresh
//! ECDH key and salt each), signed (VAPID, the token reused per push
//! service) and posted to a push service on loopback, which checks every
//! token's signature and decrypts every payload as a browser would.
//!
//! `cargo run --release -p pingji-tests --bin pushbench -- [PEOPLE] [NOTICES] [CONCURRENT]`
//!
//! It registers PEOPLE people with one subscription each (in memory), then
//! sends NOTICES offer notices round-robin to them, CONCURRENT at a time,
//! through `Pusher::send` (the entry point the escalation ladder calls).
//! The push service runs in this process: its checks share the cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingji_dispatcher::push::{MemoryPushStore, PushConfig, PushNotice, PushOutcome, Pusher, ece};
use pingji_tests::push_service::PushService;
use tokio::task::JoinSet;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let people: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(200);
    let notices: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(5_000);
    let concurrent: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(16);

    // The encryption alone, on one core.
    let push = PushService::start().await?;
    let probe = push.subscribe()?;
    let (ua_public, auth) = {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        (URL_SAFE_NO_PAD.decode(&probe.p256dh)?, URL_SAFE_NO_PAD.decode(&probe.auth)?)
    };
    let payload = PushNotice::offer("of_000001", "inc_000001", "积水", 0).payload();
    let random = ring::rand::SystemRandom::new();
    let sealing = Instant::now();
    let sealed_count = 5_000;
    for _ in 0..sealed_count {
        ece::seal(&payload, &ua_public, &auth, &random).map_err(anyhow::Error::msg)?;
    }
    let seal_s = sealing.elapsed().as_secs_f64();

    let config = PushConfig { allow_loopback_http: true, timeout: Duration::from_secs(10), ..PushConfig::default() };
    let pusher = Pusher::open(Box::new(MemoryPushStore::default()), config, Default::default()).await?;
    for person in 0..people {
        let subscription = push.subscribe()?;
        pusher.register(&format!("p{person:05}"), &subscription.endpoint, &subscription.p256dh, &subscription.auth).await?;
    }
    let started = Instant::now();
    let mut sending = JoinSet::new();
    let mut latencies = Vec::with_capacity(notices);
    let mut failed = 0usize;
    let pusher = Arc::new(pusher);
    for index in 0..notices {
        while sending.len() >= concurrent {
            collect(sending.join_next().await, &mut latencies, &mut failed);
        }
        let pusher = pusher.clone();
        sending.spawn(async move {
            let notice = PushNotice::offer(&format!("of_{index:06}"), "inc_000001", "积水", 0);
            let sent = Instant::now();
            let outcome = pusher.send(&format!("p{:05}", index % people), &notice).await;
            (outcome.ok(), sent.elapsed())
        });
    }
    while let Some(done) = sending.join_next().await {
        collect(Some(done), &mut latencies, &mut failed);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile =
        |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied();
    let decrypted = push.pushed().iter().filter(|pushed| pushed.payload.is_ok() && pushed.vapid.is_ok()).count();
    println!("pushbench: {people} people, {notices} notices, {concurrent} at a time");
    println!("  encryption alone: {:.0} notices/s on one core ({sealed_count} in {seal_s:.2} s)", sealed_count as f64 / seal_s);
    println!(
        "  encrypted, signed, posted and decrypted: {:.0} notices/s ({} in {elapsed:.2} s), {failed} failed, {decrypted} verified and decrypted by the push service",
        latencies.len() as f64 / elapsed,
        latencies.len()
    );
    println!(
        "  one send: p50 {:.1} ms, p99 {:.1} ms",
        percentile(0.5).unwrap_or_default().as_secs_f64() * 1000.0,
        percentile(0.99).unwrap_or_default().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn collect(
    done: Option<Result<(Option<PushOutcome>, Duration), tokio::task::JoinError>>,
    latencies: &mut Vec<Duration>,
    failed: &mut usize,
) {
    match done {
        Some(Ok((Some(PushOutcome::Sent { .. }), took))) => latencies.push(took),
        _ => *failed += 1,
    }
}
