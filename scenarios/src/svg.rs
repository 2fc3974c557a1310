//! The report's pictures as SVG: time-to-accept and time-to-arrive
//! distributions per priority, staffing over time, and a map of the areas,
//! incidents and responders.
//!
//! Layout rules, which `tests/report.rs` checks by rendering each picture:
//! every legend sits in a box beside the plot area, never on the data; every
//! text stays on the canvas (widths are estimated generously, for a wide
//! Latin font and a full em per Chinese character); labels are drawn after
//! the data, on a white halo; every text names fonts with Chinese glyphs
//! first, or some renderers draw area names as boxes.

use std::fmt::Write as _;

use pingji_engine::areas::{AreaImport, AreaLevel};

use crate::report::{IncidentFigures, Report, StaffingSample, clock, plural};

/// Fonts with Chinese glyphs first, then the generic family.
const FONT_FAMILY: &str = "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'PingFang SC', 'Microsoft YaHei', sans-serif";
const CHART_WIDTH: f64 = 880.0;
const CHART_HEIGHT: f64 = 440.0;
/// Room left of the plot for the tick labels and the rotated axis label.
const LEFT: f64 = 64.0;
const TOP: f64 = 48.0;
/// Room under the plot for the tick labels and the axis label.
const BOTTOM: f64 = 56.0;
const MARGIN: f64 = 20.0;
/// Between the plot area and the legend box.
const GAP: f64 = 24.0;
const PRIORITY_COLOURS: [&str; 4] = ["#d62728", "#ff7f0e", "#bcbd22", "#1f77b4"];
/// Metres per degree of latitude (a sphere of 6,371 km).
const METRES_PER_DEGREE: f64 = 111_195.0;

#[derive(Clone, Copy)]
pub enum Measure {
    Accept,
    Arrive,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A generous estimate of a text's width in pixels: as wide as DejaVu Sans
/// (a wide Latin font) draws it, and a full em for each Chinese character,
/// so that text laid out by it fits whichever font the reader has.
fn text_width(text: &str, font_size: f64, bold: bool) -> f64 {
    let ems: f64 = text
        .chars()
        .map(|character| match character {
            ' ' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'i' | 'j' | 'l' | 'I' | '·' => 0.33,
            'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.45,
            'm' | 'w' | 'M' | 'W' | '%' => 1.0,
            'A'..='Z' => 0.75,
            '0'..='9' => 0.64,
            character if character.is_ascii() => 0.63,
            character if u32::from(character) >= 0x2E80 => 1.0,
            _ => 0.9,
        })
        .sum();
    ems * font_size * if bold { 1.12 } else { 1.0 }
}

/// Words of `text` in lines no wider than `width` pixels.
fn wrap(text: &str, font_size: f64, width: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if !line.is_empty() && text_width(&candidate, font_size, false) > width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The opening of every picture: the canvas, the font list, a white ground,
/// the title and the subtitle lines. Returns where the content may start.
fn header(out: &mut String, width: f64, height: f64, title: &str, subtitle: &[String]) -> f64 {
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="{FONT_FAMILY}" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{MARGIN}" y="28" font-size="16" font-weight="bold">{}</text>"##,
        escape(title)
    );
    let mut y = 30.0;
    for line in subtitle {
        y += 17.0;
        let _ = writeln!(out, r##"<text x="{MARGIN}" y="{y}" fill="#555">{}</text>"##, escape(line));
    }
    y
}

/// A round top for an axis at or just above `max`, and its tick step: at
/// most eight steps of 1, 2 or 5 times a power of ten (153 → 160 by 20).
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let magnitude = 10f64.powf((max / 8.0).log10().floor());
    for multiple in [1.0, 2.0, 5.0, 10.0] {
        let step = multiple * magnitude;
        let top = (max / step - 1e-9).ceil() * step;
        if top / step <= 8.0 + 1e-9 {
            return (top, step);
        }
    }
    (max, max)
}

/// A tick value without floating-point noise: 0.6, not 0.6000000000000001.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{value:.decimals$}")
}

/// The plot area in pixels.
#[derive(Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, value: f64, max: f64) -> f64 {
        self.left + (self.right - self.left) * value / max
    }

    fn y(&self, value: f64, max: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * value / max
    }
}

/// One axis: its top value, tick step, how a tick reads, and its label.
struct Axis<'a> {
    max: f64,
    step: f64,
    tick: &'a dyn Fn(f64) -> String,
    label: &'a str,
}

fn axes(out: &mut String, frame: Frame, x: Axis<'_>, y: Axis<'_>) {
    let Frame { left, top, right, bottom } = frame;
    // Marks the data area for the picture test; drawn first, invisible.
    let _ = writeln!(
        out,
        r##"<rect id="plot-area" x="{left}" y="{top}" width="{:.1}" height="{:.1}" fill="none"/>"##,
        right - left,
        bottom - top
    );
    for index in 0..=(x.max / x.step).round() as usize {
        let value = index as f64 * x.step;
        let px = frame.x(value, x.max);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{top}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            escape(&(x.tick)(value))
        );
    }
    for index in 0..=(y.max / y.step).round() as usize {
        let value = index as f64 * y.step;
        let py = frame.y(value, y.max);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            py + 4.0,
            escape(&(y.tick)(value))
        );
    }
    let _ = writeln!(out, r##"<path d="M{left},{top} V{bottom} H{right}" stroke="#333" fill="none"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
        (left + right) / 2.0,
        bottom + 38.0,
        escape(x.label)
    );
    let middle = (top + bottom) / 2.0;
    let _ = writeln!(
        out,
        r##"<text x="16" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 16 {middle:.1})">{}</text>"##,
        escape(y.label)
    );
}

/// How a legend entry shows its kind of mark.
#[derive(Clone)]
enum Swatch {
    Line { colour: &'static str, width: f64 },
    Dot { colour: &'static str, filled: bool },
    Square { colour: &'static str },
    Area { colour: &'static str, opacity: f64 },
}

struct LegendEntry {
    swatch: Swatch,
    label: String,
}

/// Rows of the legend box and the room around them.
const LEGEND_ROW: f64 = 18.0;
const LEGEND_PAD: f64 = 10.0;
const SWATCH: f64 = 22.0;

fn legend_size(title: &str, entries: &[LegendEntry], font_size: f64) -> (f64, f64) {
    let widest = entries.iter().map(|entry| SWATCH + 8.0 + text_width(&entry.label, font_size, false)).fold(0.0, f64::max);
    let width = widest.max(text_width(title, font_size, true)) + 2.0 * LEGEND_PAD;
    let height = LEGEND_ROW * (entries.len() + 1) as f64 + 2.0 * LEGEND_PAD;
    (width.ceil(), height.ceil())
}

/// The legend: a titled box at (x, y), its size from `legend_size`.
fn legend(out: &mut String, x: f64, y: f64, title: &str, entries: &[LegendEntry], font_size: f64) {
    let (width, height) = legend_size(title, entries, font_size);
    let _ = writeln!(
        out,
        r##"<g id="legend" font-size="{font_size}"><rect id="legend-box" x="{x}" y="{y}" width="{width}" height="{height}" rx="3" fill="white" stroke="#bbb"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-weight="bold">{}</text>"##,
        x + LEGEND_PAD,
        y + LEGEND_PAD + font_size,
        escape(title)
    );
    for (index, entry) in entries.iter().enumerate() {
        let middle = y + LEGEND_PAD + 4.0 + LEGEND_ROW * (index + 1) as f64 + font_size / 2.0;
        let (left, centre) = (x + LEGEND_PAD, x + LEGEND_PAD + SWATCH / 2.0);
        let mark = match &entry.swatch {
            Swatch::Line { colour, width } => format!(
                r##"<line x1="{left}" y1="{middle:.1}" x2="{:.1}" y2="{middle:.1}" stroke="{colour}" stroke-width="{width}"/>"##,
                left + SWATCH
            ),
            Swatch::Dot { colour, filled } => format!(
                r##"<circle cx="{centre}" cy="{middle:.1}" r="4" fill="{}" stroke="{colour}" stroke-width="1.5"/>"##,
                if *filled { colour } else { "white" }
            ),
            Swatch::Square { colour } => {
                format!(r##"<rect x="{:.1}" y="{:.1}" width="4" height="4" fill="{colour}"/>"##, centre - 2.0, middle - 2.0)
            }
            Swatch::Area { colour, opacity } => format!(
                r##"<rect x="{left}" y="{:.1}" width="{SWATCH}" height="10" fill="{colour}" fill-opacity="{opacity}" stroke="#999"/>"##,
                middle - 5.0
            ),
        };
        let _ = writeln!(
            out,
            r##"{mark}<text x="{:.1}" y="{:.1}">{}</text>"##,
            left + SWATCH + 8.0,
            middle + font_size * 0.35,
            escape(&entry.label)
        );
    }
    out.push_str("</g>\n");
}

/// The frame of a chart whose legend sits to the right of the plot.
fn chart_frame(legend_width: f64) -> Frame {
    Frame { left: LEFT, top: TOP, right: CHART_WIDTH - MARGIN - legend_width - GAP, bottom: CHART_HEIGHT - BOTTOM }
}

/// Share of incidents (per priority) accepted, or with someone on scene,
/// within each time: an empirical cumulative distribution.
pub fn distribution(report: &Report, measure: Measure) -> String {
    let (title, label, reached) = match measure {
        Measure::Accept => ("Time from report to first accept, by priority", "seconds from report to first accept", "accepted"),
        Measure::Arrive => {
            ("Time from report to first person on scene, by priority", "seconds from report to first arrival", "on scene")
        }
    };
    let pick = |figures: &IncidentFigures| match measure {
        Measure::Accept => figures.accepted_s,
        Measure::Arrive => figures.arrived_s,
    };
    let max = report.incidents.iter().filter_map(pick).fold(0.0, f64::max);
    let (x_max, x_step) = axis(max);
    let mut curves = Vec::new();
    let mut entries = Vec::new();
    for priority in 1..=4u8 {
        let of_priority: Vec<_> = report.incidents.iter().filter(|f| f.priority == priority).collect();
        if of_priority.is_empty() {
            continue;
        }
        let mut times: Vec<f64> = of_priority.iter().filter_map(|f| pick(f)).collect();
        times.sort_by(f64::total_cmp);
        let colour = PRIORITY_COLOURS[(priority - 1) as usize];
        entries.push(LegendEntry {
            swatch: Swatch::Line { colour, width: 2.5 },
            label: format!("P{priority}: {} of {} {reached}", times.len(), of_priority.len()),
        });
        curves.push((colour, times, of_priority.len() as f64));
    }
    let legend_title = "priority";
    let (legend_width, _) = legend_size(legend_title, &entries, 12.0);
    let frame = chart_frame(legend_width);
    let mut out = String::new();
    header(&mut out, CHART_WIDTH, CHART_HEIGHT, title, &[]);
    let seconds = |value: f64| tick_label(value, x_step);
    let percent = |value: f64| format!("{:.0}%", value * 100.0);
    axes(
        &mut out,
        frame,
        Axis { max: x_max, step: x_step, tick: &seconds, label },
        Axis { max: 1.0, step: 0.2, tick: &percent, label: "share of incidents" },
    );
    for (colour, times, total) in &curves {
        let mut path = format!("M{:.1},{:.1}", frame.x(0.0, x_max), frame.y(0.0, 1.0));
        for (index, time) in times.iter().enumerate() {
            let _ = write!(path, " H{:.1} V{:.1}", frame.x(*time, x_max), frame.y((index + 1) as f64 / total, 1.0));
        }
        let _ = write!(path, " H{:.1}", frame.x(x_max, x_max));
        let _ = writeln!(out, r##"<path d="{path}" stroke="{colour}" stroke-width="2" fill="none"/>"##);
    }
    if entries.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">no incidents</text>"##,
            (frame.left + frame.right) / 2.0,
            (frame.top + frame.bottom) / 2.0
        );
    } else {
        legend(&mut out, frame.right + GAP, TOP, legend_title, &entries, 12.0);
    }
    out.push_str("</svg>\n");
    out
}

/// Incidents waiting, offered, staffed and ended over the drill, on the
/// drill clock.
pub fn staffing(report: &Report) -> String {
    type Series = (&'static str, &'static str, fn(&StaffingSample) -> usize);
    let series: [Series; 4] = [
        ("waiting (nobody fits yet)", "#d62728", |s| s.waiting),
        ("offered", "#ff7f0e", |s| s.offered),
        ("staffed", "#2ca02c", |s| s.staffed),
        ("ended (closed or cancelled)", "#1f77b4", |s| s.ended),
    ];
    let peak = |value: fn(&StaffingSample) -> usize| report.staffing.iter().map(value).max().unwrap_or(0);
    let entries: Vec<LegendEntry> = series
        .iter()
        .map(|(label, colour, value)| LegendEntry {
            swatch: Swatch::Line { colour, width: 2.5 },
            label: format!("{label}: peak {}", peak(*value)),
        })
        .collect();
    let legend_title = "incidents";
    let (legend_width, _) = legend_size(legend_title, &entries, 12.0);
    let frame = chart_frame(legend_width);
    let x_end = report.staffing.last().map_or(1.0, |sample| sample.at_s / 60.0);
    let (x_max, x_step) = axis(x_end);
    let y_top = series.iter().map(|(_, _, value)| peak(*value)).max().unwrap_or(0) as f64;
    let (y_max, y_step) = axis(y_top);
    let started = report.drill.started_at_ms;
    let mut out = String::new();
    header(&mut out, CHART_WIDTH, CHART_HEIGHT, "Incidents over time: waiting, offered, staffed, ended", &[]);
    // Whole minutes read as 08:10; finer steps need the seconds.
    let on_the_clock = |minutes: f64| {
        let time = clock(started, minutes * 60.0);
        if x_step.fract() == 0.0 { time.chars().take(5).chain(time.chars().skip(8)).collect() } else { time }
    };
    let count = |value: f64| tick_label(value, y_step);
    axes(
        &mut out,
        frame,
        Axis { max: x_max, step: x_step, tick: &on_the_clock, label: "time on the drill clock" },
        Axis { max: y_max, step: y_step, tick: &count, label: "incidents" },
    );
    // Biggest first, so that a series near zero is drawn last, on top of the
    // others where they meet at the bottom, instead of hidden under them.
    let mut by_peak: Vec<&Series> = series.iter().collect();
    by_peak.sort_by_key(|(_, _, value)| std::cmp::Reverse(peak(*value)));
    for (_, colour, value) in by_peak {
        let points: Vec<String> = report
            .staffing
            .iter()
            .map(|sample| format!("{:.1},{:.1}", frame.x(sample.at_s / 60.0, x_max), frame.y(value(sample) as f64, y_max)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" stroke="{colour}" stroke-width="2" stroke-linejoin="round" fill="none"/>"##,
            points.join(" ")
        );
    }
    legend(&mut out, frame.right + GAP, TOP, legend_title, &entries, 12.0);
    out.push_str("</svg>\n");
    out
}

/// The centre of a ring in picture coordinates: its centroid by area, or
/// the mean of its points for a degenerate ring.
fn centre_of(ring: &[(f64, f64)]) -> Option<(f64, f64)> {
    if ring.is_empty() {
        return None;
    }
    let (mut twice_area, mut sum_x, mut sum_y) = (0.0, 0.0, 0.0);
    for (index, (x0, y0)) in ring.iter().enumerate() {
        let (x1, y1) = ring[(index + 1) % ring.len()];
        let cross = x0 * y1 - x1 * y0;
        twice_area += cross;
        sum_x += (x0 + x1) * cross;
        sum_y += (y0 + y1) * cross;
    }
    if twice_area.abs() < 1e-6 {
        let count = ring.len() as f64;
        return Some((ring.iter().map(|p| p.0).sum::<f64>() / count, ring.iter().map(|p| p.1).sum::<f64>() / count));
    }
    Some((sum_x / (3.0 * twice_area), sum_y / (3.0 * twice_area)))
}

/// A label's box: left, top, right, bottom.
type LabelBox = (f64, f64, f64, f64);

fn boxes_meet(a: LabelBox, b: LabelBox) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// A length for the scale bar: 1, 2 or 5 times a power of ten metres, about
/// `target_px` long at `px_per_metre`.
fn scale_length(px_per_metre: f64, target_px: f64) -> f64 {
    let metres = target_px / px_per_metre;
    let magnitude = 10f64.powf(metres.log10().floor());
    [5.0, 2.0, 1.0].iter().map(|m| m * magnitude).find(|length| *length <= metres).unwrap_or(magnitude)
}

/// The areas, the incidents (coloured by priority; hollow when never
/// staffed), where each responder was when offered and a line from there to
/// the incident they took; district and community names, a scale bar and a
/// legend.
pub fn map(report: &Report, map: &AreaImport) -> String {
    let responders: Vec<(&IncidentFigures, [f64; 2])> = report
        .incidents
        .iter()
        .flat_map(|figures| figures.responders.iter().filter_map(move |responder| Some((figures, responder.from?))))
        .collect();
    let responders_total: usize = report.incidents.iter().map(|figures| figures.responders.len()).sum();
    let points = map
        .areas
        .iter()
        .flat_map(|area| area.polygons.iter().flatten().flatten().copied())
        .chain(report.incidents.iter().map(|figures| figures.at))
        .chain(responders.iter().map(|(_, from)| *from));
    let (mut west, mut south, mut east, mut north) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for [lon, lat] in points {
        west = west.min(lon);
        east = east.max(lon);
        south = south.min(lat);
        north = north.max(lat);
    }
    if west > east {
        (west, south, east, north) = (0.0, 0.0, 0.01, 0.01);
    }
    // Equirectangular about the middle latitude: fine at the size of a city.
    let squash = ((south + north) / 2.0).to_radians().cos().max(0.1);
    let span_x = ((east - west) * squash).max(1e-9);
    let span_y = (north - south).max(1e-9);
    const MAP_MAX: f64 = 720.0;
    const PAD: f64 = 10.0;
    let scale = (MAP_MAX / span_x).min(MAP_MAX / span_y);
    let (map_width, map_height) = (span_x * scale + 2.0 * PAD, span_y * scale + 2.0 * PAD);

    let mut entries: Vec<LegendEntry> = Vec::new();
    let priorities: Vec<u8> = (1..=4u8).filter(|p| report.incidents.iter().any(|f| f.priority.clamp(1, 4) == *p)).collect();
    for priority in &priorities {
        let colour = PRIORITY_COLOURS[(priority - 1) as usize];
        entries
            .push(LegendEntry { swatch: Swatch::Dot { colour, filled: true }, label: format!("P{priority} incident, staffed") });
    }
    entries.push(LegendEntry { swatch: Swatch::Dot { colour: "#777", filled: false }, label: "incident never staffed".into() });
    entries.push(LegendEntry { swatch: Swatch::Square { colour: "#333" }, label: "responder when offered (±100 m)".into() });
    entries.push(LegendEntry { swatch: Swatch::Line { colour: "#888", width: 1.0 }, label: "responder → incident".into() });
    entries.push(LegendEntry { swatch: Swatch::Area { colour: "#ffcc80", opacity: 0.5 }, label: "area in emergency".into() });
    for (label, colour, width) in [
        ("district boundary", "#444", 2.0),
        ("street boundary", "#777", 1.4),
        ("community boundary", "#999", 1.0),
        ("grid boundary", "#ccc", 0.6),
    ] {
        entries.push(LegendEntry { swatch: Swatch::Line { colour, width }, label: label.into() });
    }
    let legend_title = "legend";
    let (legend_width, legend_height) = legend_size(legend_title, &entries, 11.0);
    let width = MARGIN + map_width + GAP + legend_width + MARGIN;

    let names = |id: &str| map.areas.iter().find(|area| area.id.as_str() == id).map(|area| area.name.clone());
    let mut subtitle = vec![plural(report.totals.incidents, "incident", "incidents")];
    let reported = report.incidents.iter().map(|figures| figures.reported_at_s);
    if let (Some(first), Some(last)) = (reported.clone().reduce(f64::min), reported.reduce(f64::max)) {
        let started = report.drill.started_at_ms;
        subtitle[0] += &format!(" reported {} to {} on the drill clock", clock(started, first), clock(started, last));
    }
    let unknown = responders_total - responders.len();
    subtitle.push(format!(
        "{} drawn from where they were when offered{}",
        plural(responders_total, "responder", "responders"),
        if unknown > 0 { format!(" ({unknown} with no known start point)") } else { String::new() }
    ));
    if !report.emergency_areas.is_empty() {
        let areas: Vec<String> = report
            .emergency_areas
            .iter()
            .map(|(id, grade)| match names(id) {
                Some(name) if !name.is_empty() => format!("{id} {name} in {grade}"),
                _ => format!("{id} in {grade}"),
            })
            .collect();
        subtitle.push(areas.join(", "));
    }
    let subtitle = wrap(&(subtitle.join("; ") + "."), 12.0, width - 2.0 * MARGIN);
    let header_bottom = 30.0 + 17.0 * subtitle.len() as f64;
    let map_top = header_bottom + 16.0;
    let scale_bar_y = map_top + map_height + 24.0;
    let height = (scale_bar_y + 24.0).max(map_top + legend_height + MARGIN);
    let (left, top) = (MARGIN + PAD, map_top + PAD);
    let x = |lon: f64| left + (lon - west) * squash * scale;
    let y = |lat: f64| top + (north - lat) * scale;

    let mut out = String::new();
    header(&mut out, width, height, "Areas, incidents and responders", &subtitle);
    let _ = writeln!(
        out,
        r##"<rect id="plot-area" x="{MARGIN}" y="{map_top:.1}" width="{map_width:.1}" height="{map_height:.1}" fill="none"/>"##
    );
    // Areas that were in emergency during the drill, tinted under the outlines.
    for (area_id, grade) in &report.emergency_areas {
        let Some(area) = map.areas.iter().find(|area| area.id.as_str() == area_id) else { continue };
        for polygon in &area.polygons {
            let Some(ring) = polygon.first() else { continue };
            let points: Vec<String> = ring.iter().map(|[lon, lat]| format!("{:.1},{:.1}", x(*lon), y(*lat))).collect();
            let _ = writeln!(
                out,
                r##"<polygon points="{}" fill="#ffcc80" fill-opacity="0.5" stroke="none"><title>{} in {}</title></polygon>"##,
                points.join(" "),
                escape(area_id),
                escape(grade)
            );
        }
    }
    let mut areas: Vec<_> = map.areas.iter().collect();
    areas.sort_by_key(|area| std::cmp::Reverse(area.level));
    for area in &areas {
        let (stroke, stroke_width) = match area.level {
            AreaLevel::City => ("#222", 2.5),
            AreaLevel::District => ("#444", 2.0),
            AreaLevel::Street => ("#777", 1.4),
            AreaLevel::Community => ("#999", 1.0),
            _ => ("#ccc", 0.6),
        };
        for polygon in &area.polygons {
            let Some(ring) = polygon.first() else { continue };
            let points: Vec<String> = ring.iter().map(|[lon, lat]| format!("{:.1},{:.1}", x(*lon), y(*lat))).collect();
            let _ = writeln!(
                out,
                r##"<polygon points="{}" fill="none" stroke="{stroke}" stroke-width="{stroke_width}"/>"##,
                points.join(" ")
            );
        }
    }
    out.push_str("<g id=\"responders\">\n");
    for (figures, [lon, lat]) in &responders {
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-opacity="0.7" stroke-width="0.8"/>"##,
            x(*lon),
            y(*lat),
            x(figures.at[0]),
            y(figures.at[1])
        );
    }
    for (_, [lon, lat]) in &responders {
        let _ = writeln!(out, r##"<rect x="{:.1}" y="{:.1}" width="4" height="4" fill="#333"/>"##, x(*lon) - 2.0, y(*lat) - 2.0);
    }
    out.push_str("</g>\n<g id=\"incidents\">\n");
    for figures in &report.incidents {
        let colour = PRIORITY_COLOURS[(figures.priority.clamp(1, 4) - 1) as usize];
        let fill = if figures.staffed_s.is_some() { colour } else { "white" };
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
    out.push_str("</g>\n");

    // Names last, on a white halo, so no dot or line hides them; districts
    // first so that they keep the centre and communities give way. Each goes
    // where it covers the fewest incidents, near its area's centre.
    out.push_str(r##"<g id="labels" stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke">"##);
    out.push('\n');
    let dots: Vec<LabelBox> = report
        .incidents
        .iter()
        .map(|figures| {
            let (cx, cy) = (x(figures.at[0]), y(figures.at[1]));
            (cx - 4.5, cy - 4.5, cx + 4.5, cy + 4.5)
        })
        .collect();
    let mut placed: Vec<LabelBox> = Vec::new();
    for (level, font_size, bold, fill) in [(AreaLevel::District, 15.0, true, "#222"), (AreaLevel::Community, 11.0, false, "#555")]
    {
        for area in map.areas.iter().filter(|area| area.level == level) {
            let Some(ring) = area.polygons.iter().filter_map(|polygon| polygon.first()).max_by_key(|ring| ring.len()) else {
                continue;
            };
            let projected: Vec<(f64, f64)> = ring.iter().skip(1).map(|[lon, lat]| (x(*lon), y(*lat))).collect();
            let Some((centre_x, centre_y)) = centre_of(&projected) else { continue };
            let half_width = text_width(&area.name, font_size, bold) / 2.0;
            let line = font_size * 1.3;
            let offsets = [(0.0, 0.0), (0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -2.0), (0.0, 2.0)];
            let candidates = offsets.map(|(columns, rows)| {
                let (middle_x, middle_y) = (centre_x + columns * half_width, centre_y + rows * line);
                (middle_x - half_width, middle_y - line / 2.0, middle_x + half_width, middle_y + line / 2.0)
            });
            let covered = |candidate: &LabelBox| dots.iter().filter(|dot| boxes_meet(*candidate, **dot)).count();
            let label_box = candidates
                .iter()
                .filter(|candidate| !placed.iter().any(|other| boxes_meet(**candidate, *other)))
                .min_by_key(|candidate| covered(candidate))
                .copied()
                .unwrap_or(candidates[0]);
            placed.push(label_box);
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{font_size}"{} fill="{fill}">{}</text>"##,
                (label_box.0 + label_box.2) / 2.0,
                (label_box.1 + label_box.3) / 2.0 + font_size * 0.35,
                if bold { r#" font-weight="bold""# } else { "" },
                escape(&area.name)
            );
        }
    }
    out.push_str("</g>\n");

    let px_per_metre = scale / METRES_PER_DEGREE;
    let metres = scale_length(px_per_metre, 120.0);
    let bar = metres * px_per_metre;
    let label = if metres >= 1000.0 { format!("{} km", metres / 1000.0) } else { format!("{metres} m") };
    let _ = writeln!(
        out,
        r##"<g id="scale-bar"><path d="M{MARGIN},{:.1} V{scale_bar_y:.1} H{:.1} V{:.1}" stroke="#333" stroke-width="1.5" fill="none"/><text x="{MARGIN}" y="{:.1}" text-anchor="middle">0</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text><text x="{:.1}" y="{:.1}" fill="#555">north is up</text></g>"##,
        scale_bar_y - 5.0,
        MARGIN + bar,
        scale_bar_y - 5.0,
        scale_bar_y + 15.0,
        MARGIN + bar,
        scale_bar_y + 15.0,
        MARGIN + bar + 40.0,
        scale_bar_y + 4.0
    );
    legend(&mut out, MARGIN + map_width + GAP, map_top, legend_title, &entries, 11.0);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_ends_at_a_round_number_just_above_the_peak() {
        assert_eq!(axis(153.0), (160.0, 20.0));
        assert_eq!(axis(160.0), (160.0, 20.0));
        assert_eq!(axis(115.0), (120.0, 20.0));
        assert_eq!(axis(1572.0), (1600.0, 200.0));
        assert_eq!(axis(60.0), (60.0, 10.0));
        assert_eq!(axis(7.0), (7.0, 1.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn ticks_read_without_floating_point_noise() {
        assert_eq!(tick_label(3.0 * 0.2, 0.2), "0.6");
        assert_eq!(tick_label(160.0, 20.0), "160");
    }

    #[test]
    fn long_subtitles_wrap_to_the_width() {
        let lines = wrap("one two three four five six seven eight nine ten", 12.0, 100.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|line| text_width(line, 12.0, false) <= 100.0), "{lines:?}");
        assert_eq!(lines.join(" "), "one two three four five six seven eight nine ten");
    }

    #[test]
    fn the_scale_bar_is_a_round_length() {
        // 0.1 px per metre: 120 px would be 1,200 m; the bar shows 1 km.
        assert_eq!(scale_length(0.1, 120.0), 1000.0);
        assert_eq!(scale_length(0.05, 120.0), 2000.0);
        assert_eq!(scale_length(1.0, 120.0), 100.0);
    }
}
