//! Prometheus metrics, served on the metrics port (15090).
//!
//! Naming: every series starts with `mesh_`; `direction` is `outbound`, `inbound` or `explicit`
//! (the listener mode that accepted the traffic); `cluster` is the upstream cluster's name.
//! Request and TCP series also carry who talked, as Istio's metrics do: `source_principal`,
//! `destination_principal` (SPIFFE identities proven by mesh TLS, else `unknown`) and
//! `connection_security_policy` (`mutual_tls` or `none` inbound, `unknown` outbound, where the
//! server decides). Handles are created once per (direction, cluster, peers) and cached where
//! the traffic is (the cluster for outbound endpoints, the connection inbound), so the request
//! path only touches atomics.

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::RwLock;

use crate::istio_metrics::StandardMetrics;

mod labels;

use labels::PEER_LABELS;
pub use labels::{Direction, Peers, RetryOutcome, UpstreamFailure};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// How many destinations `mesh_outbound_blocked_total` names before counting the rest as `other`.
const MAX_BLOCKED_SERIES: usize = 256;

const RESPONSE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_failures: IntCounterVec,
    retries: IntCounterVec,
    tcp_opened: IntCounterVec,
    tcp_closed: IntCounterVec,
    tcp_bytes: IntCounterVec,
    downstream_active: IntGaugeVec,
    config_reloads: IntCounterVec,
    cert_renewals: IntCounterVec,
    cert_expiry: IntGauge,
    inbound_refused: IntCounterVec,
    authorization_denied: IntCounterVec,
    outlier_ejections: IntCounterVec,
    overflows: IntCounterVec,
    mirrors_skipped: IntCounterVec,
    dns_lookups: IntCounterVec,
    outbound_blocked: IntCounterVec,
    /// The destinations `outbound_blocked` has a series for (at most `MAX_BLOCKED_SERIES`).
    blocked_destinations: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Istio's standard request metrics.
    pub standard: StandardMetrics,
    /// Access log lines dropped because the writer was behind.
    pub access_log_dropped: IntCounter,
    trace_spans: IntCounterVec,
    clusters: [RwLock<HashMap<ClusterKey, Arc<ClusterMetrics>>>; 3],
}

/// A cluster's name and its peers' labels.
type ClusterKey = (String, String, String, &'static str);

/// The handles of one (direction, cluster, peers), resolved once.
pub struct ClusterMetrics {
    requests: [IntCounter; 6],
    duration: Histogram,
    failures: [IntCounter; 6],
    retries: [IntCounter; 4],
    /// TCP connections opened to this cluster.
    pub tcp_opened: IntCounter,
    /// TCP connections to this cluster that have closed.
    pub tcp_closed: IntCounter,
    /// Bytes the client sent towards the cluster over opaque TCP (counted as they flow).
    pub tcp_bytes_to_upstream: IntCounter,
    /// Bytes the cluster sent back to the client over opaque TCP.
    pub tcp_bytes_to_downstream: IntCounter,
}

// === impl Metrics ===

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let with_peers = |extra: Option<&'static str>| {
            let mut names = vec!["direction", "cluster"];
            names.extend(PEER_LABELS);
            names.extend(extra);
            names
        };
        let labels = &with_peers(None);
        let requests = IntCounterVec::new(
            Opts::new(
                "mesh_requests_total",
                "HTTP requests completed, by response class",
            ),
            &with_peers(Some("response_class")),
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "mesh_request_duration_seconds",
                "Time from request received to response headers sent",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            labels,
        )
        .expect("valid metric");
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "mesh_upstream_failures_total",
                "Requests or connections that got no upstream answer, by reason",
            ),
            &with_peers(Some("reason")),
        )
        .expect("valid metric");
        let retries = IntCounterVec::new(
            Opts::new(
                "mesh_retries_total",
                "Retries failed tries asked for, by outcome (sent, or why not)",
            ),
            &with_peers(Some("outcome")),
        )
        .expect("valid metric");
        let tcp_opened = IntCounterVec::new(
            Opts::new(
                "mesh_tcp_connections_opened_total",
                "Opaque TCP connections opened",
            ),
            labels,
        )
        .expect("valid metric");
        let tcp_closed = IntCounterVec::new(
            Opts::new(
                "mesh_tcp_connections_closed_total",
                "Opaque TCP connections closed",
            ),
            labels,
        )
        .expect("valid metric");
        let tcp_bytes = IntCounterVec::new(
            Opts::new(
                "mesh_tcp_bytes_total",
                "Opaque TCP bytes forwarded, by flow",
            ),
            &with_peers(Some("flow")),
        )
        .expect("valid metric");
        let downstream_active = IntGaugeVec::new(
            Opts::new(
                "mesh_downstream_connections_active",
                "Client connections currently open",
            ),
            &["direction"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "mesh_config_reloads_total",
                "Configuration loads, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let cert_renewals = IntCounterVec::new(
            Opts::new(
                "mesh_workload_cert_renewals_total",
                "Workload certificate requests to the CA, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let cert_expiry = IntGauge::new(
            "mesh_workload_cert_expiry_timestamp_seconds",
            "When the workload certificate in force expires (Unix time)",
        )
        .expect("valid metric");
        let inbound_refused = IntCounterVec::new(
            Opts::new(
                "mesh_inbound_refused_total",
                "Inbound connections closed before serving, by reason (plaintext under STRICT, failed mesh TLS handshake, no identity)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let authorization_denied = IntCounterVec::new(
            Opts::new(
                "mesh_authorization_denied_total",
                "Inbound requests (http) and connections (tcp) refused by authorization policy",
            ),
            &["protocol"],
        )
        .expect("valid metric");
        let outlier_ejections = IntCounterVec::new(
            Opts::new(
                "mesh_outlier_ejections_total",
                "Endpoints ejected by outlier detection, by reason",
            ),
            &["cluster", "reason"],
        )
        .expect("valid metric");
        let overflows = IntCounterVec::new(
            Opts::new(
                "mesh_overflow_total",
                "Requests and connections a cluster's pool limits refused, by limit",
            ),
            &["cluster", "limit"],
        )
        .expect("valid metric");
        let mirrors_skipped = IntCounterVec::new(
            Opts::new(
                "mesh_mirror_skipped_total",
                "Mirror copies not sent, by reason (busy: too many in flight; body: not kept)",
            ),
            &["cluster", "reason"],
        )
        .expect("valid metric");
        let dns_lookups = IntCounterVec::new(
            Opts::new(
                "mesh_dns_lookups_total",
                "DNS lookups of DNS clusters' names, by result (found, no_records, failed)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let outbound_blocked = IntCounterVec::new(
            Opts::new(
                "mesh_outbound_blocked_total",
                "Outbound requests (http) and connections (tcp) refused because their destination is not in the registry (REGISTRY_ONLY), by destination",
            ),
            &["protocol", "destination"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(mirrors_skipped.clone()),
            Box::new(dns_lookups.clone()),
            Box::new(outbound_blocked.clone()),
            Box::new(overflows.clone()),
            Box::new(outlier_ejections.clone()),
            Box::new(authorization_denied.clone()),
            Box::new(inbound_refused.clone()),
            Box::new(cert_renewals.clone()),
            Box::new(cert_expiry.clone()),
            Box::new(duration.clone()),
            Box::new(upstream_failures.clone()),
            Box::new(retries.clone()),
            Box::new(tcp_opened.clone()),
            Box::new(tcp_closed.clone()),
            Box::new(tcp_bytes.clone()),
            Box::new(downstream_active.clone()),
            Box::new(config_reloads.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let access_log_dropped = IntCounter::new(
            "mesh_access_log_dropped_total",
            "Access log lines dropped because the writer was behind",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("metric names are unique");
        let trace_spans = IntCounterVec::new(
            Opts::new(
                "mesh_trace_spans_total",
                "Trace spans, by outcome (recorded: ended and queued for export; exported; dropped: the queue was full; failed: the export failed)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(trace_spans.clone()))
            .expect("metric names are unique");
        Arc::new(Self {
            trace_spans,
            access_log_dropped,
            standard: StandardMetrics::new(&registry),
            registry,
            requests,
            duration,
            upstream_failures,
            retries,
            tcp_opened,
            tcp_closed,
            tcp_bytes,
            downstream_active,
            config_reloads,
            cert_renewals,
            cert_expiry,
            inbound_refused,
            authorization_denied,
            outlier_ejections,
            overflows,
            mirrors_skipped,
            dns_lookups,
            outbound_blocked,
            blocked_destinations: Default::default(),
            clusters: Default::default(),
        })
    }

    /// The handles for one cluster seen through one kind of listener, between `peers`.
    pub fn cluster(
        &self,
        direction: Direction,
        cluster: &str,
        peers: Peers<'_>,
    ) -> Arc<ClusterMetrics> {
        let cache = &self.clusters[direction.index()];
        let key = (
            cluster.to_owned(),
            peers.source_principal.to_owned(),
            peers.destination_principal.to_owned(),
            peers.connection_security_policy,
        );
        if let Some(found) = cache.read().get(&key) {
            return found.clone();
        }
        let base = [
            direction.as_str(),
            cluster,
            peers.source_principal,
            peers.destination_principal,
            peers.connection_security_policy,
        ];
        let with = |extra: &'static str| {
            let mut values = base.to_vec();
            values.push(extra);
            values
        };
        let handles = Arc::new(ClusterMetrics {
            requests: RESPONSE_CLASSES.map(|class| self.requests.with_label_values(&with(class))),
            duration: self.duration.with_label_values(&base),
            failures: [
                UpstreamFailure::NoEndpoint,
                UpstreamFailure::ConnectError,
                UpstreamFailure::ConnectTimeout,
                UpstreamFailure::Reset,
                UpstreamFailure::Timeout,
                UpstreamFailure::Overflow,
            ]
            .map(|f| self.upstream_failures.with_label_values(&with(f.as_str()))),
            retries: [
                RetryOutcome::Sent,
                RetryOutcome::BudgetExhausted,
                RetryOutcome::BodyTooLarge,
                RetryOutcome::Overflow,
            ]
            .map(|o| self.retries.with_label_values(&with(o.as_str()))),
            tcp_opened: self.tcp_opened.with_label_values(&base),
            tcp_closed: self.tcp_closed.with_label_values(&base),
            tcp_bytes_to_upstream: self.tcp_bytes.with_label_values(&with("to_upstream")),
            tcp_bytes_to_downstream: self.tcp_bytes.with_label_values(&with("to_downstream")),
        });
        cache.write().entry(key).or_insert(handles).clone()
    }

    /// Counts a request or connection to `cluster` refused by one of its pool limits.
    pub fn overflowed(&self, cluster: &str, limit: crate::limits::Overflow) {
        self.overflows
            .with_label_values(&[cluster, limit.as_str()])
            .inc();
    }

    /// The counters of what became of trace spans.
    pub fn span_counters(&self) -> crate::trace::SpanCounters {
        let outcome = |o: &str| self.trace_spans.with_label_values(&[o]);
        crate::trace::SpanCounters {
            recorded: outcome("recorded"),
            exported: outcome("exported"),
            dropped: outcome("dropped"),
            failed: outcome("failed"),
        }
    }

    /// Counts a mirror copy to `cluster` that was not sent.
    pub fn mirror_skipped(&self, cluster: &str, reason: &'static str) {
        self.mirrors_skipped
            .with_label_values(&[cluster, reason])
            .inc();
    }

    /// Counts a lookup of a DNS cluster's name.
    pub fn dns_lookup(&self, result: &'static str) {
        self.dns_lookups.with_label_values(&[result]).inc();
    }

    /// Counts an outbound request (`http`) or connection (`tcp`) to `destination` refused
    /// because it is not in the registry; past `MAX_BLOCKED_SERIES` destinations, new ones
    /// count as `other`.
    pub fn outbound_blocked(&self, protocol: &'static str, destination: &str) {
        let label = {
            let mut seen = self.blocked_destinations.lock();
            if seen.contains(destination) || seen.len() < MAX_BLOCKED_SERIES {
                seen.insert(destination.to_owned());
                destination
            } else {
                "other"
            }
        };
        self.outbound_blocked
            .with_label_values(&[protocol, label])
            .inc();
    }

    /// Counts an endpoint of `cluster` ejected by outlier detection.
    pub fn outlier_ejected(&self, cluster: &str, reason: crate::balance::EjectReason) {
        self.outlier_ejections
            .with_label_values(&[cluster, reason.as_str()])
            .inc();
    }

    /// The gauge of open client connections for one direction.
    pub fn downstream_active(&self, direction: Direction) -> IntGauge {
        self.downstream_active
            .with_label_values(&[direction.as_str()])
    }

    /// Counts an inbound request (`http`) or connection (`tcp`) authorization refused.
    pub fn authorization_denied(&self, protocol: &'static str) {
        self.authorization_denied
            .with_label_values(&[protocol])
            .inc();
    }

    /// Counts an inbound connection closed before it was served.
    pub fn inbound_refused(&self, reason: &'static str) {
        self.inbound_refused.with_label_values(&[reason]).inc();
    }

    /// Counts a certificate request to the CA; a success also sets the expiry gauge.
    pub fn certificate_renewed(&self, ok: bool, not_after: std::time::SystemTime) {
        let result = if ok { "ok" } else { "failed" };
        self.cert_renewals.with_label_values(&[result]).inc();
        if ok && let Ok(since) = not_after.duration_since(std::time::UNIX_EPOCH) {
            self.cert_expiry
                .set(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
        }
    }

    /// Counts a configuration load.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "rendering metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Metric handles borrowed from a cluster, or held for one connection.
pub enum Handles<'a> {
    /// The cluster's own.
    Cluster(&'a ClusterMetrics),
    /// Resolved for a connection's peers.
    Connection(Arc<ClusterMetrics>),
}

impl std::ops::Deref for Handles<'_> {
    type Target = ClusterMetrics;

    fn deref(&self) -> &ClusterMetrics {
        match self {
            Handles::Cluster(handles) => handles,
            Handles::Connection(handles) => handles,
        }
    }
}

// === impl ClusterMetrics ===

impl ClusterMetrics {
    /// Records one completed request: its status and the time to response headers.
    pub fn request(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.requests[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records a failure to get an upstream answer.
    pub fn failure(&self, reason: UpstreamFailure) {
        self.failures[reason as usize].inc();
    }

    /// Records what became of a retry a failed try asked for.
    pub fn retry(&self, outcome: RetryOutcome) {
        self.retries[outcome as usize].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_class_and_cluster() {
        let metrics = Metrics::new();
        let web = metrics.cluster(Direction::Outbound, "web", Peers::UNKNOWN);
        web.request(200, Duration::from_millis(3));
        web.request(503, Duration::from_millis(1));
        metrics
            .cluster(Direction::Outbound, "web", Peers::UNKNOWN)
            .request(204, Duration::ZERO);
        let text = metrics.render();
        let unknown = r#"connection_security_policy="unknown",destination_principal="unknown""#;
        assert!(
            text.contains(&format!(
                r#"mesh_requests_total{{cluster="web",{unknown},direction="outbound",response_class="2xx",source_principal="unknown"}} 2"#
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"response_class="5xx",source_principal="unknown"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"mesh_request_duration_seconds_count{{cluster="web",{unknown},direction="outbound",source_principal="unknown"}} 3"#
            )),
            "{text}"
        );
    }

    #[test]
    fn peers_get_series_of_their_own() {
        let metrics = Metrics::new();
        let sleep = "spiffe://cluster.local/ns/shop/sa/sleep";
        let web = "spiffe://cluster.local/ns/shop/sa/web";
        let mtls = Peers::inbound(Some(sleep), Some(web));
        metrics
            .cluster(Direction::Inbound, "inbound|8080||", mtls)
            .request(200, Duration::ZERO);
        metrics
            .cluster(
                Direction::Inbound,
                "inbound|8080||",
                Peers::inbound(None, Some(web)),
            )
            .request(200, Duration::ZERO);
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                r#"connection_security_policy="mutual_tls",destination_principal="{web}",direction="inbound",response_class="2xx",source_principal="{sleep}"}} 1"#
            )),
            "{text}"
        );
        assert!(
            text.contains(
                r#"connection_security_policy="none",destination_principal="unknown",direction="inbound",response_class="2xx",source_principal="unknown"} 1"#
            ),
            "{text}"
        );
        let outbound = Peers::outbound(sleep, web);
        assert_eq!(outbound.connection_security_policy, "unknown");
        assert_eq!(outbound.destination_principal, web);
    }
}
