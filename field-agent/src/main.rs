//! `field-agent`: the Pingji terminal program for a person in the field.
//! Parses flags, sets up logging, starts the session and hands over to the
//! full-screen view or the headless mode.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use pingji_client::args::ConnectArgs;
use pingji_client::connect::ConnectOptions;
use pingji_field_agent::app::App;
use pingji_field_agent::headless::{self, AutoAnswer, AutoOptions, AutoPilot, FieldReportText, HeadlessEnd};
use pingji_field_agent::track::{Track, TrackPlayer, parse_point};
use pingji_field_agent::{AgentClient, AgentConfig, Location, interactive};
use pingji_proto::v1 as pb;
use tokio::time::Instant;

/// Pingji field agent: receive offers, accept or decline them, report
/// arrival and completion, check in to call-ups, report what you see. Full
/// screen by default; --auto for scripts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Your id on the roster.
    #[arg(long, env = "PINGJI_AGENT")]
    agent: String,
    /// Your token (pja_…), given when you were added to the roster or by an
    /// admin's `pingji roster token ID --rotate`.
    #[arg(long, env = "PINGJI_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Where you are, standing still: LON,LAT.
    #[arg(long, value_name = "LON,LAT", value_parser = parse_point, conflicts_with = "track")]
    at: Option<Location>,
    /// Replay a track: CSV (lon,lat[,seconds_offset] with a header) or GPX.
    #[arg(long, env = "PINGJI_TRACK", value_name = "FILE")]
    track: Option<PathBuf>,
    /// Replay the track this many times faster than its own times.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    track_speed: f64,
    /// Set this status once connected.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Headless: answer every offer this way and print one line per event.
    #[arg(long, value_enum)]
    auto: Option<AutoArg>,
    /// Headless: seconds to wait before answering an offer.
    #[arg(long, default_value_t = 2.0, value_parser = non_negative, requires = "auto")]
    delay_s: f64,
    /// Headless accept: seconds after the assignment to report arrival.
    #[arg(long, default_value_t = 5.0, value_parser = non_negative, requires = "auto")]
    arrive_after_s: f64,
    /// Headless accept: seconds after arrival to report completion.
    #[arg(long, default_value_t = 5.0, value_parser = non_negative, requires = "auto")]
    complete_after_s: f64,
    /// Headless accept: the feedback sent with completion.
    #[arg(long, default_value = "done (reported by field-agent --auto)", requires = "auto")]
    feedback: String,
    /// Headless decline: the reason sent.
    #[arg(long, default_value = "busy", requires = "auto")]
    decline_reason: String,
    /// Headless: exit after completing this many assignments.
    #[arg(long, value_name = "N", requires = "auto")]
    exit_after_tasks: Option<u32>,
    /// Headless: send one field report at your location after the welcome,
    /// written CATEGORY:TEXT (e.g. "flooding:water over the road at gate 3").
    #[arg(long, value_name = "CATEGORY:TEXT", requires = "auto")]
    report: Option<FieldReportText>,
    /// Headless: print JSON lines instead of text.
    #[arg(long, requires = "auto")]
    json: bool,
    /// With --auto: check in safe (报平安) halfway through each safety
    /// check-in interval while on an assignment.
    #[arg(long, requires = "auto")]
    safety_check_in: bool,
    /// With --auto: send a help call (求助) with this text once connected,
    /// at --at or the track's position (else the last one the dispatcher knows).
    #[arg(long, value_name = "TEXT", requires = "auto")]
    help_call: Option<String>,
    /// Write logs to this file (the full-screen view has no room for them).
    #[arg(long, env = "PINGJI_FIELD_AGENT_LOG", value_name = "FILE")]
    log: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    Available,
    Busy,
    OffDuty,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AutoArg {
    Accept,
    Decline,
    Ignore,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && (0.0..=86_400.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number of seconds from 0 to 86400")),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("field-agent: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    // A TLS file that cannot be used is a usage error, like a bad flag.
    let connect = match args.connect.options() {
        Ok(connect) => connect,
        Err(error) => {
            eprintln!("field-agent: {error} (see --help)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("field-agent: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, connect)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("field-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, connect: ConnectOptions) -> anyhow::Result<ExitCode> {
    set_up_logging(&args)?;
    let (track, location_note) = match (&args.track, args.at) {
        (Some(path), _) => {
            let track = Track::load(path).map_err(|error| anyhow::anyhow!("track {}: {error}", path.display()))?;
            let note = format!("track {} ({} points)", path.display(), track.points().len());
            (Some(track), note)
        }
        (None, Some(at)) => (Some(Track::fixed(at)), "fixed point".to_string()),
        (None, None) => (None, "none given (--at or --track)".to_string()),
    };
    let player = track.map(|track| TrackPlayer::new(track, args.track_speed, Instant::now()));
    let config = AgentConfig::with_options(connect, args.agent.clone(), args.token.clone());
    let (client, events) = AgentClient::start(config)?;
    if let Some(status) = args.status {
        client.set_status(match status {
            StatusArg::Available => pb::AgentStatus::Available,
            StatusArg::Busy => pb::AgentStatus::Busy,
            StatusArg::OffDuty => pb::AgentStatus::OffDuty,
        })?;
    }
    let Some(auto) = args.auto else {
        let app = App::new(&args.agent, &args.connect.server, &location_note);
        interactive::run(client, events, app, player, shutdown_signal()).await?;
        return Ok(ExitCode::SUCCESS);
    };
    let options = AutoOptions {
        answer: match auto {
            AutoArg::Accept => AutoAnswer::Accept,
            AutoArg::Decline => AutoAnswer::Decline,
            AutoArg::Ignore => AutoAnswer::Ignore,
        },
        delay: Duration::from_secs_f64(args.delay_s),
        arrive_after: Duration::from_secs_f64(args.arrive_after_s),
        complete_after: Duration::from_secs_f64(args.complete_after_s),
        feedback: args.feedback.clone(),
        decline_reason: args.decline_reason.clone(),
        exit_after_tasks: args.exit_after_tasks,
        report: args.report.clone(),
        safety_check_in: args.safety_check_in,
        help: args.help_call.clone(),
    };
    let mut stdout = std::io::stdout();
    let end = headless::run(client, events, AutoPilot::new(options), player, args.json, &mut stdout, shutdown_signal()).await?;
    Ok(match end {
        HeadlessEnd::Finished => ExitCode::SUCCESS,
        HeadlessEnd::Failed(error) => {
            eprintln!("field-agent: {error}");
            ExitCode::FAILURE
        }
    })
}

fn set_up_logging(args: &Args) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("PINGJI_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    match (&args.log, args.auto) {
        (Some(path), _) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| anyhow::anyhow!("cannot open log file {}: {error}", path.display()))?;
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
        }
        // Headless: stdout carries the event lines, logs go to stderr.
        (None, Some(_)) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        // Full screen without a log file: logs would tear the screen.
        (None, None) => {}
    }
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
