//! TLS for the clients (field agent, console, drill): the files a person
//! names (`--ca`, `--client-cert`, `--client-key`), read and checked once,
//! and the endpoints built from them. One place, so that every client
//! chooses `https://` the same way, follows a standby's redirect with the
//! same settings, and explains a failed handshake in the same words.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The TLS files a client was given; all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM certificate(s) of the CA that signed the dispatcher's certificate.
    /// Without it, `https://` trusts the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for a dispatcher that requires one (mTLS).
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key: Option<PathBuf>,
}

/// A TLS file that cannot be used, said so that a person can fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read the {what} {}: {reason}", .path.display())]
    Unreadable { what: &'static str, path: PathBuf, reason: String },
    #[error("{} is not a PEM {what} (no \"-----BEGIN {marker}\" line)", .path.display())]
    NotPem { what: &'static str, path: PathBuf, marker: &'static str },
    #[error("a client certificate needs its key and the key its certificate: give both --client-cert and --client-key")]
    HalfIdentity,
    #[error(
        "{} is an X.509 v1 certificate, which TLS refuses (UnsupportedCertVersion); make a v3 certificate: sign the \
         request with extensions, e.g. openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -out client.pem -days 365 \
         -extfile <(printf 'extendedKeyUsage=clientAuth') (see docs/security.md)",
        .path.display()
    )]
    VersionOne { path: PathBuf },
}

/// The client's TLS settings, read and checked. The default is none: plain
/// `http://`, and `https://` with the system's roots.
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

// Not derived: tonic's `Identity` would print the private key.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("ca", &self.ca.is_some()).field("client_certificate", &self.identity.is_some()).finish()
    }
}

impl ClientTlsFiles {
    /// Reads and checks the files; a missing or wrong file is named.
    pub fn load(&self) -> Result<ClientTls, TlsFileError> {
        let ca = match &self.ca {
            Some(path) => Some(Certificate::from_pem(read_pem(path, "CA certificate", "CERTIFICATE")?)),
            None => None,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certificate = read_pem(cert, "client certificate", "CERTIFICATE")?;
                if x509_version(&certificate) == Some(1) {
                    return Err(TlsFileError::VersionOne { path: cert.clone() });
                }
                Some(Identity::from_pem(certificate, read_pem(key, "client key", "PRIVATE KEY")?))
            }
            (None, None) => None,
            _ => return Err(TlsFileError::HalfIdentity),
        };
        Ok(ClientTls { ca, identity })
    }
}

/// Reads a PEM file and checks that it holds a block whose label contains
/// `marker` (`CERTIFICATE`; `PRIVATE KEY` for PKCS#8, RSA and EC keys).
pub fn read_pem(path: &Path, what: &'static str, marker: &'static str) -> Result<Vec<u8>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|error| TlsFileError::Unreadable {
        what,
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text.lines().any(|line| line.starts_with("-----BEGIN ") && line.contains(marker));
    if !has_block {
        return Err(TlsFileError::NotPem { what, path: path.to_path_buf(), marker });
    }
    Ok(bytes)
}

/// The X.509 version (1, 2 or 3) of the first certificate in a PEM file;
/// `None` when it cannot be read (rustls then says what is wrong). A v1
/// certificate has no `[0]` version field at the start of its
/// TBSCertificate.
pub fn x509_version(pem: &[u8]) -> Option<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|line| !(line.starts_with("-----BEGIN") && line.contains("CERTIFICATE")))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    let der = base64_decode(body.trim())?;
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, ... }, ... }
    let inside_certificate = der_inside(&der, 0x30)?;
    let inside_tbs = der_inside(inside_certificate, 0x30)?;
    match inside_tbs.first()? {
        0xA0 => {
            let version = der_inside(der_inside(inside_tbs, 0xA0)?, 0x02)?;
            Some(version.first()? + 1)
        }
        _ => Some(1),
    }
}

/// The contents of the DER element with `tag` at the start of `bytes`.
fn der_inside(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    if *bytes.first()? != tag {
        return None;
    }
    let first = *bytes.get(1)?;
    let (length, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 {
            return None;
        }
        let length = bytes.get(2..2 + count)?.iter().fold(0usize, |length, byte| (length << 8) | *byte as usize);
        (length, 2 + count)
    };
    bytes.get(header..header + length)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |character: u8| match character {
        b'A'..=b'Z' => Some(character - b'A'),
        b'a'..=b'z' => Some(character - b'a' + 26),
        b'0'..=b'9' => Some(character - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for character in text.bytes().filter(|character| !character.is_ascii_whitespace() && *character != b'=') {
        buffer = (buffer << 6) | u32::from(value(character)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

impl ClientTls {
    /// Whether a CA or a client certificate was given: addresses without a
    /// scheme are then `https://`, and `http://` is refused.
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }

    /// The URL of `address` (`HOST:PORT`, or a URL kept as it is).
    pub fn url(&self, address: &str) -> String {
        let address = address.trim();
        if address.contains("://") {
            address.to_string()
        } else if self.is_configured() {
            format!("https://{address}")
        } else {
            format!("http://{address}")
        }
    }

    /// `text`, the error of a connection or call to `url`, with advice added
    /// when it shows a TLS mismatch.
    pub fn explained(&self, url: &str, text: String) -> String {
        match hint(&text).or_else(|| plain_text_hint(url, &text)).or_else(|| self.closed_at_once_hint(url, &text)) {
            Some(advice) => format!("{text} ({advice})"),
            None => text,
        }
    }

    /// A dispatcher that refuses the client's certificate (or its absence)
    /// does so after the client has finished its side of a TLS 1.3
    /// handshake: the client sees only the connection closed under its
    /// first call, the alert saying why being lost on the way.
    fn closed_at_once_hint(&self, url: &str, text: &str) -> Option<&'static str> {
        if !url.trim().starts_with("https://") {
            return None;
        }
        let text = text.to_ascii_lowercase();
        let closed =
            // hyper says "operation was canceled" of a call that raced the close.
            ["connection closed", "connection reset", "broken pipe", "unexpected eof", "operation was canceled"]
                .iter()
                .any(|sign| text.contains(sign));
        if !closed {
            return None;
        }
        Some(if self.identity.is_none() {
            "the dispatcher closed the connection at once: it may require a client certificate; pass --client-cert and \
             --client-key with one signed by its client CA"
        } else {
            "the dispatcher closed the connection at once: it may not accept this client's certificate; use one signed by its \
             client CA"
        })
    }

    /// An endpoint for `address` (see [`ClientTls::url`]): `https://` with
    /// the given CA (or the system's roots) and client certificate.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, String> {
        let url = self.url(address);
        let endpoint = Endpoint::from_shared(url.clone()).map_err(|error| error.to_string())?;
        if url.starts_with("https://") {
            let mut config = ClientTlsConfig::new();
            config = match &self.ca {
                Some(ca) => config.ca_certificate(ca.clone()),
                None => config.with_native_roots(),
            };
            if let Some(identity) = &self.identity {
                config = config.identity(identity.clone());
            }
            return endpoint.tls_config(config).map_err(|error| {
                let text = error_chain(&error);
                match hint(&text) {
                    Some(advice) => format!("{text} ({advice})"),
                    None => text,
                }
            });
        }
        if self.is_configured() {
            return Err(format!(
                "{url} is plain text, but a CA or client certificate was given for TLS; use https://{}",
                url.trim_start_matches("http://")
            ));
        }
        Ok(endpoint)
    }
}

/// What to do about a connection or call that failed, when its error
/// (`text`, with its causes) shows a TLS mismatch; `None` otherwise.
pub fn hint(text: &str) -> Option<&'static str> {
    let text = text.to_ascii_lowercase();
    if text.contains("unknownissuer") || text.contains("unknown issuer") {
        return Some(
            "the dispatcher's certificate is not signed by a CA this client trusts: pass --ca FILE with the CA certificate \
             that signed it",
        );
    }
    if text.contains("no native certs found") {
        return Some(
            "this system has no trusted root certificates: pass --ca FILE with the CA certificate that signed the dispatcher's",
        );
    }
    if text.contains("notvalidforname") || text.contains("not valid for name") {
        return Some(
            "the dispatcher's certificate does not name the host in the server address: connect with a host name (or IP) \
             that its certificate lists",
        );
    }
    if text.contains("certificaterequired") || text.contains("certificate required") {
        return Some(
            "the dispatcher requires a client certificate: pass --client-cert and --client-key with one signed by its \
             client CA",
        );
    }
    if text.contains("unknownca") || text.contains("badcertificate") || text.contains("decrypterror") {
        return Some("the dispatcher refused this client's certificate: use one signed by the dispatcher's client CA");
    }
    if text.contains("invalidcontenttype") || text.contains("corrupt message") || text.contains("invalid content type") {
        return Some("the dispatcher does not serve TLS at this address: use http:// (or ask whether it serves TLS elsewhere)");
    }
    None
}

/// What to add to an error from a plain-text (`http://`) connection to a
/// dispatcher that may be serving TLS: an HTTP/2 connection that breaks
/// before the first answer is what a TLS port does to plain text.
pub fn plain_text_hint(url: &str, text: &str) -> Option<&'static str> {
    if !url.trim().starts_with("http://") {
        return None;
    }
    let text = text.to_ascii_lowercase();
    let broken_at_start = [
        "frame with invalid size",
        "connection reset",
        "broken pipe",
        "protocol error",
        "connection closed",
        "unexpected eof",
        "unexpected end of file",
        "handshake",
        "h2 protocol",
        // hyper, when the server drops the connection with the request
        // in flight (seen under load, where the reset comes later).
        "operation was canceled",
    ]
    .iter()
    .any(|sign| text.contains(sign));
    broken_at_start.then_some(
        "the dispatcher may be serving TLS: use https://HOST:PORT and pass --ca FILE with the CA certificate that signed its \
         certificate",
    )
}

/// An error with its causes, where transport errors say what happened.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_scheme_are_https_once_tls_is_given() {
        let plain = ClientTls::default();
        assert_eq!(plain.url("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(plain.url("https://a:1"), "https://a:1");
        let tls = ClientTls { ca: Some(Certificate::from_pem("x")), identity: None };
        assert_eq!(tls.url("127.0.0.1:1"), "https://127.0.0.1:1");
        let refused = tls.endpoint("http://127.0.0.1:1").expect_err("plain text with a CA");
        assert!(refused.contains("use https://127.0.0.1:1"), "{refused}");
    }

    #[test]
    fn a_missing_or_wrong_file_is_named() {
        let missing = ClientTlsFiles { ca: Some("/no/such/ca.pem".into()), ..ClientTlsFiles::default() }.load();
        let message = missing.expect_err("missing").to_string();
        assert!(message.starts_with("cannot read the CA certificate /no/such/ca.pem: "), "{message}");
        let half = ClientTlsFiles { cert: Some("c.pem".into()), ..ClientTlsFiles::default() }.load();
        assert_eq!(half.expect_err("half"), TlsFileError::HalfIdentity);
    }

    fn pem_of(der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for chunk in der.chunks(3) {
            let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let number = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
            for index in 0..4 {
                if index <= chunk.len() {
                    text.push(ALPHABET[((number >> (18 - 6 * index)) & 63) as usize] as char);
                } else {
                    text.push('=');
                }
            }
        }
        format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn a_version_one_client_certificate_is_named_with_the_fix() {
        // SEQUENCE { SEQUENCE { [0] { INTEGER 2 }, INTEGER 7 } }: a v3 TBS start.
        let v3 = [0x30, 0x0a, 0x30, 0x08, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07];
        // SEQUENCE { SEQUENCE { INTEGER 7 } }: v1 has no version field.
        let v1 = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x07];
        assert_eq!(x509_version(pem_of(&v3).as_bytes()), Some(3));
        assert_eq!(x509_version(pem_of(&v1).as_bytes()), Some(1));
        assert_eq!(x509_version(b"not a certificate"), None);
        let dir = std::env::temp_dir().join(format!("pingji-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert = dir.join("client.pem");
        let key = dir.join("client.key");
        std::fs::write(&cert, pem_of(&v1)).expect("write");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
        let files = ClientTlsFiles { ca: None, cert: Some(cert.clone()), key: Some(key) };
        let error = files.load().expect_err("v1 refused");
        assert_eq!(error, TlsFileError::VersionOne { path: cert });
        let message = error.to_string();
        assert!(message.contains("X.509 v1") && message.contains("v3"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn handshake_failures_get_advice() {
        assert!(hint("invalid peer certificate: UnknownIssuer").is_some_and(|advice| advice.contains("--ca")));
        assert!(hint("received fatal alert: CertificateRequired").is_some_and(|advice| advice.contains("--client-cert")));
        assert_eq!(hint("connection refused"), None);
        assert!(plain_text_hint("http://a:1", "h2 protocol error: frame with invalid size").is_some());
        assert!(plain_text_hint("http://a:1", "cancelled: operation was canceled").is_some());
        assert_eq!(plain_text_hint("https://a:1", "frame with invalid size"), None);
        let closed = ClientTls::default().explained("https://a:1", "transport error: connection closed".to_string());
        assert!(closed.contains("--client-cert"), "{closed}");
        let raced = ClientTls::default().explained("https://a:1", "cancelled: operation was canceled".to_string());
        assert!(raced.contains("--client-cert"), "{raced}");
    }
}
