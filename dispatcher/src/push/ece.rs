//! RFC 8291 message encryption for Web Push: the `aes128gcm` content
//! coding (RFC 8188) in one record, keyed by an ephemeral ECDH P-256 key
//! agreed with the subscription's `p256dh` key and mixed with its `auth`
//! secret. Only the sender's side runs in the dispatcher; [`open`] is the
//! user agent's side, for tests and tools that play a push service.

use ring::rand::SecureRandom;
use ring::{aead, agreement, hmac};

/// The record size written in the header: a push message is one record, so
/// any value above the message fits; 4096 is what browsers send.
pub const RECORD_SIZE: u32 = 4096;
/// The header: salt (16), record size (4), key id length (1), the sender's
/// public key (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AES-GCM tag.
const TAG_LEN: usize = 16;
/// The largest plaintext: push services take bodies of 4096 bytes, less the
/// header, the tag and the padding delimiter.
pub const MAX_PLAINTEXT: usize = 4096 - HEADER_LEN - TAG_LEN - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    #[error("the subscription's p256dh key is not a P-256 point")]
    BadPublicKey,
    #[error("the auth secret must be 16 bytes")]
    BadAuth,
    #[error("the payload is {0} bytes; at most {MAX_PLAINTEXT} fit in a push message")]
    TooLarge(usize),
    #[error("no randomness available")]
    Random,
    #[error("the message cannot be decrypted: {0}")]
    Undecryptable(&'static str),
}

/// Encrypts `plaintext` for the subscription keys `ua_public` (65 bytes)
/// and `auth` (16 bytes) with a fresh key and salt: the request body.
pub fn seal(plaintext: &[u8], ua_public: &[u8], auth: &[u8], random: &dyn SecureRandom) -> Result<Vec<u8>, EceError> {
    let mut salt = [0u8; 16];
    random.fill(&mut salt).map_err(|_| EceError::Random)?;
    let as_private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, random).map_err(|_| EceError::Random)?;
    seal_with(plaintext, ua_public, auth, as_private, salt)
}

/// [`seal`] with the sender's key and salt given (the RFC's example fixes them).
pub fn seal_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    as_private: agreement::EphemeralPrivateKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::TooLarge(plaintext.len()));
    }
    if auth.len() != 16 {
        return Err(EceError::BadAuth);
    }
    if ua_public.len() != 65 || ua_public[0] != 4 {
        return Err(EceError::BadPublicKey);
    }
    let as_public = as_private.compute_public_key().map_err(|_| EceError::Random)?;
    let as_public = as_public.as_ref().to_vec();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public);
    let ecdh_secret =
        agreement::agree_ephemeral(as_private, &peer, |secret| secret.to_vec()).map_err(|_| EceError::BadPublicKey)?;
    let (key, nonce) = content_keys(&ecdh_secret, auth, ua_public, &as_public, &salt);
    let mut record = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(&salt);
    record.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    record.push(65);
    record.extend_from_slice(&as_public);
    let mut body = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(plaintext);
    // The padding delimiter of the last (only) record, no padding.
    body.push(2);
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &key).map_err(|_| EceError::Random)?);
    key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut body)
        .map_err(|_| EceError::Random)?;
    record.extend_from_slice(&body);
    Ok(record)
}

/// The sender's public key in a message's header (to agree the ECDH secret).
pub fn sender_key(message: &[u8]) -> Result<&[u8], EceError> {
    if message.len() < HEADER_LEN + TAG_LEN + 1 || message[20] != 65 {
        return Err(EceError::Undecryptable("the header is not a Web Push aes128gcm header"));
    }
    Ok(&message[21..HEADER_LEN])
}

/// The user agent's side: decrypts `message` with the ECDH secret agreed
/// between the subscription's private key and [`sender_key`].
pub fn open(message: &[u8], ecdh_secret: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, EceError> {
    let as_public = sender_key(message)?;
    let salt: [u8; 16] = message[..16].try_into().map_err(|_| EceError::Undecryptable("no salt"))?;
    let (key, nonce) = content_keys(ecdh_secret, auth, ua_public, as_public, &salt);
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &key).map_err(|_| EceError::Random)?);
    let mut body = message[HEADER_LEN..].to_vec();
    let plain = key
        .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut body)
        .map_err(|_| EceError::Undecryptable("the tag does not match (wrong keys or a changed message)"))?;
    // Padding is zeros after the delimiter; the last record's delimiter is 2.
    let end = plain.iter().rposition(|byte| *byte != 0).ok_or(EceError::Undecryptable("no padding delimiter"))?;
    if plain[end] != 2 {
        return Err(EceError::Undecryptable("not the last record's padding delimiter"));
    }
    Ok(plain[..end].to_vec())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.sign().as_ref());
    out
}

/// RFC 8291 section 3.4 then RFC 8188 section 2.2: the content encryption
/// key and nonce. Each HKDF here needs one block of output, so each is an
/// extract (HMAC with the salt) and one expand (HMAC of info || 0x01).
fn content_keys(ecdh_secret: &[u8], auth: &[u8], ua_public: &[u8], as_public: &[u8], salt: &[u8]) -> ([u8; 16], [u8; 12]) {
    let prk_key = hmac_sha256(auth, &[ecdh_secret]);
    let ikm = hmac_sha256(&prk_key, &[b"WebPush: info\0", ua_public, as_public, &[1]]);
    let prk = hmac_sha256(salt, &[&ikm]);
    let cek = hmac_sha256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac_sha256(&prk, &[b"Content-Encoding: nonce\0", &[1]]);
    let mut key = [0u8; 16];
    key.copy_from_slice(&cek[..16]);
    let mut iv = [0u8; 12];
    iv.copy_from_slice(&nonce[..12]);
    (key, iv)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }

    /// A key from fixed bytes, as the RFC's example has them (ring makes
    /// private keys only from its random source).
    #[allow(deprecated)]
    fn fixed_key(private: &[u8]) -> agreement::EphemeralPrivateKey {
        let random = ring::test::rand::FixedSliceRandom { bytes: private };
        agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &random).expect("a valid scalar")
    }

    const PLAINTEXT: &str = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const HEADER: &str =
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const CIPHERTEXT: &str = "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ";

    /// RFC 8291 section 5 and Appendix A, byte for byte.
    #[test]
    fn the_rfc_8291_example() {
        let salt: [u8; 16] = b64(SALT).try_into().expect("16 bytes");
        let as_private = fixed_key(&b64(AS_PRIVATE));
        assert_eq!(as_private.compute_public_key().expect("public").as_ref(), b64(AS_PUBLIC).as_slice());
        let message = seal_with(&b64(PLAINTEXT), &b64(UA_PUBLIC), &b64(AUTH), as_private, salt).expect("seal");
        assert_eq!(URL_SAFE_NO_PAD.encode(&message[..HEADER_LEN]), HEADER);
        assert_eq!(URL_SAFE_NO_PAD.encode(&message[HEADER_LEN..]), CIPHERTEXT);
        // The appendix's intermediate keys.
        let (cek, nonce) = content_keys(&b64(ECDH_SECRET), &b64(AUTH), &b64(UA_PUBLIC), &b64(AS_PUBLIC), &salt);
        assert_eq!(URL_SAFE_NO_PAD.encode(cek), "oIhVW04MRdy2XN9CiKLxTg");
        assert_eq!(URL_SAFE_NO_PAD.encode(nonce), "4h_95klXJ5E_qnoN");
        // And the user agent's side reads it back.
        let ua_private = fixed_key(&b64(UA_PRIVATE));
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, sender_key(&message).expect("header").to_vec());
        let secret = agreement::agree_ephemeral(ua_private, &peer, |secret| secret.to_vec()).expect("agree");
        assert_eq!(URL_SAFE_NO_PAD.encode(&secret), ECDH_SECRET);
        assert_eq!(open(&message, &secret, &b64(UA_PUBLIC), &b64(AUTH)).expect("open"), b64(PLAINTEXT));
    }

    #[test]
    fn fresh_keys_round_trip_and_bad_input_is_refused() {
        let random = ring::rand::SystemRandom::new();
        let message = seal(b"{\"kind\":\"offer\"}", &b64(UA_PUBLIC), &b64(AUTH), &random).expect("seal");
        let again = seal(b"{\"kind\":\"offer\"}", &b64(UA_PUBLIC), &b64(AUTH), &random).expect("seal");
        assert_ne!(message, again, "a fresh salt and key every time");
        let ua_private = fixed_key(&b64(UA_PRIVATE));
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, sender_key(&message).expect("header").to_vec());
        let secret = agreement::agree_ephemeral(ua_private, &peer, |secret| secret.to_vec()).expect("agree");
        assert_eq!(open(&message, &secret, &b64(UA_PUBLIC), &b64(AUTH)).expect("open"), b"{\"kind\":\"offer\"}");
        let mut changed = message.clone();
        *changed.last_mut().expect("bytes") ^= 1;
        assert!(open(&changed, &secret, &b64(UA_PUBLIC), &b64(AUTH)).is_err());
        assert_eq!(seal(b"x", &[4u8; 65], &b64(AUTH), &random), Err(EceError::BadPublicKey));
        assert_eq!(seal(b"x", &b64(UA_PUBLIC), &[0u8; 15], &random), Err(EceError::BadAuth));
        let big = vec![b'a'; MAX_PLAINTEXT + 1];
        assert_eq!(seal(&big, &b64(UA_PUBLIC), &b64(AUTH), &random), Err(EceError::TooLarge(MAX_PLAINTEXT + 1)));
        assert_eq!(seal(&big[1..], &b64(UA_PUBLIC), &b64(AUTH), &random).expect("fits").len(), 4096);
    }
}
