//! Who served (`CommandService.ActivityReport`, `FieldService.MyActivity`):
//! the journal read in pages, from the first event kept, through the
//! engine's [`ActivityFold`]; a page is decoded and folded off the async
//! workers, then forgotten, so a journal of millions of events is never
//! held at once.

use pingji_engine::activity::{ActivityFold, ActivityQuery, ActivityReport, DEFAULT_STAFFED_WITHIN_S, PersonActivity};
use pingji_engine::ids::{AgentId, AreaId, Millis, quote};
use pingji_proto::v1 as pb;
use tonic::Status;

use super::error;
use crate::convert;
use crate::runtime::Dispatcher;

/// Events read from the journal at once (the journal's lock is held for
/// one page, so writers wait at most that long).
const PAGE: usize = 5_000;
/// The longest period one report covers.
const LONGEST_PERIOD_MS: i64 = 366 * 86_400_000;

/// The query of an `ActivityReport` call, checked.
pub async fn query_of(dispatcher: &Dispatcher, request: &pb::ActivityReportRequest) -> Result<ActivityQuery, Status> {
    check_period(request.from_ms, request.to_ms)?;
    let area = Some(request.area_id.trim().to_string()).filter(|id| !id.is_empty()).map(AreaId::new);
    if let Some(area) = &area {
        let lookup = area.clone();
        if !dispatcher.query(move |engine, _| engine.area(&lookup).is_some()).await? {
            return Err(error::not_found(format!("area {} is not on the map; list areas to find its id", quote(area))));
        }
    }
    let staffed_within_s = match request.staffed_within_s {
        0 => DEFAULT_STAFFED_WITHIN_S,
        seconds if seconds > 86_400 => {
            return Err(error::invalid_field(
                "staffed_within_s",
                format!("a target of {seconds} s is more than a day; give at most 86400, or 0 for 600"),
            ));
        }
        seconds => u64::from(seconds),
    };
    Ok(ActivityQuery { from: Millis(request.from_ms), to: Millis(request.to_ms), area, staffed_within_s })
}

pub fn check_period(from_ms: i64, to_ms: i64) -> Result<(), Status> {
    if from_ms <= 0 {
        return Err(error::invalid_field("from_ms", "from_ms is missing; give the period's start in ms since 1970"));
    }
    if to_ms <= from_ms {
        return Err(error::invalid_field("to_ms", format!("to_ms {to_ms} is not after from_ms {from_ms}; give a later end")));
    }
    if to_ms - from_ms > LONGEST_PERIOD_MS {
        return Err(error::invalid_field("to_ms", "the period is longer than 366 days; ask for a year or less at a time"));
    }
    Ok(())
}

/// Folds the journal for `query` at the dispatcher's `now`; also answers
/// when the first event still kept happened (0: none kept).
pub async fn compute(dispatcher: &Dispatcher, query: ActivityQuery) -> Result<(ActivityReport, i64), Status> {
    let now = dispatcher.query(|_, now| now).await?;
    let mut fold = ActivityFold::new(query);
    let mut from_seq = 0;
    let mut first_kept_at_ms = 0;
    loop {
        let page = dispatcher.read_events(from_seq, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        if first_kept_at_ms == 0 {
            first_kept_at_ms = page[0].at_ms;
        }
        from_seq = last.seq + 1;
        let full = page.len() == PAGE;
        let (folded, more_wanted) = tokio::task::spawn_blocking(move || -> Result<(ActivityFold, bool), String> {
            for stored in &page {
                if !fold.wants(Millis(stored.at_ms)) {
                    return Ok((fold, false));
                }
                fold.fold(&convert::event_from_stored(stored)?);
            }
            Ok((fold, true))
        })
        .await
        .map_err(|_| error::internal("reading the journal for the activity report failed"))?
        .map_err(error::internal)?;
        fold = folded;
        if !more_wanted || !full {
            break;
        }
    }
    Ok((fold.finish(now), first_kept_at_ms))
}

pub fn person_to_pb(row: &PersonActivity) -> pb::PersonActivity {
    pb::PersonActivity {
        agent_id: row.agent.to_string(),
        name: row.name.clone(),
        home_area_id: row.home_area.as_ref().map(ToString::to_string).unwrap_or_default(),
        offers: row.offers,
        accepted: row.accepted,
        declined: row.declined,
        timed_out: row.timed_out,
        withdrawn: row.withdrawn,
        declined_by_reason: row
            .declined_by_reason
            .iter()
            .map(|(reason, count)| pb::DeclineReasonCount { reason: reason.clone(), count: *count })
            .collect(),
        median_accept_s: row.median_accept_s(),
        median_arrive_s: row.median_arrive_s(),
        accept_times_s: row.accept_times_s.clone(),
        on_assignment_h: row.on_assignment_hours(),
        on_duty_h: row.on_duty_hours(),
        reports: row.reports,
        reports_accepted: row.reports_accepted,
        reports_merged: row.reports_merged,
        reports_rejected: row.reports_rejected,
        callups: row.callups,
        checked_in: row.checked_in,
        missed_callups: row.missed_callups,
        median_check_in_s: row.median_check_in_s(),
        on_shift_h: row.on_shift_hours(),
        shifts_worked: row.shifts_worked,
    }
}

/// The report as answered: per-person rows only when `with_people`.
pub fn report_to_pb(report: &ActivityReport, with_people: bool, first_kept_at_ms: i64) -> pb::ActivityReportResponse {
    let hours = |ms: i64| ms as f64 / 3_600_000.0;
    pb::ActivityReportResponse {
        from_ms: report.query.from.0,
        to_ms: report.query.to.0,
        area_id: report.query.area.as_ref().map(ToString::to_string).unwrap_or_default(),
        staffed_within_s: u32::try_from(report.query.staffed_within_s).unwrap_or(u32::MAX),
        people: if with_people { report.people.iter().map(person_to_pb).collect() } else { Vec::new() },
        people_withheld: !with_people,
        areas: report
            .areas
            .iter()
            .map(|row| pb::AreaActivity {
                area_id: row.area.to_string(),
                name: row.name.clone(),
                level: convert::level_to_pb(row.level) as i32,
                incidents: row.incidents,
                staffed_in_time: row.staffed_in_time,
                staffed_share: row.staffed_share(),
                staffing_alerts: row.staffing_alerts,
                low_h: hours(row.low_ms),
                longest_alert_h: hours(row.longest_alert_ms),
            })
            .collect(),
        events_read: report.events_read,
        first_kept_at_ms,
    }
}

/// One person's record for a period (everywhere), zeros when they did nothing.
pub async fn own_record(
    dispatcher: &Dispatcher,
    agent: &AgentId,
    from_ms: i64,
    to_ms: i64,
) -> Result<pb::MyActivityResponse, Status> {
    let to_ms = if to_ms == 0 { dispatcher.query(|_, now| now.0 + 1).await? } else { to_ms };
    // The phone asks for the last week on the dispatcher's clock, not its own.
    let from_ms = if from_ms == 0 { to_ms - 7 * 86_400_000 } else { from_ms };
    check_period(from_ms, to_ms)?;
    let query = ActivityQuery { from: Millis(from_ms), to: Millis(to_ms), area: None, staffed_within_s: 0 };
    let (report, _) = compute(dispatcher, query).await?;
    let row = report.people.iter().find(|row| &row.agent == agent).cloned().unwrap_or_else(|| PersonActivity::new(agent.clone()));
    Ok(pb::MyActivityResponse { person: Some(person_to_pb(&row)), from_ms, to_ms })
}
