//! `pingji watch`: a full-screen live view of a dispatcher — a map of areas,
//! people and incidents, the open incidents, the event feed, a banner per
//! area in an emergency, and an alert line for incidents nobody on the
//! roster could staff, grids below their minimum of available people and
//! open call-ups.
//!
//! State and I/O are apart: [`App`] holds what the view knows and changes
//! only through its methods, [`draw()`] is a pure function of it, and [`run`]
//! wires the terminal and the [`sources`] to them. Events are applied as
//! they come but drawn at most [`FRAME`] apart, so a drill of thousands of
//! people costs at most ten frames a second.
//!
//! # Layout
//! - [`app`]: [`App`], the view's state, and what keys do.
//! - [`draw`](mod@draw): drawing [`App`] onto a frame.
//! - [`map`]: fitting the map into the terminal; area outlines.
//! - [`sources`]: the tasks that feed the view (events, people, requests,
//!   keys).

pub mod app;
pub mod draw;
pub mod map;
pub mod sources;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pingji_proto::v1 as pb;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::Event as TerminalEvent;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use self::app::Action;
pub use self::app::App;
pub use self::draw::draw;
use self::sources::{Fetch, Update};
use crate::cli::FeedStart;
use crate::connection::Connection;
use crate::error::ConsoleError;
use pingji_client::labels;

/// Shortest time between two frames: at most ten a second.
pub const FRAME: Duration = Duration::from_millis(100);
/// A frame at least this often, for the clock and the ages.
const IDLE_REDRAW: Duration = Duration::from_secs(1);
/// Shortest time between two reads of the open incidents.
const INCIDENTS_EVERY: Duration = Duration::from_secs(1);
/// Updates applied at most in one go before keys get a turn.
const COALESCE: usize = 5000;
/// Room in the update channel.
const UPDATE_QUEUE: usize = 4096;
/// How long the tasks get to stop at the end.
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// Runs the live view until the user quits; the feed starts at `start`.
pub async fn run(connection: Connection, start: FeedStart) -> Result<(), ConsoleError> {
    let mut client = connection.commands();
    // Read what the view starts with before taking over the terminal, so
    // that an unreachable or failing dispatcher is one line on stderr.
    let areas_request = pb::ListAreasRequest { level: pb::AreaLevel::Unspecified as i32, with_geometry: true };
    let areas = client.list_areas(areas_request).await?.into_inner();
    let incidents =
        client.list_incidents(pb::ListIncidentsRequest { open_only: true, limit: 0, ..Default::default() }).await?.into_inner();
    let callups = client.callup_status(pb::CallupStatusRequest { area_id: String::new(), open_only: true }).await?.into_inner();
    let mut app = App::new(connection.url());
    app.set_areas(&areas);
    app.set_incidents(&incidents.incidents);
    app.set_now(labels::now_ms());
    app.set_callups(&callups.callups);

    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            // Raw mode may be on already: leave the terminal as it was.
            let _ = ratatui::try_restore();
            return Err(ConsoleError::Terminal(error));
        }
    };
    let result = run_view(&mut terminal, app, connection, start).await;
    let restored = ratatui::try_restore().map_err(ConsoleError::Terminal);
    result.and(restored)
}

async fn run_view(
    terminal: &mut DefaultTerminal,
    mut app: App,
    connection: Connection,
    start: FeedStart,
) -> Result<(), ConsoleError> {
    let client = connection.commands();
    let (stop, shutdown) = watch::channel(false);
    let (updates_sender, mut updates) = mpsc::channel(UPDATE_QUEUE);
    let (fetch_sender, fetch_requests) = mpsc::channel(8);
    let (keys_sender, mut keys) = mpsc::channel(64);
    let tasks = [
        tokio::spawn(sources::stream_events(connection.clone(), start, updates_sender.clone(), shutdown.clone())),
        tokio::spawn(sources::stream_people(connection, updates_sender.clone(), shutdown.clone())),
        tokio::spawn(sources::fetch(client, fetch_requests, updates_sender, shutdown)),
    ];
    let stop_keys = Arc::new(AtomicBool::new(false));
    let key_reader = {
        let stop_keys = Arc::clone(&stop_keys);
        std::thread::Builder::new()
            .name("pingji-keys".into())
            .spawn(move || sources::read_keys(keys_sender, stop_keys))
            .map_err(ConsoleError::Terminal)?
    };

    let result = view_loop(terminal, &mut app, &mut updates, &mut keys, &fetch_sender).await;

    let _ = stop.send(true);
    stop_keys.store(true, Ordering::Relaxed);
    // Dropping the receivers unblocks a sender waiting for room.
    drop(updates);
    drop(keys);
    for task in tasks {
        let _ = tokio::time::timeout(STOP_WITHIN, task).await;
    }
    let key_result = tokio::task::spawn_blocking(move || key_reader.join()).await;
    let key_error = match key_result {
        Ok(Ok(Err(error))) => Some(ConsoleError::Terminal(error)),
        _ => None,
    };
    result?;
    key_error.map_or(Ok(()), Err)
}

async fn view_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    updates: &mut mpsc::Receiver<Update>,
    keys: &mut mpsc::Receiver<TerminalEvent>,
    fetch: &mpsc::Sender<Fetch>,
) -> Result<(), ConsoleError> {
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut changed = true;
    let mut last_draw: Option<Instant> = None;
    let mut last_incidents_read = Instant::now();
    loop {
        tokio::select! {
            update = updates.recv() => {
                let Some(update) = update else { return Ok(()) };
                apply(app, update);
                // Coalesce: take whatever else is waiting before the next frame.
                for _ in 0..COALESCE {
                    match updates.try_recv() {
                        Ok(update) => apply(app, update),
                        Err(_) => break,
                    }
                }
                changed = true;
            }
            key = keys.recv() => {
                // The key reader ended: the terminal is gone.
                let Some(key) = key else { return Ok(()) };
                if let TerminalEvent::Key(key) = key {
                    match app.handle_key(key) {
                        Action::Quit => return Ok(()),
                        Action::ShowIncident(id) => {
                            let _ = fetch.try_send(Fetch::Incident(id));
                        }
                        Action::None => {}
                    }
                }
                changed = true;
            }
            _ = frames.tick() => {
                app.set_now(labels::now_ms());
                if app.areas_stale() && fetch.try_send(Fetch::Areas).is_ok() {
                    app.areas_requested();
                }
                if last_incidents_read.elapsed() >= INCIDENTS_EVERY {
                    let detail = app.stale_detail().map(str::to_string);
                    let incidents_sent = !app.incidents_stale() || fetch.try_send(Fetch::OpenIncidents).is_ok();
                    let detail_sent = detail.is_none_or(|id| fetch.try_send(Fetch::Incident(id)).is_ok());
                    if incidents_sent && detail_sent {
                        app.refresh_requested();
                        last_incidents_read = Instant::now();
                    }
                }
                if changed || last_draw.is_none_or(|at| at.elapsed() >= IDLE_REDRAW) {
                    terminal.draw(|frame| draw(frame, app)).map_err(ConsoleError::Terminal)?;
                    changed = false;
                    last_draw = Some(Instant::now());
                }
            }
        }
    }
}

fn apply(app: &mut App, update: Update) {
    match update {
        Update::Event(event) => app.apply_event(&event),
        Update::Link(link) => app.set_link(link),
        Update::People(people) => {
            app.set_people(people);
            app.set_problem(None);
        }
        Update::Incidents(incidents) => app.set_incidents(&incidents),
        Update::Detail(incident) => app.set_detail(*incident),
        Update::Areas(areas) => app.set_areas(&areas),
        Update::Problem(problem) => app.set_problem(problem),
    }
}
