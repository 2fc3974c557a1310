//! The tasks that feed the live view, each stopping when told:
//!
//! - [`stream_events`]: `WatchEvents`, reconnecting with a capped backoff
//!   and resuming after the last event seen.
//! - [`poll_people`]: connected people's live locations every
//!   [`PEOPLE_EVERY`] (live locations are soft state, not events).
//! - [`fetch`]: one-off requests from the view (open incidents, an
//!   incident's details, the map after an import).
//! - [`read_keys`]: the terminal's keys and resizes, on a thread of its own
//!   because crossterm reads blocking.
//!
//! All of them send [`Update`]s into one bounded channel that the view drains
//! between frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pingji_proto::v1 as pb;
use ratatui::crossterm::event::{self as terminal_event, Event as TerminalEvent};
use tokio::sync::{mpsc, watch};

use super::app::{Link, PersonDot};
use crate::cli::FeedStart;
use crate::commands::roster::{ListFilter, fetch_people};
use crate::connection::Client;
use crate::error::ConsoleError;

/// How often the people on the map are read again.
pub const PEOPLE_EVERY: Duration = Duration::from_secs(2);
/// Longest wait between two tries to reopen the event stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the key reader blocks before checking whether to stop.
const KEY_POLL: Duration = Duration::from_millis(100);

/// News for the view.
#[derive(Debug)]
pub enum Update {
    /// Boxed: a typed event (an area import with its polygons) can be large.
    Event(Box<pb::Event>),
    Link(Link),
    People(Vec<PersonDot>),
    Incidents(Vec<pb::Incident>),
    /// Boxed: an incident with its offers and assignments is by far the
    /// largest update, and the channel holds thousands of them.
    Detail(Box<pb::Incident>),
    Areas(pb::ListAreasResponse),
    /// A request failed; `None` once one succeeds again.
    Problem(Option<String>),
}

/// What the view asks [`fetch`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    OpenIncidents,
    Incident(String),
    Areas,
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        let stop = *shutdown.borrow_and_update();
        if stop || shutdown.changed().await.is_err() {
            return;
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(8);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// The request that opens the feed at `start`, or resumes it after the
/// last event seen (`next_seq`, 0 while none was).
pub fn watch_request(start: FeedStart, next_seq: u64) -> pb::WatchEventsRequest {
    match (start, next_seq) {
        (_, 1..) => pb::WatchEventsRequest { from_seq: next_seq, replay_last: 0 },
        (FeedStart::From(from_seq), 0) => pb::WatchEventsRequest { from_seq, replay_last: 0 },
        (FeedStart::Last(count), 0) => pb::WatchEventsRequest { from_seq: 0, replay_last: count },
    }
}

/// Streams events from `start` into `updates`. When the stream breaks it
/// tries again, resuming after the last event seen.
pub async fn stream_events(
    mut client: Client,
    start: FeedStart,
    updates: mpsc::Sender<Update>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_seq = 0;
    let mut attempt = 0u32;
    loop {
        let opened = tokio::select! {
            () = stopped(&mut shutdown) => return,
            opened = client.watch_events(watch_request(start, next_seq)) => opened,
        };
        if let Ok(response) = opened {
            attempt = 0;
            if updates.send(Update::Link(Link::Live)).await.is_err() {
                return;
            }
            let mut stream = response.into_inner();
            loop {
                let message = tokio::select! {
                    () = stopped(&mut shutdown) => return,
                    message = stream.message() => message,
                };
                let Ok(Some(event)) = message else { break };
                next_seq = event.seq + 1;
                if updates.send(Update::Event(Box::new(event))).await.is_err() {
                    return;
                }
            }
        }
        attempt = attempt.saturating_add(1);
        let delay = backoff(attempt);
        if updates.send(Update::Link(Link::Reconnecting { attempt, in_s: delay.as_secs() })).await.is_err() {
            return;
        }
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Reads the connected people every [`PEOPLE_EVERY`].
pub async fn poll_people(mut client: Client, updates: mpsc::Sender<Update>, mut shutdown: watch::Receiver<bool>) {
    let filter = ListFilter { connected_only: true, ..ListFilter::default() };
    let mut every = tokio::time::interval(PEOPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            _ = every.tick() => {}
        }
        let fetched = tokio::select! {
            () = stopped(&mut shutdown) => return,
            fetched = fetch_people(&mut client, &filter, false) => fetched,
        };
        let update = match fetched {
            Ok(people) => Update::People(people.iter().filter_map(PersonDot::from_agent).collect()),
            Err(error) => Update::Problem(Some(format!("people: {error}"))),
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

/// Answers the view's requests one at a time.
pub async fn fetch(
    mut client: Client,
    mut requests: mpsc::Receiver<Fetch>,
    updates: mpsc::Sender<Update>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            () = stopped(&mut shutdown) => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let answer = tokio::select! {
            () = stopped(&mut shutdown) => return,
            answer = answer(&mut client, request) => answer,
        };
        let updates_to_send = match answer {
            Ok(update) => vec![update, Update::Problem(None)],
            Err(error) => vec![Update::Problem(Some(error.to_string()))],
        };
        for update in updates_to_send {
            if updates.send(update).await.is_err() {
                return;
            }
        }
    }
}

async fn answer(client: &mut Client, request: Fetch) -> Result<Update, ConsoleError> {
    Ok(match request {
        Fetch::OpenIncidents => {
            let request = pb::ListIncidentsRequest { open_only: true, limit: 0, ..Default::default() };
            Update::Incidents(client.list_incidents(request).await?.into_inner().incidents)
        }
        Fetch::Incident(id) => Update::Detail(Box::new(client.get_incident(pb::GetIncidentRequest { id }).await?.into_inner())),
        Fetch::Areas => {
            let request = pb::ListAreasRequest { level: pb::AreaLevel::Unspecified as i32, with_geometry: true };
            Update::Areas(client.list_areas(request).await?.into_inner())
        }
    })
}

/// Reads terminal events until `stop` is set or the view stops listening.
/// Runs on its own thread: crossterm's reading blocks.
pub fn read_keys(inputs: mpsc::Sender<TerminalEvent>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        if !terminal_event::poll(KEY_POLL)? {
            continue;
        }
        let event = terminal_event::read()?;
        if inputs.blocking_send(event).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_opens_with_the_recent_events_and_resumes_after_the_last_seen() {
        assert_eq!(watch_request(FeedStart::Last(50), 0), pb::WatchEventsRequest { from_seq: 0, replay_last: 50 });
        assert_eq!(watch_request(FeedStart::From(7), 0), pb::WatchEventsRequest { from_seq: 7, replay_last: 0 });
        assert_eq!(watch_request(FeedStart::Last(50), 120), pb::WatchEventsRequest { from_seq: 120, replay_last: 0 });
        assert_eq!(watch_request(FeedStart::Last(0), 0), pb::WatchEventsRequest { from_seq: 0, replay_last: 0 });
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let delays: Vec<u64> = (1..=6).map(|attempt| backoff(attempt).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5, 5]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
