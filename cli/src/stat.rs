//! `mesh stat` (as `linkerd viz stat`): per deployment or pod of a namespace, the success rate,
//! requests per second and latency percentiles of what its sidecars served, and how many of its
//! pods are meshed; `mesh edges`: who calls whom, and whether in mesh mutual TLS. Both read the
//! sidecars' standard metrics in a running lab.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Args, ValueEnum};
use mesh_lab::state::LabState;
use serde_json::json;

use crate::{
    http_get::Endpoint,
    locate::{SIDECAR, read_lab},
    output::{columns, out, outln},
    runtime,
    workload_stats::{self, Edge, Served},
};

/// A sidecar's Prometheus port.
const METRICS_PORT: u16 = 15090;

/// Exit status when the metrics could not be read.
const FAILED: u8 = 2;

/// `mesh stat` options.
#[derive(Args)]
pub struct StatArgs {
    /// A row per deployment (`deploy`) or per pod (`pod`).
    #[arg(value_enum, default_value_t = Resource::Deploy)]
    resource: Resource,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab to read.
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// How long to watch for the requests-per-second column, e.g. 2s or 500ms.
    #[arg(long, default_value = "1s", value_parser = parse_window)]
    window: Duration,
    /// How to print it.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `mesh edges` options.
#[derive(Args)]
pub struct EdgesArgs {
    /// The namespace whose workloads' calls (made or served) are shown.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab to read.
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// How to print it.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// What a row stands for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Resource {
    /// A Deployment (a bare pod stands for itself).
    Deploy,
    /// A pod.
    Pod,
}

/// How to print the rows.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// One pod of the namespace in the lab.
struct LabPod {
    name: String,
    workload: String,
    /// Its sidecar's metrics port; `None` when it has no sidecar.
    metrics: Option<Endpoint>,
}

/// One row: a workload (or pod) and what its meshed pods served.
struct Row {
    name: String,
    pods: usize,
    meshed: usize,
    served: Served,
    rps: Option<f64>,
}

/// Runs `mesh stat`.
pub fn run_stat(args: StatArgs) -> ExitCode {
    runtime::block_on("stat", FAILED, stat(args))
}

/// Runs `mesh edges`.
pub fn run_edges(args: EdgesArgs) -> ExitCode {
    runtime::block_on("edges", FAILED, edges(args))
}

async fn stat(args: StatArgs) -> anyhow::Result<ExitCode> {
    let pods = lab_pods(&args.lab, &args.namespace)?;
    let before = scrape_all(&pods).await?;
    tokio::time::sleep(args.window).await;
    let after = scrape_all(&pods).await?;
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for pod in &pods {
        let key = match args.resource {
            Resource::Deploy => pod.workload.clone(),
            Resource::Pod => pod.name.clone(),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            name: key,
            pods: 0,
            meshed: 0,
            served: Served::default(),
            rps: None,
        });
        row.pods += 1;
        let (Some(now), Some(then)) = (after.get(&pod.name), before.get(&pod.name)) else {
            continue;
        };
        let now = workload_stats::served(now);
        let then = workload_stats::served(then);
        row.meshed += 1;
        let rate = (now.requests - then.requests).max(0.0) / args.window.as_secs_f64();
        row.rps = Some(row.rps.unwrap_or(0.0) + rate);
        row.served.add(&now);
    }
    match args.output {
        Output::Json => {
            let rows: Vec<_> = rows.values().map(row_json).collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Output::Table => out!("{}", stat_table(rows.values())),
    }
    Ok(ExitCode::SUCCESS)
}

async fn edges(args: EdgesArgs) -> anyhow::Result<ExitCode> {
    let pods = lab_pods(&args.lab, &args.namespace)?;
    let pages = scrape_all(&pods).await?;
    let ns = args.namespace.as_str();
    let edges: Vec<Edge> = (pages.values())
        .flat_map(workload_stats::edges)
        .filter(|e| e.source_namespace == ns || e.destination_namespace == ns)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    match args.output {
        Output::Json => {
            let rows: Vec<_> = (edges.iter())
                .map(|e| {
                    json!({
                        "src": e.source, "dst": e.destination,
                        "src_ns": e.source_namespace, "dst_ns": e.destination_namespace,
                        "secured": e.secured,
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Output::Table => {
            let mut rows = vec![["SRC", "DST", "SRC_NS", "DST_NS", "SECURED"].map(str::to_owned)];
            rows.extend(edges.iter().map(|e| {
                [
                    e.source.clone(),
                    e.destination.clone(),
                    e.source_namespace.clone(),
                    e.destination_namespace.clone(),
                    if e.secured { "√" } else { "×" }.to_owned(),
                ]
            }));
            out!("{}", columns(&rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The pods of `namespace` in the lab `lab`, with their workloads and sidecars.
fn lab_pods(lab: &str, namespace: &str) -> anyhow::Result<Vec<LabPod>> {
    let state: LabState = read_lab(lab, "mesh stat reads a running lab's sidecars")?;
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

fn stat_table<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let header = [
        "NAME",
        "MESHED",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
        "TCP_CONN",
    ];
    let mut lines = vec![header.map(str::to_owned)];
    for row in rows {
        let dash = || "-".to_owned();
        let ms =
            |q: f64| (row.served.latency_quantile(q)).map_or_else(dash, |v| format!("{v:.0}ms"));
        lines.push([
            row.name.clone(),
            format!("{}/{}", row.meshed, row.pods),
            (row.served.success_rate()).map_or_else(dash, |r| format!("{:.2}%", r * 100.0)),
            row.rps.map_or_else(dash, |r| format!("{r:.1}rps")),
            ms(0.5),
            ms(0.95),
            ms(0.99),
            if row.meshed > 0 {
                format!("{}", row.served.tcp_open)
            } else {
                dash()
            },
        ]);
    }
    columns(&lines)
}

fn row_json(row: &Row) -> serde_json::Value {
    let served = &row.served;
    json!({
        "name": row.name,
        "pods": row.pods,
        "meshed": row.meshed,
        "requests": served.requests,
        "failures": served.failures,
        "success_rate": served.success_rate(),
        "rps": row.rps,
        "latency_ms_p50": served.latency_quantile(0.5),
        "latency_ms_p95": served.latency_quantile(0.95),
        "latency_ms_p99": served.latency_quantile(0.99),
        "tcp_open": served.tcp_open,
    })
}

/// `2s`, `500ms` or bare seconds.
fn parse_window(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 0.001),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 3600.0 => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err(format!("{text:?} is not a window such as 2s or 500ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_written_and_nonsense_is_refused() {
        assert_eq!(parse_window("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_window("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_window("3"), Ok(Duration::from_secs(3)));
        for bad in ["0s", "-1s", "soon", "1h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
