//! The people a live view shows, pushed by `WatchAgents` and kept whole
//! here: each message of the stream is applied to the set held, and after a
//! break the stream is opened again (with [`crate::backoff`], at whichever
//! dispatcher owns the shard by then), starting from everyone afresh.

use std::collections::BTreeMap;
use std::time::Duration;

use pingji_proto::v1 as pb;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::connect::Connection;

/// What [`AgentStream::next`] saw.
#[derive(Debug)]
pub enum Pushed {
    /// The people shown now, in id order, after a change (the first comes
    /// when the stream opens).
    People(Vec<pb::Agent>),
    /// The stream broke or could not be opened; the next call waits
    /// `retry_in` and tries again (attempt `attempt` since it was last up).
    Lost { reason: String, retry_in: Duration, attempt: u32 },
}

/// `WatchAgents` that opens again after a break.
pub struct AgentStream {
    connection: Connection,
    request: pb::WatchAgentsRequest,
    open: Option<(Streaming<pb::AgentsChanged>, Instant)>,
    /// The people shown, by id.
    people: BTreeMap<String, pb::Agent>,
    backoff: Backoff,
    /// After a loss: when to try again.
    retry_at: Option<Instant>,
}

impl AgentStream {
    /// The people `request` asks for, over `connection`; nothing is asked
    /// until [`AgentStream::next`].
    pub fn new(connection: Connection, request: pb::WatchAgentsRequest, policy: BackoffPolicy) -> AgentStream {
        AgentStream { connection, request, open: None, people: BTreeMap::new(), backoff: Backoff::new(policy), retry_at: None }
    }

    /// The next change to the people shown, or the stream lost. Never ends
    /// by itself; drop the stream to stop.
    pub async fn next(&mut self) -> Pushed {
        loop {
            if let Some((stream, opened_at)) = &mut self.open {
                let reason = match stream.message().await {
                    Ok(Some(changed)) => {
                        apply(&mut self.people, changed);
                        return Pushed::People(self.people.values().cloned().collect());
                    }
                    Ok(None) => "the dispatcher ended the people stream".to_string(),
                    Err(status) => self.connection.explain(&status),
                };
                let up_for = opened_at.elapsed();
                self.open = None;
                return self.lost(reason, up_for);
            }
            if let Err(reason) = self.connection.reconnect_when_due(&mut self.retry_at).await {
                return self.lost(reason, Duration::ZERO);
            }
            if let Err(status) = self.open().await {
                let reason = self.connection.explain(&status);
                return self.lost(reason, Duration::ZERO);
            }
        }
    }

    /// Opens the stream at the owner; its first message resets the people.
    async fn open(&mut self) -> Result<(), Status> {
        let request = self.request.clone();
        let response = self
            .connection
            .call(|connection| {
                let mut commands = connection.commands();
                let request = request.clone();
                async move { commands.watch_agents(request).await }
            })
            .await?;
        self.open = Some((response.into_inner(), Instant::now()));
        Ok(())
    }

    fn lost(&mut self, reason: String, up_for: Duration) -> Pushed {
        let retry_in = self.backoff.retry_in(up_for);
        self.retry_at = Some(Instant::now() + retry_in);
        Pushed::Lost { reason, retry_in, attempt: self.backoff.failures() }
    }
}

/// Applies one message of the stream to the people held: a reset first,
/// then the new and changed people, then the moves (sent only when the
/// request asked for `compact_moves`), then those gone.
pub fn apply(people: &mut BTreeMap<String, pb::Agent>, changed: pb::AgentsChanged) {
    if changed.reset {
        people.clear();
    }
    for agent in changed.agents {
        let id = agent.spec.as_ref().map(|spec| spec.id.clone()).unwrap_or_default();
        people.insert(id, agent);
    }
    let moves = changed.moved_ids.iter().zip(&changed.moved_lons).zip(&changed.moved_lats).zip(&changed.moved_at_ms);
    for (((id, lon), lat), at_ms) in moves {
        if let Some(person) = people.get_mut(id) {
            let mut location = person.location.unwrap_or_default();
            (location.lon, location.lat) = (*lon, *lat);
            person.location = Some(location);
            person.location_at_ms = *at_ms;
        }
    }
    for id in &changed.gone_ids {
        people.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, lon: f64) -> pb::Agent {
        let spec = pb::AgentSpec { id: id.to_string(), ..Default::default() };
        pb::Agent { spec: Some(spec), location: Some(pb::Location::wgs84(lon, 30.0)), ..Default::default() }
    }

    #[test]
    fn changes_apply_in_order_and_a_reset_starts_afresh() {
        let mut people = BTreeMap::new();
        apply(
            &mut people,
            pb::AgentsChanged {
                reset: true,
                agents: vec![agent("a", 120.0), agent("b", 120.0)],
                gone_ids: vec![],
                ..Default::default()
            },
        );
        apply(
            &mut people,
            pb::AgentsChanged { reset: false, agents: vec![agent("b", 120.5)], gone_ids: vec!["a".into()], ..Default::default() },
        );
        let ids: Vec<&String> = people.keys().collect();
        assert_eq!(ids, ["b"]);
        assert_eq!(people["b"].location.map(|at| at.lon), Some(120.5));
        apply(
            &mut people,
            pb::AgentsChanged { reset: true, agents: vec![agent("c", 120.0)], gone_ids: vec![], ..Default::default() },
        );
        assert_eq!(people.keys().collect::<Vec<_>>(), ["c"]);
    }
}
