//! Posting to a partner over HTTP/1.1 with hyper (already in the tree
//! through tonic), for the webhooks, the SMS/voice gateways and Web Push:
//! one kept-alive connection per [`Poster`], made again after any failure;
//! `https://` through rustls with the system's roots (read once).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The largest answer body read (and thrown away).
const MAX_ANSWER: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a partner listens, checked once when it is registered.
#[derive(Clone, Debug)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Target {
    /// `http://HOST[:PORT]/PATH` or `https://…`; the reason when it is not one.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|error| format!("'{url}' is not a URL: {error}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("'{url}' must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| format!("'{url}' has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("'{url}' has a user name or password in it: use --secret to sign deliveries instead"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |path| path.as_str()).to_string();
        Ok(Target { https, host, port, authority: authority.as_str().to_string(), path })
    }
}

/// One partner's connection.
pub struct Poster {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    connection: Option<(SendRequest<Full<Bytes>>, JoinHandle<()>)>,
}

impl Drop for Poster {
    fn drop(&mut self) {
        if let Some((_, driver)) = &self.connection {
            driver.abort();
        }
    }
}

impl Poster {
    pub fn new(target: Target) -> Poster {
        let tls = target.https.then(|| tls_connector().clone());
        Poster { target, tls, connection: None }
    }

    /// Posts `body` with `headers`; Ok with the status when the partner
    /// answered 2xx, the reason otherwise (no personal data in it).
    pub async fn post(&mut self, headers: &[(&str, String)], body: Bytes, timeout: Duration) -> Result<u16, String> {
        match self.post_answered(headers, body, timeout).await? {
            status @ 200..300 => Ok(status),
            status => Err(format!("answered HTTP {status}")),
        }
    }

    /// Posts `body` with `headers`; the status of any answer (a push
    /// service's 404 or 410 means something), or why there is none.
    pub async fn post_answered(&mut self, headers: &[(&str, String)], body: Bytes, timeout: Duration) -> Result<u16, String> {
        let answered = match tokio::time::timeout(timeout, self.post_now(headers, body)).await {
            Ok(answered) => answered,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        if !matches!(answered, Ok(200..300)) {
            self.drop_connection();
        }
        answered
    }

    fn drop_connection(&mut self) {
        if let Some((_, driver)) = self.connection.take() {
            driver.abort();
        }
    }

    async fn post_now(&mut self, headers: &[(&str, String)], body: Bytes) -> Result<u16, String> {
        let reusable = match &mut self.connection {
            Some((sender, _)) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.drop_connection();
            self.connection = Some(self.connect().await?);
        }
        let Some((sender, _)) = self.connection.as_mut() else {
            return Err("no connection".to_string());
        };
        let mut request = Request::post(self.target.path.as_str()).header(hyper::header::HOST, self.target.authority.as_str());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request.body(Full::new(body)).map_err(|error| format!("cannot make the request: {error}"))?;
        let answer = sender.send_request(request).await.map_err(|error| format!("the request failed: {error}"))?;
        let status = answer.status().as_u16();
        // Read the answer to the end so that the connection can be used again.
        let _ = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
        Ok(status)
    }

    async fn connect(&self) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), String> {
        let target = &self.target;
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", target.authority))?;
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let name = rustls_pki_types_name(&target.host)?;
                Box::new(
                    tls.connect(name, stream).await.map_err(|error| format!("TLS with {} failed: {error}", target.authority))?,
                )
            }
            None => Box::new(stream),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|error| format!("HTTP with {} failed: {error}", target.authority))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, driver))
    }
}

fn rustls_pki_types_name(host: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, String> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|error| format!("'{host}' cannot be checked against a certificate: {error}"))
}

/// The TLS client, with the system's roots read the first time it is needed.
fn tls_connector() -> &'static tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for certificate in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(certificate);
        }
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        match config {
            Ok(config) => tokio_rustls::TlsConnector::from(Arc::new(config)),
            // The ring provider supports the default versions; kept total anyway.
            Err(_) => tokio_rustls::TlsConnector::from(Arc::new(
                tokio_rustls::rustls::ClientConfig::builder()
                    .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let target = Target::parse("http://127.0.0.1:8080/hooks/pingji?x=1").expect("parses");
        assert_eq!((target.host.as_str(), target.port, target.path.as_str()), ("127.0.0.1", 8080, "/hooks/pingji?x=1"));
        assert_eq!(Target::parse("https://partner.example").expect("parses").port, 443);
        assert!(Target::parse("ftp://x/").expect_err("scheme").contains("http://"));
        assert!(Target::parse("not a url").is_err());
        assert!(Target::parse("http://user:pw@host/").expect_err("credentials").contains("password"));
        assert!(Target::parse("/relative").is_err());
    }
}
