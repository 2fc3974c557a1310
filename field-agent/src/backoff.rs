//! How long to wait before the next connection attempt: capped exponential
//! backoff with full jitter.
//!
//! The base delay starts at `initial` and doubles with every failed attempt
//! up to `cap`; the delay actually waited is drawn uniformly from
//! `[0, base]` ("full jitter"), so that thousands of sessions cut off by the
//! same dispatcher restart do not all come back in the same instant. After a
//! healthy session (one that stayed up for `healthy_after`) the base starts
//! again at `initial`.

use std::time::Duration;

use rand::Rng;

/// The settings of a [`Backoff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The base delay after the first failure.
    pub initial: Duration,
    /// The base delay never grows past this.
    pub cap: Duration,
    /// A session that stayed up this long resets the backoff.
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
    /// Failures since the last healthy session.
    failures: u32,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff { policy, failures: 0 }
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
    pub fn next_delay(&mut self, random: &mut impl Rng) -> Duration {
        let base = self.base_delay();
        self.failures = self.failures.saturating_add(1);
        let fraction: f64 = random.random_range(0.0..=1.0);
        base.mul_f64(fraction)
    }

    /// Starts again from `initial`, after a healthy session.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

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
        let mut backoff = Backoff::new(policy());
        let mut random = StdRng::seed_from_u64(1);
        let mut bases = Vec::new();
        for _ in 0..10 {
            bases.push(backoff.base_delay().as_millis());
            backoff.next_delay(&mut random);
        }
        assert_eq!(bases, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    }

    #[test]
    fn every_delay_stays_within_its_base_and_the_cap_even_after_many_failures() {
        let mut backoff = Backoff::new(policy());
        let mut random = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let base = backoff.base_delay();
            let delay = backoff.next_delay(&mut random);
            assert!(delay <= base, "{delay:?} is more than its base {base:?}");
            assert!(delay <= policy().cap);
        }
        assert_eq!(backoff.failures(), 200);
    }

    #[test]
    fn delays_are_jittered_not_all_equal() {
        let mut random = StdRng::seed_from_u64(42);
        let delays: Vec<Duration> = (0..50)
            .map(|_| {
                let mut backoff = Backoff::new(policy());
                for _ in 0..8 {
                    backoff.next_delay(&mut random);
                }
                backoff.next_delay(&mut random)
            })
            .collect();
        let shortest = delays.iter().min().copied().unwrap_or_default();
        let longest = delays.iter().max().copied().unwrap_or_default();
        // At the cap the delays spread over [0, 30 s]: fifty draws from it
        // span far more than a few seconds.
        assert!(longest - shortest > Duration::from_secs(10), "delays barely differ: {delays:?}");
    }

    #[test]
    fn reset_after_a_healthy_session_starts_again_from_initial() {
        let mut backoff = Backoff::new(policy());
        let mut random = StdRng::seed_from_u64(3);
        for _ in 0..12 {
            backoff.next_delay(&mut random);
        }
        assert_eq!(backoff.base_delay(), Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.base_delay(), Duration::from_millis(500));
        assert!(backoff.next_delay(&mut random) <= Duration::from_millis(500));
        assert_eq!(backoff.base_delay(), Duration::from_secs(1));
    }

    #[test]
    fn a_huge_initial_delay_is_still_capped() {
        let mut backoff = Backoff::new(BackoffPolicy { initial: Duration::from_secs(3600), ..policy() });
        let mut random = StdRng::seed_from_u64(5);
        for _ in 0..40 {
            assert!(backoff.next_delay(&mut random) <= Duration::from_secs(30));
        }
    }
}
