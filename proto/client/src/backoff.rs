//! How long to wait before the next connection attempt: capped exponential
//! backoff with full jitter. One helper for every client that reconnects:
//! the field agent's session, the event stream ([`crate::event_stream`]),
//! and a call looking for an owner that went away ([`crate::connect`]).
//!
//! The base delay starts at `initial` and doubles with every failed attempt
//! up to `cap`; the delay actually waited is drawn uniformly from
//! `[0, base]` ("full jitter"), so that thousands of sessions cut off by the
//! same dispatcher restart do not all come back in the same instant. After a
//! healthy connection (one that stayed up for `healthy_after`) the base
//! starts again at `initial`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The settings of a [`Backoff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The base delay after the first failure.
    pub initial: Duration,
    /// The base delay never grows past this.
    pub cap: Duration,
    /// A connection that stayed up this long resets the backoff.
    pub healthy_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(10),
        }
    }
}

/// The state of the backoff between connection attempts.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Failures since the last healthy connection.
    failures: u32,
    random: StdRng,
}

impl Backoff {
    /// Jittered from the operating system's randomness.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff { policy, failures: 0, random: StdRng::from_os_rng() }
    }

    /// Jittered from `seed`: the same delays every time (tests).
    pub fn seeded(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff { policy, failures: 0, random: StdRng::seed_from_u64(seed) }
    }

    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The base delay for the next failure, before jitter: `initial * 2^failures`, at most `cap`.
    pub fn base_delay(&self) -> Duration {
        // 2^20 times any sensible initial delay is far past any cap; stopping
        // the exponent there keeps the multiplication from overflowing.
        let factor = 1u32 << self.failures.min(20);
        self.policy.initial.saturating_mul(factor).min(self.policy.cap)
    }

    /// Counts a failure and returns how long to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay();
        self.failures = self.failures.saturating_add(1);
        let fraction: f64 = self.random.random_range(0.0..=1.0);
        base.mul_f64(fraction)
    }

    /// Starts again from `initial`, after a healthy connection.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// A connection that stayed up `up_for` (zero: it was never made) was
    /// lost: how long to wait before the next attempt. After a healthy one
    /// the delays start again from `initial`.
    pub fn retry_in(&mut self, up_for: Duration) -> Duration {
        if up_for >= self.policy.healthy_after {
            self.reset();
        }
        self.next_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn base_doubles_from_initial_up_to_the_cap() {
        let mut backoff = Backoff::seeded(policy(), 1);
        let mut bases = Vec::new();
        for _ in 0..10 {
            bases.push(backoff.base_delay().as_millis());
            backoff.next_delay();
        }
        assert_eq!(bases, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    }

    #[test]
    fn every_delay_stays_within_its_base_and_the_cap_even_after_many_failures() {
        let mut backoff = Backoff::seeded(policy(), 7);
        for _ in 0..200 {
            let base = backoff.base_delay();
            let delay = backoff.next_delay();
            assert!(delay <= base, "{delay:?} is more than its base {base:?}");
            assert!(delay <= policy().cap);
        }
        assert_eq!(backoff.failures(), 200);
    }

    #[test]
    fn delays_are_jittered_not_all_equal() {
        let delays: Vec<Duration> = (0..50)
            .map(|seed| {
                let mut backoff = Backoff::seeded(policy(), seed);
                for _ in 0..8 {
                    backoff.next_delay();
                }
                backoff.next_delay()
            })
            .collect();
        let shortest = delays.iter().min().copied().unwrap_or_default();
        let longest = delays.iter().max().copied().unwrap_or_default();
        // At the cap the delays spread over [0, 30 s]: fifty draws from it
        // span far more than a few seconds.
        assert!(longest - shortest > Duration::from_secs(10), "delays barely differ: {delays:?}");
    }

    #[test]
    fn reset_after_a_healthy_connection_starts_again_from_initial() {
        let mut backoff = Backoff::seeded(policy(), 3);
        for _ in 0..12 {
            backoff.next_delay();
        }
        assert_eq!(backoff.base_delay(), Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.base_delay(), Duration::from_millis(500));
        assert!(backoff.next_delay() <= Duration::from_millis(500));
        assert_eq!(backoff.base_delay(), Duration::from_secs(1));
    }

    #[test]
    fn a_loss_after_a_healthy_connection_waits_little_and_one_after_a_short_one_longer() {
        let mut backoff = Backoff::seeded(policy(), 9);
        for _ in 0..6 {
            backoff.retry_in(Duration::ZERO);
        }
        assert_eq!(backoff.base_delay(), Duration::from_secs(30), "never connected: the delays grew to the cap");
        assert!(backoff.retry_in(Duration::from_secs(1)) <= Duration::from_secs(30));
        assert_eq!(backoff.failures(), 7, "up for less than healthy_after: still counting");
        assert!(backoff.retry_in(Duration::from_secs(10)) <= Duration::from_millis(500), "healthy: from initial again");
        assert_eq!(backoff.failures(), 1);
    }

    #[test]
    fn a_huge_initial_delay_is_still_capped() {
        let mut backoff = Backoff::seeded(BackoffPolicy { initial: Duration::from_secs(3600), ..policy() }, 5);
        for _ in 0..40 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }
}
