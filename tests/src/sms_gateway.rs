//! An SMS and voice gateway on loopback for the notify tests: it records
//! every request the dispatcher makes (a [`WebhookReceiver`] underneath:
//! it can answer an error status, or go down and come back), and posts
//! delivery receipts and people's replies to the dispatcher's inbound
//! webhook, signed as a real gateway would.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use pingji_dispatcher::notify::INBOUND_PATH;
use pingji_dispatcher::webhooks::signature;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::webhook_receiver::{Received, WebhookReceiver};

/// The secret the dispatcher signs its requests to the gateway with.
pub const GATEWAY_SECRET: &str = "gateway-secret-0123456789";
/// The secret the gateway signs its posts to the dispatcher with.
pub const INBOUND_SECRET: &str = "inbound-secret-0123456789";

pub struct SmsGateway {
    pub receiver: WebhookReceiver,
}

impl SmsGateway {
    pub async fn start() -> anyhow::Result<SmsGateway> {
        Ok(SmsGateway { receiver: WebhookReceiver::start().await? })
    }

    /// Where the dispatcher sends SMS and calls.
    pub fn url(&self) -> String {
        self.receiver.url()
    }

    /// The requests taken, as JSON bodies.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.receiver.received().iter().map(Received::json).collect()
    }

    /// The requests taken on `channel` ("sms", "voice").
    pub fn on(&self, channel: &str) -> Vec<serde_json::Value> {
        self.requests().into_iter().filter(|request| request["channel"] == channel).collect()
    }

    /// Posts a reply from `from` saying `text` to the dispatcher's web port.
    pub async fn reply(&self, web: SocketAddr, from: &str, text: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let body = serde_json::json!({ "type": "reply", "from": from, "text": text }).to_string();
        post_inbound(web, &body, now_s(), INBOUND_SECRET).await
    }

    /// Posts a delivery receipt for the request with idempotency key `key`.
    pub async fn receipt(&self, web: SocketAddr, key: &str, status: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let body = serde_json::json!({ "type": "receipt", "key": key, "status": status }).to_string();
        post_inbound(web, &body, now_s(), INBOUND_SECRET).await
    }
}

pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Posts `body` to the inbound webhook signed with `secret` at `timestamp`;
/// the status and the JSON answer.
pub async fn post_inbound(web: SocketAddr, body: &str, timestamp: u64, secret: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let timestamp = timestamp.to_string();
    let signed = signature(secret, &timestamp, body.as_bytes());
    post_raw(web, body, &[("x-pingji-timestamp", &timestamp), ("x-pingji-signature", &signed), ("x-pingji-gateway", "test")])
        .await
}

/// Posts `body` with `headers` as they are (a forger's post).
pub async fn post_raw(web: SocketAddr, body: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, answer) = post_to(web, INBOUND_PATH, "application/json", body, headers).await?;
    // A chunked answer: the JSON is the line that starts with '{'.
    let json = answer.lines().find(|line| line.starts_with('{')).unwrap_or("null");
    Ok((status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null)))
}

/// Posts Twilio's form `params` to `path_and_query` (under
/// `/notify/inbound/twilio`), signed for `public_base` as Twilio signs
/// with `auth_token`; the status and the answer's body.
pub async fn post_twilio(
    web: SocketAddr,
    public_base: &str,
    path_and_query: &str,
    auth_token: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let owned: Vec<(String, String)> = params.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    let signed = pingji_dispatcher::notify::twilio_signature(auth_token, &format!("{public_base}{path_and_query}"), &owned);
    let body = params.iter().map(|(name, value)| format!("{name}={}", encode(value))).collect::<Vec<_>>().join("&");
    post_to(web, path_and_query, "application/x-www-form-urlencoded", &body, &[("x-twilio-signature", &signed)]).await
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() { (byte as char).to_string() } else { format!("%{byte:02X}") })
        .collect()
}

/// One HTTP/1.1 POST; the status and the answer's body as text.
async fn post_to(
    web: SocketAddr,
    path: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(web).await.with_context(|| format!("cannot connect to {web}"))?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, answer) = response.split_once("\r\n\r\n").context("no end of the response head")?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).context("no status")?;
        anyhow::Ok((status, answer.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange).await.context("the inbound post took over 20 s")?
}
