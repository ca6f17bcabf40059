//! Endpoint selection: picks an endpoint of a cluster for each request or connection,
//! according to the cluster's load-balancing policy.
//!
//! A [`Balancer`] is an immutable snapshot of one cluster's endpoints, rebuilt on every config
//! change and shared by every task; picks take `&self`, allocate nothing and take no lock but
//! the picked candidates' own (peak EWMA only). Load (requests in flight, latency estimate)
//! lives per address and is handed from one snapshot to the next, so a reload does not forget
//! which endpoints are busy or slow.
//!
//! Only healthy endpoints are picked. When none is healthy the balancer picks among all of
//! them ("panic mode", as Envoy does): health checks that fail everywhere more likely mean a
//! broken checker than a dead service, and a request to a possibly unhealthy endpoint beats a
//! certain failure.

mod endpoint;
mod maglev;
mod outlier;
mod p2c;
mod ring_hash;
mod weighted;

#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, hash_map::Entry},
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

pub use mesh_proto::config::v1::cluster::LbPolicy;
use tokio::time::Instant;

pub use self::{
    endpoint::Endpoint,
    outlier::{EjectReason, Ejection, Outcome, OutlierPolicy},
};
use self::{
    endpoint::Load,
    maglev::Maglev,
    outlier::ClusterOutliers,
    ring_hash::Ring,
    weighted::{RoundRobin, Weights},
};

/// How many more picks a retry makes to find an endpoint not tried yet (Envoy's default
/// host selection retry count).
const REPICKS: usize = 5;

/// What config says about one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSpec {
    /// Where the endpoint listens.
    pub addr: SocketAddr,
    /// Its share of traffic relative to the others; 0 means 1.
    pub weight: u32,
    /// Whether health checking or config considers it able to serve.
    pub healthy: bool,
    /// Whether it has a sidecar that accepts mesh mutual TLS.
    pub mesh_tls: bool,
    /// Its identity, as an index into its cluster's list of identities.
    pub identity: Option<u16>,
    /// Its workload, as an index into its cluster's list of workloads.
    pub workload: Option<u16>,
}

/// Picks endpoints of one cluster according to its policy.
pub struct Balancer {
    policy: LbPolicy,
    endpoints: Box<[Arc<Endpoint>]>,
    /// The endpoints picks choose from: the healthy ones, or all in panic mode.
    pickable: Box<[Arc<Endpoint>]>,
    /// Weights of `pickable`, for every weighted-random choice.
    weights: Weights,
    strategy: Strategy,
    /// Outlier detection, when the cluster has it.
    outlier_policy: Option<OutlierPolicy>,
    /// Shared with the cluster's other generations.
    outliers: Arc<ClusterOutliers>,
}

/// Per-policy lookup structures, indexing into `Balancer::pickable`.
#[derive(Debug)]
enum Strategy {
    RoundRobin(RoundRobin),
    Random,
    LeastRequest,
    PeakEwma,
    RingHash(Ring),
    Maglev(Maglev),
    /// No endpoint to pick.
    Empty,
}

/// A picked endpoint: counts as in flight until dropped.
pub struct Pick {
    endpoint: Arc<Endpoint>,
    picked_at: Instant,
    /// Only the first response of a request is a latency sample.
    observed: AtomicBool,
}

// === impl Balancer ===

impl Balancer {
    /// Builds a balancer; endpoint state (in-flight counts, EWMA) is carried over from
    /// `previous` for addresses present in both, so a config reload does not reset load
    /// information. `ring_size` is for RingHash: points per endpoint of average weight,
    /// 0 meaning 1024.
    pub fn new(
        policy: LbPolicy,
        endpoints: Vec<EndpointSpec>,
        ring_size: u32,
        previous: Option<&Balancer>,
    ) -> Balancer {
        // A newcomer is assumed as fast as its typical peer: a default far from the peers'
        // actual latency would flood it (if lower) or starve it for seconds (if higher).
        let now = Instant::now();
        let newcomer_rtt = previous
            .and_then(|p| p.median_rtt(now))
            .unwrap_or_else(endpoint::default_rtt);
        // Keyed by address, so duplicates in config also share one load.
        let mut loads: HashMap<SocketAddr, Arc<Load>> = previous
            .map(|p| {
                p.endpoints
                    .iter()
                    .map(|e| (e.addr(), e.load().clone()))
                    .collect()
            })
            .unwrap_or_default();
        let endpoints: Box<[Arc<Endpoint>]> = endpoints
            .into_iter()
            .map(|spec| {
                let load = match loads.entry(spec.addr) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => e.insert(Arc::new(Load::new(newcomer_rtt, now))).clone(),
                };
                Arc::new(Endpoint::new(spec, load))
            })
            .collect();

        let any_healthy = endpoints.iter().any(|e| e.is_healthy());
        let pickable: Box<[Arc<Endpoint>]> = endpoints
            .iter()
            .filter(|e| e.is_healthy() || !any_healthy)
            .cloned()
            .collect();
        let weights = Weights::new(pickable.iter().map(|e| e.weight()));
        let strategy = if pickable.is_empty() {
            Strategy::Empty
        } else {
            match policy {
                LbPolicy::RoundRobin => {
                    let weights: Vec<u32> = pickable.iter().map(|e| e.weight()).collect();
                    Strategy::RoundRobin(RoundRobin::new(&weights))
                }
                LbPolicy::Random => Strategy::Random,
                LbPolicy::LeastRequest => Strategy::LeastRequest,
                LbPolicy::PeakEwma => Strategy::PeakEwma,
                LbPolicy::RingHash => Strategy::RingHash(Ring::new(&pickable, ring_size)),
                LbPolicy::Maglev => Strategy::Maglev(Maglev::new(&pickable)),
            }
        };
        Balancer {
            policy,
            endpoints,
            pickable,
            weights,
            strategy,
            outlier_policy: None,
            outliers: previous.map(|p| p.outliers.clone()).unwrap_or_default(),
        }
    }

    /// The balancer with outlier detection: endpoints that keep failing are ejected.
    pub fn with_outlier_detection(mut self, policy: Option<OutlierPolicy>) -> Self {
        self.outlier_policy = policy;
        self
    }

    /// Counts one try's outcome against its endpoint; the reason when that ejected it.
    pub fn report(&self, endpoint: &Endpoint, outcome: Outcome) -> Option<EjectReason> {
        let policy = self.outlier_policy.as_ref()?;
        let now = Instant::now();
        outlier::report(
            policy,
            &self.outliers,
            &self.endpoints,
            endpoint,
            outcome,
            now,
        )
    }

    /// The ejection in force for `endpoint`, if any.
    pub fn ejection(&self, endpoint: &Endpoint) -> Option<Ejection> {
        endpoint.outliers().ejection(Instant::now())
    }

    /// The load-balancing policy.
    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// Every endpoint of the cluster, healthy or not, in config order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Whether the cluster has no endpoint at all.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Picks an endpoint. `hash` is the request's key for RingHash/Maglev (None there =
    /// random pick); other policies ignore it. `None` only when there is no endpoint.
    pub fn pick(&self, hash: Option<u64>) -> Option<Pick> {
        let now = Instant::now();
        let mut index = self.pick_index(hash, now)?;
        if self.outlier_policy.is_some() && self.outliers.any_ejected(now) {
            index = self.avoid_ejected(index, hash, now);
        }
        Some(Pick::new(self.pickable[index].clone(), now))
    }

    /// The index in `pickable` the strategy picks; `None` when there is no endpoint.
    fn pick_index(&self, hash: Option<u64>, now: Instant) -> Option<usize> {
        Some(match (&self.strategy, hash) {
            (Strategy::Empty, _) => return None,
            (Strategy::RoundRobin(rr), _) => rr.next(),
            (Strategy::Random, _) => self.weights.sample(),
            (Strategy::LeastRequest, _) => p2c::least_request(&self.pickable, &self.weights),
            (Strategy::PeakEwma, _) => p2c::peak_ewma(&self.pickable, &self.weights, now),
            (Strategy::RingHash(ring), Some(hash)) => ring.get(hash),
            (Strategy::Maglev(table), Some(hash)) => table.get(hash),
            // A request without a key has no affinity to keep.
            (Strategy::RingHash(_) | Strategy::Maglev(_), None) => self.weights.sample(),
        })
    }

    /// `index`, or when its endpoint is ejected another pick that is not (hashed picks move
    /// along the ring); `index` still when ejections are to be ignored (too few endpoints
    /// left) or every endpoint is ejected.
    fn avoid_ejected(&self, index: usize, hash: Option<u64>, now: Instant) -> usize {
        let ejected = |i: usize| self.pickable[i].outliers().ejection(now).is_some();
        if !ejected(index) {
            return index;
        }
        let count = (0..self.pickable.len()).filter(|&i| ejected(i)).count();
        let policy = self.outlier_policy.as_ref();
        if policy.is_none_or(|p| p.too_few_left(count, self.pickable.len())) {
            return index;
        }
        for attempt in 1..=REPICKS as u64 {
            let moved = hash.map(|h| h ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            if let Some(i) = self.pick_index(moved, now)
                && !ejected(i)
            {
                return i;
            }
        }
        (0..self.pickable.len())
            .map(|k| (index + k) % self.pickable.len())
            .find(|&i| !ejected(i))
            .unwrap_or(index)
    }

    /// [`Balancer::pick`] for a retry: picks again (a few times at most) while the pick is one
    /// of the endpoints the request already tried, so a retry goes elsewhere when it can.
    /// Hashed picks are kept: their affinity matters more.
    pub fn pick_avoiding(&self, hash: Option<u64>, tried: &[SocketAddr]) -> Option<Pick> {
        let mut pick = self.pick(hash)?;
        if hash.is_some() && matches!(self.strategy, Strategy::RingHash(_) | Strategy::Maglev(_)) {
            return Some(pick);
        }
        for _ in 0..REPICKS {
            if !tried.contains(&pick.addr()) {
                break;
            }
            pick = self.pick(hash)?;
        }
        Some(pick)
    }

    /// The median latency estimate of the pickable endpoints, in nanoseconds.
    fn median_rtt(&self, now: Instant) -> Option<f64> {
        let mut rtts: Vec<f64> = self.pickable.iter().map(|e| e.rtt_estimate(now)).collect();
        rtts.sort_unstable_by(f64::total_cmp);
        rtts.get(rtts.len() / 2).copied()
    }
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("policy", &self.policy)
            .field("endpoints", &self.endpoints)
            .field("panic", &self.pickable.iter().any(|e| !e.is_healthy()))
            .finish()
    }
}

// === impl Pick ===

impl Pick {
    fn new(endpoint: Arc<Endpoint>, picked_at: Instant) -> Self {
        endpoint.start_request();
        Self {
            endpoint,
            picked_at,
            observed: AtomicBool::new(false),
        }
    }

    /// The picked endpoint.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The picked endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// Records that the response (headers) arrived now: feeds the peak-EWMA latency estimate
    /// with the time since the pick. Only the first call counts.
    pub fn observe_response(&self) {
        if !self.observed.swap(true, Ordering::Relaxed) {
            let now = Instant::now();
            self.endpoint
                .observe_rtt(now.saturating_duration_since(self.picked_at), now);
        }
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.endpoint.end_request();
    }
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("addr", &self.addr())
            .field("picked_at", &self.picked_at)
            .finish()
    }
}

/// Stable 64-bit hash of a consistent-hash key (xxHash64, seed 0), identical in every proxy so
/// all proxies map a key to the same endpoint.
pub fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(key, 0)
}
