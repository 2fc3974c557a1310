//! `pingji`: the operator console. Parses the command line and hands it to
//! [`pingji_console::run`]; prints a failure as one line on stderr.

use std::process::ExitCode;

use clap::Parser;
use pingji_console::ConsoleError;
use pingji_console::cli::Cli;
use pingji_console::error::EXIT_FAILURE;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pingji: cannot start: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(pingji_console::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(ConsoleError::Usage(usage)) => usage.exit(),
        Err(error) => {
            eprintln!("pingji: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
