//! Weighted random sampling and smooth weighted round robin.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest round-robin cycle built for unequal weights; larger weight sums are scaled down to
/// it (or to twice the endpoint count, if larger), which keeps proportions within a fraction
/// of a percent and the table small.
const MAX_CYCLE: u64 = 4096;

/// Most steps spent building a smooth schedule (cycle length × endpoints, the smooth algorithm
/// scans every endpoint per slot). Bigger clusters get a cheaper, less smooth interleaving.
const SMOOTH_BUILD_BUDGET: u64 = 1 << 24;

/// Cumulative weights, for weighted random choice by binary search.
#[derive(Debug)]
pub(super) struct Weights {
    /// `cumulative[i]` is the sum of the weights of endpoints `0..=i`.
    cumulative: Box<[u64]>,
}

/// A precomputed smooth weighted round-robin cycle walked by a shared atomic cursor.
#[derive(Debug)]
pub(super) struct RoundRobin {
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
}

// === impl Weights ===

impl Weights {
    /// Weights must be at least 1.
    pub(super) fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0u64, |sum, w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    pub(super) fn len(&self) -> usize {
        self.cumulative.len()
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.cumulative[i - 1] }
    }

    /// The index owning point `r` of `0..total`.
    fn owner(&self, r: u64) -> usize {
        self.cumulative.partition_point(|&c| c <= r)
    }

    /// A random index, each with probability weight / total. Must not be empty.
    pub(super) fn sample(&self) -> usize {
        self.owner(fastrand::u64(0..self.total()))
    }

    /// A random index other than `other`, with probability proportional to weight among the
    /// rest: drawn over the total without `other`'s span, then stepped over that span, so it
    /// needs no retry loop. Needs at least two entries.
    pub(super) fn sample_other(&self, other: usize) -> usize {
        let skipped = self.cumulative[other] - self.start(other);
        let mut r = fastrand::u64(0..self.total() - skipped);
        if r >= self.start(other) {
            r += skipped;
        }
        self.owner(r)
    }
}

// === impl RoundRobin ===

impl RoundRobin {
    /// Weights must be at least 1; there must be at least one.
    pub(super) fn new(weights: &[u32]) -> Self {
        let schedule = schedule(weights, SMOOTH_BUILD_BUDGET);
        // Every proxy starting at the same place would send its first requests after a
        // config push to the same endpoint.
        let cursor = AtomicUsize::new(fastrand::usize(0..schedule.len()));
        Self { schedule, cursor }
    }

    pub(super) fn next(&self) -> usize {
        let at = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.schedule[at % self.schedule.len()] as usize
    }
}

/// One cycle of indices in which index `i` appears in proportion to `weights[i]`.
pub(super) fn schedule(weights: &[u32], budget: u64) -> Box<[u32]> {
    let weights = cycle_weights(weights);
    let total: u64 = weights.iter().sum();
    if total.saturating_mul(weights.len() as u64) <= budget {
        smooth(&weights, total)
    } else {
        rounds(&weights, total)
    }
}

/// The weights divided by their common divisor, then scaled down if their sum exceeds the
/// cycle limit (each kept at least 1, so no endpoint drops out).
fn cycle_weights(weights: &[u32]) -> Vec<u64> {
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w))).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|&w| u64::from(w) / divisor).collect();
    let total: u64 = weights.iter().sum();
    let limit = MAX_CYCLE.max(2 * weights.len() as u64);
    if total > limit {
        for w in &mut weights {
            *w = (*w * limit / total).max(1);
        }
    }
    weights
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Nginx's smooth weighted round robin: every slot, each index gains its weight and the
/// richest one is picked and pays the total. Heavy endpoints are spread through the cycle
/// rather than picked in a burst, and over any prefix each index is within one pick of its
/// exact share.
fn smooth(weights: &[u64], total: u64) -> Box<[u32]> {
    let total = total as i64;
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += w as i64;
            }
            // The first of equals wins, so the cycle is the same in every proxy.
            let best =
                (1..current.len()).fold(
                    0,
                    |best, i| {
                        if current[i] > current[best] { i } else { best }
                    },
                );
            current[best] -= total;
            best as u32
        })
        .collect()
}

/// Interleaved rounds: round `k` visits every index whose weight exceeds `k`, heaviest
/// first. Linear in the cycle length to build, for clusters too big for `smooth`; less
/// smooth, as the last rounds hold only the heaviest indices.
fn rounds(weights: &[u64], total: u64) -> Box<[u32]> {
    let mut by_weight: Vec<u32> = (0..weights.len() as u32).collect();
    // Stable: equal weights keep index order.
    by_weight.sort_by_key(|&i| std::cmp::Reverse(weights[i as usize]));
    let mut schedule = Vec::with_capacity(total as usize);
    let mut round = 0;
    while schedule.len() < total as usize {
        let members = by_weight
            .iter()
            .take_while(|&&i| weights[i as usize] > round);
        schedule.extend(members);
        round += 1;
    }
    schedule.into_boxed_slice()
}
