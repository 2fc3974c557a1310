//! `drill demo`: Pingji to look at in one command. A dispatcher in this
//! process, with the command map on its web port, and a live drill of
//! simulated people against it (the [`crate::live`] runner, every person a
//! real gRPC session), round after round until stopped.
//!
//! The dispatcher's clock runs at the drill's speed ([`Clock::faster`]), so
//! that offers time out, incidents widen and call-ups lapse at the pace of
//! the drill, as its policy says in drill time. Its journal is a SQLite
//! file in the demo's folder, new for each start: afterwards it is the
//! event log of what was shown, for `dispatcher --replay`.
//!
//! The operator token to log in with is made here, given to the dispatcher
//! as its first admin, and handed to the caller once to show; it is never
//! logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pingji_dispatcher::runtime::Clock;
use pingji_dispatcher::server::{self, Config, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::drill::Drill;
use crate::live::{self, LiveOptions};

/// How long the dispatcher may take to answer the drill's first call.
const SERVING_WITHIN: Duration = Duration::from_secs(30);

/// What the demo is started with.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How many times faster than real time the drill and the dispatcher's
    /// clock run.
    pub speed: f64,
    /// Where the dispatcher serves gRPC (the console's port).
    pub listen: SocketAddr,
    /// Where the command map is served.
    pub web: SocketAddr,
    /// The folder for the journal (`journal.db`) and each round's report.
    pub out: PathBuf,
}

/// Where the demo is, once it serves.
#[derive(Clone, Debug)]
pub struct Started {
    /// The command map, `http://HOST:PORT/`.
    pub map_url: String,
    /// The gRPC port, for the console (`pingji --server http://…`).
    pub grpc: SocketAddr,
    /// An admin's operator token, to log in with: show it once, never log it.
    pub token: String,
    /// The dispatcher's journal: the event log of the demo.
    pub journal: PathBuf,
}

/// Runs the demo until `stop` turns true: calls `started` once the
/// dispatcher serves and `round_ended` after each round of the drill that
/// ran to its end, with its number and report (also in the demo's folder).
pub async fn run(
    drill: &Drill,
    options: &DemoOptions,
    started: impl FnOnce(&Started),
    mut round_ended: impl FnMut(u32, &crate::report::Report),
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.speed >= 1.0 && options.speed <= 1000.0,
        "--speed {} cannot be used: the demo runs between 1 and 1000 times faster than real time",
        options.speed
    );
    std::fs::create_dir_all(&options.out).with_context(|| format!("cannot make the folder {}", options.out.display()))?;
    let journal = options.out.join("journal.db");
    remove_earlier_journal(&journal)?;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {}; choose another address with --listen", options.listen))?;
    let web_listener = TcpListener::bind(options.web).await.with_context(|| {
        format!("cannot serve the command map on {}; choose another address with --web, e.g. 127.0.0.1:8081", options.web)
    })?;
    let grpc = listener.local_addr()?;
    let web = web_listener.local_addr()?;

    let token = pingji_dispatcher::tokens::new_operator_token("admin");
    let clock = Clock::faster(options.speed);
    let mut config = Config::new(Store::Sqlite(journal.clone()));
    config.policy = drill.policy.clone();
    config.bootstrap_admin_token = Some(token.clone());
    config.clock = clock.clone();
    // The demo is a drill: the public alerts of its plans say so (CAP status Exercise).
    config.cap.exercise = true;
    // Thousands of simulated people at most, in this very process: limits
    // that fit the usual open-file limit, rather than a city's.
    config.limits.max_sessions = 10_000;
    config.limits.max_connections = 11_000;
    let (stop_server, server_shutdown) = watch::channel(false);
    let mut server = tokio::spawn(server::run_with_web(config, listener, Some(web_listener), server_shutdown));

    let mut live_options = LiveOptions::new(&format!("http://{grpc}"), Some(&token))?;
    live_options.speed = options.speed;
    live_options.clock = clock;
    let mut started = Some(started);
    let mut stop_waiting = stop.clone();
    let served = async {
        let mut round = 1;
        loop {
            let prepared = prepare_when_serving(drill, &live_options).await?;
            // Said once the dispatcher answers, before the drill's people come.
            if let Some(started) = started.take() {
                started(&Started { map_url: format!("http://{web}/"), grpc, token: token.clone(), journal: journal.clone() });
            }
            let stopping = stop.clone();
            let stopped = async move {
                let mut stopping = stopping;
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let report = prepared.run(&options.out, |_| {}, stopped).await?;
            if *stop.borrow() {
                return anyhow::Ok(());
            }
            round_ended(round, &report);
            round += 1;
            // Later rounds find the earlier round's people and map: theirs.
            live_options.go_ahead = true;
        }
    };
    let result = tokio::select! {
        result = served => result,
        finished = &mut server => {
            return match finished {
                Ok(Ok(())) => Err(anyhow::anyhow!("the dispatcher stopped by itself")),
                Ok(Err(error)) => Err(error.context("the dispatcher stopped")),
                Err(join_error) => Err(anyhow::Error::new(join_error).context("the dispatcher panicked")),
            };
        }
        () = async { let _ = stop_waiting.wait_for(|stop| *stop).await; } => Ok(()),
    };
    let _ = stop_server.send(true);
    let stopped = server.await.context("the dispatcher panicked")?;
    result.and(stopped)
}

/// The drill, prepared on the demo's dispatcher once it answers.
async fn prepare_when_serving<'drill>(drill: &'drill Drill, options: &LiveOptions) -> anyhow::Result<live::Prepared<'drill>> {
    let deadline = tokio::time::Instant::now() + SERVING_WITHIN;
    loop {
        match live::prepare(drill, options).await {
            Ok(prepared) => return Ok(prepared),
            Err(error) if tokio::time::Instant::now() < deadline && error.downcast_ref::<live::Refused>().is_none() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.context("the drill cannot start on the demo's dispatcher")),
        }
    }
}

/// Each start shows a new demo: the journal of the one before goes.
fn remove_earlier_journal(journal: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = journal.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error).with_context(|| format!("cannot remove the earlier demo's {}", path.display())),
        }
    }
    Ok(())
}
