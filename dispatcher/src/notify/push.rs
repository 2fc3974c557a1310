//! The first rung of the ladder: Web Push to the installed phone app. The
//! notifier asks a [`PushChannel`]: the Web Push sender (`crate::push`),
//! or [`NoPush`] (a replay), which says "no subscription" for everyone so
//! the step is journaled as skipped.

use std::future::Future;
use std::pin::Pin;

use pingji_engine::ids::AgentId;

/// What a push attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Sent,
    /// The person has no push subscription.
    NoSubscription,
    /// The subscription has expired or was withdrawn.
    Gone,
}

/// What a push tells the person: the same words as the SMS.
#[derive(Clone, Debug)]
pub struct PushNotice {
    pub subject: String,
    /// An offer's incident; empty otherwise.
    pub incident: String,
    /// When the offer or call-up runs out (ms since the epoch); 0 for none.
    pub deadline_ms: i64,
    pub text: String,
    /// An offer's incident category (the push's title); empty otherwise.
    pub category: String,
}

pub type PushFuture<'a> = Pin<Box<dyn Future<Output = Result<PushOutcome, String>> + Send + 'a>>;

/// A way to push a notice to a person's phone app.
pub trait PushChannel: Send + Sync {
    fn send<'a>(&'a self, person: &'a AgentId, notice: &'a PushNotice) -> PushFuture<'a>;
}

/// No push service: nobody has a subscription.
pub struct NoPush;

impl PushChannel for NoPush {
    fn send<'a>(&'a self, _person: &'a AgentId, _notice: &'a PushNotice) -> PushFuture<'a> {
        Box::pin(async { Ok(PushOutcome::NoSubscription) })
    }
}
