//! Power of two choices: least request and peak EWMA.
//!
//! Comparing two random candidates, instead of scanning for the global best, keeps a pick
//! O(log n) and stops every proxy from herding onto the same least-loaded endpoint at once.

use std::sync::Arc;

use tokio::time::Instant;

use super::{endpoint::Endpoint, weighted::Weights};

/// Picks two distinct weighted-random candidates and returns the one `cheaper` prefers
/// (the first on a tie, itself a weighted-random choice, so idle endpoints share by weight).
fn choose(weights: &Weights, cheaper: impl Fn(usize, usize) -> bool) -> usize {
    if weights.len() == 1 {
        return 0;
    }
    let a = weights.sample();
    let b = weights.sample_other(a);
    if cheaper(b, a) { b } else { a }
}

/// The candidate with fewer requests in flight per unit of weight.
pub(super) fn least_request(endpoints: &[Arc<Endpoint>], weights: &Weights) -> usize {
    choose(weights, |x, y| {
        let (x, y) = (&endpoints[x], &endpoints[y]);
        // in_flight(x) / weight(x) < in_flight(y) / weight(y), without division.
        u64::from(x.in_flight()) * u64::from(y.weight())
            < u64::from(y.in_flight()) * u64::from(x.weight())
    })
}

/// How much cheaper a candidate must be to win: costs closer than this are a tie, which goes
/// to the first (random) candidate. Without it, equal endpoints answering one client in turn
/// differ by noise, and the noise decides: one endpoint got 16 % of 300 sequential calls. A
/// wider margin loses the slow endpoint among the ties (bench/README.md, "Resilience").
const COST_MARGIN: f64 = 1.05;

/// The candidate with the clearly lower expected wait (latency estimate × (requests in
/// flight + 1) / weight), so a slow endpoint and a busy one are both avoided, while endpoints
/// that only differ by noise share alike.
pub(super) fn peak_ewma(endpoints: &[Arc<Endpoint>], weights: &Weights, now: Instant) -> usize {
    let cost = |i: usize| {
        let endpoint = &endpoints[i];
        endpoint.rtt_estimate(now) * (f64::from(endpoint.in_flight()) + 1.0)
            / f64::from(endpoint.weight())
    };
    choose(weights, |x, y| cost(x) * COST_MARGIN < cost(y))
}
