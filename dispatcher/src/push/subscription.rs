//! A person's push subscription (what `PushManager.subscribe` made on their
//! phone) and the checks it passes before it is kept. The endpoint is a
//! capability URL that identifies one phone: it is never logged in full
//! (see [`Subscription::endpoint_for_logs`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::Uri;
use ring::agreement;

/// The longest endpoint kept (browsers' are a few hundred characters).
pub const MAX_ENDPOINT_CHARS: usize = 2048;
/// Subscriptions kept per person (their phones); past it the oldest goes.
pub const MAX_PER_PERSON: usize = 5;

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    pub person: String,
    pub endpoint: String,
    /// The phone's ECDH P-256 public key, 65 bytes, base64url.
    pub p256dh: String,
    /// The authentication secret, 16 bytes, base64url.
    pub auth: String,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("person", &self.person)
            .field("endpoint", &self.endpoint_for_logs())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The endpoint's origin only (the push service, not the phone).
    pub fn endpoint_for_logs(&self) -> String {
        origin(&self.endpoint).unwrap_or_else(|_| "(unreadable endpoint)".to_string())
    }

    pub fn p256dh_bytes(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&self.p256dh).unwrap_or_default()
    }

    pub fn auth_bytes(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&self.auth).unwrap_or_default()
    }
}

/// Why a subscription is refused: the field and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> Refused {
    Refused { field, reason: reason.into() }
}

/// `scheme://host[:port]` of a URL: the VAPID audience.
pub fn origin(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let scheme = uri.scheme_str().ok_or("no scheme")?;
    let authority = uri.authority().ok_or("no host")?;
    Ok(format!("{scheme}://{}", authority.as_str()))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks what the app sent; `allow_loopback_http` lets `http://127.0.0.1…`
/// through (a test's local push service), nothing else that is not https.
pub fn checked(
    person: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    allow_loopback_http: bool,
    now_ms: i64,
) -> Result<Subscription, Refused> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(refuse("endpoint", "no endpoint: send PushSubscription.endpoint"));
    }
    if endpoint.chars().count() > MAX_ENDPOINT_CHARS {
        return Err(refuse("endpoint", format!("longer than {MAX_ENDPOINT_CHARS} characters")));
    }
    let uri: Uri = endpoint.parse().map_err(|_| refuse("endpoint", "not a URL"))?;
    let authority = uri.authority().ok_or_else(|| refuse("endpoint", "has no host"))?;
    if authority.as_str().contains('@') {
        return Err(refuse("endpoint", "has a user name or password in it"));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_loopback_http && is_loopback(authority.host()) => {}
        Some("http") if allow_loopback_http => {
            return Err(refuse("endpoint", "http:// is taken for a loopback push service only; use https://"));
        }
        _ => return Err(refuse("endpoint", "must start with https:// (a browser's push service)")),
    }
    let p256dh_bytes = URL_SAFE_NO_PAD
        .decode(p256dh.trim().trim_end_matches('='))
        .map_err(|_| refuse("p256dh", "not base64url (send getKey(\"p256dh\") encoded without padding)"))?;
    if p256dh_bytes.len() != 65 || p256dh_bytes[0] != 4 {
        return Err(refuse("p256dh", format!("{} bytes: must be an uncompressed P-256 point, 65 bytes", p256dh_bytes.len())));
    }
    if !is_on_curve(&p256dh_bytes) {
        return Err(refuse("p256dh", "not a point on the P-256 curve"));
    }
    let auth_bytes = URL_SAFE_NO_PAD
        .decode(auth.trim().trim_end_matches('='))
        .map_err(|_| refuse("auth", "not base64url (send getKey(\"auth\") encoded without padding)"))?;
    if auth_bytes.len() != 16 {
        return Err(refuse("auth", format!("{} bytes: must be 16", auth_bytes.len())));
    }
    Ok(Subscription {
        person: person.to_string(),
        endpoint: endpoint.to_string(),
        p256dh: URL_SAFE_NO_PAD.encode(&p256dh_bytes),
        auth: URL_SAFE_NO_PAD.encode(&auth_bytes),
        created_at_ms: now_ms,
    })
}

/// ring checks a peer's point when it agrees a secret with it: agree once
/// with a throwaway key.
fn is_on_curve(point: &[u8]) -> bool {
    let random = ring::rand::SystemRandom::new();
    let Ok(key) = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &random) else {
        return false;
    };
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point);
    agreement::agree_ephemeral(key, &peer, |_| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    #[test]
    fn subscriptions_are_checked() {
        let kept = checked("p1", "https://fcm.googleapis.com/fcm/send/abc", P256DH, AUTH, false, 7).expect("fine");
        assert_eq!(kept.endpoint_for_logs(), "https://fcm.googleapis.com");
        assert!(!format!("{kept:?}").contains("abc"), "the endpoint's secret part is not in Debug");
        let field = |endpoint: &str, p256dh: &str, auth: &str, loopback: bool| {
            checked("p1", endpoint, p256dh, auth, loopback, 7).expect_err("refused").field
        };
        assert_eq!(field("http://push.example/x", P256DH, AUTH, false), "endpoint");
        assert_eq!(field("http://127.0.0.1:9/x", P256DH, AUTH, false), "endpoint");
        assert!(checked("p1", "http://127.0.0.1:9/x", P256DH, AUTH, true, 7).is_ok());
        assert_eq!(field("http://10.0.0.1/x", P256DH, AUTH, true), "endpoint");
        assert_eq!(field("https://user:pw@push.example/x", P256DH, AUTH, false), "endpoint");
        assert_eq!(field("", P256DH, AUTH, false), "endpoint");
        assert_eq!(field("https://push.example/x", "BCVx", AUTH, false), "p256dh");
        assert_eq!(field("https://push.example/x", &format!("B{}", &"A".repeat(86)), AUTH, false), "p256dh");
        assert_eq!(field("https://push.example/x", P256DH, "BTBZMqHH6r4Tts7J", false), "auth");
        assert_eq!(field("https://push.example/x", P256DH, "!!", false), "auth");
    }
}
