//! The report's pictures as SVG: time-to-accept and time-to-arrive
//! distributions per priority, staffing over time, and a map of the areas,
//! incidents and responders.

use std::fmt::Write as _;

use pingji_engine::areas::{AreaImport, AreaLevel};

use crate::report::Report;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;
const PRIORITY_COLOURS: [&str; 4] = ["#d62728", "#ff7f0e", "#bcbd22", "#1f77b4"];

#[derive(Clone, Copy)]
pub enum Measure {
    Accept,
    Arrive,
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif, 'Noto Sans CJK SC', 'Microsoft YaHei', 'PingFang SC'" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" font-size="16" font-weight="bold">{}</text>
"##,
        LEFT,
        escape(title)
    );
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round upper bound for an axis and a tick step.
fn axis(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let raw_step = max / 5.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|step| *step >= raw_step).unwrap_or(raw_step);
    ((max / step).ceil() * step, step)
}

fn plot_x(value: f64, max: f64) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * value / max
}

fn plot_y(value: f64, max: f64) -> f64 {
    HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / max
}

/// One axis: its top value, tick step and label.
struct Axis<'a> {
    max: f64,
    step: f64,
    label: &'a str,
}

fn axes(out: &mut String, x: Axis<'_>, y: Axis<'_>, y_percent: bool) {
    let Axis { max: x_max, step: x_step, label: x_label } = x;
    let Axis { max: y_max, step: y_step, label: y_label } = y;
    let (x0, y0, x1, y1) = (LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, TOP);
    let _ = writeln!(out, r##"<path d="M{x0},{y1} V{y0} H{x1}" stroke="#333" fill="none"/>"##);
    let mut tick = 0.0;
    while tick <= x_max + 1e-9 {
        let x = plot_x(tick, x_max);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y0 + 16.0,
            tick
        );
        tick += x_step;
    }
    let mut tick = 0.0;
    while tick <= y_max + 1e-9 {
        let y = plot_y(tick, y_max);
        let label = if y_percent { format!("{:.0}%", tick * 100.0) } else { format!("{tick}") };
        let _ = writeln!(
            out,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x0 - 6.0,
            y + 4.0
        );
        tick += y_step;
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
        (x0 + x1) / 2.0,
        HEIGHT - 14.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r##"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

fn legend(out: &mut String, entries: &[(String, &str)]) {
    for (index, (label, colour)) in entries.iter().enumerate() {
        let x = WIDTH - RIGHT - 210.0;
        let y = TOP + 14.0 + 18.0 * index as f64;
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{}">{}</text>"##,
            y - 4.0,
            x + 20.0,
            y,
            escape(label)
        );
    }
}

/// Share of incidents (per priority) accepted, or with someone on scene,
/// within each time: an empirical cumulative distribution.
pub fn distribution(report: &Report, measure: Measure) -> String {
    let (title, label) = match measure {
        Measure::Accept => ("Time from report to first accept, by priority", "seconds from report to first accept"),
        Measure::Arrive => ("Time from report to first person on scene, by priority", "seconds from report to first arrival"),
    };
    let pick = |figures: &crate::report::IncidentFigures| match measure {
        Measure::Accept => figures.accepted_s,
        Measure::Arrive => figures.arrived_s,
    };
    let max = report.incidents.iter().filter_map(pick).fold(0.0, f64::max);
    let (x_max, x_step) = axis(max);
    let mut out = String::new();
    header(&mut out, title);
    axes(&mut out, Axis { max: x_max, step: x_step, label }, Axis { max: 1.0, step: 0.2, label: "share of incidents" }, true);
    let mut entries = Vec::new();
    for priority in 1..=4u8 {
        let of_priority: Vec<_> = report.incidents.iter().filter(|f| f.priority == priority).collect();
        if of_priority.is_empty() {
            continue;
        }
        let mut times: Vec<f64> = of_priority.iter().filter_map(|f| pick(f)).collect();
        times.sort_by(f64::total_cmp);
        let colour = PRIORITY_COLOURS[(priority - 1) as usize];
        let total = of_priority.len() as f64;
        let mut path = format!("M{:.1},{:.1}", plot_x(0.0, x_max), plot_y(0.0, 1.0));
        for (index, time) in times.iter().enumerate() {
            let x = plot_x(*time, x_max);
            let _ = write!(path, " H{x:.1} V{:.1}", plot_y((index + 1) as f64 / total, 1.0));
        }
        let _ = write!(path, " H{:.1}", plot_x(x_max, x_max));
        let _ = writeln!(out, r##"<path d="{path}" stroke="{colour}" stroke-width="2" fill="none"/>"##);
        entries.push((format!("P{priority}: {} of {} reached", times.len(), of_priority.len()), colour));
    }
    if entries.is_empty() {
        let _ = writeln!(out, r##"<text x="{}" y="{}">no incidents</text>"##, WIDTH / 2.0, HEIGHT / 2.0);
    }
    legend(&mut out, &entries);
    out.push_str("</svg>\n");
    out
}

/// Incidents waiting, offered, staffed and ended over the drill.
pub fn staffing(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, "Incidents over time: waiting, offered, staffed, ended");
    let x_end = report.staffing.last().map_or(1.0, |sample| sample.at_s / 60.0);
    let (x_max, x_step) = axis(x_end);
    let y_top = report.staffing.iter().map(|s| s.waiting.max(s.offered).max(s.staffed).max(s.ended)).max().unwrap_or(1) as f64;
    let (y_max, y_step) = axis(y_top);
    axes(
        &mut out,
        Axis { max: x_max, step: x_step, label: "minutes from the start of the drill" },
        Axis { max: y_max, step: y_step, label: "incidents" },
        false,
    );
    type Series = (&'static str, &'static str, fn(&crate::report::StaffingSample) -> usize);
    let series: [Series; 4] = [
        ("waiting (nobody fits yet)", "#d62728", |s| s.waiting),
        ("offered", "#ff7f0e", |s| s.offered),
        ("staffed", "#2ca02c", |s| s.staffed),
        ("ended (closed or cancelled)", "#1f77b4", |s| s.ended),
    ];
    let mut entries = Vec::new();
    for (label, colour, value) in series {
        let points: Vec<String> = report
            .staffing
            .iter()
            .map(|sample| format!("{:.1},{:.1}", plot_x(sample.at_s / 60.0, x_max), plot_y(value(sample) as f64, y_max)))
            .collect();
        let _ = writeln!(out, r##"<polyline points="{}" stroke="{colour}" stroke-width="2" fill="none"/>"##, points.join(" "));
        entries.push((label.to_string(), colour));
    }
    legend(&mut out, &entries);
    out.push_str("</svg>\n");
    out
}

/// The areas, the incidents (coloured by priority; hollow when never
/// staffed) and a line from each responder to the incident they took.
pub fn map(report: &Report, map: &AreaImport) -> String {
    let points = map.areas.iter().flat_map(|area| area.polygons.iter().flatten().flatten());
    let (mut west, mut south, mut east, mut north) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for [lon, lat] in points {
        west = west.min(*lon);
        east = east.max(*lon);
        south = south.min(*lat);
        north = north.max(*lat);
    }
    for figures in &report.incidents {
        west = west.min(figures.at[0]);
        east = east.max(figures.at[0]);
        south = south.min(figures.at[1]);
        north = north.max(figures.at[1]);
    }
    if west > east {
        (west, south, east, north) = (0.0, 0.0, 1.0, 1.0);
    }
    let squash = ((south + north) / 2.0).to_radians().cos().max(0.1);
    let span_x = ((east - west) * squash).max(1e-9);
    let span_y = (north - south).max(1e-9);
    let (width, height) = (760.0, 80.0 + 680.0 * (span_y / span_x).clamp(0.3, 2.0));
    let scale = (width - 40.0) / span_x;
    let x = |lon: f64| 20.0 + (lon - west) * squash * scale;
    let y = |lat: f64| 56.0 + (north - lat) * scale;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" viewBox="0 0 {width:.0} {:.0}" font-family="sans-serif, 'Noto Sans CJK SC', 'Microsoft YaHei', 'PingFang SC'" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="28" font-size="16" font-weight="bold">Areas, incidents and responders</text>
<text x="20" y="44" fill="#555">dots: incidents by priority (P1 red, P2 orange, P3 olive, P4 blue), hollow if never staffed · lines: responder → incident · shaded: emergency</text>
"##,
        height + 20.0,
        height + 20.0
    );
    // Areas that were in emergency during the drill, tinted under the outlines.
    for (area_id, grade) in &report.emergency_areas {
        let Some(area) = map.areas.iter().find(|area| area.id.as_str() == area_id) else { continue };
        for polygon in &area.polygons {
            let Some(ring) = polygon.first() else { continue };
            let points: Vec<String> = ring.iter().map(|[lon, lat]| format!("{:.1},{:.1}", x(*lon), y(*lat))).collect();
            let _ = writeln!(
                out,
                r##"<polygon points="{}" fill="#ffcc80" fill-opacity="0.35" stroke="none"><title>{} in emergency {}</title></polygon>"##,
                points.join(" "),
                escape(area_id),
                escape(grade)
            );
        }
    }
    let mut areas: Vec<_> = map.areas.iter().collect();
    areas.sort_by_key(|area| std::cmp::Reverse(area.level));
    for area in &areas {
        let (stroke, width_px) = match area.level {
            AreaLevel::City => ("#222", 2.5),
            AreaLevel::District => ("#444", 2.0),
            AreaLevel::Street => ("#777", 1.4),
            AreaLevel::Community => ("#999", 1.0),
            _ => ("#ccc", 0.5),
        };
        for polygon in &area.polygons {
            let Some(ring) = polygon.first() else { continue };
            let points: Vec<String> = ring.iter().map(|[lon, lat]| format!("{:.1},{:.1}", x(*lon), y(*lat))).collect();
            let _ = writeln!(
                out,
                r##"<polygon points="{}" fill="none" stroke="{stroke}" stroke-width="{width_px}"/>"##,
                points.join(" ")
            );
        }
    }
    for area in areas.iter().filter(|area| area.level == AreaLevel::Community) {
        let Some((sum_x, sum_y, count)) = area
            .polygons
            .first()
            .and_then(|p| p.first())
            .map(|ring| ring.iter().skip(1).fold((0.0, 0.0, 0.0), |(sx, sy, n), [lon, lat]| (sx + lon, sy + lat, n + 1.0)))
        else {
            continue;
        };
        if count > 0.0 {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888">{}</text>"##,
                x(sum_x / count),
                y(sum_y / count),
                escape(&area.name)
            );
        }
    }
    for figures in &report.incidents {
        for responder in &figures.responders {
            if let Some([lon, lat]) = responder.from {
                let _ = writeln!(
                    out,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#666" stroke-opacity="0.6" stroke-width="0.8"/>"##,
                    x(lon),
                    y(lat),
                    x(figures.at[0]),
                    y(figures.at[1])
                );
            }
        }
    }
    for figures in &report.incidents {
        let colour = PRIORITY_COLOURS[(figures.priority.clamp(1, 4) - 1) as usize];
        let fill = if figures.staffed_s.is_some() { colour } else { "none" };
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{fill}" stroke="{colour}" stroke-width="1.5"><title>{} {} P{}</title></circle>"##,
            x(figures.at[0]),
            y(figures.at[1]),
            escape(&figures.id),
            escape(&figures.category),
            figures.priority
        );
    }
    out.push_str("</svg>\n");
    out
}
