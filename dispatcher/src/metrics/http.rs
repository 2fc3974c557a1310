//! The `/metrics` endpoint: a minimal HTTP/1.1 server (one request per
//! connection) for Prometheus to scrape. It is deliberately small rather than
//! a web framework: it serves one read-only page.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Metrics;

/// Scrapes served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client gets to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` on `listener` until `shutdown` turns true, then waits
/// for the scrapes in flight.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "metrics on http://{address}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                connections.spawn(async move {
                    if tokio::time::timeout(CLIENT_TIMEOUT, answer(&metrics, stream)).await.is_err() {
                        debug!("metrics client too slow; dropped");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                warn!(%error, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn answer(metrics: &Metrics, mut stream: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        if head.len() > MAX_REQUEST {
            let _ = respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "request too large\n").await;
            return;
        }
    }
    let request_line = head.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let result = match (method, path) {
        ("GET", "/metrics") => {
            let body = metrics.render().await;
            respond(&mut stream, "200 OK", CONTENT_TYPE, &body).await
        }
        ("GET", "/") => respond(&mut stream, "200 OK", "text/plain", "pingji dispatcher: metrics at /metrics\n").await,
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found; metrics are at /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET is served\n").await,
    };
    if let Err(error) = result {
        debug!(%error, "cannot answer a metrics request");
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
