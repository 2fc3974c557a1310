//! The after-action report: every figure computed from the event log (the
//! same record the dispatcher keeps), written as `report.json`, `report.md`
//! and SVG pictures.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use pingji_engine::areas::{AreaImport, AreaLevel};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, IncidentId, Millis};
use pingji_engine::spatial::Position;
use serde::Serialize;

use crate::drill::Expectation;

/// Seconds-based summary of a set of durations.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub max_s: Option<f64>,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            // Nearest rank: the smallest value with at least p of the values at or below it.
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            Some(round1(sorted[index]))
        };
        Stats { count: sorted.len(), p50_s: rank(0.5), p90_s: rank(0.9), max_s: sorted.last().copied().map(round1) }
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillSummary {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub duration_s: u64,
    pub started_at_ms: i64,
    pub people: usize,
    pub events: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExpectationResult {
    pub expectation: String,
    pub passed: bool,
    pub actual: String,
}

/// The drill's figures. `closed`, `cancelled`, `staffed_at_end` and
/// `unstaffed_at_end` say where each incident stood when the drill ended:
/// one place each, so they add up to `incidents` ([`Totals::where_they_stood`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub incidents: usize,
    /// Ended with feedback.
    pub closed: usize,
    pub cancelled: usize,
    /// Still open at the end, with every person it needs.
    pub staffed_at_end: usize,
    /// Still open at the end, short of people (waiting or on offer).
    pub unstaffed_at_end: usize,
    /// Incidents that had every person they needed at some time, whatever
    /// became of them (closed ones mostly were): not one of the four above.
    pub staffed_at_some_point: usize,
    pub offers: usize,
    pub accepted: usize,
    pub declined: usize,
    pub timed_out: usize,
    pub withdrawn: usize,
    pub no_candidates: usize,
    pub mode_switches: usize,
    /// Widenings by the level widened to.
    pub widenings: BTreeMap<String, usize>,
}

impl Totals {
    /// Where the incidents stood at the end, each counted once: closed,
    /// cancelled, staffed, unstaffed. Their sum is `incidents`.
    pub fn where_they_stood(&self) -> [(&'static str, usize); 4] {
        [
            ("closed with feedback", self.closed),
            ("cancelled", self.cancelled),
            ("staffed", self.staffed_at_end),
            ("unstaffed", self.unstaffed_at_end),
        ]
    }

    /// The headline: "15 incidents at the end: 3 closed with feedback, 0
    /// cancelled, 6 staffed, 6 unstaffed", the same words in the report and
    /// on the terminal.
    pub fn headline(&self) -> String {
        let parts: Vec<String> =
            self.where_they_stood().iter().map(|(what, count)| format!("{} {what}", thousands(*count))).collect();
        format!("{} at the end: {}", plural(self.incidents, "incident", "incidents"), parts.join(", "))
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PriorityFigures {
    pub incidents: usize,
    pub time_to_first_offer: Stats,
    pub time_to_accept: Stats,
    pub time_to_staffed: Stats,
    pub time_to_arrive: Stats,
}

#[derive(Clone, Debug, Serialize)]
pub struct CommunityRow {
    pub id: String,
    pub name: String,
    pub incidents: usize,
    pub staffed_in_time: usize,
    pub widenings: usize,
    pub people_used: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyEvent {
    pub at_s: f64,
    /// `at_s` on the drill clock, as the report shows it: "08:05:00".
    pub clock: String,
    pub kind: String,
    pub text: String,
}

/// One area switched between normal and an emergency grade.
#[derive(Clone, Debug, Serialize)]
pub struct ModeSwitchFigures {
    pub at_s: f64,
    pub clock: String,
    pub area: String,
    pub name: String,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StaffingSample {
    pub at_s: f64,
    pub waiting: usize,
    pub offered: usize,
    pub staffed: usize,
    pub ended: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Responder {
    pub agent: String,
    /// About where the person was when offered (100 m), when known.
    pub from: Option<[f64; 2]>,
}

/// One incident's figures, seconds from its report.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentFigures {
    pub id: String,
    pub category: String,
    pub priority: u8,
    pub headcount: u32,
    pub at: [f64; 2],
    pub community: Option<String>,
    pub reported_at_s: f64,
    pub first_offer_s: Option<f64>,
    pub accepted_s: Option<f64>,
    pub staffed_s: Option<f64>,
    pub arrived_s: Option<f64>,
    pub ended: Option<String>,
    pub widenings: usize,
    pub responders: Vec<Responder>,
    /// Why nobody fitted, the last time the dispatcher said so: who it
    /// could reach and what ruled them out ("within 500 m: 3 people; 2
    /// lack first_aid, 1 busy").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_short: Option<String>,
}

/// One call-up while the events are read: issued at, deadline, and each
/// person's check-in time.
type RollCall = (Millis, Millis, BTreeMap<String, Option<Millis>>);

/// Call-ups and their roll-call.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CallupFigures {
    pub callups: usize,
    pub called: usize,
    /// Checked in before their call-up's deadline.
    pub checked_in_in_time: usize,
    pub checked_in_late: usize,
    pub missing_at_deadline: usize,
    pub time_to_check_in: Stats,
    /// People who checked in, by how they were reached: the app session
    /// (no notice), push, SMS or a voice call (the last rung sent before
    /// they checked in).
    pub reached_by: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub drill: DrillSummary,
    pub passed: bool,
    pub expectations: Vec<ExpectationResult>,
    pub totals: Totals,
    pub by_priority: BTreeMap<String, PriorityFigures>,
    pub communities: Vec<CommunityRow>,
    pub staffed_in_time_s: u64,
    pub timeline: Vec<KeyEvent>,
    pub mode_switches: Vec<ModeSwitchFigures>,
    pub staffing: Vec<StaffingSample>,
    /// Areas switched to emergency during the drill, with the strictest grade.
    pub emergency_areas: BTreeMap<String, String>,
    pub callups: CallupFigures,
    pub plan_activations: usize,
    /// Grids that fell below their minimum of available people (events).
    pub grid_staffing_low: usize,
    pub incidents: Vec<IncidentFigures>,
    /// Who served (网格员考核), from the same fold as the dispatcher's
    /// `ActivityReport` (`pingji_engine::activity`).
    pub who_served: WhoServed,
    /// Safety check-ins on scene and help calls (absent when none happened).
    #[serde(skip_serializing_if = "crate::safety::SafetyFigures::is_empty")]
    pub safety: crate::safety::SafetyFigures,
    /// Supplies asked for, delivered and short, per item (none without depots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplies: Vec<crate::supplies::SupplyFigures>,
    /// Offers to people on shift (none without a duty roster); set by the
    /// caller, who knows the policy's local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shifts: Option<crate::shifts::ShiftFigures>,
    /// Shelters: groups sent, arrived, overflow and occupancy over time (none without shelters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shelters: Vec<crate::shelters::ShelterFigures>,
    /// A drill run live: the dispatcher as found and as left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveRun>,
}

/// What a live drill found on the dispatcher, and how it left it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LiveRun {
    /// What the drill found at the start, one line each.
    pub found: Vec<String>,
    /// What it found that would have stopped it, had it not been told to go
    /// ahead (`--go-ahead`); empty when nothing else was using the dispatcher.
    pub went_ahead_despite: Vec<String>,
    /// What it did at the end to leave the dispatcher as found; the last
    /// line says whether it is.
    pub left: Vec<String>,
    /// Stopped (Ctrl-C) this many drill seconds in.
    pub interrupted_at_s: Option<f64>,
}

/// One community's activity over the drill.
#[derive(Clone, Debug, Serialize)]
pub struct ServedArea {
    pub id: String,
    pub name: String,
    pub incidents: u32,
    pub staffed_in_time: u32,
    pub staffing_alerts: u32,
    /// Seconds its grids spent below their minimum of available people.
    pub low_s: f64,
}

/// One person's activity over the drill.
#[derive(Clone, Debug, Serialize)]
pub struct ServedPerson {
    pub agent: String,
    pub offers: u32,
    pub accepted: u32,
    pub declined: u32,
    pub timed_out: u32,
    pub median_accept_s: Option<f64>,
    pub on_assignment_s: f64,
}

/// Who served: per community, and the people who accepted most.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WhoServed {
    pub people_offered: usize,
    pub people_accepted: usize,
    pub communities: Vec<ServedArea>,
    /// The ten who accepted most (then by offers, then id).
    pub most_accepted: Vec<ServedPerson>,
}

/// The activity fold over the whole drill.
fn who_served(input: &ReportInput<'_>, names: &BTreeMap<String, String>) -> WhoServed {
    use pingji_engine::activity::{ActivityQuery, activity};
    let query = ActivityQuery {
        from: input.started_at,
        to: Millis(input.ended_at.0 + 1),
        area: None,
        staffed_within_s: input.staffed_in_time_s,
    };
    let report = activity(query, input.events, Millis(input.ended_at.0 + 1));
    let communities = report
        .areas
        .iter()
        .filter(|row| row.level == AreaLevel::Community)
        .map(|row| ServedArea {
            id: row.area.to_string(),
            name: names.get(row.area.as_str()).cloned().unwrap_or_else(|| row.name.clone()),
            incidents: row.incidents,
            staffed_in_time: row.staffed_in_time,
            staffing_alerts: row.staffing_alerts,
            low_s: round1(row.low_ms as f64 / 1000.0),
        })
        .collect();
    let mut people: Vec<&pingji_engine::activity::PersonActivity> =
        report.people.iter().filter(|row| row.offers > 0 || row.accepted > 0).collect();
    let people_offered = people.iter().filter(|row| row.offers > 0).count();
    let people_accepted = people.iter().filter(|row| row.accepted > 0).count();
    people.sort_by(|a, b| b.accepted.cmp(&a.accepted).then(b.offers.cmp(&a.offers)).then(a.agent.cmp(&b.agent)));
    let most_accepted = people
        .into_iter()
        .take(10)
        .map(|row| ServedPerson {
            agent: row.agent.to_string(),
            offers: row.offers,
            accepted: row.accepted,
            declined: row.declined,
            timed_out: row.timed_out,
            median_accept_s: row.median_accept_s().map(round1),
            on_assignment_s: round1(row.on_assignment_ms as f64 / 1000.0),
        })
        .collect();
    WhoServed { people_offered, people_accepted, communities, most_accepted }
}

/// What the report needs besides the events.
pub struct ReportInput<'a> {
    pub summary: DrillSummary,
    pub map: &'a AreaImport,
    pub expectations: &'a [Expectation],
    pub staffed_in_time_s: u64,
    pub events: &'a [Event],
    pub started_at: Millis,
    pub ended_at: Millis,
}

#[derive(Default)]
struct Tracked {
    figures: Option<IncidentFigures>,
    assigned: u32,
    open_offers: i64,
    staffed: bool,
    ended: bool,
    reported: Millis,
    offer_origins: BTreeMap<AgentId, Option<[f64; 2]>>,
}

/// Computes every figure from the events.
pub fn build(input: ReportInput<'_>) -> Report {
    let seconds = |at: Millis, since: Millis| round1(at.seconds_since(since));
    let mut tracked: BTreeMap<IncidentId, Tracked> = BTreeMap::new();
    let mut order: Vec<IncidentId> = Vec::new();
    let mut totals = Totals::default();
    let mut timeline = Vec::new();
    let mut staffing = Vec::new();
    let names: BTreeMap<String, String> = input.map.areas.iter().map(|area| (area.id.to_string(), area.name.clone())).collect();
    let duration_s = input.ended_at.seconds_since(input.started_at).max(1.0);
    let step_s = (duration_s / 120.0).max(10.0);
    let mut next_sample = 0.0;
    let mut strictest: BTreeMap<String, pingji_engine::policy::Mode> = BTreeMap::new();
    let mut callups: BTreeMap<String, RollCall> = BTreeMap::new();
    // The last rung sent to each called-up person, by (call-up, person).
    let mut last_rung: BTreeMap<(String, String), &'static str> = BTreeMap::new();
    let mut reached_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut plan_activations = 0;
    let mut grid_staffing_low = 0;
    let mut mode_switches = Vec::new();
    let started_at_ms = input.started_at.0;
    let key = |at_s: f64, kind: &str, text: String| KeyEvent {
        at_s: round1(at_s),
        clock: clock(started_at_ms, at_s),
        kind: kind.to_string(),
        text,
    };

    let sample = |tracked: &BTreeMap<IncidentId, Tracked>, at_s: f64| {
        let mut sample = StaffingSample { at_s: round1(at_s), waiting: 0, offered: 0, staffed: 0, ended: 0 };
        for incident in tracked.values() {
            if incident.ended {
                sample.ended += 1;
            } else if incident.staffed {
                sample.staffed += 1;
            } else if incident.open_offers > 0 {
                sample.offered += 1;
            } else {
                sample.waiting += 1;
            }
        }
        sample
    };

    for event in input.events {
        let at_s = event.at.seconds_since(input.started_at);
        while at_s > next_sample && next_sample <= duration_s {
            staffing.push(sample(&tracked, next_sample));
            next_sample += step_s;
        }
        match &event.kind {
            EventKind::IncidentReported { incident, spec, placement, .. } => {
                totals.incidents += 1;
                order.push(incident.clone());
                tracked.insert(
                    incident.clone(),
                    Tracked {
                        figures: Some(IncidentFigures {
                            id: incident.to_string(),
                            category: spec.category.clone(),
                            priority: spec.priority,
                            headcount: spec.headcount,
                            at: [spec.at.lon, spec.at.lat],
                            community: placement.at(AreaLevel::Community).map(|id| id.to_string()),
                            reported_at_s: round1(at_s),
                            first_offer_s: None,
                            accepted_s: None,
                            staffed_s: None,
                            arrived_s: None,
                            ended: None,
                            widenings: 0,
                            responders: Vec::new(),
                            why_short: None,
                        }),
                        reported: event.at,
                        ..Tracked::default()
                    },
                );
            }
            EventKind::OfferSent { offer } => {
                totals.offers += 1;
                if let Some(incident) = tracked.get_mut(&offer.incident) {
                    incident.open_offers += 1;
                    let origin = offer.origin.map(|Position { lon, lat }| [lon, lat]);
                    incident.offer_origins.insert(offer.agent.clone(), origin);
                    let reported = incident.reported;
                    if let Some(figures) = incident.figures.as_mut() {
                        figures.first_offer_s.get_or_insert(seconds(event.at, reported));
                        // Someone fits again: an earlier "why nobody fits" no longer holds.
                        figures.why_short = None;
                    }
                }
            }
            EventKind::Assigned { incident, agent, .. } => {
                totals.accepted += 1;
                if let Some(tracked) = tracked.get_mut(incident) {
                    tracked.open_offers -= 1;
                    tracked.assigned += 1;
                    let from = tracked.offer_origins.get(agent).copied().flatten();
                    let reported = tracked.reported;
                    if let Some(figures) = tracked.figures.as_mut() {
                        figures.accepted_s.get_or_insert(seconds(event.at, reported));
                        figures.responders.push(Responder { agent: agent.to_string(), from });
                    }
                }
            }
            EventKind::OfferDeclined { incident, .. }
            | EventKind::OfferTimedOut { incident, .. }
            | EventKind::OfferWithdrawn { incident, .. } => {
                match &event.kind {
                    EventKind::OfferDeclined { .. } => totals.declined += 1,
                    EventKind::OfferTimedOut { .. } => totals.timed_out += 1,
                    _ => totals.withdrawn += 1,
                }
                if let Some(tracked) = tracked.get_mut(incident) {
                    tracked.open_offers -= 1;
                }
            }
            EventKind::IncidentStaffed { incident } => {
                if let Some(tracked) = tracked.get_mut(incident) {
                    if !tracked.staffed {
                        totals.staffed_at_some_point += 1;
                    }
                    tracked.staffed = true;
                    let reported = tracked.reported;
                    if let Some(figures) = tracked.figures.as_mut() {
                        figures.staffed_s = Some(seconds(event.at, reported));
                    }
                }
            }
            EventKind::AgentArrived { incident, .. } => {
                if let Some(tracked) = tracked.get_mut(incident) {
                    let reported = tracked.reported;
                    if let Some(figures) = tracked.figures.as_mut() {
                        figures.arrived_s.get_or_insert(seconds(event.at, reported));
                    }
                }
            }
            EventKind::Widened { incident, from, to, reason } => {
                *totals.widenings.entry(to.name().to_string()).or_default() += 1;
                if let Some(tracked) = tracked.get_mut(incident)
                    && let Some(figures) = tracked.figures.as_mut()
                {
                    figures.widenings += 1;
                    if *to < AreaLevel::Community {
                        timeline.push(key(
                            at_s,
                            "widened",
                            format!(
                                "{incident} ({}, P{}) widened {} → {} ({})",
                                figures.category,
                                figures.priority,
                                from.name(),
                                to.name(),
                                match reason {
                                    pingji_engine::event::WidenReason::NoCandidates => "nobody fit",
                                    pingji_engine::event::WidenReason::WaitExpired => "wait ran out",
                                }
                            ),
                        ));
                    }
                }
            }
            EventKind::NoCandidates { incident, level, shortfall } => {
                totals.no_candidates += 1;
                let why = shortfall.as_ref().map(|shortfall| format!(" ({})", shortfall.summary())).unwrap_or_default();
                timeline.push(key(
                    at_s,
                    "no_candidates",
                    format!("{incident}: nobody fits at {} level{why}; waiting", level.name()),
                ));
                if let (Some(shortfall), Some(figures)) =
                    (shortfall, tracked.get_mut(incident).and_then(|tracked| tracked.figures.as_mut()))
                {
                    figures.why_short = Some(format!("at {} level, {}", level.name(), shortfall.summary()));
                }
            }
            EventKind::IncidentUnstaffable { incident, needed, possible, missing_skills, beyond_reach, shortfall } => {
                if let (Some(shortfall), Some(figures)) =
                    (shortfall, tracked.get_mut(incident).and_then(|tracked| tracked.figures.as_mut()))
                {
                    figures.why_short = Some(format!("at {} level, {}", shortfall.level.name(), shortfall.summary()));
                }
                let lacking = if *beyond_reach {
                    "off the map, out of everyone's reach".to_string()
                } else if missing_skills.is_empty() {
                    format!("{possible} of the {} needed could take it", plural(*needed as usize, "person", "people"))
                } else {
                    format!("nobody has {}", missing_skills.iter().cloned().collect::<Vec<_>>().join(" or "))
                };
                timeline.push(key(
                    at_s,
                    "incident_unstaffable",
                    format!("{incident}: nobody on the roster could staff it: {lacking}"),
                ));
            }
            EventKind::IncidentCancelled { incident, .. } | EventKind::IncidentClosed { incident, .. } => {
                let cancelled = matches!(event.kind, EventKind::IncidentCancelled { .. });
                // Only incidents reported in the drill count: one reported
                // before it and ended during it is not one of its incidents.
                if let Some(tracked) = tracked.get_mut(incident)
                    && !tracked.ended
                {
                    if cancelled {
                        totals.cancelled += 1;
                    } else {
                        totals.closed += 1;
                    }
                    tracked.ended = true;
                    if let Some(figures) = tracked.figures.as_mut() {
                        figures.ended = Some(if cancelled { "cancelled" } else { "closed" }.to_string());
                    }
                }
            }
            EventKind::CallupIssued { callup, area, people, deadline, reason, .. } => {
                let called = people.iter().map(|agent| (agent.to_string(), None)).collect();
                callups.insert(callup.to_string(), (event.at, *deadline, called));
                timeline.push(key(
                    at_s,
                    "callup_issued",
                    format!("{callup}: {} called up in {area} ({reason})", plural(people.len(), "person", "people")),
                ));
            }
            EventKind::CheckedIn { callup, agent } => {
                if let Some((_, _, people)) = callups.get_mut(callup.as_str()) {
                    people.insert(agent.to_string(), Some(event.at));
                }
                let channel = last_rung.get(&(callup.to_string(), agent.to_string())).copied().unwrap_or("app session");
                *reached_by.entry(channel.to_string()).or_default() += 1;
            }
            EventKind::Notified(step) => {
                use pingji_engine::event::{NoticeChannel, NoticeOutcome};
                let reached = matches!(step.outcome, NoticeOutcome::Sent | NoticeOutcome::Delivered | NoticeOutcome::Answered);
                if let Some(callup) = &step.callup
                    && reached
                {
                    let channel = match step.channel {
                        NoticeChannel::Push => "push",
                        NoticeChannel::Sms => "SMS",
                        NoticeChannel::Voice => "voice",
                    };
                    last_rung.insert((callup.to_string(), step.agent.to_string()), channel);
                }
            }
            EventKind::CallupDeadlinePassed { callup, missing } => {
                timeline.push(key(
                    at_s,
                    "callup_deadline_passed",
                    format!("{callup}: check-in deadline passed, {} missing", missing.len()),
                ));
            }
            EventKind::PlanActivated { activation, area, automatic, .. } => {
                plan_activations += 1;
                timeline.push(key(
                    at_s,
                    "plan_activated",
                    format!("plan {activation} activated on {area}{}", if *automatic { " by the switch" } else { "" }),
                ));
            }
            EventKind::PlanDeactivated { activation, reason } => {
                timeline.push(key(at_s, "plan_deactivated", format!("plan {activation} ended: {reason}")));
            }
            EventKind::GridStaffingLow { .. } => grid_staffing_low += 1,
            EventKind::ModeSwitched { area, mode, previous, reason } => {
                totals.mode_switches += 1;
                if mode.is_emergency() {
                    let entry = strictest.entry(area.to_string()).or_insert(*mode);
                    *entry = (*entry).max(*mode);
                }
                let name = names.get(area.as_str()).cloned().unwrap_or_default();
                timeline.push(key(
                    at_s,
                    "mode_switched",
                    format!("{area} {name}: {} → {} ({reason}) by {}", previous.name(), mode.name(), event.actor),
                ));
                mode_switches.push(ModeSwitchFigures {
                    at_s: round1(at_s),
                    clock: clock(started_at_ms, at_s),
                    area: area.to_string(),
                    name,
                    from: previous.name().to_string(),
                    to: mode.name().to_string(),
                });
            }
            _ => {}
        }
    }
    while next_sample <= duration_s {
        staffing.push(sample(&tracked, next_sample));
        next_sample += step_s;
    }

    let incidents: Vec<IncidentFigures> = order.iter().filter_map(|id| tracked.get(id)?.figures.clone()).collect();
    let unstaffed: Vec<&IncidentFigures> =
        incidents.iter().filter(|figures| figures.ended.is_none() && figures.staffed_s.is_none()).collect();
    totals.unstaffed_at_end = unstaffed.len();
    totals.staffed_at_end = incidents.iter().filter(|figures| figures.ended.is_none() && figures.staffed_s.is_some()).count();
    debug_assert_eq!(
        totals.where_they_stood().iter().map(|(_, count)| count).sum::<usize>(),
        totals.incidents,
        "every incident stands in exactly one place at the end: {totals:?}"
    );
    for figures in &unstaffed {
        timeline.push(key(
            duration_s,
            "unstaffed_at_end",
            format!("{} ({}, P{}) still short of people at the end", figures.id, figures.category, figures.priority),
        ));
    }
    timeline.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));

    let mut by_priority = BTreeMap::new();
    for priority in 1..=4u8 {
        let of_priority: Vec<&IncidentFigures> = incidents.iter().filter(|figures| figures.priority == priority).collect();
        if of_priority.is_empty() {
            continue;
        }
        let collect =
            |pick: fn(&IncidentFigures) -> Option<f64>| -> Vec<f64> { of_priority.iter().filter_map(|f| pick(f)).collect() };
        by_priority.insert(
            priority.to_string(),
            PriorityFigures {
                incidents: of_priority.len(),
                time_to_first_offer: Stats::of(&collect(|f| f.first_offer_s)),
                time_to_accept: Stats::of(&collect(|f| f.accepted_s)),
                time_to_staffed: Stats::of(&collect(|f| f.staffed_s)),
                time_to_arrive: Stats::of(&collect(|f| f.arrived_s)),
            },
        );
    }

    let mut communities: BTreeMap<String, (usize, usize, usize, BTreeSet<String>)> = BTreeMap::new();
    for figures in &incidents {
        let community = figures.community.clone().unwrap_or_else(|| "(outside every community)".to_string());
        let row = communities.entry(community).or_default();
        row.0 += 1;
        if figures.staffed_s.is_some_and(|staffed| staffed <= input.staffed_in_time_s as f64) {
            row.1 += 1;
        }
        row.2 += figures.widenings;
        row.3.extend(figures.responders.iter().map(|responder| responder.agent.clone()));
    }
    let communities = communities
        .into_iter()
        .map(|(id, (incidents, staffed_in_time, widenings, people))| CommunityRow {
            name: names.get(&id).cloned().unwrap_or_default(),
            id,
            incidents,
            staffed_in_time,
            widenings,
            people_used: people.len(),
        })
        .collect();

    let mut callup_figures = CallupFigures { callups: callups.len(), reached_by, ..CallupFigures::default() };
    let mut check_in_times = Vec::new();
    for (issued, deadline, people) in callups.values() {
        callup_figures.called += people.len();
        for checked_in in people.values() {
            match checked_in {
                Some(at) if at <= deadline => {
                    callup_figures.checked_in_in_time += 1;
                    check_in_times.push(at.seconds_since(*issued));
                }
                Some(at) => {
                    callup_figures.checked_in_late += 1;
                    check_in_times.push(at.seconds_since(*issued));
                }
                None if *deadline <= input.ended_at => callup_figures.missing_at_deadline += 1,
                None => {}
            }
        }
    }
    callup_figures.time_to_check_in = Stats::of(&check_in_times);

    let expectations: Vec<ExpectationResult> =
        input.expectations.iter().map(|expectation| judge(expectation, &incidents, input.events, &callup_figures)).collect();
    let passed = expectations.iter().all(|result| result.passed);
    let who_served = who_served(&input, &names);
    Report {
        drill: input.summary,
        passed,
        expectations,
        totals,
        by_priority,
        communities,
        staffed_in_time_s: input.staffed_in_time_s,
        timeline,
        mode_switches,
        staffing,
        emergency_areas: strictest.into_iter().map(|(area, mode)| (area, mode.name().to_string())).collect(),
        callups: callup_figures,
        plan_activations,
        grid_staffing_low,
        incidents,
        who_served,
        safety: crate::safety::SafetyFigures::of(input.events),
        supplies: crate::supplies::figures(input.events),
        shifts: None,
        shelters: crate::shelters::figures(input.events, input.started_at),
        live: None,
    }
}

fn judge(
    expectation: &Expectation,
    incidents: &[IncidentFigures],
    events: &[Event],
    callups: &CallupFigures,
) -> ExpectationResult {
    match expectation {
        Expectation::AcceptedWithin { priority, share, within_s } | Expectation::ArrivedWithin { priority, share, within_s } => {
            let arrived = matches!(expectation, Expectation::ArrivedWithin { .. });
            let what = if arrived { "first person on scene" } else { "accepted" };
            let scope = priority.map_or("incidents".to_string(), |p| format!("priority-{p} incidents"));
            let judged: Vec<&IncidentFigures> = incidents
                .iter()
                .filter(|f| priority.is_none_or(|p| f.priority == p))
                // An incident cancelled before anyone took it is not judged.
                .filter(|f| !(f.ended.as_deref() == Some("cancelled") && f.accepted_s.is_none()))
                .collect();
            let description = format!("{:.0}% of {scope} {what} within {within_s} s", share * 100.0);
            if judged.is_empty() {
                return ExpectationResult { expectation: description, passed: false, actual: format!("no {scope} to judge") };
            }
            let in_time = judged
                .iter()
                .filter(|f| if arrived { f.arrived_s } else { f.accepted_s }.is_some_and(|s| s <= *within_s as f64))
                .count();
            let actual = in_time as f64 / judged.len() as f64;
            ExpectationResult {
                expectation: description,
                passed: actual + 1e-9 >= *share,
                actual: format!("{:.1}% ({in_time} of {})", actual * 100.0, judged.len()),
            }
        }
        Expectation::NoneUnstaffed {} => {
            let unstaffed: Vec<&str> =
                incidents.iter().filter(|f| f.ended.is_none() && f.staffed_s.is_none()).map(|f| f.id.as_str()).collect();
            ExpectationResult {
                expectation: "no incident unstaffed at the end".to_string(),
                passed: unstaffed.is_empty(),
                actual: if unstaffed.is_empty() {
                    "none".to_string()
                } else {
                    format!(
                        "{} unstaffed: {}",
                        unstaffed.len(),
                        unstaffed.iter().take(10).copied().collect::<Vec<_>>().join(", ")
                    )
                },
            }
        }
        Expectation::CalledUpCheckedIn { share } => {
            let description = format!("{:.0}% of the people called up checked in before the deadline", share * 100.0);
            if callups.called == 0 {
                return ExpectationResult { expectation: description, passed: false, actual: "nobody was called up".to_string() };
            }
            let actual = callups.checked_in_in_time as f64 / callups.called as f64;
            ExpectationResult {
                expectation: description,
                passed: actual + 1e-9 >= *share,
                actual: format!("{:.1}% ({} of {})", actual * 100.0, callups.checked_in_in_time, callups.called),
            }
        }
        Expectation::MaxWideningsBeyond { level, max } => {
            let level = AreaLevel::from_name(level).unwrap_or(AreaLevel::Community);
            let count = events.iter().filter(|event| matches!(&event.kind, EventKind::Widened { to, .. } if *to < level)).count();
            ExpectationResult {
                expectation: format!("at most {max} widenings beyond the {}", level.name()),
                passed: count <= *max as usize,
                actual: format!("{count}"),
            }
        }
    }
}

fn cell(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |v| format!("{v:.0}"))
}

/// A count with thousands separators, as the prose writes numbers: 1,600.
pub fn thousands(count: usize) -> String {
    // Groups of three digits, least significant first.
    let mut groups = Vec::new();
    let mut rest = count;
    while rest >= 1000 {
        groups.push(format!("{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.push(rest.to_string());
    groups.reverse();
    groups.join(",")
}

/// A count and its noun, singular for one: "1 mode switch", "2 mode switches".
pub fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{} {}", thousands(count), if count == 1 { one } else { many })
}

const DAY_MS: i64 = 86_400_000;

/// A moment of the drill on the drill clock: the time of day (UTC) of its
/// start plus `at_s`, "08:05:00"; "+1d" and so on once past midnight.
pub fn clock(started_at_ms: i64, at_s: f64) -> String {
    let at_ms = started_at_ms + (at_s.max(0.0) * 1000.0) as i64;
    let second_of_day = at_ms.rem_euclid(DAY_MS) / 1000;
    let days = at_ms.div_euclid(DAY_MS) - started_at_ms.div_euclid(DAY_MS);
    let time = format!("{:02}:{:02}:{:02}", second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    if days > 0 { format!("{time} +{days}d") } else { time }
}

/// A length of time in words: "1 hour", "1 hour 30 minutes", "45 seconds".
pub fn duration_words(seconds: u64) -> String {
    let (hours, minutes, rest) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = [(hours, "hour", "hours"), (minutes, "minute", "minutes"), (rest, "second", "seconds")]
        .into_iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|(count, one, many)| plural(count as usize, one, many))
        .collect();
    if parts.is_empty() { "0 seconds".to_string() } else { parts.join(" ") }
}

/// The story in figures, on the drill clock: when it ran, when incidents
/// came in, when areas switched mode, the call-ups.
fn story(report: &Report) -> String {
    let started = report.drill.started_at_ms;
    let mut sentences = vec![format!(
        "The drill clock runs from {} to {} ({})",
        clock(started, 0.0),
        clock(started, report.drill.duration_s as f64),
        duration_words(report.drill.duration_s)
    )];
    let reported = report.incidents.iter().map(|figures| figures.reported_at_s);
    let first = reported.clone().reduce(f64::min);
    let last = reported.reduce(f64::max);
    let incidents = plural(report.totals.incidents, "incident", "incidents");
    sentences.push(match (first, last) {
        (Some(first), Some(last)) if first == last => format!("{incidents} came in at {}", clock(started, first)),
        (Some(first), Some(last)) => {
            format!("{incidents} came in between {} and {}", clock(started, first), clock(started, last))
        }
        _ => "No incidents came in".to_string(),
    });
    debug_assert_eq!(report.mode_switches.len(), report.totals.mode_switches);
    if !report.mode_switches.is_empty() {
        const LISTED: usize = 4;
        let listed: Vec<String> = report
            .mode_switches
            .iter()
            .take(LISTED)
            .map(|switch| {
                let area = if switch.name.is_empty() { switch.area.clone() } else { format!("{} {}", switch.area, switch.name) };
                format!("{area} to {} at {}", switch.to, switch.clock)
            })
            .collect();
        let more = report.mode_switches.len().saturating_sub(LISTED);
        sentences.push(format!(
            "{}: {}{}",
            plural(report.mode_switches.len(), "mode switch", "mode switches"),
            listed.join("; "),
            if more > 0 { format!("; {more} more in the key events") } else { String::new() }
        ));
    }
    if report.callups.callups > 0 {
        sentences.push(format!(
            "{} called up in {}",
            plural(report.callups.called, "person", "people"),
            plural(report.callups.callups, "call-up", "call-ups")
        ));
    }
    sentences.join(". ") + "."
}

/// The report for people.
/// The "who served" section: per community, then the people who accepted most.
fn who_served_markdown(out: &mut String, report: &Report) {
    let served = &report.who_served;
    let _ = writeln!(
        out,
        "\n## Who served\n\n{} offered work, {} accepted at least once (`pingji report activity` gives every person's figures).\n\n\
         | community | incidents | staffed in time | staffing alerts | grids below minimum |\n|---|---|---|---|---|",
        plural(served.people_offered, "person was", "people were"),
        thousands(served.people_accepted)
    );
    for row in &served.communities {
        let share = if row.incidents == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", f64::from(row.staffed_in_time) * 100.0 / f64::from(row.incidents))
        };
        let _ = writeln!(
            out,
            "| {} {} | {} | {} ({share}) | {} | {} |",
            row.id,
            row.name,
            row.incidents,
            row.staffed_in_time,
            row.staffing_alerts,
            duration_words(row.low_s as u64)
        );
    }
    if served.most_accepted.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n| person | offers | accepted | declined | timed out | accept p50 | on tasks |\n|---|---|---|---|---|---|---|"
    );
    for person in &served.most_accepted {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            person.agent,
            person.offers,
            person.accepted,
            person.declined,
            person.timed_out,
            person.median_accept_s.map_or("-".to_string(), |seconds| format!("{seconds} s")),
            duration_words(person.on_assignment_s as u64)
        );
    }
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let drill = &report.drill;
    let _ = writeln!(out, "# After-action report: {}\n", drill.name);
    if !drill.description.is_empty() {
        let _ = writeln!(out, "{}\n", drill.description.trim());
    }
    let _ = writeln!(out, "{}\n", story(report));
    if let Some(seconds) = report.live.as_ref().and_then(|live| live.interrupted_at_s) {
        let _ = writeln!(
            out,
            "**Stopped at {} ({} s of {}):** the figures cover the drill up to then.\n",
            clock(drill.started_at_ms, seconds),
            seconds.round(),
            drill.duration_s
        );
    }
    let _ = writeln!(
        out,
        "Seed {} · {} · {} in the log · result: **{}**\n",
        drill.seed,
        plural(drill.people, "person", "people"),
        plural(drill.events, "event", "events"),
        if report.passed { "PASSED" } else { "FAILED" }
    );
    let _ = writeln!(out, "## Expectations\n\n| | expectation | actual |\n|---|---|---|");
    for result in &report.expectations {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            if result.passed { "✅ pass" } else { "❌ FAIL" },
            result.expectation,
            result.actual
        );
    }
    if report.expectations.is_empty() {
        let _ = writeln!(out, "| | (none set) | |");
    }
    let totals = &report.totals;
    let _ = writeln!(
        out,
        "\n## Headline figures\n\n{}. {}: {} accepted, {} declined, {} timed out, {} withdrawn. {}, {}.\n",
        totals.headline(),
        plural(totals.offers, "offer", "offers"),
        thousands(totals.accepted),
        thousands(totals.declined),
        thousands(totals.timed_out),
        thousands(totals.withdrawn),
        plural(totals.mode_switches, "mode switch", "mode switches"),
        plural(totals.no_candidates, "\"nobody fits\" wait", "\"nobody fits\" waits")
    );
    let _ = writeln!(out, "Seconds from report, per priority (p50 / p90 / max):\n");
    let _ =
        writeln!(out, "| priority | incidents | first offer | accepted | staffed | first on scene |\n|---|---|---|---|---|---|");
    for (priority, figures) in &report.by_priority {
        let triple = |stats: &Stats| format!("{} / {} / {}", cell(stats.p50_s), cell(stats.p90_s), cell(stats.max_s));
        let _ = writeln!(
            out,
            "| P{priority} | {} | {} | {} | {} | {} |",
            figures.incidents,
            triple(&figures.time_to_first_offer),
            triple(&figures.time_to_accept),
            triple(&figures.time_to_staffed),
            triple(&figures.time_to_arrive)
        );
    }
    if report.callups.callups > 0 {
        let callups = &report.callups;
        let _ = writeln!(
            out,
            "\n{} issued, {} called up: {} checked in before the deadline, {} late, {} missing at the deadline; \
             time to check in p50 {} s, p90 {} s.\n",
            plural(callups.callups, "call-up", "call-ups"),
            plural(callups.called, "person", "people"),
            thousands(callups.checked_in_in_time),
            thousands(callups.checked_in_late),
            thousands(callups.missing_at_deadline),
            cell(callups.time_to_check_in.p50_s),
            cell(callups.time_to_check_in.p90_s)
        );
        // The drill has no gateways: `[channels]` in the drill file scripts
        // who is reached by push, SMS or a call (see docs/integrations.md).
        let reached: Vec<String> = ["app session", "push", "SMS", "voice"]
            .iter()
            .map(|channel| format!("{} {}", channel, thousands(callups.reached_by.get(*channel).copied().unwrap_or(0))))
            .collect();
        let _ = writeln!(out, "Reached, of those who checked in: {}.\n", reached.join(", "));
    }
    if report.plan_activations > 0 || report.grid_staffing_low > 0 {
        let _ = writeln!(
            out,
            "\n{}. Grids fell below their minimum of available people {}.\n",
            plural(report.plan_activations, "plan activation", "plan activations"),
            plural(report.grid_staffing_low, "time", "times")
        );
    }
    let widenings: Vec<String> =
        totals.widenings.iter().map(|(level, count)| format!("{} to {level}", thousands(*count))).collect();
    let _ = writeln!(out, "\nWidenings: {}.\n", if widenings.is_empty() { "none".to_string() } else { widenings.join(", ") });
    let _ = writeln!(
        out,
        "## By community\n\n\"In time\" means staffed within {} s.\n\n| community | incidents | staffed in time | widenings | people used |\n|---|---|---|---|---|",
        report.staffed_in_time_s
    );
    for row in &report.communities {
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {} | {} |",
            row.id, row.name, row.incidents, row.staffed_in_time, row.widenings, row.people_used
        );
    }
    who_served_markdown(&mut out, report);
    if !report.safety.is_empty() {
        let _ = writeln!(out, "\n{}", report.safety.markdown().trim_end());
    }
    out.push_str(&crate::supplies::markdown(&report.supplies));
    out.push_str(&crate::shifts::markdown(report.shifts.as_ref()));
    out.push_str(&crate::shelters::markdown(&report.shelters));
    let _ = writeln!(
        out,
        "\n## Pictures\n\n![time to accept](accept.svg)\n\n![time to arrive](arrive.svg)\n\n![staffing over time](staffing.svg)\n\n![map](map.svg)\n"
    );
    if let Some(live) = &report.live {
        let _ = writeln!(out, "## On the live dispatcher\n\nWhat the drill found when it started:\n");
        for line in &live.found {
            let _ = writeln!(out, "- {line}");
        }
        if !live.went_ahead_despite.is_empty() {
            let _ = writeln!(out, "\nIt was told to go ahead (`--go-ahead`) despite:\n");
            for line in &live.went_ahead_despite {
                let _ = writeln!(out, "- {line}");
            }
        }
        let _ = writeln!(out, "\nWhen it ended:\n");
        for line in &live.left {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out);
    }
    let unstaffed: Vec<&IncidentFigures> =
        report.incidents.iter().filter(|figures| figures.ended.is_none() && figures.staffed_s.is_none()).collect();
    if !unstaffed.is_empty() {
        let _ = writeln!(
            out,
            "## Unstaffed at the end\n\nWhy nobody fitted, the last time the dispatcher looked (`pingji incident why ID` asks it now).\n\n\
             | incident | category | priority | needs | why nobody fitted |\n|---|---|---|---|---|"
        );
        for figures in unstaffed.iter().take(60) {
            let _ = writeln!(
                out,
                "| {} | {} | P{} | {} | {} |",
                figures.id,
                figures.category,
                figures.priority,
                figures.headcount,
                figures.why_short.as_deref().unwrap_or("offers out, none accepted yet")
            );
        }
        if unstaffed.len() > 60 {
            let _ = writeln!(out, "| | … and {} more in report.json | | | |", thousands(unstaffed.len() - 60));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Key events\n\nTimes on the drill clock.\n\n| time | event |\n|---|---|");
    const SHOWN: usize = 60;
    for key in report.timeline.iter().take(SHOWN) {
        let _ = writeln!(out, "| {} | {} |", key.clock, key.text);
    }
    if report.timeline.len() > SHOWN {
        let _ = writeln!(out, "| | … and {} more in report.json |", thousands(report.timeline.len() - SHOWN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events of a small drill: `reported` incidents, then `after` in order.
    fn drill_events(reported: &[&str], after: Vec<EventKind>) -> Vec<Event> {
        let spec = pingji_engine::incident::IncidentSpec {
            at: Position { lon: 120.1, lat: 30.2 },
            category: "medical".to_string(),
            priority: 1,
            skills: BTreeSet::new(),
            headcount: 1,
            description: String::new(),
            source_id: String::new(),
        };
        let reports = reported.iter().map(|id| EventKind::IncidentReported {
            incident: IncidentId::new(*id),
            spec: spec.clone(),
            placement: pingji_engine::areas::Placement::default(),
            scope: AreaLevel::Grid,
            activation: None,
        });
        reports
            .chain(after)
            .enumerate()
            .map(|(index, kind)| Event {
                seq: index as u64 + 1,
                at: crate::sim::DRILL_START.plus_seconds(index as u64 * 10),
                actor: "operator:admin".to_string(),
                kind,
            })
            .collect()
    }

    fn report_of(events: &[Event]) -> Report {
        let map = AreaImport::default();
        build(ReportInput {
            summary: DrillSummary {
                name: "test".to_string(),
                description: String::new(),
                seed: 1,
                duration_s: 600,
                started_at_ms: crate::sim::DRILL_START.0,
                people: 0,
                events: events.len(),
            },
            map: &map,
            expectations: &[],
            staffed_in_time_s: 300,
            events,
            started_at: crate::sim::DRILL_START,
            ended_at: crate::sim::DRILL_START.plus_seconds(600),
        })
    }

    #[test]
    fn the_headline_figures_add_up_to_the_incidents() {
        let id = |text: &str| IncidentId::new(text);
        let events = drill_events(
            &["staffed-then-closed", "staffed-open", "cancelled", "waiting"],
            vec![
                EventKind::IncidentStaffed { incident: id("staffed-then-closed") },
                EventKind::IncidentClosed { incident: id("staffed-then-closed"), feedback: "done".into(), released: vec![] },
                EventKind::IncidentStaffed { incident: id("staffed-open") },
                EventKind::IncidentCancelled { incident: id("cancelled"), reason: "false alarm".into(), released: vec![] },
                // Reported before the drill: none of its figures.
                EventKind::IncidentStaffed { incident: id("from-before") },
                EventKind::IncidentClosed { incident: id("from-before"), feedback: "done".into(), released: vec![] },
            ],
        );
        let totals = report_of(&events).totals;
        let stood: usize = totals.where_they_stood().iter().map(|(_, count)| count).sum();
        assert_eq!(stood, totals.incidents, "{totals:?}");
        assert_eq!(
            (totals.incidents, totals.closed, totals.cancelled, totals.staffed_at_end, totals.unstaffed_at_end),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(totals.staffed_at_some_point, 2, "staffed, whatever became of them; not a fifth place");
        assert_eq!(totals.headline(), "4 incidents at the end: 1 closed with feedback, 1 cancelled, 1 staffed, 1 unstaffed");
    }

    #[test]
    fn counts_take_the_singular_only_for_one() {
        assert_eq!(plural(0, "mode switch", "mode switches"), "0 mode switches");
        assert_eq!(plural(1, "mode switch", "mode switches"), "1 mode switch");
        assert_eq!(plural(2, "mode switch", "mode switches"), "2 mode switches");
        assert_eq!(plural(1600, "person", "people"), "1,600 people");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_drill_clock_is_the_start_time_of_day_plus_the_offset() {
        let eight_o_clock = crate::sim::DRILL_START.0;
        assert_eq!(clock(eight_o_clock, 0.0), "08:00:00");
        assert_eq!(clock(eight_o_clock, 300.0), "08:05:00");
        assert_eq!(clock(eight_o_clock, 3600.0), "09:00:00");
        assert_eq!(clock(eight_o_clock, 16.0 * 3600.0 + 61.0), "00:01:01 +1d");
    }

    #[test]
    fn lengths_of_time_read_as_words() {
        assert_eq!(duration_words(3600), "1 hour");
        assert_eq!(duration_words(5400), "1 hour 30 minutes");
        assert_eq!(duration_words(61), "1 minute 1 second");
        assert_eq!(duration_words(0), "0 seconds");
    }
}
