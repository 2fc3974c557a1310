//! [`Notifier`]: starts the ladder's task and the senders when the policy
//! has a ladder, serves the inbound webhook's route, and stops them.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::NotifyConfig;
use super::inbound;
use super::ladder;
use super::push::PushChannel;
use super::send;
use super::shared::Shared;
use super::store::NotifyStore;
use crate::runtime::{Clock, Dispatcher};

/// The running notifier: its tasks, and what they share.
pub struct Notifier {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Notifier {
    /// Starts the notifier when the policy has a ladder; `None` otherwise
    /// (today's behaviour: nobody is notified outside the app).
    pub async fn start(
        dispatcher: Dispatcher,
        store: Box<dyn NotifyStore>,
        config: NotifyConfig,
        push: Arc<dyn PushChannel>,
        clock: Clock,
    ) -> anyhow::Result<Option<Arc<Notifier>>> {
        let Some(ladder) = dispatcher.query(|engine, _| engine.policy().ladder.clone()).await? else {
            return Ok(None);
        };
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            dispatcher,
            config: Arc::new(config),
            ladder,
            store: Arc::new(Mutex::new(store)),
            push,
            clock,
            open: Mutex::default(),
            seen_signatures: Mutex::default(),
            refusals: Mutex::new((std::time::Instant::now(), 0)),
            per_person: Mutex::default(),
            gateway_slots: Mutex::default(),
        });
        let (jobs, receiver) = tokio::sync::mpsc::channel(send::QUEUE);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let mut tasks = Vec::new();
        for _ in 0..shared.config.concurrency.max(1) {
            tasks.push(tokio::spawn(send::work(shared.clone(), receiver.clone(), stop.subscribe())));
        }
        tasks.push(tokio::spawn(ladder::run(shared.clone(), jobs, stop.subscribe())));
        Ok(Some(Arc::new(Notifier { shared, stop, tasks: Mutex::new(tasks) })))
    }

    /// The axum route of the inbound webhook ([`super::INBOUND_PATH`]).
    pub fn inbound_route(&self) -> axum::Router {
        inbound::route(self.shared.clone())
    }

    /// Stops the tasks and waits for them.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Aborts the tasks at once (serving ended some other way).
    pub fn abort(&self) {
        let _ = self.stop.send(true);
        for task in self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            task.abort();
        }
    }
}
