//! Drawing the live view: a pure function of [`App`] onto a ratatui frame,
//! so that it can be tested on a `TestBackend`.
//!
//! Laid out for 80×24 first: there, every column of the incident list
//! shows (the map gives way to it), long ids keep the end that tells them
//! apart, and an incident's details take the whole top of the screen.
//!
//! ```text
//!  header: open incidents, people on the map by status, time, server
//!  banners: one line per area in an emergency (at most three)
//!  alert: incidents nobody on the roster could staff, grids below their
//!         minimum, open call-ups (only when there are any)
//!  ┌ map ─────────────────────┐┌ open incidents ───────┐
//!  │ outlines, people, ▲1 ... ││ P ID STATUS STAFF AGE │
//!  │ (or the selected         ││                       │
//!  │  incident's details)     ││                       │
//!  └──────────────────────────┘└───────────────────────┘
//!  ┌ events ──────────────────────────────────────────┐
//!  └──────────────────────────────────────────────────┘
//!  footer: keys, link state
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::canvas::{Canvas, Context, Line as CanvasLine, Points};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use super::app::{App, Banner, Link, Pane};
use super::map::Outline;
use crate::table::{display_width, truncate_start};
use pingji_client::labels;
use pingji_proto::v1 as pb;

/// Smallest terminal the view draws in.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;
/// From this width up, an incident's details replace only the map; below,
/// they take the whole top (the list beside them would be too narrow).
const WIDE: u16 = 100;
/// The incident list gets at least this many columns (of the width less
/// [`MAP_MIN_WIDTH`]): at 80 columns every column shows, WHAT included.
const INCIDENTS_MIN_WIDTH: u16 = 48;
const MAP_MIN_WIDTH: u16 = 24;
/// Columns of the incident list besides ID and WHAT, with the gaps
/// between all six: P, STATUS, STAFF, AGE.
const INCIDENT_FIXED_COLUMNS: usize = 2 + 7 + 5 + 5 + 5;
/// WHAT keeps at least this many columns; longer ids are cut from the left.
const MIN_WHAT: usize = 8;
/// Banner lines at most; more areas in emergency are summed up in the last.
const MAX_BANNERS: usize = 3;
/// Above this many grids their outlines are left out: at city scale they
/// would fill the canvas with lines and cost every frame.
const MAX_GRID_OUTLINES: usize = 3000;

const ORANGE: Color = Color::Indexed(208);

/// Draws the whole view.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let message =
            format!("terminal too small: {}x{}; make it at least {MIN_WIDTH}x{MIN_HEIGHT} (q quits)", area.width, area.height);
        frame.render_widget(Paragraph::new(message).wrap(Wrap { trim: true }), area);
        return;
    }
    let banners = app.banners();
    let banner_lines = banners.len().min(MAX_BANNERS) as u16;
    let alert_lines = u16::from(app.has_alerts());
    let [header, banner_area, alert_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_lines),
        Constraint::Length(alert_lines),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    // The feed spans the full width below: its lines are the longest.
    let [top, feed_area] = Layout::vertical([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(body);
    let incidents_width = (top.width * 45 / 100).max(INCIDENTS_MIN_WIDTH.min(top.width.saturating_sub(MAP_MIN_WIDTH)));
    let [left, incidents_area] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(incidents_width)]).areas(top);

    draw_header(frame, header, app);
    draw_banners(frame, banner_area, &banners);
    draw_alert(frame, alert_area, app);
    match app.detail() {
        Some(detail) if area.width < WIDE => draw_detail(frame, top, app, detail),
        Some(detail) => {
            draw_detail(frame, left, app, detail);
            draw_incidents(frame, incidents_area, app);
        }
        None => {
            draw_map(frame, left, app);
            draw_incidents(frame, incidents_area, app);
        }
    }
    draw_feed(frame, feed_area, app);
    draw_footer(frame, footer, app);
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let style = if focused { Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD) } else { Style::new() };
    Block::bordered().title(title).border_style(style)
}

pub fn mode_colour(mode: i32) -> Color {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::EmergencyI) => Color::Red,
        Ok(pb::Mode::EmergencyIi) => ORANGE,
        Ok(pb::Mode::EmergencyIii) => Color::Yellow,
        Ok(pb::Mode::EmergencyIv) => Color::Blue,
        _ => Color::Gray,
    }
}

fn status_colour(status: i32) -> Color {
    match pb::AgentStatus::try_from(status) {
        Ok(pb::AgentStatus::Available) => Color::Green,
        Ok(pb::AgentStatus::Busy) => Color::Magenta,
        _ => Color::DarkGray,
    }
}

fn priority_colour(priority: i32) -> Color {
    match priority {
        1 => Color::Red,
        2 => ORANGE,
        3 => Color::Yellow,
        _ => Color::Cyan,
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let (available, busy, off_duty) = app.people_counts();
    let clock = labels::utc_time(app.now_ms);
    // The server last and without its scheme: at 80 columns it fits.
    let server = app.server.split_once("://").map_or(app.server.as_str(), |(_, rest)| rest);
    let line = Line::from(vec![
        Span::styled(" Pingji watch ", Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)),
        Span::raw(format!(" {} open │ ", app.open_incidents().len())),
        Span::styled(format!("{available} available"), Style::new().fg(Color::Green)),
        Span::raw(" "),
        Span::styled(format!("{busy} busy"), Style::new().fg(Color::Magenta)),
        Span::raw(" "),
        Span::styled(format!("{off_duty} off"), Style::new().fg(Color::DarkGray)),
        Span::raw(format!(" │ {} │ {server}", clock.get(11..).unwrap_or(""))),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_banners(frame: &mut Frame, area: Rect, banners: &[Banner]) {
    if area.height == 0 {
        return;
    }
    let shown = if banners.len() > MAX_BANNERS { MAX_BANNERS - 1 } else { banners.len() };
    let mut lines: Vec<Line> = banners[..shown]
        .iter()
        .map(|banner| {
            let mode = labels::mode_text(banner.mode).to_uppercase();
            let reason = banner.reason.as_deref().map(|reason| format!(" — {reason}")).unwrap_or_default();
            let text = format!(" ⚠ {mode}  {} ({}){reason}", banner.name, banner.area_id);
            let style = Style::new().bg(mode_colour(banner.mode)).fg(Color::Black).add_modifier(Modifier::BOLD);
            Line::from(Span::styled(text, style)).style(style)
        })
        .collect();
    if banners.len() > shown {
        let style = Style::new().bg(Color::Red).fg(Color::Black).add_modifier(Modifier::BOLD);
        let more = format!(" ⚠ +{} more areas in emergency (pingji mode show lists them)", banners.len() - shown);
        lines.push(Line::from(Span::styled(more, style)).style(style));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// What a part of the alert line is about, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alert {
    /// Incidents nobody on the whole roster could staff.
    Unstaffable,
    /// Missed safety check-ins and help calls (求助): people in danger.
    Safety,
    /// Grids below their minimum of available people.
    LowGrids,
    /// Open call-ups and their check-ins.
    Callups,
}

/// The alert line's parts, most pressing first: incidents nobody on the
/// roster could staff, grids below their minimum, and open call-ups with
/// their check-ins. Each lists what fits in `width` columns and says how
/// many more there are; a part after the first is left out when not even
/// one of its items fits after the parts before it.
pub fn alert_parts(app: &App, width: usize) -> Vec<(Alert, String)> {
    let unstaffable: Vec<String> = app.unstaffable().map(|alert| format!("{} {}", alert.incident_id, alert.lacking)).collect();
    // The time of day (UTC) of each: "worker missed 2 → welfare inc-000007 10:20".
    let safety: Vec<String> = app
        .safety_alerts()
        .map(|alert| {
            let time = labels::utc_time(alert.at_ms);
            let clock = time.get(11..16).unwrap_or(&time);
            format!("{} {} {clock}", alert.agent_id, alert.what)
        })
        .collect();
    let low: Vec<String> = app.low_grids().map(|grid| format!("{} {}/{}", grid.grid_id, grid.available, grid.minimum)).collect();
    let calls: Vec<String> = app
        .callups()
        .map(|callup| {
            let tally =
                format!("{} {} {}/{} checked in", callup.callup_id, callup.area_id, callup.checked_in.len(), callup.called);
            if callup.deadline_passed && callup.checked_in.len() < callup.called {
                format!("{tally} ({} missing)", callup.called - callup.checked_in.len())
            } else {
                tally
            }
        })
        .collect();
    let grids_noun = if low.len() == 1 { "grid" } else { "grids" };
    let calls_noun = if calls.len() == 1 { "call-up" } else { "call-ups" };
    // Each part in full, and in short for when its first item does not fit.
    let wanted = [
        (Alert::Safety, format!(" ⚠ {} safety: ", safety.len()), format!(" ⚠ {} safety", safety.len()), safety),
        (
            Alert::Unstaffable,
            format!(" ✖ {} unstaffable: ", unstaffable.len()),
            format!(" ✖ {} unstaffable", unstaffable.len()),
            unstaffable,
        ),
        (
            Alert::LowGrids,
            format!(" ▼ {} {grids_noun} below minimum: ", low.len()),
            format!(" ▼ {} {grids_noun} low", low.len()),
            low,
        ),
        (Alert::Callups, " ⚑ call-ups: ".to_string(), format!(" ⚑ {} {calls_noun}", calls.len()), calls),
    ];
    let mut parts = Vec::new();
    let mut used = 0;
    for (alert, lead, short, items) in wanted {
        let Some(first) = items.first() else {
            continue;
        };
        let room = width.saturating_sub(used);
        let text = if parts.is_empty() || display_width(&lead) + display_width(first) <= room {
            fit_list(&lead, &items, room)
        } else if display_width(&short) <= room {
            short
        } else {
            continue;
        };
        used += display_width(&text);
        parts.push((alert, text));
    }
    parts
}

/// `lead` and as many of `items` as fit in `width`, then "+N more".
fn fit_list(lead: &str, items: &[String], width: usize) -> String {
    let mut text = lead.to_string();
    for (index, item) in items.iter().enumerate() {
        let left = items.len() - index - 1;
        let separator = if index == 0 { "" } else { ", " };
        let more = if left > 0 { format!(", +{left} more") } else { String::new() };
        let fits = display_width(&text) + display_width(separator) + display_width(item) + display_width(&more) <= width;
        if !fits {
            let rest = items.len() - index;
            text.push_str(&format!("{}+{rest} more", if index == 0 { "" } else { ", " }));
            return text;
        }
        text.push_str(separator);
        text.push_str(item);
    }
    text
}

fn draw_alert(frame: &mut Frame, area: Rect, app: &App) {
    if area.height == 0 {
        return;
    }
    let spans: Vec<Span> = alert_parts(app, usize::from(area.width))
        .into_iter()
        .map(|(alert, text)| {
            let style = match alert {
                Alert::Unstaffable => Style::new().bg(Color::Red).fg(Color::White).add_modifier(Modifier::BOLD),
                Alert::Safety => Style::new().bg(Color::Magenta).fg(Color::White).add_modifier(Modifier::BOLD),
                Alert::LowGrids => Style::new().bg(Color::Yellow).fg(Color::Black).add_modifier(Modifier::BOLD),
                Alert::Callups => Style::new().bg(Color::Cyan).fg(Color::Black),
            };
            Span::styled(text, style)
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn outline_style(outline: &Outline) -> Option<Color> {
    match pb::AreaLevel::try_from(outline.level) {
        Ok(pb::AreaLevel::Grid) => Some(Color::DarkGray),
        Ok(pb::AreaLevel::Community) => Some(Color::Gray),
        Ok(pb::AreaLevel::Street) => Some(Color::Blue),
        Ok(pb::AreaLevel::District) => Some(Color::Cyan),
        Ok(pb::AreaLevel::City) => Some(Color::White),
        // Buildings are too small to see at this scale.
        _ => None,
    }
}

fn draw_rings(context: &mut Context, outline: &Outline, colour: Color) {
    for ring in &outline.rings {
        for pair in ring.windows(2) {
            let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
            context.draw(&CanvasLine { x1, y1, x2, y2, color: colour });
        }
    }
}

fn draw_map(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_block(format!("Map: {} people", app.people().len()), app.focus == Pane::Map);
    let inner = block.inner(area);
    let Some(bounds) = app.bounds() else {
        let message = Paragraph::new("no areas on the map yet; import them with `pingji areas import`").wrap(Wrap { trim: true });
        frame.render_widget(message.block(block), area);
        return;
    };
    let (x_bounds, y_bounds) = bounds.fit(inner.width, inner.height);
    let outlines = app.outlines();
    let grids = outlines.iter().filter(|outline| outline.level == pb::AreaLevel::Grid as i32).count();
    let mut by_status: [Vec<(f64, f64)>; 3] = Default::default();
    for person in app.people() {
        let slot = match pb::AgentStatus::try_from(person.status) {
            Ok(pb::AgentStatus::Available) => 0,
            Ok(pb::AgentStatus::Busy) => 1,
            _ => 2,
        };
        by_status[slot].push((person.lon, person.lat));
    }
    let incidents = app.open_incidents();
    let selected = app.selected();
    let canvas =
        Canvas::default().block(block).marker(Marker::Braille).x_bounds(x_bounds).y_bounds(y_bounds).paint(move |context| {
            // Finest level first, so that wider borders are drawn over it.
            for outline in outlines.iter().rev() {
                if outline.level == pb::AreaLevel::Grid as i32 && grids > MAX_GRID_OUTLINES {
                    continue;
                }
                if let Some(colour) = outline_style(outline) {
                    draw_rings(context, outline, colour);
                }
            }
            context.layer();
            for outline in outlines.iter().filter(|outline| labels::is_emergency(outline.mode)) {
                draw_rings(context, outline, mode_colour(outline.mode));
            }
            context.layer();
            // Off duty first, available last: the people who can go are on top.
            for (slot, status) in [(2, pb::AgentStatus::OffDuty), (1, pb::AgentStatus::Busy), (0, pb::AgentStatus::Available)] {
                context.draw(&Points { coords: &by_status[slot], color: status_colour(status as i32) });
            }
            context.layer();
            for row in &incidents {
                let mut style = Style::new().fg(priority_colour(row.priority)).add_modifier(Modifier::BOLD);
                if selected == Some(row.id.as_str()) {
                    style = style.add_modifier(Modifier::REVERSED);
                }
                context.print(row.lon, row.lat, Span::styled(format!("▲{}", row.priority), style));
            }
        });
    frame.render_widget(canvas, area);
}

fn draw_incidents(frame: &mut Frame, area: Rect, app: &App) {
    let rows_data = app.open_incidents();
    let block = pane_block(format!("Open incidents: {}", rows_data.len()), app.focus == Pane::Incidents);
    if rows_data.is_empty() {
        frame.render_widget(Paragraph::new("no open incidents").block(block), area);
        return;
    }
    // As wide as the longest id, as long as WHAT keeps its room; a longer
    // id keeps its end, which tells the ids of one drill or shard apart.
    let inner_width = usize::from(area.width.saturating_sub(2));
    let id_room = inner_width.saturating_sub(INCIDENT_FIXED_COLUMNS + MIN_WHAT).max(4);
    let longest_id = rows_data.iter().map(|row| display_width(&row.id)).max().unwrap_or(2);
    let id_width = longest_id.clamp(2, id_room);
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|row| {
            Row::new(vec![
                Span::styled(format!("P{}", row.priority), Style::new().fg(priority_colour(row.priority))),
                Span::raw(truncate_start(&row.id, id_width)),
                // "reported" does not fit the column: a report awaits triage.
                Span::raw(if row.status == pb::IncidentStatus::Reported as i32 {
                    "triage"
                } else {
                    labels::incident_status_name(row.status)
                }),
                Span::raw(format!("{}/{}", row.assigned, row.headcount)),
                Span::raw(labels::age(row.reported_at_ms, app.now_ms)),
                Span::raw(row.category.clone()),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(2),
        Constraint::Length(u16::try_from(id_width).unwrap_or(u16::MAX)),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let highlight = if app.focus == Pane::Incidents {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let table = Table::new(rows, widths)
        .header(Row::new(vec!["P", "ID", "STATUS", "STAFF", "AGE", "WHAT"]).style(Style::new().add_modifier(Modifier::DIM)))
        .column_spacing(1)
        .block(block)
        .row_highlight_style(highlight);
    let mut state = TableState::default().with_selected(app.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

fn feed_colour(kind: &str) -> Color {
    match kind {
        "mode_switched" | "grid_staffing_low" | "callup_deadline_passed" | "incident_unstaffable" => Color::Red,
        "safety_check_missed" | "help_requested" => Color::Magenta,
        "safety_check_in" => Color::Green,
        "incident_reported" | "field_reported" | "plan_activated" | "callup_issued" => Color::Yellow,
        "checked_in" | "grid_staffing_restored" | "report_accepted" => Color::Green,
        "assigned" | "incident_staffed" | "assignment_completed" => Color::Green,
        "offer_declined" | "offer_timed_out" | "no_candidates" | "widened" => ORANGE,
        "incident_cancelled" | "incident_closed" => Color::Cyan,
        _ => Color::Gray,
    }
}

fn draw_feed(frame: &mut Frame, area: Rect, app: &App) {
    let feed = app.feed();
    let scroll = app.feed_scroll();
    let title = if scroll > 0 { format!("Events (scrolled back {scroll})") } else { "Events".to_string() };
    let block = pane_block(title, app.focus == Pane::Feed);
    let visible = usize::from(block.inner(area).height);
    let end = feed.len().saturating_sub(scroll);
    let start = end.saturating_sub(visible);
    let lines: Vec<Line> = feed
        .range(start..end)
        .map(|line| {
            let time = labels::utc_time(line.at_ms);
            Line::from(vec![
                Span::styled(format!("{} ", time.get(11..19).unwrap_or("")), Style::new().fg(Color::DarkGray)),
                Span::styled(line.text.clone(), Style::new().fg(feed_colour(&line.kind))),
            ])
        })
        .collect();
    let paragraph = if lines.is_empty() { Paragraph::new("waiting for events…") } else { Paragraph::new(lines) };
    frame.render_widget(paragraph.block(block), area);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, detail: Option<&pb::Incident>) {
    let title = format!("Incident {} (Esc closes)", app.selected().unwrap_or(""));
    let block = pane_block(title, true);
    let Some(incident) = detail else {
        frame.render_widget(Paragraph::new("loading…").block(block), area);
        return;
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} ", incident.category), bold),
            Span::styled(format!("P{} ", incident.priority), Style::new().fg(priority_colour(incident.priority))),
            Span::raw(format!(
                "{}  {} of {} {}",
                labels::incident_status_name(incident.status),
                incident.assignments.len(),
                incident.headcount,
                if incident.headcount == 1 { "person" } else { "people" }
            )),
        ]),
        Line::from(format!("reported {} ago by {}", labels::age(incident.reported_at_ms, app.now_ms), incident.reported_by)),
        Line::from(format!(
            "grid {}  mode {}{}  offered from {}",
            if incident.grid_id.is_empty() { "-" } else { &incident.grid_id },
            labels::mode_key(incident.mode),
            // A switch since it was reported: the mode it was first handled in.
            if incident.reported_mode != incident.mode && incident.reported_mode != pb::Mode::Unspecified as i32 {
                format!(" (reported in {})", labels::mode_key(incident.reported_mode))
            } else {
                String::new()
            },
            labels::level_name(incident.scope)
        )),
    ];
    if !incident.required_skills.is_empty() {
        lines.push(Line::from(format!("skills: {}", incident.required_skills.join(", "))));
    }
    if !incident.description.is_empty() {
        lines.push(Line::from(incident.description.clone()));
    }
    // Who is going first: in a small terminal the offers are cut, not them.
    lines.push(Line::from(Span::styled(format!("Assignments ({})", incident.assignments.len()), bold)));
    for assignment in &incident.assignments {
        let progress = if assignment.completed_at_ms > 0 {
            "completed"
        } else if assignment.arrived_at_ms > 0 {
            "on site"
        } else {
            "on the way"
        };
        let since = labels::age(assignment.assigned_at_ms, app.now_ms);
        lines.push(Line::from(format!(" {}  {progress}  assigned {since} ago", assignment.agent_id)));
    }
    lines.push(Line::from(Span::styled(format!("Offers ({})", incident.open_offers.len()), bold)));
    for offer in &incident.open_offers {
        let left_s = (offer.deadline_ms - app.now_ms).max(0) / 1000;
        lines.push(Line::from(format!(
            " {}  {}  ETA {}  {left_s}s left",
            offer.agent_id,
            labels::distance(offer.distance_m),
            labels::duration(offer.eta_s.round() as i64)
        )));
    }
    frame.render_widget(Paragraph::new(Text::from(lines)).wrap(Wrap { trim: false }).block(block), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let keys = Span::styled(" Tab pane  ↑↓/jk select  Enter details  Esc close  q quit ", Style::new().fg(Color::DarkGray));
    // A broken event stream matters most: the view is no longer live.
    let link = match (&app.link, &app.problem) {
        (Link::Reconnecting { attempt, in_s }, _) => {
            Span::styled(format!("reconnecting in {in_s} s (try {attempt})"), Style::new().fg(Color::Yellow))
        }
        (Link::Live, Some(problem)) => Span::styled(problem.clone(), Style::new().fg(Color::Red)),
        (Link::Live, None) => Span::styled("● live", Style::new().fg(Color::Green)),
    };
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(link.width().min(usize::from(area.width / 2)) as u16)])
            .areas(area);
    frame.render_widget(Paragraph::new(Line::from(keys)), left);
    frame.render_widget(Paragraph::new(Line::from(link)), right);
}
