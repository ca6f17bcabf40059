//! The discovery server's metrics, in a registry of its own that `/metrics` gathers.

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, core::Collector,
};

use super::ResourceType;

/// Push latency buckets, in seconds: 1 ms to 10 s.
const PUSH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Connected proxies, pushes and NACKs by type, push latency.
#[derive(Debug, Clone)]
pub(crate) struct XdsMetrics {
    registry: Registry,
    connected: IntGauge,
    pushes: IntCounterVec,
    nacks: IntCounterVec,
    push_duration: Histogram,
}

impl XdsMetrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let metrics = XdsMetrics {
            registry: Registry::new(),
            connected: IntGauge::new(
                "mesh_cp_connected_proxies",
                "Proxies with an open discovery stream.",
            )?,
            pushes: IntCounterVec::new(
                Opts::new(
                    "mesh_cp_pushes_total",
                    "Discovery responses sent, by resource type.",
                ),
                &["type"],
            )?,
            nacks: IntCounterVec::new(
                Opts::new(
                    "mesh_cp_nacks_total",
                    "Discovery responses proxies rejected, by resource type.",
                ),
                &["type"],
            )?,
            push_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "mesh_cp_push_duration_seconds",
                    "From a config snapshot's publication to a proxy's ACK of a response made from it.",
                )
                .buckets(PUSH_BUCKETS.to_vec()),
            )?,
        };
        let collectors: [Box<dyn Collector>; 4] = [
            Box::new(metrics.connected.clone()),
            Box::new(metrics.pushes.clone()),
            Box::new(metrics.nacks.clone()),
            Box::new(metrics.push_duration.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    /// The registry holding these metrics.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A stream opened (+1) or closed (-1).
    pub(crate) fn connected(&self) -> &IntGauge {
        &self.connected
    }

    /// A response of `ty` was sent.
    pub(crate) fn pushed(&self, ty: ResourceType) {
        self.pushes.with_label_values(&[ty.metric_label()]).inc();
    }

    /// A response of `ty` was rejected.
    pub(crate) fn nacked(&self, ty: ResourceType) {
        self.nacks.with_label_values(&[ty.metric_label()]).inc();
    }

    /// A response was ACKed `seconds` after its snapshot's publication.
    pub(crate) fn acked_after(&self, seconds: f64) {
        self.push_duration.observe(seconds);
    }
}
