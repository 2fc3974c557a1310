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

use crate::report::{IncidentFigures, Report, StaffingSample, clock};

pub mod map;

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
            // As the map draws them: a filled dot outlined in white, a hollow one in its colour.
            Swatch::Dot { colour, filled } => format!(
                r##"<circle cx="{centre}" cy="{middle:.1}" r="3.5" fill="{}" stroke="{}" stroke-width="{}"/>"##,
                if *filled { colour } else { "white" },
                if *filled { "white" } else { colour },
                if *filled { 0.6 } else { 1.2 }
            ),
            Swatch::Square { colour } => {
                format!(r##"<rect x="{:.1}" y="{:.1}" width="3" height="3" fill="{colour}"/>"##, centre - 1.5, middle - 1.5)
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
}
