//! Maglev and ring hash.

use super::*;
use crate::balance::maglev::next_prime;

const HASHING: [LbPolicy; 2] = [LbPolicy::Maglev, LbPolicy::RingHash];

fn picked(b: &Balancer, hash: u64) -> SocketAddr {
    b.pick(Some(hash)).expect("an endpoint").addr()
}

#[test]
fn same_key_same_endpoint_in_every_proxy() {
    fastrand::seed(11);
    for policy in HASHING {
        let b = balancer(policy, &[1, 2, 1, 1]);
        // Another proxy, whose config lists the endpoints in another order.
        let mut reversed = specs(&[1, 2, 1, 1]);
        reversed.reverse();
        let other = Balancer::new(policy, reversed, 0, None);
        for _ in 0..10_000 {
            let hash = fastrand::u64(..);
            let addr = picked(&b, hash);
            assert_eq!(picked(&b, hash), addr, "{policy:?}");
            assert_eq!(picked(&other, hash), addr, "{policy:?}");
        }
    }
}

#[test]
fn maglev_spreads_keys_evenly() {
    fastrand::seed(12);
    let b = balancer(LbPolicy::Maglev, &[1, 1, 1]);
    assert_shares(&counts(&b, 30_000, random_hash), &[1, 1, 1], 3.0);
}

#[test]
fn ring_hash_spreads_keys_evenly() {
    fastrand::seed(13);
    let b = balancer(LbPolicy::RingHash, &[1, 1, 1]);
    assert_shares(&counts(&b, 30_000, random_hash), &[1, 1, 1], 3.0);
}

#[test]
fn hashing_respects_weights() {
    fastrand::seed(14);
    for policy in HASHING {
        let b = balancer(policy, &[1, 3]);
        assert_shares(&counts(&b, 30_000, random_hash), &[1, 3], 2.0);
    }
}

#[test]
fn hashing_without_a_key_picks_at_random_by_weight() {
    fastrand::seed(15);
    for policy in HASHING {
        let b = balancer(policy, &[1, 3]);
        assert_shares(&counts(&b, 30_000, || None), &[1, 3], 2.0);
    }
}

/// Of keys on endpoints 0..4 that were not on endpoint `removed` of 5, the percentage that
/// move when it is removed.
fn moved_percent(policy: LbPolicy, removed: usize) -> f64 {
    let before = balancer(policy, &[1; 5]);
    let mut remaining = specs(&[1; 5]);
    remaining.remove(removed);
    let after = Balancer::new(policy, remaining, 0, Some(&before));
    let (mut kept, mut moved) = (0, 0);
    for _ in 0..30_000 {
        let hash = fastrand::u64(..);
        let was = picked(&before, hash);
        if was == addr(removed) {
            continue;
        }
        if picked(&after, hash) == was {
            kept += 1;
        } else {
            moved += 1;
        }
    }
    100.0 * f64::from(moved) / f64::from(kept + moved)
}

#[test]
fn ring_hash_removal_moves_only_the_removed_endpoints_keys() {
    fastrand::seed(16);
    for removed in 0..5 {
        assert_eq!(moved_percent(LbPolicy::RingHash, removed), 0.0);
    }
}

#[test]
fn maglev_removal_moves_few_other_keys() {
    fastrand::seed(17);
    for removed in 0..5 {
        // Measured: 0.06% to 0.12%.
        let moved = moved_percent(LbPolicy::Maglev, removed);
        assert!(moved < 1.0, "{moved:.2}% of other keys moved");
    }
}

#[test]
fn ring_hash_gives_each_endpoint_ring_size_points() {
    let ring_len = |weights: &[u32], ring_size| match Balancer::new(
        LbPolicy::RingHash,
        specs(weights),
        ring_size,
        None,
    )
    .strategy
    {
        Strategy::RingHash(ring) => ring.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ring_len(&[1, 1, 1], 0), 3 * 1024);
    assert_eq!(ring_len(&[1, 1, 1], 100), 300);
    // Proportional to weight: 2 endpoints of average weight 2 get 2 × 100 points.
    assert_eq!(ring_len(&[1, 3], 100), 200);
    // Capped for big clusters: 2^18 points over 1000 endpoints, 262 each.
    assert_eq!(ring_len(&[1; 1000], 0), 262_000);
}

#[test]
fn maglev_table_is_prime_and_grows_with_the_cluster() {
    let table_len = |endpoints| match balancer(LbPolicy::Maglev, &vec![1; endpoints]).strategy {
        Strategy::Maglev(table) => table.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(table_len(5), 65_537);
    let big = table_len(1_000);
    assert!(
        big >= 100_000 && next_prime(big as u64) == big as u64,
        "{big}"
    );
    assert_eq!(next_prime(65_537), 65_537);
    assert_eq!(next_prime(65_538), 65_539);
}
