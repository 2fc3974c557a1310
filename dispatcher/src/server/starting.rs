//! What a dispatcher answers while it opens its journal and replays it:
//! gRPC health, with the Pingji services `NOT_SERVING` (liveness `""` is
//! `SERVING`: the process is up, just not ready), and every Pingji call
//! `unavailable` (retry in a moment; `unimplemented` would read as final). Without it, a client
//! or an orchestrator probing readiness during a long replay would get no
//! answer at all.
//!
//! It serves on a clone of the listening socket, like a standby; the real
//! server takes the socket over once the state is recovered, and connections
//! that arrive during the handover wait in its backlog.

use std::time::Duration;

use pingji_proto::v1::agent_service_server::AgentServiceServer;
use pingji_proto::v1::command_service_server::CommandServiceServer;
use pingji_proto::v1::field_service_server::FieldServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use super::{agent, command};

/// How long the starting server gets to close its connections at handover.
const HANDOVER_DRAIN: Duration = Duration::from_secs(1);

/// The health-only server of a starting dispatcher; [`Starting::stop`] it
/// before serving for real.
pub(super) struct Starting {
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Starting {
    /// Answers health on `listener` (a clone of the real one) until stopped.
    pub(super) async fn serve(listener: std::net::TcpListener, config: &super::config::Config) -> anyhow::Result<Starting> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_not_serving::<AgentServiceServer<agent::AgentApi>>().await;
        health_reporter.set_not_serving::<FieldServiceServer<super::field::FieldApi>>().await;
        health_reporter.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
        let listener = TcpListener::from_std(listener)?;
        let (stop, mut stopped) = watch::channel(false);
        let (agents, field, commands) = super::standby::recovering_services();
        let server = super::config::server_builder(config)?
            .add_service(health_service)
            .add_service(agents)
            .add_service(field)
            .add_service(commands)
            .serve_with_incoming_shutdown(config.connections().incoming(listener), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        Ok(Starting { stop, server: tokio::spawn(server) })
    }

    pub(super) async fn stop(self) {
        let Starting { stop, mut server } = self;
        let _ = stop.send(true);
        match tokio::time::timeout(HANDOVER_DRAIN, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => debug!(%error, "the starting health server stopped with an error"),
            Ok(Err(error)) => debug!(%error, "the starting health server failed"),
            Err(_) => server.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    async fn status(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
        client
            .check(HealthCheckRequest { service: service.to_string() })
            .await
            .map(|response| response.into_inner().status)
            .unwrap_or(-1)
    }

    #[tokio::test]
    async fn a_starting_dispatcher_is_alive_but_not_ready_and_hands_its_port_over() -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let config = super::super::config::Config::new(super::super::config::Store::Ephemeral);
        let starting = Starting::serve(listener.try_clone()?, &config).await?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?.connect().await?;
        let mut client = HealthClient::new(channel.clone());
        assert_eq!(status(&mut client, "").await, ServingStatus::Serving as i32);
        assert_eq!(status(&mut client, "pingji.v1.CommandService").await, ServingStatus::NotServing as i32);
        assert_eq!(status(&mut client, "pingji.v1.AgentService").await, ServingStatus::NotServing as i32);
        // A Pingji call is told to retry (a field agent takes `unimplemented` as final).
        let mut commands = pingji_proto::v1::command_service_client::CommandServiceClient::new(channel);
        let refused = commands.list_incidents(pingji_proto::v1::ListIncidentsRequest::default()).await.expect_err("starting");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("starting"), "{}", refused.message());
        starting.stop().await;
        // The real server can take the same socket over.
        let taken_over = TcpListener::from_std(listener)?;
        assert_eq!(taken_over.local_addr()?, address);
        Ok(())
    }
}
