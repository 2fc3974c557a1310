//! The owner task's loop: it waits for requests (taken in batches), the
//! next offer deadline, a probe of an unreachable store, or shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::info;

use super::handle::Request;
use super::{Committed, MAX_BATCH, Owner};

impl Owner {
    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        if self.config.wait_for_store {
            self.committed = Some(Committed { snapshot: serde_json::to_vec(self.engine.state())?, events: Vec::new() });
        }
        let (probe_sender, mut probes) = mpsc::channel(1);
        // Offers whose deadline passed while the dispatcher was down time out now.
        let now = self.now();
        if self.config.read_only.is_none() {
            let events = self.engine.tick(now);
            self.commit(events, Vec::new()).await?;
        }
        loop {
            let deadline = self.engine.next_deadline().filter(|_| self.config.read_only.is_none());
            let wait = match (&self.store_down, deadline) {
                (Some(probe_at), _) => probe_at.saturating_duration_since(tokio::time::Instant::now()),
                (None, Some(deadline)) => self.config.clock.real_wait(deadline.0.saturating_sub(self.now().0)),
                (None, None) => Duration::from_secs(3600),
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                request = inbox.recv() => {
                    let Some(first) = request else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match inbox.try_recv() {
                            Ok(request) => batch.push(request),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await?;
                }
                Some(tail) = probes.recv() => {
                    self.probing = false;
                    self.store_answered(tail).await?;
                }
                () = tokio::time::sleep(wait) => {
                    if self.store_down.is_some() {
                        self.probe_store(&probe_sender);
                    } else if self.config.read_only.is_none() {
                        let now = self.now();
                        let events = self.engine.tick(now);
                        self.commit(events, Vec::new()).await?;
                    }
                }
            }
        }
        if self.store_down.is_none() {
            self.snapshot().await?;
        }
        if let Some(forgetting) = self.forgetting.take() {
            forgetting.stop.store(true, Ordering::Relaxed);
            let _ = forgetting.task.await;
        }
        info!("dispatcher owner stopped");
        Ok(())
    }
}
