//! The push rung of the escalation ladder (`crate::notify`): when the
//! policy has a ladder, its push steps go through the [`Pusher`] (and
//! `follow` is not started, so nothing is pushed twice).

use pingji_engine::ids::AgentId;

use super::{PushNotice, PushOutcome, Pusher};
use crate::notify;

impl notify::PushChannel for Pusher {
    fn send<'a>(&'a self, person: &'a AgentId, notice: &'a notify::PushNotice) -> notify::PushFuture<'a> {
        Box::pin(async move {
            let push = match notice.subject.split_once(':') {
                Some(("offer", offer)) => PushNotice::offer(offer, &notice.incident, &notice.category, notice.deadline_ms),
                Some(("callup", callup)) => PushNotice::callup(callup, &notice.text, notice.deadline_ms),
                Some((_, id)) => PushNotice::message(id, &notice.text),
                None => PushNotice::message(&notice.subject, &notice.text),
            };
            match Pusher::send(self, person.as_str(), &push).await {
                Ok(PushOutcome::Sent { .. }) => Ok(notify::PushOutcome::Sent),
                Ok(PushOutcome::NoSubscription) => Ok(notify::PushOutcome::NoSubscription),
                Ok(PushOutcome::SubscriptionGone) => Ok(notify::PushOutcome::Gone),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}
