//! The dispatcher library served in process on `127.0.0.1:0`.
//!
//! The server runs on its own thread with its own multi-threaded tokio
//! runtime rather than in a task of the test's runtime: the future returned
//! by `pingji_dispatcher::server::run` is not `Send` (the `watch::Ref` of
//! `shutdown.wait_for` lives across the awaits of its `select!` branch), so
//! `tokio::spawn` refuses it. A dedicated runtime is also closer to a real
//! process: test clients and the server do not share worker threads.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::Commands;
use anyhow::Context;
use pingji_dispatcher::server::{Config, Store};
use pingji_engine::policy::Policy;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::session::AgentSession;
use crate::wait::{connect_with_retry, wait_until};

/// How long a server may take to start serving (it loads the sample city).
const START_WITHIN: Duration = Duration::from_secs(60);
/// How long one check of a starting server may take.
const CHECK_WITHIN: Duration = Duration::from_secs(3);
/// How long `shutdown` waits for the server task to end.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// Worker threads of each server's runtime.
const SERVER_WORKERS: usize = 2;

type ServerThread = std::thread::JoinHandle<anyhow::Result<()>>;

/// A dispatcher running `pingji_dispatcher::server::run` on its own runtime.
pub struct TestServer {
    address: SocketAddr,
    /// The web port (the command map), when started with [`TestServer::start_with_web`].
    web_address: Option<SocketAddr>,
    policy: Policy,
    stop: watch::Sender<bool>,
    thread: Option<ServerThread>,
}

impl TestServer {
    /// Starts a dispatcher with an ephemeral journal, the sample city loaded
    /// and the default policy, after `tweak` has changed the config (set
    /// `agents_file` to [`crate::sample_roster`] to load the sample roster, or
    /// the policy to [`crate::quick_policy`]). Returns once health reports
    /// the command service as serving.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> anyhow::Result<TestServer> {
        TestServer::start_serving(tweak, false).await
    }

    /// As [`TestServer::start`], with the command map on a web port of its own.
    pub async fn start_with_web(tweak: impl FnOnce(&mut Config)) -> anyhow::Result<TestServer> {
        TestServer::start_serving(tweak, true).await
    }

    async fn start_serving(tweak: impl FnOnce(&mut Config), with_web: bool) -> anyhow::Result<TestServer> {
        let mut config = Config::new(Store::Ephemeral);
        config.areas_file = Some(crate::sample::sample_city());
        // Tests close their streams before shutting down; a short drain keeps
        // a forgotten stream from holding the test for long.
        config.drain_timeout = Duration::from_secs(2);
        // Grid staffing checks would add their own events to every stream;
        // tests about them turn them back on.
        config.policy.staffing_check_s = 0;
        config.bootstrap_admin_token = Some(crate::auth::ADMIN_TOKEN.to_string());
        tweak(&mut config);
        // Bound here so that the address is known before the server runs;
        // handed to the server's runtime as a std listener.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let web_listener = if with_web {
            let web_listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
            web_listener.set_nonblocking(true)?;
            Some(web_listener)
        } else {
            None
        };
        let web_address = web_listener.as_ref().map(std::net::TcpListener::local_addr).transpose()?;
        let (stop, shutdown) = watch::channel(false);
        let policy = config.policy.clone();
        let thread = std::thread::Builder::new().name(format!("dispatcher-{}", address.port())).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(SERVER_WORKERS).enable_all().build()?;
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                let web_listener = web_listener.map(TcpListener::from_std).transpose()?;
                pingji_dispatcher::server::run_with_web(config, listener, web_listener, shutdown).await
            })
        })?;
        let mut server = TestServer { address, web_address, policy, stop, thread: Some(thread) };
        server.wait_serving().await?;
        Ok(server)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The command map's address, for a server started with the web port.
    pub fn web_address(&self) -> Option<SocketAddr> {
        self.web_address
    }

    /// The policy the server runs with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        connect_with_retry(self.address, START_WITHIN).await
    }

    /// A command client acting as the test admin.
    pub async fn command(&self) -> anyhow::Result<Commands> {
        Ok(crate::auth::commands(self.channel().await?))
    }

    /// A command client sending `token` (or none).
    pub async fn command_with(&self, token: Option<&str>) -> anyhow::Result<Commands> {
        Ok(crate::auth::commands_with(self.channel().await?, token))
    }

    /// A new token for person `id`.
    pub async fn agent_token(&self, id: &str) -> anyhow::Result<String> {
        crate::auth::agent_token(&mut self.command().await?, id).await
    }

    /// Opens `id`'s session with a newly issued token.
    pub async fn open_session(&self, id: &str) -> anyhow::Result<AgentSession> {
        let token = self.agent_token(id).await?;
        AgentSession::open(&mut self.agents().await?, id, &token).await
    }

    pub async fn agents(&self) -> anyhow::Result<AgentServiceClient<Channel>> {
        Ok(AgentServiceClient::new(self.channel().await?))
    }

    pub async fn health(&self) -> anyhow::Result<HealthClient<Channel>> {
        Ok(HealthClient::new(self.channel().await?))
    }

    /// Adds `spec` to the roster, opens its session and reports its location
    /// at (lon, lat); returns once the dispatcher has placed the person there.
    pub async fn connect_person_at(&self, spec: pb::AgentSpec, lon: f64, lat: f64) -> anyhow::Result<AgentSession> {
        let mut command = self.command().await?;
        let id = spec.id.clone();
        command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await.with_context(|| format!("upsert {id}"))?;
        connect_located(&mut command, &mut self.agents().await?, &id, lon, lat).await
    }

    /// Sends the stop signal and joins the server, so that an error or a
    /// panic in the server fails the test.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.join().await
    }

    async fn join(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let joining = tokio::task::spawn_blocking(move || thread.join());
        let joined = tokio::time::timeout(STOP_WITHIN, joining)
            .await
            .context("the server did not stop after the shutdown signal")?
            .context("the joining task failed")?;
        match joined {
            Ok(result) => result.context("the server returned an error"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn has_stopped(&self) -> bool {
        self.thread.as_ref().is_some_and(|thread| thread.is_finished())
    }

    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let server = &*self;
        let result = wait_until(START_WITHIN, "the command service is serving", async || {
            anyhow::ensure!(!server.has_stopped(), "the server stopped while starting");
            // A fresh connection and a bounded check each try: one call left
            // unanswered (CI saw a start time out once with the server
            // otherwise fine) must not hold the whole wait.
            let asked = async {
                let mut health = HealthClient::new(connect_with_retry(server.address, CHECK_WITHIN).await?);
                anyhow::Ok(is_serving(&mut health, "pingji.v1.CommandService").await)
            };
            Ok(matches!(tokio::time::timeout(CHECK_WITHIN, asked).await, Ok(Ok(true))))
        })
        .await;
        if let Err(error) = result {
            // Surface the server's own error rather than only the timeout.
            let _ = self.stop.send(true);
            return self.join().await.context("the server failed to start").and(Err(error));
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed before `shutdown` still stops its server.
        let _ = self.stop.send(true);
    }
}

/// Whether the health service reports `service` as serving.
pub async fn is_serving(health: &mut HealthClient<Channel>, service: &str) -> bool {
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_string() };
    match health.check(request).await {
        Ok(response) => response.into_inner().status == ServingStatus::Serving as i32,
        Err(_) => false,
    }
}

/// Issues `agent_id` a token, opens their session with it, reports
/// (lon, lat) and waits until the dispatcher shows that location for the
/// person.
pub async fn connect_located(
    command: &mut Commands,
    agents: &mut AgentServiceClient<Channel>,
    agent_id: &str,
    lon: f64,
    lat: f64,
) -> anyhow::Result<AgentSession> {
    let token = crate::auth::agent_token(command, agent_id).await?;
    let session = AgentSession::open(agents, agent_id, &token).await?;
    session.send_location(lon, lat).await?;
    wait_until(Duration::from_secs(20), &format!("{agent_id} is located"), async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: agent_id.to_string() }).await?.into_inner();
        Ok(agent.connected && agent.location.is_some_and(|at| at.lon == lon && at.lat == lat))
    })
    .await?;
    Ok(session)
}
