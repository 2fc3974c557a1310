//! `WebhookService` (admin only, through the same token check as the
//! command service) and [`Webhooks`], which keeps one delivery task per
//! subscriber and stops them when serving ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pingji_proto::v1 as pb;
use pingji_proto::v1::webhook_service_server::WebhookService;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use tracing::{info, instrument, warn};

use super::config::{PARTNER_KINDS, WebhookConfig};
use super::delivery::{Delivery, Progress};
use super::store::{DeadLetter, Registered, SharedStore, StoreError, Subscriber, WebhookStore};
use crate::posting::Target;
use crate::runtime::Dispatcher;
use crate::server::auth::caller;
use crate::server::error;
use pingji_engine::ids::AreaId;

const MIN_SECRET: usize = 16;
const MAX_DEAD_LETTERS_LISTED: usize = 1000;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    progress: Arc<Mutex<Progress>>,
}

/// The subscribers' delivery tasks. Dropping it stops them.
pub struct Webhooks {
    dispatcher: Dispatcher,
    store: SharedStore,
    config: Arc<WebhookConfig>,
    /// Why nothing can be registered (a replay); `None` when registrations work.
    refusal: Option<String>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for running in self.running.get_mut().values() {
            running.task.abort();
        }
    }
}

fn store_status(error: StoreError) -> Status {
    tracing::error!(%error, "webhook store failed");
    error::internal("the webhook store failed; see the dispatcher's log")
}

async fn blocking<T: Send + 'static>(
    store: &SharedStore,
    action: impl FnOnce(&mut dyn WebhookStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        action(store.as_mut())
    })
    .await
    .map_err(|error| StoreError(format!("the store task failed: {error}")))?
}

impl Webhooks {
    /// Loads the subscribers kept in `store` and starts delivering to each;
    /// with a `refusal` (a replay) nothing is delivered or registered.
    pub async fn start(
        dispatcher: Dispatcher,
        store: Box<dyn WebhookStore>,
        config: WebhookConfig,
        refusal: Option<String>,
    ) -> anyhow::Result<Arc<Webhooks>> {
        let store: SharedStore = Arc::new(Mutex::new(store));
        let webhooks = Arc::new(Webhooks { dispatcher, store, config: Arc::new(config), refusal, running: Default::default() });
        if webhooks.refusal.is_some() {
            return Ok(webhooks);
        }
        let registered = blocking(&webhooks.store, |store| store.load()).await?;
        if !registered.is_empty() {
            info!(subscribers = registered.len(), "webhooks delivering");
        }
        let mut running = webhooks.running.lock().await;
        for entry in registered {
            running.insert(entry.subscriber.id.clone(), webhooks.spawn(entry));
        }
        drop(running);
        Ok(webhooks)
    }

    fn spawn(&self, registered: Registered) -> Running {
        let progress = Arc::new(Mutex::new(Progress {
            next_seq: registered.next_seq,
            dead_letters: registered.dead_letters,
            ..Progress::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let delivery = Delivery {
            subscriber: registered.subscriber,
            dispatcher: self.dispatcher.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            progress: progress.clone(),
        };
        let task = tokio::spawn(delivery.run(stopped));
        Running { stop, task, progress }
    }

    /// Aborts every delivery at once (serving ended some other way than a
    /// shutdown): at least once still holds, from the saved cursors.
    pub fn abort_all(&self) {
        if let Ok(running) = self.running.try_lock() {
            for task in running.values() {
                task.task.abort();
            }
        }
    }

    /// Stops every delivery and waits for them.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for (_, task) in running.drain() {
            let _ = task.stop.send(true);
            let _ = task.task.await;
        }
    }

    fn check_open(&self) -> Result<(), Status> {
        match &self.refusal {
            Some(refusal) => Err(error::status(tonic::Code::FailedPrecondition, pb::ErrorReason::FailedPrecondition, refusal)),
            None => Ok(()),
        }
    }

    async fn listed(&self, registered: Registered) -> pb::Webhook {
        let running = self.running.lock().await;
        let progress = running
            .get(&registered.subscriber.id)
            .map(|running| running.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone());
        drop(running);
        let progress = progress.unwrap_or(Progress {
            next_seq: registered.next_seq,
            dead_letters: registered.dead_letters,
            ..Progress::default()
        });
        webhook_to_pb(&registered.subscriber, &progress)
    }

    async fn find(&self, id: &str) -> Result<Registered, Status> {
        let registered = blocking(&self.store, |store| store.load()).await.map_err(store_status)?;
        registered
            .into_iter()
            .find(|entry| entry.subscriber.id == id)
            .ok_or_else(|| error::not_found(format!("no webhook {id}; 'pingji webhooks list' shows the registered ones")))
    }
}

fn webhook_to_pb(subscriber: &Subscriber, progress: &Progress) -> pb::Webhook {
    pb::Webhook {
        id: subscriber.id.clone(),
        url: subscriber.url.clone(),
        kinds: subscriber.kinds.clone(),
        area_ids: subscriber.area_ids.clone(),
        precise: subscriber.precise,
        next_seq: progress.next_seq,
        dead_letters: progress.dead_letters,
        created_at_ms: subscriber.created_at_ms,
        secret: String::new(),
        failures: progress.failures,
        last_error: progress.last_error.clone(),
    }
}

fn letter_to_pb(letter: DeadLetter) -> pb::DeadLetter {
    pb::DeadLetter {
        seq: letter.seq,
        kind: letter.kind,
        attempts: letter.attempts,
        last_error: letter.last_error,
        failed_at_ms: letter.failed_at_ms,
    }
}

/// The gRPC face of [`Webhooks`].
pub struct WebhookApi {
    pub webhooks: Arc<Webhooks>,
}

fn clean_list(values: Vec<String>) -> Vec<String> {
    let mut cleaned: Vec<String> = values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(String::from)
        .collect();
    cleaned.sort();
    cleaned.dedup();
    cleaned
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    #[instrument(skip_all)]
    async fn add_webhook(&self, request: Request<pb::AddWebhookRequest>) -> Result<Response<pb::Webhook>, Status> {
        let actor = caller(&request)?.actor();
        let webhooks = &self.webhooks;
        webhooks.check_open()?;
        let request = request.into_inner();
        let url = request.url.trim().to_string();
        Target::parse(&url).map_err(|reason| {
            error::invalid_field(
                "url",
                format!("{reason}; give the partner's endpoint, e.g. https://partner.example/hooks/pingji"),
            )
        })?;
        let kinds = clean_list(request.kinds);
        if let Some(unknown) = kinds.iter().find(|kind| !PARTNER_KINDS.contains(&kind.as_str())) {
            return Err(error::invalid_field(
                "kinds",
                format!("'{unknown}' is not an event kind sent to partners; use some of: {}", PARTNER_KINDS.join(", ")),
            ));
        }
        let area_ids = clean_list(request.area_ids);
        let wanted: Vec<AreaId> = area_ids.iter().map(AreaId::new).collect();
        let unknown_area = webhooks
            .dispatcher
            .query(move |engine, _| engine.first_unknown_area(wanted.iter()).map(|area| area.to_string()))
            .await?;
        if let Some(area) = unknown_area {
            return Err(error::invalid_field(
                "area_ids",
                format!("area '{area}' is not on the map; 'pingji areas list' shows the area ids"),
            ));
        }
        let given_secret = request.secret.trim().to_string();
        if !given_secret.is_empty() && given_secret.chars().count() < MIN_SECRET {
            return Err(error::invalid_field(
                "secret",
                format!("the secret must be at least {MIN_SECRET} characters; leave it out to have one made"),
            ));
        }
        let made_secret = given_secret.is_empty();
        let secret = if made_secret { format!("whsec_{}", crate::tokens::random_hex()) } else { given_secret };
        let (first_kept, last) = webhooks.dispatcher.kept_seqs().await?;
        let next_seq = match request.from_seq {
            0 => last + 1,
            from if from < first_kept => {
                return Err(error::invalid_field(
                    "from_seq",
                    format!(
                        "events before seq {first_kept} are no longer kept; start from {first_kept} or later, or 0 for new events only"
                    ),
                ));
            }
            from => from,
        };
        let subscriber = Subscriber {
            id: format!("wh_{}", &crate::tokens::random_hex()[..12]),
            url,
            kinds,
            area_ids,
            secret: secret.clone(),
            precise: request.precise,
            created_at_ms: crate::runtime::system_now().0,
        };
        let kept = subscriber.clone();
        blocking(&webhooks.store, move |store| store.add(&kept, next_seq)).await.map_err(store_status)?;
        info!(webhook = %subscriber.id, %actor, next_seq, "webhook added");
        let registered = Registered { subscriber: subscriber.clone(), next_seq, dead_letters: 0 };
        let running = webhooks.spawn(registered);
        let progress = running.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        webhooks.running.lock().await.insert(subscriber.id.clone(), running);
        let mut answer = webhook_to_pb(&subscriber, &progress);
        if made_secret {
            answer.secret = secret;
        }
        Ok(Response::new(answer))
    }

    async fn list_webhooks(
        &self,
        _request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let registered = blocking(&self.webhooks.store, |store| store.load()).await.map_err(store_status)?;
        let mut webhooks = Vec::with_capacity(registered.len());
        for entry in registered {
            webhooks.push(self.webhooks.listed(entry).await);
        }
        Ok(Response::new(pb::ListWebhooksResponse { webhooks }))
    }

    #[instrument(skip_all)]
    async fn remove_webhook(&self, request: Request<pb::RemoveWebhookRequest>) -> Result<Response<pb::Webhook>, Status> {
        let actor = caller(&request)?.actor();
        let id = request.into_inner().id.trim().to_string();
        let registered = self.webhooks.find(&id).await?;
        let removed = self.webhooks.listed(registered).await;
        if let Some(running) = self.webhooks.running.lock().await.remove(&id) {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
        let gone = id.clone();
        blocking(&self.webhooks.store, move |store| store.remove(&gone)).await.map_err(store_status)?;
        info!(webhook = %id, %actor, "webhook removed");
        Ok(Response::new(removed))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let id = request.id.trim().to_string();
        self.webhooks.find(&id).await?;
        let limit = match request.limit {
            0 => MAX_DEAD_LETTERS_LISTED,
            limit => (limit as usize).min(MAX_DEAD_LETTERS_LISTED),
        };
        let letters = blocking(&self.webhooks.store, move |store| store.dead_letters(&id, limit)).await.map_err(store_status)?;
        Ok(Response::new(pb::ListDeadLettersResponse { dead_letters: letters.into_iter().map(letter_to_pb).collect() }))
    }

    #[instrument(skip_all)]
    async fn replay_webhook(&self, request: Request<pb::ReplayWebhookRequest>) -> Result<Response<pb::Webhook>, Status> {
        let actor = caller(&request)?.actor();
        let webhooks = &self.webhooks;
        webhooks.check_open()?;
        let request = request.into_inner();
        let id = request.id.trim().to_string();
        webhooks.find(&id).await?;
        let (first_kept, last) = webhooks.dispatcher.kept_seqs().await?;
        if request.from_seq < first_kept.max(1) || request.from_seq > last + 1 {
            return Err(error::invalid_field(
                "from_seq",
                format!(
                    "replay from a seq the journal holds: {} to {} (see 'pingji webhooks dead-letters {id}')",
                    first_kept.max(1),
                    last + 1
                ),
            ));
        }
        let from_seq = request.from_seq;
        let mut running = webhooks.running.lock().await;
        if let Some(task) = running.remove(&id) {
            let _ = task.stop.send(true);
            let _ = task.task.await;
        }
        let replayed = id.clone();
        let store_result = blocking(&webhooks.store, move |store| store.replay(&replayed, from_seq)).await;
        let registered = blocking(&webhooks.store, |store| store.load())
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|entry| entry.subscriber.id == id));
        // Delivery goes on (from where it was if the store refused the replay).
        if let Some(registered) = registered.clone() {
            running.insert(id.clone(), webhooks.spawn(registered));
        }
        drop(running);
        store_result.map_err(store_status)?;
        let Some(registered) = registered else {
            return Err(error::not_found(format!("webhook {id} was removed meanwhile")));
        };
        warn!(webhook = %id, %actor, from_seq, "webhook replayed");
        Ok(Response::new(self.webhooks.listed(registered).await))
    }
}
