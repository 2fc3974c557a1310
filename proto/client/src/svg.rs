//! SVG charts drawn as text, shared by the drill report's pictures
//! (`pingji-scenarios`) and the console's (`pingji report activity --svg`):
//! the canvas and title, round axes, a legend boxed beside the plot, text
//! widths estimated generously (a wide Latin font, a full em per Chinese
//! character), fonts with Chinese glyphs first. Then the activity report's
//! charts, from the API's `ActivityReportResponse`.

use std::fmt::Write as _;

/// Fonts with Chinese glyphs first, then the generic family.
pub const FONT_FAMILY: &str = "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'PingFang SC', 'Microsoft YaHei', sans-serif";
pub const CHART_WIDTH: f64 = 880.0;
pub const CHART_HEIGHT: f64 = 440.0;
/// Room left of the plot for the tick labels and the rotated axis label.
pub const LEFT: f64 = 64.0;
pub const TOP: f64 = 48.0;
/// Room under the plot for the tick labels and the axis label.
pub const BOTTOM: f64 = 56.0;
pub const MARGIN: f64 = 20.0;
/// Between the plot area and the legend box.
pub const GAP: f64 = 24.0;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A generous estimate of a text's width in pixels: as wide as DejaVu Sans
/// (a wide Latin font) draws it, and a full em for each Chinese character,
/// so that text laid out by it fits whichever font the reader has.
pub fn text_width(text: &str, font_size: f64, bold: bool) -> f64 {
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
pub fn wrap(text: &str, font_size: f64, width: f64) -> Vec<String> {
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
pub fn header(out: &mut String, width: f64, height: f64, title: &str, subtitle: &[String]) -> f64 {
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
pub fn axis(max: f64) -> (f64, f64) {
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
pub fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{value:.decimals$}")
}

/// The plot area in pixels.
#[derive(Clone, Copy)]
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn x(&self, value: f64, max: f64) -> f64 {
        self.left + (self.right - self.left) * value / max
    }

    pub fn y(&self, value: f64, max: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * value / max
    }
}

/// One axis: its top value, tick step, how a tick reads, and its label.
pub struct Axis<'a> {
    pub max: f64,
    pub step: f64,
    pub tick: &'a dyn Fn(f64) -> String,
    pub label: &'a str,
}

pub fn axes(out: &mut String, frame: Frame, x: Axis<'_>, y: Axis<'_>) {
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
pub enum Swatch {
    Line { colour: &'static str, width: f64 },
    Dot { colour: &'static str, filled: bool },
    Square { colour: &'static str },
    Area { colour: &'static str, opacity: f64 },
}

pub struct LegendEntry {
    pub swatch: Swatch,
    pub label: String,
}

/// Rows of the legend box and the room around them.
pub const LEGEND_ROW: f64 = 18.0;
pub const LEGEND_PAD: f64 = 10.0;
pub const SWATCH: f64 = 22.0;

pub fn legend_size(title: &str, entries: &[LegendEntry], font_size: f64) -> (f64, f64) {
    let widest = entries.iter().map(|entry| SWATCH + 8.0 + text_width(&entry.label, font_size, false)).fold(0.0, f64::max);
    let width = widest.max(text_width(title, font_size, true)) + 2.0 * LEGEND_PAD;
    let height = LEGEND_ROW * (entries.len() + 1) as f64 + 2.0 * LEGEND_PAD;
    (width.ceil(), height.ceil())
}

/// The legend: a titled box at (x, y), its size from `legend_size`.
pub fn legend(out: &mut String, x: f64, y: f64, title: &str, entries: &[LegendEntry], font_size: f64) {
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
pub fn chart_frame(legend_width: f64) -> Frame {
    Frame { left: LEFT, top: TOP, right: CHART_WIDTH - MARGIN - legend_width - GAP, bottom: CHART_HEIGHT - BOTTOM }
}

// ------------------------------------------------------------------ bars

/// One series of a bar chart: a legend label, a colour, a value per category.
pub struct Series {
    pub label: String,
    pub colour: &'static str,
    pub values: Vec<f64>,
}

/// Categories drawn at most, so that labels stay legible.
pub const MOST_BARS: usize = 40;

/// Stacked bars, one per category, the series stacked in order; category
/// labels under the bars (rotated when many), the legend boxed beside.
pub fn stacked_bars(title: &str, subtitle: &[String], categories: &[String], series: &[Series], y_label: &str) -> String {
    let shown = categories.len().min(MOST_BARS);
    let entries: Vec<LegendEntry> = series
        .iter()
        .map(|one| LegendEntry { swatch: Swatch::Area { colour: one.colour, opacity: 0.85 }, label: one.label.clone() })
        .collect();
    let legend_title = y_label;
    let (legend_width, _) = legend_size(legend_title, &entries, 12.0);
    // Rotated labels need more room under the plot.
    let rotated = shown > 8;
    let label_room = if rotated { 60.0 } else { 0.0 };
    let height = CHART_HEIGHT + label_room;
    let mut frame = chart_frame(legend_width);
    frame.bottom = height - BOTTOM - label_room;
    let mut out = String::new();
    let content_top = header(&mut out, CHART_WIDTH, height, title, subtitle);
    frame.top = frame.top.max(content_top + 16.0);
    let totals: Vec<f64> =
        (0..shown).map(|index| series.iter().map(|one| one.values.get(index).copied().unwrap_or(0.0)).sum()).collect();
    let highest = totals.iter().copied().fold(0.0, f64::max);
    let (y_max, y_step) = match axis(highest) {
        // Counts and percentages: whole-number ticks.
        (_, step) if step < 1.0 => (highest.ceil().max(1.0), 1.0),
        round => round,
    };
    let blank = |_: f64| String::new();
    let ticks = |value: f64| tick_label(value, y_step);
    axes(
        &mut out,
        frame,
        Axis { max: 1.0, step: 1.0, tick: &blank, label: "" },
        Axis { max: y_max, step: y_step, tick: &ticks, label: y_label },
    );
    let slot = (frame.right - frame.left) / shown.max(1) as f64;
    let bar = (slot * 0.7).min(48.0);
    for index in 0..shown {
        let x = frame.left + slot * index as f64 + (slot - bar) / 2.0;
        let mut base = 0.0;
        for one in series {
            let value = one.values.get(index).copied().unwrap_or(0.0);
            if value > 0.0 {
                let (top, bottom) = (frame.y(base + value, y_max), frame.y(base, y_max));
                let _ = writeln!(
                    out,
                    r##"<rect x="{x:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{}" fill-opacity="0.85"><title>{}: {}</title></rect>"##,
                    bottom - top,
                    one.colour,
                    escape(&categories[index]),
                    escape(&format!("{} {value}", one.label))
                );
            }
            base += value;
        }
        let centre = x + bar / 2.0;
        let label_y = frame.bottom + 16.0;
        if rotated {
            let _ = writeln!(
                out,
                r##"<text x="{centre:.1}" y="{label_y:.1}" text-anchor="end" transform="rotate(-45 {centre:.1} {label_y:.1})">{}</text>"##,
                escape(&categories[index])
            );
        } else {
            let _ = writeln!(
                out,
                r##"<text x="{centre:.1}" y="{label_y:.1}" text-anchor="middle">{}</text>"##,
                escape(&categories[index])
            );
        }
    }
    legend(&mut out, frame.right + GAP, frame.top, legend_title, &entries, 12.0);
    out.push_str("</svg>\n");
    out
}

// -------------------------------------------------------------- activity

const ACCEPTED: &str = "#2ca02c";
const DECLINED: &str = "#ff7f0e";
const TIMED_OUT: &str = "#d62728";
const WITHDRAWN: &str = "#aaaaaa";
const SHARE: &str = "#1f77b4";

fn period_line(report: &pingji_proto::v1::ActivityReportResponse) -> String {
    let area = if report.area_id.is_empty() { "everywhere".to_string() } else { report.area_id.clone() };
    format!("{area}, {} to {}", crate::labels::utc_time(report.from_ms), crate::labels::utc_time(report.to_ms))
}

/// The activity report's charts, as (file name, SVG): offers answered per
/// person and the time to accept (when the report has people), and the
/// share staffed within the target per community and grid.
pub fn activity_charts(report: &pingji_proto::v1::ActivityReportResponse) -> Vec<(&'static str, String)> {
    let mut charts = Vec::new();
    let period = period_line(report);
    if !report.people.is_empty() {
        let mut people: Vec<&pingji_proto::v1::PersonActivity> = report.people.iter().collect();
        people.sort_by(|a, b| (b.offers + b.accepted).cmp(&(a.offers + a.accepted)).then(a.agent_id.cmp(&b.agent_id)));
        let mut subtitle = vec![period.clone()];
        if people.len() > MOST_BARS {
            subtitle.push(format!("the {MOST_BARS} people with the most offers of {}", people.len()));
        }
        let names: Vec<String> = people.iter().map(|person| person.agent_id.clone()).collect();
        let column = |pick: fn(&pingji_proto::v1::PersonActivity) -> u32| -> Vec<f64> {
            people.iter().map(|person| f64::from(pick(person))).collect()
        };
        let series = [
            Series { label: "accepted".into(), colour: ACCEPTED, values: column(|person| person.accepted) },
            Series { label: "declined".into(), colour: DECLINED, values: column(|person| person.declined) },
            Series { label: "timed out".into(), colour: TIMED_OUT, values: column(|person| person.timed_out) },
            Series { label: "withdrawn".into(), colour: WITHDRAWN, values: column(|person| person.withdrawn) },
        ];
        charts.push(("offers.svg", stacked_bars("Offers answered, per person", &subtitle, &names, &series, "offers")));

        // Time to accept: every acceptance, in one-minute bins (the last
        // holds everything from 15 minutes on).
        const BINS: usize = 16;
        let mut counts = vec![0.0; BINS];
        for seconds in people.iter().flat_map(|person| person.accept_times_s.iter()) {
            let bin = ((seconds / 60.0).floor().max(0.0) as usize).min(BINS - 1);
            counts[bin] += 1.0;
        }
        let bins: Vec<String> = (0..BINS).map(|bin| if bin == BINS - 1 { format!("{bin}+") } else { bin.to_string() }).collect();
        let series = [Series { label: "acceptances".into(), colour: ACCEPTED, values: counts }];
        charts.push((
            "accept.svg",
            stacked_bars("Time to accept an offer (minutes)", &[period.clone()], &bins, &series, "acceptances"),
        ));
    }
    let areas: Vec<&pingji_proto::v1::AreaActivity> = report.areas.iter().filter(|area| area.incidents > 0).collect();
    let names: Vec<String> = areas.iter().map(|area| area.area_id.clone()).collect();
    let shares: Vec<f64> = areas.iter().map(|area| (area.staffed_share.unwrap_or(0.0) * 1000.0).round() / 10.0).collect();
    let subtitle =
        vec![period, format!("staffed within {} s of the report; areas without incidents left out", report.staffed_within_s)];
    let series = [Series { label: "% staffed in time".into(), colour: SHARE, values: shares }];
    charts.push((
        "staffed.svg",
        stacked_bars("Incidents staffed in time, per community and grid", &subtitle, &names, &series, "%"),
    ));
    charts
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingji_proto::v1 as pb;

    #[test]
    fn the_activity_charts_draw_a_bar_per_person_and_area() {
        let person = |id: &str, accepted: u32, declined: u32| pb::PersonActivity {
            agent_id: id.into(),
            offers: accepted + declined,
            accepted,
            declined,
            accept_times_s: vec![30.0; accepted as usize],
            ..Default::default()
        };
        let report = pb::ActivityReportResponse {
            from_ms: 1_772_352_000_000,
            to_ms: 1_772_438_400_000,
            staffed_within_s: 600,
            people: vec![person("p1", 2, 1), person("p2", 0, 3)],
            areas: vec![pb::AreaActivity {
                area_id: "c1".into(),
                incidents: 4,
                staffed_in_time: 3,
                staffed_share: Some(0.75),
                ..Default::default()
            }],
            ..Default::default()
        };
        let charts = activity_charts(&report);
        assert_eq!(charts.iter().map(|(name, _)| *name).collect::<Vec<_>>(), ["offers.svg", "accept.svg", "staffed.svg"]);
        let offers = &charts[0].1;
        assert!(offers.starts_with("<svg") && offers.trim_end().ends_with("</svg>"));
        // p1: accepted and declined bars; p2: declined only.
        assert_eq!(offers.matches("<title>").count(), 3, "{offers}");
        assert!(offers.contains("<title>p2: declined 3</title>"), "{offers}");
        assert!(charts[2].1.contains("<title>c1: % staffed in time 75</title>"), "{}", charts[2].1);
        assert!(charts[1].1.contains("<title>0: acceptances 2</title>"), "{}", charts[1].1);
        let withheld = pb::ActivityReportResponse { people_withheld: true, people: Vec::new(), ..report };
        assert_eq!(activity_charts(&withheld).len(), 1, "no people, no people's charts");
    }
}
