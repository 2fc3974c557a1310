//! Duty rosters in words: roster events, weekdays and local times of shifts.

use pingji_proto::v1 as pb;
use pingji_proto::v1::event::Body;

/// The snake_case name of a roster event's body, `None` for another kind.
pub fn event_kind_name(body: &Body) -> Option<&'static str> {
    Some(match body {
        Body::ShiftsSet(_) => "shifts_set",
        Body::ShiftRemoved(_) => "shift_removed",
        Body::AvailabilitySet(_) => "availability_set",
        Body::AbsenceRecorded(_) => "absence_recorded",
        Body::SwapRequested(_) => "swap_requested",
        Body::SwapDecided(_) => "swap_decided",
        Body::ShiftCheckedIn(_) => "shift_checked_in",
        Body::ShiftCheckedOut(_) => "shift_checked_out",
        Body::CalendarLinkSet(_) => "calendar_link_set",
        Body::CalendarLinkRevoked(_) => "calendar_link_revoked",
        _ => return None,
    })
}

/// A roster event in a few words, `None` for another kind.
pub fn event_summary(body: &Body) -> Option<String> {
    Some(match body {
        Body::ShiftsSet(set) => match set.shifts.as_slice() {
            [one] => format!("shift {} ({} in {}) set: {} people", one.id, one.duty, one.area_id, one.agent_ids.len()),
            many => format!("{} shifts set", many.len()),
        },
        Body::ShiftRemoved(removed) => format!("shift {} removed", removed.shift_id),
        Body::AvailabilitySet(set) => format!("{} declared {} weekly availability windows", set.agent_id, set.windows.len()),
        Body::AbsenceRecorded(recorded) => match &recorded.absence {
            Some(absence) => format!("{} absent ({})", absence.agent_id, absence_kind_name(absence.kind)),
            None => "absence recorded".to_string(),
        },
        Body::SwapRequested(requested) => format!(
            "swap {}: {} asks {} to work shift {} on {}",
            requested.swap_id,
            requested.from_agent_id,
            requested.to_agent_id,
            requested.shift_id,
            local_date(requested.day)
        ),
        Body::SwapDecided(decided) => {
            format!("swap {} {}", decided.swap_id, if decided.approved { "approved" } else { "rejected" })
        }
        Body::ShiftCheckedIn(checked) => format!("{} checked in to shift {}", checked.agent_id, checked.shift_id),
        Body::ShiftCheckedOut(checked) => format!("{} checked out of shift {}", checked.agent_id, checked.shift_id),
        Body::CalendarLinkSet(set) => format!("{} has a new calendar link", set.agent_id),
        Body::CalendarLinkRevoked(revoked) => format!("{}'s calendar link revoked", revoked.agent_id),
        _ => return None,
    })
}

pub fn absence_kind_name(kind: i32) -> &'static str {
    match pb::AbsenceKind::try_from(kind) {
        Ok(pb::AbsenceKind::Leave) => "leave",
        Ok(pb::AbsenceKind::Sick) => "sick",
        Ok(pb::AbsenceKind::Other) => "other",
        Ok(pb::AbsenceKind::Unspecified) | Err(_) => "unknown",
    }
}

pub fn absence_kind_from_name(name: &str) -> Option<pb::AbsenceKind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "leave" => Some(pb::AbsenceKind::Leave),
        "sick" => Some(pb::AbsenceKind::Sick),
        "other" => Some(pb::AbsenceKind::Other),
        _ => None,
    }
}

pub fn swap_status_name(status: i32) -> &'static str {
    match pb::SwapStatus::try_from(status) {
        Ok(pb::SwapStatus::Requested) => "requested",
        Ok(pb::SwapStatus::Approved) => "approved",
        Ok(pb::SwapStatus::Rejected) => "rejected",
        Ok(pb::SwapStatus::Unspecified) | Err(_) => "unknown",
    }
}

/// A local date (days since 1970-01-01) as YYYY-MM-DD.
pub fn local_date(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{date:02}")
}

/// Minutes after midnight as HH:MM.
pub fn clock(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// "HH:MM" as minutes after midnight.
pub fn parse_clock(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// Weekdays as "1-5", "1,3,5", "mon-fri", "daily": ISO numbers 1 (Monday) to 7.
pub fn parse_days(text: &str) -> Option<Vec<u32>> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let number = |word: &str| -> Option<u32> {
        let word = word.trim().to_ascii_lowercase();
        word.parse::<u32>()
            .ok()
            .filter(|day| (1..=7).contains(day))
            .or_else(|| NAMES.iter().position(|name| word.starts_with(name)).map(|position| position as u32 + 1))
    };
    if matches!(text.trim(), "daily" | "all" | "every day") {
        return Some((1..=7).collect());
    }
    let mut days = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if from > to {
                    return None;
                }
                days.extend(from..=to);
            }
            None => days.push(number(part)?),
        }
    }
    days.sort_unstable();
    days.dedup();
    (!days.is_empty()).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_clocks_read_as_written() {
        assert_eq!(parse_days("1-5"), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(parse_days("mon,wed,sun"), Some(vec![1, 3, 7]));
        assert_eq!(parse_days("daily"), Some((1..=7).collect()));
        assert_eq!(parse_days("0"), None);
        assert_eq!(parse_clock("08:30"), Some(510));
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(local_date(20_794), "2026-12-07");
    }
}
