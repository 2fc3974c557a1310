//! The fold against a hand-counted script: every expected figure below is
//! worked out from the script by hand (see the comments), not copied from
//! the fold's output.

use std::collections::BTreeSet;

use super::*;
use crate::areas::{AreaImport, AreaSpec};
use crate::event::{DISPATCHER, WithdrawReason};
use crate::incident::{IncidentSpec, OfferRecord};
use crate::roster::{AgentProfile, Role};
use crate::spatial::Position;
use crate::travel::TravelMode;

const T0: i64 = 1_000_000_000;

fn minute(m: i64) -> Millis {
    Millis(T0 + m * 60_000)
}

fn area(id: &str, level: AreaLevel, parent: Option<&str>) -> AreaSpec {
    AreaSpec { id: AreaId::new(id), name: format!("{id} name"), level, parent: parent.map(AreaId::new), polygons: Vec::new() }
}

fn person(id: &str, home: &str, on_duty: bool) -> AgentProfile {
    AgentProfile {
        id: AgentId::new(id),
        name: format!("{id} name"),
        role: Role::CommunityWorker,
        skills: BTreeSet::new(),
        phone: String::new(),
        home_area: Some(AreaId::new(home)),
        travel_mode: TravelMode::Walk,
        on_duty,
        home: None,
    }
}

/// Placed in `grid` of `community` of the city.
fn placed(community: &str, grid: &str) -> Placement {
    Placement::from_areas([
        (AreaLevel::City, AreaId::new("city")),
        (AreaLevel::Community, AreaId::new(community)),
        (AreaLevel::Grid, AreaId::new(grid)),
    ])
}

fn spec() -> IncidentSpec {
    IncidentSpec {
        at: Position { lon: 120.0, lat: 30.0 },
        category: "flooding".to_string(),
        priority: 2,
        skills: BTreeSet::new(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    }
}

struct Script {
    events: Vec<Event>,
}

impl Script {
    fn at(&mut self, at: Millis, kind: EventKind) {
        let seq = self.events.len() as u64 + 1;
        if let Some(last) = self.events.last() {
            assert!(last.at <= at, "the script goes forward in time");
        }
        self.events.push(Event { seq, at, actor: DISPATCHER.to_string(), kind });
    }
    fn reported(&mut self, at: Millis, incident: &str, community: &str, grid: &str) {
        self.at(
            at,
            EventKind::IncidentReported {
                incident: IncidentId::new(incident),
                spec: spec(),
                placement: placed(community, grid),
                scope: AreaLevel::Grid,
                activation: None,
            },
        );
    }
    fn field_report(&mut self, at: Millis, incident: &str, agent: &str, community: &str, grid: &str) {
        self.at(
            at,
            EventKind::FieldReported {
                incident: IncidentId::new(incident),
                agent: AgentId::new(agent),
                spec: spec(),
                placement: placed(community, grid),
                text: String::new(),
                photo_ref: String::new(),
                photo_refs: Vec::new(),
            },
        );
    }
    fn offer(&mut self, at: Millis, offer: &str, incident: &str, agent: &str) {
        self.at(
            at,
            EventKind::OfferSent {
                offer: OfferRecord {
                    id: OfferId::new(offer),
                    incident: IncidentId::new(incident),
                    agent: AgentId::new(agent),
                    sent_at: at,
                    deadline: at.plus_seconds(120),
                    distance_m: 100.0,
                    eta_s: 60.0,
                    level: AreaLevel::Grid,
                    flat: false,
                    origin: None,
                    from_area: None,
                },
            },
        );
    }
    fn assigned(&mut self, at: Millis, offer: &str, incident: &str, agent: &str) {
        let kind =
            EventKind::Assigned { offer: OfferId::new(offer), incident: IncidentId::new(incident), agent: AgentId::new(agent) };
        self.at(at, kind);
    }
    fn staffed(&mut self, at: Millis, incident: &str) {
        self.at(at, EventKind::IncidentStaffed { incident: IncidentId::new(incident) });
    }
    fn arrived(&mut self, at: Millis, incident: &str, agent: &str) {
        self.at(at, EventKind::AgentArrived { incident: IncidentId::new(incident), agent: AgentId::new(agent) });
    }
}

fn agents(ids: &[&str]) -> Vec<AgentId> {
    ids.iter().map(|id| AgentId::new(*id)).collect()
}

/// Community c1 (grids g1, g2) and c2 (grid g3); p1 at home in g1 and on
/// duty from the start, p2 in g2 and off duty, p3 in g3 (outside c1) and on duty.
fn script() -> Vec<Event> {
    let mut s = Script { events: Vec::new() };
    s.at(
        minute(0),
        EventKind::AreasImported {
            import: AreaImport {
                areas: vec![
                    area("city", AreaLevel::City, None),
                    area("c1", AreaLevel::Community, Some("city")),
                    area("g1", AreaLevel::Grid, Some("c1")),
                    area("g2", AreaLevel::Grid, Some("c1")),
                    area("c2", AreaLevel::Community, Some("city")),
                    area("g3", AreaLevel::Grid, Some("c2")),
                ],
                service_centres: Vec::new(),
            },
        },
    );
    s.at(
        minute(0),
        EventKind::AgentsUpserted { agents: vec![person("p1", "g1", true), person("p2", "g2", false), person("p3", "g3", true)] },
    );
    // Before the period: i0 and its offer to p1 (accepted in the period).
    s.reported(minute(5), "i0", "c1", "g1");
    s.offer(minute(5), "o0", "i0", "p1");
    // One millisecond before the period, and at its very start.
    s.reported(Millis(minute(10).0 - 1), "i8", "c1", "g1");
    s.reported(minute(10), "i9", "c1", "g2");
    s.assigned(minute(12), "o0", "i0", "p1");
    s.at(minute(14), EventKind::AgentStatusChanged { agent: AgentId::new("p2"), status: AgentStatus::Available });
    s.reported(minute(15), "i1", "c1", "g2");
    s.offer(minute(15), "o1", "i1", "p2");
    s.offer(minute(15), "o2", "i1", "p3");
    s.at(
        minute(16),
        EventKind::OfferDeclined {
            offer: OfferId::new("o2"),
            incident: IncidentId::new("i1"),
            agent: AgentId::new("p3"),
            reason: "too far".to_string(),
        },
    );
    s.assigned(minute(17), "o1", "i1", "p2");
    s.staffed(minute(17), "i1");
    s.arrived(minute(18), "i0", "p1");
    s.arrived(minute(20), "i1", "p2");
    // Outside c1: p3 serves i11 in g3.
    s.reported(minute(20), "i11", "c2", "g3");
    s.offer(minute(21), "o7", "i11", "p3");
    s.assigned(minute(22), "o7", "i11", "p3");
    s.staffed(minute(22), "i11");
    s.reported(minute(25), "i2", "c1", "g1");
    s.offer(minute(25), "o3", "i2", "p3");
    s.at(
        minute(27),
        EventKind::OfferTimedOut { offer: OfferId::new("o3"), incident: IncidentId::new("i2"), agent: AgentId::new("p3") },
    );
    s.at(
        minute(30),
        EventKind::AssignmentCompleted {
            incident: IncidentId::new("i1"),
            agent: AgentId::new("p2"),
            feedback: "done".to_string(),
            photo_refs: Vec::new(),
        },
    );
    s.field_report(minute(31), "i3", "p2", "c1", "g2");
    s.at(
        minute(33),
        EventKind::ReportAccepted {
            incident: IncidentId::new("i3"),
            priority: 2,
            headcount: 1,
            skills: BTreeSet::new(),
            scope: AreaLevel::Grid,
        },
    );
    s.field_report(minute(34), "i4", "p2", "c2", "g3");
    s.at(minute(34), EventKind::ReportRejected { incident: IncidentId::new("i4"), reason: "not ours".to_string() });
    s.field_report(minute(35), "i5", "p1", "c1", "g1");
    s.staffed(minute(36), "i3");
    s.at(minute(37), EventKind::ReportRejected { incident: IncidentId::new("i5"), reason: "no problem found".to_string() });
    s.field_report(minute(38), "i6", "p1", "c1", "g1");
    s.at(minute(39), EventKind::ReportMerged { incident: IncidentId::new("i6"), into: IncidentId::new("i2") });
    s.at(minute(40), EventKind::GridStaffingLow { grid: AreaId::new("g1"), available: 0, minimum: 1 });
    s.at(
        minute(45),
        EventKind::CallupIssued {
            callup: CallupId::new("cu1"),
            area: AreaId::new("c1"),
            roles: Vec::new(),
            reason: "storm".to_string(),
            deadline: minute(55),
            people: agents(&["p1", "p2", "p3"]),
            by_switch: false,
            activation: None,
        },
    );
    s.at(
        minute(46),
        EventKind::CallupIssued {
            callup: CallupId::new("cu2"),
            area: AreaId::new("c2"),
            roles: Vec::new(),
            reason: "storm".to_string(),
            deadline: minute(56),
            people: agents(&["p3"]),
            by_switch: false,
            activation: None,
        },
    );
    s.at(minute(47), EventKind::CheckedIn { callup: CallupId::new("cu1"), agent: AgentId::new("p3") });
    s.at(minute(48), EventKind::CheckedIn { callup: CallupId::new("cu2"), agent: AgentId::new("p3") });
    s.at(minute(50), EventKind::CheckedIn { callup: CallupId::new("cu1"), agent: AgentId::new("p2") });
    s.at(minute(50), EventKind::AgentStatusChanged { agent: AgentId::new("p2"), status: AgentStatus::OffDuty });
    s.at(minute(52), EventKind::GridStaffingRestored { grid: AreaId::new("g1"), available: 1 });
    s.at(minute(55), EventKind::CallupDeadlinePassed { callup: CallupId::new("cu1"), missing: agents(&["p1"]) });
    s.at(
        minute(60),
        EventKind::IncidentClosed { incident: IncidentId::new("i0"), feedback: "ok".to_string(), released: agents(&["p1"]) },
    );
    s.at(minute(65), EventKind::GridStaffingLow { grid: AreaId::new("g2"), available: 0, minimum: 1 });
    s.reported(minute(68), "i12", "c1", "g1");
    s.offer(minute(69), "o5", "i2", "p2");
    // The period's end is not in it.
    s.reported(minute(70), "i10", "c1", "g1");
    // After it: only i12's staffing (within the target of 5 min) still counts.
    s.at(
        minute(71),
        EventKind::OfferWithdrawn {
            offer: OfferId::new("o5"),
            incident: IncidentId::new("i2"),
            agent: AgentId::new("p2"),
            reason: WithdrawReason::Filled,
        },
    );
    s.staffed(minute(71), "i12");
    s.events
}

fn query(area: Option<&str>) -> ActivityQuery {
    ActivityQuery { from: minute(10), to: minute(70), area: area.map(AreaId::new), staffed_within_s: 300 }
}

fn person_row<'a>(report: &'a ActivityReport, id: &str) -> &'a PersonActivity {
    report.people.iter().find(|row| row.agent.as_str() == id).unwrap_or_else(|| panic!("{id} has a row"))
}

#[test]
fn people_in_a_community_are_counted_by_hand() {
    let events = script();
    let report = activity(query(Some("c1")), &events, minute(100));
    assert_eq!(report.people.iter().map(|row| row.agent.as_str()).collect::<Vec<_>>(), ["p1", "p2", "p3"]);

    let p1 = person_row(&report, "p1");
    assert_eq!(p1.name, "p1 name");
    // o0 was sent before the period, accepted in it after 7 min.
    assert_eq!((p1.offers, p1.accepted, p1.declined, p1.timed_out), (0, 1, 0, 0));
    assert_eq!(p1.median_accept_s(), Some(420.0));
    // Accepted at 12, arrived at 18.
    assert_eq!(p1.median_arrive_s(), Some(360.0));
    // i0 from 12 to its close at 60; on duty all period (10 to 70).
    assert_eq!(p1.on_assignment_ms, 48 * 60_000);
    assert_eq!(p1.on_duty_ms, 60 * 60_000);
    // i5 rejected, i6 merged.
    assert_eq!((p1.reports, p1.reports_accepted, p1.reports_merged, p1.reports_rejected), (2, 0, 1, 1));
    assert_eq!((p1.callups, p1.checked_in, p1.missed_callups), (1, 0, 1));
    assert_eq!(p1.median_check_in_s(), None);

    let p2 = person_row(&report, "p2");
    // o1 and o5 (o5 withdrawn after the period: not counted).
    assert_eq!((p2.offers, p2.accepted, p2.declined, p2.timed_out, p2.withdrawn), (2, 1, 0, 0, 0));
    assert_eq!(p2.accept_times_s, [120.0]);
    assert_eq!(p2.arrive_times_s, [180.0]);
    // i1 from 17 to 30; on duty from 14 to 50.
    assert_eq!(p2.on_assignment_ms, 13 * 60_000);
    assert_eq!(p2.on_duty_ms, 36 * 60_000);
    // i3 accepted; i4 lies in c2.
    assert_eq!((p2.reports, p2.reports_accepted, p2.reports_merged, p2.reports_rejected), (1, 1, 0, 0));
    assert_eq!((p2.callups, p2.checked_in, p2.missed_callups), (1, 1, 0));
    assert_eq!(p2.check_in_times_s, [300.0]);

    let p3 = person_row(&report, "p3");
    // o2 declined, o3 timed out; o7 and cu2 are c2's.
    assert_eq!((p3.offers, p3.accepted, p3.declined, p3.timed_out), (2, 0, 1, 1));
    assert_eq!(p3.declined_by_reason, BTreeMap::from([("too far".to_string(), 1)]));
    assert_eq!((p3.on_assignment_ms, p3.on_duty_ms), (0, 0), "i11 lies in c2, home is g3");
    assert_eq!((p3.callups, p3.checked_in), (1, 1));
    assert_eq!(p3.check_in_times_s, [120.0]);
}

#[test]
fn grids_and_communities_are_counted_by_hand() {
    let events = script();
    let report = activity(query(Some("c1")), &events, minute(100));
    let rows: Vec<(&str, u32, u32, u32, i64, i64)> = report
        .areas
        .iter()
        .map(|row| (row.area.as_str(), row.incidents, row.staffed_in_time, row.staffing_alerts, row.low_ms, row.longest_alert_ms))
        .collect();
    let min = 60_000;
    assert_eq!(
        rows,
        [
            // i9 (at the start), i1, i2, i3 (accepted at 33), i12; i8 is a
            // millisecond early, i10 at the end; staffed in time: i1 (2 min),
            // i3 (3 min), i12 (3 min, after the period). Alerts: g1 40-52, g2
            // 65 to the period's end.
            ("c1", 5, 3, 2, 17 * min, 12 * min),
            ("g1", 2, 1, 1, 12 * min, 12 * min),
            ("g2", 3, 2, 1, 5 * min, 5 * min),
        ]
    );
    assert_eq!(report.areas[0].name, "c1 name");
    assert_eq!(report.areas[0].staffed_share(), Some(0.6));
}

#[test]
fn a_grid_sees_only_its_own() {
    let events = script();
    let report = activity(query(Some("g2")), &events, minute(100));
    assert_eq!(report.areas.iter().map(|row| row.area.as_str()).collect::<Vec<_>>(), ["g2"], "no community row above the grid");
    // p1 served in g1 only, and c1's call-up is for the community above g2.
    assert!(report.people.iter().all(|row| row.agent.as_str() != "p1"));
    let p2 = person_row(&report, "p2");
    assert_eq!((p2.offers, p2.accepted, p2.reports, p2.callups), (1, 1, 1, 0), "o5 is for i2 in g1; cu1 covers c1");
    assert_eq!(p2.on_duty_ms, 36 * 60_000, "home g2");
}

#[test]
fn without_an_area_everyone_counts() {
    let events = script();
    let report = activity(query(None), &events, minute(100));
    let p3 = person_row(&report, "p3");
    assert_eq!((p3.offers, p3.accepted, p3.callups, p3.checked_in), (3, 1, 2, 2));
    // i11 from 22 until the period's end; on duty the whole period.
    assert_eq!(p3.on_assignment_ms, 48 * 60_000);
    assert_eq!(p3.on_duty_ms, 60 * 60_000);
    assert_eq!(person_row(&report, "p2").reports, 2);
    let areas: Vec<&str> = report.areas.iter().map(|row| row.area.as_str()).collect();
    assert_eq!(areas, ["c1", "c2", "g1", "g2", "g3"]);
}

#[test]
fn a_period_not_over_counts_running_time_to_now() {
    let events: Vec<Event> = script().into_iter().filter(|event| event.at <= minute(40)).collect();
    let report = activity(query(Some("c1")), &events, minute(40));
    // On duty from 10 (period start) to now (40); i0 from 12 to now.
    let p1 = person_row(&report, "p1");
    assert_eq!((p1.on_duty_ms, p1.on_assignment_ms), (30 * 60_000, 28 * 60_000));
    // g1 went low at 40 = now: raised, no time yet.
    let g1 = report.areas.iter().find(|row| row.area.as_str() == "g1").expect("g1");
    assert_eq!((g1.staffing_alerts, g1.low_ms), (1, 0));
}

#[test]
fn the_fold_stops_wanting_events_after_the_staffing_target() {
    let fold = ActivityFold::new(query(None));
    assert!(fold.wants(minute(74)));
    assert!(!fold.wants(minute(75)));
}

#[test]
fn the_median_is_the_lower_middle_value() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
    assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
}
