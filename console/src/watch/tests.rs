//! The live view drawn on ratatui's `TestBackend` in its key states, with
//! assertions on what lands in the buffer.

use pb::event::Body;
use pingji_client::events;
use pingji_proto::v1 as pb;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::style::Color;

use super::app::{Action, App, Link, Pane, PersonDot};
use super::draw::draw;
use crate::table::display_width;

const NOW_MS: i64 = 1_746_057_600_000;

fn square(min_lon: f64, min_lat: f64, size: f64) -> pb::Polygon {
    let corners = [(0.0, 0.0), (size, 0.0), (size, size), (0.0, size), (0.0, 0.0)];
    pb::Polygon {
        rings: vec![pb::Ring {
            points: corners.iter().map(|(east, north)| pb::Location::wgs84(min_lon + east, min_lat + north)).collect(),
        }],
    }
}

fn area(id: &str, name: &str, level: pb::AreaLevel, parent: &str, polygon: pb::Polygon) -> pb::Area {
    pb::Area {
        id: id.into(),
        name: name.into(),
        level: level as i32,
        parent_id: parent.into(),
        mode: pb::Mode::Normal as i32,
        effective_mode: pb::Mode::Normal as i32,
        centroid: None,
        polygons: vec![polygon],
    }
}

/// A small city: two districts side by side, a grid in the first.
fn sample_map() -> pb::ListAreasResponse {
    pb::ListAreasResponse {
        areas: vec![
            area("city", "明湖市", pb::AreaLevel::City, "", square(120.0, 30.0, 0.2)),
            area("d1", "东湖区", pb::AreaLevel::District, "city", square(120.0, 30.0, 0.1)),
            area("d2", "西山区", pb::AreaLevel::District, "city", square(120.1, 30.0, 0.1)),
            area("d1-g1", "柳岸社区第1网格", pb::AreaLevel::Grid, "d1", square(120.02, 30.02, 0.03)),
        ],
        service_centres: Vec::new(),
    }
}

fn event(seq: u64, actor: &str, body: Body) -> pb::Event {
    // The envelope's copy of the incident id, as the dispatcher fills it.
    let incident_id = match &body {
        Body::IncidentReported(pb::event::IncidentReported { incident_id, .. })
        | Body::IncidentStaffed(pb::event::IncidentStaffed { incident_id })
        | Body::IncidentClosed(pb::event::IncidentClosed { incident_id, .. })
        | Body::FieldReported(pb::event::FieldReported { incident_id, .. })
        | Body::ReportRejected(pb::event::ReportRejected { incident_id, .. }) => incident_id.clone(),
        _ => String::new(),
    };
    pb::Event {
        seq,
        at_ms: NOW_MS - 60_000,
        actor: actor.into(),
        kind: events::kind_name(&body).into(),
        incident_id,
        body: Some(body),
        ..Default::default()
    }
}

fn spec(at: (f64, f64), category: &str, priority: i32, headcount: u32) -> Option<pb::IncidentSpec> {
    Some(pb::IncidentSpec {
        location: Some(pb::Location::wgs84(at.0, at.1)),
        category: category.into(),
        priority,
        headcount,
        ..Default::default()
    })
}

fn reported(id: &str, priority: i32) -> Body {
    Body::IncidentReported(pb::event::IncidentReported {
        incident_id: id.into(),
        spec: spec((120.03, 30.03), "medical", priority, 2),
        scope: pb::AreaLevel::Grid as i32,
        ..Default::default()
    })
}

fn switched(area: &str, mode: pb::Mode, reason: &str) -> Body {
    switched_from(area, pb::Mode::Normal, mode, reason)
}

fn switched_from(area: &str, previous: pb::Mode, mode: pb::Mode, reason: &str) -> Body {
    Body::ModeSwitched(pb::event::ModeSwitched {
        area_id: area.into(),
        mode: mode as i32,
        previous: previous as i32,
        reason: reason.into(),
    })
}

fn staffed(id: &str) -> Body {
    Body::IncidentStaffed(pb::event::IncidentStaffed { incident_id: id.into() })
}

/// A view of the sample city with three people and one open incident.
fn sample_app() -> App {
    let mut app = App::new("http://127.0.0.1:50051");
    app.set_areas(&sample_map());
    app.set_now(NOW_MS);
    app.set_people(vec![
        PersonDot { id: "p1".into(), lon: 120.03, lat: 30.04, status: pb::AgentStatus::Available as i32 },
        PersonDot { id: "p2".into(), lon: 120.05, lat: 30.05, status: pb::AgentStatus::Busy as i32 },
        PersonDot { id: "p3".into(), lon: 120.15, lat: 30.05, status: pb::AgentStatus::OffDuty as i32 },
    ]);
    app.apply_event(&event(1, "operator:li", reported("inc-000001", 1)));
    app
}

fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| draw(frame, app)).expect("draw");
    terminal.backend().buffer().clone()
}

/// The buffer's rows as text; a wide character's hidden second cell is
/// skipped so that Chinese reads as written.
fn rows(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < area.width {
                let symbol = buffer[(x, y)].symbol();
                row.push_str(symbol);
                x += u16::try_from(display_width(symbol).max(1)).unwrap_or(1);
            }
            row
        })
        .collect()
}

fn screen(buffer: &Buffer) -> String {
    rows(buffer).join("\n")
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::from(code)
}

#[test]
fn the_normal_view_shows_map_incidents_feed_and_keys() {
    let buffer = render(&sample_app(), 80, 24);
    let lines = rows(&buffer);
    let text = screen(&buffer);
    assert!(lines[0].contains("Pingji watch"), "{text}");
    assert!(lines[0].contains("1 open"), "{text}");
    assert!(lines[0].contains("1 available 1 busy 1 off"), "{text}");
    assert!(text.contains("Map: 3 people"), "{text}");
    assert!(text.contains("Open incidents: 1"), "{text}");
    assert!(text.contains("P1 inc-000001 waiting 0/2"), "{text}");
    assert!(text.contains("Events"), "{text}");
    assert!(text.contains("inc-000001 medical P1 x2"), "{text}");
    assert!(lines[23].contains("q quit"), "{text}");
    assert!(lines[23].contains("● live"), "{text}");
    // The incident's marker is on the map, in the priority's colour.
    let marker = (0..24u16)
        .flat_map(|y| (0..44u16).map(move |x| (x, y)))
        .find(|&(x, y)| buffer[(x, y)].symbol() == "▲")
        .expect("an incident marker on the map");
    assert_eq!(buffer[marker].fg, Color::Red);
    assert!(!text.contains("EMERGENCY"), "no banner in normal mode: {text}");
}

#[test]
fn an_area_in_emergency_gets_a_banner() {
    let mut app = sample_app();
    app.apply_event(&event(2, "operator:li", switched("d1", pb::Mode::EmergencyIi, "台风登陆")));
    let buffer = render(&app, 80, 24);
    let lines = rows(&buffer);
    let text = screen(&buffer);
    assert!(lines[1].contains("⚠ EMERGENCY II (ORANGE)  东湖区 (d1) — 台风登陆"), "{text}");
    assert_eq!(buffer[(5, 1)].bg, Color::Indexed(208), "the banner is orange");
    // The district's outline is drawn in the grade's colour on the map.
    let orange_on_map =
        (3..16u16).flat_map(|y| (1..43u16).map(move |x| (x, y))).any(|cell| buffer[cell].fg == Color::Indexed(208));
    assert!(orange_on_map, "an orange outline on the map: {text}");
    assert!(text.contains("d1: normal -> emergency II (orange): 台风登陆"), "the switch is in the feed: {text}");
    // The district's children are in the emergency through it; its
    // neighbour is not.
    let effective = |id: &str| app.outlines().iter().find(|outline| outline.id == id).map(|outline| outline.effective_mode);
    assert_eq!(effective("d1-g1"), Some(pb::Mode::EmergencyIi as i32));
    assert_eq!(effective("d2"), Some(pb::Mode::Normal as i32));

    // Back to normal: the banner goes.
    app.apply_event(&event(3, "operator:li", switched_from("d1", pb::Mode::EmergencyIi, pb::Mode::Normal, "解除")));
    assert!(!screen(&render(&app, 80, 24)).contains("⚠ EMERGENCY"));
}

#[test]
fn many_areas_in_emergency_are_summed_up_in_the_last_banner() {
    let mut app = sample_app();
    app.apply_event(&event(2, "operator:li", switched("city", pb::Mode::EmergencyIv, "演练")));
    app.apply_event(&event(3, "operator:li", switched("d1", pb::Mode::EmergencyI, "洪水")));
    app.apply_event(&event(4, "operator:li", switched("d2", pb::Mode::EmergencyIii, "停电")));
    app.apply_event(&event(5, "operator:li", switched("d1-g1", pb::Mode::EmergencyIi, "火情")));
    let lines = rows(&render(&app, 80, 24));
    // Most severe first; the fourth is summed up.
    assert!(lines[1].contains("EMERGENCY I (RED)  东湖区 (d1)"), "{lines:#?}");
    assert!(lines[2].contains("EMERGENCY II (ORANGE)"), "{lines:#?}");
    assert!(lines[3].contains("+2 more areas in emergency"), "{lines:#?}");
    assert!(lines[4].contains("Map"), "{lines:#?}");
}

#[test]
fn a_selected_incident_shows_its_offers_and_assignments() {
    let mut app = sample_app();
    assert_eq!(app.handle_key(key(KeyCode::Char('j'))), Action::None);
    assert_eq!(app.selected(), Some("inc-000001"));
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Action::ShowIncident("inc-000001".into()));
    assert!(screen(&render(&app, 80, 24)).contains("loading…"));

    app.set_detail(pb::Incident {
        id: "inc-000001".into(),
        category: "medical".into(),
        priority: 1,
        headcount: 2,
        status: pb::IncidentStatus::Offered as i32,
        reported_at_ms: NOW_MS - 60_000,
        reported_by: "operator:li".into(),
        grid_id: "d1-g1".into(),
        mode: pb::Mode::Normal as i32,
        reported_mode: pb::Mode::EmergencyIi as i32,
        scope: pb::AreaLevel::Grid as i32,
        open_offers: vec![pb::Offer {
            offer_id: "off-2".into(),
            agent_id: "p0003".into(),
            distance_m: 240.0,
            eta_s: 173.0,
            deadline_ms: NOW_MS + 42_000,
            ..Default::default()
        }],
        assignments: vec![pb::Assignment {
            agent_id: "p0001".into(),
            offer_id: "off-1".into(),
            assigned_at_ms: NOW_MS - 30_000,
            arrived_at_ms: NOW_MS - 5_000,
            ..Default::default()
        }],
        ..Default::default()
    });
    let text = screen(&render(&app, 80, 24));
    assert!(text.contains("Incident inc-000001"), "{text}");
    assert!(text.contains("Offers (1)"), "{text}");
    assert!(text.contains("p0003  240 m  ETA 2m  42s left"), "{text}");
    assert!(text.contains("Assignments (1)"), "{text}");
    assert!(text.contains("p0001  on site  assigned 30s ago"), "{text}");
    let wide = screen(&render(&app, 160, 40));
    assert!(wide.contains("mode normal (reported in emergency_ii)"), "the mode it was handled in: {wide}");
    // The detail takes the map's place; Esc gives the map back.
    assert!(!text.contains("Map: 3 people"), "{text}");
    app.handle_key(key(KeyCode::Esc));
    assert!(screen(&render(&app, 80, 24)).contains("Map: 3 people"));
}

#[test]
fn a_detail_for_another_incident_is_ignored() {
    let mut app = sample_app();
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Enter));
    app.set_detail(pb::Incident { id: "inc-other".into(), ..Default::default() });
    assert_eq!(app.detail(), Some(None));
}

#[test]
fn the_view_fits_80x24_and_follows_resizes() {
    let app = sample_app();
    for (width, height) in [(80, 24), (120, 40), (200, 60), (40, 12)] {
        let lines = rows(&render(&app, width, height));
        assert_eq!(lines.len(), usize::from(height));
        assert!(lines[0].contains("Pingji watch"), "{width}x{height}");
        assert!(lines[usize::from(height) - 1].contains("Tab pane"), "{width}x{height}: {lines:#?}");
        // Every pane's frame is closed: top-left and bottom-left corners
        // of the map and of the incidents.
        let text = lines.join("\n");
        assert!(text.matches('┌').count() >= 3, "{width}x{height}: {text}");
        assert!(text.matches('└').count() >= 3, "{width}x{height}: {text}");
    }
    let tiny = screen(&render(&app, 30, 8));
    assert!(tiny.contains("terminal too small"), "{tiny}");
}

#[test]
fn tab_moves_between_panes_and_the_focused_pane_is_yellow() {
    let mut app = sample_app();
    assert_eq!(app.focus, Pane::Incidents);
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Feed);
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Map);
    let buffer = render(&app, 80, 24);
    // The map's top-left corner is the first cell below the header.
    assert_eq!(buffer[(0, 1)].symbol(), "┌");
    assert_eq!(buffer[(0, 1)].fg, Color::Yellow);
    app.handle_key(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Feed);
    assert_eq!(app.handle_key(key(KeyCode::Char('q'))), Action::Quit);
}

#[test]
fn events_keep_the_incident_list_current() {
    let mut app = sample_app();
    app.apply_event(&event(2, "operator:li", reported("inc-000002", 3)));
    app.apply_event(&event(3, "operator:li", reported("inc-000003", 1)));
    let order: Vec<&str> = app.open_incidents().iter().map(|row| row.id.as_str()).collect();
    assert_eq!(order, ["inc-000001", "inc-000003", "inc-000002"], "most urgent first, then oldest");
    app.apply_event(&event(4, "dispatcher", staffed("inc-000003")));
    let staffed = app.open_incidents().into_iter().find(|row| row.id == "inc-000003").map(|row| row.status);
    assert_eq!(staffed, Some(pb::IncidentStatus::Staffed as i32));
    app.apply_event(&event(
        5,
        "operator:li",
        Body::IncidentClosed(pb::event::IncidentClosed {
            incident_id: "inc-000001".into(),
            feedback: "done".into(),
            released_agent_ids: vec!["p1".into()],
        }),
    ));
    assert_eq!(app.open_incidents().len(), 2);
    assert!(app.incidents_stale(), "an incident event asks for a fresh list");
    // A replayed event is not applied twice.
    app.apply_event(&event(2, "operator:li", reported("inc-000002", 3)));
    assert_eq!(app.feed().len(), 5);
}

#[test]
fn a_drill_of_thousands_of_people_draws_in_one_frame() {
    let mut app = sample_app();
    let people: Vec<PersonDot> = (0..5000)
        .map(|index| PersonDot {
            id: format!("p{index}"),
            lon: 120.0 + f64::from(index % 100) * 0.002,
            lat: 30.0 + f64::from(index / 100) * 0.002,
            status: [pb::AgentStatus::Available, pb::AgentStatus::Busy, pb::AgentStatus::OffDuty][index as usize % 3] as i32,
        })
        .collect();
    app.set_people(people);
    for seq in 2..2000 {
        app.apply_event(&event(seq, "dispatcher", staffed("inc-000001")));
    }
    assert_eq!(app.feed().len(), super::app::FEED_LINES);
    let text = screen(&render(&app, 80, 24));
    assert!(text.contains("Map: 5000 people"), "{text}");
    assert!(text.contains("inc-000001 staffed"), "the newest events are shown: {text}");
}

#[test]
fn the_footer_shows_trouble_with_the_link() {
    let mut app = sample_app();
    app.set_problem(Some("people: unavailable: tcp connect error".into()));
    assert!(screen(&render(&app, 80, 24)).contains("people: unavailable: tcp connect error"));
    // A broken event stream is shown before any other problem.
    app.set_link(Link::Reconnecting { attempt: 3, in_s: 4 });
    assert!(screen(&render(&app, 80, 24)).contains("reconnecting in 4 s (try 3)"));
    app.set_link(Link::Live);
    app.set_problem(None);
    assert!(screen(&render(&app, 80, 24)).contains("● live"));
}

fn staffing_low(grid: &str, available: u32, minimum: u32) -> Body {
    Body::GridStaffingLow(pb::event::GridStaffingLow { grid_id: grid.into(), available, minimum })
}

fn restored(grid: &str, available: u32) -> Body {
    Body::GridStaffingRestored(pb::event::GridStaffingRestored { grid_id: grid.into(), available })
}

#[test]
fn grids_below_minimum_and_call_ups_are_one_alert_line() {
    let mut app = sample_app();
    assert!(!app.has_alerts());
    app.apply_event(&event(2, "dispatcher", staffing_low("d1-g1", 0, 3)));
    app.apply_event(&event(3, "dispatcher", staffing_low("d1-g2", 1, 3)));
    app.apply_event(&event(
        4,
        "operator:li",
        Body::CallupIssued(pb::event::CallupIssued {
            callup_id: "callup-0001".into(),
            area_id: "d1".into(),
            roles: vec![pb::Role::SunkCadre as i32],
            reason: "台风".into(),
            deadline_ms: NOW_MS + 600_000,
            agent_ids: vec!["p1".into(), "p2".into(), "p3".into()],
            by_switch: true,
            plan_activation_id: String::new(),
        }),
    ));
    let checked_in = Body::CheckedIn(pb::event::CheckedIn { callup_id: "callup-0001".into(), agent_id: "p2".into() });
    app.apply_event(&event(5, "agent:p2", checked_in.clone()));
    let buffer = render(&app, 100, 24);
    let lines = rows(&buffer);
    assert!(
        lines[1].starts_with(" ▼ 2 grids below minimum: d1-g1 0/3, d1-g2 1/3 ⚑ call-ups: callup-0001 d1 1/3 checked in"),
        "{lines:#?}"
    );
    assert_eq!(buffer[(2, 1)].bg, Color::Yellow, "the grids part is yellow");
    assert!(lines[2].contains("Map"), "the panes move down a line: {lines:#?}");

    // Too narrow for both: the grids are shortened and the call-ups left out
    // rather than cut in the middle.
    let narrow = rows(&render(&app, 44, 24));
    assert_eq!(narrow[1].trim_end(), " ▼ 2 grids below minimum: d1-g1 0/3, +1 more", "{narrow:#?}");

    // The deadline passes: the shortfall is shown; restored grids go.
    app.apply_event(&event(
        6,
        "dispatcher",
        Body::CallupDeadlinePassed(pb::event::CallupDeadlinePassed {
            callup_id: "callup-0001".into(),
            missing_agent_ids: vec!["p1".into(), "p3".into()],
        }),
    ));
    app.apply_event(&event(7, "dispatcher", restored("d1-g1", 3)));
    let lines = rows(&render(&app, 100, 24));
    assert!(
        lines[1].starts_with(" ▼ 1 grid below minimum: d1-g2 1/3 ⚑ call-ups: callup-0001 d1 1/3 checked in (2 missing)"),
        "{lines:#?}"
    );
    // The same check-in seen again (a replay) counts once.
    app.apply_event(&event(8, "agent:p2", checked_in));
    assert_eq!(app.callups().next().map(|tally| tally.checked_in.len()), Some(1));

    // Stood down and staffed again: the line goes and the map moves back up.
    app.apply_event(&event(
        9,
        "operator:li",
        Body::CallupStoodDown(pb::event::CallupStoodDown { callup_id: "callup-0001".into(), reason: "解除".into() }),
    ));
    app.apply_event(&event(10, "dispatcher", restored("d1-g2", 3)));
    assert!(!app.has_alerts());
    let lines = rows(&render(&app, 100, 24));
    assert!(lines[1].contains("Map"), "{lines:#?}");
}

#[test]
fn a_field_report_waits_for_triage_in_the_incident_list() {
    let mut app = sample_app();
    app.apply_event(&event(
        2,
        "agent:p7",
        Body::FieldReported(pb::event::FieldReported {
            incident_id: "inc-000002".into(),
            agent_id: "p7".into(),
            spec: spec((120.04, 30.04), "flooding", 3, 1),
            text: "积水".into(),
            ..Default::default()
        }),
    ));
    let text = screen(&render(&app, 80, 24));
    assert!(text.contains("P3 inc-000002 triage  0/1"), "{text}");
    app.apply_event(&event(
        3,
        "operator:li",
        Body::ReportRejected(pb::event::ReportRejected { incident_id: "inc-000002".into(), reason: "not ours".into() }),
    ));
    assert_eq!(app.open_incidents().len(), 1);
}

fn unstaffable(id: &str, needed: u32, possible: u32, missing: &[&str]) -> Body {
    Body::IncidentUnstaffable(pb::event::IncidentUnstaffable {
        incident_id: id.into(),
        needed,
        possible,
        missing_skills: missing.iter().map(|skill| skill.to_string()).collect(),
        beyond_reach: false,
        shortfall: None,
    })
}

#[test]
fn an_incident_nobody_on_the_roster_could_staff_leads_the_alert_line_until_it_ends() {
    let mut app = sample_app();
    app.apply_event(&event(2, "operator:li", reported("inc-000002", 2)));
    app.apply_event(&event(3, "dispatcher", unstaffable("inc-000001", 1, 0, &["firstaid"])));
    app.apply_event(&event(4, "dispatcher", unstaffable("inc-000002", 3, 1, &[])));
    app.apply_event(&event(5, "dispatcher", staffing_low("d1-g1", 0, 3)));
    let buffer = render(&app, 80, 24);
    let lines = rows(&buffer);
    // At 80 columns the grids do not fit whole after the incidents: the
    // most pressing part is shown whole, the grids in short.
    assert_eq!(
        lines[1].trim_end(),
        " ✖ 2 unstaffable: inc-000001 no firstaid, inc-000002 1/3 possible ▼ 1 grid low",
        "{lines:#?}"
    );
    assert_eq!(buffer[(2, 1)].bg, Color::Red, "the unstaffable part is red");
    let wide = rows(&render(&app, 120, 30));
    assert!(
        wide[1]
            .starts_with(" ✖ 2 unstaffable: inc-000001 no firstaid, inc-000002 1/3 possible ▼ 1 grid below minimum: d1-g1 0/3"),
        "{wide:#?}"
    );
    assert!(screen(&buffer).contains("inc-000001 cannot be staffed: nobody on the roster has firstaid"), "in the feed too");

    // Staffed or ended, the alert goes; the list of open incidents, read
    // again, drops what is no longer open.
    app.apply_event(&event(6, "dispatcher", staffed("inc-000002")));
    app.apply_event(&event(7, "dispatcher", restored("d1-g1", 3)));
    let lines = rows(&render(&app, 80, 24));
    assert!(lines[1].starts_with(" ✖ 1 unstaffable: inc-000001 no firstaid"), "{lines:#?}");
    app.set_incidents(&[]);
    assert!(!app.has_alerts());
}

/// The alert was raised before the feed's first event (a watch opened
/// later): the list of open incidents still says so, and says when the
/// roster could staff it again.
#[test]
fn an_unstaffable_incident_from_before_the_feed_is_alerted_from_the_incident_list() {
    let mut app = App::new("http://127.0.0.1:50051");
    let mut incident = pb::Incident {
        id: "inc-000028".into(),
        category: "medical".into(),
        priority: 1,
        headcount: 1,
        status: pb::IncidentStatus::Waiting as i32,
        unstaffable: Some(pb::RosterShortfall { needed: 1, missing_skills: vec!["firstaid".into()], ..Default::default() }),
        ..Default::default()
    };
    app.set_incidents(std::slice::from_ref(&incident));
    assert_eq!(app.unstaffable().map(|alert| alert.lacking.as_str()).collect::<Vec<_>>(), ["no firstaid"]);
    assert!(rows(&render(&app, 80, 24))[1].starts_with(" ✖ 1 unstaffable: inc-000028 no firstaid"));
    incident.unstaffable = None;
    app.set_incidents(&[incident]);
    assert!(!app.has_alerts(), "someone with the skill joined the roster");
}

/// Issue #25: at 80×24 the WHAT column was gone and every id of a live
/// drill read `drill-1796`. Every column shows, and long ids keep the end
/// that tells them apart.
#[test]
fn at_80x24_every_column_shows_and_long_ids_keep_the_end_that_tells_them_apart() {
    let mut app = sample_app();
    for (seq, id) in [(2, "drill-1746057600123-1"), (3, "drill-1746057600123-2"), (4, "drill-1746057600123-12")] {
        app.apply_event(&event(seq, "operator:drill", reported(id, 2)));
    }
    let lines = rows(&render(&app, 80, 24));
    let text = lines.join("\n");
    assert!(lines[0].contains("4 open") && lines[0].contains("127.0.0.1:50051"), "the header fits: {text}");
    let header = lines.iter().find(|line| line.contains("STATUS")).unwrap_or_else(|| panic!("no list header: {text}"));
    assert!(header.contains("STAFF AGE   WHAT"), "{text}");
    assert!(text.contains("P1 inc-000001     waiting 0/2   1m    medical"), "{text}");
    for tail in ["…46057600123-1 ", "…46057600123-2 ", "…6057600123-12 "] {
        let row = lines.iter().find(|line| line.contains(tail)).unwrap_or_else(|| panic!("no row with {tail:?}: {text}"));
        assert!(row.contains("waiting 0/2   1m    medical"), "{row}");
    }
    // The feed keeps whole ids.
    assert!(text.contains("drill-1746057600123-12 medical P2 x2"), "{text}");
}

#[test]
fn the_audit_of_reads_stays_out_of_the_feed() {
    let mut app = sample_app();
    for seq in 2..20 {
        let read =
            Body::PersonalDataRead(pb::event::PersonalDataRead { rpc: "ListAgents".into(), subject: "list".into(), people: 2 });
        app.apply_event(&event(seq, "operator:admin", read));
    }
    assert_eq!(app.feed().len(), 1, "only the incident's report");
    assert_eq!(app.last_seq(), 19);
    assert!(screen(&render(&app, 80, 24)).contains("inc-000001 medical P1 x2"));
}

#[test]
fn at_80x24_an_incidents_details_take_the_top_and_esc_gives_the_map_and_list_back() {
    let mut app = sample_app();
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Enter));
    app.set_detail(pb::Incident {
        id: "inc-000001".into(),
        category: "medical".into(),
        priority: 1,
        headcount: 2,
        status: pb::IncidentStatus::Waiting as i32,
        grid_id: "d1-g1".into(),
        mode: pb::Mode::EmergencyIi as i32,
        reported_mode: pb::Mode::Normal as i32,
        ..Default::default()
    });
    let lines = rows(&render(&app, 80, 24));
    let text = lines.join("\n");
    assert!(lines[1].starts_with("┌Incident inc-000001 (Esc closes)"), "{text}");
    assert!(text.contains("medical P1 waiting  0 of 2 people"), "{text}");
    assert!(text.contains("grid d1-g1  mode emergency_ii (reported in normal)  offered from"), "one line at 80: {text}");
    assert!(!text.contains("Open incidents"), "{text}");
    app.handle_key(key(KeyCode::Esc));
    let text = screen(&render(&app, 80, 24));
    assert!(text.contains("Map: 3 people") && text.contains("Open incidents: 1"), "{text}");
}

/// Missed safety check-ins and help calls lead the alert line, with the
/// person and the time, until the person checks in or the help ends.
#[test]
fn missed_check_ins_and_help_calls_lead_the_alert_line_with_the_person_and_time() {
    let mut app = sample_app();
    let missed = |miss: u32, welfare: &str| {
        Body::SafetyCheckMissed(pb::event::SafetyCheckMissed {
            agent_id: "worker".into(),
            incident_id: "inc-000001".into(),
            miss,
            due_ms: NOW_MS - 60_000,
            welfare_incident_id: welfare.into(),
        })
    };
    app.apply_event(&event(2, "dispatcher", unstaffable("inc-000001", 1, 0, &["firstaid"])));
    app.apply_event(&event(3, "dispatcher", missed(1, "")));
    app.apply_event(&event(4, "dispatcher", missed(2, "inc-000009")));
    let help = Body::HelpRequested(pb::event::HelpRequested {
        agent_id: "caller".into(),
        incident_id: "inc-000010".into(),
        position_from: "live".into(),
        ..Default::default()
    });
    app.apply_event(&event(5, "agent:caller", help));
    let time = pingji_client::labels::utc_time(NOW_MS - 60_000);
    let clock = &time[11..16];
    let wide = rows(&render(&app, 160, 30));
    assert!(
        wide[1].starts_with(&format!(" ⚠ 2 safety: caller 求助 {clock}, worker missed 2 → welfare inc-000009 {clock}")),
        "{wide:#?}"
    );
    assert!(screen(&render(&app, 160, 30)).contains("ALERT worker missed safety check-in 2"), "in the feed too");

    let checked =
        Body::SafetyCheckIn(pb::event::SafetyCheckIn { agent_id: "worker".into(), incident_id: "inc-000001".into(), misses: 2 });
    app.apply_event(&event(6, "agent:worker", checked));
    let closed = Body::IncidentClosed(pb::event::IncidentClosed { incident_id: "inc-000010".into(), ..Default::default() });
    app.apply_event(&event(7, "operator:li", closed));
    assert_eq!(app.safety_alerts().count(), 0, "checked in, and the help dealt with");
}
