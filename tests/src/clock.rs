//! A clock the test moves by hand, for a dispatcher started with it
//! (`Config::clock`): tokens expire without the test waiting for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use pingji_dispatcher::server::Clock;
use pingji_engine::ids::Millis;

/// A virtual clock: it stands still until the test moves it on.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// A clock showing `start_ms` (milliseconds since the Unix epoch).
    pub fn at(start_ms: i64) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// The dispatcher's view of this clock, for `Config::clock`.
    pub fn for_dispatcher(&self) -> Clock {
        let shared = self.0.clone();
        Clock::new(move || Millis(shared.load(Ordering::SeqCst)))
    }
}
