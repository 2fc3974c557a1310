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
//!
//! Files go gzipped to a browser that accepts it (`Vary: Accept-Encoding`),
//! compressed once when the port starts: a phone's first visit to the
//! field app moves about a third of the bytes. Each answer has an ETag, so
//! the `no-cache` revalidation of an unchanged file is a bodiless 304.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use axum::http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower_layer::Layer;

use super::config::{Config, server_builder};

/// What the page may load: its own files and calls to its own origin only
/// (and, when the deployment configures one, images from its tile server).
/// No inline scripts or styles, no frames, no plugins, no forms posting
/// elsewhere; SVG is drawn by the page's script.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The policy, and the files as served: the page itself (with the tile
/// server's URL for a deployment that has one) and the [`ASSETS`], each
/// with its gzipped copy and validators, made once when the port starts.
struct Site {
    policy: HeaderValue,
    files: HashMap<&'static str, Served>,
}

impl Site {
    fn new(tiles: Option<&str>) -> Site {
        let (policy, index) = Site::policy_and_index(tiles);
        let mut files = HashMap::new();
        let page = Served::new("text/html; charset=utf-8", index);
        files.insert("/", page.clone());
        files.insert("/index.html", page);
        for asset in ASSETS {
            files.insert(asset.path, Served::new(asset.content_type, asset.bytes.to_vec()));
        }
        Site { policy, files }
    }

    fn policy_and_index(tiles: Option<&str>) -> (HeaderValue, Vec<u8>) {
        let index = include_bytes!("../../web/dist/index.html");
        let without_tiles = || (HeaderValue::from_static(CONTENT_SECURITY_POLICY), index.to_vec());
        // Checked when the settings were read: a URL refused there is not served.
        let Some((tiles, Ok(origin))) = tiles.map(|url| (url, tile_origin(url))) else {
            return without_tiles();
        };
        let policy = CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", &format!("img-src 'self' data: {origin}"));
        let Ok(policy) = HeaderValue::from_str(&policy) else {
            return without_tiles();
        };
        let meta = format!("<meta name=\"pingji-tiles\" content=\"{}\">\n<title>", tiles.replace('&', "&amp;"));
        (policy, String::from_utf8_lossy(index).replacen("<title>", &meta, 1).into_bytes())
    }
}

/// One file as served: its bytes, and gzipped when that is smaller (text,
/// not images). Each form has its own strong ETag (a hash of the file,
/// `-gz` for the gzipped form), so that a cache never takes one form's
/// bytes for the other's.
#[derive(Clone)]
struct Served {
    content_type: &'static str,
    identity: Bytes,
    etag: HeaderValue,
    gzip: Option<(Bytes, HeaderValue)>,
}

impl Served {
    fn new(content_type: &'static str, bytes: Vec<u8>) -> Served {
        let digest = Sha256::digest(&bytes);
        let hash: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
        let etag =
            |suffix: &str| HeaderValue::from_str(&format!("\"{hash}{suffix}\"")).unwrap_or(HeaderValue::from_static("\"\""));
        // PNGs are compressed already: gzip would save a few bytes for the browser's work.
        let gzip = Some(&bytes)
            .filter(|_| !content_type.starts_with("image/"))
            .and_then(|bytes| gzipped(bytes))
            .filter(|gzipped| gzipped.len() < bytes.len())
            .map(|gzipped| (Bytes::from(gzipped), etag("-gz")));
        Served { content_type, identity: Bytes::from(bytes), etag: etag(""), gzip }
    }
}

/// `bytes` gzipped at the best level, or `None` if that failed (the file is
/// then served as it is).
fn gzipped(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// Whether an `Accept-Encoding` header takes gzip: named (or `*`) with a
/// quality above zero (RFC 9110, 12.5.3).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for coding in value.split(',') {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.trim().strip_prefix("q=").or_else(|| parameter.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "gzip" | "x-gzip" => gzip = Some(quality > 0.0),
                "*" => any = Some(quality > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (or is `*`): the browser's copy is current.
fn not_modified(headers: &http::HeaderMap, etag: &HeaderValue) -> bool {
    let Some(Ok(wanted)) = headers.get(header::IF_NONE_MATCH).map(HeaderValue::to_str) else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    wanted.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The origin (`scheme://host[:port]`) of a tile URL such as
/// `https://tiles.example.gov.cn/{z}/{x}/{y}.png`, or why it cannot be used:
/// http(s), with `{z}`, `{x}` and `{y}`, and nothing that could end a
/// policy's source list or the page's attribute.
pub(crate) fn tile_origin(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://").filter(|(scheme, _)| *scheme == "https" || *scheme == "http") else {
        return Err("give an http:// or https:// URL".to_string());
    };
    for placeholder in ["{z}", "{x}", "{y}"] {
        if !url.contains(placeholder) {
            return Err(format!("has no {placeholder}: say where the zoom and the tile's column and row go"));
        }
    }
    if let Some(bad) =
        url.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '"' | '\'' | '<' | '>' | '\\'))
    {
        return Err(format!("has {bad:?}, which a URL here may not hold"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(['{', '}', '@']) {
        return Err("needs a plain host (no placeholders or user names in it)".to_string());
    }
    Ok(format!("{scheme}://{host}"))
}

/// One embedded file of the command map (built into `dispatcher/web/dist`
/// by `dispatcher/web/check.sh`; committed, so building needs no npm).
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The files besides the page itself (`/` and `/index.html`, see [`Site`]).
const ASSETS: &[Asset] = &[
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

/// The routes of the web port: `command`, `field`, `cap` (the CAP
/// suggestions), `supplies` (depots and requests), `rosters` (duty
/// rosters) and `shelters` over grpc-web, the CAP feed's routes (`/cap/...`), and the
/// page's files for every other path, the command map with the tile
/// server's URL when `tiles` is set (checked by [`tile_origin`] when the
/// settings were read). (The grpc-web layer is on the services only: on the
/// whole server it would refuse every plain HTTP/1.1 request.)
#[allow(clippy::too_many_arguments)]
pub(super) fn routes<S, F, C, P, R, H>(
    command: S,
    field: F,
    cap: C,
    supplies: P,
    rosters: R,
    shelters: H,
    cap_feed: axum::Router,
    tiles: Option<&str>,
    inbound: Option<axum::Router>,
) -> Routes
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
    C: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    C::Future: Send + 'static,
    P: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    P::Future: Send + 'static,
    R: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    R::Future: Send + 'static,
    H: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    H::Future: Send + 'static,
{
    let site = Arc::new(Site::new(tiles));
    let mut router = Routes::new(GrpcWebLayer::new().layer(command))
        .add_service(GrpcWebLayer::new().layer(field))
        .add_service(GrpcWebLayer::new().layer(cap))
        .add_service(GrpcWebLayer::new().layer(supplies))
        .add_service(GrpcWebLayer::new().layer(rosters))
        .add_service(GrpcWebLayer::new().layer(shelters))
        .into_axum_router()
        // CAP feeds for other systems (see `crate::cap`), not browser calls.
        .merge(cap_feed);
    // The gateways' inbound webhook (`crate::notify`), server to server.
    if let Some(inbound) = inbound {
        router = router.merge(inbound);
    }
    let router = router.fallback(move |method: Method, uri: Uri, headers: http::HeaderMap| {
        let site = Arc::clone(&site);
        async move { asset(&site, method, uri, &headers) }
    });
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
        .trace_fn(|request| tracing::info_span!("web", http.path = %logged_path(request.uri().path())))
        .accept_http1(true))
}

/// A request's path as logged: a calendar link's secret left out.
fn logged_path(path: &str) -> &str {
    if path.starts_with(super::rosters::CALENDAR_PREFIX) { super::rosters::CALENDAR_PREFIX } else { path }
}

/// Answers a request that is not a grpc-web call: one of the embedded
/// files, gzipped when the browser takes it, or `304 Not Modified` when
/// the browser's copy has the same ETag.
fn asset(site: &Site, method: Method, uri: Uri, request_headers: &http::HeaderMap) -> axum::response::Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(site, StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
    }
    let Some(served) = site.files.get(uri.path()) else {
        return plain(site, StatusCode::NOT_FOUND, "not found\n");
    };
    let gzip = served.gzip.as_ref().filter(|_| accepts_gzip(request_headers));
    let (bytes, etag) = match gzip {
        Some((gzipped, etag)) => (gzipped, etag),
        None => (&served.identity, &served.etag),
    };
    let unchanged = not_modified(request_headers, etag);
    let body = if method == Method::HEAD || unchanged { Bytes::new() } else { bytes.clone() };
    let length = bytes.len();
    let mut response = Response::new(axum::body::Body::from(body));
    if unchanged {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(served.content_type));
    headers.insert(header::ETAG, etag.clone());
    if served.gzip.is_some() {
        // The answer depends on the request's Accept-Encoding: caches keep one per value.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if method == Method::HEAD && !unchanged {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    secure(site, headers);
    response
}

fn plain(site: &Site, status: StatusCode, text: &'static str) -> axum::response::Response {
    let mut response = (status, text).into_response();
    secure(site, response.headers_mut());
    response
}

/// The headers every file answer carries.
fn secure(site: &Site, headers: &mut http::HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, site.policy.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    // A new binary may bring new files under the same names: the browser
    // asks each time, and the ETag makes an unchanged file's answer a 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::{HeaderValue, accepts_gzip, header, http, not_modified, tile_origin};

    fn with(name: header::HeaderName, value: &'static str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_sent_only_when_the_browser_takes_it() {
        assert!(accepts_gzip(&with(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with(header::ACCEPT_ENCODING, "br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with(header::ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&http::HeaderMap::new()), "no header: as it is");
        assert!(!accepts_gzip(&with(header::ACCEPT_ENCODING, "identity")));
        assert!(!accepts_gzip(&with(header::ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&with(header::ACCEPT_ENCODING, "*, gzip;q=0")), "gzip refused by name");
    }

    #[test]
    fn a_matching_etag_means_not_modified() {
        let etag = HeaderValue::from_static("\"abc-gz\"");
        assert!(not_modified(&with(header::IF_NONE_MATCH, "\"abc-gz\""), &etag));
        assert!(not_modified(&with(header::IF_NONE_MATCH, "\"x\", W/\"abc-gz\""), &etag));
        assert!(not_modified(&with(header::IF_NONE_MATCH, "*"), &etag));
        assert!(!not_modified(&with(header::IF_NONE_MATCH, "\"abc\""), &etag), "the other form's tag");
        assert!(!not_modified(&http::HeaderMap::new(), &etag));
    }

    #[test]
    fn a_tile_url_gives_its_origin_or_why_not() {
        assert_eq!(tile_origin("https://tiles.example.gov.cn/{z}/{x}/{y}.png").as_deref(), Ok("https://tiles.example.gov.cn"));
        assert_eq!(tile_origin("http://10.0.0.5:8088/t?z={z}&x={x}&y={y}").as_deref(), Ok("http://10.0.0.5:8088"));
        assert!(tile_origin("https://{s}.tiles.example/{z}/{x}/{y}.png").is_err(), "a placeholder in the host");
        assert!(tile_origin("https://tiles.example/{z}/{x}/{y}.png 'unsafe-inline'").is_err(), "a second source");
        assert!(tile_origin("javascript:{z}{x}{y}").is_err());
    }
}
