//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), with Envoy's weighted population.
//!
//! Each endpoint walks its own permutation of the table's slots, derived from its address
//! only, and endpoints take turns claiming their next free slot. A pick is one table read;
//! removing an endpoint moves its keys and only a small share of the others'.

use std::sync::Arc;

use xxhash_rust::xxh64::xxh64;

use super::endpoint::Endpoint;

/// The default table size: prime, so every skip is coprime with it and every permutation
/// visits every slot.
const DEFAULT_TABLE_SIZE: u64 = 65_537;

/// Slots per endpoint below which the table grows: Maglev's balance degrades when there are
/// fewer than ~100 slots per endpoint.
const SLOTS_PER_ENDPOINT: u64 = 100;

/// A Maglev lookup table of indices into the balancer's pickable endpoints.
#[derive(Debug)]
pub(super) struct Maglev {
    table: Box<[u32]>,
}

/// One endpoint's progress through the table population.
struct Builder {
    index: u32,
    offset: u64,
    skip: u64,
    /// How many positions of the permutation were tried.
    next: u64,
    weight: u64,
    /// The endpoint claims a slot in a round only once `round × weight` reaches this, so it
    /// claims slots in proportion to `weight / max weight`.
    target: u64,
}

// === impl Maglev ===

impl Maglev {
    /// Builds the table; `endpoints` must not be empty.
    pub(super) fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        let size = table_size(endpoints.len());
        let mut builders: Vec<Builder> = endpoints
            .iter()
            .enumerate()
            .map(|(index, endpoint)| {
                let key = endpoint.addr().to_string();
                Builder {
                    index: index as u32,
                    offset: xxh64(key.as_bytes(), 0) % size,
                    skip: xxh64(key.as_bytes(), 1) % (size - 1) + 1,
                    next: 0,
                    weight: u64::from(endpoint.weight()),
                    target: 0,
                }
            })
            .collect();
        // Turn order breaks ties between endpoints wanting the same slot: ordering by address
        // makes the table the same in every proxy, whatever order config lists endpoints in.
        builders.sort_by_key(|b| endpoints[b.index as usize].addr());
        let max_weight = builders.iter().map(|b| b.weight).max().unwrap_or(1);

        let size = size as usize;
        let mut table = vec![u32::MAX; size];
        let mut filled = 0;
        let mut round = 0u64;
        while filled < size {
            for b in &mut builders {
                if filled == size {
                    break;
                }
                if round * b.weight < b.target {
                    continue;
                }
                b.target += max_weight;
                loop {
                    let slot = ((b.offset + b.next * b.skip) % size as u64) as usize;
                    b.next += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = b.index;
                        filled += 1;
                        break;
                    }
                }
            }
            round += 1;
        }
        Self {
            table: table.into_boxed_slice(),
        }
    }

    pub(super) fn get(&self, hash: u64) -> usize {
        self.table[(hash % self.table.len() as u64) as usize] as usize
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

/// 65537, or for clusters over 655 endpoints the first prime with 100 slots per endpoint.
/// Deterministic in the endpoint count, so every proxy builds the same table.
fn table_size(endpoints: usize) -> u64 {
    let wanted = SLOTS_PER_ENDPOINT * endpoints as u64;
    if wanted <= DEFAULT_TABLE_SIZE {
        DEFAULT_TABLE_SIZE
    } else {
        next_prime(wanted)
    }
}

pub(super) fn next_prime(from: u64) -> u64 {
    (from..)
        .find(|&n| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .unwrap_or(DEFAULT_TABLE_SIZE)
}
