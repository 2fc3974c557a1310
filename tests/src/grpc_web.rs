//! One grpc-web call written by hand over HTTP/1.1, as the command map's
//! page makes it: a POST of one length-prefixed message, answered by the
//! message and a trailer frame (`grpc-status`). On any byte stream: plain
//! TCP, or TLS for the web port with `--tls-cert`.

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a grpc-web call answered.
#[derive(Debug)]
pub struct GrpcWebAnswer {
    /// The HTTP status line, e.g. `HTTP/1.1 200 OK`.
    pub http_status: String,
    /// The response message's bytes, when one came.
    pub message: Option<Vec<u8>>,
    /// `grpc-status` (from the trailer frame, or the headers of an answer
    /// with no message); 0 is OK.
    pub grpc_status: Option<i32>,
    pub grpc_message: String,
}

/// Calls `path` (`/pingji.v1.CommandService/WhoAmI`) on `stream` with
/// `request` and, when given, `token` as the bearer.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
    token: Option<&str>,
    request: &impl prost::Message,
) -> anyhow::Result<GrpcWebAnswer> {
    let message = request.encode_to_vec();
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let authorization = token.map(|token| format!("authorization: Bearer {token}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         {authorization}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    // A TLS peer may close without close_notify once it has said everything.
    if let Err(error) = stream.read_to_end(&mut response).await
        && response.is_empty()
    {
        return Err(error).context("cannot read the grpc-web answer");
    }
    let split = response.windows(4).position(|window| window == b"\r\n\r\n").context("no end of the response head")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let raw_body = &response[split + 4..];
    let chunked = head.lines().any(|line| line.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(raw_body)? } else { raw_body.to_vec() };
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let mut answer = GrpcWebAnswer {
        http_status: head.lines().next().unwrap_or_default().to_string(),
        message: None,
        grpc_status: header("grpc-status").and_then(|status| status.parse().ok()),
        grpc_message: header("grpc-message").unwrap_or_default(),
    };
    let mut rest = &body[..];
    while rest.len() >= 5 {
        let flags = rest[0];
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = rest.get(5..5 + length).context("a grpc-web frame is cut short")?;
        if flags & 0x80 == 0 {
            answer.message = Some(frame.to_vec());
        } else {
            for line in String::from_utf8_lossy(frame).split("\r\n") {
                if let Some((key, value)) = line.split_once(':') {
                    match key.trim().to_ascii_lowercase().as_str() {
                        "grpc-status" => answer.grpc_status = value.trim().parse().ok(),
                        "grpc-message" => answer.grpc_message = value.trim().to_string(),
                        _ => {}
                    }
                }
            }
        }
        rest = &rest[5 + length..];
    }
    Ok(answer)
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|window| window == b"\r\n").context("a chunk size line is cut short")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).context("a chunk is cut short")?);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}
