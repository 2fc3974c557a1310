//! `pingji webhooks add URL [--kinds K,..] [--areas A,..] [--secret S]
//! [--precise] [--from SEQ]`, `list`, `remove ID`, `dead-letters ID`,
//! `replay ID --from SEQ`: partner systems' subscriptions (admin).

use pingji_client::connect::WebhookClient;
use pingji_client::labels;
use pingji_proto::v1 as pb;
use serde_json::{Value, json};

use crate::error::ConsoleError;
use crate::output;

/// What `webhooks add` is given.
pub struct NewWebhook {
    pub url: String,
    pub kinds: Vec<String>,
    pub areas: Vec<String>,
    pub secret: Option<String>,
    pub precise: bool,
    pub from: u64,
}

pub async fn add(client: &mut WebhookClient, new: NewWebhook, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::AddWebhookRequest {
        url: new.url,
        kinds: new.kinds,
        area_ids: new.areas,
        secret: new.secret.unwrap_or_default(),
        precise: new.precise,
        from_seq: new.from,
    };
    let added = client.add_webhook(request).await?.into_inner();
    if as_json {
        let mut document = webhook_json(&added);
        if !added.secret.is_empty() {
            document["secret"] = json!(added.secret);
        }
        return output::json_document(&document);
    }
    let mut text = format!("added {} → {}\n{}", added.id, added.url, filters(&added));
    text.push_str(&format!("    delivering from seq {}\n", added.next_seq));
    if !added.secret.is_empty() {
        text.push_str(&format!(
            "signing secret (shown once; give it to the partner to check x-pingji-signature): {}\n",
            added.secret
        ));
    }
    output::text(&text)
}

pub async fn list(client: &mut WebhookClient, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_webhooks(pb::ListWebhooksRequest {}).await?.into_inner();
    if as_json {
        return output::json_document(&Value::Array(listed.webhooks.iter().map(webhook_json).collect()));
    }
    output::text(&list_text(&listed.webhooks))
}

pub async fn remove(client: &mut WebhookClient, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let removed = client.remove_webhook(pb::RemoveWebhookRequest { id: id.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&webhook_json(&removed));
    }
    output::text(&format!("removed {} → {} (its cursor and dead letters too)\n", removed.id, removed.url))
}

pub async fn dead_letters(client: &mut WebhookClient, id: &str, limit: u32, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::ListDeadLettersRequest { id: id.to_string(), limit };
    let listed = client.list_dead_letters(request).await?.into_inner();
    if as_json {
        let letters = listed
            .dead_letters
            .iter()
            .map(|letter| {
                json!({
                    "seq": letter.seq,
                    "kind": letter.kind,
                    "attempts": letter.attempts,
                    "last_error": letter.last_error,
                    "failed_at_ms": letter.failed_at_ms,
                })
            })
            .collect();
        return output::json_document(&Value::Array(letters));
    }
    output::text(&dead_letters_text(id, &listed.dead_letters))
}

pub async fn replay(client: &mut WebhookClient, id: &str, from: u64, as_json: bool) -> Result<(), ConsoleError> {
    let replayed = client.replay_webhook(pb::ReplayWebhookRequest { id: id.to_string(), from_seq: from }).await?.into_inner();
    if as_json {
        return output::json_document(&webhook_json(&replayed));
    }
    output::text(&format!("{} delivers again from seq {}, in order\n", replayed.id, replayed.next_seq))
}

fn filters(webhook: &pb::Webhook) -> String {
    let kinds = if webhook.kinds.is_empty() { "every partner kind".to_string() } else { webhook.kinds.join(", ") };
    let areas = if webhook.area_ids.is_empty() { "everywhere".to_string() } else { webhook.area_ids.join(", ") };
    let precision = if webhook.precise { "precise positions" } else { "positions to about 1 km" };
    format!("    kinds: {kinds}\n    areas: {areas}\n    {precision}\n")
}

/// Each subscriber, its filters, where it is and what failed.
pub fn list_text(webhooks: &[pb::Webhook]) -> String {
    if webhooks.is_empty() {
        return "no webhooks; add one with 'pingji webhooks add URL --kinds incident_reported --areas d1'\n".to_string();
    }
    let mut text = String::new();
    for webhook in webhooks {
        text.push_str(&format!(
            "{}  {}  added {}\n{}    next seq {}, {} dead letter{}\n",
            webhook.id,
            webhook.url,
            labels::utc_time(webhook.created_at_ms),
            filters(webhook),
            webhook.next_seq,
            webhook.dead_letters,
            if webhook.dead_letters == 1 { "" } else { "s" }
        ));
        if webhook.failures > 0 {
            text.push_str(&format!(
                "    failing: {} attempt(s) at seq {}: {}\n",
                webhook.failures, webhook.next_seq, webhook.last_error
            ));
        }
    }
    text
}

pub fn dead_letters_text(id: &str, letters: &[pb::DeadLetter]) -> String {
    if letters.is_empty() {
        return format!("no dead letters for {id}\n");
    }
    let mut text = String::new();
    for letter in letters {
        text.push_str(&format!(
            "seq {}  {}  {} attempts, last {}: {}\n",
            letter.seq,
            letter.kind,
            letter.attempts,
            labels::utc_time(letter.failed_at_ms),
            letter.last_error
        ));
    }
    if let Some(first) = letters.first() {
        text.push_str(&format!("once the partner is fixed: pingji webhooks replay {id} --from {}\n", first.seq));
    }
    text
}

fn webhook_json(webhook: &pb::Webhook) -> Value {
    json!({
        "id": webhook.id,
        "url": webhook.url,
        "kinds": webhook.kinds,
        "area_ids": webhook.area_ids,
        "precise": webhook.precise,
        "next_seq": webhook.next_seq,
        "dead_letters": webhook.dead_letters,
        "created_at_ms": webhook.created_at_ms,
        "failures": webhook.failures,
        "last_error": webhook.last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_say_what_to_do() {
        assert!(list_text(&[]).contains("pingji webhooks add"));
        let webhook = pb::Webhook {
            id: "wh_1".into(),
            url: "https://partner.example/hook".into(),
            kinds: vec!["incident_reported".into()],
            next_seq: 42,
            failures: 2,
            last_error: "answered HTTP 503".into(),
            ..Default::default()
        };
        let text = list_text(&[webhook]);
        assert!(text.contains("kinds: incident_reported") && text.contains("areas: everywhere"), "{text}");
        assert!(text.contains("failing: 2 attempt(s) at seq 42: answered HTTP 503"), "{text}");
        let letter = pb::DeadLetter { seq: 7, kind: "assigned".into(), attempts: 3, ..Default::default() };
        assert!(dead_letters_text("wh_1", &[letter]).contains("pingji webhooks replay wh_1 --from 7"));
    }
}
