//! Waiting on a condition with a deadline, and connecting with retries.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How often a predicate is polled. Short, so that tests do not idle.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Polls `predicate` until it returns true; fails with `what` when `within`
/// passes first, or as soon as the predicate itself fails.
pub async fn wait_until(
    within: Duration,
    what: &str,
    mut predicate: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if predicate().await.with_context(|| format!("while waiting until {what}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {within:?} waiting until {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Opens a channel to `address`, retrying refused connections until `within`
/// passes (a process that is still starting has not bound its port yet).
pub async fn connect_with_retry(address: SocketAddr, within: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?;
    connect_endpoint_with_retry(endpoint, address, within).await
}

/// As [`connect_with_retry`], with an endpoint made by the caller (TLS).
pub async fn connect_endpoint_with_retry(endpoint: Endpoint, address: SocketAddr, within: Duration) -> anyhow::Result<Channel> {
    // Every call answers (or starts its stream) within a minute, or fails
    // saying so: a call that never returns would otherwise hang the suite
    // with nothing to say which (seen once; see the session note).
    let endpoint = endpoint.connect_timeout(Duration::from_secs(5)).timeout(Duration::from_secs(60));
    let deadline = Instant::now() + within;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            // Refused while the server is still starting: try again shortly.
            Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL_EVERY).await,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot connect to {address} within {within:?}"));
            }
        }
    }
}
