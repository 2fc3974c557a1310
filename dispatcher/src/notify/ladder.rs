//! The notifier's task: reads the journal from its durable cursor, starts
//! a notice for each person an offer, a call-up or a message goes to, ends
//! it when they answer or the subject ends, and hands each rung to the
//! senders when it is due. The cursor moves with the notices it made, in
//! one write, so a restart neither loses a notice nor starts one twice.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, warn};

use super::shared::Shared as Notifier;
use super::store::{Notice, StepState, Subject, notice_key, step_key};
use crate::convert;
use crate::runtime::DispatchError;
use pingji_engine::Rejection;
use pingji_engine::event::{Event, EventKind, NoticeChannel};
use pingji_engine::ids::{AgentId, CallupId, IncidentId};
use pingji_engine::policy::Mode;
use pingji_engine::roster::AgentStatus;

const PAGE: usize = 512;

/// The longest an SMS text may be: two concatenated SMS in UCS-2.
const MAX_TEXT_CHARS: usize = 134;

/// One rung to send.
pub(super) struct Job {
    pub notice: Notice,
    /// The rung's index in the grade's ladder (the event's `step` is one more).
    pub index: u32,
    pub channel: NoticeChannel,
}

/// Something that may start notices.
enum Opener {
    Offer { agent: AgentId, offer: String, incident: IncidentId, deadline_ms: i64 },
    Callup { callup: CallupId, people: Vec<AgentId> },
    Message { message: String, recipients: Vec<AgentId>, text: String },
}

/// A person to start a notice for, as the engine sees them now.
struct Candidate {
    agent: AgentId,
    subject: Subject,
    mode: Mode,
    connected: bool,
    off_duty: bool,
    text: String,
    /// When the offer or call-up runs out; 0 for none.
    deadline_ms: i64,
    /// An offer's incident category; empty otherwise.
    category: String,
}

type Schedule = BTreeSet<(i64, String, u32)>;

pub(super) async fn run(notifier: Arc<Notifier>, jobs: mpsc::Sender<Job>, mut stop: watch::Receiver<bool>) {
    let mut live = notifier.dispatcher.subscribe();
    let mut schedule = Schedule::new();
    let Some(mut next) = resume(&notifier, &jobs, &mut schedule).await else {
        return;
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let page = match notifier.dispatcher.read_events(next, PAGE).await {
            Ok(page) => page,
            Err(DispatchError::Rejected(Rejection::FailedPrecondition(_))) => {
                if let Ok((first_kept, _)) = notifier.dispatcher.kept_seqs().await {
                    warn!(from = next, to = first_kept, "notify events no longer kept; skipped");
                    next = first_kept.max(next + 1);
                }
                continue;
            }
            Err(error) => {
                debug!(%error, "notify cannot read the journal; trying again");
                if pause(&mut stop, std::time::Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            let events: Vec<Event> = page.iter().filter_map(|stored| convert::event_from_stored(stored).ok()).collect();
            let Some((started, closed)) = take_in(&notifier, &events, &mut schedule).await else {
                if pause(&mut stop, std::time::Duration::from_secs(1)).await {
                    return;
                }
                continue;
            };
            if !save(&notifier, last.seq + 1, started, closed).await {
                if pause(&mut stop, std::time::Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
            next = last.seq + 1;
        }
        if !dispatch_due(&notifier, &jobs, &mut schedule, next).await {
            return;
        }
        if full {
            continue;
        }
        let due_in = schedule.first().map(|(due, _, _)| notifier.clock.real_wait(*due - notifier.clock.now().0));
        if wait(&notifier, &mut live, &mut stop, next, due_in).await {
            return;
        }
    }
}

/// Loads the cursor and the open notices, and sends again any rung that
/// was handed out but not finished before a stop; the next seq to read.
async fn resume(notifier: &Arc<Notifier>, jobs: &mpsc::Sender<Job>, schedule: &mut Schedule) -> Option<u64> {
    loop {
        let store = notifier.store.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let cursor = store.cursor()?;
            let notices = store.notices()?;
            let mut unfinished = Vec::new();
            for notice in &notices {
                for index in 0..notice.next_step {
                    let key = step_key(&notice.agent, &notice.subject.name(), index + 1);
                    if store.step(&key)?.is_none_or(|record| record.state == StepState::Sending) {
                        unfinished.push((notice.clone(), index));
                    }
                }
            }
            Ok::<_, super::store::StoreError>((cursor, notices, unfinished))
        })
        .await;
        match loaded {
            Ok(Ok((cursor, notices, unfinished))) => {
                let next = match cursor {
                    Some(next) => next,
                    // The first start: from now on, not the whole history.
                    None => notifier.dispatcher.kept_seqs().await.map(|(_, last)| last + 1).ok()?,
                };
                for mut notice in notices {
                    if let Some(due) = plan(notifier, &mut notice) {
                        schedule.insert((due.0, notice.key(), due.1));
                    }
                    notifier.lock_open().insert(notice.key(), notice);
                }
                for (notice, index) in unfinished {
                    let Some(channel) = notifier.ladder.for_mode(notice.mode).get(index as usize).map(|step| step.channel) else {
                        continue;
                    };
                    if jobs.send(Job { notice, index, channel }).await.is_err() {
                        return None;
                    }
                }
                return Some(next);
            }
            Ok(Err(error)) => warn!(%error, "notify state cannot be read; trying again"),
            Err(_) => return None,
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// When the notice's next rung is due (clock ms) and its index; skips
/// rungs that are not for this person.
pub(super) fn plan(notifier: &Notifier, notice: &mut Notice) -> Option<(i64, u32)> {
    let steps = notifier.ladder.for_mode(notice.mode);
    while let Some(step) = steps.get(notice.next_step as usize) {
        let wait_s = if notice.connected { step.if_connected_after_s } else { Some(step.after_s) };
        match wait_s {
            Some(wait_s) => {
                let due = notice.started_at_ms.saturating_add(i64::try_from(wait_s).unwrap_or(i64::MAX / 2) * 1000);
                return Some((due, notice.next_step));
            }
            None => notice.next_step += 1,
        }
    }
    None
}

/// Starts and ends notices for a page of events; the notices started and
/// the keys of those ended, or `None` when the engine did not answer.
async fn take_in(notifier: &Arc<Notifier>, events: &[Event], schedule: &mut Schedule) -> Option<(Vec<Notice>, Vec<String>)> {
    let openers: Vec<(usize, Opener)> = events
        .iter()
        .enumerate()
        .filter_map(|(index, event)| {
            let opener = match &event.kind {
                EventKind::OfferSent { offer } => Opener::Offer {
                    agent: offer.agent.clone(),
                    offer: offer.id.to_string(),
                    incident: offer.incident.clone(),
                    deadline_ms: offer.deadline.0,
                },
                EventKind::CallupIssued { callup, people, .. } => {
                    Opener::Callup { callup: callup.clone(), people: people.clone() }
                }
                EventKind::MessageSent { message, recipients, text, .. } => {
                    Opener::Message { message: message.clone(), recipients: recipients.clone(), text: text.clone() }
                }
                _ => return None,
            };
            Some((index, opener))
        })
        .collect();
    let mut candidates_by_event: Vec<(usize, Vec<Candidate>)> = Vec::new();
    if !openers.is_empty() {
        candidates_by_event = notifier.dispatcher.query(move |engine, _| candidates(engine, openers)).await.ok()?;
    }
    let mut candidates_by_event = candidates_by_event.into_iter().peekable();
    let mut started: Vec<Notice> = Vec::new();
    let mut closed: Vec<String> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if candidates_by_event.peek().is_some_and(|(at, _)| *at == index) {
            let Some((_, candidates)) = candidates_by_event.next() else {
                continue;
            };
            for candidate in candidates {
                if notifier.ladder.for_mode(candidate.mode).is_empty() || (candidate.mode == Mode::Normal && candidate.off_duty) {
                    continue;
                }
                let mut notice = Notice {
                    agent: candidate.agent.to_string(),
                    subject: candidate.subject,
                    mode: candidate.mode,
                    connected: candidate.connected,
                    started_at_ms: event.at.0,
                    text: candidate.text,
                    deadline_ms: candidate.deadline_ms,
                    category: candidate.category,
                    next_step: 0,
                };
                let key = notice.key();
                if notifier.lock_open().contains_key(&key) {
                    continue;
                }
                // No rung is for this person (say, a ladder of SMS only and
                // a person in a session): nothing to send or to answer.
                let Some((due, step)) = plan(notifier, &mut notice) else {
                    continue;
                };
                schedule.insert((due, key.clone(), step));
                closed.retain(|closed_key| *closed_key != key);
                notifier.lock_open().insert(key, notice.clone());
                started.push(notice);
            }
            continue;
        }
        for key in ended(notifier, &event.kind) {
            if notifier.lock_open().remove(&key).is_some() {
                started.retain(|notice| notice.key() != key);
                closed.push(key);
            }
        }
    }
    Some((started, closed))
}

/// The notices an event ends.
fn ended(notifier: &Notifier, kind: &EventKind) -> Vec<String> {
    let offer = |agent: &AgentId, offer: &dyn std::fmt::Display| vec![notice_key(agent.as_str(), &format!("offer:{offer}"))];
    match kind {
        EventKind::Assigned { offer: id, agent, .. }
        | EventKind::OfferDeclined { offer: id, agent, .. }
        | EventKind::OfferTimedOut { offer: id, agent, .. }
        | EventKind::OfferWithdrawn { offer: id, agent, .. } => offer(agent, id),
        EventKind::CheckedIn { callup, agent } => vec![notice_key(agent.as_str(), &format!("callup:{callup}"))],
        EventKind::CallupStoodDown { callup, .. } => {
            let wanted = Subject::Callup { callup: callup.to_string() };
            notifier.lock_open().iter().filter(|(_, notice)| notice.subject == wanted).map(|(key, _)| key.clone()).collect()
        }
        EventKind::MessageRead { message, agent } | EventKind::MessageReplied { message, agent, .. } => {
            vec![notice_key(agent.as_str(), &format!("message:{message}"))]
        }
        _ => Vec::new(),
    }
}

/// Who each opener reaches, with their grade, session and words.
fn candidates(engine: &pingji_engine::engine::Engine, openers: Vec<(usize, Opener)>) -> Vec<(usize, Vec<Candidate>)> {
    let person = |agent: &AgentId| {
        let connected = engine.live_agent(agent).is_some_and(|live| live.connected);
        let off_duty = engine.agent(agent).is_some_and(|record| record.status == AgentStatus::OffDuty);
        (connected, off_duty)
    };
    openers
        .into_iter()
        .map(|(index, opener)| {
            let reached = match opener {
                Opener::Offer { agent, offer, incident, deadline_ms } => {
                    let Some(found) = engine.incident(&incident) else {
                        return (index, Vec::new());
                    };
                    let mode = engine.state().effective_mode(&found.placement).0;
                    let text =
                        shorten(&format!("Pingji task {incident} ({}): reply 1 to accept, 2 to decline", found.spec.category));
                    let (connected, off_duty) = person(&agent);
                    vec![Candidate {
                        agent,
                        subject: Subject::Offer { offer, incident: incident.to_string() },
                        mode,
                        connected,
                        off_duty,
                        text,
                        deadline_ms,
                        category: found.spec.category.clone(),
                    }]
                }
                Opener::Callup { callup, people } => {
                    let Some(found) = engine.callup(&callup) else {
                        return (index, Vec::new());
                    };
                    let mode = engine.state().area_modes(&found.area).1;
                    let area = engine.area(&found.area).map_or_else(|| found.area.to_string(), |spec| spec.name.clone());
                    let text = shorten(&format!(
                        "Pingji call-up {callup} ({area}): {}. Reply 到 or 1 to check in by {}",
                        found.reason.replace('\n', " "),
                        pingji_client::labels::utc_time(found.deadline.0)
                    ));
                    people
                        .into_iter()
                        .map(|agent| {
                            let (connected, off_duty) = person(&agent);
                            Candidate {
                                agent,
                                subject: Subject::Callup { callup: callup.to_string() },
                                mode,
                                connected,
                                off_duty,
                                text: text.clone(),
                                deadline_ms: found.deadline.0,
                                category: String::new(),
                            }
                        })
                        .collect()
                }
                Opener::Message { message, recipients, text } => recipients
                    .into_iter()
                    .map(|agent| {
                        let (connected, off_duty) = person(&agent);
                        Candidate {
                            mode: engine.mode_for_agent(&agent),
                            agent,
                            subject: Subject::Message { message: message.clone() },
                            connected,
                            off_duty,
                            text: shorten(&format!("Pingji: {}", text.replace('\n', " "))),
                            deadline_ms: 0,
                            category: String::new(),
                        }
                    })
                    .collect(),
            };
            (index, reached)
        })
        .collect()
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_TEXT_CHARS - 1).collect();
    short.push('…');
    short
}

/// Keeps the notices started and ended and moves the cursor; false when
/// the store failed (the page is read again).
async fn save(notifier: &Arc<Notifier>, next_seq: u64, started: Vec<Notice>, closed: Vec<String>) -> bool {
    let store = notifier.store.clone();
    let saved = tokio::task::spawn_blocking(move || {
        store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).save(next_seq, &started, &closed)
    })
    .await;
    match saved {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            warn!(%error, "notify cursor not saved; reading the page again");
            false
        }
        Err(_) => false,
    }
}

/// Hands every rung due now to the senders and plans the next; false
/// when stopping.
async fn dispatch_due(notifier: &Arc<Notifier>, jobs: &mpsc::Sender<Job>, schedule: &mut Schedule, next_seq: u64) -> bool {
    let now = notifier.clock.now().0;
    let mut moved: Vec<Notice> = Vec::new();
    let mut handed: Vec<Job> = Vec::new();
    while let Some((due, key, index)) = schedule.first().cloned() {
        if due > now {
            break;
        }
        schedule.pop_first();
        let mut open = notifier.lock_open();
        let Some(notice) = open.get_mut(&key) else {
            continue;
        };
        if notice.next_step != index {
            continue;
        }
        let Some(step) = notifier.ladder.for_mode(notice.mode).get(index as usize) else {
            continue;
        };
        handed.push(Job { notice: notice.clone(), index, channel: step.channel });
        notice.next_step = index + 1;
        if let Some((due, step)) = plan(notifier, notice) {
            schedule.insert((due, key.clone(), step));
        }
        moved.push(notice.clone());
    }
    if moved.is_empty() {
        return true;
    }
    // The rung is kept as handed out before it is sent: after a crash the
    // senders find it without a final state and send it again under the
    // same key.
    while !save(notifier, next_seq, moved.clone(), Vec::new()).await {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    for job in handed {
        if jobs.send(job).await.is_err() {
            return false;
        }
    }
    true
}

/// Waits for an event at or after `next`, or the next rung; true when stopping.
async fn wait(
    notifier: &Notifier,
    live: &mut broadcast::Receiver<Arc<pingji_proto::v1::Event>>,
    stop: &mut watch::Receiver<bool>,
    next: u64,
    due_in: Option<std::time::Duration>,
) -> bool {
    let mut closing = notifier.dispatcher.closing();
    let sleep = tokio::time::sleep(due_in.unwrap_or(std::time::Duration::from_secs(3600)));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.seq >= next => return false,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return false,
                Err(broadcast::error::RecvError::Closed) => return true,
            },
            () = &mut sleep => return false,
            _ = stop.changed() => return true,
            _ = closing.wait_for(|closing| *closing) => return true,
        }
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, wait: std::time::Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
