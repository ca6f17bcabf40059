//! Outlier detection: an endpoint that keeps failing is ejected from picks for a while, as
//! Envoy's consecutive-error detection (Istio's `outlierDetection`) does. Each ejection lasts
//! longer than the last, up to a cap; a limit on the share of endpoints ejected at once keeps a
//! broken backend from emptying its cluster.
//!
//! The counters and the ejection live with the endpoint's load (per address, kept across
//! config changes); a cluster-wide hint says until when anything may be ejected, so picks in
//! a cluster with nothing ejected pay one atomic load.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use mesh_proto::config::v1 as pb;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::Endpoint;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Ejections grow to at most this long (or the base ejection time, when longer).
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// A cluster's outlier detection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierPolicy {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    split_local: bool,
    interval: Duration,
    base_ejection: Duration,
    max_ejection_percent: u32,
    min_health_percent: u32,
}

/// What one try says about the endpoint it went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A TCP connection was made (all a TCP cluster learns of success).
    Connected,
    /// An answer came, with this status.
    Answered(u16),
    /// No answer: the connection failed, broke, or timed out.
    LocalFailure,
}

/// Why an endpoint was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EjectReason {
    /// Too many 5xx answers (or failures) in a row.
    Consecutive5xx = 1,
    /// Too many 502/503/504 answers (or failures) in a row.
    ConsecutiveGatewayErrors = 2,
    /// Too many local failures in a row.
    ConsecutiveLocalOriginFailures = 3,
}

/// An endpoint's failure counters and ejection, shared by every balancer generation.
#[derive(Debug, Default)]
pub(super) struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Until when it is ejected, in nanoseconds since `EPOCH`; 0 when it never was.
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    reason: AtomicU8,
}

/// What a cluster's balancer generations share: until when any endpoint may be ejected, and
/// a lock that makes ejections one at a time (so the limit on ejections holds).
#[derive(Debug, Default)]
pub(super) struct ClusterOutliers {
    ejected_until: AtomicU64,
    ejecting: Mutex<()>,
}

/// An ejection in force, for the admin page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ejection {
    /// Why.
    pub reason: EjectReason,
    /// How much longer it lasts.
    pub remaining: Duration,
    /// How many times the endpoint has been ejected in a row.
    pub ejections: u32,
}

/// The reference point of ejection times.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `at` in nanoseconds since `EPOCH`, never 0.
fn nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

// === impl OutlierPolicy ===

impl OutlierPolicy {
    /// The policy a cluster's config asks for.
    pub fn from_config(config: &pb::OutlierDetection) -> Self {
        let duration = |d: Option<&pbjson_types::Duration>, default| {
            crate::route::duration(d).unwrap_or(default)
        };
        OutlierPolicy {
            consecutive_5xx: config.consecutive_5xx,
            consecutive_gateway: config.consecutive_gateway_errors,
            consecutive_local: config.consecutive_local_origin_failures,
            split_local: config.split_external_local_origin_errors,
            interval: duration(config.interval.as_ref(), DEFAULT_INTERVAL),
            base_ejection: duration(config.base_ejection_time.as_ref(), DEFAULT_BASE_EJECTION),
            max_ejection_percent: config
                .max_ejection_percent
                .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT)
                .min(100),
            min_health_percent: config.min_health_percent.min(100),
        }
    }

    /// How long ejection number `n` (1 for the first) lasts: the base time `n` times, capped,
    /// rounded up to the next analysis interval.
    fn ejection_time(&self, n: u32) -> Duration {
        let cap = MAX_EJECTION.max(self.base_ejection);
        let time = self.base_ejection.saturating_mul(n).min(cap);
        let interval = self.interval.as_nanos().max(1);
        let intervals = time.as_nanos().div_ceil(interval);
        Duration::from_nanos(u64::try_from(intervals * interval).unwrap_or(u64::MAX))
    }

    /// Whether ejections in a cluster whose endpoints are `total`, `ejected` of them now, are
    /// to be ignored because too few endpoints are left (`min_health_percent`).
    pub(super) fn too_few_left(&self, ejected: usize, total: usize) -> bool {
        let left = total - ejected.min(total);
        left == 0 || left * 100 < self.min_health_percent as usize * total
    }

    /// Whether one more of `total` endpoints may be ejected while `ejected` are: within
    /// `max_ejection_percent`, except that one may always be when none is (as Envoy allows).
    fn may_eject(&self, ejected: usize, total: usize) -> bool {
        if self.max_ejection_percent == 0 {
            return false;
        }
        ejected == 0 || (ejected + 1) * 100 <= self.max_ejection_percent as usize * total
    }
}

// === impl OutlierState ===

impl OutlierState {
    /// The ejection in force at `now`, if any.
    pub(super) fn ejection(&self, now: Instant) -> Option<Ejection> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = nanos(now);
        if until <= now {
            return None;
        }
        let reason = match self.reason.load(Ordering::Relaxed) {
            2 => EjectReason::ConsecutiveGatewayErrors,
            3 => EjectReason::ConsecutiveLocalOriginFailures,
            _ => EjectReason::Consecutive5xx,
        };
        Some(Ejection {
            reason,
            remaining: Duration::from_nanos(until - now),
            ejections: self.ejections.load(Ordering::Relaxed),
        })
    }

    /// Whether the endpoint is ejected at `now` (in `nanos`).
    fn is_ejected_at(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Counts one outcome; the reason to eject when a counter reached its limit.
    fn count(&self, policy: &OutlierPolicy, outcome: Outcome) -> Option<EjectReason> {
        let status = match outcome {
            Outcome::LocalFailure if policy.split_local => {
                let n = self.consecutive_local.fetch_add(1, Ordering::Relaxed) + 1;
                return (policy.consecutive_local > 0 && n >= policy.consecutive_local)
                    .then_some(EjectReason::ConsecutiveLocalOriginFailures);
            }
            // Unsplit, a failure counts as the 503 the client gets for it.
            Outcome::LocalFailure => 503,
            Outcome::Connected => {
                self.consecutive_local.store(0, Ordering::Relaxed);
                200
            }
            Outcome::Answered(status) => {
                self.consecutive_local.store(0, Ordering::Relaxed);
                status
            }
        };
        if status < 500 {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return None;
        }
        let errors = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let gateway = if matches!(status, 502..=504) {
            self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        if policy.consecutive_5xx > 0 && errors >= policy.consecutive_5xx {
            Some(EjectReason::Consecutive5xx)
        } else if policy.consecutive_gateway > 0 && gateway >= policy.consecutive_gateway {
            Some(EjectReason::ConsecutiveGatewayErrors)
        } else {
            None
        }
    }

    fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
    }
}

// === impl ClusterOutliers ===

impl ClusterOutliers {
    /// Whether any endpoint may be ejected at `now`: when not, picks need not look.
    pub(super) fn any_ejected(&self, now: Instant) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > nanos(now)
    }
}

/// Counts `outcome` against `endpoint` and ejects it when a limit is reached and the cluster's
/// limit on ejections allows; the reason when it was ejected.
pub(super) fn report(
    policy: &OutlierPolicy,
    cluster: &ClusterOutliers,
    endpoints: &[Arc<Endpoint>],
    endpoint: &Endpoint,
    outcome: Outcome,
    now: Instant,
) -> Option<EjectReason> {
    let state = endpoint.outliers();
    let now_nanos = nanos(now);
    if state.is_ejected_at(now_nanos) {
        // Answers to requests sent before the ejection say nothing new.
        return None;
    }
    let reason = state.count(policy, outcome)?;
    let _one_at_a_time = cluster.ejecting.lock();
    let ejected = endpoints
        .iter()
        .filter(|e| e.outliers().is_ejected_at(now_nanos))
        .count();
    state.reset_counters();
    if !policy.may_eject(ejected, endpoints.len()) {
        return None;
    }
    // An endpoint that stayed healthy as long as its last ejection lasted starts over.
    let previous = state.ejections.load(Ordering::Relaxed);
    let last_until = state.ejected_until.load(Ordering::Relaxed);
    let forgiven =
        last_until.saturating_add(nanos_of(policy.ejection_time(previous.max(1)))) < now_nanos;
    let n = if forgiven { 1 } else { previous + 1 };
    let until = now_nanos.saturating_add(nanos_of(policy.ejection_time(n)));
    state.ejections.store(n, Ordering::Relaxed);
    state.reason.store(reason as u8, Ordering::Relaxed);
    state.ejected_until.store(until, Ordering::Relaxed);
    cluster.ejected_until.fetch_max(until, Ordering::Relaxed);
    Some(reason)
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl EjectReason {
    /// The label value and admin text.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectReason::Consecutive5xx => "consecutive_5xx",
            EjectReason::ConsecutiveGatewayErrors => "consecutive_gateway_errors",
            EjectReason::ConsecutiveLocalOriginFailures => "consecutive_local_origin_failures",
        }
    }
}
