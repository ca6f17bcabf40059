//! Behaviour shared by every policy: health, panic mode, empty clusters, state carried across
//! reloads, the key hash. Per-policy tests are in the sibling files.

mod hashing;
mod outlier;
mod p2c;
mod weighted;

use std::{net::SocketAddr, time::Duration};

use super::*;

const ALL_POLICIES: [LbPolicy; 6] = [
    LbPolicy::PeakEwma,
    LbPolicy::RoundRobin,
    LbPolicy::Random,
    LbPolicy::LeastRequest,
    LbPolicy::RingHash,
    LbPolicy::Maglev,
];

fn addr(i: usize) -> SocketAddr {
    let [_, _, high, low] = (i as u32 + 1).to_be_bytes();
    SocketAddr::from(([10, 0, high, low], 8080))
}

fn spec(i: usize, weight: u32, healthy: bool) -> EndpointSpec {
    EndpointSpec {
        addr: addr(i),
        weight,
        healthy,
        mesh_tls: false,
        identity: None,
        workload: None,
    }
}

/// Healthy endpoints `addr(0..)` with the given weights.
fn specs(weights: &[u32]) -> Vec<EndpointSpec> {
    (0..weights.len())
        .map(|i| spec(i, weights[i], true))
        .collect()
}

fn balancer(policy: LbPolicy, weights: &[u32]) -> Balancer {
    Balancer::new(policy, specs(weights), 0, None)
}

/// The picked endpoint's position in `balancer.endpoints()`.
fn index_of(balancer: &Balancer, pick: &Pick) -> usize {
    balancer
        .endpoints()
        .iter()
        .position(|e| e.addr() == pick.addr())
        .expect("picked endpoint belongs to the balancer")
}

/// Picks per endpoint over `n` picks, each dropped at once, with keys from `hash`.
fn counts(balancer: &Balancer, n: usize, mut hash: impl FnMut() -> Option<u64>) -> Vec<usize> {
    let mut counts = vec![0; balancer.endpoints().len()];
    for _ in 0..n {
        let pick = balancer.pick(hash()).expect("an endpoint");
        counts[index_of(balancer, &pick)] += 1;
    }
    counts
}

fn random_hash() -> Option<u64> {
    Some(fastrand::u64(..))
}

/// Asserts that each endpoint's share of `counts`, in percent, is within `tolerance`
/// percentage points of its share of `weights`.
#[track_caller]
fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
    let picks: usize = counts.iter().sum();
    let total: u32 = weights.iter().sum();
    for (i, (&count, &weight)) in counts.iter().zip(weights).enumerate() {
        let share = 100.0 * count as f64 / picks as f64;
        let expected = 100.0 * f64::from(weight) / f64::from(total);
        assert!(
            (share - expected).abs() <= tolerance,
            "endpoint {i}: {share:.2}% of picks, expected {expected:.2}% ± {tolerance} (counts {counts:?})"
        );
    }
}

#[test]
fn balancer_and_picks_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Balancer>();
    assert_send_sync::<Pick>();
    assert_send_sync::<Endpoint>();
}

#[test]
fn unhealthy_endpoints_are_never_picked() {
    fastrand::seed(1);
    for policy in ALL_POLICIES {
        let endpoints = vec![spec(0, 1, true), spec(1, 5, false), spec(2, 1, true)];
        let b = Balancer::new(policy, endpoints, 0, None);
        for hash in [random_hash as fn() -> Option<u64>, || None] {
            let c = counts(&b, 3_000, hash);
            assert_eq!(c[1], 0, "{policy:?} picked the unhealthy endpoint");
            assert!(
                c[0] > 0 && c[2] > 0,
                "{policy:?} ignored a healthy one: {c:?}"
            );
        }
    }
}

#[test]
fn all_unhealthy_picks_among_all_in_panic_mode() {
    fastrand::seed(2);
    for policy in ALL_POLICIES {
        let endpoints = (0..3).map(|i| spec(i, 1, false)).collect();
        let b = Balancer::new(policy, endpoints, 0, None);
        let c = counts(&b, 3_000, random_hash);
        assert!(c.iter().all(|&n| n > 500), "{policy:?}: {c:?}");
    }
}

#[test]
fn empty_cluster_picks_nothing() {
    for policy in ALL_POLICIES {
        let b = Balancer::new(policy, vec![], 0, None);
        assert!(b.is_empty());
        assert_eq!(b.policy(), policy);
        assert!(b.pick(None).is_none(), "{policy:?}");
        assert!(b.pick(Some(42)).is_none(), "{policy:?}");
    }
}

#[test]
fn weight_zero_counts_as_one() {
    let b = balancer(LbPolicy::RoundRobin, &[0, 1]);
    assert_eq!(b.endpoints()[0].weight(), 1);
    assert_eq!(counts(&b, 1_000, || None), [500, 500]);
}

#[test]
fn pick_counts_in_flight_until_dropped() {
    let b = balancer(LbPolicy::Random, &[1]);
    let first = b.pick(None).expect("an endpoint");
    let second = b.pick(None).expect("an endpoint");
    assert_eq!(b.endpoints()[0].in_flight(), 2);
    drop(first);
    assert_eq!(second.endpoint().in_flight(), 1);
    drop(second);
    assert_eq!(b.endpoints()[0].in_flight(), 0);
}

#[test]
fn in_flight_pick_from_previous_balancer_counts_in_the_next() {
    let old = balancer(LbPolicy::LeastRequest, &[1, 1]);
    let pick = old.pick(None).expect("an endpoint");
    let picked = pick.addr();

    // Reordered, one endpoint added, another policy: state follows the address.
    let endpoints = vec![spec(2, 1, true), spec(1, 3, true), spec(0, 1, true)];
    let new = Balancer::new(LbPolicy::PeakEwma, endpoints.clone(), 0, Some(&old));
    let in_flight = |b: &Balancer, addr| {
        b.endpoints()
            .iter()
            .find(|e| e.addr() == addr)
            .map(|e| e.in_flight())
    };
    assert_eq!(in_flight(&new, picked), Some(1));
    assert_eq!(in_flight(&new, addr(2)), Some(0));
    // Without `previous`, nothing is known.
    let fresh = Balancer::new(LbPolicy::PeakEwma, endpoints, 0, None);
    assert_eq!(in_flight(&fresh, picked), Some(0));

    drop(pick);
    assert_eq!(in_flight(&new, picked), Some(0));
}

#[tokio::test(start_paused = true)]
async fn latency_estimate_carries_over_and_newcomers_start_at_the_peers_median() {
    let old = balancer(LbPolicy::PeakEwma, &[1]);
    let pick = old.pick(None).expect("an endpoint");
    tokio::time::advance(Duration::from_millis(200)).await;
    pick.observe_response();
    // A second call is not a second sample.
    tokio::time::advance(Duration::from_millis(800)).await;
    pick.observe_response();

    let now = Instant::now();
    let new = Balancer::new(LbPolicy::PeakEwma, specs(&[1, 1]), 0, Some(&old));
    let kept = new.endpoints()[0].rtt_estimate(now);
    // 200 ms, decayed for the 0.8 s since: × e^-0.08.
    let expected = 200e6 * (-0.08f64).exp();
    assert!((kept - expected).abs() < 1e3, "{kept} vs {expected}");
    assert!((new.endpoints()[1].rtt_estimate(now) - expected).abs() < 1e3);

    let fresh = balancer(LbPolicy::PeakEwma, &[1]);
    assert_eq!(fresh.endpoints()[0].rtt_estimate(now), 30e6);
}

#[test]
fn hash_key_is_xxhash64_with_seed_zero() {
    // Reference values of the xxHash specification's test vectors.
    assert_eq!(hash_key(b""), 0xEF46_DB37_51D8_E999);
    assert_eq!(hash_key(b"abc"), 0x44BC_2CF5_AD77_0999);
}
