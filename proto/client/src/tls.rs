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
            (Some(cert), Some(key)) => Some(Identity::from_pem(
                read_pem(cert, "client certificate", "CERTIFICATE")?,
                read_pem(key, "client key", "PRIVATE KEY")?,
            )),
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

    #[test]
    fn handshake_failures_get_advice() {
        assert!(hint("invalid peer certificate: UnknownIssuer").is_some_and(|advice| advice.contains("--ca")));
        assert!(hint("received fatal alert: CertificateRequired").is_some_and(|advice| advice.contains("--client-cert")));
        assert_eq!(hint("connection refused"), None);
        assert!(plain_text_hint("http://a:1", "h2 protocol error: frame with invalid size").is_some());
        assert_eq!(plain_text_hint("https://a:1", "frame with invalid size"), None);
        let closed = ClientTls::default().explained("https://a:1", "transport error: connection closed".to_string());
        assert!(closed.contains("--client-cert"), "{closed}");
        let raced = ClientTls::default().explained("https://a:1", "cancelled: operation was canceled".to_string());
        assert!(raced.contains("--client-cert"), "{raced}");
    }
}
