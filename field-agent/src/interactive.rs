//! The full-screen program: sets up the terminal, reads keys on a small
//! input thread (crossterm's key reading blocks), and runs one loop that
//! takes session events, keys, track points and a redraw tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::crossterm::event::{self as terminal_event, Event as TerminalEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{Action, App};
use crate::client::AgentClient;
use crate::event::{AgentEvent, Location};
use crate::track::TrackPlayer;
use crate::view::draw;

/// How often the screen is redrawn when nothing happens (countdowns).
const REDRAW_EVERY: Duration = Duration::from_millis(250);
/// How long the input thread waits for a key before checking whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(100);

/// Runs the full-screen view until the person quits or `stop` resolves.
pub async fn run(
    client: AgentClient,
    mut events: mpsc::Receiver<AgentEvent>,
    mut app: App,
    mut track: Option<TrackPlayer>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let (keys, mut key_inbox) = mpsc::channel(64);
    let input_stop = Arc::new(AtomicBool::new(false));
    let input = {
        let input_stop = input_stop.clone();
        std::thread::Builder::new().name("field-agent-input".into()).spawn(move || read_keys(keys, &input_stop))?
    };
    let mut stop = std::pin::pin!(stop);
    let mut redraw = tokio::time::interval(REDRAW_EVERY);
    let far = Duration::from_secs(24 * 3600);
    let mut session_over = false;
    let result = loop {
        app.now_ms = now_ms();
        if let Err(error) = terminal.draw(|frame| draw(frame, &app)) {
            break Err(error);
        }
        let point_at = track.as_ref().and_then(TrackPlayer::next_at).unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            () = &mut stop => break Ok(()),
            _ = redraw.tick() => {}
            event = events.recv(), if !session_over => match event {
                Some(event) => {
                    app.now_ms = now_ms();
                    session_over = matches!(event, AgentEvent::Stopped { .. });
                    app.apply(&event);
                }
                None => session_over = true,
            },
            key = key_inbox.recv() => match key {
                Some(TerminalEvent::Key(key)) => match app.handle_key(key) {
                    Some(Action::Quit) => break Ok(()),
                    Some(action) => {
                        let here = track.as_ref().and_then(|track| track.location_at(Instant::now()));
                        carry_out(&client, &mut app, action, here);
                    }
                    None => {}
                },
                Some(_) => {}
                None => break Ok(()),
            },
            () = tokio::time::sleep_until(point_at) => {
                if let Some(at) = track.as_mut().and_then(|track| track.due(Instant::now())) {
                    let _ = client.report_location(at);
                }
            }
        }
    };
    input_stop.store(true, Ordering::Relaxed);
    ratatui::restore();
    client.close().await;
    // The thread notices the flag within one poll.
    let _ = tokio::task::spawn_blocking(move || input.join()).await;
    result
}

/// Hands an action to the session; `here` is where the person is, for a
/// field report.
fn carry_out(client: &AgentClient, app: &mut App, action: Action, here: Option<Location>) {
    let sent = match &action {
        Action::FieldReport { category, text } => match here {
            Some(at) => client.field_report(at, category, text, ""),
            None => {
                app.notice("report not sent: no location to report from (start with --at or --track)");
                return;
            }
        },
        Action::Accept(offer_id) => client.accept(offer_id),
        Action::Decline { offer_id, reason } => client.decline(offer_id, reason),
        Action::Arrived(incident_id) => client.arrived(incident_id),
        Action::Completed { incident_id, feedback } => client.completed(incident_id, feedback),
        Action::SetStatus(status) => client.set_status(*status),
        Action::CheckIn(callup) => client.check_in(callup),
        Action::SafetyCheckIn => client.safety_check_in(),
        // Where the person is now, else the dispatcher's last known position.
        Action::Help => client.help(here, ""),
        Action::Quit => Ok(()),
    };
    match sent {
        Ok(()) => app.action_sent(&action),
        Err(error) => app.notice(format!("not sent: {error}")),
    }
}

/// Reads terminal events until `stop` is set or nobody takes them.
fn read_keys(keys: mpsc::Sender<TerminalEvent>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match terminal_event::poll(INPUT_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        let Ok(event) = terminal_event::read() else {
            return;
        };
        if keys.blocking_send(event).is_err() {
            return;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}
