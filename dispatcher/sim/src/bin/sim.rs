//! The long run: many seeds in a row, with progress, stopping at the first
//! broken invariant (which it prints with its replay command).
//!
//! ```sh
//! cargo run -p pingji-sim --release --bin sim -- --seeds 100000
//! cargo run -p pingji-sim --release --bin sim -- --seed 27 --trace   # one seed, replayed, every step
//! cargo run -p pingji-sim --release --bin sim -- --seed 13 --bug ignore-fence
//! ```

use std::process::ExitCode;
use std::time::Instant;

use pingji_sim::{Bug, Config, Outcome, run};

struct Args {
    first: u64,
    seeds: u64,
    bug: Option<Bug>,
    trace: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { first: 0, seeds: 100_000, bug: None, trace: false };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => {
                parsed.first = value()?.parse().map_err(|_| "--seed takes a number".to_owned())?;
                parsed.seeds = 1;
            }
            "--first" => parsed.first = value()?.parse().map_err(|_| "--first takes a number".to_owned())?,
            "--seeds" => parsed.seeds = value()?.parse().map_err(|_| "--seeds takes a number".to_owned())?,
            "--trace" => parsed.trace = true,
            "--bug" => match value()?.as_str() {
                "ignore-fence" => parsed.bug = Some(Bug::IgnoreFence),
                "expire-accepted" => parsed.bug = Some(Bug::ExpireAccepted),
                other => return Err(format!("--bug {other}: use ignore-fence or expire-accepted")),
            },
            other => {
                return Err(format!(
                    "unknown argument {other}; use --seeds N [--first S], or --seed S [--trace] [--bug ignore-fence|expire-accepted]"
                ));
            }
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("{problem}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut total = Outcome::default();
    let last = args.first + args.seeds;
    for seed in args.first..last {
        let config = Config { bug: args.bug, print_trace: args.trace, ..Config::new(seed) };
        match run(config) {
            Ok(outcome) => {
                total.incidents += outcome.incidents;
                total.border_offers += outcome.border_offers;
                total.border_assignments += outcome.border_assignments;
                total.takeovers += outcome.takeovers;
                total.crashes += outcome.crashes;
                total.pauses += outcome.pauses;
                total.fenced += outcome.fenced;
                total.acknowledged += outcome.acknowledged;
                if args.seeds == 1 {
                    println!("seed {seed}: trace hash {:016x}", outcome.trace_hash);
                }
            }
            Err(failure) => {
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        }
        let done = seed - args.first + 1;
        if done % 10_000 == 0 || done == args.seeds {
            println!(
                "{done}/{} seeds ok in {:.1} s: {} incidents, {} border reservations, {} border assignments, \
                 {} takeovers, {} crashes, {} pauses, {} stale owners fenced, {} events acknowledged",
                args.seeds,
                started.elapsed().as_secs_f64(),
                total.incidents,
                total.border_offers,
                total.border_assignments,
                total.takeovers,
                total.crashes,
                total.pauses,
                total.fenced,
                total.acknowledged
            );
        }
    }
    ExitCode::SUCCESS
}
