//! `pingji report activity --from T [--to T] [--area A] [--within S] [--csv] [--svg DIR]`:
//! who served (网格员考核), per person and per community and grid, from the
//! dispatcher's journal: a table, CSV, or a set of SVG charts.

use std::path::Path;

use pingji_client::labels;
use pingji_proto::v1 as pb;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::output;
use crate::table::Table;

/// What `report activity` was asked for.
pub struct ActivityArgs<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub area: Option<&'a str>,
    pub within_s: u32,
    pub csv: bool,
    pub svg_dir: Option<&'a Path>,
}

pub async fn show(client: &mut Client, args: ActivityArgs<'_>, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::ActivityReportRequest {
        from_ms: args.from_ms,
        to_ms: args.to_ms,
        area_id: args.area.unwrap_or_default().to_string(),
        staffed_within_s: args.within_s,
    };
    let report = client.activity_report(request).await?.into_inner();
    if let Some(dir) = args.svg_dir {
        write_files(dir, &report)?;
    }
    if as_json {
        let value = serde_json::to_value(&report).map_err(|error| ConsoleError::Output(std::io::Error::other(error)))?;
        return output::json_document(&value);
    }
    if args.csv {
        return output::text(&csv(&report));
    }
    output::text(&activity_text(&report))?;
    if let Some(dir) = args.svg_dir {
        output::to_stderr(&format!("charts and CSV written to {}\n", dir.display()))?;
    }
    Ok(())
}

/// The charts (`offers.svg`, `accept.svg`, `staffed.svg`) and the two CSV
/// tables (`people.csv`, `areas.csv`) in `dir`, made if missing.
fn write_files(dir: &Path, report: &pb::ActivityReportResponse) -> Result<(), ConsoleError> {
    let failed = |source: std::io::Error| ConsoleError::InFile { path: dir.to_path_buf(), message: source.to_string() };
    std::fs::create_dir_all(dir).map_err(failed)?;
    for (name, svg) in pingji_client::svg::activity_charts(report) {
        std::fs::write(dir.join(name), svg).map_err(failed)?;
    }
    if !report.people_withheld {
        std::fs::write(dir.join("people.csv"), people_csv(report)).map_err(failed)?;
    }
    std::fs::write(dir.join("areas.csv"), areas_csv(report)).map_err(failed)?;
    Ok(())
}

fn seconds(value: Option<f64>) -> String {
    value.map(|seconds| format!("{seconds:.0}")).unwrap_or_default()
}

fn hours(value: f64) -> String {
    format!("{value:.2}")
}

fn share(value: Option<f64>) -> String {
    value.map(|share| format!("{:.0}%", share * 100.0)).unwrap_or_else(|| "-".to_string())
}

fn reasons(person: &pb::PersonActivity) -> String {
    person
        .declined_by_reason
        .iter()
        .map(|count| {
            let reason = if count.reason.is_empty() { "(none given)" } else { count.reason.as_str() };
            format!("{reason} ×{}", count.count)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report as an operator reads it: the period, people, then areas.
pub fn activity_text(report: &pb::ActivityReportResponse) -> String {
    let area = if report.area_id.is_empty() { "everywhere".to_string() } else { report.area_id.clone() };
    let mut text = format!("Who served in {area}, {} to {}\n", labels::utc_time(report.from_ms), labels::utc_time(report.to_ms));
    if report.first_kept_at_ms > report.from_ms {
        text.push_str(&format!(
            "note: events before {} are no longer kept (the journal's retention); figures start there\n",
            labels::utc_time(report.first_kept_at_ms)
        ));
    }
    text.push('\n');
    if report.people_withheld {
        text.push_str("per-person figures are shown to commanders and admins only\n");
    } else if report.people.is_empty() {
        text.push_str("nobody was offered, called up, on duty or reported anything there in the period\n");
    } else {
        let mut table = Table::new(&[
            "PERSON",
            "NAME",
            "OFFERS",
            "ACCEPTED",
            "DECLINED",
            "TIMED OUT",
            "ACCEPT P50 S",
            "ARRIVE P50 S",
            "TASK H",
            "DUTY H",
            "REPORTS A/M/R",
            "CALL-UPS IN/MISSED",
            "CHECK-IN P50 S",
        ]);
        for index in 2..13 {
            table = table.align_right(index);
        }
        for person in &report.people {
            table.row(vec![
                person.agent_id.clone(),
                person.name.clone(),
                person.offers.to_string(),
                person.accepted.to_string(),
                person.declined.to_string(),
                person.timed_out.to_string(),
                seconds(person.median_accept_s),
                seconds(person.median_arrive_s),
                hours(person.on_assignment_h),
                hours(person.on_duty_h),
                format!("{} {}/{}/{}", person.reports, person.reports_accepted, person.reports_merged, person.reports_rejected),
                format!("{} {}/{}", person.callups, person.checked_in, person.missed_callups),
                seconds(person.median_check_in_s),
            ]);
        }
        text.push_str(&table.render());
        let declines: Vec<String> = report
            .people
            .iter()
            .filter(|person| !person.declined_by_reason.is_empty())
            .map(|person| format!("  {}: {}", person.agent_id, reasons(person)))
            .collect();
        if !declines.is_empty() {
            text.push_str("\nWhy offers were declined:\n");
            text.push_str(&declines.join("\n"));
            text.push('\n');
        }
    }
    text.push('\n');
    if report.areas.is_empty() {
        text.push_str("no incidents or staffing alerts in communities or grids there in the period\n");
        return text;
    }
    let mut table =
        Table::new(&["AREA", "NAME", "LEVEL", "INCIDENTS", "STAFFED IN TIME", "SHARE", "ALERTS", "LOW H", "LONGEST H"]);
    for index in 3..9 {
        table = table.align_right(index);
    }
    for area in &report.areas {
        table.row(vec![
            area.area_id.clone(),
            area.name.clone(),
            labels::level_name(area.level).to_string(),
            area.incidents.to_string(),
            area.staffed_in_time.to_string(),
            share(area.staffed_share),
            area.staffing_alerts.to_string(),
            hours(area.low_h),
            hours(area.longest_alert_h),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(&format!("\"In time\": staffed within {} s of the report.\n", report.staffed_within_s));
    text
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

pub fn people_csv(report: &pb::ActivityReportResponse) -> String {
    let mut out = String::from(
        "agent_id,name,home_area_id,offers,accepted,declined,timed_out,withdrawn,declined_reasons,median_accept_s,\
         median_arrive_s,on_assignment_h,on_duty_h,reports,reports_accepted,reports_merged,reports_rejected,callups,\
         checked_in,missed_callups,median_check_in_s\n",
    );
    for person in &report.people {
        let cells = [
            field(&person.agent_id),
            field(&person.name),
            field(&person.home_area_id),
            person.offers.to_string(),
            person.accepted.to_string(),
            person.declined.to_string(),
            person.timed_out.to_string(),
            person.withdrawn.to_string(),
            field(&reasons(person)),
            seconds(person.median_accept_s),
            seconds(person.median_arrive_s),
            format!("{:.4}", person.on_assignment_h),
            format!("{:.4}", person.on_duty_h),
            person.reports.to_string(),
            person.reports_accepted.to_string(),
            person.reports_merged.to_string(),
            person.reports_rejected.to_string(),
            person.callups.to_string(),
            person.checked_in.to_string(),
            person.missed_callups.to_string(),
            seconds(person.median_check_in_s),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

pub fn areas_csv(report: &pb::ActivityReportResponse) -> String {
    let mut out =
        String::from("area_id,name,level,incidents,staffed_in_time,staffed_share,staffing_alerts,low_h,longest_alert_h\n");
    for area in &report.areas {
        let cells = [
            field(&area.area_id),
            field(&area.name),
            labels::level_name(area.level).to_string(),
            area.incidents.to_string(),
            area.staffed_in_time.to_string(),
            area.staffed_share.map(|share| format!("{share:.4}")).unwrap_or_default(),
            area.staffing_alerts.to_string(),
            format!("{:.4}", area.low_h),
            format!("{:.4}", area.longest_alert_h),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `--csv`: the people's table (when shown), a blank line, the areas' table.
pub fn csv(report: &pb::ActivityReportResponse) -> String {
    if report.people_withheld {
        return areas_csv(report);
    }
    format!("{}\n{}", people_csv(report), areas_csv(report))
}

/// A time given as `2026-03-01`, `2026-03-01T08:00`, `2026-03-01 08:00:00`
/// (UTC; a trailing `Z` allowed) or milliseconds since 1970; as ms.
pub fn parse_utc_time(text: &str) -> Result<i64, String> {
    let example = "give a UTC time such as 2026-03-01, 2026-03-01T08:00 or 2026-03-01 08:00:00";
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|character| character.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("\"{text}\" is too large; {example}"));
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let bad = || format!("\"{text}\" is not a time; {example}");
    let date: Vec<i64> = date.split('-').map(|part| part.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let time: Vec<i64> = time.split(':').map(|part| part.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let [year, month, day] = date[..] else { return Err(bad()) };
    let (hour, minute, second) = match time[..] {
        [hour, minute] => (hour, minute, 0),
        [hour, minute, second] => (hour, minute, second),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 || year < 1970 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 86_400) + hour * 3600 + minute * 60 + second) * 1000)
}

/// Days since 1970-01-01 of a date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(parse_utc_time("1970-01-01"), Ok(0));
        assert_eq!(parse_utc_time("2026-03-01T08:00"), Ok(1_772_352_000_000));
        assert_eq!(parse_utc_time("2026-03-01 08:00:00Z"), Ok(1_772_352_000_000));
        assert_eq!(parse_utc_time("1772352000000"), Ok(1_772_352_000_000));
        assert_eq!(labels::utc_time(parse_utc_time("2024-02-29 23:59:59").expect("a leap day")), "2024-02-29 23:59:59Z");
        assert!(parse_utc_time("yesterday").is_err());
        assert!(parse_utc_time("2026-13-01").is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let report = pb::ActivityReportResponse {
            people: vec![pb::PersonActivity {
                agent_id: "p1".into(),
                name: "王, 芳".into(),
                declined: 1,
                declined_by_reason: vec![pb::DeclineReasonCount { reason: "too \"far\"".into(), count: 1 }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let csv = people_csv(&report);
        let rows: Vec<&str> = csv.lines().collect();
        assert!(rows[1].starts_with("p1,\"王, 芳\",,0,0,1,0,0,\"too \"\"far\"\" ×1\","), "{}", rows[1]);
    }
}
