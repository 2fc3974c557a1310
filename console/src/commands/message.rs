//! `pingji message send --to-agent ID|--incident ID|--area ID TEXT`,
//! `pingji message list [--agent ID] [--incident ID] [--limit N]`.

use pingji_proto::v1 as pb;
use pingji_proto::v1::message_audience::To;
use serde_json::{Value, json};

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::output;
use pingji_client::{events, labels};

pub async fn send(
    client: &mut Client,
    to_agent: Option<String>,
    incident: Option<String>,
    area: Option<String>,
    text: &str,
    as_json: bool,
) -> Result<(), ConsoleError> {
    // clap makes sure exactly one is given.
    let to = match (to_agent, incident, area) {
        (Some(agent), _, _) => To::AgentId(agent),
        (None, Some(incident), _) => To::IncidentId(incident),
        (None, None, Some(area)) => To::AreaId(area),
        (None, None, None) => To::AgentId(String::new()),
    };
    let request = pb::SendMessageRequest { to: Some(pb::MessageAudience { to: Some(to) }), text: text.to_string() };
    let sent = client.send_message(request).await?.into_inner();
    if as_json {
        return output::json_document(&message_json(&sent));
    }
    output::text(&format!(
        "sent {} to {}: reached {}\n",
        sent.id,
        events::audience_words(sent.to.as_ref()),
        people(sent.recipient_ids.len())
    ))
}

pub async fn list(
    client: &mut Client,
    agent: Option<String>,
    incident: Option<String>,
    limit: u32,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request =
        pb::ListMessagesRequest { agent_id: agent.unwrap_or_default(), incident_id: incident.unwrap_or_default(), limit };
    let listed = client.list_messages(request).await?.into_inner();
    if as_json {
        return output::json_document(&Value::Array(listed.messages.iter().map(message_json).collect()));
    }
    output::text(&list_text(&listed.messages))
}

fn people(count: usize) -> String {
    if count == 1 { "1 person".to_string() } else { format!("{count} people") }
}

/// Each message, who read it, and the replies under it.
pub fn list_text(messages: &[pb::OperatorMessage]) -> String {
    if messages.is_empty() {
        return "no messages\n".to_string();
    }
    let mut text = String::new();
    for message in messages {
        text.push_str(&format!(
            "{}  {}  {} to {}: {}\n    read by {} of {}{}\n",
            message.id,
            labels::utc_time(message.sent_at_ms),
            message.from,
            events::audience_words(message.to.as_ref()),
            message.text.replace('\n', " "),
            message.read_by.len(),
            message.recipient_ids.len(),
            if message.read_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", message.read_by.iter().map(|read| read.agent_id.as_str()).collect::<Vec<_>>().join(", "))
            }
        ));
        for reply in &message.replies {
            text.push_str(&format!(
                "    {} {} replied: {}\n",
                labels::utc_time(reply.at_ms),
                reply.agent_id,
                reply.text.replace('\n', " ")
            ));
        }
    }
    text
}

fn message_json(message: &pb::OperatorMessage) -> Value {
    json!({
        "id": message.id,
        "sent_at_ms": message.sent_at_ms,
        "from": message.from,
        "to": events::audience_words(message.to.as_ref()),
        "text": message.text,
        "recipient_ids": message.recipient_ids,
        "replies": message.replies.iter().map(|reply| json!({"agent_id": reply.agent_id, "text": reply.text, "at_ms": reply.at_ms})).collect::<Vec<_>>(),
        "read_by": message.read_by.iter().map(|read| json!({"agent_id": read.agent_id, "read_at_ms": read.read_at_ms})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_lists_with_its_readers_and_replies() {
        let message = pb::OperatorMessage {
            id: "msg-000001".into(),
            sent_at_ms: 1_746_057_600_000,
            from: "operator:li".into(),
            to: Some(pb::MessageAudience { to: Some(To::IncidentId("inc-000001".into())) }),
            text: "stand by".into(),
            recipient_ids: vec!["p1".into(), "p2".into()],
            replies: vec![pb::MessageReplyRecord { agent_id: "p1".into(), text: "on my way".into(), at_ms: 1_746_057_660_000 }],
            read_by: vec![pb::MessageReceipt { agent_id: "p1".into(), read_at_ms: 1_746_057_630_000 }],
        };
        let text = list_text(&[message]);
        assert!(text.contains("msg-000001"), "{text}");
        assert!(text.contains("operator:li to incident inc-000001's team: stand by"), "{text}");
        assert!(text.contains("read by 1 of 2 (p1)"), "{text}");
        assert!(text.contains("p1 replied: on my way"), "{text}");
        assert_eq!(list_text(&[]), "no messages\n");
    }
}
