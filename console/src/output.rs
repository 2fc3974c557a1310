//! Writing results to stdout: tables and text for people, JSON for scripts;
//! and warnings to stderr.

use std::io::Write;

use serde_json::Value;

use crate::error::ConsoleError;

/// Writes `text` as it is (it ends in a newline where it should).
pub fn text(text: &str) -> Result<(), ConsoleError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(ConsoleError::Output)
}

/// Writes one line.
pub fn line(line: &str) -> Result<(), ConsoleError> {
    text(&format!("{line}\n"))
}

/// Writes one JSON document, indented for reading.
pub fn json_document(value: &Value) -> Result<(), ConsoleError> {
    let rendered = serde_json::to_string_pretty(value).map_err(|error| ConsoleError::Output(error.into()))?;
    line(&rendered)
}

/// Writes one JSON object on one line (JSON lines, for streams).
pub fn json_line(value: &Value) -> Result<(), ConsoleError> {
    line(&value.to_string())
}

/// A secret shown once: the token alone on stdout, so that a script can
/// take it (`TOKEN=$(pingji ...)`), and what it is for on stderr.
pub fn secret(token: &str, note: &str) -> Result<(), ConsoleError> {
    line(token)?;
    to_stderr(note)
}

/// Writes a warning for the person at the terminal to stderr, so that it
/// stays out of output meant for a file or a pipe.
pub fn warning(text: &str) -> Result<(), ConsoleError> {
    to_stderr(&format!("pingji: {text}\n"))
}

/// Writes `text` as it is to stderr: what a person should read while stdout
/// goes to a file.
pub fn to_stderr(text: &str) -> Result<(), ConsoleError> {
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush()).map_err(ConsoleError::Output)
}

/// Says on stderr which shard a list came from, when the dispatcher that
/// answered serves one district of a split city (its answer names the
/// shard): the list is that district's only.
pub fn shard_note<T>(answer: &tonic::Response<T>, what: &str) -> Result<(), ConsoleError> {
    let served_by = answer.metadata().get(pingji_client::owner::SERVED_BY_METADATA).and_then(|value| value.to_str().ok());
    match served_by {
        Some(shard) => warning(&format!(
            "{what} of shard {shard} only: the city is split by district; --shard DISTRICT lists another district's"
        )),
        None => Ok(()),
    }
}
