//! Connecting to the dispatcher's `CommandService` with the operator's
//! token on every request: `pingji_client::connect` does the connecting and
//! the following of a redirect to the shard's owner; this module says what
//! went wrong in the console's words.

pub use pingji_client::auth::BearerToken;
pub use pingji_client::connect::Connection;
use pingji_client::tls::error_chain;

use crate::error::ConsoleError;

/// A `CommandService` client that carries the operator's token on every
/// request.
pub type Client = pingji_client::connect::CommandClient;

/// The console's bearer for `token`, or what is wrong with it.
pub fn bearer(token: Option<&str>) -> Result<BearerToken, ConsoleError> {
    BearerToken::new(token).map_err(ConsoleError::BadToken)
}

/// The console's error for a failed call: the status, or, when its causes
/// show a TLS mismatch with the dispatcher `connection` reached, what to do
/// about it.
pub fn call_error(connection: &Connection, status: tonic::Status) -> ConsoleError {
    let reason = match std::error::Error::source(&status) {
        Some(cause) => format!("{}: {}", status.message(), error_chain(cause)),
        // A call that raced the connection's close (hyper: "operation was
        // canceled") may carry no cause.
        None if status.code() == tonic::Code::Cancelled => status.message().to_string(),
        None => return ConsoleError::Server(status),
    };
    let explained = connection.options().tls.explained(connection.url(), reason.clone());
    if explained == reason {
        return ConsoleError::Server(status);
    }
    ConsoleError::Connect { server: connection.url().to_string(), reason: explained }
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
