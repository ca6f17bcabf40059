//! Live state of one endpoint: its config plus the load every pick shares.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{EndpointSpec, outlier::OutlierState};

/// The RTT assumed for a new endpoint when nothing is known about its peers either (a first
/// config): slow enough that it is not flooded before it has answered, fast enough that it is
/// tried soon.
const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// How fast the estimate forgets: a sample from `DECAY` ago weighs 1/e of a fresh one.
const DECAY: Duration = Duration::from_secs(10);

/// Live state of one endpoint, shared by every pick (in-flight count, latency estimate).
pub struct Endpoint {
    addr: SocketAddr,
    /// Never 0: config's 0 means 1, and every policy divides by it.
    weight: u32,
    healthy: bool,
    mesh_tls: bool,
    identity: Option<u16>,
    workload: Option<u16>,
    load: Arc<Load>,
}

/// What picks learn about an endpoint. Shared, through an `Arc`, by every generation of the
/// endpoint with the same address, so a config reload keeps it.
#[derive(Debug)]
pub(super) struct Load {
    in_flight: AtomicU32,
    rtt: Mutex<RttEstimate>,
    outliers: OutlierState,
}

/// A peak-sensitive EWMA of the response time, as in Finagle's and tower's peak-EWMA balancers.
#[derive(Debug)]
struct RttEstimate {
    rtt_nanos: f64,
    updated: Instant,
}

// === impl Endpoint ===

impl Endpoint {
    pub(super) fn new(spec: EndpointSpec, load: Arc<Load>) -> Self {
        Self {
            addr: spec.addr,
            weight: spec.weight.max(1),
            healthy: spec.healthy,
            mesh_tls: spec.mesh_tls,
            identity: spec.identity,
            workload: spec.workload,
            load,
        }
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint's weight, at least 1.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether the endpoint has a sidecar that accepts mesh mutual TLS.
    pub fn mesh_tls(&self) -> bool {
        self.mesh_tls
    }

    /// The endpoint's identity, as an index into its cluster's list of identities.
    pub fn identity(&self) -> Option<u16> {
        self.identity
    }

    /// The endpoint's workload, as an index into its cluster's list of workloads.
    pub fn workload(&self) -> Option<u16> {
        self.workload
    }

    /// Whether config says the endpoint is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// How many picks of this address are alive now, in this balancer or an earlier one.
    pub fn in_flight(&self) -> u32 {
        self.load.in_flight.load(Ordering::Relaxed)
    }

    pub(super) fn load(&self) -> &Arc<Load> {
        &self.load
    }

    pub(super) fn outliers(&self) -> &OutlierState {
        &self.load.outliers
    }

    pub(super) fn start_request(&self) {
        self.load.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn end_request(&self) {
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn observe_rtt(&self, rtt: Duration, now: Instant) {
        self.load.rtt.lock().observe(rtt, now);
    }

    /// The latency estimate as of `now`, in nanoseconds.
    pub(super) fn rtt_estimate(&self, now: Instant) -> f64 {
        self.load.rtt.lock().at(now)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("weight", &self.weight)
            .field("healthy", &self.healthy)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

// === impl Load ===

impl Load {
    /// A load with nothing in flight and a latency estimate of `rtt_nanos`.
    pub(super) fn new(rtt_nanos: f64, now: Instant) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            rtt: Mutex::new(RttEstimate {
                rtt_nanos,
                updated: now,
            }),
            outliers: OutlierState::default(),
        }
    }
}

/// The latency estimate of an endpoint nothing is known about, in nanoseconds.
pub(super) fn default_rtt() -> f64 {
    nanos(DEFAULT_RTT)
}

// === impl RttEstimate ===

impl RttEstimate {
    /// Folds in one response time. A slower sample replaces the estimate at once, so a
    /// degrading endpoint is avoided quickly; a faster one only pulls it down with weight
    /// growing with the time since the last update, so one lucky response does not make a
    /// slow endpoint look fast.
    fn observe(&mut self, rtt: Duration, now: Instant) {
        let sample = nanos(rtt);
        let kept = self.kept(now);
        self.rtt_nanos = sample.max(self.rtt_nanos * kept + sample * (1.0 - kept));
        self.updated = now;
    }

    /// The estimate, decayed toward zero for the time nothing was heard. Without this an
    /// endpoint that was once slow would lose every comparison, get no new samples and be
    /// starved forever; with it, it is tried again after a while and can prove it recovered.
    fn at(&self, now: Instant) -> f64 {
        self.rtt_nanos * self.kept(now)
    }

    /// The share of the old estimate kept after the time since the last update.
    fn kept(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated);
        (-elapsed.as_secs_f64() / DECAY.as_secs_f64()).exp()
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}
