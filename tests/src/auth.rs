//! Tokens in the tests. Every test dispatcher starts with [`ADMIN_TOKEN`] as
//! its bootstrap admin (`PINGJI_BOOTSTRAP_ADMIN_TOKEN`, or
//! `Config::bootstrap_admin_token` in process); the fixtures' command
//! clients carry it, and people get their tokens from [`agent_token`].

use anyhow::Context;
use pingji_client::auth::BearerToken;
use pingji_proto::v1 as pb;
use pingji_proto::v1::command_service_client::CommandServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The admin of every test dispatcher.
pub const ADMIN_TOKEN: &str = "pjo_admin_5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// A command client that sends a token on every call.
pub type Commands = CommandServiceClient<InterceptedService<Channel, BearerToken>>;

/// A command client acting as the test admin.
pub fn commands(channel: Channel) -> Commands {
    commands_with(channel, Some(ADMIN_TOKEN))
}

/// A command client sending `token` (none at all with `None`).
pub fn commands_with(channel: Channel, token: Option<&str>) -> Commands {
    // A token a test made unsendable on purpose goes out as no token.
    let bearer = BearerToken::new(token).unwrap_or_default();
    CommandServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// A new token for person `id` (any earlier one stops working).
pub async fn agent_token(command: &mut Commands, id: &str) -> anyhow::Result<String> {
    let issued = command
        .issue_agent_token(pb::IssueAgentTokenRequest { agent_id: id.to_string() })
        .await
        .with_context(|| format!("issue a token for {id}"))?;
    Ok(issued.into_inner().token)
}

/// A new operator account with `role`; returns its token.
pub async fn add_operator(command: &mut Commands, name: &str, role: pb::OperatorRole) -> anyhow::Result<String> {
    let issued = command
        .add_operator(pb::AddOperatorRequest { name: name.to_string(), role: role as i32, expires_in_s: 0 })
        .await
        .with_context(|| format!("add operator {name}"))?;
    Ok(issued.into_inner().token)
}
