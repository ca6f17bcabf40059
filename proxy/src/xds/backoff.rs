//! Delays between reconnection attempts: exponential, capped, with jitter so that proxies that
//! lost the same control plane do not all come back at the same instant.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is half the current step plus a random
/// share of the other half; the step doubles up to a cap.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Steps from `min`, doubling up to `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            step: min,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let half = self.step / 2;
        let jitter = half.mul_f64(fastrand::f64());
        self.step = (self.step * 2).min(self.max);
        half + jitter
    }

    /// Back to the shortest step, after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut backoff = Backoff::new(min, max);
        let mut step = min;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(max);
        }
        let capped: Vec<Duration> = (0..50).map(|_| backoff.next_delay()).collect();
        assert!(capped.iter().all(|d| *d >= max / 2 && *d <= max));
        assert!(
            capped.windows(2).any(|w| w[0] != w[1]),
            "jitter spreads the delays"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
