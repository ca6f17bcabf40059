//! Failures and delays a workload injects on purpose, so retries, timeouts and outlier
//! detection can be seen working.

use std::time::Duration;

/// How a workload misbehaves on purpose.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share of requests (0–100) that fail: HTTP 503, gRPC UNAVAILABLE.
    pub fail_percent: f64,
    /// Share of requests (0–100) delayed by `delay`.
    pub delay_percent: f64,
    /// How long delayed requests wait.
    pub delay: Duration,
}

/// What one request drew from the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer normally.
    Serve,
    /// Answer with a failure.
    Fail,
}

impl Faults {
    /// Waits out this request's delay, if it drew one, then says whether it must fail.
    pub(crate) async fn draw(&self) -> Verdict {
        if drawn(self.delay_percent) {
            tokio::time::sleep(self.delay).await;
        }
        if drawn(self.fail_percent) {
            Verdict::Fail
        } else {
            Verdict::Serve
        }
    }
}

/// True for `percent` out of every hundred calls, on average.
fn drawn(percent: f64) -> bool {
    fastrand::f64() * 100.0 < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_faults_always_serves() {
        for _ in 0..200 {
            assert_eq!(Faults::default().draw().await, Verdict::Serve);
        }
    }

    #[tokio::test]
    async fn full_failure_share_always_fails() {
        let faults = Faults {
            fail_percent: 100.0,
            ..Faults::default()
        };
        for _ in 0..200 {
            assert_eq!(faults.draw().await, Verdict::Fail);
        }
    }

    #[tokio::test]
    async fn partial_failure_share_fails_about_that_often() {
        let faults = Faults {
            fail_percent: 30.0,
            ..Faults::default()
        };
        let mut failed = 0;
        for _ in 0..2000 {
            if faults.draw().await == Verdict::Fail {
                failed += 1;
            }
        }
        // 600 expected; the bounds are more than 8 standard deviations away.
        assert!((430..=770).contains(&failed), "{failed} of 2000 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_share_waits_for_the_delay() {
        let faults = Faults {
            delay_percent: 100.0,
            delay: Duration::from_millis(1500),
            ..Faults::default()
        };
        let start = tokio::time::Instant::now();
        assert_eq!(faults.draw().await, Verdict::Serve);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }
}
