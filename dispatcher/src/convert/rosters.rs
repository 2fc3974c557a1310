//! Duty rosters on the wire: shifts, availability, absences, swaps,
//! attendance, who is on duty, and the roster events (`Event.body` 130 to
//! 139) both ways.

use pingji_engine::Rejection;
use pingji_engine::ids::{AgentId, AreaId, Millis};
use pingji_engine::rosters::{
    Absence, AbsenceKind, Attendance, Occurrence, RosterEvent, RosterState, ShiftId, ShiftSpec, Swap, SwapId, SwapStatus,
    WeeklyWindow,
};
use pingji_proto::v1 as pb;

fn ids(agents: &[AgentId]) -> Vec<String> {
    agents.iter().map(ToString::to_string).collect()
}

fn agents(ids: &[String]) -> Vec<AgentId> {
    ids.iter().map(|id| AgentId::new(id.trim())).collect()
}

/// A weekday or a minute that does not fit a `u8`/`u32` becomes one the
/// engine refuses with its own message.
fn day_from_pb(day: u32) -> u8 {
    u8::try_from(day).unwrap_or(u8::MAX)
}

pub fn shift_to_pb(shift: &ShiftSpec) -> pb::Shift {
    pb::Shift {
        id: shift.id.to_string(),
        area_id: shift.area.to_string(),
        duty: shift.duty.clone(),
        days: shift.days.iter().map(|day| u32::from(*day)).collect(),
        start_minute: shift.start_minute,
        length_minutes: shift.length_minutes,
        agent_ids: ids(&shift.people),
    }
}

pub fn shift_from_pb(shift: &pb::Shift) -> ShiftSpec {
    ShiftSpec {
        id: ShiftId::new(shift.id.trim()),
        area: AreaId::new(shift.area_id.trim()),
        duty: shift.duty.clone(),
        days: shift.days.iter().map(|day| day_from_pb(*day)).collect(),
        start_minute: shift.start_minute,
        length_minutes: shift.length_minutes,
        people: agents(&shift.agent_ids),
    }
}

pub fn window_to_pb(window: &WeeklyWindow) -> pb::WeeklyWindow {
    pb::WeeklyWindow { day: u32::from(window.day), start_minute: window.start_minute, length_minutes: window.length_minutes }
}

pub fn window_from_pb(window: &pb::WeeklyWindow) -> WeeklyWindow {
    WeeklyWindow { day: day_from_pb(window.day), start_minute: window.start_minute, length_minutes: window.length_minutes }
}

fn absence_kind_to_pb(kind: AbsenceKind) -> pb::AbsenceKind {
    match kind {
        AbsenceKind::Leave => pb::AbsenceKind::Leave,
        AbsenceKind::Sick => pb::AbsenceKind::Sick,
        AbsenceKind::Other => pb::AbsenceKind::Other,
    }
}

pub fn absence_to_pb(absence: &Absence) -> pb::Absence {
    pb::Absence {
        agent_id: absence.agent.to_string(),
        from_ms: absence.from.0,
        until_ms: absence.until.0,
        kind: absence_kind_to_pb(absence.kind) as i32,
    }
}

pub fn absence_from_pb(absence: &pb::Absence) -> Result<Absence, Rejection> {
    let kind = match pb::AbsenceKind::try_from(absence.kind) {
        Ok(pb::AbsenceKind::Leave) => AbsenceKind::Leave,
        Ok(pb::AbsenceKind::Sick) => AbsenceKind::Sick,
        Ok(pb::AbsenceKind::Other) => AbsenceKind::Other,
        _ => {
            return Err(Rejection::InvalidField {
                field: "absence.kind",
                message: format!("absence kind {} is not one of leave, sick, other", absence.kind),
            });
        }
    };
    Ok(Absence {
        agent: AgentId::new(absence.agent_id.trim()),
        from: Millis(absence.from_ms),
        until: Millis(absence.until_ms),
        kind,
    })
}

fn swap_status_to_pb(status: SwapStatus) -> pb::SwapStatus {
    match status {
        SwapStatus::Requested => pb::SwapStatus::Requested,
        SwapStatus::Approved => pb::SwapStatus::Approved,
        SwapStatus::Rejected => pb::SwapStatus::Rejected,
    }
}

pub fn swap_to_pb(swap: &Swap, state: &RosterState, utc_offset_minutes: i32) -> pb::Swap {
    let starts_at_ms = state.shifts.get(&swap.shift).map_or(0, |shift| shift.bounds(swap.day, utc_offset_minutes).0.0);
    pb::Swap {
        id: swap.id.to_string(),
        shift_id: swap.shift.to_string(),
        day: swap.day,
        from_agent_id: swap.from.to_string(),
        to_agent_id: swap.to.to_string(),
        status: swap_status_to_pb(swap.status) as i32,
        requested_at_ms: swap.requested_at.0,
        requested_by: swap.requested_by.clone(),
        decided_by: swap.decided_by.clone(),
        reason: swap.reason.clone(),
        starts_at_ms,
    }
}

pub fn occurrence_to_pb(occurrence: &Occurrence, state: &RosterState) -> pb::ShiftOccurrence {
    let checked_in = occurrence
        .people
        .iter()
        .filter(|person| state.checked_in.get(*person).is_some_and(|attendance| attendance.shift == occurrence.shift))
        .map(ToString::to_string)
        .collect();
    pb::ShiftOccurrence {
        shift_id: occurrence.shift.to_string(),
        area_id: occurrence.area.to_string(),
        duty: occurrence.duty.clone(),
        day: occurrence.day,
        starts_at_ms: occurrence.start.0,
        ends_at_ms: occurrence.end.0,
        agent_ids: ids(&occurrence.people),
        checked_in_agent_ids: checked_in,
    }
}

pub fn attendance_to_pb(agent: &AgentId, attendance: &Attendance, until: Option<Millis>) -> pb::ShiftAttendance {
    pb::ShiftAttendance {
        agent_id: agent.to_string(),
        shift_id: attendance.shift.to_string(),
        area_id: attendance.area.to_string(),
        since_ms: attendance.since.0,
        until_ms: until.map_or(0, |until| until.0),
    }
}

pub fn event_to_pb(event: &RosterEvent) -> pb::event::Body {
    use pb::event as e;
    use pb::event::Body;
    match event {
        RosterEvent::ShiftsSet { shifts } => Body::ShiftsSet(e::ShiftsSet { shifts: shifts.iter().map(shift_to_pb).collect() }),
        RosterEvent::ShiftRemoved { shift } => Body::ShiftRemoved(e::ShiftRemoved { shift_id: shift.to_string() }),
        RosterEvent::AvailabilitySet { agent, windows } => Body::AvailabilitySet(e::AvailabilitySet {
            agent_id: agent.to_string(),
            windows: windows.iter().map(window_to_pb).collect(),
        }),
        RosterEvent::AbsenceRecorded { absence } => {
            Body::AbsenceRecorded(e::AbsenceRecorded { absence: Some(absence_to_pb(absence)) })
        }
        RosterEvent::SwapRequested { swap, shift, day, from, to } => Body::SwapRequested(e::SwapRequested {
            swap_id: swap.to_string(),
            shift_id: shift.to_string(),
            day: *day,
            from_agent_id: from.to_string(),
            to_agent_id: to.to_string(),
        }),
        RosterEvent::SwapDecided { swap, approved, reason } => {
            Body::SwapDecided(e::SwapDecided { swap_id: swap.to_string(), approved: *approved, reason: reason.clone() })
        }
        RosterEvent::ShiftCheckedIn { agent, shift, area } => Body::ShiftCheckedIn(e::ShiftCheckedIn {
            agent_id: agent.to_string(),
            shift_id: shift.to_string(),
            area_id: area.to_string(),
        }),
        RosterEvent::ShiftCheckedOut { agent, shift, area, since } => Body::ShiftCheckedOut(e::ShiftCheckedOut {
            agent_id: agent.to_string(),
            shift_id: shift.to_string(),
            area_id: area.to_string(),
            since_ms: since.0,
        }),
        RosterEvent::CalendarLinkSet { agent, secret_sha256 } => {
            Body::CalendarLinkSet(e::CalendarLinkSet { agent_id: agent.to_string(), secret_sha256: secret_sha256.clone() })
        }
        RosterEvent::CalendarLinkRevoked { agent } => {
            Body::CalendarLinkRevoked(e::CalendarLinkRevoked { agent_id: agent.to_string() })
        }
    }
}

/// The roster event of a body, `None` for a body of another kind.
pub fn event_from_pb(body: &pb::event::Body) -> Option<Result<RosterEvent, String>> {
    use pb::event::Body;
    let event = match body {
        Body::ShiftsSet(set) => Ok(RosterEvent::ShiftsSet { shifts: set.shifts.iter().map(shift_from_pb).collect() }),
        Body::ShiftRemoved(removed) => Ok(RosterEvent::ShiftRemoved { shift: ShiftId::new(&removed.shift_id) }),
        Body::AvailabilitySet(set) => Ok(RosterEvent::AvailabilitySet {
            agent: AgentId::new(&set.agent_id),
            windows: set.windows.iter().map(window_from_pb).collect(),
        }),
        Body::AbsenceRecorded(recorded) => match recorded.absence.as_ref() {
            None => Err("absence_recorded has no absence".to_string()),
            Some(absence) => absence_from_pb(absence)
                .map(|absence| RosterEvent::AbsenceRecorded { absence })
                .map_err(|rejection| rejection.to_string()),
        },
        Body::SwapRequested(requested) => Ok(RosterEvent::SwapRequested {
            swap: SwapId::new(&requested.swap_id),
            shift: ShiftId::new(&requested.shift_id),
            day: requested.day,
            from: AgentId::new(&requested.from_agent_id),
            to: AgentId::new(&requested.to_agent_id),
        }),
        Body::SwapDecided(decided) => Ok(RosterEvent::SwapDecided {
            swap: SwapId::new(&decided.swap_id),
            approved: decided.approved,
            reason: decided.reason.clone(),
        }),
        Body::ShiftCheckedIn(checked) => Ok(RosterEvent::ShiftCheckedIn {
            agent: AgentId::new(&checked.agent_id),
            shift: ShiftId::new(&checked.shift_id),
            area: AreaId::new(&checked.area_id),
        }),
        Body::ShiftCheckedOut(checked) => Ok(RosterEvent::ShiftCheckedOut {
            agent: AgentId::new(&checked.agent_id),
            shift: ShiftId::new(&checked.shift_id),
            area: AreaId::new(&checked.area_id),
            since: Millis(checked.since_ms),
        }),
        Body::CalendarLinkSet(set) => {
            Ok(RosterEvent::CalendarLinkSet { agent: AgentId::new(&set.agent_id), secret_sha256: set.secret_sha256.clone() })
        }
        Body::CalendarLinkRevoked(revoked) => Ok(RosterEvent::CalendarLinkRevoked { agent: AgentId::new(&revoked.agent_id) }),
        _ => return None,
    };
    Some(event)
}
