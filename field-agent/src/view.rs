//! Drawing the [`App`] with ratatui: `draw(frame, &app)` and nothing else,
//! so that it can be tested on a `TestBackend`.
//!
//! From the top: the person and the connection, the offer (with its
//! countdown) or the assignment, recent messages, and the keys. A decline
//! reason or feedback prompt opens over the middle.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::{
    App, Connection, DECLINE_REASONS, FIELD_REPORT_QUESTION, HELP_QUESTION, Prompt, countdown_text, distance_text, eta_text,
};
use crate::event::{mode_name, status_name};

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, middle, messages, keys] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(7), Constraint::Min(3), Constraint::Length(1)])
            .areas(frame.area());
    draw_header(frame, app, header);
    draw_task(frame, app, middle);
    draw_messages(frame, app, messages);
    frame.render_widget(Paragraph::new(key_help(app)).style(Style::new().fg(Color::Gray)), keys);
    draw_prompt(frame, app, middle);
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let who = if app.name.is_empty() { app.agent_id.clone() } else { format!("{} ({})", app.agent_id, app.name) };
    let (connection_text, connection_style) = connection_line(app);
    let mode_style = match app.mode {
        pingji_proto::v1::Mode::Normal | pingji_proto::v1::Mode::Unspecified => Style::new(),
        pingji_proto::v1::Mode::EmergencyIv => Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
        pingji_proto::v1::Mode::EmergencyIii => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        pingji_proto::v1::Mode::EmergencyIi => Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD),
        pingji_proto::v1::Mode::EmergencyI => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    };
    let interval =
        if app.location_interval.is_zero() { String::new() } else { format!(", every {} s", app.location_interval.as_secs()) };
    let lines = vec![
        Line::from(Span::styled(connection_text, connection_style)),
        Line::from(vec![
            Span::raw("status: "),
            Span::styled(status_name(app.status), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw("   mode: "),
            Span::styled(mode_name(app.mode), mode_style),
            Span::raw(format!("   location: {}{interval}", app.location_note)),
        ]),
    ];
    let block = Block::default().borders(Borders::ALL).title(format!(" Pingji field agent: {who} "));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn connection_line(app: &App) -> (String, Style) {
    match &app.connection {
        Connection::Connecting { attempt: 0 } => (format!("connecting to {} ...", app.server), Style::new().fg(Color::Yellow)),
        Connection::Connecting { attempt } => {
            (format!("reconnecting to {} (attempt {attempt}) ...", app.server), Style::new().fg(Color::Yellow))
        }
        Connection::Connected => (format!("connected to {}", app.server), Style::new().fg(Color::Green)),
        // The error itself is in the messages, where there is room for it.
        Connection::WaitingToRetry { .. } => {
            let seconds = app.retry_in_s().unwrap_or(0);
            (format!("connection lost, reconnecting in {seconds} s"), Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        }
        Connection::Stopped { error: None } => ("session closed".to_string(), Style::new().fg(Color::Gray)),
        Connection::Stopped { error: Some(error) } => {
            (format!("stopped: {error}"), Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        }
    }
}

fn draw_task(frame: &mut Frame, app: &App, area: Rect) {
    if let Some(offer) = &app.offer {
        let urgency = if offer.priority == 1 { " (most urgent)" } else { "" };
        let countdown = countdown_text(offer, app.now_ms);
        let countdown_style = if offer.time_left(app.now_ms).as_secs() < 30 {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        let mut lines = vec![
            Line::from(vec![
                Span::styled(offer.category.clone(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!("   priority {}{urgency}", offer.priority)),
            ]),
            Line::from(format!("{} away, {}", distance_text(offer.distance_m), eta_text(offer.eta))),
            Line::from(vec![Span::raw("answer within "), Span::styled(countdown, countdown_style)]),
        ];
        if !offer.required_skills.is_empty() {
            lines.push(Line::from(format!("needs: {}", offer.required_skills.join(", "))));
        }
        if !offer.description.is_empty() {
            lines.push(Line::from(offer.description.clone()));
        }
        if app.accepting {
            lines.push(Line::from(Span::styled("accept sent, waiting for confirmation", Style::new().fg(Color::Yellow))));
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(Color::Yellow))
            .title(format!(" Offer {} ", offer.offer_id));
        frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: true }), area);
        return;
    }
    if let Some(assignment) = &app.assignment {
        let progress = if assignment.arrived { "on site: press c when done" } else { "on the way: press r when you arrive" };
        let mut lines = vec![
            Line::from(vec![
                Span::styled(assignment.category.clone(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!("   priority {}", assignment.priority)),
            ]),
            Line::from(progress),
        ];
        if !assignment.description.is_empty() {
            lines.push(Line::from(assignment.description.clone()));
        }
        if let Some((due_ms, misses)) = app.safety_due {
            let left_s = (due_ms - app.now_ms) / 1000;
            let (text, style) = if left_s <= 0 || misses > 0 {
                ("报平安 SAFETY CHECK-IN DUE NOW: press s".to_string(), Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
            } else {
                (format!("报平安 safety check-in due in {} min {} s: press s", left_s / 60, left_s % 60), Style::new())
            };
            lines.push(Line::from(Span::styled(text, style)));
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(Color::Green))
            .title(format!(" Assignment {} ", assignment.incident_id));
        frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: true }), area);
        return;
    }
    let waiting = match app.status {
        pingji_proto::v1::AgentStatus::OffDuty => "off duty: press v to go available",
        _ => "no offer; waiting for one",
    };
    let block = Block::default().borders(Borders::ALL).title(" Offer ");
    frame.render_widget(Paragraph::new(waiting).block(block), area);
}

fn draw_messages(frame: &mut Frame, app: &App, area: Rect) {
    // The newest notices that fit, each wrapped over as many rows as it
    // needs (estimated by characters; wide characters may take one more).
    let rows = usize::from(area.height.saturating_sub(2));
    let width = usize::from(area.width.saturating_sub(2)).max(1);
    let mut used = 0;
    let mut shown: Vec<&String> = Vec::new();
    for notice in app.notices.iter().rev() {
        let needs = notice.chars().count().div_ceil(width).max(1);
        if used + needs > rows {
            break;
        }
        used += needs;
        shown.push(notice);
    }
    let lines: Vec<Line> = shown.into_iter().rev().map(|notice| Line::from(notice.as_str())).collect();
    let block = Block::default().borders(Borders::ALL).title(" Messages ");
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

fn key_help(app: &App) -> &'static str {
    match app.prompt {
        // A call-up waiting for a check-in comes first; v and o still work.
        Prompt::None if app.callup.is_some() => {
            " k CHECK IN  a accept  d decline  r arrived  c complete  f report  h 求助  q quit"
        }
        Prompt::None if app.assignment.is_some() => " s 报平安 safe  r arrived  c complete  f report  h 求助 help  q quit",
        Prompt::None => " a accept  d decline  r arrived  c complete  f report  v/o on/off duty  h 求助 help  q quit",
        Prompt::ConfirmHelp => " y / Enter: send the help call   any other key: cancel",
        Prompt::DeclineReason { .. } => " 1-5 or arrows and Enter: choose a reason   Esc: cancel",
        Prompt::DeclineOther { .. } | Prompt::Feedback { .. } | Prompt::FieldReport { .. } => {
            " type, Enter: send   Backspace: erase   Esc: cancel"
        }
    }
}

fn draw_prompt(frame: &mut Frame, app: &App, area: Rect) {
    let (title, lines) = match &app.prompt {
        Prompt::None => return,
        Prompt::DeclineReason { selected, .. } => {
            let lines = DECLINE_REASONS
                .iter()
                .enumerate()
                .map(|(index, reason)| {
                    let text = format!("{} {reason}", index + 1);
                    if index == *selected {
                        Line::from(Span::styled(format!("> {text}"), Style::new().add_modifier(Modifier::REVERSED)))
                    } else {
                        Line::from(format!("  {text}"))
                    }
                })
                .collect();
            (" Why decline? ", lines)
        }
        Prompt::DeclineOther { text, .. } => (" Other reason ", vec![Line::from(format!("{text}_"))]),
        Prompt::ConfirmHelp => (" 求助 Help ", vec![Line::from(HELP_QUESTION)]),
        Prompt::FieldReport { text } => {
            (" Field report ", vec![Line::from(FIELD_REPORT_QUESTION), Line::from(format!("{text}_"))])
        }
        Prompt::Feedback { incident_id, text } => (
            " Feedback ",
            vec![Line::from(format!("what did you find and do at {incident_id}?")), Line::from(format!("{text}_"))],
        ),
    };
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = area.width.saturating_sub(8).max(20).min(area.width);
    let popup = Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height };
    frame.render_widget(Clear, popup);
    let block = Block::default().borders(Borders::ALL).border_style(Style::new().fg(Color::Cyan)).title(title);
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), popup);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pingji_proto::v1 as pb;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::event::{AgentEvent, IncidentId, Offer, OfferId, Welcome};

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        terminal.draw(|frame| draw(frame, app)).expect("draws");
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn welcomed_app() -> App {
        let mut app = App::new("p0001", "http://127.0.0.1:50051", "fixed point");
        app.apply(&AgentEvent::Welcome(Welcome {
            agent_id: "p0001".to_string(),
            name: "Huang Lei".to_string(),
            status: pb::AgentStatus::Available,
            mode: pb::Mode::EmergencyIi,
            location_interval: Duration::from_secs(15),
            open_offers: 0,
            current_incident: None,
            resumed: false,
        }));
        app
    }

    fn offer() -> Offer {
        Offer {
            offer_id: OfferId::new("inc-000007-o2"),
            incident_id: IncidentId::new("inc-000007"),
            category: "flood".to_string(),
            priority: 1,
            location: None,
            distance_m: 1250.0,
            eta: Duration::from_secs(310),
            deadline_ms: 1_700_000_095_000,
            required_skills: vec!["rescue".to_string()],
            description: "water in the basement of building 3".to_string(),
        }
    }

    #[test]
    fn an_offer_is_drawn_with_its_countdown() {
        let mut app = welcomed_app();
        app.now_ms = 1_700_000_000_000;
        app.apply(&AgentEvent::Offer(offer()));
        let text = screen(&app, 80, 24);
        assert!(text.contains("Offer inc-000007-o2"), "{text}");
        assert!(text.contains("flood"), "{text}");
        assert!(text.contains("priority 1 (most urgent)"), "{text}");
        assert!(text.contains("1.2 km away, about 6 min"), "{text}");
        assert!(text.contains("answer within 1:35"), "{text}");
        assert!(text.contains("needs: rescue"), "{text}");
        assert!(text.contains("emergency II (orange)"), "{text}");
        assert!(text.contains("connected to http://127.0.0.1:50051"), "{text}");

        app.now_ms += 60_000;
        assert!(screen(&app, 80, 24).contains("answer within 0:35"));
        app.now_ms += 60_000;
        assert!(screen(&app, 80, 24).contains("answer within time is up"));
    }

    #[test]
    fn reconnecting_in_n_seconds_is_drawn() {
        let mut app = welcomed_app();
        app.now_ms = 5_000;
        app.apply(&AgentEvent::ConnectionLost { error: "transport error".to_string(), retry_in: Duration::from_millis(3_200) });
        let text = screen(&app, 80, 24);
        assert!(text.contains("connection lost, reconnecting in 4 s"), "{text}");
        assert!(text.contains("connection lost: transport error"), "{text}");
        app.apply(&AgentEvent::Reconnecting { attempt: 3 });
        assert!(screen(&app, 80, 24).contains("reconnecting to http://127.0.0.1:50051 (attempt 3)"));
    }

    #[test]
    fn the_decline_prompt_lists_the_reasons() {
        use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = welcomed_app();
        app.apply(&AgentEvent::Offer(offer()));
        app.handle_key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::NONE));
        app.handle_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        let text = screen(&app, 80, 24);
        for reason in ["1 too far", "> 2 busy", "3 lacking skill", "4 unwell", "5 other"] {
            assert!(text.contains(reason), "{reason} missing in\n{text}");
        }
        assert!(text.contains("Why decline?"), "{text}");
    }

    #[test]
    fn an_assignment_and_a_stopped_session_are_drawn() {
        let mut app = welcomed_app();
        app.apply(&AgentEvent::AssignmentConfirmed(Offer { deadline_ms: 0, ..offer() }));
        let text = screen(&app, 80, 24);
        assert!(text.contains("Assignment inc-000007"), "{text}");
        assert!(text.contains("press r when you arrive"), "{text}");
        assert!(text.contains("status: busy"), "{text}");
        app.apply(&AgentEvent::Stopped { error: Some("not_found: agent p0001 is not on the roster".to_string()) });
        assert!(screen(&app, 80, 24).contains("stopped: not_found: agent p0001 is not on the roster"));
    }

    #[test]
    fn long_messages_wrap_and_the_newest_stays_in_view() {
        let mut app = welcomed_app();
        for number in 0..12 {
            app.notice(format!("notice {number}: {}", "a long explanation of what happened ".repeat(3)));
        }
        app.notice("the newest notice");
        let text = screen(&app, 80, 24);
        assert!(text.contains("the newest notice"), "{text}");
        assert!(!text.contains("notice 0:"), "{text}");
    }

    #[test]
    fn the_field_report_prompt_asks_what_you_see() {
        use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = welcomed_app();
        assert!(screen(&app, 80, 24).contains("f report"));
        app.handle_key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::NONE));
        for character in "flooding: gate 3".chars() {
            app.handle_key(KeyEvent::new(KeyCode::Char(character), KeyModifiers::NONE));
        }
        let text = screen(&app, 80, 24);
        assert!(text.contains("Field report"), "{text}");
        assert!(text.contains("what do you see? (category: text)"), "{text}");
        assert!(text.contains("flooding: gate 3_"), "{text}");
        app.apply(&AgentEvent::CallUp {
            callup_id: "callup-0001".to_string(),
            area_id: "d1".to_string(),
            reason: "台风".to_string(),
            deadline_ms: 0,
        });
        app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        assert!(screen(&app, 80, 24).contains("k CHECK IN"));
    }

    #[test]
    fn a_tiny_terminal_does_not_panic() {
        let mut app = welcomed_app();
        app.apply(&AgentEvent::Offer(offer()));
        app.handle_key(ratatui::crossterm::event::KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Char('d'),
            ratatui::crossterm::event::KeyModifiers::NONE,
        ));
        for (width, height) in [(10, 5), (1, 1), (30, 10)] {
            screen(&app, width, height);
        }
    }
}
