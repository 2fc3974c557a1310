//! What a live drill finds on the dispatcher before it starts, why it would
//! not start there, and how the dispatcher it leaves differs from the one it
//! found.
//!
//! A live drill is real traffic on a real dispatcher: its mode switches are
//! real switches (people in the area are told, reserves are called up, plans
//! of that grade activate), its incidents are offered to whoever is
//! connected, and what it imports stays. So it starts only on a dispatcher
//! that nothing else is using, and says so when it is not (see
//! [`findings`]); `--go-ahead` runs it anyway, alongside what it found.

use std::collections::{BTreeMap, BTreeSet};

use pingji_client::labels::{grade_name, incident_status_name, mode_text};
use pingji_engine::plans::PlanSpec;
use pingji_engine::roster::AgentProfile;
use pingji_proto::v1 as pb;

use super::operator::Operator;
use crate::drill::{Drill, parse_mode};

/// How many ids a sentence names before "and N more".
const NAMED: usize = 6;

/// The state of the dispatcher (every shard) that a drill may disturb.
#[derive(Clone, Debug, Default)]
pub(crate) struct Found {
    /// Open incidents (not yet closed or cancelled), by id.
    pub(crate) incidents: BTreeMap<String, pb::Incident>,
    /// Areas set to a mode other than normal (their own setting), by id.
    pub(crate) modes: BTreeMap<String, i32>,
    /// Every area of the map, by id.
    pub(crate) areas: BTreeMap<String, pb::Area>,
    pub(crate) plans: BTreeMap<String, pb::Plan>,
    /// Plan activations still open, by id.
    pub(crate) activations: BTreeMap<String, pb::PlanActivation>,
    /// Call-ups not stood down, by id.
    pub(crate) callups: BTreeMap<String, pb::Callup>,
    /// Everyone on the roster, by id.
    pub(crate) people: BTreeMap<String, pb::Agent>,
}

/// Something found that a drill should not run alongside, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found: "2 open incidents (1 staffed, 1 waiting): inc-000001, inc-000002".
    pub found: String,
    /// What the drill would do to it or it to the drill.
    pub why: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} — {}", self.found, self.why)
    }
}

/// Reads the state from every shard (`operators`, one per shard).
pub(crate) async fn survey(operators: Vec<Operator>) -> anyhow::Result<Found> {
    let mut found = Found::default();
    for mut operator in operators {
        let areas = operator
            .call("listing areas", |mut commands| async move { commands.list_areas(pb::ListAreasRequest::default()).await })
            .await?
            .into_inner();
        for area in areas.areas {
            if area.mode != pb::Mode::Normal as i32 && area.mode != pb::Mode::Unspecified as i32 {
                found.modes.insert(area.id.clone(), area.mode);
            }
            found.areas.insert(area.id.clone(), area);
        }
        found.incidents.extend(operator.open_incidents().await?.into_iter().map(|incident| (incident.id.clone(), incident)));
        let plans = operator
            .call("listing plans", |mut commands| async move { commands.list_plans(pb::ListPlansRequest {}).await })
            .await?
            .into_inner();
        found.plans.extend(plans.plans.into_iter().map(|plan| (plan.id.clone(), plan)));
        found.activations.extend(
            plans
                .activations
                .into_iter()
                .filter(|activation| activation.ended_at_ms == 0)
                .map(|activation| (activation.id.clone(), activation)),
        );
        let callups = operator
            .call("listing call-ups", |mut commands| async move {
                commands.callup_status(pb::CallupStatusRequest { area_id: String::new(), open_only: true }).await
            })
            .await?
            .into_inner();
        found.callups.extend(callups.callups.into_iter().map(|callup| (callup.id.clone(), callup)));
        let people = operator.people().await?;
        found.people.extend(people.into_iter().filter_map(|agent| Some((agent.spec.as_ref()?.id.clone(), agent))));
    }
    Ok(found)
}

/// "a, b, c and 3 more".
fn named(ids: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.as_ref().to_string()).collect();
    let shown = ids.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > NAMED { format!("{shown} and {} more", ids.len() - NAMED) } else { shown }
}

fn count(count: usize, one: &str, many: &str) -> String {
    crate::report::plural(count, one, many)
}

impl Found {
    /// The open incidents by status: "5 staffed, 6 waiting, 1 offered".
    fn incidents_by_status(&self) -> String {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for incident in self.incidents.values() {
            *by_status.entry(incident_status_name(incident.status)).or_default() += 1;
        }
        by_status.iter().map(|(status, count)| format!("{count} {status}")).collect::<Vec<_>>().join(", ")
    }

    fn connected(&self) -> impl Iterator<Item = &String> {
        self.people.iter().filter(|(_, agent)| agent.connected).map(|(id, _)| id)
    }

    /// What was found, one line each, whether or not it stops the drill.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(if self.incidents.is_empty() {
            "open incidents: none".to_string()
        } else {
            format!("open incidents: {} ({}): {}", self.incidents.len(), self.incidents_by_status(), named(self.incidents.keys()))
        });
        lines.push(if self.modes.is_empty() {
            "areas in an emergency mode: none, every area is in normal mode".to_string()
        } else {
            let modes: Vec<String> = self.modes.iter().map(|(area, mode)| format!("{area} in {}", mode_text(*mode))).collect();
            format!("areas in an emergency mode: {}", named(modes))
        });
        lines.push(if self.activations.is_empty() {
            "plan activations open: none".to_string()
        } else {
            let open: Vec<String> =
                self.activations.values().map(|activation| format!("{} on {}", activation.plan_id, activation.area_id)).collect();
            format!("plan activations open: {}", named(open))
        });
        lines.push(if self.callups.is_empty() {
            "call-ups open: none".to_string()
        } else {
            let open: Vec<String> = self.callups.values().map(|callup| format!("{} in {}", callup.id, callup.area_id)).collect();
            format!("call-ups open: {}", named(open))
        });
        let connected: Vec<&String> = self.connected().collect();
        lines.push(format!(
            "people: {} on the roster, {}{}",
            self.people.len(),
            count(connected.len(), "connected", "connected"),
            if connected.is_empty() { String::new() } else { format!(" ({})", named(connected)) }
        ));
        lines.push(if self.plans.is_empty() {
            "plans: none".to_string()
        } else {
            let plans: Vec<String> = self
                .plans
                .values()
                .map(|plan| {
                    let auto = if plan.auto_activate { ", activates by itself" } else { "" };
                    format!("{} (grade {}{auto})", plan.id, grade_name(plan.grade))
                })
                .collect();
            format!("plans: {}", plans.join(", "))
        });
        lines
    }
}

/// What the drill brings and does, as far as the dispatcher is concerned.
pub(crate) struct DrillFootprint<'a> {
    pub(crate) drill: &'a Drill,
    pub(crate) people: &'a [AgentProfile],
    pub(crate) plans: Vec<PlanSpec>,
}

impl DrillFootprint<'_> {
    /// The areas the timeline switches, with the grades it switches them to.
    pub(crate) fn switches(&self) -> Vec<(String, i32)> {
        self.drill
            .timeline
            .iter()
            .filter_map(|(_, entry)| entry.mode.as_ref())
            .map(|mode| {
                let grade = parse_mode(&mode.grade).map_or(pb::Mode::Normal, pingji_dispatcher::convert::mode_to_pb);
                (mode.area.clone(), grade as i32)
            })
            .collect()
    }

    /// The (plan, area) pairs the timeline activates by hand.
    pub(crate) fn activations(&self) -> BTreeSet<(String, String)> {
        self.drill
            .timeline
            .iter()
            .filter_map(|(_, entry)| entry.plan.as_ref())
            .filter_map(|plan| Some((plan.activate.clone()?, plan.area.clone())))
            .collect()
    }

    fn person_is(&self, agent: &pb::Agent, profile: &AgentProfile) -> bool {
        agent.spec.as_ref().is_some_and(|spec| {
            spec.name == profile.name
                && spec.role == pingji_dispatcher::convert::role_to_pb_value(profile.role)
                && profile.home_area.as_ref().is_some_and(|home| home.as_str() == spec.home_area_id)
        })
    }

    /// The drill's people the dispatcher already has as the same person (an
    /// earlier run of this drill), and ids it has for someone else.
    pub(crate) fn known_people(&self, found: &Found) -> (BTreeSet<String>, Vec<String>) {
        let mut same = BTreeSet::new();
        let mut other = Vec::new();
        for profile in self.people {
            if let Some(agent) = found.people.get(profile.id.as_str()) {
                if self.person_is(agent, profile) {
                    same.insert(profile.id.to_string());
                } else {
                    other.push(profile.id.to_string());
                }
            }
        }
        (same, other)
    }

    /// The drill's areas the dispatcher lacks or has otherwise (name, level
    /// or parent; boundaries are not compared).
    pub(crate) fn map_differences(&self, found: &Found) -> (Vec<String>, Vec<String>) {
        let mut missing = Vec::new();
        let mut different = Vec::new();
        for spec in &self.drill.map.areas {
            match found.areas.get(spec.id.as_str()) {
                None => missing.push(spec.id.to_string()),
                Some(area) => {
                    let parent = spec.parent.as_ref().map_or("", |parent| parent.as_str());
                    if area.name != spec.name
                        || area.level != pingji_dispatcher::convert::level_to_pb(spec.level) as i32
                        || area.parent_id != parent
                    {
                        different.push(spec.id.to_string());
                    }
                }
            }
        }
        (missing, different)
    }

    /// The drill's plans the dispatcher does not have as they are.
    pub(crate) fn plans_to_import(&self, found: &Found) -> Vec<&PlanSpec> {
        self.plans
            .iter()
            .filter(|plan| found.plans.get(plan.id.as_str()) != Some(&pingji_dispatcher::convert::plan_to_pb(plan)))
            .collect()
    }
}

/// Why the drill should not run on the dispatcher as found; empty when
/// nothing else is using it.
pub(crate) fn findings(found: &Found, footprint: &DrillFootprint<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !found.incidents.is_empty() {
        findings.push(Finding {
            found: format!(
                "{} ({}): {}",
                count(found.incidents.len(), "open incident", "open incidents"),
                found.incidents_by_status(),
                named(found.incidents.keys())
            ),
            why: "someone's work in progress, or what an earlier drill left: the drill's switches would change how they \
                  are dispatched, people held by them cannot take the drill's incidents, and the drill's people would be \
                  offered them (and decline)"
                .to_string(),
        });
    }
    if !found.modes.is_empty() {
        let modes: Vec<String> = found.modes.iter().map(|(area, mode)| format!("{area} in {}", mode_text(*mode))).collect();
        findings.push(Finding {
            found: format!("{} not in normal mode: {}", count(found.modes.len(), "area", "areas"), named(modes)),
            why: "the drill's incidents would be dispatched under a real emergency, and its own switches would change it"
                .to_string(),
        });
    }
    if !found.activations.is_empty() {
        let open: Vec<String> =
            found.activations.values().map(|activation| format!("{} on {}", activation.plan_id, activation.area_id)).collect();
        findings.push(Finding {
            found: format!("{} open: {}", count(open.len(), "plan activation", "plan activations"), named(open)),
            why: "its tasks and call-up are under way".to_string(),
        });
    }
    if !found.callups.is_empty() {
        let open: Vec<String> = found.callups.values().map(|callup| format!("{} in {}", callup.id, callup.area_id)).collect();
        findings.push(Finding {
            found: format!("{} not stood down: {}", count(open.len(), "call-up", "call-ups"), named(open)),
            why: "reserves are being mobilised; the drill's switches would call up and stand down people too".to_string(),
        });
    }
    let drill_ids: BTreeSet<&str> = footprint.people.iter().map(|profile| profile.id.as_str()).collect();
    let (others, drills): (Vec<&String>, Vec<&String>) = found.connected().partition(|id| !drill_ids.contains(id.as_str()));
    if !others.is_empty() {
        findings.push(Finding {
            found: format!(
                "{} connected who {} not the drill's: {}",
                count(others.len(), "person", "people"),
                if others.len() == 1 { "is" } else { "are" },
                named(others)
            ),
            why: "they would be offered the drill's incidents and told of its mode switches and call-ups as if they were real"
                .to_string(),
        });
    }
    if !drills.is_empty() {
        findings.push(Finding {
            found: format!("{} of the drill's people already connected: {}", drills.len(), named(drills)),
            why: "another drill, or field agents, are using them; the drill would take their sessions over".to_string(),
        });
    }
    let (_, taken) = footprint.known_people(found);
    if !taken.is_empty() {
        findings.push(Finding {
            found: format!("{} of the drill's people have ids of other people on the roster: {}", taken.len(), named(&taken)),
            why: "the drill would issue those people new tokens, ending their sessions".to_string(),
        });
    }
    let (missing, different) = footprint.map_differences(found);
    let map_differs = !missing.is_empty() || !different.is_empty();
    // A dispatcher without a map serves nobody yet: the drill brings its own.
    if !found.areas.is_empty() && map_differs {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing ({})", count(missing.len(), "area", "areas"), named(&missing)));
        }
        if !different.is_empty() {
            parts.push(format!("{} named or placed otherwise ({})", count(different.len(), "area", "areas"), named(&different)));
        }
        findings.push(Finding {
            found: format!("the dispatcher's map is not the drill's: {}", parts.join(", ")),
            why: "the drill would import its map over the dispatcher's, for good".to_string(),
        });
    }
    // Nor does importing plans into it change anything anyone relies on.
    let importing = footprint.plans_to_import(found);
    if !found.areas.is_empty() && !importing.is_empty() {
        let ids: Vec<String> = importing.iter().map(|plan| plan.id.to_string()).collect();
        let automatic: Vec<String> = importing
            .iter()
            .filter(|plan| plan.auto_activate)
            .map(|plan| format!("{} at grade {}", plan.id, grade_name(pingji_dispatcher::convert::mode_to_pb(plan.grade) as i32)))
            .collect();
        findings.push(Finding {
            found: format!(
                "the drill brings {} the dispatcher does not have as they are: {}",
                count(ids.len(), "plan", "plans"),
                named(&ids)
            ),
            why: format!(
                "importing them is for good (plans cannot be removed){}",
                if automatic.is_empty() {
                    String::new()
                } else {
                    format!(", and from then on a real switch activates {}", automatic.join(", "))
                }
            ),
        });
    }
    let own_plans: BTreeSet<&str> = footprint.plans.iter().map(|plan| plan.id.as_str()).collect();
    for (area, grade) in footprint.switches() {
        let activating: Vec<&pb::Plan> = found
            .plans
            .values()
            .filter(|plan| plan.auto_activate && plan.grade == grade && !own_plans.contains(plan.id.as_str()))
            .collect();
        if activating.is_empty() {
            continue;
        }
        let described: Vec<String> = activating
            .iter()
            .map(|plan| {
                let roles: Vec<&str> = plan.call_up.iter().map(|role| pingji_client::labels::role_key(*role)).collect();
                let callup = if roles.is_empty() { String::new() } else { format!("; calls up {}", roles.join(", ")) };
                format!("{} ({}{callup})", plan.id, count(plan.tasks.len(), "task", "tasks"))
            })
            .collect();
        findings.push(Finding {
            found: format!(
                "switching {area} to grade {} activates {} the drill does not bring: {}",
                grade_name(grade),
                if activating.len() == 1 { "a plan" } else { "plans" },
                described.join(", ")
            ),
            why: "its tasks would become the drill's incidents and its call-up would reach real reserves".to_string(),
        });
    }
    findings
}

/// How the dispatcher left differs from the one found, apart from the
/// drill's own people (`drill_people`) and the journal's history: open
/// incidents, modes, plan activations, call-ups, and each other person's
/// status, session and task. Empty when it is as found.
pub(crate) fn differences(before: &Found, after: &Found, drill_people: &BTreeSet<String>) -> Vec<String> {
    let mut differences = Vec::new();
    let opened: Vec<&String> = after.incidents.keys().filter(|id| !before.incidents.contains_key(*id)).collect();
    if !opened.is_empty() {
        differences.push(format!("{} open that were not: {}", count(opened.len(), "incident", "incidents"), named(opened)));
    }
    let ended: Vec<&String> = before.incidents.keys().filter(|id| !after.incidents.contains_key(*id)).collect();
    if !ended.is_empty() {
        differences.push(format!("{} ended meanwhile: {}", count(ended.len(), "incident", "incidents"), named(ended)));
    }
    for (id, incident) in &after.incidents {
        if let Some(earlier) = before.incidents.get(id)
            && (earlier.status != incident.status || holders(earlier) != holders(incident))
        {
            differences.push(format!(
                "{id} was {} (held by {}), is {} (held by {})",
                incident_status_name(earlier.status),
                holders_text(earlier),
                incident_status_name(incident.status),
                holders_text(incident)
            ));
        }
    }
    let areas: BTreeSet<&String> = before.modes.keys().chain(after.modes.keys()).collect();
    for area in areas {
        let was = before.modes.get(area).copied().unwrap_or(pb::Mode::Normal as i32);
        let is = after.modes.get(area).copied().unwrap_or(pb::Mode::Normal as i32);
        if was != is {
            differences.push(format!("{area} was in {} mode, is in {}", mode_text(was), mode_text(is)));
        }
    }
    let activations: BTreeSet<&String> = before.activations.keys().chain(after.activations.keys()).collect();
    for activation in activations {
        match (before.activations.contains_key(activation), after.activations.contains_key(activation)) {
            (true, false) => differences.push(format!("plan activation {activation} was open, has ended")),
            (false, true) => differences.push(format!("plan activation {activation} is open, was not")),
            _ => {}
        }
    }
    let callups: BTreeSet<&String> = before.callups.keys().chain(after.callups.keys()).collect();
    for callup in callups {
        match (before.callups.contains_key(callup), after.callups.contains_key(callup)) {
            (true, false) => differences.push(format!("call-up {callup} was open, is stood down")),
            (false, true) => differences.push(format!("call-up {callup} is open, was not")),
            _ => {}
        }
    }
    if before.plans != after.plans {
        let changed: Vec<&String> = after.plans.keys().filter(|id| before.plans.get(*id) != after.plans.get(*id)).collect();
        differences.push(format!("plans imported or changed: {}", named(changed)));
    }
    for (id, was) in &before.people {
        if drill_people.contains(id) {
            continue;
        }
        let Some(is) = after.people.get(id) else { continue };
        if (was.status, was.connected, &was.current_incident_id) != (is.status, is.connected, &is.current_incident_id) {
            differences.push(format!("{id} was {}, is {}", person_text(was), person_text(is)));
        }
    }
    differences
}

fn holders(incident: &pb::Incident) -> BTreeSet<&str> {
    incident
        .assignments
        .iter()
        .filter(|assignment| assignment.completed_at_ms == 0)
        .map(|assignment| assignment.agent_id.as_str())
        .collect()
}

fn holders_text(incident: &pb::Incident) -> String {
    let holders = holders(incident);
    if holders.is_empty() { "nobody".to_string() } else { named(holders) }
}

fn person_text(agent: &pb::Agent) -> String {
    let session = if agent.connected { "connected" } else { "not connected" };
    let task = if agent.current_incident_id.is_empty() { String::new() } else { format!(", on {}", agent.current_incident_id) };
    format!("{}, {session}{task}", pingji_client::labels::agent_status_name(agent.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_name_a_few_and_count_the_rest() {
        assert_eq!(named(["a", "b"]), "a, b");
        let many: Vec<String> = (1..=9).map(|n| format!("p{n}")).collect();
        assert_eq!(named(&many), "p1, p2, p3, p4, p5, p6 and 3 more");
    }
}
