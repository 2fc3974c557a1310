//! The operator's token on every call of a client: `authorization: Bearer
//! pjo_…`, as the dispatcher's command API requires.

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;

/// The metadata key the dispatcher reads the operator's token from.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Adds `authorization: Bearer TOKEN` to each request when a token is given;
/// without one the dispatcher refuses the call and says how to get one.
/// With [`BearerToken::for_shard`], it also names the shard the calls are for
/// (`x-pingji-shard`), so that any dispatcher sends them to that shard's owner.
#[derive(Clone, Default)]
pub struct BearerToken {
    value: Option<AsciiMetadataValue>,
    shard: Option<AsciiMetadataValue>,
}

impl BearerToken {
    /// The header for `token`, checked to be sendable as metadata. The error
    /// says what is wrong and never repeats the token: it is a secret.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        let Some(token) = token.map(str::trim) else {
            return Ok(BearerToken { value: None, shard: None });
        };
        // A token pasted with the scheme in front of it.
        let token = token.strip_prefix("Bearer ").map_or(token, str::trim_start);
        if token.is_empty() {
            return Err("it is empty".to_string());
        }
        if !token.chars().all(|character| character.is_ascii_graphic()) {
            return Err(
                "it has spaces or characters that are not plain ASCII, which a token never has; check it was copied whole"
                    .to_string(),
            );
        }
        let mut value =
            MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| "it cannot be sent as a gRPC header".to_string())?;
        // Keeps the secret out of HPACK's table of values to reuse.
        value.set_sensitive(true);
        Ok(BearerToken { value: Some(value), shard: None })
    }

    /// Sends the calls to `shard` (a district's id, or `city`).
    pub fn for_shard(mut self, shard: &str) -> Result<Self, String> {
        let value = MetadataValue::try_from(shard.trim())
            .map_err(|_| format!("shard {shard:?} cannot be sent as a gRPC header; use a district's id such as d1"))?;
        self.shard = Some(value);
        Ok(self)
    }
}

/// Never shows the token, should a client end up in a debug print.
impl std::fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.value.is_some() { "Some(<redacted>)" } else { "None" };
        formatter.debug_struct("BearerToken").field("value", &format_args!("{shown}")).finish()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request.metadata_mut().insert(AUTHORIZATION_HEADER, value.clone());
        }
        if let Some(shard) = &self.shard {
            request.metadata_mut().insert(crate::owner::SHARD_METADATA, shard.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_sent_as_a_bearer_and_never_shown() {
        let mut bearer = BearerToken::new(Some(" Bearer pjo_li.na_00ff ")).expect("sendable");
        let request = bearer.call(tonic::Request::new(())).expect("passes");
        assert_eq!(
            request.metadata().get(AUTHORIZATION_HEADER).and_then(|value| value.to_str().ok()),
            Some("Bearer pjo_li.na_00ff")
        );
        assert!(!format!("{bearer:?}").contains("00ff"));
        assert!(BearerToken::new(Some("")).is_err());
        assert!(BearerToken::new(Some("pjo_x y")).expect_err("a space").contains("spaces"));
        let mut none = BearerToken::new(None).expect("no token");
        assert!(none.call(tonic::Request::new(())).expect("passes").metadata().get(AUTHORIZATION_HEADER).is_none());
    }
}
