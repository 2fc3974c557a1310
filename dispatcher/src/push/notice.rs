//! What a push says: a small JSON document the phone app's service worker
//! turns into a notification (kind, ids, a short title and body in Chinese,
//! the deadline), nothing more personal than the app already shows the
//! person, and how the push service should treat it (TTL, Urgency, Topic).

use sha2::{Digest, Sha256};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// An incident offered to the person: accept or decline.
    Offer,
    /// A call-up naming the person: check in.
    Callup,
    /// An operator's message.
    Message,
}

/// One notice to a person.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PushNotice {
    pub kind: NoticeKind,
    /// The offer's, call-up's or message's id.
    pub id: String,
    /// The offer's incident; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub incident_id: String,
    pub title: String,
    pub body: String,
    /// When the offer or call-up runs out (ms since the epoch); 0 for none.
    #[serde(skip_serializing_if = "is_zero")]
    pub deadline_ms: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// The longest body, in characters: a notification shows two lines or so.
const MAX_BODY_CHARS: usize = 80;
/// How long a message waits at the push service for a phone that is off.
const MESSAGE_TTL_S: u64 = 24 * 3600;

fn shortened(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_BODY_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_BODY_CHARS - 1).collect();
    short.push('…');
    short
}

impl PushNotice {
    pub fn offer(offer_id: &str, incident_id: &str, category: &str, deadline_ms: i64) -> PushNotice {
        let category = if category.trim().is_empty() { "紧急任务" } else { category.trim() };
        PushNotice {
            kind: NoticeKind::Offer,
            id: offer_id.to_string(),
            incident_id: incident_id.to_string(),
            title: shortened(&format!("新任务：{category}")),
            body: "附近有任务需要你，请尽快接受或拒绝。".to_string(),
            deadline_ms,
        }
    }

    pub fn callup(callup_id: &str, reason: &str, deadline_ms: i64) -> PushNotice {
        let reason = if reason.trim().is_empty() { "请按要求到岗" } else { reason };
        PushNotice {
            kind: NoticeKind::Callup,
            id: callup_id.to_string(),
            incident_id: String::new(),
            title: "集结令：请签到".to_string(),
            body: shortened(reason),
            deadline_ms,
        }
    }

    pub fn message(message_id: &str, text: &str) -> PushNotice {
        PushNotice {
            kind: NoticeKind::Message,
            id: message_id.to_string(),
            incident_id: String::new(),
            title: "指挥中心消息".to_string(),
            body: shortened(text),
            deadline_ms: 0,
        }
    }

    /// The JSON the service worker reads.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// RFC 8030 Urgency: offers and call-ups wake the phone at once.
    pub fn urgency(&self) -> &'static str {
        match self.kind {
            NoticeKind::Offer | NoticeKind::Callup => "high",
            NoticeKind::Message => "normal",
        }
    }

    /// RFC 8030 TTL: an offer or call-up is worth delivering until its
    /// deadline (at least a minute, for clocks apart); a message for a day.
    pub fn ttl_s(&self, now_ms: i64) -> u64 {
        if self.deadline_ms == 0 {
            return MESSAGE_TTL_S;
        }
        let left_s = (self.deadline_ms - now_ms).max(0) / 1000;
        u64::try_from(left_s).unwrap_or(0).clamp(60, MESSAGE_TTL_S)
    }

    /// RFC 8030 Topic: a newer notice about the same offer, call-up or
    /// message replaces one the push service still holds. At most 32
    /// characters of the base64url alphabet: a digest of kind and id.
    pub fn topic(&self) -> String {
        let digest = Sha256::digest(format!("{:?}:{}", self.kind, self.id).as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..24])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_small_and_say_what_to_do() {
        let offer = PushNotice::offer("of_1", "inc_1", "积水", 1_000_000);
        let json: serde_json::Value = serde_json::from_slice(&offer.payload()).expect("json");
        assert_eq!(json["kind"], "offer");
        assert_eq!(json["incident_id"], "inc_1");
        assert_eq!(json["title"], "新任务：积水");
        assert_eq!(offer.urgency(), "high");
        assert_eq!(offer.ttl_s(1_000_000 - 90_000), 90);
        assert_eq!(offer.ttl_s(2_000_000), 60, "at least a minute");
        let topic = offer.topic();
        assert_eq!(topic.len(), 32);
        assert!(topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(topic, PushNotice::offer("of_1", "inc_1", "other", 5).topic(), "one topic per offer");
        assert_ne!(topic, PushNotice::offer("of_2", "inc_1", "积水", 5).topic());
        let message = PushNotice::message("m1", &"长".repeat(200));
        assert_eq!(message.body.chars().count(), MAX_BODY_CHARS);
        assert_eq!(message.urgency(), "normal");
        assert_eq!(message.ttl_s(0), MESSAGE_TTL_S);
        let json: serde_json::Value = serde_json::from_slice(&message.payload()).expect("json");
        assert!(json.get("incident_id").is_none() && json.get("deadline_ms").is_none());
        assert_eq!(PushNotice::callup("cu_1", "", 5).kind, NoticeKind::Callup);
    }
}
