//! The senders: each takes a rung from the queue, checks that it is still
//! wanted and was not sent already (its idempotency key), keeps it as
//! "sending", asks the push channel or the gateway, retries with backoff
//! within the gateway's rate, keeps the outcome and journals it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::ladder::Job;
use super::push::{PushNotice, PushOutcome};
use super::shared::Shared as Notifier;
use super::store::{StepRecord, StepState, Subject, step_key};
use crate::posting::{Poster, Target};
use pingji_engine::engine::Command;
use pingji_engine::event::{DISPATCHER, NoticeChannel, NoticeOutcome, NoticeStep};
use pingji_engine::ids::{AgentId, CallupId, IncidentId};

/// Rungs waiting for a sender at most.
pub(super) const QUEUE: usize = 1024;

pub(super) async fn work(
    notifier: Arc<Notifier>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut posters: HashMap<String, Poster> = HashMap::new();
    loop {
        let job = {
            let mut receiver = receiver.lock().await;
            tokio::select! {
                job = receiver.recv() => job,
                _ = stop.changed() => None,
            }
        };
        let Some(job) = job else {
            return;
        };
        if !send(&notifier, &mut posters, job, &mut stop).await {
            return;
        }
    }
}

/// Sends one rung; false when stopping.
async fn send(
    notifier: &Arc<Notifier>,
    posters: &mut HashMap<String, Poster>,
    job: Job,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let subject = job.notice.subject.name();
    let step = job.index + 1;
    let key = step_key(&job.notice.agent, &subject, step);
    if !notifier.lock_open().contains_key(&job.notice.key()) {
        return true;
    }
    let record = StepRecord {
        key: key.clone(),
        agent: job.notice.agent.clone(),
        subject: job.notice.subject.clone(),
        channel: job.channel,
        step,
        state: StepState::Sending,
    };
    match read_step(notifier, &key).await {
        Some(Some(existing)) if existing.state != StepState::Sending => return true,
        Some(_) => {}
        None => return true,
    }
    let agent = AgentId::new(&job.notice.agent);
    let (outcome, detail) = match job.channel {
        NoticeChannel::Push => {
            let incident = match &job.notice.subject {
                Subject::Offer { incident, .. } => incident.clone(),
                Subject::Callup { .. } | Subject::Message { .. } => String::new(),
            };
            let notice = PushNotice {
                subject: subject.clone(),
                incident,
                text: job.notice.text.clone(),
                deadline_ms: job.notice.deadline_ms,
                category: job.notice.category.clone(),
            };
            match notifier.push.send(&agent, &notice).await {
                Ok(PushOutcome::Sent) => (NoticeOutcome::Sent, String::new()),
                Ok(PushOutcome::NoSubscription) => (NoticeOutcome::Skipped, "no push subscription".to_string()),
                Ok(PushOutcome::Gone) => (NoticeOutcome::Skipped, "the push subscription is gone".to_string()),
                Err(error) => (NoticeOutcome::Failed, format!("push: {error}")),
            }
        }
        NoticeChannel::Sms | NoticeChannel::Voice => {
            match through_gateway(notifier, posters, &job, &agent, &record, stop).await {
                Some(result) => result,
                None => return false,
            }
        }
    };
    let state = match outcome {
        NoticeOutcome::Sent => StepState::Sent,
        NoticeOutcome::Skipped => StepState::Skipped,
        _ => StepState::Failed,
    };
    // Journaled before the rung is kept as done: a kill in between sends it
    // again under the same key (the gateway dedupes) and journals it twice,
    // rather than losing its event for good.
    journal(notifier, &job.notice.subject, &agent, job.channel, step, outcome, detail).await;
    write_step(notifier, StepRecord { state, ..record }).await;
    true
}

/// Sends an SMS or a call; the outcome, or `None` when stopping.
async fn through_gateway(
    notifier: &Arc<Notifier>,
    posters: &mut HashMap<String, Poster>,
    job: &Job,
    agent: &AgentId,
    record: &StepRecord,
    stop: &mut watch::Receiver<bool>,
) -> Option<(NoticeOutcome, String)> {
    let gateway = match job.channel {
        NoticeChannel::Voice => notifier.config.voice.as_ref(),
        _ => notifier.config.sms.as_ref(),
    };
    let Some(gateway) = gateway else {
        return Some((NoticeOutcome::Skipped, format!("no {} gateway is configured", job.channel.name())));
    };
    let wanted = agent.clone();
    let phone = notifier
        .dispatcher
        .query(move |engine, _| engine.agent(&wanted).map(|record| record.profile.phone.clone()).unwrap_or_default())
        .await
        .unwrap_or_default();
    if phone.trim().is_empty() {
        return Some((NoticeOutcome::Skipped, "no phone number on the roster".to_string()));
    }
    if !person_may_have_another(notifier, agent.as_str()) {
        return Some((
            NoticeOutcome::Skipped,
            format!("over {} SMS and calls in an hour for this person", notifier.config.person_per_hour),
        ));
    }
    write_step(notifier, record.clone()).await;
    let request = gateway.request(job.channel, &phone, &job.notice.text, &record.key, agent.as_str());
    drop(phone);
    let poster = match posters.get_mut(&request.url) {
        Some(poster) => poster,
        None => match Target::parse(&request.url) {
            Ok(target) => posters.entry(request.url.clone()).or_insert_with(|| Poster::new(target)),
            Err(reason) => return Some((NoticeOutcome::Failed, reason)),
        },
    };
    let gateway_name = gateway.name();
    let mut failures = 0u32;
    loop {
        let wait = gateway_slot(notifier, &gateway_name);
        if !wait.is_zero() && pause(stop, wait).await {
            return None;
        }
        let posted = tokio::select! {
            posted = poster.post(&request.headers, request.body.clone(), notifier.config.timeout) => posted,
            _ = stop.changed() => return None,
        };
        let error = match posted {
            Ok(_) => {
                if failures > 0 {
                    info!(gateway = %gateway_name, key = %record.key, failures, "notify gateway taking requests again");
                }
                return Some((NoticeOutcome::Sent, String::new()));
            }
            Err(error) => error,
        };
        failures += 1;
        debug!(gateway = %gateway_name, key = %record.key, failures, %error, "notify gateway request failed");
        if failures >= notifier.config.max_attempts {
            warn!(gateway = %gateway_name, key = %record.key, failures, %error, "notify step given up on");
            return Some((NoticeOutcome::Failed, format!("{gateway_name}: {error} ({failures} attempts)")));
        }
        if pause(stop, notifier.config.backoff(failures)).await {
            return None;
        }
    }
}

/// Whether the person may have one more SMS or call this hour; counts it.
fn person_may_have_another(notifier: &Notifier, agent: &str) -> bool {
    let now = Instant::now();
    let mut counts = notifier.per_person.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sent = counts.entry(agent.to_string()).or_default();
    while sent.front().is_some_and(|at| now.duration_since(*at) > Duration::from_secs(3600)) {
        sent.pop_front();
    }
    if sent.len() >= notifier.config.person_per_hour as usize {
        return false;
    }
    sent.push_back(now);
    true
}

/// How long to wait before the next request to a gateway, reserving it.
fn gateway_slot(notifier: &Notifier, gateway: &str) -> Duration {
    let now = Instant::now();
    let mut slots = notifier.gateway_slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slot = slots.entry(gateway.to_string()).or_insert(now);
    let at = (*slot).max(now);
    *slot = at + Duration::from_secs_f64(1.0 / f64::from(notifier.config.gateway_per_second.max(1)));
    at.duration_since(now)
}

/// The rung's record; `None` when the store cannot be read (the rung is
/// left for a restart rather than risk sending it twice).
async fn read_step(notifier: &Notifier, key: &str) -> Option<Option<StepRecord>> {
    let store = notifier.store.clone();
    let key = key.to_string();
    let read =
        tokio::task::spawn_blocking(move || store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).step(&key)).await;
    match read {
        Ok(Ok(record)) => Some(record),
        Ok(Err(error)) => {
            warn!(%error, "notify step cannot be read; not sent");
            None
        }
        Err(_) => None,
    }
}

async fn write_step(notifier: &Notifier, record: StepRecord) {
    let store = notifier.store.clone();
    let written =
        tokio::task::spawn_blocking(move || store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).put_step(&record))
            .await;
    if let Ok(Err(error)) = written {
        warn!(%error, "notify step not saved");
    }
}

/// Journals a rung's outcome as a `notified` event.
pub(super) async fn journal(
    notifier: &Notifier,
    subject: &Subject,
    agent: &AgentId,
    channel: NoticeChannel,
    step: u32,
    outcome: NoticeOutcome,
    detail: String,
) {
    let (incident, callup) = match subject {
        Subject::Offer { incident, .. } => (Some(IncidentId::new(incident)), None),
        Subject::Callup { callup } => (None, Some(CallupId::new(callup))),
        Subject::Message { .. } => (None, None),
    };
    let notice = NoticeStep { agent: agent.clone(), subject: subject.name(), incident, callup, channel, step, outcome, detail };
    let journaled = notifier.dispatcher.execute(Command::RecordNotice(notice), DISPATCHER.to_string(), |_, _| ()).await;
    if let Err(error) = journaled {
        warn!(agent = %agent, step, %error, "notify step not journaled");
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
