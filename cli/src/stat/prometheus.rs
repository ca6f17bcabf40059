//! The rows and edges of `mesh stat` and `mesh edges` from a Prometheus server that scrapes the
//! sidecars, asked as Kiali and `linkerd viz stat` ask: rates over the window of what the
//! servers' sidecars reported (`reporter="destination"`), summed by workload
//! (`destination_workload`) or by pod (the `pod` label a Kubernetes pod scrape adds), and
//! `histogram_quantile` over the summed latency buckets. Prometheus does not know how many pods
//! a workload has or which are meshed, so rows leave that out.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::bail;

use super::{QUANTILES, Resource, Row};
use crate::{
    prometheus_api::{Prometheus, Sample},
    workload_stats::Edge,
};

/// The labels an edge is told by.
const EDGE_LABELS: &str = "reporter, source_workload, source_workload_namespace, \
    destination_workload, destination_workload_namespace, connection_security_policy, \
    destination_principal";

/// The queries of one `mesh stat`.
struct StatQueries {
    /// The label rows are keyed by.
    by: &'static str,
    /// The series' selector: served by the namespace's workloads.
    selector: String,
    /// The window, as PromQL writes a duration.
    window: String,
}

/// A row per workload (or pod) of `namespace` that Prometheus has series of, taken over `window`.
pub(super) async fn rows(
    api: &Prometheus,
    resource: Resource,
    namespace: &str,
    window: Duration,
) -> anyhow::Result<Vec<Row>> {
    let queries = StatQueries::new(resource, namespace, window);
    let seconds = window.as_secs_f64();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (name, rate) in queries.ask(api, queries.requests()).await? {
        let row = entry(&mut rows, name);
        row.rps = Some(rate);
        row.requests = rate * seconds;
    }
    for (name, rate) in queries.ask(api, queries.failures()).await? {
        entry(&mut rows, name).failures = rate * seconds;
    }
    for (i, q) in QUANTILES.into_iter().enumerate() {
        for (name, ms) in queries.ask(api, queries.latency(q)).await? {
            entry(&mut rows, name).latency_ms[i] = ms.is_finite().then_some(ms);
        }
    }
    let closed: BTreeMap<String, f64> = (queries.ask(api, queries.connections("closed")).await?)
        .into_iter()
        .collect();
    for (name, opened) in queries.ask(api, queries.connections("opened")).await? {
        let closed = closed.get(&name).copied().unwrap_or(0.0);
        entry(&mut rows, name).tcp_open = Some(opened - closed);
    }
    Ok(rows.into_values().collect())
}

fn entry(rows: &mut BTreeMap<String, Row>, name: String) -> &mut Row {
    (rows.entry(name.clone())).or_insert_with(|| Row {
        name,
        ..Row::default()
    })
}

/// Who calls whom among the workloads of `namespace` (as caller or callee), from the request
/// and TCP connection counters Prometheus holds now.
pub(super) async fn edges(api: &Prometheus, namespace: &str) -> anyhow::Result<Vec<Edge>> {
    let samples = api.query(&edges_query(namespace)).await?;
    let unknown = "unknown";
    Ok((samples.iter())
        .filter(|s| s.value > 0.0)
        .map(|s| Edge::of_series(|name| s.labels.get(name).map_or(unknown, String::as_str)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

fn edges_query(namespace: &str) -> String {
    let series = r#"__name__=~"istio_requests_total|istio_tcp_connections_opened_total""#;
    let namespace = quote(namespace);
    let side = |label: &str| {
        format!("sum({{{series}, {label}_workload_namespace={namespace}}}) by ({EDGE_LABELS})")
    };
    format!("{} or {}", side("source"), side("destination"))
}

// === impl StatQueries ===

impl StatQueries {
    fn new(resource: Resource, namespace: &str, window: Duration) -> StatQueries {
        StatQueries {
            by: match resource {
                Resource::Deploy => "destination_workload",
                Resource::Pod => "pod",
            },
            selector: format!(
                r#"reporter="destination", destination_workload_namespace={}"#,
                quote(namespace)
            ),
            window: duration(window),
        }
    }

    /// Requests per second.
    fn requests(&self) -> String {
        let StatQueries {
            by,
            selector,
            window,
        } = self;
        format!("sum(rate(istio_requests_total{{{selector}}}[{window}])) by ({by})")
    }

    /// 5xx answers per second.
    fn failures(&self) -> String {
        let StatQueries {
            by,
            selector,
            window,
        } = self;
        format!(
            r#"sum(rate(istio_requests_total{{{selector}, response_code=~"5.."}}[{window}])) by ({by})"#
        )
    }

    /// The `q` quantile of the request duration in milliseconds.
    fn latency(&self, q: f64) -> String {
        let StatQueries {
            by,
            selector,
            window,
        } = self;
        format!(
            "histogram_quantile({q}, sum(rate(istio_request_duration_milliseconds_bucket\
             {{{selector}}}[{window}])) by (le, {by}))"
        )
    }

    /// A TCP connection counter (`opened` or `closed`), as it stands now.
    fn connections(&self, counter: &str) -> String {
        let StatQueries { by, selector, .. } = self;
        format!("sum(istio_tcp_connections_{counter}_total{{{selector}}}) by ({by})")
    }

    /// Asks `promql`: each sample's row name and value.
    async fn ask(&self, api: &Prometheus, promql: String) -> anyhow::Result<Vec<(String, f64)>> {
        self.keyed(api.query(&promql).await?)
    }

    /// Each sample's row name and value; every sample must carry the row label.
    fn keyed(&self, samples: Vec<Sample>) -> anyhow::Result<Vec<(String, f64)>> {
        let mut keyed = Vec::with_capacity(samples.len());
        for Sample { labels, value } in samples {
            let name = match labels.get(self.by).filter(|v| !v.is_empty()) {
                Some(name) => name.clone(),
                None if self.by == "pod" => bail!(
                    "Prometheus' istio_* series carry no `pod` label, so pods cannot be told \
                     apart: add it in the scrape config (relabel __meta_kubernetes_pod_name to \
                     pod, as Istio's sample Prometheus does), or ask `mesh stat deploy`"
                ),
                None => "unknown".to_owned(),
            };
            keyed.push((name, value));
        }
        Ok(keyed)
    }
}

/// `text` as a PromQL string literal.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', r"\\").replace('"', "\\\""))
}

/// A PromQL duration: whole minutes, whole seconds, else milliseconds.
fn duration(window: Duration) -> String {
    let ms = window.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_select_what_the_namespaces_servers_reported_over_the_window() {
        let deploy = StatQueries::new(Resource::Deploy, "shop", Duration::from_secs(60));
        assert_eq!(
            deploy.requests(),
            r#"sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="shop"}[1m])) by (destination_workload)"#
        );
        assert_eq!(
            deploy.latency(0.95),
            r#"histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination", destination_workload_namespace="shop"}[1m])) by (le, destination_workload))"#
        );
        let pod = StatQueries::new(Resource::Pod, r#"a"b"#, Duration::from_millis(1500));
        assert_eq!(
            pod.failures(),
            r#"sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="a\"b", response_code=~"5.."}[1500ms])) by (pod)"#
        );
    }

    #[test]
    fn rows_by_pod_need_the_pod_label() {
        let pod = StatQueries::new(Resource::Pod, "shop", Duration::from_secs(1));
        let samples = vec![Sample {
            labels: BTreeMap::new(),
            value: 1.0,
        }];
        let error = format!(
            "{:#}",
            pod.keyed(samples.clone()).expect_err("no pod label")
        );
        assert!(error.contains("no `pod` label"), "{error}");
        let deploy = StatQueries::new(Resource::Deploy, "shop", Duration::from_secs(1));
        assert_eq!(
            deploy.keyed(samples).expect("ok"),
            [("unknown".to_owned(), 1.0)]
        );
    }
}
