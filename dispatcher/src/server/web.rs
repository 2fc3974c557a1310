//! The web port: the command map's files, embedded in the binary, and the
//! command and field services over grpc-web for the browser, on one
//! HTTP/1.1 port.
//!
//! The command service here is the very stack of the gRPC port (token
//! check, roles, sizes, routing; see `serving::command_service`), so the
//! browser can do exactly what the console can and nothing more. Pages are
//! same-origin only: no CORS headers are sent, so another site's page cannot
//! call the services, and a strict Content-Security-Policy lets the page
//! load nothing but its own files. The token travels in the `authorization`
//! header of each call, never in a URL, and nothing here logs it.

use std::convert::Infallible;

use axum::http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower_layer::Layer;

use super::config::{Config, server_builder};

/// What the page may load: its own files and calls to its own origin only.
/// No inline scripts or styles, no frames, no plugins, no forms posting
/// elsewhere; SVG is drawn by the page's script.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the command map (built into `dispatcher/web/dist`
/// by `dispatcher/web/check.sh`; committed, so building needs no npm).
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", bytes: include_bytes!("../../web/dist/index.html") },
    Asset { path: "/index.html", content_type: "text/html; charset=utf-8", bytes: include_bytes!("../../web/dist/index.html") },
    Asset { path: "/app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../web/dist/app.js") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../../web/dist/app.css") },
    // The phone app (#19). The CSP's default-src 'self' covers its manifest and service worker.
    Asset { path: "/field/", content_type: "text/html; charset=utf-8", bytes: include_bytes!("../../web/dist/field/index.html") },
    Asset {
        path: "/field/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/dist/field/app.js"),
    },
    Asset {
        path: "/field/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/dist/field/app.css"),
    },
    Asset {
        path: "/field/sw.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/dist/field/sw.js"),
    },
    Asset {
        path: "/field/manifest.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("../../web/dist/field/manifest.webmanifest"),
    },
    Asset { path: "/field/icon-192.png", content_type: "image/png", bytes: include_bytes!("../../web/dist/field/icon-192.png") },
    Asset { path: "/field/icon-512.png", content_type: "image/png", bytes: include_bytes!("../../web/dist/field/icon-512.png") },
];

/// The routes of the web port: `command` and `field` over grpc-web, and the
/// page's files for every other path. (The grpc-web layer is on the
/// services only: on the whole server it would refuse every plain HTTP/1.1
/// request.)
pub(super) fn routes<S, F>(command: S, field: F) -> Routes
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    F: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    F::Future: Send + 'static,
{
    let router = Routes::new(GrpcWebLayer::new().layer(command))
        .add_service(GrpcWebLayer::new().layer(field))
        .into_axum_router()
        .fallback(asset);
    Routes::from(router)
}

/// A server for [`routes`]: the gRPC port's builder (TLS, connection
/// limits) with its request timeout and spans (the path only: never a
/// header, where the token is), taking HTTP/1.1 as browsers speak it.
pub(super) fn server(
    config: &Config,
) -> anyhow::Result<tonic::transport::Server<tower_layer::Stack<super::connections::TrackCalls, tower_layer::Identity>>> {
    Ok(server_builder(config)?
        .timeout(config.limits.request_timeout)
        .trace_fn(|request| tracing::info_span!("web", http.path = %request.uri().path()))
        .accept_http1(true))
}

/// Answers a request that is not a grpc-web call: one of the embedded files.
async fn asset(method: Method, uri: Uri) -> axum::response::Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
    }
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == uri.path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let body = if method == Method::HEAD { Vec::new() } else { asset.bytes.to_vec() };
    let mut response = Response::new(axum::body::Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    secure(headers);
    response
}

fn plain(status: StatusCode, text: &'static str) -> axum::response::Response {
    let mut response = (status, text).into_response();
    secure(response.headers_mut());
    response
}

/// The headers every file answer carries.
fn secure(headers: &mut http::HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    // A new binary may bring new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}
