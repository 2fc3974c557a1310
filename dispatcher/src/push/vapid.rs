//! RFC 8292 VAPID: the dispatcher's ECDSA P-256 key, and the
//! `Authorization: vapid t=JWT, k=KEY` header proving a push comes from it.
//! The JWT (ES256) names the push service's origin (`aud`), an expiry at
//! most 24 hours ahead (`exp`) and a contact (`sub`, a mailto: URI).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};

/// How long a token is valid: half the 24 hours RFC 8292 allows, so that a
/// clock a little ahead at the push service still accepts it.
pub const TOKEN_LIFETIME_S: u64 = 12 * 3600;
/// A token is made again when less than this is left of it.
const RENEW_BEFORE_S: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("the VAPID key cannot be read: {0}")]
    BadKey(String),
    #[error("the VAPID token cannot be signed")]
    Signing,
}

/// The dispatcher's VAPID key, and the tokens made with it (one per push
/// service origin, reused until near its expiry).
pub struct VapidKey {
    pair: EcdsaKeyPair,
    public_b64: String,
    random: SystemRandom,
    tokens: Mutex<HashMap<String, (u64, String)>>,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public_b64).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new key, and its PKCS#8 document to keep.
    pub fn generate() -> Result<(VapidKey, Vec<u8>), VapidError> {
        let random = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &random)
            .map_err(|_| VapidError::BadKey("no randomness to make one".to_string()))?;
        let key = VapidKey::from_pkcs8(document.as_ref())?;
        Ok((key, document.as_ref().to_vec()))
    }

    /// A key kept as PKCS#8 (what [`VapidKey::generate`] made).
    pub fn from_pkcs8(document: &[u8]) -> Result<VapidKey, VapidError> {
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, document, &random)
            .map_err(|error| VapidError::BadKey(error.to_string()))?;
        Ok(VapidKey::of(pair, random))
    }

    /// A key given as the usual pair of base64url values (the private
    /// scalar, 32 bytes, and the public point, 65 bytes), as web-push tools
    /// print them.
    pub fn from_base64url(private: &str, public: &str) -> Result<VapidKey, VapidError> {
        let private = URL_SAFE_NO_PAD
            .decode(private.trim().trim_end_matches('='))
            .map_err(|_| VapidError::BadKey("the private key is not base64url".to_string()))?;
        let public = URL_SAFE_NO_PAD
            .decode(public.trim().trim_end_matches('='))
            .map_err(|_| VapidError::BadKey("the public key is not base64url".to_string()))?;
        if private.len() != 32 || public.len() != 65 {
            return Err(VapidError::BadKey(
                "the private key must be 32 bytes and the public key 65 (an uncompressed P-256 point)".to_string(),
            ));
        }
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &private,
            &public,
            &random,
        )
        .map_err(|error| VapidError::BadKey(format!("the private and public keys do not make a P-256 pair: {error}")))?;
        Ok(VapidKey::of(pair, random))
    }

    fn of(pair: EcdsaKeyPair, random: SystemRandom) -> VapidKey {
        let public_b64 = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        VapidKey { pair, public_b64, random, tokens: Mutex::new(HashMap::new()) }
    }

    /// The public key (the app's `applicationServerKey`), base64url.
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// A signed token for pushes to `audience` (the push service's origin,
    /// `https://host[:port]`), valid `TOKEN_LIFETIME_S` from `now_s`.
    pub fn token(&self, audience: &str, subject: &str, now_s: u64) -> Result<String, VapidError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": now_s + TOKEN_LIFETIME_S, "sub": subject });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = self.pair.sign(&self.random, signed.as_bytes()).map_err(|_| VapidError::Signing)?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }

    /// The `Authorization` header for a push to `audience`, with a token
    /// reused while more than an hour of it is left.
    pub fn authorization(&self, audience: &str, subject: &str, now_s: u64) -> Result<String, VapidError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let token = match tokens.get(audience) {
            Some((expires_s, token)) if *expires_s > now_s + RENEW_BEFORE_S => token.clone(),
            _ => {
                let token = self.token(audience, subject, now_s)?;
                // A dispatcher pushes to a few push services: a bound that is never reached in practice.
                if tokens.len() > 1000 {
                    tokens.clear();
                }
                tokens.insert(audience.to_string(), (now_s + TOKEN_LIFETIME_S, token.clone()));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public_b64))
    }
}

/// Checks a `vapid t=…, k=…` header as a push service does: the signature
/// with `k`, the audience and an expiry within 24 hours of `now_s`. The
/// claims when it holds, the reason otherwise.
pub fn verify(authorization: &str, audience: &str, now_s: u64) -> Result<serde_json::Value, String> {
    let rest = authorization.strip_prefix("vapid ").ok_or("not a vapid authorization")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("t=") {
            token = Some(value);
        } else if let Some(value) = part.strip_prefix("k=") {
            key = Some(value);
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    let key = URL_SAFE_NO_PAD.decode(key).map_err(|_| "k is not base64url")?;
    let (signed, signature) = token.rsplit_once('.').ok_or("the token has no signature")?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the signature is not base64url")?;
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with k")?;
    let (header, claims) = signed.split_once('.').ok_or("the token has no claims")?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| "bad header")?).map_err(|_| "bad header")?;
    if header["alg"] != "ES256" {
        return Err("alg is not ES256".to_string());
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).map_err(|_| "bad claims")?).map_err(|_| "bad claims")?;
    if claims["aud"] != audience {
        return Err(format!("aud is {}, not {audience}", claims["aud"]));
    }
    let expires = claims["exp"].as_u64().ok_or("no exp")?;
    if expires <= now_s || expires > now_s + 24 * 3600 {
        return Err(format!("exp {expires} is not within 24 hours of {now_s}"));
    }
    if !claims["sub"].as_str().is_some_and(|sub| sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err("sub is not a mailto: or https: URI".to_string());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_public_key() {
        let (key, document) = VapidKey::generate().expect("generate");
        let header = key.authorization("https://push.example.net", "mailto:ops@example.cn", 1_000_000).expect("sign");
        let claims = verify(&header, "https://push.example.net", 1_000_100).expect("verifies");
        assert_eq!(claims["sub"], "mailto:ops@example.cn");
        assert_eq!(claims["exp"], 1_000_000 + TOKEN_LIFETIME_S);
        assert!(header.ends_with(&format!(", k={}", key.public_key())));
        assert!(verify(&header, "https://other.example.net", 1_000_100).is_err(), "another audience");
        assert!(verify(&header, "https://push.example.net", 1_000_000 + TOKEN_LIFETIME_S).is_err(), "expired");
        // The token is reused until an hour before it expires.
        let again = key.authorization("https://push.example.net", "mailto:ops@example.cn", 1_000_000 + 3600).expect("sign");
        assert_eq!(header, again);
        let renewed = key
            .authorization("https://push.example.net", "mailto:ops@example.cn", 1_000_000 + TOKEN_LIFETIME_S - 60)
            .expect("sign");
        assert_ne!(header, renewed);
        // A forged signature (another key's, same claims) fails.
        let (other, _) = VapidKey::generate().expect("generate");
        let forged = other.authorization("https://push.example.net", "mailto:ops@example.cn", 1_000_000).expect("sign");
        let forged_token = forged.split(", k=").next().expect("token");
        assert!(verify(&format!("{forged_token}, k={}", key.public_key()), "https://push.example.net", 1_000_100).is_err());
        // Kept as PKCS#8, read back as the same key.
        assert_eq!(VapidKey::from_pkcs8(&document).expect("reads").public_key(), key.public_key());
    }

    #[test]
    fn keys_given_as_base64url() {
        // The RFC 8291 example's key pair serves as a P-256 pair here.
        let key = VapidKey::from_base64url(
            "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8",
        )
        .expect("a pair");
        assert!(key.public_key().starts_with("BP4z9"));
        assert!(
            VapidKey::from_base64url(
                "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
                "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
            )
            .is_err(),
            "a public key of another private key"
        );
        assert!(VapidKey::from_base64url("short", "short").is_err());
    }
}
