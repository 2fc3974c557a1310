//! A partner's webhook endpoint on loopback (hyper, HTTP/1.1): it records
//! every delivery (headers, body), answers 200, an error status, or after a
//! delay, as the test says, and can go down (its listener and connections
//! closed) and come back on the same port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

/// One delivery as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// When the request arrived, ms since the Unix epoch.
    pub arrived_ms: i64,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The CloudEvent's `id`, the journal seq.
    pub fn seq(&self) -> u64 {
        self.json()["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or(0)
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Ok,
    /// This status, and the delivery is not recorded.
    Status(u16),
    /// 200 after this long.
    After(Duration),
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    refused: usize,
}

pub struct WebhookReceiver {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    answer: Arc<Mutex<Answer>>,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

impl WebhookReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<WebhookReceiver> {
        let mut receiver = WebhookReceiver {
            address: "127.0.0.1:0".parse()?,
            shared: Arc::default(),
            answer: Arc::new(Mutex::new(Answer::Ok)),
            serving: None,
        };
        receiver.up().await?;
        Ok(receiver)
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/pingji", self.address)
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).received.clone()
    }

    /// Deliveries answered with an error status.
    pub fn refused(&self) -> usize {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).refused
    }

    /// The seqs received, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.received().iter().map(Received::seq).collect()
    }

    /// Closes the listener and every connection: deliveries are refused.
    pub async fn down(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.address).with_context(|| format!("cannot bind {}", self.address))?;
        let listener = socket.listen(128)?;
        self.address = listener.local_addr()?;
        let shared = self.shared.clone();
        let answer = self.answer.clone();
        self.serving = Some(tokio::spawn(async move {
            // Connections end with the accept loop (aborting drops the set).
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                let answer = answer.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(request, shared.clone(), answer.clone()));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        }));
        Ok(())
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Mutex<Shared>>,
    answer: Arc<Mutex<Answer>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = request.into_body().collect().await.map(|body| body.to_bytes().to_vec()).unwrap_or_default();
    let answer = *answer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let status = match answer {
        Answer::Ok => 200,
        Answer::Status(status) => status,
        Answer::After(delay) => {
            tokio::time::sleep(delay).await;
            200
        }
    };
    {
        let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if (200..300).contains(&status) {
            let arrived_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
            shared.received.push(Received { headers, body, arrived_ms });
        } else {
            shared.refused += 1;
        }
    }
    let response = Response::builder().status(status).body(Full::new(Bytes::from_static(b"")));
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
