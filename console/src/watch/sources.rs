//! The tasks that feed the live view, each stopping when told:
//!
//! - [`stream_events`]: `WatchEvents`, reconnecting with a capped backoff
//!   and resuming after the last event seen
//!   (`pingji_client::event_stream`).
//! - [`stream_people`]: connected people and their live locations, pushed
//!   by `WatchAgents` (`pingji_client::agent_stream`), which the dispatcher
//!   audits once when it opens and again when the people shown change,
//!   rather than at every poll.
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

use pingji_client::agent_stream::{AgentStream, Pushed};
use pingji_client::backoff::BackoffPolicy;
use pingji_client::event_stream::{EventStream, Watched};
use pingji_proto::v1 as pb;
use ratatui::crossterm::event::{self as terminal_event, Event as TerminalEvent};
use tokio::sync::{mpsc, watch};

use super::app::{Link, PersonDot};
use crate::cli::FeedStart;
use crate::connection::{Client, Connection};
use crate::error::ConsoleError;
/// Waits between tries to reopen the event stream: a person is watching,
/// so at most 5 s.
const STREAM_BACKOFF: BackoffPolicy =
    BackoffPolicy { initial: Duration::from_secs(1), cap: Duration::from_secs(5), healthy_after: Duration::from_secs(10) };
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

/// Streams events from `start` into `updates`. When the stream breaks it
/// tries again, resuming after the last event seen.
pub async fn stream_events(
    connection: Connection,
    start: FeedStart,
    updates: mpsc::Sender<Update>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut events = match start {
        FeedStart::From(from_seq) => EventStream::new(connection, from_seq, STREAM_BACKOFF),
        FeedStart::Last(count) => EventStream::new(connection, 0, STREAM_BACKOFF).with_recent(count),
    };
    loop {
        let watched = tokio::select! {
            () = stopped(&mut shutdown) => return,
            watched = events.next() => watched,
        };
        let update = match watched {
            Watched::Opened => Update::Link(Link::Live),
            Watched::Event(event) => Update::Event(event),
            // Whole seconds, rounded up: "reconnecting in 0 s" would be wrong.
            Watched::Lost { attempt, retry_in, .. } => {
                Update::Link(Link::Reconnecting { attempt, in_s: retry_in.as_secs_f64().ceil() as u64 })
            }
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

/// Keeps the view's people up to date from `WatchAgents` (connected people
/// only): the dispatcher pushes them and their moves. When the stream breaks
/// it tries again; the problem line says why meanwhile.
pub async fn stream_people(connection: Connection, updates: mpsc::Sender<Update>, mut shutdown: watch::Receiver<bool>) {
    let request = pb::WatchAgentsRequest { area_id: String::new(), connected_only: true, ..Default::default() };
    let mut people = AgentStream::new(connection, request, STREAM_BACKOFF);
    loop {
        let pushed = tokio::select! {
            () = stopped(&mut shutdown) => return,
            pushed = people.next() => pushed,
        };
        let sent = match pushed {
            Pushed::People(people) => {
                let dots = Update::People(people.iter().filter_map(PersonDot::from_agent).collect());
                updates.send(dots).await
            }
            Pushed::Lost { reason, .. } => updates.send(Update::Problem(Some(format!("people: {reason}")))).await,
        };
        if sent.is_err() {
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
