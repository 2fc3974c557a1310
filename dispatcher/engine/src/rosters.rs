//! Duty rosters (值班排班): shifts per area and duty, who works them, people's
//! weekly availability and absences, swaps, and attendance.
//!
//! A shift is a weekly pattern: on the days it names it starts at a local
//! time and lasts up to 24 hours (the 24-hour duty officer of a street, the
//! evening on-call grid leaders of a community). Local time is the
//! deployment's: a fixed offset from UTC in the policy
//! (`[rosters] utc_offset_minutes`, China Standard Time, +08:00, by
//! default; China keeps no daylight saving time, so a fixed offset is
//! exact). One occurrence of a shift is named by the local date it starts
//! on (days since 1970-01-01).
//!
//! Who is on duty in an occurrence: the shift's people, with approved swaps
//! of that occurrence applied, less anyone absent (leave, sick) at the
//! moment asked about. Check-in and check-out record attendance; being on
//! duty follows the schedule, not the check-in. The engine's part
//! (deciding, folding, dispatch preferring people on shift) is in
//! `engine::rosters`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AreaId, Millis};

pub const MINUTES_PER_DAY: u32 = 24 * 60;
const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_MINUTE: i64 = 60_000;

crate::ids::string_id!(
    /// A shift, e.g. `s1-duty-officer`.
    ShiftId
);
crate::ids::string_id!(
    /// A swap request, e.g. `swap-000001`.
    SwapId
);

/// A shift as set by a commander: which area, which duty, when, and who.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftSpec {
    pub id: ShiftId,
    pub area: AreaId,
    /// The duty in words a command room uses: `duty_officer`, `on_call_grid_leader`.
    pub duty: String,
    /// ISO weekdays it runs on: 1 Monday to 7 Sunday.
    pub days: Vec<u8>,
    /// Local start, minutes after midnight (0..1440).
    pub start_minute: u32,
    /// 1..=1440 minutes; may run past midnight into the next day.
    pub length_minutes: u32,
    pub people: Vec<AgentId>,
}

/// A weekly window a person can work: from `start_minute` on ISO weekday
/// `day` for `length_minutes` (may run into the next day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WeeklyWindow {
    pub day: u8,
    pub start_minute: u32,
    pub length_minutes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsenceKind {
    Leave,
    Sick,
    Other,
}

impl AbsenceKind {
    pub fn name(self) -> &'static str {
        match self {
            AbsenceKind::Leave => "leave",
            AbsenceKind::Sick => "sick",
            AbsenceKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<AbsenceKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "leave" => Some(AbsenceKind::Leave),
            "sick" => Some(AbsenceKind::Sick),
            "other" => Some(AbsenceKind::Other),
            _ => None,
        }
    }
}

/// An exception to the schedule: the person is not on duty in `[from, until)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    pub agent: AgentId,
    pub from: Millis,
    pub until: Millis,
    pub kind: AbsenceKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapStatus {
    Requested,
    Approved,
    Rejected,
}

impl SwapStatus {
    pub fn name(self) -> &'static str {
        match self {
            SwapStatus::Requested => "requested",
            SwapStatus::Approved => "approved",
            SwapStatus::Rejected => "rejected",
        }
    }
}

/// `from` asks `to` to work their place in one occurrence of a shift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    pub id: SwapId,
    pub shift: ShiftId,
    /// The occurrence: the local date it starts on (days since 1970-01-01).
    pub day: i64,
    pub from: AgentId,
    pub to: AgentId,
    pub status: SwapStatus,
    pub requested_at: Millis,
    pub requested_by: String,
    #[serde(default)]
    pub decided_by: String,
    #[serde(default)]
    pub reason: String,
}

/// One occurrence of a shift in UTC, with who works it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub shift: ShiftId,
    pub area: AreaId,
    pub duty: String,
    pub day: i64,
    pub start: Millis,
    pub end: Millis,
    pub people: Vec<AgentId>,
}

/// A person checked in to a shift and not yet out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendance {
    pub shift: ShiftId,
    pub area: AreaId,
    pub since: Millis,
}

/// The roster part of the durable state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RosterState {
    pub shifts: BTreeMap<ShiftId, ShiftSpec>,
    /// Declared weekly availability; a person with none declared is taken
    /// to be available whenever their shifts say.
    pub availability: BTreeMap<AgentId, Vec<WeeklyWindow>>,
    pub absences: BTreeMap<AgentId, Vec<Absence>>,
    pub swaps: BTreeMap<SwapId, Swap>,
    /// Swaps requested so far: the next one's number.
    pub swaps_made: u64,
    pub checked_in: BTreeMap<AgentId, Attendance>,
    /// Each person's calendar link, by the SHA-256 (hex) of its secret:
    /// the secret itself is never kept, so the journal cannot leak it.
    #[serde(default)]
    pub calendar_links: BTreeMap<AgentId, String>,
}

/// ISO weekday (1 Monday .. 7 Sunday) of a local date; 1970-01-01 was a Thursday.
pub fn weekday(day: i64) -> u8 {
    ((day + 3).rem_euclid(7) + 1) as u8
}

/// The local date of `at` under `utc_offset_minutes`.
pub fn local_day(at: Millis, utc_offset_minutes: i32) -> i64 {
    (at.0 + i64::from(utc_offset_minutes) * MS_PER_MINUTE).div_euclid(MS_PER_DAY)
}

impl ShiftSpec {
    /// When the occurrence starting on local `day` begins and ends, in UTC.
    pub fn bounds(&self, day: i64, utc_offset_minutes: i32) -> (Millis, Millis) {
        let start =
            day * MS_PER_DAY + i64::from(self.start_minute) * MS_PER_MINUTE - i64::from(utc_offset_minutes) * MS_PER_MINUTE;
        (Millis(start), Millis(start + i64::from(self.length_minutes) * MS_PER_MINUTE))
    }

    pub fn runs_on(&self, day: i64) -> bool {
        self.days.contains(&weekday(day))
    }

    /// The occurrence running at `at`, if any (a shift lasts at most a day,
    /// so it started today or yesterday, local time).
    pub fn occurrence_at(&self, at: Millis, utc_offset_minutes: i32) -> Option<i64> {
        let today = local_day(at, utc_offset_minutes);
        [today, today - 1].into_iter().find(|day| {
            let (start, end) = self.bounds(*day, utc_offset_minutes);
            self.runs_on(*day) && start <= at && at < end
        })
    }

    /// Minutes from Monday 00:00 local at which each weekly start falls.
    fn week_starts(&self) -> impl Iterator<Item = u32> + '_ {
        self.days.iter().map(|day| u32::from(day - 1) * MINUTES_PER_DAY + self.start_minute)
    }
}

impl WeeklyWindow {
    /// Whether `[start, start + length)` (minutes from Monday 00:00) lies in this window.
    fn covers(&self, start: u32, length: u32) -> bool {
        const WEEK: u32 = 7 * MINUTES_PER_DAY;
        let own = u32::from(self.day - 1) * MINUTES_PER_DAY + self.start_minute;
        // The window may run past Sunday midnight into Monday.
        [start, start + WEEK].into_iter().any(|start| own <= start && start + length <= own + self.length_minutes)
    }
}

impl RosterState {
    /// Whether anyone is rostered in one of `areas`.
    pub fn rosters_any(&self, areas: &[&AreaId]) -> bool {
        self.shifts.values().any(|shift| areas.contains(&&shift.area))
    }

    pub fn is_absent(&self, agent: &AgentId, at: Millis) -> bool {
        self.absences.get(agent).is_some_and(|absences| absences.iter().any(|absence| absence.from <= at && at < absence.until))
    }

    /// The people scheduled for an occurrence, swaps applied, before absences.
    pub fn scheduled(&self, shift: &ShiftSpec, day: i64) -> Vec<AgentId> {
        let mut people = shift.people.clone();
        for swap in self.swaps.values() {
            if swap.status == SwapStatus::Approved && swap.shift == shift.id && swap.day == day {
                for person in people.iter_mut().filter(|person| **person == swap.from) {
                    *person = swap.to.clone();
                }
            }
        }
        let mut seen = BTreeSet::new();
        people.retain(|person| seen.insert(person.clone()));
        people
    }

    /// Who is on duty at `at` in each shift running then (absent people left out).
    pub fn on_duty_at(&self, at: Millis, utc_offset_minutes: i32) -> Vec<Occurrence> {
        self.shifts
            .values()
            .filter_map(|shift| {
                let day = shift.occurrence_at(at, utc_offset_minutes)?;
                let (start, end) = shift.bounds(day, utc_offset_minutes);
                let mut people = self.scheduled(shift, day);
                people.retain(|person| !self.is_absent(person, at));
                Some(Occurrence {
                    shift: shift.id.clone(),
                    area: shift.area.clone(),
                    duty: shift.duty.clone(),
                    day,
                    start,
                    end,
                    people,
                })
            })
            .collect()
    }

    /// Everyone on duty at `at`, in any shift.
    pub fn on_shift_at(&self, at: Millis, utc_offset_minutes: i32) -> BTreeSet<AgentId> {
        self.on_duty_at(at, utc_offset_minutes).into_iter().flat_map(|occurrence| occurrence.people).collect()
    }

    /// A person's occurrences starting in `[from, until)`, swaps applied
    /// (an absence does not remove them: the calendar shows the plan).
    pub fn occurrences_of(&self, agent: &AgentId, from: Millis, until: Millis, utc_offset_minutes: i32) -> Vec<Occurrence> {
        let first = local_day(from, utc_offset_minutes) - 1;
        let last = local_day(until, utc_offset_minutes);
        let mut found = Vec::new();
        for shift in self.shifts.values() {
            for day in first..=last {
                if !shift.runs_on(day) {
                    continue;
                }
                let (start, end) = shift.bounds(day, utc_offset_minutes);
                if start < from || start >= until {
                    continue;
                }
                let people = self.scheduled(shift, day);
                if people.contains(agent) {
                    found.push(Occurrence {
                        shift: shift.id.clone(),
                        area: shift.area.clone(),
                        duty: shift.duty.clone(),
                        day,
                        start,
                        end,
                        people,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.shift.cmp(&b.shift)));
        found
    }

    /// Folds one roster event (the engine's `evolve`, and drill reports).
    pub fn apply(&mut self, event: &RosterEvent, at: Millis, actor: &str) {
        let rosters = self;
        match event {
            RosterEvent::ShiftsSet { shifts } => {
                for shift in shifts {
                    rosters.shifts.insert(shift.id.clone(), shift.clone());
                }
            }
            RosterEvent::ShiftRemoved { shift } => {
                rosters.shifts.remove(shift);
            }
            RosterEvent::AvailabilitySet { agent, windows } => {
                if windows.is_empty() {
                    rosters.availability.remove(agent);
                } else {
                    rosters.availability.insert(agent.clone(), windows.clone());
                }
            }
            RosterEvent::AbsenceRecorded { absence } => {
                let absences: &mut Vec<Absence> = rosters.absences.entry(absence.agent.clone()).or_default();
                absences.push(absence.clone());
            }
            RosterEvent::SwapRequested { swap, shift, day, from, to } => {
                rosters.swaps_made += 1;
                rosters.swaps.insert(
                    swap.clone(),
                    Swap {
                        id: swap.clone(),
                        shift: shift.clone(),
                        day: *day,
                        from: from.clone(),
                        to: to.clone(),
                        status: SwapStatus::Requested,
                        requested_at: at,
                        requested_by: actor.to_string(),
                        decided_by: String::new(),
                        reason: String::new(),
                    },
                );
            }
            RosterEvent::SwapDecided { swap, approved, reason } => {
                if let Some(record) = rosters.swaps.get_mut(swap) {
                    record.status = if *approved { SwapStatus::Approved } else { SwapStatus::Rejected };
                    record.decided_by = actor.to_string();
                    record.reason = reason.clone();
                }
            }
            RosterEvent::ShiftCheckedIn { agent, shift, area } => {
                rosters.checked_in.insert(agent.clone(), Attendance { shift: shift.clone(), area: area.clone(), since: at });
            }
            RosterEvent::ShiftCheckedOut { agent, .. } => {
                rosters.checked_in.remove(agent);
            }
            RosterEvent::CalendarLinkSet { agent, secret_sha256 } => {
                rosters.calendar_links.insert(agent.clone(), secret_sha256.clone());
            }
            RosterEvent::CalendarLinkRevoked { agent } => {
                rosters.calendar_links.remove(agent);
            }
        }
    }

    /// Whether a person's declared availability covers every weekly
    /// occurrence of `shift` (true when they declared none).
    pub fn available_for(&self, agent: &AgentId, shift: &ShiftSpec) -> bool {
        let Some(windows) = self.availability.get(agent).filter(|windows| !windows.is_empty()) else {
            return true;
        };
        shift.week_starts().all(|start| windows.iter().any(|window| window.covers(start, shift.length_minutes)))
    }
}

/// The roster commands (`Command::Rosters`).
#[derive(Clone, Debug, PartialEq)]
pub enum RosterCommand {
    /// Adds shifts or replaces them whole (by id).
    SetShifts(Vec<ShiftSpec>),
    RemoveShift(ShiftId),
    /// A person's weekly availability, replacing what they had (empty: any time).
    SetAvailability {
        agent: AgentId,
        windows: Vec<WeeklyWindow>,
    },
    RecordAbsence(Absence),
    /// `from` asks `to` to work their place in the occurrence of `shift` starting on local `day`.
    RequestSwap {
        shift: ShiftId,
        day: i64,
        from: AgentId,
        to: AgentId,
    },
    DecideSwap {
        swap: SwapId,
        approve: bool,
        reason: String,
    },
    /// A person checks in to a shift (they must be on duty in it now).
    CheckIn {
        agent: AgentId,
        shift: ShiftId,
    },
    CheckOut {
        agent: AgentId,
    },
    /// Gives a person a (new) calendar link: the SHA-256 (hex) of its
    /// secret, which the server made; an older link stops working.
    SetCalendarLink {
        agent: AgentId,
        secret_sha256: String,
    },
    RevokeCalendarLink {
        agent: AgentId,
    },
}

/// The roster events (Event.body tags 130 to 139 on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "roster", rename_all = "snake_case")]
pub enum RosterEvent {
    ShiftsSet {
        shifts: Vec<ShiftSpec>,
    },
    ShiftRemoved {
        shift: ShiftId,
    },
    AvailabilitySet {
        agent: AgentId,
        windows: Vec<WeeklyWindow>,
    },
    AbsenceRecorded {
        absence: Absence,
    },
    SwapRequested {
        swap: SwapId,
        shift: ShiftId,
        day: i64,
        from: AgentId,
        to: AgentId,
    },
    SwapDecided {
        swap: SwapId,
        approved: bool,
        reason: String,
    },
    ShiftCheckedIn {
        agent: AgentId,
        shift: ShiftId,
        area: AreaId,
    },
    /// `since`: when they checked in; the hours worked are `at - since`.
    ShiftCheckedOut {
        agent: AgentId,
        shift: ShiftId,
        area: AreaId,
        since: Millis,
    },
    CalendarLinkSet {
        agent: AgentId,
        secret_sha256: String,
    },
    CalendarLinkRevoked {
        agent: AgentId,
    },
}

impl RosterEvent {
    pub fn name(&self) -> &'static str {
        match self {
            RosterEvent::ShiftsSet { .. } => "shifts_set",
            RosterEvent::ShiftRemoved { .. } => "shift_removed",
            RosterEvent::AvailabilitySet { .. } => "availability_set",
            RosterEvent::AbsenceRecorded { .. } => "absence_recorded",
            RosterEvent::SwapRequested { .. } => "swap_requested",
            RosterEvent::SwapDecided { .. } => "swap_decided",
            RosterEvent::ShiftCheckedIn { .. } => "shift_checked_in",
            RosterEvent::ShiftCheckedOut { .. } => "shift_checked_out",
            RosterEvent::CalendarLinkSet { .. } => "calendar_link_set",
            RosterEvent::CalendarLinkRevoked { .. } => "calendar_link_revoked",
        }
    }

    pub fn agent_id(&self) -> Option<&AgentId> {
        match self {
            RosterEvent::AvailabilitySet { agent, .. }
            | RosterEvent::ShiftCheckedIn { agent, .. }
            | RosterEvent::ShiftCheckedOut { agent, .. }
            | RosterEvent::CalendarLinkSet { agent, .. }
            | RosterEvent::CalendarLinkRevoked { agent } => Some(agent),
            RosterEvent::AbsenceRecorded { absence } => Some(&absence.agent),
            RosterEvent::SwapRequested { from, .. } => Some(from),
            _ => None,
        }
    }

    pub fn area_id(&self) -> Option<&AreaId> {
        match self {
            RosterEvent::ShiftCheckedIn { area, .. } | RosterEvent::ShiftCheckedOut { area, .. } => Some(area),
            _ => None,
        }
    }
}

/// A person's shifts as an iCalendar (RFC 5545) calendar: one VEVENT per
/// occurrence, times in UTC, lines folded at 75 octets and ended by CRLF.
pub fn to_ics(agent: &AgentId, occurrences: &[Occurrence], area_name: impl Fn(&AreaId) -> String, now: Millis) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//Pingji//Duty rosters//ZH".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", ics_text(&format!("值班 {agent}"))),
    ];
    for occurrence in occurrences {
        lines.push("BEGIN:VEVENT".to_string());
        lines.push(format!("UID:{}-{}-{}@pingji", ics_text(occurrence.shift.as_str()), occurrence.day, ics_text(agent.as_str())));
        lines.push(format!("DTSTAMP:{}", ics_time(now)));
        lines.push(format!("DTSTART:{}", ics_time(occurrence.start)));
        lines.push(format!("DTEND:{}", ics_time(occurrence.end)));
        lines.push(format!("SUMMARY:{}", ics_text(&format!("{} {}", occurrence.duty, area_name(&occurrence.area)))));
        lines.push(format!("LOCATION:{}", ics_text(&area_name(&occurrence.area))));
        lines.push(format!("CATEGORIES:{}", ics_text(&occurrence.duty)));
        lines.push("END:VEVENT".to_string());
    }
    lines.push("END:VCALENDAR".to_string());
    let mut out = String::new();
    for line in lines {
        fold_line(&line, &mut out);
    }
    out
}

/// UTC in the RFC 5545 basic form: 20261207T083000Z.
pub fn ics_time(at: Millis) -> String {
    let day = at.0.div_euclid(MS_PER_DAY);
    let seconds = at.0.rem_euclid(MS_PER_DAY) / 1000;
    let (year, month, date) = civil_from_days(day);
    format!("{year:04}{month:02}{date:02}T{:02}{:02}{:02}Z", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01),
/// after Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, date)
}

/// Escapes TEXT values (RFC 5545 3.3.11).
fn ics_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            character => out.push(character),
        }
    }
    out
}

/// Folds a content line at 75 octets, never inside a UTF-8 character (RFC 5545 3.1).
fn fold_line(line: &str, out: &mut String) {
    let mut octets = 0;
    for character in line.chars() {
        let width = character.len_utf8();
        if octets + width > 75 {
            out.push_str("\r\n ");
            octets = 1;
        }
        out.push(character);
        octets += width;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: i32 = 480;

    fn duty_officer() -> ShiftSpec {
        ShiftSpec {
            id: ShiftId::new("s1-duty"),
            area: AreaId::new("s1"),
            duty: "duty_officer".to_string(),
            days: vec![1, 2, 3, 4, 5, 6, 7],
            start_minute: 8 * 60,
            length_minutes: 24 * 60,
            people: vec![AgentId::new("p1")],
        }
    }

    /// 2026-12-07 (a Monday) at `hour`:`minute` China Standard Time.
    fn cst(hour: i64, minute: i64) -> Millis {
        let day = 20_794; // 2026-12-07
        Millis(day * MS_PER_DAY + (hour * 60 + minute - 480) * MS_PER_MINUTE)
    }

    #[test]
    fn dates_and_weekdays_are_those_of_the_calendar() {
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
        assert_eq!(weekday(20_794), 1, "2026-12-07 is a Monday");
        assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(ics_time(cst(8, 30)), "20261207T003000Z");
    }

    #[test]
    fn a_24_hour_shift_runs_from_its_start_into_the_next_morning() {
        let mut state = RosterState::default();
        let shift = duty_officer();
        state.shifts.insert(shift.id.clone(), shift);
        assert!(state.on_shift_at(cst(7, 59), CST).contains(&AgentId::new("p1")), "yesterday's shift still runs");
        let monday_morning = state.on_duty_at(cst(8, 0), CST);
        assert_eq!(monday_morning[0].day, 20_794);
        let mut weekdays_only = duty_officer();
        weekdays_only.days = vec![2];
        state.shifts.insert(weekdays_only.id.clone(), weekdays_only);
        assert!(state.on_shift_at(cst(9, 0), CST).is_empty(), "the Tuesday shift starts tomorrow");
    }

    #[test]
    fn an_approved_swap_and_an_absence_change_who_is_on_duty() {
        let mut state = RosterState::default();
        let shift = duty_officer();
        state.shifts.insert(shift.id.clone(), shift.clone());
        state.swaps.insert(
            SwapId::new("swap-1"),
            Swap {
                id: SwapId::new("swap-1"),
                shift: shift.id.clone(),
                day: 20_794,
                from: AgentId::new("p1"),
                to: AgentId::new("p2"),
                status: SwapStatus::Approved,
                requested_at: Millis(0),
                requested_by: String::new(),
                decided_by: String::new(),
                reason: String::new(),
            },
        );
        assert_eq!(state.on_shift_at(cst(12, 0), CST), BTreeSet::from([AgentId::new("p2")]));
        assert_eq!(state.on_shift_at(cst(7, 0), CST), BTreeSet::from([AgentId::new("p1")]), "the day before is p1's");
        state.absences.insert(
            AgentId::new("p2"),
            vec![Absence { agent: AgentId::new("p2"), from: cst(10, 0), until: cst(14, 0), kind: AbsenceKind::Sick }],
        );
        assert!(state.on_shift_at(cst(12, 0), CST).is_empty());
        assert_eq!(state.on_shift_at(cst(15, 0), CST), BTreeSet::from([AgentId::new("p2")]));
    }

    #[test]
    fn availability_must_cover_every_weekly_start() {
        let mut state = RosterState::default();
        let mut evening = duty_officer();
        evening.days = vec![7];
        evening.start_minute = 20 * 60;
        evening.length_minutes = 8 * 60;
        let agent = AgentId::new("p1");
        state.availability.insert(agent.clone(), vec![WeeklyWindow { day: 7, start_minute: 18 * 60, length_minutes: 14 * 60 }]);
        assert!(state.available_for(&agent, &evening), "Sunday 18:00 to Monday 08:00 covers it, across the week's end");
        state.availability.insert(agent.clone(), vec![WeeklyWindow { day: 7, start_minute: 18 * 60, length_minutes: 4 * 60 }]);
        assert!(!state.available_for(&agent, &evening));
    }

    #[test]
    fn the_calendar_has_the_lines_rfc_5545_requires() {
        let mut state = RosterState::default();
        let shift = duty_officer();
        state.shifts.insert(shift.id.clone(), shift);
        let agent = AgentId::new("p1");
        let occurrences = state.occurrences_of(&agent, cst(0, 0), cst(0, 0).plus_seconds(7 * 86_400), CST);
        assert_eq!(occurrences.len(), 7);
        let ics = to_ics(&agent, &occurrences, |area| format!("{area}街道"), cst(0, 0));
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:"));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 7);
        assert_eq!(ics.matches("\r\nUID:").count(), 7);
        assert_eq!(ics.matches("\r\nDTSTAMP:").count(), 7);
        assert!(ics.contains("DTSTART:20261207T000000Z\r\nDTEND:20261208T000000Z"));
        assert!(ics.split("\r\n").all(|line| line.len() <= 75));
    }
}
