//! The drill's operator: its command calls, at the owner of each shard,
//! and its watch of each shard's events.

use std::future::Future;
use std::time::Duration;

use pingji_client::backoff::BackoffPolicy;
use pingji_client::connect::{CommandClient, ConnectOptions, Connection};
use pingji_client::event_stream::{EventStream, Watched};
use pingji_client::owner::SERVED_BY_METADATA;
use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::ids::AreaId;
use pingji_proto::v1 as pb;
use tokio::sync::mpsc;

fn status_error(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

/// How long an operator call keeps following the owner (a takeover after
/// the owner died takes a few seconds: the lease's ttl and a renewal).
const FOLLOW_OWNER_FOR: Duration = Duration::from_secs(20);
/// Waits between tries to resume a shard's events after its owner went away.
const WATCH_BACKOFF: BackoffPolicy =
    BackoffPolicy { initial: Duration::from_millis(200), cap: Duration::from_secs(2), healthy_after: Duration::from_secs(10) };

/// The drill's operator: calls go to the owner of the shard, and follow it
/// when it changes during the run (a standby's redirect, or the owner gone
/// and another taking over: `Connection::call`). With one shard per
/// district, a call goes to whichever district's owner the dispatcher names.
#[derive(Clone)]
pub(crate) struct Operator {
    connection: Connection,
    /// The districts' shards when the city is split, in order; empty when
    /// the city is one shard.
    pub(crate) shards: Vec<String>,
    /// The shard this operator's calls are for (`at_shard`); `None`: the
    /// one that answers.
    shard: Option<String>,
}

impl Operator {
    /// The operator, the district shard that answered (if the city is
    /// split), and the actor the dispatcher records for the drill's calls
    /// ("operator:NAME").
    pub(crate) async fn connect(options: &ConnectOptions) -> anyhow::Result<(Operator, Option<String>, String)> {
        let mut connection = Connection::open(options.clone()).await.map_err(|error| anyhow::anyhow!(error.detail()))?;
        // At the owner (a standby names it): who the drill acts as, and
        // whether the city is split. Refused here, the run stops at once;
        // from now on calls keep looking for an owner that went away.
        let answer = connection
            .call(|connection| {
                let mut commands = connection.commands();
                async move { commands.who_am_i(pb::WhoAmIRequest {}).await }
            })
            .await
            .map_err(|status| {
                let reason = connection.options().explained(connection.url(), &status);
                anyhow::anyhow!("asking {} who the drill acts as: {reason} ({:?})", connection.url(), status.code())
            })?;
        let served_by = answer.metadata().get(SERVED_BY_METADATA).and_then(|value| value.to_str().ok()).map(str::to_string);
        let actor = format!("operator:{}", answer.into_inner().name);
        let operator = Operator { connection: connection.finding_owner_for(FOLLOW_OWNER_FOR), shards: Vec::new(), shard: None };
        Ok((operator, served_by, actor))
    }

    /// The same operator with its calls for `shard` (`x-pingji-shard`).
    fn at_shard(&self, shard: &str) -> anyhow::Result<Operator> {
        let connection = self.connection.for_shard(shard).map_err(anyhow::Error::msg)?;
        Ok(Operator { connection, shards: self.shards.clone(), shard: Some(shard.to_string()) })
    }

    /// One operator per district's shard; just this one for a city run as
    /// one shard.
    pub(crate) fn every_shard(&self) -> anyhow::Result<Vec<Operator>> {
        if self.shards.is_empty() {
            return Ok(vec![self.clone()]);
        }
        self.shards.iter().map(|shard| self.at_shard(shard)).collect()
    }

    /// Where a plan activation on `area` goes: to every district's shard for
    /// an area above the districts (the city) when the city is split; else
    /// to the shard the dispatcher finds for it.
    pub(crate) fn for_area(&self, areas: &AreaMap, area: &str) -> anyhow::Result<Vec<Operator>> {
        let area = AreaId::new(area);
        let above_districts = areas.get(&area).is_some() && areas.placement_of_area(&area).at(AreaLevel::District).is_none();
        if above_districts { self.every_shard() } else { Ok(vec![self.clone()]) }
    }

    /// Runs `call` at the owner (see `Connection::call`: again at the owner
    /// when refused because the owner moved or because another shard's
    /// owner holds what it is about, for up to [`FOLLOW_OWNER_FOR`]). A call
    /// that is retried must be safe to repeat (incidents carry their own ids
    /// for this).
    pub(crate) async fn call<T, Call>(&mut self, what: &str, mut call: impl FnMut(CommandClient) -> Call) -> anyhow::Result<T>
    where
        Call: Future<Output = Result<T, tonic::Status>>,
    {
        self.connection.call(|connection| call(connection.commands())).await.map_err(|status| status_error(what, status))
    }

    /// As [`Operator::call`], with the connection itself, for the services
    /// beside the command API (supplies, shelters, rosters).
    pub(crate) async fn call_with<T, Call>(&mut self, what: &str, mut call: impl FnMut(&Connection) -> Call) -> anyhow::Result<T>
    where
        Call: Future<Output = Result<T, tonic::Status>>,
    {
        self.connection.call(|connection| call(connection)).await.map_err(|status| status_error(what, status))
    }

    /// Whether what lies in `district` (`None`: in no district) belongs
    /// to this operator's shard: always for a city run as one shard; else
    /// when it is this shard's district, or in none and this is the first
    /// shard.
    pub(crate) fn serves(&self, district: Option<&str>) -> bool {
        let Some(mine) = self.shard.as_deref() else { return true };
        match district {
            Some(district) => district == mine,
            None => self.shards.first().map(String::as_str) == Some(mine),
        }
    }

    /// Everyone on the roster of this operator's dispatcher (or shard),
    /// read a page at a time.
    pub(crate) async fn people(&mut self) -> anyhow::Result<Vec<pb::Agent>> {
        let mut people = Vec::new();
        let mut after = String::new();
        loop {
            let request = pb::ListAgentsRequest { limit: 1000, after_id: after.clone(), ..Default::default() };
            let page = self
                .call("listing people", |mut commands| {
                    let request = request.clone();
                    async move { commands.list_agents(request).await }
                })
                .await?
                .into_inner()
                .agents;
            let Some(last) = page.last().and_then(|agent| agent.spec.as_ref()).map(|spec| spec.id.clone()) else { break };
            people.extend(page);
            after = last;
        }
        Ok(people)
    }

    /// Every open incident this operator's dispatcher (or shard) holds,
    /// read a page at a time.
    pub(crate) async fn open_incidents(&mut self) -> anyhow::Result<Vec<pb::Incident>> {
        let mut incidents = Vec::new();
        let mut after = String::new();
        loop {
            let request = pb::ListIncidentsRequest { open_only: true, limit: 1000, after_id: after.clone() };
            let page = self
                .call("listing open incidents", |mut commands| {
                    let request = request.clone();
                    async move { commands.list_incidents(request).await }
                })
                .await?
                .into_inner()
                .incidents;
            let Some(last) = page.last().map(|incident| incident.id.clone()) else { break };
            incidents.extend(page);
            after = last;
        }
        Ok(incidents)
    }

    /// Events from the start of the watch on, at the owner, resumed after a
    /// failover from the event after the last one seen.
    pub(crate) async fn watch(&self) -> anyhow::Result<EventStream> {
        EventStream::opened(self.connection.clone(), 0, WATCH_BACKOFF)
            .await
            .map_err(|status| status_error("watching events", status))
    }
}

/// Follows one shard's events into `sender` (tagged with `shard`, an
/// index), resuming at the owner after a failover, until aborted.
pub(crate) fn watch_shard(
    mut events: EventStream,
    shard: usize,
    sender: mpsc::Sender<(usize, pb::Event)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.next().await {
                Watched::Event(event) => {
                    if sender.send((shard, *event)).await.is_err() {
                        return;
                    }
                }
                // A break: the stream says when it tries again.
                Watched::Opened | Watched::Lost { .. } => {}
            }
        }
    })
}
