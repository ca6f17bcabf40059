//! The golden signals of a namespace's workloads, read from their sidecars' standard metrics
//! (`istio_*`): per pod, the requests its sidecar served (reporter `destination`), how many
//! failed (5xx), their latency histogram and open TCP connections; and who called whom.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_parse::{Sample, Scrape, Value};

/// What one pod's sidecar served, as counted since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Served {
    /// Requests answered.
    pub requests: f64,
    /// Of those, answered with a 5xx.
    pub failures: f64,
    /// Request durations: cumulative counts by upper bound in milliseconds.
    pub latency: BTreeMap<Bound, f64>,
    /// TCP connections open now.
    pub tcp_open: f64,
}

/// A histogram bucket's upper bound, ordered (`+Inf` last).
#[derive(Clone, Copy, Debug)]
pub struct Bound(pub f64);

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One caller → callee pair seen by a sidecar.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The caller's workload.
    pub source: String,
    /// The caller's namespace.
    pub source_namespace: String,
    /// The callee's workload.
    pub destination: String,
    /// The callee's namespace.
    pub destination_namespace: String,
    /// Whether the calls went in mesh mutual TLS.
    pub secured: bool,
}

/// Reads a sidecar's metrics page.
pub fn parse(text: &str) -> anyhow::Result<Scrape> {
    Ok(Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?)
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample.labels.get(name).unwrap_or("unknown")
}

fn scalar(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => 0.0,
    }
}

/// What the sidecar whose page is `scrape` served.
pub fn served(scrape: &Scrape) -> Served {
    let mut served = Served::default();
    let inbound = (scrape.samples.iter()).filter(|s| label(s, "reporter") == "destination");
    for sample in inbound {
        match (sample.metric.as_str(), &sample.value) {
            ("istio_requests_total", value) => {
                served.requests += scalar(value);
                if label(sample, "response_code").starts_with('5') {
                    served.failures += scalar(value);
                }
            }
            ("istio_request_duration_milliseconds", Value::Histogram(buckets)) => {
                for bucket in buckets {
                    *served.latency.entry(Bound(bucket.less_than)).or_default() += bucket.count;
                }
            }
            ("istio_tcp_connections_opened_total", value) => served.tcp_open += scalar(value),
            ("istio_tcp_connections_closed_total", value) => served.tcp_open -= scalar(value),
            _ => {}
        }
    }
    served
}

/// The caller → callee pairs in the sidecar's page: calls it made and calls it served.
pub fn edges(scrape: &Scrape) -> BTreeSet<Edge> {
    let requests = ["istio_requests_total", "istio_tcp_connections_opened_total"];
    (scrape.samples.iter())
        .filter(|s| requests.contains(&s.metric.as_str()) && scalar(&s.value) > 0.0)
        .map(|s| Edge::of_series(|name| label(s, name)))
        .collect()
}

// === impl Edge ===

impl Edge {
    /// The pair a request or TCP series stands for; `label` gives each of its labels
    /// (`unknown` when missing). The server's sidecar knows whether it took mesh mutual TLS;
    /// the client's, whether it proved the server's identity.
    pub fn of_series<'a>(label: impl Fn(&str) -> &'a str) -> Edge {
        Edge {
            source: label("source_workload").to_owned(),
            source_namespace: label("source_workload_namespace").to_owned(),
            destination: label("destination_workload").to_owned(),
            destination_namespace: label("destination_workload_namespace").to_owned(),
            secured: match label("reporter") {
                "destination" => label("connection_security_policy") == "mutual_tls",
                _ => label("destination_principal") != "unknown",
            },
        }
    }
}

// === impl Served ===

impl Served {
    /// Adds another pod's counts.
    pub fn add(&mut self, other: &Served) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.tcp_open += other.tcp_open;
        for (bound, count) in &other.latency {
            *self.latency.entry(*bound).or_default() += count;
        }
    }

    /// The `q` quantile of the latency in milliseconds, interpolated within its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total = self.latency.last_key_value().map(|(_, c)| *c)?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for (bound, count) in &self.latency {
            if *count >= rank {
                if bound.0.is_infinite() {
                    return Some(lower.0);
                }
                let within = (count - lower.1).max(f64::MIN_POSITIVE);
                return Some(lower.0 + (bound.0 - lower.0) * (rank - lower.1) / within);
            }
            lower = (bound.0, *count);
        }
        Some(lower.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",source_workload="client",source_workload_namespace="shop",destination_workload="web",destination_workload_namespace="shop",connection_security_policy="mutual_tls",response_code="200"} 90
istio_requests_total{reporter="destination",source_workload="client",source_workload_namespace="shop",destination_workload="web",destination_workload_namespace="shop",connection_security_policy="mutual_tls",response_code="503"} 10
istio_requests_total{reporter="source",source_workload="web",source_workload_namespace="shop",destination_workload="db",destination_workload_namespace="data",destination_principal="unknown",response_code="200"} 5
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="1"} 50
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="5"} 90
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="+Inf"} 90
istio_request_duration_milliseconds_sum{reporter="destination",response_code="200"} 120
istio_request_duration_milliseconds_count{reporter="destination",response_code="200"} 90
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="1"} 10
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="5"} 10
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="+Inf"} 10
istio_request_duration_milliseconds_sum{reporter="destination",response_code="503"} 3
istio_request_duration_milliseconds_count{reporter="destination",response_code="503"} 10
# TYPE istio_tcp_connections_opened_total counter
istio_tcp_connections_opened_total{reporter="destination",source_workload="client"} 3
# TYPE istio_tcp_connections_closed_total counter
istio_tcp_connections_closed_total{reporter="destination",source_workload="client"} 1
"#;

    #[test]
    fn a_page_gives_requests_failures_latency_and_open_connections() {
        let served = served(&parse(PAGE).expect("parses"));
        assert_eq!(served.requests, 100.0);
        assert_eq!(served.failures, 10.0);
        assert_eq!(served.tcp_open, 2.0);
        // 60 of 100 are at most 1 ms: the median is in the first bucket.
        let p50 = served.latency_quantile(0.5).expect("p50");
        assert!((p50 - 50.0 / 60.0).abs() < 1e-9, "{p50}");
        let p99 = served.latency_quantile(0.99).expect("p99");
        assert!(p99 > 4.0 && p99 <= 5.0, "{p99}");
        assert_eq!(Served::default().latency_quantile(0.5), None);
    }

    #[test]
    fn edges_come_from_both_sides_with_their_security() {
        let edges: Vec<Edge> = edges(&parse(PAGE).expect("parses")).into_iter().collect();
        assert_eq!(edges.len(), 3, "{edges:?}");
        let inbound = edges.iter().find(|e| e.destination == "web").expect("web");
        assert!(inbound.secured && inbound.source == "client");
        let outbound = edges.iter().find(|e| e.destination == "db").expect("db");
        assert!(!outbound.secured && outbound.destination_namespace == "data");
    }
}
