//! Scraping a dispatcher's `/metrics` over real HTTP and reading values.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one scrape may take.
const SCRAPE_WITHIN: Duration = Duration::from_secs(20);

/// `GET path` on `address`: the status line and the body.
pub async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response.split_once("\r\n\r\n").context("no end of the response head")?;
        let status = head.lines().next().unwrap_or_default().to_string();
        anyhow::Ok((status, body.to_string()))
    };
    tokio::time::timeout(SCRAPE_WITHIN, exchange).await.with_context(|| format!("GET {path} took over {SCRAPE_WITHIN:?}"))?
}

/// The text of `/metrics`; fails unless the answer is 200.
pub async fn scrape(address: SocketAddr) -> anyhow::Result<String> {
    let (status, body) = http_get(address, "/metrics").await?;
    anyhow::ensure!(status.contains(" 200 "), "GET /metrics answered {status}: {body}");
    Ok(body)
}

/// The value of the sample written exactly `series` (name and labels as
/// encoded, e.g. `pingji_open_incidents{status="staffed",priority="1"}`);
/// `None` when the series is absent.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// The value of `series`, or 0 when it is absent (a counter not yet touched).
pub fn value_or_zero(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or(0.0)
}
