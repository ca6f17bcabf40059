//! Istio's standard metrics, with Istio's label names, so dashboards and Kiali queries written
//! for Istio read them unchanged: per request `istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`; per
//! opaque TCP connection `istio_tcp_connections_opened_total`,
//! `istio_tcp_connections_closed_total`, `istio_tcp_received_bytes_total` (client to server)
//! and `istio_tcp_sent_bytes_total` (server to client).
//!
//! The labels that say who talked (a [`LabelSet`]) are resolved once per peer and cached where
//! the traffic is: per cluster and endpoint workload outbound, per connection inbound. Inside a
//! label set, one [`Series`] per response (code, gRPC status, flag) is made on first use. A
//! request then costs atomic increments and no lock or allocation. Label sets and series are
//! capped; what would go past the cap is counted in `mesh_metrics_overflow_total` instead.
//! Request series are plain atomics turned into Prometheus families when scraped ([`series`]).

mod series;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::time::Instant;

use self::series::{RequestFamilies, Series};
use crate::{
    access_log::{LogLine, Outcome},
    trace::Pending,
    workload::{UNKNOWN, Workload},
};

/// The cluster name in the `source_cluster` and `destination_cluster` labels (Istio's default).
const MESH_CLUSTER: &str = "Kubernetes";
/// Most label sets kept (each a pair of peers, a service and a protocol).
const MAX_LABEL_SETS: usize = 4096;
/// Most series kept over all label sets.
const MAX_SERIES: usize = 8192;
/// Most entries in one lock-free cache before lookups go to the shared map instead.
const MAX_CACHED: usize = 32;

/// The position of `connection_security_policy` in [`LABELS`].
const SECURITY_POLICY: usize = 21;
/// The label names, in the order values are given.
const LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
    "response_flags",
];

/// The `request_protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP requests (any version).
    Http,
    /// gRPC calls.
    Grpc,
    /// Opaque TCP connections.
    Tcp,
}

impl Protocol {
    /// The protocol of an HTTP request, gRPC or not.
    pub fn request(grpc: bool) -> Self {
        if grpc { Protocol::Grpc } else { Protocol::Http }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// The label names of the TCP metrics: those of requests but the response's code and gRPC
/// status.
const TCP_LABELS: [&str; 23] = {
    let mut names = [""; 23];
    let mut i = 0;
    while i < 22 {
        names[i] = LABELS[i];
        i += 1;
    }
    names[22] = "response_flags";
    names
};

/// Which sidecar records: the client's (`source`) or the server's (`destination`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client's sidecar.
    Source,
    /// The server's sidecar.
    Destination,
}

/// Why the proxy answered itself, as Envoy's response flags name it; `-` when it did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// The response came from upstream.
    None,
    /// UH: no healthy endpoint.
    NoHealthyUpstream,
    /// UF: connecting to the endpoint failed or timed out.
    UpstreamConnectionFailure,
    /// UC: the upstream connection ended before the response.
    UpstreamConnectionTermination,
    /// UT: the route's timeout (or the try's) passed.
    UpstreamRequestTimeout,
    /// UO: a connection pool limit refused the request (circuit breaking).
    UpstreamOverflow,
    /// NR: no route for the request.
    NoRouteFound,
    /// NC: the route's cluster is not in the config.
    NoClusterFound,
    /// FI: a fault the route injected.
    FaultInjected,
    /// RBAC: an authorization policy denied it.
    Unauthorized,
    /// URX: the answer is an upstream failure after the route's last retry.
    UpstreamRetryLimitExceeded,
    /// DC: the client went away before the response ended.
    DownstreamConnectionTermination,
}

impl ResponseFlag {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::None => "-",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::Unauthorized => "RBAC",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::DownstreamConnectionTermination => "DC",
        }
    }

    /// The flag for a response the proxy made, from the reason in its `x-mesh-error` header.
    pub fn from_error(reason: &[u8]) -> ResponseFlag {
        match reason {
            b"no_endpoint" => ResponseFlag::NoHealthyUpstream,
            b"connect_error" | b"connect_timeout" => ResponseFlag::UpstreamConnectionFailure,
            b"reset" => ResponseFlag::UpstreamConnectionTermination,
            b"timeout" => ResponseFlag::UpstreamRequestTimeout,
            b"overflow" => ResponseFlag::UpstreamOverflow,
            // REGISTRY_ONLY refusals: Envoy logs its BlackHoleCluster the same way.
            b"no_route" | b"registry_only" => ResponseFlag::NoRouteFound,
            b"no_cluster" | b"no_route_config" => ResponseFlag::NoClusterFound,
            b"fault_abort" => ResponseFlag::FaultInjected,
            b"rbac_denied" => ResponseFlag::Unauthorized,
            _ => ResponseFlag::None,
        }
    }
}

/// Who talked, over what: every label of a request's series but the response's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    /// Which sidecar records.
    pub reporter: Reporter,
    /// The client's workload.
    pub source: Arc<Workload>,
    /// The client's SPIFFE identity, or `unknown`.
    pub source_principal: Arc<str>,
    /// The server's workload.
    pub destination: Arc<Workload>,
    /// The server's SPIFFE identity, or `unknown`.
    pub destination_principal: Arc<str>,
    /// The Service's host name, e.g. `web.shop.svc.cluster.local`.
    pub destination_service: Arc<str>,
    /// The protocol.
    pub request_protocol: Protocol,
    /// `mutual_tls` or `none` (the server's sidecar knows), `unknown` (the client's).
    pub connection_security_policy: &'static str,
}

impl RequestLabels {
    fn values(&self) -> Vec<String> {
        let (source, destination) = (&*self.source, &*self.destination);
        let (service_name, service_namespace) = service_parts(&self.destination_service);
        vec![
            match self.reporter {
                Reporter::Source => "source",
                Reporter::Destination => "destination",
            }
            .to_owned(),
            source.name.clone(),
            source.canonical_service.clone(),
            source.canonical_revision.clone(),
            source.namespace.clone(),
            self.source_principal.to_string(),
            source.app.clone(),
            source.version.clone(),
            MESH_CLUSTER.to_owned(),
            destination.name.clone(),
            destination.namespace.clone(),
            self.destination_principal.to_string(),
            destination.app.clone(),
            destination.version.clone(),
            self.destination_service.to_string(),
            destination.canonical_service.clone(),
            destination.canonical_revision.clone(),
            service_name.to_owned(),
            service_namespace.to_owned(),
            MESH_CLUSTER.to_owned(),
            self.request_protocol.as_str().to_owned(),
            self.connection_security_policy.to_owned(),
        ]
    }
}

/// A Service host's name and namespace: `web` and `shop` for `web.shop.svc.cluster.local`; the
/// host itself and `unknown` for anything else.
fn service_parts(host: &str) -> (&str, &str) {
    let mut parts = host.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(namespace), Some(rest)) if rest.starts_with("svc") => (name, namespace),
        _ => (host, UNKNOWN),
    }
}

/// The request metrics' families, and the label sets made so far.
pub struct StandardMetrics {
    families: Arc<Families>,
    label_sets: Arc<RwLock<HashMap<RequestLabels, Arc<LabelSet>>>>,
}

struct Families {
    tcp_opened: IntCounterVec,
    tcp_closed: IntCounterVec,
    tcp_received: IntCounterVec,
    tcp_sent: IntCounterVec,
    series: AtomicUsize,
    overflow: IntCounter,
}

/// One pair of peers' labels, and their series by response.
pub struct LabelSet {
    values: Vec<String>,
    families: Arc<Families>,
    series: SmallCache<SeriesKey, Series>,
    /// Every series made, in order; also serializes making them, so two requests do not both
    /// make the same one.
    every: Mutex<Vec<(SeriesKey, Arc<Series>)>>,
    /// The TCP series, made on first use; `None` past the cap.
    tcp: OnceLock<Option<Arc<TcpSeries>>>,
}

/// The counters of one pair of peers' opaque TCP connections.
pub struct TcpSeries {
    /// Connections opened.
    pub opened: IntCounter,
    /// Connections closed.
    pub closed: IntCounter,
    /// Bytes from the client to the server.
    pub received: IntCounter,
    /// Bytes from the server to the client.
    pub sent: IntCounter,
}

/// What tells one response's series from another's within a label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeriesKey {
    code: u16,
    grpc: Option<u8>,
    flag: ResponseFlag,
}

/// A few values by a small key, read without a lock: a copy-on-write list.
pub struct SmallCache<K, V>(ArcSwap<Vec<(K, Arc<V>)>>);

/// One request, recorded (in the metrics, and the access log when it is on) when its
/// response has been sent or abandoned.
pub struct Record {
    set: Option<Arc<LabelSet>>,
    /// The request's access log line, when the log is on.
    pub log: Option<Box<LogLine>>,
    /// The request's span, when its trace is recorded.
    pub span: Option<Box<Pending>>,
    /// The endpoint that answered (for the log and the span).
    pub upstream_host: Option<SocketAddr>,
    /// The cluster the request went to (for the log and the span).
    pub upstream_cluster: Option<String>,
    start: Instant,
    /// The response status.
    pub status: u16,
    /// The gRPC status, when the response carried one.
    pub grpc: Option<u8>,
    /// Why the proxy answered itself, if it did.
    pub flag: ResponseFlag,
    request_bytes: u64,
    /// Response body bytes so far.
    pub response_bytes: u64,
}

// === impl StandardMetrics ===

impl StandardMetrics {
    /// The families, registered in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let tcp_labels = &TCP_LABELS;
        let counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), tcp_labels).expect("valid metric")
        };
        let families = Families {
            tcp_opened: counter(
                "istio_tcp_connections_opened_total",
                "Opaque TCP connections opened, by who talked",
            ),
            tcp_closed: counter(
                "istio_tcp_connections_closed_total",
                "Opaque TCP connections closed, by who talked",
            ),
            tcp_received: counter(
                "istio_tcp_received_bytes_total",
                "Opaque TCP bytes from the client to the server",
            ),
            tcp_sent: counter(
                "istio_tcp_sent_bytes_total",
                "Opaque TCP bytes from the server to the client",
            ),
            series: AtomicUsize::new(0),
            overflow: IntCounter::new(
                "mesh_metrics_overflow_total",
                "Requests not recorded in the istio_* metrics because their label sets or series \
                 passed the cap",
            )
            .expect("valid metric"),
        };
        let label_sets = Arc::default();
        for collector in [
            Box::new(RequestFamilies::new(Arc::clone(&label_sets)))
                as Box<dyn prometheus::core::Collector>,
            Box::new(families.overflow.clone()),
            Box::new(families.tcp_opened.clone()),
            Box::new(families.tcp_closed.clone()),
            Box::new(families.tcp_received.clone()),
            Box::new(families.tcp_sent.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        StandardMetrics {
            families: Arc::new(families),
            label_sets,
        }
    }

    /// The label set of `labels`, made on first use; `None` past the cap (counted).
    pub fn label_set(&self, labels: &RequestLabels) -> Option<Arc<LabelSet>> {
        if let Some(found) = self.label_sets.read().get(labels) {
            return Some(found.clone());
        }
        let mut sets = self.label_sets.write();
        if let Some(found) = sets.get(labels) {
            return Some(found.clone());
        }
        if sets.len() >= MAX_LABEL_SETS {
            self.families.overflow.inc();
            return None;
        }
        let set = Arc::new(LabelSet {
            values: labels.values(),
            families: self.families.clone(),
            series: SmallCache::default(),
            every: Mutex::default(),
            tcp: OnceLock::new(),
        });
        sets.insert(labels.clone(), set.clone());
        Some(set)
    }
}

// === impl LabelSet ===

impl LabelSet {
    /// Who talked, as the access log names them: source workload and principal, destination
    /// workload and principal, destination service.
    pub fn peers(&self) -> [&str; 5] {
        [1, 5, 9, 11, 14].map(|i| self.values[i].as_str())
    }

    /// Whether the peers talk in mesh mutual TLS.
    pub fn mutual_tls(&self) -> bool {
        self.values[SECURITY_POLICY] == "mutual_tls"
    }

    /// The counters of this label set's TCP connections, made on first use; `None` past the
    /// cap (counted).
    pub fn tcp(&self) -> Option<Arc<TcpSeries>> {
        let families = &*self.families;
        let made = self.tcp.get_or_init(|| {
            if families.series.fetch_add(1, Ordering::Relaxed) >= MAX_SERIES {
                families.series.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
            values.push(ResponseFlag::None.as_str());
            Some(Arc::new(TcpSeries {
                opened: families.tcp_opened.with_label_values(&values),
                closed: families.tcp_closed.with_label_values(&values),
                received: families.tcp_received.with_label_values(&values),
                sent: families.tcp_sent.with_label_values(&values),
            }))
        });
        if made.is_none() {
            families.overflow.inc();
        }
        made.clone()
    }

    fn series(&self, key: SeriesKey) -> Option<Arc<Series>> {
        if let Some(found) = self.series.get(&key) {
            return Some(found);
        }
        let mut every = self.every.lock();
        if let Some((_, found)) = every.iter().find(|(k, _)| *k == key) {
            return Some(found.clone());
        }
        let families = &*self.families;
        if families.series.fetch_add(1, Ordering::Relaxed) >= MAX_SERIES {
            families.series.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let series = Arc::new(Series::new());
        every.push((key, series.clone()));
        self.series.insert(key, series.clone());
        Some(series)
    }

    /// Every series of this label set (for a scrape).
    fn every_series(&self) -> Vec<(SeriesKey, Arc<Series>)> {
        self.every.lock().clone()
    }
}

// === impl Record ===

impl Record {
    /// Starts recording a request of `request_bytes` that arrived at `start`, in `set`'s
    /// series (`None`: past the cap).
    pub fn new(set: Option<Arc<LabelSet>>, start: Instant, request_bytes: u64) -> Self {
        Record {
            set,
            log: None,
            span: None,
            upstream_host: None,
            upstream_cluster: None,
            start,
            status: 0,
            grpc: None,
            flag: ResponseFlag::None,
            request_bytes,
            response_bytes: 0,
        }
    }

    /// Records the request in its series and writes its access log line.
    pub fn finish(mut self) {
        let duration = self.start.elapsed();
        if self.log.is_some() || self.span.is_some() {
            let peers = (self.set.as_ref()).map_or([UNKNOWN; 5], |s| s.peers());
            let outcome = Outcome {
                status: self.status,
                grpc: self.grpc,
                flag: self.flag,
                duration,
                bytes_received: self.request_bytes,
                bytes_sent: self.response_bytes,
                upstream_host: self.upstream_host,
                upstream_cluster: self.upstream_cluster.as_deref(),
                peers,
                mtls: self.set.as_ref().is_some_and(|s| s.mutual_tls()),
            };
            if let Some(line) = &self.log {
                line.write(&outcome);
            }
            if let Some(span) = self.span.take() {
                span.end(&outcome);
            }
        }
        let Some(set) = &self.set else {
            return;
        };
        let key = SeriesKey {
            code: self.status,
            grpc: self.grpc,
            flag: self.flag,
        };
        let Some(series) = set.series(key) else {
            set.families.overflow.inc();
            return;
        };
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        series.record(micros, self.request_bytes, self.response_bytes);
    }
}

// === impl SmallCache ===

impl<K, V> Default for SmallCache<K, V> {
    fn default() -> Self {
        SmallCache(ArcSwap::from_pointee(Vec::new()))
    }
}

impl<K: PartialEq + Clone, V> SmallCache<K, V> {
    /// The value of `key`, if cached.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.0.load();
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Caches `value` under `key`, unless the cache is full.
    pub fn insert(&self, key: K, value: Arc<V>) {
        self.0.rcu(|entries| {
            let mut entries = Vec::clone(entries);
            if entries.len() < MAX_CACHED && !entries.iter().any(|(k, _)| *k == key) {
                entries.push((key.clone(), value.clone()));
            }
            entries
        });
    }
}

#[cfg(test)]
mod tests;
