//! What the load generators (`loadgen`, `fieldload`, `mapbench`,
//! `cityrun`) share: where their simulated people stand, the CPU and memory
//! a process used, free ports for the dispatcher they start, and
//! connections that count the bytes they carry.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::pb;

/// The sample city's box, where the simulated people walk.
pub const WEST: f64 = 120.0876;
pub const EAST: f64 = 120.2124;
pub const SOUTH: f64 = 30.2250;
pub const NORTH: f64 = 30.3150;

/// A deterministic point of the city for person `n` at step `step`: a home
/// point, and a walk of up to ~50 m around it.
pub fn point(n: usize, step: u64) -> pb::Location {
    let mix = |value: u64| {
        let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let lon = WEST + (EAST - WEST) * mix(n as u64 * 2) + (mix(n as u64 * 7919 + step) - 0.5) * 1e-3;
    let lat = SOUTH + (NORTH - SOUTH) * mix(n as u64 * 2 + 1) + (mix(n as u64 * 104_729 + step) - 0.5) * 1e-3;
    pb::Location::wgs84(lon.clamp(WEST, EAST), lat.clamp(SOUTH, NORTH))
}

/// utime + stime of a process (`self` or a pid), in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|end| &stat[end + 2..]) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based over the whole line).
    let ticks = |index: usize| fields.get(index - 3).and_then(|field| field.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(14) + ticks(15)) / 100.0
}

/// A loopback address no one listens on now.
pub fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Bytes that went through the connections of a load generator, both
/// ways, as the kernel took and gave them (HTTP/2 frames, headers, gRPC
/// messages): what a network between the clients and the dispatchers
/// would carry, TLS aside.
#[derive(Clone, Default)]
pub struct ByteCounts {
    pub sent: Arc<AtomicU64>,
    pub received: Arc<AtomicU64>,
}

impl ByteCounts {
    pub fn total(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// Opens plain TCP connections for tonic (`Endpoint::connect_with_connector_lazy`)
/// and counts every byte through them in [`ByteCounts`].
#[derive(Clone)]
pub struct CountingConnector {
    pub counts: ByteCounts,
}

impl tonic::codegen::Service<tonic::codegen::http::Uri> for CountingConnector {
    type Response = TokioIo<Counted>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Counted>>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        let counts = self.counts.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?.to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Counted { stream, counts }))
        })
    }
}

/// A TCP stream that adds what it reads and writes to [`ByteCounts`].
pub struct Counted {
    stream: TcpStream,
    counts: ByteCounts,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, context: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(context, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.counts.received.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, context: &mut TaskContext<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(context, data);
        if let Poll::Ready(Ok(written)) = poll {
            this.counts.sent.fetch_add(written as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(context, buffers);
        if let Poll::Ready(Ok(written)) = poll {
            this.counts.sent.fetch_add(written as u64, Ordering::Relaxed);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS`), 0 when it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The value at share `p` (0 to 1) of `sorted` values, by nearest rank;
/// NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// `values` in ascending order, for [`percentile`].
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}
