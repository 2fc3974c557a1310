//! Connecting to the dispatcher's `CommandService`, with the operator's
//! token on every request.

use std::time::Duration;

pub use pingji_client::auth::BearerToken;
use pingji_client::tls::{ClientTls, error_chain};
use pingji_proto::v1::command_service_client::CommandServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::ConsoleError;

/// How long connecting may take before the dispatcher counts as unreachable.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// Largest message either side of the console accepts: area outlines of a
/// whole city (`ListAreas` with geometry) run to megabytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// A `CommandService` client that carries the operator's token on every
/// request.
pub type Client = CommandServiceClient<InterceptedService<Channel, BearerToken>>;

/// The console's bearer for `token`, or what is wrong with it.
pub fn bearer(token: Option<&str>) -> Result<BearerToken, ConsoleError> {
    BearerToken::new(token).map_err(ConsoleError::BadToken)
}

/// Connects to the first reachable dispatcher of `servers` (one address, or
/// several separated by commas), eagerly, so that a dispatcher that is not
/// running is reported as such rather than as a failed call. Returns the
/// client and the address it reached.
/// With `tls`, an `https://` server is checked against its CA and shown the
/// client certificate; every request carries `token`.
pub async fn connect(servers: &str, token: &BearerToken, tls: &ClientTls) -> Result<(Client, String), ConsoleError> {
    let addresses = pingji_client::owner::server_list(servers);
    let mut endpoints = Vec::new();
    for server in &addresses {
        if !server.starts_with("http://") && !server.starts_with("https://") {
            return Err(ConsoleError::BadServerAddress(server.clone()));
        }
        if Endpoint::from_shared(server.clone()).is_err() {
            return Err(ConsoleError::BadServerAddress(server.clone()));
        }
        let endpoint = tls.endpoint(server).map_err(ConsoleError::Tls)?.connect_timeout(CONNECT_WITHIN).tcp_nodelay(true);
        endpoints.push((server, endpoint));
    }
    if endpoints.is_empty() {
        return Err(ConsoleError::BadServerAddress(servers.to_string()));
    }
    // A failed TLS handshake is told with what to do, not as "unreachable".
    let mut tls_trouble = None;
    for (server, endpoint) in endpoints {
        match endpoint.connect().await {
            Ok(channel) => {
                let client = CommandServiceClient::with_interceptor(channel, token.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                return Ok((client, server.clone()));
            }
            Err(error) => {
                let reason = error_chain(&error);
                if pingji_client::tls::hint(&reason).is_some() && tls_trouble.is_none() {
                    tls_trouble = Some(ConsoleError::Connect { server: server.clone(), reason: tls.explained(server, reason) });
                }
            }
        }
    }
    Err(tls_trouble.unwrap_or_else(|| ConsoleError::Unreachable(addresses.join(", "))))
}

/// The console's error for a failed call: the status, or, when its causes
/// show a TLS mismatch with the dispatcher at `server`, what to do about it.
pub fn call_error(server: &str, tls: &ClientTls, status: tonic::Status) -> ConsoleError {
    let reason = match std::error::Error::source(&status) {
        Some(cause) => format!("{}: {}", status.message(), error_chain(cause)),
        // A call that raced the connection's close (hyper: "operation was
        // canceled") may carry no cause.
        None if status.code() == tonic::Code::Cancelled => status.message().to_string(),
        None => return ConsoleError::Server(status),
    };
    let explained = tls.explained(server, reason.clone());
    if explained == reason {
        return ConsoleError::Server(status);
    }
    ConsoleError::Connect { server: server.to_string(), reason: explained }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_that_cannot_be_sent_is_refused_without_showing_it() {
        for bad in ["", "pjo_li_秘密", "pjo li"] {
            let error = bearer(Some(bad)).expect_err("refused");
            let shown = error.to_string();
            assert!(shown.starts_with("the token from --token or PINGJI_TOKEN cannot be used: "), "{shown}");
            assert!(!shown.contains("秘密") && !shown.contains("pjo"), "{shown}");
        }
    }
}
