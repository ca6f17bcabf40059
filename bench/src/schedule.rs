//! The fixed global send schedule of the open model, and the pacer thread that follows it.
//!
//! Request `i` is due at `start + i / rate` and goes to lane `i % lanes` (a lane is an HTTP/1.1
//! connection, or one stream slot of an HTTP/2 connection), so lane `k` sends requests
//! `k, k + lanes, k + 2 * lanes, ...`. The due times never move: a lane stalled by a slow response
//! sends its queued requests late and their latency is measured from the due time, which is what
//! makes the generator safe from coordinated omission (the approach of wrk2).
//!
//! The pacer is a task on the load generator's runtime that sleeps on a [`PreciseTimer`] and
//! hands each due time to its lane over a channel.

use crate::timer::PreciseTimer;
use anyhow::{Result, ensure};
use std::time::Duration;
use tokio::{sync::mpsc::UnboundedSender, time::Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A constant request rate spread round-robin over a number of lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    rate: u64,
    lanes: usize,
}

// === impl Schedule ===

impl Schedule {
    /// A schedule of `rate` requests per second over `lanes` lanes.
    pub fn new(rate: u64, lanes: usize) -> Result<Self> {
        ensure!(rate > 0, "the request rate must be at least 1 per second");
        ensure!(lanes > 0, "at least one connection is needed");
        Ok(Self { rate, lanes })
    }

    /// When request `i` is due, counted from the start of the schedule.
    pub fn offset(&self, i: u64) -> Duration {
        let nanos = u128::from(i) * NANOS_PER_SEC / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The lane that sends request `i`.
    pub fn lane(&self, i: u64) -> usize {
        // The remainder is below `lanes`, which is a usize.
        (i % self.lanes as u64) as usize
    }

    /// When the `j`-th request of lane `lane` is due, counted from the start of the schedule.
    pub fn offset_on_lane(&self, lane: usize, j: u64) -> Duration {
        self.offset(j * self.lanes as u64 + lane as u64)
    }

    /// How many requests are due strictly before `elapsed`.
    pub fn count_before(&self, elapsed: Duration) -> u64 {
        // offset(i) < elapsed  <=>  i * 1e9 < elapsed_ns * rate  <=>  i < ceil(elapsed_ns * rate / 1e9)
        let scaled = elapsed.as_nanos() * u128::from(self.rate);
        u64::try_from(scaled.div_ceil(NANOS_PER_SEC)).unwrap_or(u64::MAX)
    }
}

/// Follows the schedule from `start` until `end`, sending each request's due time to its lane;
/// returns how many requests were handed out. Dropping `lanes` at the end lets the lanes finish.
///
/// Falling behind (the task was not polled in time) only delays the hand-off: the due times
/// handed out stay on the schedule, so the delay shows up in the measured latency.
pub async fn pace(
    schedule: Schedule,
    start: Instant,
    end: Instant,
    lanes: Vec<UnboundedSender<Instant>>,
) -> Result<u64> {
    let mut timer = PreciseTimer::new()?;
    let total = schedule.count_before(end.saturating_duration_since(start));
    for i in 0..total {
        let due = start + schedule.offset(i);
        timer.sleep_until(due).await?;
        let Some(lane) = lanes.get(schedule.lane(i)) else {
            return Ok(i);
        };
        if lane.send(due).is_err() {
            // The lanes are gone (the run was abandoned): nobody is left to send requests.
            return Ok(i);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate() {
        let s = Schedule::new(1_000, 100).unwrap();
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1_500), Duration::from_millis(1_500));
        let s = Schedule::new(3, 1).unwrap();
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset(3), Duration::from_secs(1));
    }

    #[test]
    fn requests_go_round_robin() {
        let s = Schedule::new(2_000, 100).unwrap();
        assert_eq!(s.lane(0), 0);
        assert_eq!(s.lane(99), 99);
        assert_eq!(s.lane(100), 0);
        assert_eq!(s.lane(250), 50);
    }

    #[test]
    fn each_lane_runs_at_rate_over_lanes() {
        // 2,000 rps over 100 connections: each connection sends every 50 ms, connection k
        // offset by k * 0.5 ms from connection 0.
        let s = Schedule::new(2_000, 100).unwrap();
        assert_eq!(s.offset_on_lane(0, 0), Duration::ZERO);
        assert_eq!(s.offset_on_lane(0, 1), Duration::from_millis(50));
        assert_eq!(s.offset_on_lane(7, 0), Duration::from_micros(3_500));
        assert_eq!(s.offset_on_lane(7, 2), Duration::from_micros(103_500));
        // The lane view and the global view agree.
        for i in 0..1_000 {
            let lane = s.lane(i);
            assert_eq!(s.offset_on_lane(lane, i / 100), s.offset(i));
        }
    }

    #[test]
    fn counts_requests_in_a_window() {
        let s = Schedule::new(1_000, 10).unwrap();
        assert_eq!(s.count_before(Duration::ZERO), 0);
        assert_eq!(s.count_before(Duration::from_secs(1)), 1_000);
        assert_eq!(s.count_before(Duration::from_nanos(1)), 1);
        assert_eq!(s.count_before(Duration::from_micros(1_001)), 2);
        let s = Schedule::new(3, 1).unwrap();
        // Due at 0, 0.333.., 0.666.., 1.0: three before 1 s, four before 1 s + 1 ns.
        assert_eq!(s.count_before(Duration::from_secs(1)), 3);
        assert_eq!(s.count_before(Duration::from_nanos(1_000_000_001)), 4);
    }

    #[test]
    fn rejects_empty_schedules() {
        assert!(Schedule::new(0, 1).is_err());
        assert!(Schedule::new(1, 0).is_err());
    }

    #[tokio::test]
    async fn pace_hands_every_due_time_to_its_lane() {
        let s = Schedule::new(10_000, 3).unwrap();
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..3)
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        let start = Instant::now();
        let sent = pace(s, start, start + Duration::from_millis(10), txs)
            .await
            .unwrap();
        assert_eq!(sent, 100);
        for (k, rx) in rxs.iter_mut().enumerate() {
            let mut j = 0;
            while let Ok(due) = rx.try_recv() {
                assert_eq!(due, start + s.offset_on_lane(k, j));
                j += 1;
            }
            assert!((33..=34).contains(&j), "lane {k} got {j}");
        }
        assert!(Instant::now() >= start + s.offset(99));
    }
}
