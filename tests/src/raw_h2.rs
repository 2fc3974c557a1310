//! Raw TCP and HTTP/2 clients written frame by frame, for the tests of what
//! the dispatcher does with clients that misbehave below gRPC: connections
//! that send nothing or only the HTTP/2 preface, and agent sessions whose
//! client stops reading (its socket, or only the session's messages).
//!
//! Only what those tests need is spoken: the preface, SETTINGS, HEADERS
//! (HPACK literals, no Huffman, no table), DATA, and the answers to the
//! server's SETTINGS and PING. A client here never sends WINDOW_UPDATE, so
//! the dispatcher can send it at most the initial 65,535 bytes per
//! connection; everything else waits in the dispatcher.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use pingji_proto::v1 as pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// What every HTTP/2 connection starts with.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// One frame: the 9-byte header, then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut bytes = Vec::with_capacity(9 + payload.len());
    bytes.extend_from_slice(&length[1..]);
    bytes.push(kind);
    bytes.push(flags);
    bytes.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An HPACK integer with an `prefix_bits`-bit prefix (RFC 7541, 5.1).
fn hpack_integer(bytes: &mut Vec<u8>, first_byte_flags: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1_usize << prefix_bits) - 1;
    if value < max_prefix {
        bytes.push(first_byte_flags | value as u8);
        return;
    }
    bytes.push(first_byte_flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 128 {
        bytes.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    bytes.push(rest as u8);
}

/// A header block of literal fields without indexing (RFC 7541, 6.2.2).
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        hpack_integer(&mut block, 0x00, 7, name.len());
        block.extend_from_slice(name.as_bytes());
        hpack_integer(&mut block, 0x00, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// The HEADERS of a gRPC call to `path` on stream `stream`.
pub fn grpc_headers(address: SocketAddr, stream: u32, path: &str) -> Vec<u8> {
    let authority = address.to_string();
    let block = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", &authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    frame(HEADERS, END_HEADERS, stream, &block)
}

/// One gRPC message (not compressed) as a DATA frame.
pub fn grpc_data(stream: u32, message: &impl Message, end_stream: bool) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut payload = Vec::with_capacity(5 + encoded.len());
    payload.push(0);
    payload.extend_from_slice(&u32::try_from(encoded.len()).unwrap_or(u32::MAX).to_be_bytes());
    payload.extend_from_slice(&encoded);
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, &payload)
}

/// A connection that has connected and sent nothing.
pub async fn connect(address: SocketAddr) -> anyhow::Result<TcpStream> {
    TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))
}

/// A connection that has sent the HTTP/2 preface and nothing else.
pub async fn connect_with_preface(address: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = connect(address).await?;
    stream.write_all(PREFACE).await?;
    Ok(stream)
}

/// Reads and drops whatever the server sends until it closes the
/// connection; fails if it is still open after `within`.
pub async fn wait_closed_by_server(stream: &mut TcpStream, within: Duration) -> anyhow::Result<()> {
    let mut sink = vec![0_u8; 16 * 1024];
    let reading = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, reading).await.with_context(|| format!("the server kept the connection open past {within:?}"))
}

/// How a raw client treats what the dispatcher sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Never reads its socket: as a phone whose app froze, or an attacker.
    /// Nor does it answer the server's PINGs.
    Nothing,
    /// Reads its socket and answers the server's SETTINGS and PINGs, so the
    /// connection stays healthy, but never takes the calls' messages
    /// (grants no flow-control window beyond the initial one): as an app
    /// that stopped reading its stream while its HTTP/2 library carries on.
    FramesOnly,
}

/// A raw HTTP/2 connection that has made its calls and reads as
/// [`Reading`] says.
pub struct RawConnection {
    /// Whether the server has closed the connection (seen with
    /// [`Reading::FramesOnly`] only).
    closed: Arc<AtomicBool>,
    /// Bytes of DATA the server sent (with [`Reading::FramesOnly`]).
    received: Arc<AtomicU64>,
    /// Kept open, and read by nobody, with [`Reading::Nothing`].
    idle: Option<TcpStream>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl RawConnection {
    /// Connects, sends the preface, SETTINGS (with `initial_window`, the
    /// stream window the server may fill, when given) and `calls` (frames),
    /// then reads as `reading` says.
    pub async fn open(
        address: SocketAddr,
        initial_window: Option<u32>,
        calls: &[u8],
        reading: Reading,
    ) -> anyhow::Result<RawConnection> {
        let mut stream = connect(address).await?;
        let mut opening = Vec::new();
        opening.extend_from_slice(PREFACE);
        let mut settings = Vec::new();
        if let Some(window) = initial_window {
            settings.extend_from_slice(&SETTINGS_INITIAL_WINDOW_SIZE.to_be_bytes());
            settings.extend_from_slice(&window.to_be_bytes());
        }
        opening.extend(frame(SETTINGS, 0, 0, &settings));
        opening.extend_from_slice(calls);
        stream.write_all(&opening).await?;
        let closed = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        match reading {
            Reading::Nothing => Ok(RawConnection { closed, received, idle: Some(stream), reader: None }),
            Reading::FramesOnly => {
                let (read_half, write_half) = stream.into_split();
                let reader = tokio::spawn(answer_frames(read_half, write_half, closed.clone(), received.clone()));
                Ok(RawConnection { closed, received, idle: None, reader: Some(reader) })
            }
        }
    }

    /// A gRPC health check (`grpc.health.v1.Health/Check` of the server as a
    /// whole) on stream 1, answered and over; the connection stays open.
    pub async fn after_health_check(address: SocketAddr, reading: Reading) -> anyhow::Result<RawConnection> {
        let mut call = grpc_headers(address, 1, "/grpc.health.v1.Health/Check");
        call.extend(grpc_data(1, &tonic_health::pb::HealthCheckRequest { service: String::new() }, true));
        RawConnection::open(address, None, &call, reading).await
    }

    /// Whether the server has closed the connection (with
    /// [`Reading::FramesOnly`]; with [`Reading::Nothing`], see
    /// [`RawConnection::wait_closed_by_server`]).
    pub fn closed_by_server(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Bytes of DATA the server has sent (with [`Reading::FramesOnly`]).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until the server has closed the connection; fails after `within`.
    pub async fn wait_closed_by_server(&mut self, within: Duration) -> anyhow::Result<()> {
        if let Some(stream) = &mut self.idle {
            return wait_closed_by_server(stream, within).await;
        }
        let closed = self.closed.clone();
        crate::wait_until(within, "the server closes the connection", async || Ok(closed.load(Ordering::Relaxed))).await
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// An agent session opened over a raw HTTP/2 connection: hello (and a
/// location) sent on stream 1, then the dispatcher's messages left unread.
pub async fn raw_session(
    address: SocketAddr,
    agent_id: &str,
    token: &str,
    initial_window: Option<u32>,
    reading: Reading,
) -> anyhow::Result<RawConnection> {
    let mut call = grpc_headers(address, 1, "/pingji.v1.AgentService/Session");
    let hello = pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello { agent_id: agent_id.to_string(), token: token.to_string() })),
    };
    call.extend(grpc_data(1, &hello, false));
    RawConnection::open(address, initial_window, &call, reading).await
}

/// Reads frames, answers SETTINGS and PING, counts DATA and grants no window.
async fn answer_frames(
    mut read_half: tokio::net::tcp::OwnedReadHalf,
    mut write_half: OwnedWriteHalf,
    closed: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) {
    let mut header = [0_u8; 9];
    loop {
        if read_half.read_exact(&mut header).await.is_err() {
            break;
        }
        let length = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let mut payload = vec![0_u8; length];
        if read_half.read_exact(&mut payload).await.is_err() {
            break;
        }
        let answer = match kind {
            SETTINGS if flags & ACK == 0 => Some(frame(SETTINGS, ACK, 0, &[])),
            PING if flags & ACK == 0 => Some(frame(PING, ACK, 0, &payload)),
            DATA => {
                received.fetch_add(length as u64, Ordering::Relaxed);
                None
            }
            _ => None,
        };
        if let Some(answer) = answer
            && write_half.write_all(&answer).await.is_err()
        {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
}
