//! `pingji events [--follow] [--from SEQ]`: the event record.
//!
//! Without `--follow` the command prints the record from SEQ "up to now" and
//! exits. `WatchEvents` has no end: after the history it goes on with live
//! events, and the API does not say which sequence number is the last one.
//! So "now" is decided on this side, by two rules, whichever comes first:
//!
//! - **quiet**: no event for [`QUIET`] (300 ms). The dispatcher sends the
//!   history from its journal as fast as we read it, so a pause that long
//!   means the history is over and nothing new is happening.
//! - **after the start**: an event stamped more than [`CLOCK_SLACK`] after
//!   this command started (by our clock) is not history. This ends the
//!   command on a busy dispatcher, where events never pause for 300 ms. The
//!   slack keeps a server clock that runs a little ahead of ours from cutting
//!   the last moments of history short.
//!
//! With `--follow` the command prints events as they come until it is
//! stopped (Ctrl-C) or the dispatcher ends the stream (exit code 1).

use std::time::Duration;

use pingji_proto::v1 as pb;
use tonic::Streaming;

use crate::connection::Client;
use crate::error::ConsoleError;
use pingji_client::{events, labels};

use crate::{json, output};

/// How long the stream must stay quiet for the history to count as read.
pub const QUIET: Duration = Duration::from_millis(300);
/// How far an event may be stamped after our start and still count as history.
pub const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Prints the events from `from_seq` up to now, then returns.
pub async fn history(client: &mut Client, from_seq: u64, as_json: bool) -> Result<(), ConsoleError> {
    let started_ms = labels::now_ms();
    let mut stream = client.watch_events(pb::WatchEventsRequest { from_seq, replay_last: 0 }).await?.into_inner();
    let mut printed = 0usize;
    if as_json {
        // One JSON array, written as the events come so that a long record
        // is not held in memory.
        output::text("[")?;
    }
    while let Some(event) = next_historic(&mut stream, started_ms).await? {
        if as_json {
            let separator = if printed == 0 { "\n" } else { ",\n" };
            output::text(&format!("{separator}{}", json::event(&event)))?;
        } else {
            output::line(&events::line(&event))?;
        }
        printed += 1;
    }
    if as_json {
        output::text(if printed == 0 { "]\n" } else { "\n]\n" })?;
    } else if printed == 0 {
        output::line(&format!("no events from #{from_seq} on"))?;
    }
    Ok(())
}

/// The next event of the history, or `None` once "now" is reached (see the
/// module doc).
async fn next_historic(stream: &mut Streaming<pb::Event>, started_ms: i64) -> Result<Option<pb::Event>, ConsoleError> {
    let slack_ms = i64::try_from(CLOCK_SLACK.as_millis()).unwrap_or(i64::MAX);
    match tokio::time::timeout(QUIET, stream.message()).await {
        Err(_quiet) => Ok(None),
        Ok(Err(status)) => Err(status.into()),
        // The dispatcher ended the stream (it is shutting down): what we
        // printed is all we will get.
        Ok(Ok(None)) => Err(ConsoleError::StreamEnded),
        Ok(Ok(Some(event))) if event.at_ms > started_ms.saturating_add(slack_ms) => Ok(None),
        Ok(Ok(Some(event))) => Ok(Some(event)),
    }
}

/// Prints events as they happen, from `from_seq` (0: only new ones), until
/// the dispatcher ends the stream.
pub async fn follow(client: &mut Client, from_seq: u64, as_json: bool) -> Result<(), ConsoleError> {
    let mut stream = client.watch_events(pb::WatchEventsRequest { from_seq, replay_last: 0 }).await?.into_inner();
    while let Some(event) = stream.message().await? {
        if as_json {
            output::json_line(&json::event(&event))?;
        } else {
            output::line(&events::line(&event))?;
        }
    }
    Err(ConsoleError::StreamEnded)
}
