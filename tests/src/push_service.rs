//! A push service on loopback (hyper, HTTP/1.1), as a browser's would be
//! for the dispatcher: it hands out subscriptions whose private keys it
//! keeps (as the phone would), checks each push's VAPID token (ES256
//! signature with the `k` key, audience, expiry, subject) and decrypts the
//! RFC 8291 payload with the subscription's private key. Each subscription
//! answers 201, or a status the test sets (410: the phone unsubscribed).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pingji_dispatcher::push::{ece, vapid};
use ring::agreement;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the browser gives the app, and the app registers.
#[derive(Clone, Debug)]
pub struct TestSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// One push as the service took it.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The subscription's path, `/push/N`.
    pub path: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    /// The VAPID claims, or why the token was refused.
    pub vapid: Result<serde_json::Value, String>,
    /// The decrypted payload, or why it could not be decrypted.
    pub payload: Result<Vec<u8>, String>,
    /// The status answered.
    pub status: u16,
}

impl Pushed {
    pub fn json(&self) -> serde_json::Value {
        self.payload.as_ref().ok().and_then(|payload| serde_json::from_slice(payload).ok()).unwrap_or(serde_json::Value::Null)
    }
}

struct Keys {
    private: [u8; 32],
    public: Vec<u8>,
    auth: [u8; 16],
    status: u16,
    /// Answered first, one per push, before `status`.
    next: std::collections::VecDeque<u16>,
}

#[derive(Default)]
struct Shared {
    subscriptions: HashMap<String, Keys>,
    pushed: Vec<Pushed>,
}

pub struct PushService {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// A private key from fixed bytes: ring makes keys only from its random
/// source, so the source is given the bytes (its documented test hook).
#[allow(deprecated)]
fn private_key(bytes: &[u8; 32]) -> Option<agreement::EphemeralPrivateKey> {
    let random = ring::test::rand::FixedSliceRandom { bytes };
    agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &random).ok()
}

impl PushService {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<PushService> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let serving_shared = shared.clone();
        let serving = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = serving_shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(request, address, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(PushService { address, shared, serving })
    }

    /// `scheme://host:port`: the audience the VAPID tokens must name.
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A new subscription (fresh keys), as `PushManager.subscribe` makes.
    pub fn subscribe(&self) -> anyhow::Result<TestSubscription> {
        let random = SystemRandom::new();
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = format!("/push/{}", shared.subscriptions.len() + 1);
        let (private, public) = loop {
            let mut private = [0u8; 32];
            random.fill(&mut private).map_err(|_| anyhow::anyhow!("no randomness"))?;
            if let Some(key) = private_key(&private) {
                let public = key.compute_public_key().map_err(|_| anyhow::anyhow!("no public key"))?.as_ref().to_vec();
                break (private, public);
            }
        };
        let mut auth = [0u8; 16];
        random.fill(&mut auth).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let subscription = TestSubscription {
            endpoint: format!("{}{path}", self.origin()),
            p256dh: URL_SAFE_NO_PAD.encode(&public),
            auth: URL_SAFE_NO_PAD.encode(auth),
        };
        shared.subscriptions.insert(path, Keys { private, public, auth, status: 201, next: Default::default() });
        Ok(subscription)
    }

    /// Answers pushes to `subscription` with `status` from now on.
    pub fn answer(&self, subscription: &TestSubscription, status: u16) {
        let path = subscription.endpoint.trim_start_matches(&self.origin()).to_string();
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(keys) = shared.subscriptions.get_mut(&path) {
            keys.status = status;
        }
    }

    /// Answers the next pushes to `subscription` with `statuses`, one
    /// each, then as before (a push service busy for a moment: 429, 503).
    pub fn answer_next(&self, subscription: &TestSubscription, statuses: &[u16]) {
        let path = subscription.endpoint.trim_start_matches(&self.origin()).to_string();
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(keys) = shared.subscriptions.get_mut(&path) {
            keys.next.extend(statuses);
        }
    }

    pub fn pushed(&self) -> Vec<Pushed> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pushed.clone()
    }

    /// How many pushes were taken (2xx).
    pub fn delivered(&self) -> usize {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pushed.iter().filter(|p| p.status == 201).count()
    }
}

fn decrypt(keys: &Keys, body: &[u8]) -> Result<Vec<u8>, String> {
    let sender = ece::sender_key(body).map_err(|error| error.to_string())?.to_vec();
    let private = private_key(&keys.private).ok_or("the subscription's key")?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, sender);
    let secret =
        agreement::agree_ephemeral(private, &peer, |secret| secret.to_vec()).map_err(|_| "ECDH with the sender's key failed")?;
    ece::open(body, &secret, &keys.public, &keys.auth).map_err(|error| error.to_string())
}

async fn handle(
    request: Request<Incoming>,
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = request.into_body().collect().await.map(|body| body.to_bytes().to_vec()).unwrap_or_default();
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map(|now| now.as_secs()).unwrap_or_default();
    let vapid = vapid::verify(headers.get("authorization").map_or("", String::as_str), &format!("http://{address}"), now_s);
    let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (status, payload) = match shared.subscriptions.get_mut(&path) {
        None => (404, Err("no such subscription".to_string())),
        Some(keys) => {
            let payload = if headers.get("content-encoding").map(String::as_str) == Some("aes128gcm") {
                decrypt(keys, &body)
            } else {
                Err("not aes128gcm".to_string())
            };
            // A push service refuses an unsigned or undecryptable push (403, 400).
            let status = match (&vapid, &payload) {
                (Err(_), _) => 403,
                (_, Err(_)) => 400,
                _ => keys.next.pop_front().unwrap_or(keys.status),
            };
            (status, payload)
        }
    };
    shared.pushed.push(Pushed { path, headers, vapid, payload, status });
    drop(shared);
    let response = Response::builder().status(status).body(Full::new(Bytes::new()));
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
