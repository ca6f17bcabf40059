//! A fast hash for the proxy's own lookup tables, consulted on every request: route configs and
//! clusters by name, connection pools by endpoint address. Their keys come from config, never
//! from clients, so they need speed (std's SipHash costs more than the rest of a lookup) rather
//! than resistance to flooding.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

/// A `HashMap` with [`FxHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// FxHash (as in rustc): one rotate, xor and multiply per word.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, hash::BuildHasher, net::SocketAddr};

    use super::*;

    #[test]
    fn keys_that_differ_hash_apart() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let names = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "upstream",
            "upstream-v2",
            "upstream-v3",
        ];
        let hashes: HashSet<u64> = names.iter().map(|n| build.hash_one(n)).collect();
        assert_eq!(hashes.len(), names.len());
        let addrs: HashSet<u64> = (0..1000u16)
            .map(|port| build.hash_one(SocketAddr::from(([10, 0, 0, 1], 8000 + port))))
            .collect();
        assert_eq!(addrs.len(), 1000);
    }

    #[test]
    fn a_fast_map_finds_what_it_holds() {
        let mut map = FastMap::default();
        for i in 0..100 {
            map.insert(format!("cluster-{i}"), i);
        }
        assert!((0..100).all(|i| map.get(&format!("cluster-{i}")) == Some(&i)));
        assert_eq!(map.get("cluster-100"), None);
    }
}
