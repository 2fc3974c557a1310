//! How the notifier reaches gateways: the SMS and voice gateways of the
//! deployment, how sends are retried and rate-limited, and the inbound
//! webhook's secret. Read from the `[notify]` section of the settings file
//! (`crate::settings`); the ladder itself is in the policy file.

use std::time::Duration;

use super::gateway::Gateway;

/// The notifier's settings. Without a gateway for a channel, that
/// channel's steps are journaled as skipped. `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct NotifyConfig {
    pub sms: Option<Gateway>,
    pub voice: Option<Gateway>,
    /// The HMAC-SHA256 key gateways sign their posts to the inbound webhook
    /// with; without it, the inbound webhook refuses every post.
    pub inbound_secret: Option<String>,
    /// How far a signed timestamp may be from the dispatcher's clock.
    pub inbound_window: Duration,
    /// Replies that check a person in to their call-up (besides "1").
    pub checkin_keywords: Vec<String>,
    /// Attempts at one step before it is journaled as failed.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one.
    pub retry_initial: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// How long one request to a gateway may take.
    pub timeout: Duration,
    /// Requests per second to one gateway at most.
    pub gateway_per_second: u32,
    /// SMS and calls to one person per hour at most; a step over it is
    /// journaled as skipped.
    pub person_per_hour: u32,
    /// Sends under way at once (each with its own connection).
    pub concurrency: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        // 2 s doubling to 60 s, 6 attempts: about two minutes of retries,
        // short beside a call-up's deadline, so that a failure reaches the
        // operator while there is still time to phone by hand.
        NotifyConfig {
            sms: None,
            voice: None,
            inbound_secret: None,
            inbound_window: Duration::from_secs(300),
            checkin_keywords: vec!["到".to_string(), "DAO".to_string()],
            max_attempts: 6,
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            gateway_per_second: 50,
            person_per_hour: 12,
            concurrency: 16,
        }
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("sms", &self.sms)
            .field("voice", &self.voice)
            .field("inbound_secret", &self.inbound_secret.as_ref().map(|_| "…"))
            .field("max_attempts", &self.max_attempts)
            .field("gateway_per_second", &self.gateway_per_second)
            .field("person_per_hour", &self.person_per_hour)
            .finish_non_exhaustive()
    }
}

impl NotifyConfig {
    /// The wait after `failures` failed attempts (1 or more).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.retry_initial.saturating_mul(1 << doublings).min(self.retry_max)
    }

    /// Whether `text` (trimmed, any case) is a check-in reply.
    pub fn is_checkin(&self, text: &str) -> bool {
        let text = text.trim();
        text == "1" || self.checkin_keywords.iter().any(|keyword| keyword.eq_ignore_ascii_case(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = NotifyConfig::default();
        assert_eq!(config.backoff(1), Duration::from_secs(2));
        assert_eq!(config.backoff(3), Duration::from_secs(8));
        assert_eq!(config.backoff(100), Duration::from_secs(60));
    }

    #[test]
    fn checkin_replies() {
        let config = NotifyConfig::default();
        assert!(config.is_checkin(" 到 "));
        assert!(config.is_checkin("1"));
        assert!(config.is_checkin("dao"));
        assert!(!config.is_checkin("2"));
    }
}
