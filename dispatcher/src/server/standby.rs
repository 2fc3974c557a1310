//! A dispatcher that does not own its shard: a standby.
//!
//! It reports the Pingji services as `NOT_SERVING` on gRPC health and
//! answers every Pingji RPC with `unavailable`, naming the owner in the
//! message and in the metadata `x-pingji-owner: HOST:PORT`, the way a Redis
//! Cluster node answers MOVED: the client connects there. (Redirecting
//! rather than proxying keeps a standby cheap and stateless and keeps one
//! hop between people and the process deciding for them.) Meanwhile it
//! polls the shard's lease and returns once it holds it.

use super::error;
use pingji_proto::v1::ErrorReason;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pingji_proto::v1::agent_service_server::AgentServiceServer;
use pingji_proto::v1::command_service_server::CommandServiceServer;
use pingji_proto::v1::field_service_server::FieldServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Context as TaskContext, Poll, Service, http};
use tonic::server::NamedService;
use tracing::{info, warn};

use super::{agent, command};
use crate::lease::{Acquisition, ShardLease};

pub use pingji_proto::owner::OWNER_METADATA;

/// How long the standby's server gets to close its connections when this
/// process becomes the owner (clients reconnect to the owner's server).
const HANDOVER_DRAIN: Duration = Duration::from_secs(1);

/// What a standby tells clients.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Notice {
    /// Not asked the lease yet.
    Starting { shard: String },
    /// Another process owns the shard.
    Owned { shard: String, address: String },
    /// Redis cannot be reached, so the owner is not known.
    StoreUnreachable { shard: String, error: String },
    /// This process is replaying its journal (any store; see `starting`).
    Recovering,
}

impl Notice {
    fn status(&self) -> Status {
        match self {
            Notice::Starting { shard } => error::retry_later(
                ErrorReason::NotOwner,
                format!("shard {shard} has no owner yet; this dispatcher is starting, retry in a moment"),
            ),
            Notice::Owned { shard, address } => error::redirect(
                ErrorReason::NotOwner,
                format!("shard {shard} is owned by the dispatcher at {address}; connect there"),
                shard,
                address,
            ),
            Notice::StoreUnreachable { shard, error } => error::retry_later(
                ErrorReason::StoreUnavailable,
                format!("shard {shard} has no reachable owner: {error}; retry in a moment"),
            ),
            Notice::Recovering => error::retry_later(
                ErrorReason::NotOwner,
                "this dispatcher is starting: it is reading its journal back; retry in a moment",
            ),
        }
    }
}

/// Stands in for the gRPC service `S` (same name, same routes) and answers
/// every call with the current notice.
pub(super) struct Standby<S> {
    notice: watch::Receiver<Notice>,
    service: PhantomData<fn() -> S>,
}

impl<S> Clone for Standby<S> {
    fn clone(&self) -> Self {
        Standby { notice: self.notice.clone(), service: PhantomData }
    }
}

impl<S: NamedService> NamedService for Standby<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Standby<S> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        // A trailers-only answer: unary and streaming clients alike read it
        // as the call's status.
        std::future::ready(Ok(self.notice.borrow().status().into_http()))
    }
}

pub(super) type AgentStandby = Standby<AgentServiceServer<agent::AgentApi>>;
pub(super) type CommandStandby = Standby<CommandServiceServer<command::CommandApi>>;
pub(super) type FieldStandby = Standby<FieldServiceServer<super::field::FieldApi>>;

/// The Pingji services as a starting process answers them while it reads
/// its journal back: every call `unavailable`, to be retried (a client that
/// got `unimplemented` would take it as final).
pub(super) fn recovering_services() -> (AgentStandby, FieldStandby, CommandStandby) {
    let (_, notice) = watch::channel(Notice::Recovering);
    (
        AgentStandby { notice: notice.clone(), service: PhantomData },
        FieldStandby { notice: notice.clone(), service: PhantomData },
        CommandStandby { notice, service: PhantomData },
    )
}

/// Serves as a standby on `listener` until this process holds the lease of
/// one of `leases` (tried in order at each poll); returns that lease and its
/// fencing token, or `None` if `shutdown` came first. Clients are sent to
/// the owner of the first shard listed. The listener is a clone: the owner's
/// server takes the same socket over, so connections that arrive during the
/// handover wait in its backlog.
pub(super) async fn serve_until_owner(
    leases: &[Arc<ShardLease>],
    listener: std::net::TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    config: &super::config::Config,
) -> anyhow::Result<Option<(Arc<ShardLease>, u64)>> {
    let Some((first, rest)) = leases.split_first() else {
        anyhow::bail!("no shard to stand by for; give --shard");
    };
    let shard = first.shard().id().to_string();
    let (notice_sender, notice) = watch::channel(Notice::Starting { shard: shard.clone() });
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_not_serving::<AgentServiceServer<agent::AgentApi>>().await;
    health_reporter.set_not_serving::<FieldServiceServer<super::field::FieldApi>>().await;
    health_reporter.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
    let (stop_server, mut server_stop) = watch::channel(false);
    let listener = TcpListener::from_std(listener)?;
    let server = super::config::server_builder(config)?
        .add_service(health_service)
        .add_service(super::config::reflection_v1()?)
        .add_service(super::config::reflection_v1alpha()?)
        .add_service(AgentStandby { notice: notice.clone(), service: PhantomData })
        .add_service(FieldStandby { notice: notice.clone(), service: PhantomData })
        .add_service(CommandStandby { notice, service: PhantomData })
        .serve_with_incoming_shutdown(config.connections().incoming(listener), async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        });
    let mut server = tokio::spawn(server);

    let mut polls = tokio::time::interval(first.config().renew_every);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let token = loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break None;
                }
            }
            result = &mut server => {
                result?.context("the standby gRPC server stopped")?;
                anyhow::bail!("the standby gRPC server stopped");
            }
            _ = polls.tick() => {
                let (asking_first, asking_rest) = (first.clone(), rest.to_vec());
                let acquisition = tokio::task::spawn_blocking(move || try_each(&asking_first, &asking_rest)).await?;
                let next = match acquisition {
                    Ok((index, Acquisition::Acquired { token })) => break Some((leases[index].clone(), token)),
                    Ok((_, Acquisition::Held(holder))) => Notice::Owned { shard: shard.clone(), address: holder.address },
                    Err(error) => Notice::StoreUnreachable { shard: shard.clone(), error: error.to_string() },
                };
                if *notice_sender.borrow() != next {
                    match &next {
                        Notice::Owned { address, .. } => info!(shard = %shard, owner = %address, "standing by: another dispatcher owns the shard"),
                        Notice::StoreUnreachable { error, .. } => warn!(shard = %shard, %error, "standing by: cannot reach the shard's store"),
                        Notice::Starting { .. } | Notice::Recovering => {}
                    }
                    let _ = notice_sender.send(next);
                }
            }
        }
    };

    let _ = stop_server.send(true);
    match tokio::time::timeout(HANDOVER_DRAIN, &mut server).await {
        Ok(result) => result?.context("the standby gRPC server stopped")?,
        Err(_) => server.abort(),
    }
    Ok(token)
}

/// Tries `first`, then each of `rest` in turn: the index of the lease taken
/// (0 for `first`), else who holds `first`.
fn try_each(first: &ShardLease, rest: &[Arc<ShardLease>]) -> Result<(usize, Acquisition), crate::shard::RedisStoreError> {
    let held = match first.try_acquire()? {
        Acquisition::Acquired { token } => return Ok((0, Acquisition::Acquired { token })),
        held => held,
    };
    for (index, lease) in rest.iter().enumerate() {
        if let Ok(Acquisition::Acquired { token }) = lease.try_acquire() {
            return Ok((index + 1, Acquisition::Acquired { token }));
        }
    }
    Ok((0, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_named_in_the_message_and_the_metadata() {
        let status = Notice::Owned { shard: "city".into(), address: "10.1.2.3:50051".into() }.status();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "shard city is owned by the dispatcher at 10.1.2.3:50051; connect there");
        assert_eq!(status.metadata().get(OWNER_METADATA).and_then(|value| value.to_str().ok()), Some("10.1.2.3:50051"));
        let response: http::Response<Body> = status.into_http();
        assert_eq!(response.headers().get(OWNER_METADATA).and_then(|value| value.to_str().ok()), Some("10.1.2.3:50051"));
        assert_eq!(response.headers().get("grpc-status").and_then(|value| value.to_str().ok()), Some("14"));
    }

    #[test]
    fn without_redis_there_is_no_owner_to_name() {
        let status = Notice::StoreUnreachable {
            shard: "city".into(),
            error: "redis at redis://127.0.0.1:6379 is unreachable: refused".into(),
        }
        .status();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.metadata().get(OWNER_METADATA).is_none());
        assert!(status.message().contains("is unreachable"), "{}", status.message());
    }
}
