//! The report's safety section: check-ins on scene (PAR, 报平安) made and
//! missed, the welfare checks the second misses sent and how fast they
//! were staffed, and help calls (求助) with the time to their first
//! responder. Computed from the event log alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{IncidentId, Millis};
use serde::Serialize;

/// How long something took, in seconds: how many, the median and the longest.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub p50_s: Option<f64>,
    pub max_s: Option<f64>,
}

impl Stats {
    fn of(values: &[f64]) -> Stats {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let round = |value: f64| (value * 10.0).round() / 10.0;
        // Nearest rank, as the report's other figures.
        let median = (!sorted.is_empty()).then(|| round(sorted[sorted.len().div_ceil(2) - 1]));
        Stats { count: sorted.len(), p50_s: median, max_s: sorted.last().copied().map(round) }
    }
}

/// What the drill's people did for their own safety, and what came of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SafetyFigures {
    /// Safety check-ins made (报平安).
    pub check_ins: usize,
    /// Of them, made after one or more misses.
    pub late_check_ins: usize,
    /// Missed check-ins: first misses and second misses in a row.
    pub missed_first: usize,
    pub missed_second: usize,
    /// Welfare checks sent (one per second miss).
    pub welfare_checks: usize,
    /// Of them, staffed (someone accepted) by the end.
    pub welfare_staffed: usize,
    /// Seconds from the welfare check to its first accept.
    pub welfare_to_accept: Stats,
    /// Help calls (求助).
    pub help_calls: usize,
    /// People told, over all help calls (their teams).
    pub help_team_told: usize,
    /// Seconds from the help call to its first accept and first arrival.
    pub help_to_accept: Stats,
    pub help_to_arrival: Stats,
    /// Help calls nobody had reached by the end.
    pub help_unanswered: usize,
}

impl SafetyFigures {
    /// Nothing of the kind happened (a drill without check-ins or help).
    pub fn is_empty(&self) -> bool {
        *self == SafetyFigures::default()
    }

    pub fn of(events: &[Event]) -> SafetyFigures {
        let mut figures = SafetyFigures::default();
        // The welfare checks and help incidents, and when each began.
        let mut welfare: BTreeMap<IncidentId, Millis> = BTreeMap::new();
        let mut help: BTreeMap<IncidentId, Millis> = BTreeMap::new();
        let mut accepted: BTreeMap<IncidentId, Millis> = BTreeMap::new();
        let mut arrived: BTreeMap<IncidentId, Millis> = BTreeMap::new();
        for event in events {
            match &event.kind {
                EventKind::SafetyCheckIn { misses, .. } => {
                    figures.check_ins += 1;
                    if *misses > 0 {
                        figures.late_check_ins += 1;
                    }
                }
                EventKind::SafetyCheckMissed { miss, welfare: sent, .. } => {
                    if *miss <= 1 {
                        figures.missed_first += 1;
                    } else {
                        figures.missed_second += 1;
                    }
                    if let Some(incident) = sent {
                        welfare.insert(incident.clone(), event.at);
                    }
                }
                EventKind::HelpRequested { incident, team, .. } => {
                    figures.help_team_told += team.len();
                    help.insert(incident.clone(), event.at);
                }
                EventKind::Assigned { incident, .. } => {
                    accepted.entry(incident.clone()).or_insert(event.at);
                }
                EventKind::AgentArrived { incident, .. } => {
                    arrived.entry(incident.clone()).or_insert(event.at);
                }
                _ => {}
            }
        }
        let since = |from: &BTreeMap<IncidentId, Millis>, to: &BTreeMap<IncidentId, Millis>| -> Vec<f64> {
            from.iter().filter_map(|(incident, at)| to.get(incident).map(|then| then.seconds_since(*at))).collect()
        };
        figures.welfare_checks = welfare.len();
        figures.welfare_staffed = welfare.keys().filter(|incident| accepted.contains_key(*incident)).count();
        figures.welfare_to_accept = Stats::of(&since(&welfare, &accepted));
        figures.help_calls = help.len();
        figures.help_to_accept = Stats::of(&since(&help, &accepted));
        figures.help_to_arrival = Stats::of(&since(&help, &arrived));
        figures.help_unanswered = help.keys().filter(|incident| !accepted.contains_key(*incident)).count();
        figures
    }

    /// The report's "Safety on scene" section (Markdown).
    pub fn markdown(&self) -> String {
        let seconds = |stats: &Stats| match (stats.p50_s, stats.max_s) {
            (Some(p50), Some(max)) => format!("median {p50} s, longest {max} s"),
            _ => "none yet".to_string(),
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Safety on scene\n\nSafety check-ins (报平安) by people on assignments, and help calls (求助).\n\n| | count | how fast |\n|---|---|---|"
        );
        let _ = writeln!(out, "| check-ins made | {} ({} after a miss) | |", self.check_ins, self.late_check_ins);
        let _ = writeln!(out, "| missed: first | {} | |", self.missed_first);
        let _ = writeln!(out, "| missed: second in a row | {} | |", self.missed_second);
        let _ = writeln!(
            out,
            "| welfare checks sent | {} ({} staffed) | to accept: {} |",
            self.welfare_checks,
            self.welfare_staffed,
            seconds(&self.welfare_to_accept)
        );
        let _ = writeln!(
            out,
            "| help calls | {} ({} team members told, {} unanswered) | to accept: {}; to arrival: {} |",
            self.help_calls,
            self.help_team_told,
            self.help_unanswered,
            seconds(&self.help_to_accept),
            seconds(&self.help_to_arrival)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use pingji_engine::event::HelpPosition;
    use pingji_engine::ids::{AgentId, OfferId};
    use pingji_engine::spatial::Position;

    use super::*;

    fn at(seconds: i64, kind: EventKind) -> Event {
        Event { seq: 0, at: Millis(seconds * 1000), actor: "dispatcher".into(), kind }
    }

    #[test]
    fn the_section_counts_check_ins_misses_welfare_checks_and_help_by_hand() {
        let agent = AgentId::new("p1");
        let on = IncidentId::new("inc-000001");
        let events = vec![
            at(600, EventKind::SafetyCheckIn { agent: agent.clone(), incident: on.clone(), misses: 0 }),
            at(
                1200,
                EventKind::SafetyCheckMissed {
                    agent: agent.clone(),
                    incident: on.clone(),
                    miss: 1,
                    due: Millis(1_200_000),
                    welfare: None,
                },
            ),
            at(
                1800,
                EventKind::SafetyCheckMissed {
                    agent: agent.clone(),
                    incident: on.clone(),
                    miss: 2,
                    due: Millis(1_800_000),
                    welfare: Some(IncidentId::new("inc-000002")),
                },
            ),
            at(
                1830,
                EventKind::Assigned {
                    offer: OfferId::new("o1"),
                    incident: IncidentId::new("inc-000002"),
                    agent: AgentId::new("p2"),
                },
            ),
            at(1900, EventKind::SafetyCheckIn { agent: agent.clone(), incident: on, misses: 2 }),
            at(
                2000,
                EventKind::HelpRequested {
                    agent: AgentId::new("p3"),
                    incident: IncidentId::new("inc-000003"),
                    at: Position { lon: 120.0, lat: 30.0 },
                    from: HelpPosition::Live,
                    text: String::new(),
                    team: vec![AgentId::new("p4"), AgentId::new("p5")],
                },
            ),
            at(
                2045,
                EventKind::Assigned {
                    offer: OfferId::new("o2"),
                    incident: IncidentId::new("inc-000003"),
                    agent: AgentId::new("p4"),
                },
            ),
            at(2300, EventKind::AgentArrived { incident: IncidentId::new("inc-000003"), agent: AgentId::new("p4") }),
        ];
        let figures = SafetyFigures::of(&events);
        assert_eq!((figures.check_ins, figures.late_check_ins), (2, 1));
        assert_eq!((figures.missed_first, figures.missed_second), (1, 1));
        assert_eq!((figures.welfare_checks, figures.welfare_staffed), (1, 1));
        assert_eq!(figures.welfare_to_accept.p50_s, Some(30.0));
        assert_eq!((figures.help_calls, figures.help_team_told, figures.help_unanswered), (1, 2, 0));
        assert_eq!((figures.help_to_accept.p50_s, figures.help_to_arrival.p50_s), (Some(45.0), Some(300.0)));
        let text = figures.markdown();
        assert!(text.contains("| welfare checks sent | 1 (1 staffed) | to accept: median 30 s, longest 30 s |"), "{text}");
        assert!(text.contains("| help calls | 1 (2 team members told, 0 unanswered) | to accept: median 45 s"), "{text}");
        assert!(SafetyFigures::of(&[]).is_empty());
    }
}
