//! Waiting between tries of a backend call that failed.

use std::time::Duration;

use holidapp_core::RetryPolicy;

/// Exponential backoff with jitter for backend calls (lease, renew, requeue): 100 ms, doubling up
/// to a cap (5 s by default), each wait a random point in the upper half of its step.
///
/// The delays come from core's [`RetryPolicy::backoff`], the same formula the status machine
/// uses between job attempts, so the two cannot drift apart; here the attempts never run out.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    /// The first wait of a backoff.
    pub(crate) const BASE: Duration = Duration::from_millis(100);
    /// The default cap.
    pub(crate) const CAP: Duration = Duration::from_secs(5);

    /// A backoff capped at `cap`.
    pub(crate) fn new(cap: Duration) -> Self {
        Backoff {
            policy: RetryPolicy {
                max_attempts: u32::MAX,
                base_delay: Self::BASE.min(cap),
                max_delay: cap,
            },
            failures: 0,
        }
    }

    /// Records a failure and answers how long to wait before the next try.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1).min(u32::MAX - 1);
        self.policy.backoff(self.failures)
    }

    /// Records a success: the next failure waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Backoff::CAP);
        let mut step = Backoff::BASE;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(Backoff::CAP);
        }
        assert!(backoff.next_delay() >= Backoff::CAP / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::BASE);
    }
}
