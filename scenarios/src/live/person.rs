//! One simulated person on a real session: answers offers, travels, arrives
//! and completes as the drill's behaviour says, checks in to call-ups, and
//! takes only the drill's incidents (someone's real one is declined at once:
//! a simulated person must never hold real work).

use std::time::Duration;

use pingji_engine::roster::TravelMode;
use pingji_engine::spatial::Position;
use pingji_field_agent::{AgentClient, AgentEvent, IncidentId, Location, OfferId};
use pingji_proto::v1 as pb;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ours::Ours;
use crate::drill::Behaviour;
use crate::sim::triangular;

/// What a person's answer to an incident that is not the drill's says.
pub(crate) const NOT_A_REAL_RESPONDER: &str = "a drill's simulated person: not for real incidents";
/// What a person's answer says once the drill is over.
const DRILL_OVER: &str = "the drill is over";
/// How long a person waits to learn whether an offered incident is the
/// drill's (its report may reach the event loop after the offer reaches
/// the person) before declining it as someone else's.
const LEARN_WITHIN: Duration = Duration::from_secs(5);
const LEARN_EVERY: Duration = Duration::from_millis(250);
/// How long a person takes to set off once assigned, in drill seconds.
const GETTING_READY_S: f64 = 60.0;
/// How often a travelling person reports where they are, in drill seconds
/// (and at most once a real second), so that the map shows them moving.
const REPORT_WHILE_TRAVELLING_S: f64 = 10.0;

/// What the run tells a person.
pub(crate) enum Control {
    /// The drill's timeline sends them off duty.
    OffDuty,
    /// The drill's timeline has them press 求助, at a place or where they are.
    Help { at: Option<Location>, text: String },
    /// The drill is over: act no more, decline every offer at once.
    Stand,
    /// Go off duty (they hold nothing by now).
    SignOff,
    /// Close the session.
    Stop,
}

enum Step {
    /// Say where they are again, as a person's app does every location
    /// interval the dispatcher asks for, in drill time: a dispatcher whose
    /// clock runs at the drill's speed counts a position stale after its
    /// policy's drill minutes, not after real ones.
    Report,
    CheckIn {
        callup: String,
    },
    /// 报平安 on the assignment, at four fifths of the interval (the
    /// dispatcher tells the interval with each due time).
    SafetyCheckIn,
    Answer {
        offer: OfferId,
        incident: IncidentId,
        accept: bool,
        reason: String,
        asked_since: Instant,
    },
    /// On the way: where they set off from, where to, and when they set
    /// off and arrive.
    Travel {
        incident: IncidentId,
        from: Position,
        to: Position,
        departs: Instant,
        arrives: Instant,
    },
    Arrive {
        incident: IncidentId,
        at: Position,
    },
    Complete {
        incident: IncidentId,
    },
}

/// One simulated person on a real session.
pub(crate) struct Person {
    pub(crate) client: AgentClient,
    pub(crate) behaviour: Behaviour,
    pub(crate) travel_mode: TravelMode,
    pub(crate) at: Position,
    pub(crate) scale: f64,
    pub(crate) rng: StdRng,
    pub(crate) ours: Ours,
    pending: Vec<(Instant, Step)>,
    standing: bool,
    /// How often to say where they are, in drill time (zero: never).
    report_interval: Duration,
}

impl Person {
    pub(crate) fn new(
        client: AgentClient,
        behaviour: Behaviour,
        travel_mode: TravelMode,
        at: Position,
        scale: f64,
        rng: StdRng,
        ours: Ours,
    ) -> Person {
        Person {
            client,
            behaviour,
            travel_mode,
            at,
            scale,
            rng,
            ours,
            pending: Vec::new(),
            standing: false,
            report_interval: Duration::ZERO,
        }
    }

    fn later(&self, drill_seconds: f64) -> Instant {
        Instant::now() + Duration::from_secs_f64((drill_seconds / self.scale).max(0.0))
    }

    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<AgentEvent>, mut control: mpsc::Receiver<Control>) {
        let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
        loop {
            let next = self.pending.iter().map(|(at, _)| *at).min();
            tokio::select! {
                event = events.recv() => match event {
                    Some(AgentEvent::Stopped { .. }) | None => break,
                    Some(event) => self.on_event(event),
                },
                command = control.recv() => match command {
                    Some(Control::OffDuty) => {
                        let _ = self.client.set_status(pb::AgentStatus::OffDuty);
                    }
                    Some(Control::Help { at, text }) => {
                        let here = at.unwrap_or(Location::new(self.at.lon, self.at.lat));
                        let _ = self.client.help(Some(here), &text);
                    }
                    Some(Control::Stand) => {
                        self.standing = true;
                        self.pending.clear();
                    }
                    Some(Control::SignOff) => {
                        self.standing = true;
                        self.pending.clear();
                        let _ = self.client.set_status(pb::AgentStatus::OffDuty);
                    }
                    Some(Control::Stop) | None => break,
                },
                () = async { if let Some(at) = next { tokio::time::sleep_until(at).await } else { std::future::pending().await } } => {
                    self.fire_due();
                }
            }
        }
        self.client.close().await;
    }

    /// Reports again every `interval` (drill time) from now on.
    fn report_every(&mut self, interval: Duration) {
        self.pending.retain(|(_, step)| !matches!(step, Step::Report));
        self.report_interval = interval;
        if !interval.is_zero() && !self.standing {
            self.pending.push((self.later(interval.as_secs_f64()), Step::Report));
        }
    }

    fn on_event(&mut self, event: AgentEvent) {
        if let AgentEvent::Welcome(welcome) = &event {
            self.report_every(welcome.location_interval);
        }
        if let AgentEvent::ModeChanged { location_interval, .. } = &event {
            self.report_every(*location_interval);
        }
        match event {
            // People the drill takes part with are on duty, whatever an
            // earlier run left them as (it signs its people off at the end).
            AgentEvent::Welcome(welcome)
                if !self.standing && welcome.current_incident.is_none() && welcome.status != pb::AgentStatus::Available =>
            {
                let _ = self.client.set_status(pb::AgentStatus::Available);
            }
            AgentEvent::Offer(offer) if self.standing => {
                let _ = self.client.decline(&offer.offer_id, DRILL_OVER);
            }
            AgentEvent::Offer(offer) if self.ours.is_ours(offer.incident_id.as_str()) == Some(false) => {
                let _ = self.client.decline(&offer.offer_id, NOT_A_REAL_RESPONDER);
            }
            AgentEvent::Offer(offer) => {
                let roll = self.rng.random::<f64>();
                let delay = triangular(&mut self.rng, self.behaviour.decide_s);
                let (accept, reason) = if roll < self.behaviour.accept {
                    (true, String::new())
                } else if roll < self.behaviour.accept + self.behaviour.decline {
                    let reasons = &self.behaviour.decline_reasons;
                    (false, reasons[self.rng.random_range(0..reasons.len())].clone())
                } else {
                    return;
                };
                let answer = Step::Answer {
                    offer: offer.offer_id,
                    incident: offer.incident_id,
                    accept,
                    reason,
                    asked_since: Instant::now(),
                };
                self.pending.push((self.later(delay), answer));
            }
            AgentEvent::AssignmentConfirmed(offer) => {
                if self.standing || self.rng.random::<f64>() < self.behaviour.silent {
                    return;
                }
                let target = offer.location.map_or(self.at, |at| Position { lon: at.lon, lat: at.lat });
                let speed = match self.travel_mode {
                    TravelMode::Walk => self.behaviour.walk_mps,
                    TravelMode::Bike => self.behaviour.bike_mps,
                    TravelMode::Car => self.behaviour.car_mps,
                };
                let travel_s = GETTING_READY_S + self.at.distance_m(target) / speed;
                let (departs, arrives) = (self.later(GETTING_READY_S), self.later(travel_s));
                let travel = Step::Travel { incident: offer.incident_id.clone(), from: self.at, to: target, departs, arrives };
                self.pending.push((departs, travel));
                self.pending.push((arrives, Step::Arrive { incident: offer.incident_id, at: target }));
            }
            AgentEvent::AssignmentEnded { incident_id, .. } => {
                self.pending.retain(|(_, step)| match step {
                    Step::Travel { incident, .. } | Step::Arrive { incident, .. } | Step::Complete { incident } => {
                        incident != &incident_id
                    }
                    Step::SafetyCheckIn => false,
                    Step::Report | Step::Answer { .. } | Step::CheckIn { .. } => true,
                });
            }
            AgentEvent::CallUp { callup_id, .. } if !self.standing && self.rng.random::<f64>() < self.behaviour.check_in => {
                let delay = triangular(&mut self.rng, self.behaviour.check_in_s);
                self.pending.push((self.later(delay), Step::CheckIn { callup: callup_id }));
            }
            AgentEvent::SafetyCheckDue { due_ms, interval_s, .. } if !self.standing => {
                self.pending.retain(|(_, step)| !matches!(step, Step::SafetyCheckIn));
                if due_ms > 0 {
                    self.pending.push((self.later(f64::from(interval_s) * 0.8), Step::SafetyCheckIn));
                }
            }
            AgentEvent::StandDown { callup_id, .. } => {
                self.pending.retain(|(_, step)| !matches!(step, Step::CheckIn { callup } if callup == &callup_id));
            }
            AgentEvent::OfferWithdrawn { offer_id, .. } | AgentEvent::NoLongerNeeded { offer_id, .. } => {
                self.pending.retain(|(_, step)| !matches!(step, Step::Answer { offer, .. } if offer == &offer_id));
            }
            _ => {}
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|(at, _)| *at <= now);
        self.pending = later;
        for (_, step) in due {
            match step {
                Step::Report => {
                    let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
                    // At most once a real second, however fast the drill.
                    let every = (self.report_interval.as_secs_f64() / self.scale).max(1.0);
                    self.pending.push((now + Duration::from_secs_f64(every), Step::Report));
                }
                Step::CheckIn { callup } => {
                    let _ = self.client.check_in(&callup);
                }
                Step::SafetyCheckIn => {
                    let _ = self.client.safety_check_in();
                }
                Step::Answer { offer, incident, accept, reason, asked_since } => match self.ours.is_ours(incident.as_str()) {
                    Some(true) if accept => {
                        let _ = self.client.accept(&offer);
                    }
                    Some(true) => {
                        let _ = self.client.decline(&offer, &reason);
                    }
                    None if asked_since.elapsed() < LEARN_WITHIN => {
                        let again = Step::Answer { offer, incident, accept, reason, asked_since };
                        self.pending.push((now + LEARN_EVERY, again));
                    }
                    Some(false) | None => {
                        let _ = self.client.decline(&offer, NOT_A_REAL_RESPONDER);
                    }
                },
                Step::Travel { incident, from, to, departs, arrives } => {
                    if now >= arrives {
                        continue;
                    }
                    let travelled = (now - departs).as_secs_f64() / (arrives - departs).as_secs_f64().max(0.001);
                    self.at = Position {
                        lon: from.lon + (to.lon - from.lon) * travelled,
                        lat: from.lat + (to.lat - from.lat) * travelled,
                    };
                    let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
                    let every = Duration::from_secs_f64(REPORT_WHILE_TRAVELLING_S / self.scale).max(Duration::from_secs(1));
                    self.pending.push(((now + every).min(arrives), Step::Travel { incident, from, to, departs, arrives }));
                }
                Step::Arrive { incident, at } => {
                    self.at = at;
                    let _ = self.client.arrived(&incident);
                    let on_scene = triangular(&mut self.rng, self.behaviour.on_scene_s);
                    self.pending.push((self.later(on_scene), Step::Complete { incident }));
                }
                Step::Complete { incident } => {
                    let _ = self.client.completed(&incident, "handled on site");
                    let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
                }
            }
        }
    }
}
