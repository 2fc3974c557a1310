//! The end of a live drill (at its end, on Ctrl-C, or when it failed):
//! the dispatcher is put back as the drill found it. Its simulated people
//! stop acting; its incidents still open are cancelled, which releases
//! whoever held them (plan tasks included); its plan activations end (their
//! call-ups are stood down); the areas it switched go back to the mode they
//! were found in, unless someone else switched them meanwhile; its people go
//! off duty. Then the dispatcher is read again and compared with what was
//! found.

use std::collections::BTreeSet;
use std::time::Duration;

use pingji_client::labels::mode_text;
use pingji_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::found::{self, Found};
use super::operator::Operator;
use super::ours::Ours;
use super::person::Control;
use crate::report::plural;

/// The reason recorded on everything the drill ends.
const DRILL_OVER: &str = "the drill is over";
/// How long the drill's people may take to show off duty.
const SIGN_OFF_WITHIN: Duration = Duration::from_secs(15);
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The areas the drill switched: the mode each was in when found, and the
/// mode the drill last set. Kept by the timeline's switches, read here.
pub(crate) type Switched = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, (i32, i32)>>>;

/// What the end of a drill works with.
pub(crate) struct Leaving<'a> {
    pub(crate) operator: &'a Operator,
    pub(crate) ours: &'a Ours,
    pub(crate) switched: &'a Switched,
    pub(crate) found: &'a Found,
    /// The sessions the drill runs, by person.
    pub(crate) controls: &'a std::collections::BTreeMap<String, mpsc::Sender<Control>>,
    /// Everyone on the drill's roster.
    pub(crate) drill_people: &'a BTreeSet<String>,
    /// How many of them the drill added to the roster.
    pub(crate) new_people: usize,
}

/// Puts the dispatcher back; returns what was done and, last, whether the
/// dispatcher is as found (or how it is not), one line each. Never fails:
/// what could not be done is a line.
pub(crate) async fn leave(leaving: &Leaving<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    for control in leaving.controls.values() {
        let _ = control.send(Control::Stand).await;
    }
    // Its incidents first, so that none is offered to anyone while the
    // rest is undone.
    if let Err(error) = cancel_incidents(leaving, &mut lines).await {
        lines.push(format!("could not cancel the drill's incidents: {error:#}"));
    }
    if let Err(error) = end_activations(leaving, &mut lines).await {
        lines.push(format!("could not end the drill's plan activations: {error:#}"));
    }
    if let Err(error) = switch_back(leaving, &mut lines).await {
        lines.push(format!("could not switch the drill's areas back: {error:#}"));
    }
    if let Err(error) = sign_off(leaving, &mut lines).await {
        lines.push(format!("could not sign the drill's people off: {error:#}"));
    }
    match found::survey(every_shard(leaving.operator)).await {
        Ok(after) => {
            let differences = found::differences(leaving.found, &after, leaving.drill_people);
            let kept = if leaving.new_people > 0 {
                format!(
                    " and the {} the drill added to the roster, off duty (people cannot be removed)",
                    plural(leaving.new_people, "person", "people")
                )
            } else {
                String::new()
            };
            if differences.is_empty() {
                lines.push(format!("the dispatcher is as the drill found it, apart from the journal's history{kept}"));
            } else {
                // Someone else's changes during the drill count too: the
                // drill cannot tell them from its own leftovers.
                lines.push(format!(
                    "the dispatcher is not as the drill found it (changes others made meanwhile count too): {}",
                    differences.join("; ")
                ));
            }
        }
        Err(error) => lines.push(format!("could not read the dispatcher to compare it with what was found: {error:#}")),
    }
    lines
}

fn every_shard(operator: &Operator) -> Vec<Operator> {
    operator.every_shard().unwrap_or_else(|_| vec![operator.clone()])
}

/// Ends the drill's plan activations still open, each at its shard.
async fn end_activations(leaving: &Leaving<'_>, lines: &mut Vec<String>) -> anyhow::Result<()> {
    let ours = leaving.ours.activations();
    if ours.is_empty() {
        return Ok(());
    }
    let mut ended = Vec::new();
    for mut shard in every_shard(leaving.operator) {
        let listed = shard
            .call("listing plans", |mut commands| async move { commands.list_plans(pb::ListPlansRequest {}).await })
            .await?
            .into_inner();
        let open =
            listed.activations.into_iter().filter(|activation| activation.ended_at_ms == 0 && ours.contains(&activation.id));
        for activation in open {
            let request = pb::DeactivatePlanRequest { activation_id: activation.id.clone(), reason: DRILL_OVER.to_string() };
            shard
                .call("ending a plan activation", |mut commands| {
                    let request = request.clone();
                    async move { commands.deactivate_plan(request).await }
                })
                .await?;
            ended.push(activation.id);
        }
    }
    if !ended.is_empty() {
        lines.push(format!(
            "ended the drill's {}: {}",
            plural(ended.len(), "plan activation", "plan activations"),
            ended.join(", ")
        ));
    }
    Ok(())
}

/// The modes of the areas not in normal mode now, every shard.
async fn modes_now(operator: &Operator) -> anyhow::Result<std::collections::BTreeMap<String, i32>> {
    let mut modes = std::collections::BTreeMap::new();
    for mut shard in every_shard(operator) {
        let areas = shard
            .call("listing areas", |mut commands| async move { commands.list_areas(pb::ListAreasRequest::default()).await })
            .await?
            .into_inner();
        for area in areas.areas {
            if area.mode != pb::Mode::Normal as i32 && area.mode != pb::Mode::Unspecified as i32 {
                modes.insert(area.id, area.mode);
            }
        }
    }
    Ok(modes)
}

/// Switches each area the drill switched back to the mode it was found in,
/// unless someone else has switched it since.
async fn switch_back(leaving: &Leaving<'_>, lines: &mut Vec<String>) -> anyhow::Result<()> {
    let switched = leaving.switched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if switched.is_empty() {
        return Ok(());
    }
    let now = modes_now(leaving.operator).await?;
    let mut operator = leaving.operator.clone();
    for (area, (found_mode, drill_mode)) in switched {
        let current = now.get(&area).copied().unwrap_or(pb::Mode::Normal as i32);
        if current == found_mode {
            continue;
        }
        if current != drill_mode {
            lines.push(format!(
                "left {area} in {} mode: someone else switched it during the drill (it was found in {})",
                mode_text(current),
                mode_text(found_mode)
            ));
            continue;
        }
        let request = pb::SetModeRequest {
            area_id: area.clone(),
            mode: found_mode,
            reason: format!("{DRILL_OVER}: back to the mode it was found in"),
        };
        operator
            .call("switching back", |mut commands| {
                let request = request.clone();
                async move { commands.set_mode(request).await }
            })
            .await?;
        lines.push(format!("switched {area} back to {} mode", mode_text(found_mode)));
    }
    Ok(())
}

/// Cancels the drill's incidents still open, its plans' tasks among them,
/// releasing whoever holds them; names any incident that is not the drill's
/// and is held by one of its people (which its people never accept).
async fn cancel_incidents(leaving: &Leaving<'_>, lines: &mut Vec<String>) -> anyhow::Result<()> {
    let mut cancelled = Vec::new();
    let mut held_by_drill_people = Vec::new();
    for mut shard in every_shard(leaving.operator) {
        for incident in shard.open_incidents().await? {
            if leaving.ours.is_ours(&incident.id) != Some(true) {
                // Someone else's: a drill person must not be holding it.
                let held: Vec<&str> = incident
                    .assignments
                    .iter()
                    .filter(|assignment| assignment.completed_at_ms == 0)
                    .map(|assignment| assignment.agent_id.as_str())
                    .filter(|agent| leaving.drill_people.contains(*agent))
                    .collect();
                if !held.is_empty() {
                    held_by_drill_people.push(format!("{} (by {})", incident.id, held.join(", ")));
                }
                continue;
            }
            let request = pb::CancelIncidentRequest { id: incident.id.clone(), reason: DRILL_OVER.to_string() };
            let result = shard
                .call("cancelling", |mut commands| {
                    let request = request.clone();
                    async move {
                        match commands.cancel_incident(request).await {
                            // Ended meanwhile (the last person completed it).
                            Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
                            other => other.map(|_| ()),
                        }
                    }
                })
                .await;
            match result {
                Ok(()) => cancelled.push(incident.id),
                Err(error) => lines.push(format!("could not cancel {}: {error:#}", incident.id)),
            }
        }
    }
    if !cancelled.is_empty() {
        lines.push(format!(
            "cancelled the drill's {} still open, releasing whoever held them: {}",
            plural(cancelled.len(), "incident", "incidents"),
            found_names(&cancelled)
        ));
    }
    if !held_by_drill_people.is_empty() {
        lines.push(format!(
            "{} that {} not the drill's {} held by the drill's people, who cannot take part any more: {}; cancel or \
             re-report {}",
            plural(held_by_drill_people.len(), "incident", "incidents"),
            if held_by_drill_people.len() == 1 { "is" } else { "are" },
            if held_by_drill_people.len() == 1 { "is" } else { "are" },
            held_by_drill_people.join(", "),
            if held_by_drill_people.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(())
}

fn found_names(ids: &[String]) -> String {
    const NAMED: usize = 6;
    let shown = ids.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > NAMED { format!("{shown} and {} more", ids.len() - NAMED) } else { shown }
}

/// Every person the drill connected goes off duty; waits until the
/// dispatcher shows it (the sessions close after).
async fn sign_off(leaving: &Leaving<'_>, lines: &mut Vec<String>) -> anyhow::Result<()> {
    if leaving.controls.is_empty() {
        return Ok(());
    }
    for control in leaving.controls.values() {
        let _ = control.send(Control::SignOff).await;
    }
    let deadline = Instant::now() + SIGN_OFF_WITHIN;
    loop {
        let still_on: Vec<String> = on_duty(leaving).await?;
        if still_on.is_empty() {
            lines.push(format!(
                "signed off the drill's {}: off duty, sessions closed",
                plural(leaving.controls.len(), "connected person", "connected people")
            ));
            return Ok(());
        }
        if Instant::now() >= deadline {
            lines.push(format!(
                "{} of the drill's people did not go off duty within {} s: {}",
                still_on.len(),
                SIGN_OFF_WITHIN.as_secs(),
                found_names(&still_on)
            ));
            return Ok(());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The people the drill connected who are not off duty yet.
async fn on_duty(leaving: &Leaving<'_>) -> anyhow::Result<Vec<String>> {
    let mut still_on = Vec::new();
    for mut shard in every_shard(leaving.operator) {
        still_on.extend(
            shard
                .people()
                .await?
                .into_iter()
                .filter(|agent| agent.status != pb::AgentStatus::OffDuty as i32)
                .filter_map(|agent| agent.spec.map(|spec| spec.id))
                .filter(|id| leaving.controls.contains_key(id)),
        );
    }
    Ok(still_on)
}
