//! Which incidents are the drill's: those it creates (ids of this run) and
//! the tasks of plan activations it causes (by its switches or its own
//! activations). Everything else on the dispatcher is someone's real work:
//! the drill's people decline it, the report leaves it out, and the end of
//! the drill leaves it alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use pingji_proto::v1 as pb;
use pingji_proto::v1::event::Body;

/// Shared by the event loop (which learns of incidents as they are
/// reported), the simulated people (who ask before they answer an offer)
/// and the end of the run. A sync lock, held only for a lookup or an
/// insert, never across an await.
#[derive(Clone)]
pub(crate) struct Ours {
    inner: Arc<RwLock<Known>>,
    /// Ids of incidents this run creates start with it.
    prefix: String,
    /// The drill's operator as events name it: "operator:NAME".
    actor: String,
    /// Areas the drill's timeline switches: an automatic plan activation by
    /// the drill's operator on one of them is the drill's.
    switched_areas: BTreeSet<String>,
    /// (plan, area) pairs the drill's timeline activates by hand.
    activated_plans: BTreeSet<(String, String)>,
}

#[derive(Default)]
struct Known {
    /// Incident id → the drill's (true) or not (false).
    incidents: BTreeMap<String, bool>,
    /// The drill's plan activations.
    activations: BTreeSet<String>,
}

impl Ours {
    pub(crate) fn new(
        prefix: String,
        actor: String,
        switched_areas: BTreeSet<String>,
        activated_plans: BTreeSet<(String, String)>,
    ) -> Ours {
        Ours { inner: Arc::new(RwLock::new(Known::default())), prefix, actor, switched_areas, activated_plans }
    }

    /// Records incidents open before the run: never the drill's.
    pub(crate) fn not_ours(&self, ids: impl IntoIterator<Item = String>) {
        let mut known = self.write();
        for id in ids {
            known.incidents.insert(id, false);
        }
    }

    /// Learns from one event of the run: plan activations the drill caused
    /// and every incident reported, the drill's or not.
    pub(crate) fn learn(&self, event: &pb::Event) {
        match &event.body {
            Some(Body::PlanActivated(activated)) if event.actor == self.actor => {
                let by_the_drill = if activated.automatic {
                    self.switched_areas.contains(&activated.area_id)
                } else {
                    self.activated_plans.contains(&(activated.plan_id.clone(), activated.area_id.clone()))
                };
                if by_the_drill {
                    self.write().activations.insert(activated.activation_id.clone());
                }
            }
            Some(Body::IncidentReported(reported)) => {
                let mut known = self.write();
                let ours =
                    reported.incident_id.starts_with(&self.prefix) || known.activations.contains(&reported.plan_activation_id);
                known.incidents.insert(reported.incident_id.clone(), ours);
            }
            _ => {}
        }
    }

    /// The drill's (`Some(true)`), someone else's (`Some(false)`), or not
    /// seen yet (its report may still be on its way to the event loop).
    pub(crate) fn is_ours(&self, incident: &str) -> Option<bool> {
        if incident.starts_with(&self.prefix) {
            return Some(true);
        }
        self.read().incidents.get(incident).copied()
    }

    /// The drill's plan activations so far.
    pub(crate) fn activations(&self) -> BTreeSet<String> {
        self.read().activations.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Known> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, body: Body) -> pb::Event {
        pb::Event { actor: actor.to_string(), body: Some(body), ..Default::default() }
    }

    fn reported(id: &str, activation: &str) -> Body {
        Body::IncidentReported(pb::event::IncidentReported {
            incident_id: id.to_string(),
            plan_activation_id: activation.to_string(),
            ..Default::default()
        })
    }

    fn activated(id: &str, plan: &str, area: &str, automatic: bool) -> Body {
        Body::PlanActivated(pb::event::PlanActivated {
            activation_id: id.to_string(),
            plan_id: plan.to_string(),
            area_id: area.to_string(),
            automatic,
            ..Default::default()
        })
    }

    #[test]
    fn the_drills_incidents_are_its_own_and_its_plans_tasks() {
        let ours = Ours::new(
            "drill-7-".to_string(),
            "operator:admin".to_string(),
            BTreeSet::from(["d1".to_string()]),
            BTreeSet::from([("fire-i".to_string(), "d2-s1-c1".to_string())]),
        );
        ours.not_ours(["inc-000001".to_string()]);
        // The drill's switch of d1 activates a plan: its tasks are the drill's.
        ours.learn(&event("operator:admin", activated("ph@d1-1", "public-health-iii", "d1", true)));
        ours.learn(&event("operator:admin", reported("inc-000002", "ph@d1-1")));
        // Someone else's activation on d1, and an automatic one on an area
        // the drill does not switch: not the drill's.
        ours.learn(&event("operator:li.na", activated("flood@d1-2", "flood-ii", "d1", true)));
        ours.learn(&event("operator:li.na", reported("inc-000003", "flood@d1-2")));
        ours.learn(&event("operator:admin", activated("flood@d2-1", "flood-ii", "d2", true)));
        ours.learn(&event("operator:admin", reported("inc-000004", "flood@d2-1")));
        // The drill's own activation by hand.
        ours.learn(&event("operator:admin", activated("fire@c1-1", "fire-i", "d2-s1-c1", false)));
        ours.learn(&event("operator:admin", reported("inc-000005", "fire@c1-1")));
        // An incident someone reports meanwhile.
        ours.learn(&event("operator:li.na", reported("inc-000006", "")));

        assert_eq!(ours.is_ours("drill-7-1"), Some(true));
        assert_eq!(ours.is_ours("inc-000001"), Some(false));
        assert_eq!(ours.is_ours("inc-000002"), Some(true));
        assert_eq!(ours.is_ours("inc-000003"), Some(false));
        assert_eq!(ours.is_ours("inc-000004"), Some(false));
        assert_eq!(ours.is_ours("inc-000005"), Some(true));
        assert_eq!(ours.is_ours("inc-000006"), Some(false));
        assert_eq!(ours.is_ours("inc-000007"), None, "not reported yet");
        assert_eq!(ours.activations(), BTreeSet::from(["ph@d1-1".to_string(), "fire@c1-1".to_string()]));
    }
}
