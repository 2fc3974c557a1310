//! `pingji rosters ...`: duty rosters: who is on duty now, shifts, swaps,
//! check-in and check-out, and a person's calendar (.ics).

use std::path::Path;

use pingji_client::connect::RosterClient;
use pingji_client::labels::utc_time;
use pingji_client::rosters::{clock, local_date, parse_clock, parse_days, swap_status_name};
use pingji_proto::v1 as pb;
use serde_json::Value;

use crate::error::ConsoleError;
use crate::output;

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn usage(message: String) -> ConsoleError {
    ConsoleError::Usage(clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n")))
}

fn people_list(ids: &[String]) -> String {
    if ids.is_empty() { "nobody".to_string() } else { ids.join(", ") }
}

/// `rosters now [--area AREA]`: one line per shift running.
pub async fn now(client: &mut RosterClient, area: &str, as_json: bool) -> Result<(), ConsoleError> {
    let answer = client.on_duty_now(pb::OnDutyNowRequest { area_id: area.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&answer));
    }
    output::text(&now_text(&answer))
}

pub fn now_text(answer: &pb::OnDutyNowResponse) -> String {
    let mut text = String::new();
    for occurrence in &answer.on_duty {
        let checked: Vec<String> =
            occurrence
                .agent_ids
                .iter()
                .map(|agent| {
                    if occurrence.checked_in_agent_ids.contains(agent) { format!("{agent} (checked in)") } else { agent.clone() }
                })
                .collect();
        text.push_str(&format!(
            "{}  {}  {}  until {}  on duty: {}\n",
            occurrence.area_id,
            occurrence.shift_id,
            occurrence.duty,
            utc_time(occurrence.ends_at_ms),
            people_list(&checked)
        ));
    }
    if answer.on_duty.is_empty() {
        text.push_str("no shift is running now\n");
    }
    text
}

/// `rosters shifts [--area AREA]`.
pub async fn shifts(client: &mut RosterClient, area: &str, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_shifts(pb::ListShiftsRequest { area_id: area.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text = String::new();
    for shift in &listed.shifts {
        let days: Vec<String> = shift.days.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "{}  {}  {}  days {}  from {} for {} h  {}\n",
            shift.id,
            shift.area_id,
            shift.duty,
            days.join(","),
            clock(shift.start_minute),
            f64::from(shift.length_minutes) / 60.0,
            people_list(&shift.agent_ids)
        ));
    }
    if listed.shifts.is_empty() {
        text.push_str("no shifts\n");
    }
    output::text(&text)
}

pub struct ShiftArgs {
    pub id: String,
    pub area: String,
    pub duty: String,
    pub days: String,
    pub start: String,
    pub hours: f64,
    pub people: String,
}

/// `rosters set-shift ID --area A --duty D --days 1-7 --start 08:00 --hours 24 --people p1,p2`.
pub async fn set_shift(client: &mut RosterClient, args: ShiftArgs, as_json: bool) -> Result<(), ConsoleError> {
    let days = parse_days(&args.days)
        .ok_or_else(|| usage(format!("--days {:?}: give weekdays such as 1-5, mon-fri, 1,3,5 or daily", args.days)))?;
    let start_minute =
        parse_clock(&args.start).ok_or_else(|| usage(format!("--start {:?}: give a local time as HH:MM", args.start)))?;
    if !(args.hours > 0.0 && args.hours <= 24.0) {
        return Err(usage(format!("--hours {}: give more than 0 and up to 24", args.hours)));
    }
    let shift = pb::Shift {
        id: args.id,
        area_id: args.area,
        duty: args.duty,
        days,
        start_minute,
        length_minutes: (args.hours * 60.0).round() as u32,
        agent_ids: args.people.split(',').map(str::trim).filter(|id| !id.is_empty()).map(String::from).collect(),
    };
    let id = shift.id.clone();
    let answer = client.set_shifts(pb::SetShiftsRequest { shifts: vec![shift] }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&answer));
    }
    output::line(&format!("shift {id} set"))
}

pub async fn remove_shift(client: &mut RosterClient, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let removed = client.remove_shift(pb::RemoveShiftRequest { shift_id: id.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&removed));
    }
    output::line(&format!("shift {} removed", removed.id))
}

fn swap_line(swap: &pb::Swap) -> String {
    format!(
        "{}  shift {} on {}: {} -> {}  {}{}",
        swap.id,
        swap.shift_id,
        local_date(swap.day),
        swap.from_agent_id,
        swap.to_agent_id,
        swap_status_name(swap.status),
        if swap.decided_by.is_empty() { String::new() } else { format!(" by {}", swap.decided_by) }
    )
}

/// `rosters swap SHIFT --from A --to B [--day N]`: today's occurrence unless `--day`.
pub async fn swap(
    client: &mut RosterClient,
    shift: &str,
    from: &str,
    to: &str,
    day: Option<i64>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let starts_at_ms = match day {
        Some(_) => 0,
        None => client.on_duty_now(pb::OnDutyNowRequest::default()).await?.into_inner().now_ms,
    };
    let request = pb::RequestSwapRequest {
        shift_id: shift.to_string(),
        day: day.unwrap_or(0),
        from_agent_id: from.to_string(),
        to_agent_id: to.to_string(),
        starts_at_ms,
    };
    let swap = client.request_swap(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&swap));
    }
    output::line(&format!("{}; a commander approves it with 'pingji rosters approve {}'", swap_line(&swap), swap.id))
}

pub async fn decide(
    client: &mut RosterClient,
    swap: &str,
    approve: bool,
    reason: &str,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::DecideSwapRequest { swap_id: swap.to_string(), approve, reason: reason.to_string() };
    let decided = client.decide_swap(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&decided));
    }
    output::line(&swap_line(&decided))
}

pub async fn swaps(client: &mut RosterClient, agent: &str, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_swaps(pb::ListSwapsRequest { agent_id: agent.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text: String = listed.swaps.iter().map(|swap| swap_line(swap) + "\n").collect();
    if listed.swaps.is_empty() {
        text.push_str("no swaps\n");
    }
    output::text(&text)
}

pub async fn check_in(client: &mut RosterClient, agent: &str, shift: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CheckInShiftRequest { agent_id: agent.to_string(), shift_id: shift.to_string() };
    let attendance = client.check_in_shift(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&attendance));
    }
    output::line(&format!(
        "{} checked in to shift {} at {}",
        attendance.agent_id,
        attendance.shift_id,
        utc_time(attendance.since_ms)
    ))
}

pub async fn check_out(client: &mut RosterClient, agent: &str, as_json: bool) -> Result<(), ConsoleError> {
    let attendance = client.check_out_shift(pb::CheckOutShiftRequest { agent_id: agent.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&attendance));
    }
    let hours = (attendance.until_ms - attendance.since_ms) as f64 / 3_600_000.0;
    output::line(&format!("{} checked out of shift {} after {hours:.2} h", attendance.agent_id, attendance.shift_id))
}

/// `rosters ics AGENT [--days N] [-o FILE]`.
pub async fn ics(client: &mut RosterClient, agent: &str, days: u32, path: Option<&Path>) -> Result<(), ConsoleError> {
    let calendar = client.person_calendar(pb::PersonCalendarRequest { agent_id: agent.to_string(), days }).await?.into_inner();
    match path {
        None => output::text(&calendar.ics),
        Some(path) => {
            std::fs::write(path, &calendar.ics).map_err(ConsoleError::Output)?;
            output::line(&format!("{} shifts written to {}", calendar.shifts, path.display()))
        }
    }
}
