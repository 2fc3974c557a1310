//! `drill`: runs a drill file and writes the after-action report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pingji_client::args::ConnectArgs;
use pingji_client::connect::ConnectOptions;
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
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Mode::Run { file, out, quiet } => run(&file, &out, quiet),
        Mode::Live { file, connect, token, out, speed, quiet } => {
            // Settings that cannot be used are usage errors, said before
            // anything starts.
            let options = LiveOptions::new(&connect.server, token.as_deref()).and_then(|mut options| {
                options.connect = ConnectOptions { bearer: options.connect.bearer, ..connect.options()? };
                options.speed = speed;
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
    if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
    let bar = progress_bar(&drill, quiet);
    let result = runtime.block_on(pingji_scenarios::live::run(&drill, options, out, |seconds| bar.set_position(seconds)));
    bar.finish_and_clear();
    finish(result, out)
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
    println!("  report: {}", out.join("report.md").display());
}
