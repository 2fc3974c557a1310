//! Serving a shard kept in Redis, which several dispatcher processes share
//! and one at a time owns.
//!
//! The process starts as a standby ([`super::standby`]) and polls the
//! shard's lease. Once it holds the lease it recovers the state (snapshot,
//! then the stream after it, as with SQLite), starts the runtime and serves,
//! while a keeper task renews the lease.
//!
//! Stepping down is fail-stop: when a renewal finds that another process
//! took the shard (this one was paused or cut off past its ttl), or a
//! journal write is fenced, the process stops serving at once and `run`
//! returns an error, so the binary exits non-zero and a supervisor starts it
//! again, as a standby. The fenced writes already guarantee that nothing it
//! tries lands; exiting also guarantees that nobody keeps talking to a
//! process that lost the shard. A clean shutdown releases the lease, so a
//! standby takes over at its next poll.
//!
//! Redis out of reach is not a reason to step down: the runtime refuses
//! writes and answers reads from memory, and the keeper goes on renewing;
//! when Redis answers again, either the lease is still this process's (or
//! nobody took it, and it is taken back) and writing resumes, or another
//! process took the shard meanwhile and this one steps down.
//!
//! The web port (the command map) is served by the first shard this
//! process owns, on the port it was given, from the moment it owns it: a
//! standby's web port accepts connections and answers them once it has
//! taken the shard over. Further shards are served on gRPC ports of their
//! own only; the map of a district shard shows the whole city through the
//! same routing as the console's calls.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::config::{Config, RedisStore};
use super::serving::OwnerGuard;
use super::sharding::Sharding;
use super::standby;
use crate::journal::{Journal, JournalError, RedisJournal};
use crate::lease::{Acquisition, Renewal, ShardLease};
use crate::locations::{LocationBatching, LocationWriter};
use crate::runtime::{self, SharedJournal};
use crate::shard::{RedisShard, ShardId};

/// How long the location writer gets to write what is pending at shutdown.
const LOCATIONS_DRAIN: Duration = Duration::from_secs(5);

pub(super) async fn run(
    config: Config,
    redis: RedisStore,
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let owner_id = owner_id();
    let lease_for = |shard: &ShardId, advertise: &str| -> anyhow::Result<Arc<ShardLease>> {
        let shard = RedisShard::new(&redis.url, shard.clone())?;
        Ok(Arc::new(ShardLease::new(shard, &owner_id, advertise, redis.lease)))
    };
    let leases = redis.shards.iter().map(|shard| lease_for(shard, &redis.advertise)).collect::<anyhow::Result<Vec<_>>>()?;
    let Some(first) = leases.first() else {
        anyhow::bail!("no shard to serve; give --shard (city, or districts such as d1,d2)");
    };
    let listener = listener.into_std()?;
    info!(
        redis = %first.shard().url(),
        shards = %redis.shards.iter().map(|shard| shard.as_str()).collect::<Vec<_>>().join(","),
        max_shards = redis.max_shards,
        owner_id,
        advertise = %redis.advertise,
        lease_ttl_ms = redis.lease.ttl.as_millis() as u64,
        "asking for the shard lease"
    );
    // Every shard this process serves stops on the process's shutdown, and
    // all of them when one fails (fail-stop, as with one shard).
    let (stop_all, stopping) = watch::channel(false);
    let mut process_shutdown = shutdown.clone();
    let forwarding = stop_all.clone();
    tokio::spawn(async move {
        let _ = process_shutdown.wait_for(|stop| *stop).await;
        let _ = forwarding.send(true);
    });
    let mut standing_by = stopping.clone();
    let standby_listener = listener.try_clone().context("cannot share the listening socket")?;
    let Some((lease, token)) = standby::serve_until_owner(&leases, standby_listener, &mut standing_by, &config).await? else {
        info!("dispatcher stopped while standing by");
        return Ok(());
    };
    let mut serving = tokio::task::JoinSet::new();
    serving.spawn(serve_shard(config.clone(), redis.url.clone(), lease.clone(), token, listener, web_listener, stopping.clone()));

    // The other shards: taken as they are free, each served on a port of
    // its own (clients are sent there as to another process).
    let mut others: Vec<ShardId> = redis.shards.iter().filter(|shard| *shard != lease.shard().id()).cloned().collect();
    let mut spare = Spare::bind(&redis.advertise)?;
    let mut polls = tokio::time::interval(redis.lease.renew_every);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failure = None;
    loop {
        tokio::select! {
            finished = serving.join_next() => {
                let Some(finished) = finished else { break };
                let result = finished.map_err(anyhow::Error::new).and_then(|result| result);
                if let Err(error) = result
                    && failure.is_none()
                {
                    // One shard stepped down: the others stop too.
                    let _ = stop_all.send(true);
                    failure = Some(error);
                }
            }
            _ = polls.tick(), if !*stopping.borrow() && !others.is_empty() && serving.len() < redis.max_shards => {
                let asking: Vec<Arc<ShardLease>> =
                    others.iter().map(|shard| lease_for(shard, &spare.advertise)).collect::<anyhow::Result<_>>()?;
                let taken = tokio::task::spawn_blocking(move || {
                    asking.into_iter().find_map(|lease| match lease.try_acquire() {
                        Ok(Acquisition::Acquired { token }) => Some((lease, token)),
                        _ => None,
                    })
                })
                .await?;
                if let Some((lease, token)) = taken {
                    others.retain(|shard| shard != lease.shard().id());
                    let listener = std::mem::replace(&mut spare, Spare::bind(&redis.advertise)?);
                    info!(shard = %lease.shard().id(), address = %listener.advertise, "serving one more shard, on a port of its own");
                    serving.spawn(serve_shard(config.clone(), redis.url.clone(), lease, token, listener.socket, None, stopping.clone()));
                }
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A listening socket kept ready for the next shard this process takes,
/// and the address clients reach it at.
struct Spare {
    socket: std::net::TcpListener,
    advertise: String,
}

impl Spare {
    /// Binds a free port on the host of `advertise` (`HOST:PORT`), or on
    /// every interface when that host is not this machine's.
    fn bind(advertise: &str) -> anyhow::Result<Spare> {
        let host = advertise.rsplit_once(':').map_or(advertise, |(host, _)| host);
        let socket = std::net::TcpListener::bind((host.trim_matches(['[', ']']), 0))
            .or_else(|_| std::net::TcpListener::bind(("0.0.0.0", 0)))
            .context("cannot listen on a port for another shard")?;
        socket.set_nonblocking(true)?;
        let port = socket.local_addr()?.port();
        Ok(Spare { socket, advertise: format!("{host}:{port}") })
    }
}

/// Owns and serves one shard, whose lease this process holds with `token`,
/// on `listener` (and the command map on `web_listener`) until `shutdown`;
/// an error when it must step down.
#[allow(clippy::too_many_arguments)]
async fn serve_shard(
    config: Config,
    url: String,
    lease: Arc<ShardLease>,
    token: u64,
    listener: std::net::TcpListener,
    web_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let shard = lease.shard().clone();
    let taken_at = Instant::now();
    info!(shard = %shard.id(), token, "this dispatcher owns the shard now; recovering");
    // Renew from now on, so that a long recovery does not lose the lease.
    let keeper = LeaseKeeper::start(lease.clone(), token);

    let journal_shard = shard.clone();
    let journal = tokio::task::spawn_blocking(move || RedisJournal::open(journal_shard, token)).await??;
    let journal: SharedJournal = Arc::new(Mutex::new(Box::new(journal) as Box<dyn Journal>));
    let engine = runtime::recover(&journal, config.policy.clone()).await?;
    let (locations, flusher) = LocationWriter::start(shard.clone(), LocationBatching::default())?;
    info!(
        shard = %shard.id(),
        token,
        last_seq = engine.state().last_seq,
        recovery_ms = taken_at.elapsed().as_millis() as u64,
        "serving as the owner of the shard"
    );

    let guard = OwnerGuard { lost: Box::pin(keeper.lost()) };
    let listener = TcpListener::from_std(listener)?;
    // A shard other than the whole city's is a district's.
    let sharding = match shard.id().as_str() {
        ShardId::CITY => None,
        _ => Some(Arc::new(
            Sharding::new(&url, shard.id().clone())?
                .with_epoch(token)
                .with_peer_tls(config.tls.as_ref().map(super::config::ServerTls::peer)),
        )),
    };
    let served =
        super::serving::serve(&config, journal, engine, Some(locations), listener, shutdown, Some(guard), sharding, web_listener)
            .await;

    keeper.stop().await;
    if served.is_ok() {
        let releasing = lease.clone();
        match tokio::task::spawn_blocking(move || releasing.release(token)).await? {
            Ok(true) => info!(shard = %shard.id(), token, "shard lease released"),
            Ok(false) => {
                warn!(shard = %shard.id(), token, "the shard lease had already passed to another dispatcher")
            }
            Err(error) => warn!(%error, "cannot release the shard lease; it expires by itself"),
        }
    }
    // Every writer handle was dropped with the runtime; the thread writes
    // what is pending and stops.
    let joining = tokio::task::spawn_blocking(move || flusher.join());
    if tokio::time::timeout(LOCATIONS_DRAIN, joining).await.is_err() {
        warn!("the location writer did not stop in time; pending locations are lost");
    }
    served
}

/// Names this process in the lease: unique per start.
fn owner_id() -> String {
    let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis());
    format!("dispatcher-{}-{started_ms}", std::process::id())
}

/// Renews the lease every `renew_every` until stopped, and says why the
/// process must step down when it cannot.
struct LeaseKeeper {
    stop: watch::Sender<bool>,
    lost: watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    fn start(lease: Arc<ShardLease>, token: u64) -> LeaseKeeper {
        let (stop, stopped) = watch::channel(false);
        let (lost_sender, lost) = watch::channel(None);
        let task = tokio::spawn(keep(lease, token, stopped, lost_sender));
        LeaseKeeper { stop, lost, task }
    }

    /// Resolves with the reason once the lease is lost.
    fn lost(&self) -> impl Future<Output = anyhow::Error> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            let reason = lost.wait_for(Option::is_some).await.ok().and_then(|reason| reason.clone());
            match reason {
                Some(reason) => anyhow::anyhow!(reason),
                // The keeper is gone without a reason: it was stopped, which
                // happens only after serving ended; never resolve.
                None => std::future::pending().await,
            }
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn keep(lease: Arc<ShardLease>, token: u64, mut stopped: watch::Receiver<bool>, lost: watch::Sender<Option<String>>) {
    let config = lease.config();
    let shard = lease.shard().id().to_string();
    let mut last_renewed = Instant::now();
    let mut said_past_ttl = false;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + config.renew_every, config.renew_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticks.tick() => {}
        }
        let renewing = lease.clone();
        let renewal = tokio::task::spawn_blocking(move || renewing.renew(token)).await;
        let reason = match renewal {
            Ok(Ok(Renewal::Renewed)) => {
                if said_past_ttl {
                    info!(shard = %shard, token, "redis answers again and the shard is still this dispatcher's");
                }
                said_past_ttl = false;
                last_renewed = Instant::now();
                continue;
            }
            Ok(Ok(Renewal::Lost { current_token, .. })) => {
                JournalError::Fenced { shard: shard.clone(), current: current_token, mine: token }.to_string()
            }
            Ok(Err(error)) => {
                if last_renewed.elapsed() < config.ttl {
                    warn!(%error, "cannot renew the shard lease; trying again");
                } else if !said_past_ttl {
                    said_past_ttl = true;
                    warn!(
                        %error,
                        ttl_ms = config.ttl.as_millis() as u64,
                        "cannot renew the shard lease for longer than its ttl; another dispatcher may take the shard \
                         over, and then this one steps down once redis answers; until then reads are served from memory"
                    );
                }
                continue;
            }
            Err(panic) => format!("the lease renewal of shard {shard} failed: {panic}; this one (token {token}) must stop"),
        };
        error!(reason = %reason, "lost the shard lease; stepping down");
        let _ = lost.send(Some(reason));
        return;
    }
}
