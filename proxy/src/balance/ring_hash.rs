//! Ketama-style consistent hash ring.
//!
//! Every endpoint puts points (virtual nodes) on a 64-bit ring at hashes of its address; a key
//! goes to the owner of the first point at or after its hash.
//!
//! An endpoint of average weight gets `ring_size` points, rather than the whole ring getting
//! `ring_size` as in Envoy: an endpoint's points then do not depend on how many others there
//! are, so removing one (or it turning unhealthy) moves its keys and no other key. (With equal
//! weights exactly; with unequal ones the average weight moves a little.) The cost is memory,
//! 12 bytes a point, so rings are capped and only very large clusters lose that property.

use std::{fmt::Write, sync::Arc};

use xxhash_rust::xxh64::xxh64;

use super::endpoint::Endpoint;

/// Points per endpoint of average weight when config leaves the ring size unset.
pub(super) const DEFAULT_RING_SIZE: u32 = 1024;

/// Most points on a ring (3 MiB), unless config asks for a larger minimum.
const MAX_POINTS: u64 = 1 << 18;

/// Most points config may ask for, as Envoy's maximum ring size.
const MAX_RING_SIZE: u64 = 1 << 23;

/// Points sorted by hash, as two arrays so the binary search touches only hashes.
#[derive(Debug)]
pub(super) struct Ring {
    hashes: Box<[u64]>,
    /// Indices into the balancer's pickable endpoints.
    owners: Box<[u32]>,
}

// === impl Ring ===

impl Ring {
    /// Builds the ring; `endpoints` must not be empty, `ring_size` 0 means the default.
    pub(super) fn new(endpoints: &[Arc<Endpoint>], ring_size: u32) -> Self {
        let ring_size = match u64::from(ring_size) {
            0 => u64::from(DEFAULT_RING_SIZE),
            n => n.min(MAX_RING_SIZE),
        };
        let count = endpoints.len() as u64;
        let points = (ring_size * count).min(MAX_POINTS.max(ring_size));
        let total_weight: u64 = endpoints.iter().map(|e| u64::from(e.weight())).sum();

        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(points as usize + endpoints.len());
        let mut key = String::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let share = points as f64 * f64::from(endpoint.weight()) / total_weight as f64;
            let own_points = (share.round() as u64).max(1);
            for point in 0..own_points {
                key.clear();
                // Writing to a String cannot fail.
                let _ = write!(key, "{}_{point}", endpoint.addr());
                ring.push((xxh64(key.as_bytes(), 0), index as u32));
            }
        }
        // On the (unlikely) equal hash, the address decides, so every proxy agrees.
        ring.sort_unstable_by_key(|&(hash, index)| (hash, endpoints[index as usize].addr()));
        Self {
            hashes: ring.iter().map(|&(hash, _)| hash).collect(),
            owners: ring.iter().map(|&(_, index)| index).collect(),
        }
    }

    pub(super) fn get(&self, hash: u64) -> usize {
        let at = self.hashes.partition_point(|&h| h < hash);
        // Past the last point, the ring wraps to the first.
        let at = if at == self.hashes.len() { 0 } else { at };
        self.owners[at] as usize
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }
}
