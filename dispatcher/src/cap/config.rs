//! Who we are in CAP alerts, and who may send us theirs.

use sha2::{Digest, Sha256};

/// Who we are in the alerts we issue, and who may send us theirs.
#[derive(Clone, Debug, PartialEq)]
pub struct CapConfig {
    /// CAP `sender`: this command centre, unique among senders (e.g.
    /// `pingji@minghu.gov.cn`).
    pub sender: String,
    /// CAP `senderName`, shown to the public.
    pub sender_name: String,
    /// `Exercise` for a drill's dispatcher, else `Actual`.
    pub exercise: bool,
    /// The feeds allowed to post alerts to `/cap/inbound`.
    pub feeds: Vec<CapFeed>,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            sender: "pingji".to_string(), sender_name: "平急指挥调度".to_string(), exercise: false, feeds: Vec::new()
        }
    }
}

impl CapConfig {
    pub fn status(&self) -> &'static str {
        if self.exercise { "Exercise" } else { "Actual" }
    }
}

/// One system allowed to post alerts: it sends `Authorization: Bearer
/// TOKEN`, and only the SHA-256 of the token is configured.
#[derive(Clone, Debug, PartialEq)]
pub struct CapFeed {
    pub name: String,
    /// Hex SHA-256 of the feed's token.
    pub token_sha256: String,
    /// The CAP senders this feed may post as; empty: any.
    pub senders: Vec<String>,
}

impl CapFeed {
    /// The feed whose token this is (compared by hash, in constant time).
    pub fn matching<'a>(feeds: &'a [CapFeed], token: &str) -> Option<&'a CapFeed> {
        let hash: String = Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
        feeds.iter().find(|feed| {
            let wanted = feed.token_sha256.to_ascii_lowercase();
            wanted.len() == hash.len() && wanted.bytes().zip(hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// The hex SHA-256 of a token, as `[[cap.feeds]] token_sha256` wants it.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}
