//! Least request and peak EWMA.

use tokio::time::Instant;

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn least_request_avoids_a_busy_endpoint_until_it_is_released() {
    fastrand::seed(6);
    // 50 requests in flight on endpoint 0, started through a balancer that only had it.
    let only_first = balancer(LbPolicy::LeastRequest, &[1]);
    let held: Vec<Pick> = (0..50).filter_map(|_| only_first.pick(None)).collect();
    let b = Balancer::new(
        LbPolicy::LeastRequest,
        specs(&[1, 1, 1]),
        0,
        Some(&only_first),
    );
    // Candidates are distinct, so the busy endpoint always meets an idle one and loses.
    let c = counts(&b, 3_000, || None);
    assert_eq!(c[0], 0, "{c:?}");

    drop(held);
    assert_shares(&counts(&b, 30_000, || None), &[1, 1, 1], 3.0);
}

#[test]
fn least_request_keeps_in_flight_proportional_to_weight() {
    fastrand::seed(7);
    let b = balancer(LbPolicy::LeastRequest, &[1, 3]);
    // Idle endpoints tie; the tie goes to a weighted-random candidate.
    assert_shares(&counts(&b, 30_000, || None), &[1, 3], 2.0);
    // Under load, the lower in-flight per weight wins: 400 held picks split 100 / 300.
    let held: Vec<Pick> = (0..400).filter_map(|_| b.pick(None)).collect();
    let in_flight: Vec<u32> = b.endpoints().iter().map(|e| e.in_flight()).collect();
    assert!(in_flight[0].abs_diff(100) <= 1, "{in_flight:?}");
    drop(held);
}

/// A closed-loop load: every millisecond `PER_MS` requests are picked, and each is answered
/// after its endpoint's latency.
#[derive(Default)]
struct Traffic {
    in_flight: Vec<(Instant, Pick)>,
}

const PER_MS: usize = 4;

impl Traffic {
    /// Runs for `duration` with `latency[i]` for endpoint `i`; returns picks per endpoint.
    async fn run(&mut self, b: &Balancer, latency: &[Duration], duration: Duration) -> Vec<usize> {
        let mut counts = vec![0; b.endpoints().len()];
        let end = Instant::now() + duration;
        while Instant::now() < end {
            for _ in 0..PER_MS {
                let pick = b.pick(None).expect("an endpoint");
                let i = index_of(b, &pick);
                counts[i] += 1;
                self.in_flight.push((Instant::now() + latency[i], pick));
            }
            tokio::time::advance(MS).await;
            let now = Instant::now();
            self.in_flight.retain(|(due, pick)| {
                if *due <= now {
                    pick.observe_response();
                }
                *due > now
            });
        }
        counts
    }
}

fn percent(counts: &[usize], i: usize) -> f64 {
    100.0 * counts[i] as f64 / counts.iter().sum::<usize>() as f64
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_avoids_a_slow_endpoint_and_returns_once_it_recovers() {
    fastrand::seed(8);
    let b = balancer(LbPolicy::PeakEwma, &[1, 1]);
    let mut traffic = Traffic::default();

    // 100 ms against 1 ms: under 1% of picks (0.1% measured).
    let slow = [MS, 100 * MS];
    let c = traffic.run(&b, &slow, Duration::from_secs(5)).await;
    let share = percent(&c, 1);
    assert!(share < 1.0, "slow endpoint got {share:.2}% of picks: {c:?}");

    // Now as fast as the other. Rarely picked, it hears little; its estimate decays toward
    // zero until it is tried again (after ~4 s here), and its fast answers pull it down until
    // it is within the cost margin, where it shares alike.
    let fast = [MS, MS];
    traffic.run(&b, &fast, Duration::from_secs(10)).await;
    let c = traffic.run(&b, &fast, Duration::from_secs(5)).await;
    let share = percent(&c, 1);
    assert!(
        share > 10.0,
        "recovering endpoint got {share:.2}% of picks: {c:?}"
    );
    // The pull is an EWMA with a 10 s time constant, so a minute later the old peak is
    // forgotten and the two split evenly.
    traffic.run(&b, &fast, Duration::from_secs(45)).await;
    let c = traffic.run(&b, &fast, Duration::from_secs(10)).await;
    assert_shares(&c, &[1, 1], 5.0);
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_gives_a_new_endpoint_a_share_without_flooding_it() {
    fastrand::seed(9);
    let warm = balancer(LbPolicy::PeakEwma, &[1, 1]);
    let mut traffic = Traffic::default();
    traffic.run(&warm, &[MS, MS], Duration::from_secs(20)).await;

    let b = Balancer::new(LbPolicy::PeakEwma, specs(&[1, 1, 1]), 0, Some(&warm));
    let c = traffic.run(&b, &[MS, MS, MS], Duration::from_secs(1)).await;
    let share = percent(&c, 2);
    assert!(
        (20.0..50.0).contains(&share),
        "newcomer got {share:.2}%: {c:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_respects_weights() {
    fastrand::seed(10);
    let b = balancer(LbPolicy::PeakEwma, &[1, 3]);
    let mut traffic = Traffic::default();
    let c = traffic
        .run(&b, &[5 * MS, 5 * MS], Duration::from_secs(10))
        .await;
    assert_shares(&c, &[1, 3], 2.0);
}
