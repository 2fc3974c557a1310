//! Duty rosters in the engine: deciding roster commands into events,
//! folding the events into [`RosterState`], and the dispatch rule: in
//! normal mode, where an incident lies in an area with a roster, offers go
//! to people on shift first and to off-shift people only as the policy
//! (`[rosters] off_shift_in_normal`) allows. In an emergency, and in areas
//! without a roster, nothing changes. The domain types are in
//! `crate::rosters`.

use std::collections::{BTreeMap, BTreeSet};

use super::decide::check_text;
use super::dispatch::{Candidate, CandidateQuery, Reach};
use super::{Engine, Rejection};
use crate::event::EventKind;
use crate::ids::{AgentId, AreaId, Millis, check_id, quote};
use crate::incident::Incident;
use crate::policy::{Mode, OffShift};
use crate::rosters::{
    MINUTES_PER_DAY, Occurrence, RosterCommand, RosterEvent, RosterState, ShiftId, ShiftSpec, SwapId, SwapStatus, WeeklyWindow,
};

/// Shifts one command may set.
pub const MAX_SHIFTS: usize = 10_000;
/// People one shift may have.
pub const MAX_SHIFT_PEOPLE: usize = 500;
/// Availability windows one person may declare.
pub const MAX_WINDOWS: usize = 50;
/// The longest absence one record may cover.
pub const MAX_ABSENCE_DAYS: i64 = 366;

fn invalid(message: String) -> Rejection {
    Rejection::InvalidArgument(message)
}

/// Who is on shift for an incident's offers, under the policy's rule.
pub(super) struct ShiftRule {
    pub(super) on_shift: BTreeSet<AgentId>,
    pub(super) off_shift: OffShift,
}

impl Engine {
    pub fn rosters(&self) -> &RosterState {
        &self.state.rosters
    }

    /// The deployment's offset from UTC for shifts, in minutes.
    pub fn roster_utc_offset(&self) -> i32 {
        self.policy.rosters.utc_offset_minutes
    }

    /// Who is on duty now in each shift of `area` or an area below it
    /// (`None`: every area).
    pub fn on_duty(&self, area: Option<&AreaId>, now: Millis) -> Vec<Occurrence> {
        let mut occurrences = self.state.rosters.on_duty_at(now, self.roster_utc_offset());
        if let Some(area) = area {
            occurrences.retain(|occurrence| &occurrence.area == area || self.area_within(&occurrence.area, area));
        }
        occurrences
    }

    /// The shifts of `area` and the areas below it (`None`: all).
    pub fn shifts_in(&self, area: Option<&AreaId>) -> Vec<&ShiftSpec> {
        self.state
            .rosters
            .shifts
            .values()
            .filter(|shift| area.is_none_or(|area| &shift.area == area || self.area_within(&shift.area, area)))
            .collect()
    }

    /// A person's shifts starting in `[from, until)`.
    pub fn shifts_of(&self, agent: &AgentId, from: Millis, until: Millis) -> Vec<Occurrence> {
        self.state.rosters.occurrences_of(agent, from, until, self.roster_utc_offset())
    }

    /// The shift rule for offers of `incident` under `reach`, or `None`
    /// when it does not apply: an emergency, an area without a roster, or
    /// the policy treating everyone alike.
    pub(super) fn shift_rule(&self, incident: &Incident, reach: &Reach, now: Millis) -> Option<ShiftRule> {
        let off_shift = self.policy.rosters.off_shift_in_normal;
        if reach.mode != Mode::Normal || off_shift == OffShift::Always || self.state.rosters.shifts.is_empty() {
            return None;
        }
        let areas: Vec<&AreaId> = incident.placement.areas().map(|(_, area)| area).collect();
        if !self.state.rosters.rosters_any(&areas) {
            return None;
        }
        Some(ShiftRule { on_shift: self.state.rosters.on_shift_at(now, self.roster_utc_offset()), off_shift })
    }

    /// The best `k` people to offer `incident` within `reach`: the search's
    /// own, with people on shift first where the shift rule applies, then
    /// (`after_on_shift`) off-shift people for the places left.
    pub(super) fn offer_candidates(&self, incident: &Incident, reach: &Reach, k: usize, now: Millis) -> Vec<Candidate> {
        let mut query = CandidateQuery::offer(incident, reach, k, now);
        let Some(rule) = self.shift_rule(incident, reach, now) else {
            return self.find_candidates(&query);
        };
        query.on_shift = Some(&rule.on_shift);
        let mut candidates = self.find_candidates(&query);
        if candidates.len() < k && rule.off_shift == OffShift::AfterOnShift {
            query.on_shift = None;
            let found: BTreeSet<AgentId> = candidates.iter().map(|candidate| candidate.agent.clone()).collect();
            let more = self.find_candidates(&query);
            let wanted = k - candidates.len();
            candidates.extend(more.into_iter().filter(|candidate| !found.contains(&candidate.agent)).take(wanted));
        }
        candidates
    }

    pub(super) fn decide_rosters(&self, command: &RosterCommand, now: Millis) -> Result<Vec<EventKind>, Rejection> {
        let event = match command {
            RosterCommand::SetShifts(shifts) => self.decide_set_shifts(shifts)?,
            RosterCommand::RemoveShift(shift) => {
                self.shift(shift)?;
                RosterEvent::ShiftRemoved { shift: shift.clone() }
            }
            RosterCommand::SetAvailability { agent, windows } => {
                self.rostered_person(agent, "agent_id")?;
                if windows.len() > MAX_WINDOWS {
                    return Err(invalid(format!(
                        "{} availability windows; at most {MAX_WINDOWS} a person: merge some",
                        windows.len()
                    )));
                }
                for window in windows {
                    check_week_time("availability", window.day, window.start_minute)?;
                    if window.length_minutes == 0 || window.length_minutes > 7 * MINUTES_PER_DAY {
                        return Err(invalid(format!(
                            "an availability window of {} minutes; give 1 to {} (a week)",
                            window.length_minutes,
                            7 * MINUTES_PER_DAY
                        )));
                    }
                }
                let mut windows: Vec<WeeklyWindow> = windows.clone();
                windows.sort();
                windows.dedup();
                RosterEvent::AvailabilitySet { agent: agent.clone(), windows }
            }
            RosterCommand::RecordAbsence(absence) => {
                self.rostered_person(&absence.agent, "agent_id")?;
                if absence.until <= absence.from {
                    return Err(invalid("an absence must end after it starts: give `until` after `from`".to_string()));
                }
                if absence.until.0 - absence.from.0 > MAX_ABSENCE_DAYS * 86_400_000 {
                    return Err(invalid(format!("an absence of more than {MAX_ABSENCE_DAYS} days; record long ones in parts")));
                }
                RosterEvent::AbsenceRecorded { absence: absence.clone() }
            }
            RosterCommand::RequestSwap { shift, day, from, to } => self.decide_swap_request(shift, *day, from, to, now)?,
            RosterCommand::DecideSwap { swap, approve, reason } => {
                check_text("the reason", reason, false)?;
                let record = self.state.rosters.swaps.get(swap).ok_or_else(|| {
                    Rejection::NotFound(format!("swap {} does not exist; list the swaps", quote(swap.as_str())))
                })?;
                if record.status != SwapStatus::Requested {
                    return Err(Rejection::FailedPrecondition(format!(
                        "swap {swap} was {} already; a swap is decided once",
                        record.status.name()
                    )));
                }
                if *approve {
                    let shift = self.shift(&record.shift)?;
                    if !self.state.rosters.scheduled(shift, record.day).contains(&record.from) {
                        return Err(Rejection::FailedPrecondition(format!(
                            "agent {} no longer works that shift; reject the swap",
                            quote(record.from.as_str())
                        )));
                    }
                }
                RosterEvent::SwapDecided { swap: swap.clone(), approved: *approve, reason: reason.trim().to_string() }
            }
            RosterCommand::CheckIn { agent, shift } => {
                self.rostered_person(agent, "agent_id")?;
                let spec = self.shift(shift)?;
                if let Some(open) = self.state.rosters.checked_in.get(agent) {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} is checked in to shift {} already; check out first",
                        quote(agent.as_str()),
                        open.shift
                    )));
                }
                let on_duty = self
                    .state
                    .rosters
                    .on_duty_at(now, self.roster_utc_offset())
                    .into_iter()
                    .any(|occurrence| &occurrence.shift == shift && occurrence.people.contains(agent));
                if !on_duty {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} is not on duty in shift {shift} now; check in during one's own shift",
                        quote(agent.as_str())
                    )));
                }
                RosterEvent::ShiftCheckedIn { agent: agent.clone(), shift: shift.clone(), area: spec.area.clone() }
            }
            RosterCommand::CheckOut { agent } => {
                let Some(open) = self.state.rosters.checked_in.get(agent) else {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} is not checked in to any shift",
                        quote(agent.as_str())
                    )));
                };
                RosterEvent::ShiftCheckedOut {
                    agent: agent.clone(),
                    shift: open.shift.clone(),
                    area: open.area.clone(),
                    since: open.since,
                }
            }
            RosterCommand::SetCalendarLink { agent, secret_sha256 } => {
                self.rostered_person(agent, "agent_id")?;
                let is_sha256 = secret_sha256.len() == 64 && secret_sha256.bytes().all(|byte| byte.is_ascii_hexdigit());
                if !is_sha256 {
                    return Err(invalid("a calendar link is kept as the SHA-256 of its secret: 64 hex digits".to_string()));
                }
                RosterEvent::CalendarLinkSet { agent: agent.clone(), secret_sha256: secret_sha256.to_ascii_lowercase() }
            }
            RosterCommand::RevokeCalendarLink { agent } => {
                if !self.state.rosters.calendar_links.contains_key(agent) {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} has no calendar link to revoke",
                        quote(agent.as_str())
                    )));
                }
                RosterEvent::CalendarLinkRevoked { agent: agent.clone() }
            }
        };
        Ok(vec![EventKind::Rosters(event)])
    }

    fn shift(&self, shift: &ShiftId) -> Result<&ShiftSpec, Rejection> {
        self.state.rosters.shifts.get(shift).ok_or_else(|| {
            Rejection::NotFound(format!("shift {} does not exist; list the shifts of the area", quote(shift.as_str())))
        })
    }

    fn rostered_person(&self, agent: &AgentId, field: &'static str) -> Result<(), Rejection> {
        if self.state.agents.contains_key(agent) {
            return Ok(());
        }
        Err(Rejection::InvalidField {
            field,
            message: format!("agent {} is not on the roster; check the id", quote(agent.as_str())),
        })
    }

    fn decide_set_shifts(&self, shifts: &[ShiftSpec]) -> Result<RosterEvent, Rejection> {
        if shifts.is_empty() || shifts.len() > MAX_SHIFTS {
            return Err(invalid(format!("{} shifts; give 1 to {MAX_SHIFTS}", shifts.len())));
        }
        let mut seen = BTreeSet::new();
        let mut cleaned = Vec::with_capacity(shifts.len());
        for shift in shifts {
            check_id("shift id", shift.id.as_str()).map_err(invalid)?;
            if !seen.insert(&shift.id) {
                return Err(invalid(format!("shift {} is given twice; give each shift once", quote(shift.id.as_str()))));
            }
            if !self.state.areas.contains(&shift.area) {
                return Err(invalid(format!(
                    "shift {}: area {} is not on the map; list areas to find its id",
                    shift.id,
                    quote(shift.area.as_str())
                )));
            }
            check_text("the duty", &shift.duty, true)?;
            if shift.days.is_empty() {
                return Err(invalid(format!("shift {}: name the days it runs on (1 Monday to 7 Sunday)", shift.id)));
            }
            for day in &shift.days {
                check_week_time(&format!("shift {}", shift.id), *day, shift.start_minute)?;
            }
            if shift.length_minutes == 0 || shift.length_minutes > MINUTES_PER_DAY {
                return Err(invalid(format!(
                    "shift {}: a length of {} minutes; give 1 to {MINUTES_PER_DAY} (24 hours)",
                    shift.id, shift.length_minutes
                )));
            }
            if shift.people.len() > MAX_SHIFT_PEOPLE {
                return Err(invalid(format!("shift {}: at most {MAX_SHIFT_PEOPLE} people", shift.id)));
            }
            let mut days = shift.days.clone();
            days.sort_unstable();
            days.dedup();
            let mut people: Vec<AgentId> = Vec::with_capacity(shift.people.len());
            for person in &shift.people {
                self.rostered_person(person, "people")?;
                if !self.state.rosters.available_for(person, shift) {
                    return Err(Rejection::FailedPrecondition(format!(
                        "agent {} is not available for shift {} by their declared availability; change one of them",
                        quote(person.as_str()),
                        shift.id
                    )));
                }
                if !people.contains(person) {
                    people.push(person.clone());
                }
            }
            cleaned.push(ShiftSpec { days, people, duty: shift.duty.trim().to_string(), ..shift.clone() });
        }
        Ok(RosterEvent::ShiftsSet { shifts: cleaned })
    }

    fn decide_swap_request(
        &self,
        shift: &ShiftId,
        day: i64,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
    ) -> Result<RosterEvent, Rejection> {
        let spec = self.shift(shift)?;
        self.rostered_person(from, "from_agent_id")?;
        self.rostered_person(to, "to_agent_id")?;
        if from == to {
            return Err(invalid("a swap needs two different people".to_string()));
        }
        if !spec.runs_on(day) {
            return Err(invalid(format!("shift {shift} does not run on that day; pick a day it runs on")));
        }
        let (_, end) = spec.bounds(day, self.roster_utc_offset());
        if end <= now {
            return Err(Rejection::FailedPrecondition(format!("that occurrence of shift {shift} is over")));
        }
        let scheduled = self.state.rosters.scheduled(spec, day);
        if !scheduled.contains(from) {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {} does not work that occurrence of shift {shift}",
                quote(from.as_str())
            )));
        }
        if scheduled.contains(to) {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {} works that occurrence of shift {shift} already",
                quote(to.as_str())
            )));
        }
        if !self.state.rosters.available_for(to, spec) {
            return Err(Rejection::FailedPrecondition(format!(
                "agent {} is not available for shift {shift} by their declared availability",
                quote(to.as_str())
            )));
        }
        let pending =
            self.state.rosters.swaps.values().any(|swap| {
                swap.status == SwapStatus::Requested && &swap.shift == shift && swap.day == day && &swap.from == from
            });
        if pending {
            return Err(Rejection::AlreadyExists(format!(
                "agent {} has a swap of that occurrence waiting already; decide it first",
                quote(from.as_str())
            )));
        }
        Ok(RosterEvent::SwapRequested {
            swap: SwapId::new(format!("swap-{:06}", self.state.rosters.swaps_made + 1)),
            shift: shift.clone(),
            day,
            from: from.clone(),
            to: to.clone(),
        })
    }

    pub(super) fn apply_rosters(&mut self, event: &RosterEvent, at: Millis, actor: &str) {
        self.state.rosters.apply(event, at, actor);
    }

    /// The person whose calendar link has the secret of SHA-256 (hex) `secret_sha256`.
    pub fn calendar_link_owner(&self, secret_sha256: &str) -> Option<&AgentId> {
        self.state.rosters.calendar_links.iter().find(|(_, kept)| kept.as_str() == secret_sha256).map(|(agent, _)| agent)
    }

    /// Who is on duty now in each area with a roster, by area.
    pub fn on_duty_by_area(&self, now: Millis) -> BTreeMap<AreaId, Vec<Occurrence>> {
        let mut by_area: BTreeMap<AreaId, Vec<Occurrence>> = BTreeMap::new();
        for occurrence in self.on_duty(None, now) {
            by_area.entry(occurrence.area.clone()).or_default().push(occurrence);
        }
        by_area
    }
}

fn check_week_time(what: &str, day: u8, start_minute: u32) -> Result<(), Rejection> {
    if !(1..=7).contains(&day) {
        return Err(invalid(format!("{what}: day {day} is not a weekday; use 1 (Monday) to 7 (Sunday)")));
    }
    if start_minute >= MINUTES_PER_DAY {
        return Err(invalid(format!(
            "{what}: start minute {start_minute} is past the day's end; use 0 to {} (minutes after midnight)",
            MINUTES_PER_DAY - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
