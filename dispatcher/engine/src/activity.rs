//! Who served: per-person and per-area activity (网格员考核) for a period and
//! an area, computed from the journal's events alone.
//!
//! [`ActivityFold`] takes the events one at a time, in journal order, from
//! the first event kept: it needs what came before the period (an offer sent
//! before it and answered in it, an assignment or a duty shift running into
//! it, the map), but it keeps only what is still open (offers not yet
//! answered, assignments not yet ended, incidents not yet ended), never the
//! events themselves, so a journal of millions of events is read in pages
//! and forgotten. The dispatcher (`CommandService.ActivityReport`,
//! `FieldService.MyActivity`), the drill report and the tests share it.
//!
//! # What is counted
//! Everything is counted at the time it happened, in `[from, to)`:
//! - an offer is received when sent, accepted/declined/timed out when
//!   answered (the time to accept runs from when it was sent, also before
//!   the period); a decline is counted under its reason.
//! - the time to arrive runs from acceptance to arrival.
//! - hours on assignments run from acceptance to completion (or the
//!   incident's end), hours on duty while the person's status is not off
//!   duty; both are cut to the period (and to `now` for a period not over).
//! - hours on shift run from a check-in to a duty roster's shift to the
//!   check-out (cut the same way); a shift counts as worked when checked
//!   out of in the period. They count where the shift's area is in the area.
//! - field reports count when made, their triage (accepted, merged,
//!   rejected) when it happened in the period.
//! - a call-up counts for each person called when issued; a check-in when
//!   made, its speed from the call-up's issue; a miss when the deadline
//!   passed without one.
//! - per grid and community: incidents reported (or field reports accepted
//!   for dispatch) in the period, and how many were staffed within the
//!   target (`staffed_within_s`, from the report or the acceptance to the
//!   `incident_staffed` event; the fold reads on past `to` by the target for
//!   those, see [`ActivityFold::wants`]); grid staffing alerts raised in the
//!   period, the time grids spent below their minimum within the period,
//!   and the longest alert raised in it.
//!
//! # The area
//! An area includes its sub-areas. Offers, assignments, arrivals and field
//! reports are in it when their incident lies in it; call-ups when issued
//! for it or an area inside it; hours on duty when the person's home area
//! is in it; staffing alerts when their grid is. Without an area, all count.
//!
//! Medians are nearest-rank (of an even count, the lower middle value), as
//! in the drill report.

use std::collections::{BTreeMap, HashMap};

use crate::areas::{AreaLevel, Placement};
use crate::event::{Event, EventKind};
use crate::ids::{AgentId, AreaId, CallupId, IncidentId, Millis, OfferId};
use crate::roster::AgentStatus;

/// The target for "staffed in time" when the caller gives none: the drill
/// report's default (`[report] staffed_in_time_s`). The policy file has no
/// such target: the ladder's timeouts say how long to wait, not what counts
/// as good service.
pub const DEFAULT_STAFFED_WITHIN_S: u64 = 600;

/// What to count: a period `[from, to)`, an area (with its sub-areas) or
/// everywhere, and the staffing target.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityQuery {
    pub from: Millis,
    pub to: Millis,
    pub area: Option<AreaId>,
    pub staffed_within_s: u64,
}

/// One person's figures for the period.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonActivity {
    pub agent: AgentId,
    pub name: String,
    pub home_area: Option<AreaId>,
    pub offers: u32,
    pub accepted: u32,
    pub declined: u32,
    pub timed_out: u32,
    /// Withdrawn before an answer (filled, the incident ended, the person
    /// went off duty or lost their session).
    pub withdrawn: u32,
    /// Declines by the reason given ("" when none was given).
    pub declined_by_reason: BTreeMap<String, u32>,
    /// Seconds from each offer to its acceptance.
    pub accept_times_s: Vec<f64>,
    /// Seconds from each acceptance to the arrival.
    pub arrive_times_s: Vec<f64>,
    pub on_assignment_ms: i64,
    pub on_duty_ms: i64,
    /// Checked in to duty roster shifts (see `crate::rosters`).
    pub on_shift_ms: i64,
    /// Shifts checked out of in the period.
    pub shifts_worked: u32,
    pub reports: u32,
    pub reports_accepted: u32,
    pub reports_merged: u32,
    pub reports_rejected: u32,
    pub callups: u32,
    pub checked_in: u32,
    pub missed_callups: u32,
    /// Seconds from each call-up to the person's check-in.
    pub check_in_times_s: Vec<f64>,
}

impl PersonActivity {
    pub fn new(agent: AgentId) -> PersonActivity {
        PersonActivity {
            agent,
            name: String::new(),
            home_area: None,
            offers: 0,
            accepted: 0,
            declined: 0,
            timed_out: 0,
            withdrawn: 0,
            declined_by_reason: BTreeMap::new(),
            accept_times_s: Vec::new(),
            arrive_times_s: Vec::new(),
            on_assignment_ms: 0,
            on_duty_ms: 0,
            on_shift_ms: 0,
            shifts_worked: 0,
            reports: 0,
            reports_accepted: 0,
            reports_merged: 0,
            reports_rejected: 0,
            callups: 0,
            checked_in: 0,
            missed_callups: 0,
            check_in_times_s: Vec::new(),
        }
    }

    pub fn median_accept_s(&self) -> Option<f64> {
        median(&self.accept_times_s)
    }
    pub fn median_arrive_s(&self) -> Option<f64> {
        median(&self.arrive_times_s)
    }
    pub fn median_check_in_s(&self) -> Option<f64> {
        median(&self.check_in_times_s)
    }
    pub fn on_assignment_hours(&self) -> f64 {
        self.on_assignment_ms as f64 / 3_600_000.0
    }
    pub fn on_duty_hours(&self) -> f64 {
        self.on_duty_ms as f64 / 3_600_000.0
    }
    pub fn on_shift_hours(&self) -> f64 {
        self.on_shift_ms as f64 / 3_600_000.0
    }
}

/// One grid's or community's figures for the period.
#[derive(Clone, Debug, PartialEq)]
pub struct AreaActivity {
    pub area: AreaId,
    pub name: String,
    pub level: AreaLevel,
    pub incidents: u32,
    pub staffed_in_time: u32,
    pub staffing_alerts: u32,
    /// Time grids spent below their minimum within the period (a
    /// community: its grids' added up).
    pub low_ms: i64,
    /// The longest alert raised in the period, to its end or to the end
    /// of what was read.
    pub longest_alert_ms: i64,
}

impl AreaActivity {
    /// The share of incidents staffed within the target, `None` without incidents.
    pub fn staffed_share(&self) -> Option<f64> {
        (self.incidents > 0).then(|| f64::from(self.staffed_in_time) / f64::from(self.incidents))
    }
}

/// The report: people by id, then communities and grids by id.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityReport {
    pub query: ActivityQuery,
    pub people: Vec<PersonActivity>,
    pub areas: Vec<AreaActivity>,
    /// Events folded.
    pub events_read: u64,
}

/// The nearest-rank median: of an even count, the lower middle value.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[(sorted.len() - 1) / 2])
}

/// What is remembered of an area: its level, parent and name.
struct KnownArea {
    level: AreaLevel,
    parent: Option<AreaId>,
    name: String,
}

/// An incident not yet ended: where it is and, while it counts for the
/// staffing share, when its dispatch started.
struct OpenIncident {
    placement: Placement,
    in_scope: bool,
    dispatch_started: Option<Millis>,
    /// People whose assignment to it has not ended.
    serving: Vec<AgentId>,
}

struct OpenOffer {
    sent_at: Millis,
}

struct KnownPerson {
    name: String,
    home_area: Option<AreaId>,
    on_duty_since: Option<Millis>,
}

struct OpenCallup {
    issued_at: Millis,
    in_scope: bool,
}

/// The streaming fold; see the module's doc.
pub struct ActivityFold {
    query: ActivityQuery,
    scope_level: Option<AreaLevel>,
    areas: HashMap<AreaId, KnownArea>,
    people: HashMap<AgentId, KnownPerson>,
    incidents: HashMap<IncidentId, OpenIncident>,
    offers: HashMap<OfferId, OpenOffer>,
    /// Assignments not yet ended: when each was accepted.
    assignments: HashMap<(IncidentId, AgentId), Millis>,
    callups: HashMap<CallupId, OpenCallup>,
    /// Who made each field report still waiting for triage.
    reporters: HashMap<IncidentId, AgentId>,
    /// Grids below their minimum now, since when.
    low_grids: HashMap<AreaId, (Millis, bool)>,
    /// People checked in to a roster shift: since when, and its area.
    on_shift: HashMap<AgentId, (Millis, AreaId)>,
    rows: BTreeMap<AgentId, PersonActivity>,
    area_rows: BTreeMap<(AreaLevel, AreaId), AreaActivity>,
    last_at: Millis,
    events_read: u64,
}

impl ActivityFold {
    pub fn new(query: ActivityQuery) -> ActivityFold {
        ActivityFold {
            query,
            scope_level: None,
            areas: HashMap::new(),
            people: HashMap::new(),
            incidents: HashMap::new(),
            offers: HashMap::new(),
            assignments: HashMap::new(),
            callups: HashMap::new(),
            reporters: HashMap::new(),
            low_grids: HashMap::new(),
            on_shift: HashMap::new(),
            rows: BTreeMap::new(),
            area_rows: BTreeMap::new(),
            last_at: Millis(i64::MIN),
            events_read: 0,
        }
    }

    /// Whether events at `at` can still change the report: the period, and
    /// after it the staffing target's time for incidents reported near its
    /// end. A caller reading in journal order stops at the first `false`.
    pub fn wants(&self, at: Millis) -> bool {
        at < self.query.to.plus_seconds(self.query.staffed_within_s)
    }

    fn in_period(&self, at: Millis) -> bool {
        at >= self.query.from && at < self.query.to
    }

    /// Is `area` the query's area or inside it?
    fn area_in_scope(&self, area: Option<&AreaId>) -> bool {
        let Some(scope) = &self.query.area else {
            return true;
        };
        let mut current = area.cloned();
        // Six levels at most; the bound also stops a cycle in a bad map.
        for _ in 0..AreaLevel::ALL.len() {
            let Some(id) = current else {
                return false;
            };
            if &id == scope {
                return true;
            }
            current = self.areas.get(&id).and_then(|known| known.parent.clone());
        }
        false
    }

    fn placement_in_scope(&self, placement: &Placement) -> bool {
        match &self.query.area {
            None => true,
            Some(scope) => placement.areas().any(|(_, id)| id == scope),
        }
    }

    fn row(&mut self, agent: &AgentId) -> &mut PersonActivity {
        // Looked up before inserting: most events are about someone seen
        // already, and the id is cloned only for a new row.
        if !self.rows.contains_key(agent) {
            self.rows.insert(agent.clone(), PersonActivity::new(agent.clone()));
        }
        self.rows.get_mut(agent).expect("the row was inserted above")
    }

    fn area_row(&mut self, level: AreaLevel, area: &AreaId) -> &mut AreaActivity {
        let areas = &self.areas;
        self.area_rows.entry((level, area.clone())).or_insert_with(|| AreaActivity {
            area: area.clone(),
            name: areas.get(area).map(|known| known.name.clone()).unwrap_or_default(),
            level,
            incidents: 0,
            staffed_in_time: 0,
            staffing_alerts: 0,
            low_ms: 0,
            longest_alert_ms: 0,
        })
    }

    /// The part of `[start, end)` inside the period, in ms.
    fn overlap_ms(&self, start: Millis, end: Millis) -> i64 {
        let start = start.0.max(self.query.from.0);
        let end = end.0.min(self.query.to.0);
        (end - start).max(0)
    }

    /// The community and grid rows an incident placed at `placement` counts in.
    fn rows_of(&self, placement: &Placement) -> Vec<(AreaLevel, AreaId)> {
        let deepest_asked = self.scope_level.map_or(0, AreaLevel::depth);
        [AreaLevel::Community, AreaLevel::Grid]
            .into_iter()
            .filter(|level| level.depth() >= deepest_asked)
            .filter_map(|level| placement.at(level).map(|id| (level, id.clone())))
            .collect()
    }

    /// The grid and its community (if known and inside the area asked).
    fn rows_of_grid(&self, grid: &AreaId) -> Vec<(AreaLevel, AreaId)> {
        let mut rows = vec![(AreaLevel::Grid, grid.clone())];
        let community = self.areas.get(grid).and_then(|known| known.parent.clone());
        if let Some(community) = community
            && self.areas.get(&community).is_some_and(|known| known.level == AreaLevel::Community)
            && self.area_in_scope(Some(&community))
        {
            rows.push((AreaLevel::Community, community));
        }
        rows
    }

    fn end_duty(&mut self, agent: &AgentId, at: Millis) {
        let Some(since) = self.people.get_mut(agent).and_then(|person| person.on_duty_since.take()) else {
            return;
        };
        let in_scope = self.area_in_scope(self.people.get(agent).and_then(|person| person.home_area.as_ref()));
        let duty = self.overlap_ms(since, at);
        if in_scope && duty > 0 {
            self.row(agent).on_duty_ms += duty;
        }
    }

    fn end_assignment(&mut self, incident: &IncidentId, agent: &AgentId, at: Millis) {
        let Some(since) = self.assignments.remove(&(incident.clone(), agent.clone())) else {
            return;
        };
        let in_scope = self.incidents.get(incident).is_some_and(|open| open.in_scope);
        let served = self.overlap_ms(since, at);
        if in_scope && served > 0 {
            self.row(agent).on_assignment_ms += served;
        }
    }

    fn start_dispatch(&mut self, incident: &IncidentId, at: Millis) {
        if !self.in_period(at) {
            return;
        }
        let Some(open) = self.incidents.get_mut(incident) else {
            return;
        };
        if !open.in_scope {
            return;
        }
        open.dispatch_started = Some(at);
        let placement = open.placement.clone();
        for (level, area) in self.rows_of(&placement) {
            self.area_row(level, &area).incidents += 1;
        }
    }

    fn incident_in_scope(&self, incident: &IncidentId) -> bool {
        self.incidents.get(incident).is_some_and(|open| open.in_scope)
    }

    /// Takes in the next event, in journal order.
    pub fn fold(&mut self, event: &Event) {
        self.events_read += 1;
        let at = event.at;
        self.last_at = self.last_at.max(at);
        // Past the period only staffing still counts (see `wants`).
        if at >= self.query.to {
            if let EventKind::IncidentStaffed { incident } = &event.kind {
                self.staffed(incident, at);
            }
            return;
        }
        let in_period = self.in_period(at);
        match &event.kind {
            EventKind::AreasImported { import } => {
                for spec in &import.areas {
                    self.areas.insert(
                        spec.id.clone(),
                        KnownArea { level: spec.level, parent: spec.parent.clone(), name: spec.name.clone() },
                    );
                }
                if let Some(scope) = &self.query.area {
                    self.scope_level = self.areas.get(scope).map(|known| known.level);
                }
            }
            EventKind::AgentsUpserted { agents } => {
                for profile in agents {
                    match self.people.get_mut(&profile.id) {
                        Some(person) => {
                            person.name = profile.name.clone();
                            person.home_area = profile.home_area.clone();
                        }
                        None => {
                            let on_duty_since = profile.on_duty.then_some(at);
                            self.people.insert(
                                profile.id.clone(),
                                KnownPerson { name: profile.name.clone(), home_area: profile.home_area.clone(), on_duty_since },
                            );
                        }
                    }
                }
            }
            EventKind::AgentStatusChanged { agent, status } => {
                if *status == AgentStatus::OffDuty {
                    self.end_duty(agent, at);
                } else if let Some(person) = self.people.get_mut(agent)
                    && person.on_duty_since.is_none()
                {
                    person.on_duty_since = Some(at);
                }
            }
            EventKind::IncidentReported { incident, placement, .. } => {
                let in_scope = self.placement_in_scope(placement);
                self.incidents.insert(
                    incident.clone(),
                    OpenIncident { placement: placement.clone(), in_scope, dispatch_started: None, serving: Vec::new() },
                );
                self.start_dispatch(incident, at);
            }
            EventKind::FieldReported { incident, agent, placement, .. } => {
                let in_scope = self.placement_in_scope(placement);
                self.incidents.insert(
                    incident.clone(),
                    OpenIncident { placement: placement.clone(), in_scope, dispatch_started: None, serving: Vec::new() },
                );
                if in_scope && in_period {
                    self.row(agent).reports += 1;
                }
                // Who made it, for its triage.
                self.reporters.insert(incident.clone(), agent.clone());
            }
            EventKind::ReportAccepted { incident, .. } => {
                self.triaged(incident, in_period, |row| row.reports_accepted += 1);
                self.reporters.remove(incident);
                self.start_dispatch(incident, at);
            }
            EventKind::ReportMerged { incident, .. } => {
                self.triaged(incident, in_period, |row| row.reports_merged += 1);
                self.reporters.remove(incident);
                self.incidents.remove(incident);
            }
            EventKind::ReportRejected { incident, .. } => {
                self.triaged(incident, in_period, |row| row.reports_rejected += 1);
                self.reporters.remove(incident);
                self.incidents.remove(incident);
            }
            EventKind::OfferSent { offer } => {
                self.offers.insert(offer.id.clone(), OpenOffer { sent_at: offer.sent_at });
                if in_period && self.incident_in_scope(&offer.incident) {
                    self.row(&offer.agent).offers += 1;
                }
            }
            EventKind::Assigned { offer, incident, agent } => {
                let sent_at = self.offers.remove(offer).map(|open| open.sent_at);
                self.assignments.insert((incident.clone(), agent.clone()), at);
                if let Some(open) = self.incidents.get_mut(incident) {
                    open.serving.push(agent.clone());
                }
                // Accepting puts a person on duty (busy) if they were not.
                if let Some(person) = self.people.get_mut(agent)
                    && person.on_duty_since.is_none()
                {
                    person.on_duty_since = Some(at);
                }
                if in_period && self.incident_in_scope(incident) {
                    let row = self.row(agent);
                    row.accepted += 1;
                    if let Some(sent_at) = sent_at {
                        row.accept_times_s.push(at.seconds_since(sent_at));
                    }
                }
            }
            EventKind::OfferDeclined { offer, incident, agent, reason } => {
                self.offers.remove(offer);
                if in_period && self.incident_in_scope(incident) {
                    let row = self.row(agent);
                    row.declined += 1;
                    *row.declined_by_reason.entry(reason.trim().to_string()).or_default() += 1;
                }
            }
            EventKind::OfferTimedOut { offer, incident, agent } => {
                self.offers.remove(offer);
                if in_period && self.incident_in_scope(incident) {
                    self.row(agent).timed_out += 1;
                }
            }
            EventKind::OfferWithdrawn { offer, incident, agent, .. } => {
                self.offers.remove(offer);
                if in_period && self.incident_in_scope(incident) {
                    self.row(agent).withdrawn += 1;
                }
            }
            EventKind::IncidentStaffed { incident } => self.staffed(incident, at),
            EventKind::AgentArrived { incident, agent } => {
                let assigned_at = self.assignments.get(&(incident.clone(), agent.clone())).copied();
                if in_period
                    && self.incident_in_scope(incident)
                    && let Some(assigned_at) = assigned_at
                {
                    self.row(agent).arrive_times_s.push(at.seconds_since(assigned_at));
                }
            }
            EventKind::AssignmentCompleted { incident, agent, .. } => self.end_assignment(incident, agent, at),
            EventKind::IncidentCancelled { incident, released, .. } | EventKind::IncidentClosed { incident, released, .. } => {
                for agent in released {
                    self.end_assignment(incident, agent, at);
                }
                // Anyone still holding it (none should) stops serving it too.
                let holding = self.incidents.get_mut(incident).map(|open| std::mem::take(&mut open.serving)).unwrap_or_default();
                for agent in holding {
                    self.end_assignment(incident, &agent, at);
                }
                self.incidents.remove(incident);
                self.reporters.remove(incident);
            }
            EventKind::CallupIssued { callup, area, people, .. } => {
                let in_scope = self.area_in_scope(Some(area));
                self.callups.insert(callup.clone(), OpenCallup { issued_at: at, in_scope });
                if in_scope && in_period {
                    for agent in people {
                        self.row(agent).callups += 1;
                    }
                }
            }
            EventKind::CheckedIn { callup, agent } => {
                if let Some(open) = self.callups.get(callup)
                    && open.in_scope
                    && in_period
                {
                    let took = at.seconds_since(open.issued_at);
                    let row = self.row(agent);
                    row.checked_in += 1;
                    row.check_in_times_s.push(took);
                }
            }
            EventKind::CallupDeadlinePassed { callup, missing } => {
                if self.callups.get(callup).is_some_and(|open| open.in_scope) && in_period {
                    for agent in missing {
                        self.row(agent).missed_callups += 1;
                    }
                }
            }
            EventKind::CallupStoodDown { callup, .. } => {
                self.callups.remove(callup);
            }
            EventKind::GridStaffingLow { grid, .. } => {
                if self.low_grids.contains_key(grid) || !self.area_in_scope(Some(grid)) {
                    return;
                }
                self.low_grids.insert(grid.clone(), (at, in_period));
                if in_period {
                    for (level, area) in self.rows_of_grid(grid) {
                        self.area_row(level, &area).staffing_alerts += 1;
                    }
                }
            }
            EventKind::GridStaffingRestored { grid, .. } => {
                if let Some((since, raised_in_period)) = self.low_grids.remove(grid) {
                    self.end_alert(grid, since, at, raised_in_period);
                }
            }
            EventKind::Rosters(crate::rosters::RosterEvent::ShiftCheckedIn { agent, area, .. }) => {
                self.on_shift.insert(agent.clone(), (at, area.clone()));
            }
            EventKind::Rosters(crate::rosters::RosterEvent::ShiftCheckedOut { agent, .. }) => {
                let in_period = self.in_period(at);
                self.end_shift(agent, at, in_period);
            }
            _ => {}
        }
    }

    /// Counts a shift checked in to until `at` (`worked`: checked out in the period).
    fn end_shift(&mut self, agent: &AgentId, at: Millis, worked: bool) {
        let Some((since, area)) = self.on_shift.remove(agent) else {
            return;
        };
        if !self.area_in_scope(Some(&area)) {
            return;
        }
        let on_shift = self.overlap_ms(since, at);
        if on_shift > 0 || worked {
            let row = self.row(agent);
            row.on_shift_ms += on_shift;
            row.shifts_worked += u32::from(worked);
        }
    }

    fn end_alert(&mut self, grid: &AreaId, since: Millis, until: Millis, raised_in_period: bool) {
        let low = self.overlap_ms(since, until);
        let whole = until.0 - since.0;
        for (level, area) in self.rows_of_grid(grid) {
            let row = self.area_row(level, &area);
            row.low_ms += low;
            if raised_in_period {
                row.longest_alert_ms = row.longest_alert_ms.max(whole);
            }
        }
    }

    fn staffed(&mut self, incident: &IncidentId, at: Millis) {
        let Some(open) = self.incidents.get_mut(incident) else {
            return;
        };
        // Counted once: a later staffing (after someone dropped out) does not count again.
        let Some(started) = open.dispatch_started.take() else {
            return;
        };
        if at.0 - started.0 > (self.query.staffed_within_s as i64).saturating_mul(1000) {
            return;
        }
        let placement = open.placement.clone();
        for (level, area) in self.rows_of(&placement) {
            self.area_row(level, &area).staffed_in_time += 1;
        }
    }

    fn triaged(&mut self, incident: &IncidentId, in_period: bool, count: impl FnOnce(&mut PersonActivity)) {
        if !in_period || !self.incident_in_scope(incident) {
            return;
        }
        if let Some(agent) = self.reporters.get(incident).cloned() {
            count(self.row(&agent));
        }
    }

    /// The report, with what is still running (duty, assignments, alerts)
    /// counted to `now` or the period's end, whichever comes first.
    pub fn finish(mut self, now: Millis) -> ActivityReport {
        let end = Millis(now.0.min(self.query.to.0));
        let on_duty: Vec<AgentId> =
            self.people.iter().filter(|(_, person)| person.on_duty_since.is_some()).map(|(id, _)| id.clone()).collect();
        for agent in on_duty {
            self.end_duty(&agent, end);
        }
        let checked_in: Vec<AgentId> = self.on_shift.keys().cloned().collect();
        for agent in checked_in {
            self.end_shift(&agent, end, false);
        }
        let serving: Vec<(IncidentId, AgentId)> = self.assignments.keys().cloned().collect();
        for (incident, agent) in serving {
            self.end_assignment(&incident, &agent, end);
        }
        let low: Vec<(AreaId, (Millis, bool))> = self.low_grids.drain().collect();
        for (grid, (since, raised_in_period)) in low {
            self.end_alert(&grid, since, end.max(since), raised_in_period);
        }
        let people = std::mem::take(&mut self.rows)
            .into_values()
            .map(|mut row| {
                if let Some(person) = self.people.get(&row.agent) {
                    row.name = person.name.clone();
                    row.home_area = person.home_area.clone();
                }
                row
            })
            .collect();
        ActivityReport { query: self.query, people, areas: self.area_rows.into_values().collect(), events_read: self.events_read }
    }
}

/// The report of `events` (all of them, in journal order) at `now`.
pub fn activity<'a>(query: ActivityQuery, events: impl IntoIterator<Item = &'a Event>, now: Millis) -> ActivityReport {
    let mut fold = ActivityFold::new(query);
    for event in events {
        if !fold.wants(event.at) {
            break;
        }
        fold.fold(event);
    }
    fold.finish(now)
}

#[cfg(test)]
mod tests;
