//! The `WatchAgents` stream: the people a live view shows, pushed, held
//! whole as the console holds them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use pingji_client::agent_stream::apply;
use pingji_proto::v1 as pb;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use crate::auth::Commands;

/// A `WatchAgents` stream and the people it shows so far.
pub struct PeopleWatch {
    stream: Streaming<pb::AgentsChanged>,
    people: BTreeMap<String, pb::Agent>,
    /// Messages read so far.
    pub messages: usize,
}

impl PeopleWatch {
    /// Opens the stream; the dispatcher's first message (everyone) follows.
    pub async fn open(command: &mut Commands, request: pb::WatchAgentsRequest) -> Result<PeopleWatch, Status> {
        let stream = command.watch_agents(request).await?.into_inner();
        Ok(PeopleWatch { stream, people: BTreeMap::new(), messages: 0 })
    }

    /// The people shown now, by id.
    pub fn people(&self) -> &BTreeMap<String, pb::Agent> {
        &self.people
    }

    /// Reads until what is shown satisfies `predicate`; fails if it does not
    /// within `within` or the stream ends.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        predicate: impl Fn(&BTreeMap<String, pb::Agent>) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !(self.messages > 0 && predicate(&self.people)) {
            let changed = tokio::time::timeout_at(deadline, self.stream.message())
                .await
                .map_err(|_| anyhow::anyhow!("not {what} within {within:?}; shown: {:?}", self.people.keys()))?
                .with_context(|| format!("the people stream failed while waiting for {what}"))?
                .with_context(|| format!("the people stream ended while waiting for {what}"))?;
            self.messages += 1;
            apply(&mut self.people, changed);
        }
        Ok(())
    }

    /// Reads until the stream ends with an error status, and returns it;
    /// fails on anything else within `within`.
    pub async fn expect_end_within(&mut self, within: Duration) -> anyhow::Result<Status> {
        let deadline = Instant::now() + within;
        loop {
            let read = tokio::time::timeout_at(deadline, self.stream.message())
                .await
                .map_err(|_| anyhow::anyhow!("the people stream did not end within {within:?}"))?;
            match read {
                Ok(Some(changed)) => apply(&mut self.people, changed),
                Ok(None) => anyhow::bail!("the people stream ended without a status"),
                Err(status) => return Ok(status),
            }
        }
    }
}

/// Where the people watch shows `id`, as (lon, lat).
pub fn shown_at(people: &BTreeMap<String, pb::Agent>, id: &str) -> Option<(f64, f64)> {
    people.get(id).and_then(|agent| agent.location).map(|at| (at.lon, at.lat))
}
