//! Posting one push message over HTTP/1.1 with hyper (already in the tree
//! through tonic): a connection per push service origin is made for the
//! request and closed after it; `https://` through rustls with the
//! system's roots, as the webhooks' client does.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The largest answer body read (and thrown away) from a push service.
const MAX_ANSWER: usize = 16 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    pub fn new() -> Client {
        Client { tls: tls_connector() }
    }

    /// Posts `body` to `endpoint`; the HTTP status, or why there is none
    /// (the reason names the push service's origin, never the endpoint).
    pub async fn post(&self, endpoint: &str, headers: &[(&str, String)], body: Bytes, timeout: Duration) -> Result<u16, String> {
        match tokio::time::timeout(timeout, self.post_now(endpoint, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    async fn post_now(&self, endpoint: &str, headers: &[(&str, String)], body: Bytes) -> Result<u16, String> {
        let uri: Uri = endpoint.parse().map_err(|_| "the endpoint is not a URL".to_string())?;
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().ok_or("the endpoint has no host")?.clone();
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream =
            TcpStream::connect((host.as_str(), port)).await.map_err(|error| format!("cannot connect to {authority}: {error}"))?;
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = if https {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|error| format!("'{host}' cannot be checked against a certificate: {error}"))?;
            Box::new(self.tls.connect(name, stream).await.map_err(|error| format!("TLS with {authority} failed: {error}"))?)
        } else {
            Box::new(stream)
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|error| format!("HTTP with {authority} failed: {error}"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let mut request = Request::post(path).header(hyper::header::HOST, authority.as_str());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let result = async {
            let request = request.body(Full::new(body)).map_err(|error| format!("cannot make the request: {error}"))?;
            let answer =
                sender.send_request(request).await.map_err(|error| format!("the request to {authority} failed: {error}"))?;
            let status = answer.status().as_u16();
            let _ = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
            Ok(status)
        }
        .await;
        driver.abort();
        result
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
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
}
