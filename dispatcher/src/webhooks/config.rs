//! How deliveries are retried, and which event kinds partners may have.

use std::time::Duration;

/// How deliveries are retried and posted.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Attempts at one event before it goes to the dead letters.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each one.
    pub retry_initial: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// How long one post may take (connecting, sending, the answer).
    pub timeout: Duration,
    /// The CloudEvents `source` of every event.
    pub source: String,
    /// Who we are in CAP alerts (set from the dispatcher's `[cap]`).
    pub cap: crate::cap::CapConfig,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        // 1 s doubling to 60 s, 20 attempts: about 14 minutes of retries
        // before an event is given up on, so a partner down for ten
        // minutes loses nothing.
        WebhookConfig {
            max_attempts: 20,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            source: DEFAULT_SOURCE.to_string(),
            cap: crate::cap::CapConfig::default(),
        }
    }
}

pub const DEFAULT_SOURCE: &str = "/pingji";

impl WebhookConfig {
    /// The wait after `failures` failed attempts (1 or more).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.retry_initial.saturating_mul(1 << doublings).min(self.retry_max)
    }
}

/// The event kinds partners may subscribe to: incidents and their offers
/// and assignments, modes, plans, call-ups, field reports, grid staffing
/// and area changes. Roster records (names, homes), tokens, accounts, the
/// audit of reads and operators' messages stay inside.
pub const PARTNER_KINDS: &[&str] = &[
    "areas_imported",
    "areas_retired",
    "agent_status_changed",
    "incident_reported",
    "offer_sent",
    "assigned",
    "offer_declined",
    "offer_timed_out",
    "offer_withdrawn",
    "widened",
    "no_candidates",
    "incident_unstaffable",
    "incident_staffed",
    "agent_arrived",
    "assignment_completed",
    "incident_cancelled",
    "incident_closed",
    "mode_switched",
    "plans_imported",
    "plan_activated",
    "plan_deactivated",
    "callup_issued",
    "checked_in",
    "callup_deadline_passed",
    "callup_stood_down",
    "field_reported",
    "report_accepted",
    "report_merged",
    "report_rejected",
    "grid_staffing_low",
    "grid_staffing_restored",
    // A CAP 1.2 alert we issued: delivered as `org.pingji.cap.alert` with
    // the alert's XML as its data (see `cloudevent`).
    "cap_alert_issued",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = WebhookConfig::default();
        assert_eq!(config.backoff(1), Duration::from_secs(1));
        assert_eq!(config.backoff(2), Duration::from_secs(2));
        assert_eq!(config.backoff(6), Duration::from_secs(32));
        assert_eq!(config.backoff(7), Duration::from_secs(60));
        assert_eq!(config.backoff(1000), Duration::from_secs(60));
        let total: Duration = (1..config.max_attempts).map(|failures| config.backoff(failures)).sum();
        assert!(total > Duration::from_secs(600), "a partner down ten minutes loses nothing: {total:?}");
    }
}
