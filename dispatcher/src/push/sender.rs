//! [`Pusher`]: registers people's subscriptions and sends them notices.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Bytes;
use ring::rand::SystemRandom;
use tracing::{debug, info, warn};

use super::ece;
use super::notice::PushNotice;
use super::reachable::Reachable;
use super::store::{self, PushStore, StoreError};
use super::subscription::{self, Refused, Subscription};
use super::vapid::{self, VapidKey};
use crate::posting::{Poster, Target};

/// The `sub` claim when the settings name none.
pub const DEFAULT_SUBJECT: &str = "mailto:pingji@localhost";

/// How pushes are made.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// A contact for the push services' operators (`mailto:` or `https:`).
    pub subject: String,
    /// The VAPID key as base64url private (32 bytes) and public (65 bytes)
    /// values; `None`: the one kept in the store, made on first start.
    pub vapid_key: Option<(String, String)>,
    /// Takes `http://` endpoints on loopback (a test's push service).
    pub allow_loopback_http: bool,
    /// How long one post to a push service may take.
    pub timeout: Duration,
    /// The wait before the first retry of a push the push service could
    /// not take then (429, 5xx, no answer); doubled before the second.
    pub retry_after: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            subject: DEFAULT_SUBJECT.to_string(),
            vapid_key: None,
            allow_loopback_http: false,
            timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// What became of a push to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The push service took it for this many of the person's phones.
    Sent { devices: usize },
    /// The person registered no subscription.
    NoSubscription,
    /// Every subscription was gone (404/410) and is forgotten now.
    SubscriptionGone,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Refused(#[from] Refused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] vapid::VapidError),
    #[error(transparent)]
    Encryption(#[from] ece::EceError),
    /// No push service took it; the reasons name push services, not phones.
    #[error("no push service took the notice: {0}")]
    Failed(String),
}

/// Sends notices to people's phones. Shared by the field service (which
/// registers subscriptions) and whatever decides to push.
pub struct Pusher {
    store: store::SharedStore,
    /// Who has a subscription, for the runtime.
    reachable: Reachable,
    key: VapidKey,
    config: PushConfig,
    random: SystemRandom,
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

async fn blocking<T: Send + 'static>(
    store: &store::SharedStore,
    action: impl FnOnce(&mut dyn PushStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        action(store.as_mut())
    })
    .await
    .map_err(|error| StoreError(format!("the store task failed: {error}")))?
}

impl Pusher {
    /// Opens the pusher with the key of the settings, or the one kept in
    /// `store` (made and kept now when there is none), and tells
    /// `reachable` who has a subscription (and from now on, who gets or
    /// loses one).
    pub async fn open(store: Box<dyn PushStore>, config: PushConfig, reachable: Reachable) -> Result<Arc<Pusher>, PushError> {
        let store: store::SharedStore = Arc::new(Mutex::new(store));
        let key = match &config.vapid_key {
            Some((private, public)) => VapidKey::from_base64url(private, public)?,
            None => {
                let (_, generated) = VapidKey::generate()?;
                let kept = blocking(&store, move |store| store.vapid_key(&generated)).await?;
                VapidKey::from_pkcs8(&kept)?
            }
        };
        let people = blocking(&store, |store| store.people()).await?;
        info!(vapid_public_key = key.public_key(), people_subscribed = people.len(), "web push ready");
        reachable.replace(people);
        Ok(Arc::new(Pusher { store, reachable, key, config, random: SystemRandom::new() }))
    }

    /// The VAPID public key, base64url: the app's `applicationServerKey`.
    /// Whether `person` has a subscription to push to.
    pub fn reaches(&self, person: &str) -> bool {
        self.reachable.contains(person)
    }

    pub fn public_key(&self) -> &str {
        self.key.public_key()
    }

    /// Checks and keeps a subscription of `person`'s; how many they have now.
    pub async fn register(&self, person: &str, endpoint: &str, p256dh: &str, auth: &str) -> Result<usize, PushError> {
        let now_ms = i64::try_from(now().as_millis()).unwrap_or(i64::MAX);
        let subscription = subscription::checked(person, endpoint, p256dh, auth, self.config.allow_loopback_http, now_ms)?;
        let push_service = subscription.endpoint_for_logs();
        let count = blocking(&self.store, move |store| store.put(&subscription)).await?;
        self.reachable.set(person, true);
        info!(agent_id = person, push_service, subscriptions = count, "push subscription registered");
        Ok(count)
    }

    /// Forgets one of `person`'s subscriptions.
    pub async fn remove(&self, person: &str, endpoint: &str) -> Result<bool, PushError> {
        let (owner, endpoint) = (person.to_string(), endpoint.trim().to_string());
        let removed = blocking(&self.store, move |store| store.remove(&owner, &endpoint)).await?;
        if removed {
            info!(agent_id = person, "push subscription removed");
            self.recount(person).await?;
        }
        Ok(removed)
    }

    /// Tells `reachable` whether `person` has a subscription left.
    async fn recount(&self, person: &str) -> Result<(), PushError> {
        let left = self.subscriptions(person).await?;
        self.reachable.set(person, !left.is_empty());
        Ok(())
    }

    /// `person`'s subscriptions, oldest first.
    pub async fn subscriptions(&self, person: &str) -> Result<Vec<Subscription>, PushError> {
        let owner = person.to_string();
        Ok(blocking(&self.store, move |store| store.subscriptions(&owner)).await?)
    }

    /// Pushes `notice` to each of `person`'s phones.
    pub async fn send(&self, person: &str, notice: &PushNotice) -> Result<PushOutcome, PushError> {
        let subscriptions = self.subscriptions(person).await?;
        if subscriptions.is_empty() {
            return Ok(PushOutcome::NoSubscription);
        }
        let payload = notice.payload();
        let (mut devices, mut gone, mut failures) = (0, 0, Vec::new());
        for subscription in &subscriptions {
            let push_service = subscription.endpoint_for_logs();
            match self.post_retrying(subscription, notice, &payload).await {
                Ok(status) if (200..300).contains(&status) => {
                    devices += 1;
                    debug!(agent_id = person, push_service, status, kind = ?notice.kind, "push sent");
                }
                Ok(status @ (404 | 410)) => {
                    gone += 1;
                    let (owner, endpoint) = (subscription.person.clone(), subscription.endpoint.clone());
                    blocking(&self.store, move |store| store.remove(&owner, &endpoint)).await?;
                    info!(agent_id = person, push_service, status, "push subscription gone; forgotten");
                }
                Ok(status) => {
                    warn!(agent_id = person, push_service, status, "push refused");
                    failures.push(format!("{push_service} answered HTTP {status}"));
                }
                Err(reason) => {
                    warn!(agent_id = person, push_service, %reason, "push failed");
                    failures.push(reason);
                }
            }
        }
        if gone > 0 {
            self.recount(person).await?;
        }
        if devices > 0 {
            return Ok(PushOutcome::Sent { devices });
        }
        if failures.is_empty() && gone > 0 {
            return Ok(PushOutcome::SubscriptionGone);
        }
        Err(PushError::Failed(failures.join("; ")))
    }

    /// [`Pusher::post`], tried again twice (after `retry_after`, then twice
    /// that) while the push service is busy (429), failing (5xx) or out of
    /// reach: the answer of the last try.
    async fn post_retrying(&self, subscription: &Subscription, notice: &PushNotice, payload: &[u8]) -> Result<u16, String> {
        let mut wait = self.config.retry_after;
        for _ in 0..2 {
            match self.post(subscription, notice, payload).await {
                Ok(status) if status != 429 && status < 500 => return Ok(status),
                Ok(status) => debug!(push_service = subscription.endpoint_for_logs(), status, "push not taken yet; retrying"),
                Err(reason) => debug!(push_service = subscription.endpoint_for_logs(), %reason, "push failed; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        self.post(subscription, notice, payload).await
    }

    /// Encrypts and posts to one subscription: the push service's status.
    async fn post(&self, subscription: &Subscription, notice: &PushNotice, payload: &[u8]) -> Result<u16, String> {
        let body = ece::seal(payload, &subscription.p256dh_bytes(), &subscription.auth_bytes(), &self.random)
            .map_err(|error| error.to_string())?;
        let audience = subscription::origin(&subscription.endpoint)?;
        let now = now();
        let authorization =
            self.key.authorization(&audience, &self.config.subject, now.as_secs()).map_err(|error| error.to_string())?;
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        let headers = [
            ("authorization", authorization),
            ("content-encoding", "aes128gcm".to_string()),
            ("content-type", "application/octet-stream".to_string()),
            ("ttl", notice.ttl_s(now_ms).to_string()),
            ("urgency", notice.urgency().to_string()),
            ("topic", notice.topic()),
        ];
        // A connection per push: the push services are many and far between.
        // (The endpoint is the phone's address: it stays out of the reason.)
        let target = Target::parse(&subscription.endpoint).map_err(|_| format!("{audience}: the endpoint is not a URL"))?;
        let mut poster = Poster::new(target);
        poster.post_answered(&headers, Bytes::from(body), self.config.timeout).await
    }
}
