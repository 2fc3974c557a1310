//! `pingji cap alerts`, `cap suggestions [--all]`, `cap approve ID`,
//! `cap dismiss ID [--reason R]`, `cap token-hash TOKEN`: CAP 1.2 alerts
//! issued and received, and the suggestions the received ones became.

use pingji_client::connect::CapClient;
use pingji_client::labels;
use pingji_proto::v1 as pb;
use serde_json::Value;

use crate::error::ConsoleError;
use crate::output;

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub async fn alerts(client: &mut CapClient, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_cap_alerts(pb::ListCapAlertsRequest {}).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text = format!("issued ({}):\n", listed.issued.len());
    for alert in &listed.issued {
        text.push_str(&format!(
            "  {}  {:<6} {}  {} ({})  grade {}  {}\n",
            labels::utc_time(alert.sent_ms),
            alert.msg_type,
            alert.identifier,
            alert.area_name,
            alert.area_id,
            labels::grade_name(alert.mode),
            alert.headline
        ));
    }
    text.push_str(&format!("received ({}):\n", listed.received.len()));
    for alert in &listed.received {
        text.push_str(&format!(
            "  {}  {:<6} {} from {}  {} {}/{}/{}  {}\n",
            labels::utc_time(alert.received_at_ms),
            alert.msg_type,
            alert.identifier,
            alert.sender,
            alert.event,
            alert.severity,
            alert.urgency,
            alert.certainty,
            alert.headline
        ));
    }
    output::text(&text)
}

fn suggestion_line(suggestion: &pb::CapSuggestion) -> String {
    let spec = suggestion.spec.clone().unwrap_or_default();
    let alert = suggestion.alert.clone().unwrap_or_default();
    let plan = if spec.plan_id.is_empty() { "no plan".to_string() } else { format!("plan {}", spec.plan_id) };
    let mut line = format!(
        "{}  {:<9} grade {} on {}; {}  ← {} {} from {}: {}\n",
        spec.id,
        suggestion.state,
        labels::grade_name(spec.mode),
        spec.area_ids.join(", "),
        plan,
        alert.event,
        alert.identifier,
        alert.sender,
        alert.headline
    );
    if !suggestion.decided_by.is_empty() {
        line.push_str(&format!("    {} by {}", suggestion.state, suggestion.decided_by));
        if !suggestion.reason.is_empty() {
            line.push_str(&format!(": {}", suggestion.reason));
        }
        line.push('\n');
    }
    line
}

pub async fn suggestions(client: &mut CapClient, all: bool, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_cap_suggestions(pb::ListCapSuggestionsRequest { all }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed.suggestions));
    }
    if listed.suggestions.is_empty() {
        return output::text(if all { "no CAP suggestions\n" } else { "no pending CAP suggestions\n" });
    }
    output::text(&listed.suggestions.iter().map(suggestion_line).collect::<String>())
}

pub async fn approve(client: &mut CapClient, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::ApproveCapSuggestionRequest { suggestion_id: id.to_string() };
    let approved = client.approve_cap_suggestion(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&approved));
    }
    output::text(&suggestion_line(&approved))
}

pub async fn dismiss(client: &mut CapClient, id: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::DismissCapSuggestionRequest { suggestion_id: id.to_string(), reason: reason.to_string() };
    let dismissed = client.dismiss_cap_suggestion(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&dismissed));
    }
    output::text(&suggestion_line(&dismissed))
}

/// The SHA-256 of a feed's token, as `[[cap.feeds]] token_sha256` wants it.
pub fn token_hash(token: &str) -> Result<(), ConsoleError> {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(token.trim().as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
    output::text(&format!("{hash}\n"))
}
