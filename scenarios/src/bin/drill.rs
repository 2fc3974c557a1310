//! `drill`: runs a drill file and writes the after-action report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pingji_client::args::ConnectArgs;
use pingji_client::connect::ConnectOptions;
use pingji_scenarios::citymap::Counts;
use pingji_scenarios::live::LiveOptions;

/// Runs Pingji drills (实战演练) and writes their after-action report.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Fast and deterministic: the engine in process on a virtual clock.
    Run {
        /// The drill file (TOML), e.g. scenarios/drills/typhoon.toml.
        file: PathBuf,
        /// Folder for report.md, report.json, the SVG pictures and journal.db.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Against a running dispatcher: every simulated person a real gRPC session.
    Live {
        /// The drill file (TOML).
        file: PathBuf,
        /// For the command connection and every simulated person's session.
        #[command(flatten)]
        connect: ConnectArgs,
        /// An admin's operator token (pjo_…): the drill imports the map,
        /// the roster and plans, and issues the simulated people's tokens.
        #[arg(long, env = "PINGJI_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Folder for report.md, report.json and the SVG pictures.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Run the drill this many times faster than real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Run even though the dispatcher is in use (open incidents, areas in
        /// emergency, open plans or call-ups, people connected, plans or a map
        /// the drill would change): without it the drill says what it found
        /// and does not start.
        #[arg(long)]
        go_ahead: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Pingji to look at: a dispatcher with the command map, and a live
    /// drill of simulated people against it, its clock at the drill's
    /// speed, round after round until Ctrl-C. Prints the map's address and
    /// an operator token to log in with.
    Demo {
        /// The drill file (TOML).
        #[arg(default_value = "scenarios/drills/typhoon.toml")]
        file: PathBuf,
        /// How many times faster than real time the drill and the
        /// dispatcher's clock run.
        #[arg(long, default_value_t = 10.0)]
        speed: f64,
        /// Where to serve the command map.
        #[arg(long, default_value = "127.0.0.1:8080")]
        web: std::net::SocketAddr,
        /// Where to serve gRPC, for the console (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Folder for the journal (journal.db, replaced at each start) and
        /// the report of each round.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
    },
    /// Makes maps for drills: a city of districts, or a district map cut
    /// into streets, communities and grids.
    Map {
        #[command(subcommand)]
        command: MapCommand,
    },
}

#[derive(Subcommand, Debug)]
enum MapCommand {
    /// Cuts every district of a district-only map (GeoJSON, scenarios/maps/README.md)
    /// into streets, communities and grids.
    Subdivide {
        /// The district map, e.g. districts from OpenStreetMap.
        file: PathBuf,
        /// Where to write the subdivided map.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Streets per district, on average (shared out by area).
        #[arg(long, default_value_t = Counts::default().streets_per_district)]
        streets: f64,
        /// Communities per street, on average.
        #[arg(long, default_value_t = Counts::default().communities_per_street)]
        communities: f64,
        /// Grids per community, on average.
        #[arg(long, default_value_t = Counts::default().grids_per_community)]
        grids: f64,
        /// The feature property holding the area id (e.g. adcode)
        #[arg(long, value_name = "PROPERTY", default_value = "id")]
        id_property: String,
        /// The feature property holding the name
        #[arg(long, value_name = "PROPERTY", default_value = "name")]
        name_property: String,
        /// The feature property holding the level
        #[arg(long, value_name = "PROPERTY", default_value = "level")]
        level_property: String,
        /// The feature property holding the parent's id (missing parents
        /// are found by containment)
        #[arg(long, value_name = "PROPERTY", default_value = "parent")]
        parent_property: String,
        /// The level of features that have none (e.g. district)
        #[arg(long)]
        level: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Writes a made-up city of districts of real size (about 42 km across,
    /// around Hangzhou's centre), to subdivide or to name in a drill.
    City {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 13)]
        districts: usize,
        /// Where to write the district map.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Exit code when the drill did not start because the dispatcher is in use.
const REFUSED: u8 = 3;
/// Exit code when the drill was stopped (Ctrl-C, SIGTERM): 128 + SIGINT.
const STOPPED: u8 = 130;

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Mode::Run { file, out, quiet } => run(&file, &out, quiet),
        Mode::Demo { file, speed, web, listen, out } => {
            demo(&file, &pingji_scenarios::demo::DemoOptions { speed, listen, web, out })
        }
        Mode::Map { command } => match map(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("drill map: {error}");
                ExitCode::from(2)
            }
        },
        Mode::Live { file, connect, token, out, speed, go_ahead, quiet } => {
            // Settings that cannot be used are usage errors, said before
            // anything starts.
            let options = LiveOptions::new(&connect.server, token.as_deref()).and_then(|mut options| {
                options.connect = ConnectOptions { bearer: options.connect.bearer, ..connect.options()? };
                options.speed = speed;
                options.go_ahead = go_ahead;
                Ok(options)
            });
            match options {
                Ok(options) => live(&file, &options, &out, quiet),
                Err(error) => {
                    eprintln!("drill: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn progress_bar(drill: &pingji_scenarios::drill::Drill, quiet: bool) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(drill.file.duration_s) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} drill s ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(drill.file.name.clone());
    bar
}

fn load(file: &std::path::Path) -> Result<pingji_scenarios::drill::Drill, ExitCode> {
    pingji_scenarios::drill::load(file).map_err(|error| {
        eprintln!("drill: {error}");
        ExitCode::from(2)
    })
}

fn finish(result: anyhow::Result<pingji_scenarios::report::Report>, out: &std::path::Path) -> ExitCode {
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("drill: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    print_summary(&report, out);
    if report.live.as_ref().is_some_and(|live| live.interrupted_at_s.is_some()) {
        ExitCode::from(STOPPED)
    } else if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn live(file: &std::path::Path, options: &LiveOptions, out: &std::path::Path, quiet: bool) -> ExitCode {
    let drill = match load(file) {
        Ok(drill) => drill,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("drill: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let prepared = match pingji_scenarios::live::prepare(&drill, options).await {
            Ok(prepared) => prepared,
            Err(error) => {
                if let Some(refused) = error.downcast_ref::<pingji_scenarios::live::Refused>() {
                    print_found(&refused.found);
                    eprintln!("drill: {refused}");
                    return ExitCode::from(REFUSED);
                }
                eprintln!("drill: {error:#}");
                return ExitCode::FAILURE;
            }
        };
        print_found(&prepared.found());
        if !prepared.findings().is_empty() {
            println!("going ahead (--go-ahead) despite:");
            for finding in prepared.findings() {
                println!("  - {finding}");
            }
        }
        let (stop_sender, stop) = tokio::sync::oneshot::channel::<()>();
        let signals = tokio::spawn(stop_on_signals(stop_sender));
        let bar = progress_bar(&drill, quiet);
        let stopped = async {
            // Dropped without a signal: the drill runs to its end.
            if stop.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let result = prepared.run(out, |seconds| bar.set_position(seconds), stopped).await;
        bar.finish_and_clear();
        signals.abort();
        finish(result, out)
    })
}

fn demo(file: &std::path::Path, options: &pingji_scenarios::demo::DemoOptions) -> ExitCode {
    use pingji_scenarios::demo::Started;
    let drill = match load(file) {
        Ok(drill) => drill,
        Err(code) => return code,
    };
    if let Err(error) = pingji_dispatcher::telemetry::init_quiet() {
        eprintln!("drill: {error:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("drill: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let name = drill.file.name.clone();
    let speed = options.speed;
    let result = runtime.block_on(async {
        let (stop_sender, stop) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("drill: stopping the demo");
            let _ = stop_sender.send(true);
            shutdown_signal().await;
            std::process::exit(i32::from(STOPPED));
        });
        let started = |started: &Started| {
            println!("Pingji demo: {name}, {speed}x real time");
            println!("  command map: {}", started.map_url);
            // Shown here once; the dispatcher keeps only its hash and never logs it.
            println!("  operator token: {}", started.token);
            println!("  gRPC: {} (pingji --server http://{} with PINGJI_TOKEN set to the token)", started.grpc, started.grpc);
            println!(
                "  event log: {} (play it back: dispatcher --replay {} --web ADDR)",
                started.journal.display(),
                started.journal.display()
            );
            println!("Open the map, log in with the token. Ctrl-C stops.");
        };
        let round_ended = |round: u32, report: &pingji_scenarios::report::Report| {
            println!("round {round} over: {}; starting again", report.totals.headline());
        };
        let result = pingji_scenarios::demo::run(&drill, options, started, round_ended, stop).await;
        signals.abort();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("drill: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_found(found: &[String]) {
    println!("found on the dispatcher:");
    for line in found {
        println!("  {line}");
    }
}

/// SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// The first signal stops the drill, which then puts the dispatcher back as
/// found; a second one exits at once, leaving it as it is.
async fn stop_on_signals(stop: tokio::sync::oneshot::Sender<()>) {
    shutdown_signal().await;
    eprintln!("drill: stopping; putting the dispatcher back as found (again to quit at once and leave it as it is)");
    let _ = stop.send(());
    shutdown_signal().await;
    eprintln!(
        "drill: quit without putting the dispatcher back: check `pingji incident list`, `pingji areas list` and `pingji plan list`"
    );
    std::process::exit(i32::from(STOPPED));
}

fn run(file: &std::path::Path, out: &std::path::Path, quiet: bool) -> ExitCode {
    let drill = match load(file) {
        Ok(drill) => drill,
        Err(code) => return code,
    };
    let bar = progress_bar(&drill, quiet);
    let result = pingji_scenarios::run_in_process(&drill, out, |seconds| bar.set_position(seconds));
    bar.finish_and_clear();
    finish(result, out)
}

fn map(command: MapCommand) -> Result<(), String> {
    use pingji_scenarios::citymap;
    let (import, out) = match command {
        MapCommand::Subdivide {
            file,
            out,
            seed,
            streets,
            communities,
            grids,
            id_property,
            name_property,
            level_property,
            parent_property,
            level,
            quiet,
        } => {
            let text = std::fs::read_to_string(&file).map_err(|error| format!("cannot read {}: {error}", file.display()))?;
            let default_level = match level {
                Some(name) => Some(pingji_engine::areas::AreaLevel::from_name(&name).ok_or_else(|| {
                    format!("--level {name} is not a level; use city, district, street, community, grid or building")
                })?),
                None => None,
            };
            let properties = pingji_engine::areas::MapProperties {
                id: id_property,
                name: name_property,
                level: level_property,
                parent: parent_property,
                default_level,
            };
            // Read as `pingji areas import` reads: every problem at once.
            let check = pingji_engine::areas::AreaMap::default()
                .check_file(&text, &properties, false)
                .map_err(|error| format!("{}: {error}", file.display()))?;
            let errors: Vec<String> = check.errors().map(|problem| format!("  {problem}")).collect();
            if !errors.is_empty() {
                return Err(format!("{} has {} errors:\n{}", file.display(), errors.len(), errors.join("\n")));
            }
            let districts = check.reading.import;
            let counts =
                Counts { streets_per_district: streets, communities_per_street: communities, grids_per_community: grids };
            let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
            bar.set_style(
                ProgressStyle::with_template("subdividing [{bar:40}] {pos}/{len} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let result = citymap::subdivide(&districts, &counts, seed, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            (result?, out)
        }
        MapCommand::City { seed, districts, out } => (citymap::city(seed, districts)?, out),
    };
    pingji_engine::areas::AreaMap::default().validate_import(&import)?;
    std::fs::write(&out, citymap::to_geojson(&import)).map_err(|error| format!("cannot write {}: {error}", out.display()))?;
    let mut counts = std::collections::BTreeMap::new();
    for spec in &import.areas {
        *counts.entry(spec.level).or_insert(0usize) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(level, count)| format!("{count} {}", level.name())).collect();
    println!("{}: {}", out.display(), counts.join(", "));
    Ok(())
}

fn print_summary(report: &pingji_scenarios::report::Report, out: &std::path::Path) {
    use pingji_scenarios::report::plural;
    let totals = &report.totals;
    println!("{}: {}", report.drill.name, if report.passed { "PASSED" } else { "FAILED" });
    println!("  {}; {}", plural(report.drill.people, "person", "people"), totals.headline());
    for (priority, figures) in &report.by_priority {
        let show = |value: Option<f64>| value.map_or("—".to_string(), |v| format!("{v:.0} s"));
        println!(
            "  P{priority}: {}, accepted p50 {} p90 {}, on scene p50 {} p90 {}",
            plural(figures.incidents, "incident", "incidents"),
            show(figures.time_to_accept.p50_s),
            show(figures.time_to_accept.p90_s),
            show(figures.time_to_arrive.p50_s),
            show(figures.time_to_arrive.p90_s)
        );
    }
    for result in &report.expectations {
        println!("  [{}] {} (actual {})", if result.passed { "pass" } else { "FAIL" }, result.expectation, result.actual);
    }
    if let Some(live) = &report.live {
        if let Some(seconds) = live.interrupted_at_s {
            println!("  stopped {seconds:.0} s into the drill of {} s: the figures cover it up to then", report.drill.duration_s);
        }
        println!("  at the end:");
        for line in &live.left {
            println!("    {line}");
        }
    }
    println!("  report: {}", out.join("report.md").display());
}
