//! Round robin and random.

use super::*;
use crate::balance::weighted::schedule;

/// How many times in a row each index appears at most in `sequence`.
fn longest_runs(sequence: &[usize], indices: usize) -> Vec<usize> {
    let mut longest = vec![0; indices];
    let mut run = 0;
    for (i, &index) in sequence.iter().enumerate() {
        run = if i > 0 && sequence[i - 1] == index {
            run + 1
        } else {
            1
        };
        longest[index] = longest[index].max(run);
    }
    longest
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
fn round_robin_gives_equal_endpoints_exactly_equal_picks() {
    let b = balancer(LbPolicy::RoundRobin, &[1, 1, 1]);
    assert_eq!(counts(&b, 3_000, || None), [1_000, 1_000, 1_000]);
}

#[test]
fn round_robin_is_exact_per_cycle_and_interleaved() {
    let b = balancer(LbPolicy::RoundRobin, &[1, 2, 3]);
    let sequence: Vec<usize> = (0..600)
        .map(|_| index_of(&b, &b.pick(None).expect("an endpoint")))
        .collect();
    // Every 6 consecutive picks are a whole cycle, wherever the cursor started.
    for cycle in sequence.chunks(6) {
        let mut c = [0; 3];
        cycle.iter().for_each(|&i| c[i] += 1);
        assert_eq!(c, [1, 2, 3], "cycle {cycle:?}");
    }
    // Smooth WRR's cycle is C B A C B C: endpoints with under half the weight never come
    // twice in a row, the one with half at most twice (at the seam of two cycles). A plain
    // weighted round robin (A B B C C C) would give runs of 2 and 3.
    assert_eq!(longest_runs(&sequence, 3), [1, 1, 2]);
}

#[test]
fn round_robin_cycle_keeps_every_prefix_within_one_pick_of_its_share() {
    fastrand::seed(3);
    let mut cases = vec![vec![1, 2, 3], vec![5, 1, 1], vec![7, 3, 1, 1], vec![100, 1]];
    cases.extend((0..50).map(|_| {
        let n = fastrand::usize(2..8);
        (0..n).map(|_| fastrand::u32(1..20)).collect()
    }));
    for weights in cases {
        let cycle = schedule(&weights, u64::MAX);
        let total: u32 = weights.iter().sum();
        // One cycle: the weights' sum after dividing them by their common divisor.
        let divisor = weights.iter().fold(0, |a, &b| gcd(a, b));
        assert_eq!(cycle.len(), (total / divisor) as usize, "{weights:?}");
        let total = total / divisor;
        let weights: Vec<u32> = weights.iter().map(|w| w / divisor).collect();
        let mut c = vec![0u32; weights.len()];
        for (picks, &index) in cycle.iter().enumerate() {
            c[index as usize] += 1;
            for (i, &w) in weights.iter().enumerate() {
                let exact = (picks + 1) as f64 * f64::from(w) / f64::from(total);
                assert!(
                    (f64::from(c[i]) - exact).abs() < 1.0,
                    "{weights:?}: after {} picks index {i} has {}, exact share {exact:.2}",
                    picks + 1,
                    c[i]
                );
            }
        }
    }
}

#[test]
fn round_robin_cycle_stays_bounded_for_huge_weights() {
    // Common divisors are removed: 1:3 exactly.
    assert_eq!(schedule(&[1_000_000, 3_000_000], u64::MAX).len(), 4);
    // Sums too big for a table are scaled down, keeping every endpoint in the cycle.
    let cycle = schedule(&[u32::MAX, 3, u32::MAX / 2], u64::MAX);
    assert!(cycle.len() <= 4096, "{}", cycle.len());
    let count = |i| cycle.iter().filter(|&&x| x == i).count() as f64;
    assert!((count(0) / count(2) - 2.0).abs() < 0.01);
    assert_eq!(count(1), 1.0);
}

#[test]
fn round_robin_falls_back_to_rounds_past_the_build_budget() {
    let cycle = schedule(&[1, 2, 3], 0);
    // Round 0 visits all, heaviest first; round 1 those of weight 2 and up; round 2 the last.
    assert_eq!(&*cycle, [2, 1, 0, 2, 1, 2]);
}

#[test]
fn random_spreads_equal_endpoints_evenly() {
    fastrand::seed(4);
    let b = balancer(LbPolicy::Random, &[1, 1, 1]);
    assert_shares(&counts(&b, 30_000, || None), &[1, 1, 1], 3.0);
}

#[test]
fn random_respects_weights() {
    fastrand::seed(5);
    let b = balancer(LbPolicy::Random, &[1, 3]);
    assert_shares(&counts(&b, 30_000, || None), &[1, 3], 2.0);
}
