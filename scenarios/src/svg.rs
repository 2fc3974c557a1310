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
// The drawing kit is shared with the console's charts.
pub(crate) use pingji_client::svg::{
    Axis, CHART_HEIGHT, CHART_WIDTH, GAP, LegendEntry, MARGIN, Swatch, TOP, axes, axis, chart_frame, escape, header, legend,
    legend_size, text_width, tick_label, wrap,
};

pub mod map;

#[derive(Clone, Copy)]
pub enum Measure {
    Accept,
    Arrive,
}

const PRIORITY_COLOURS: [&str; 4] = ["#d62728", "#ff7f0e", "#bcbd22", "#1f77b4"];

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

const SHELTER_COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/// Places taken (people in plus reserved) in each shelter over the drill,
/// as steps, with each shelter's capacity dashed in its colour.
pub fn shelters(figures: &[crate::shelters::ShelterFigures], started_at_ms: i64) -> String {
    let entries: Vec<LegendEntry> = figures
        .iter()
        .enumerate()
        .map(|(index, shelter)| LegendEntry {
            swatch: Swatch::Line { colour: SHELTER_COLOURS[index % SHELTER_COLOURS.len()], width: 2.5 },
            label: format!("{}: peak {} of {}", shelter.shelter, shelter.peak_taken, shelter.capacity),
        })
        .collect();
    let legend_title = "places taken (dashed: capacity)";
    let (legend_width, _) = legend_size(legend_title, &entries, 12.0);
    let frame = chart_frame(legend_width);
    let x_end = figures.iter().filter_map(|shelter| shelter.occupancy.last()).map(|point| point.at_s).max().unwrap_or(60) as f64;
    let (x_max, x_step) = axis((x_end / 60.0).max(1.0) * 1.05);
    let y_top = figures.iter().map(|shelter| shelter.capacity.max(shelter.peak_taken)).max().unwrap_or(1) as f64;
    let (y_max, y_step) = axis(y_top.max(1.0));
    let mut out = String::new();
    header(&mut out, CHART_WIDTH, CHART_HEIGHT, "Shelter occupancy over time: people in plus places reserved", &[]);
    let on_the_clock = |minute: f64| clock(started_at_ms, minute * 60.0).chars().take(5).collect::<String>();
    let count = |value: f64| tick_label(value, y_step);
    axes(
        &mut out,
        frame,
        Axis { max: x_max, step: x_step, tick: &on_the_clock, label: "time on the drill clock" },
        Axis { max: y_max, step: y_step, tick: &count, label: "places" },
    );
    for (index, shelter) in figures.iter().enumerate() {
        let colour = SHELTER_COLOURS[index % SHELTER_COLOURS.len()];
        let capacity_y = frame.y(f64::from(shelter.capacity), y_max);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{capacity_y:.1}" x2="{:.1}" y2="{capacity_y:.1}" stroke="{colour}" stroke-width="1" stroke-dasharray="4 3"/>"##,
            frame.left, frame.right
        );
        let mut points = vec![format!("{:.1},{:.1}", frame.left, frame.bottom)];
        let mut last_y = frame.bottom;
        for point in &shelter.occupancy {
            let x = frame.x(point.at_s as f64 / 60.0, x_max);
            let y = frame.y(f64::from(point.occupied + point.reserved), y_max);
            points.push(format!("{x:.1},{last_y:.1}"));
            points.push(format!("{x:.1},{y:.1}"));
            last_y = y;
        }
        points.push(format!("{:.1},{last_y:.1}", frame.x(x_end / 60.0, x_max)));
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
