//! The rows and edges of `mesh stat` and `mesh edges` from the sidecars of a running lab: each
//! meshed pod's metrics page, scraped inside its network namespace.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::Context;
use mesh_lab::state::LabState;

use super::{QUANTILES, Resource, Row};
use crate::{
    http_get::Endpoint,
    locate::{SIDECAR, read_lab},
    workload_stats::{self, Edge, Served},
};

/// A sidecar's Prometheus port.
const METRICS_PORT: u16 = 15090;

/// One pod of the namespace in the lab.
struct LabPod {
    name: String,
    workload: String,
    /// Its sidecar's metrics port; `None` when it has no sidecar.
    metrics: Option<Endpoint>,
}

/// A row per workload (or pod) of `namespace` in the lab `lab`, requests per second counted
/// over `window`.
pub(super) async fn rows(
    lab: &str,
    resource: Resource,
    namespace: &str,
    window: Duration,
) -> anyhow::Result<Vec<Row>> {
    let pods = lab_pods(lab, namespace)?;
    let before = scrape_all(&pods).await?;
    tokio::time::sleep(window).await;
    let after = scrape_all(&pods).await?;
    // Per row: its pods, meshed pods, what they served, and their requests per second.
    let mut rows: BTreeMap<String, (usize, usize, Served, Option<f64>)> = BTreeMap::new();
    for pod in &pods {
        let key = match resource {
            Resource::Deploy => pod.workload.clone(),
            Resource::Pod => pod.name.clone(),
        };
        let (count, meshed, served, rps) = rows.entry(key).or_default();
        *count += 1;
        let (Some(now), Some(then)) = (after.get(&pod.name), before.get(&pod.name)) else {
            continue;
        };
        let now = workload_stats::served(now);
        let then = workload_stats::served(then);
        *meshed += 1;
        let rate = (now.requests - then.requests).max(0.0) / window.as_secs_f64();
        *rps = Some(rps.unwrap_or(0.0) + rate);
        served.add(&now);
    }
    Ok((rows.into_iter())
        .map(|(name, (pods, meshed, served, rps))| Row {
            name,
            pods: Some((pods, meshed)),
            requests: served.requests,
            failures: served.failures,
            rps,
            latency_ms: QUANTILES.map(|q| served.latency_quantile(q)),
            tcp_open: (meshed > 0).then_some(served.tcp_open),
        })
        .collect())
}

/// Who calls whom among the workloads of `namespace` (as caller or callee) in the lab `lab`.
pub(super) async fn edges(lab: &str, namespace: &str) -> anyhow::Result<Vec<Edge>> {
    let pods = lab_pods(lab, namespace)?;
    let pages = scrape_all(&pods).await?;
    Ok((pages.values())
        .flat_map(workload_stats::edges)
        .filter(|e| e.source_namespace == namespace || e.destination_namespace == namespace)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// The pods of `namespace` in the lab `lab`, with their workloads and sidecars.
fn lab_pods(lab: &str, namespace: &str) -> anyhow::Result<Vec<LabPod>> {
    let state: LabState = read_lab(lab, "no Prometheus given: pass --prometheus URL")?;
    let pods: Vec<LabPod> = (state.plan.pods.iter())
        .filter(|p| p.namespace == namespace)
        .map(|p| {
            let key = p.key();
            let status = state.pods.get(&key);
            let metrics = status
                .filter(|s| s.containers.contains_key(SIDECAR))
                .map(|s| Endpoint::InPod {
                    pod: key.clone(),
                    netns: s.netns.clone(),
                    port: METRICS_PORT,
                });
            LabPod {
                name: p.name.clone(),
                workload: p.deployment.clone().unwrap_or_else(|| p.name.clone()),
                metrics,
            }
        })
        .collect();
    if pods.is_empty() {
        anyhow::bail!("lab {lab} has no pods in namespace {namespace} (see `mesh lab status`)");
    }
    Ok(pods)
}

/// Every meshed pod's metrics page, by pod name.
async fn scrape_all(pods: &[LabPod]) -> anyhow::Result<BTreeMap<String, prometheus_parse::Scrape>> {
    let mut pages = BTreeMap::new();
    for pod in pods {
        let Some(endpoint) = &pod.metrics else {
            continue;
        };
        let answer = endpoint.get("/metrics").await?;
        let page = workload_stats::parse(&answer.body)
            .with_context(|| format!("reading the metrics of {}", pod.name))?;
        pages.insert(pod.name.clone(), page);
    }
    Ok(pages)
}
