//! `mesh stat` (as `linkerd viz stat`): per deployment or pod of a namespace, the success rate,
//! requests per second and latency percentiles of what its sidecars served, and how many of its
//! pods are meshed; `mesh edges`: who calls whom, and whether in mesh mutual TLS. Both read the
//! sidecars' standard metrics: scraped from the sidecars of a running lab, or asked of a
//! Prometheus server that scrapes them (`--prometheus URL`).

mod prometheus;
mod sidecars;

use std::{process::ExitCode, time::Duration};

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::{
    output::{columns, out, outln},
    prometheus_api::Prometheus,
    runtime,
    workload_stats::Edge,
};

/// Exit status when the metrics could not be read.
const FAILED: u8 = 2;

/// The latency percentiles shown, as quantiles.
const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// The window when none is given: a lab is watched for it, Prometheus needs a few scrapes.
const LAB_WINDOW: Duration = Duration::from_secs(1);
const PROMETHEUS_WINDOW: Duration = Duration::from_secs(60);

/// `mesh stat` options.
#[derive(Args)]
pub struct StatArgs {
    /// A row per deployment (`deploy`) or per pod (`pod`).
    #[arg(value_enum, default_value_t = Resource::Deploy)]
    resource: Resource,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab to read (without --prometheus).
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// Ask this Prometheus server (http://HOST:PORT) instead of a lab's sidecars.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// The window for requests per second (and, from Prometheus, everything), e.g. 2s, 500ms
    /// or 5m; default 1s in a lab, 1m from Prometheus.
    #[arg(long, value_parser = parse_window)]
    window: Option<Duration>,
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
    /// The lab to read (without --prometheus).
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// Ask this Prometheus server (http://HOST:PORT) instead of a lab's sidecars.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
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

/// One row: a workload (or pod) and what it served.
#[derive(Debug, Default, PartialEq)]
struct Row {
    name: String,
    /// Its pods and how many of them are meshed; `None` when the source cannot tell.
    pods: Option<(usize, usize)>,
    /// Requests answered: since the sidecars started (lab), or within the window (Prometheus).
    requests: f64,
    /// Of those, answered with a 5xx.
    failures: f64,
    rps: Option<f64>,
    /// At [`QUANTILES`], in milliseconds.
    latency_ms: [Option<f64>; 3],
    /// TCP connections open now; `None` when nothing reported any.
    tcp_open: Option<f64>,
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
    let rows = match &args.prometheus {
        Some(url) => {
            let window = args.window.unwrap_or(PROMETHEUS_WINDOW);
            let api = Prometheus::at(url)?;
            let rows = prometheus::rows(&api, args.resource, &args.namespace, window).await?;
            if rows.is_empty() {
                eprintln!(
                    "mesh stat: Prometheus holds no requests served in namespace {} (are its \
                     sidecars' :15090/metrics scraped?)",
                    args.namespace
                );
            }
            rows
        }
        None => {
            let window = args.window.unwrap_or(LAB_WINDOW);
            sidecars::rows(&args.lab, args.resource, &args.namespace, window).await?
        }
    };
    match args.output {
        Output::Json => {
            let rows: Vec<_> = rows.iter().map(row_json).collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Output::Table => out!("{}", stat_table(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn edges(args: EdgesArgs) -> anyhow::Result<ExitCode> {
    let edges = match &args.prometheus {
        Some(url) => prometheus::edges(&Prometheus::at(url)?, &args.namespace).await?,
        None => sidecars::edges(&args.lab, &args.namespace).await?,
    };
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
        Output::Table => out!("{}", edges_table(&edges)),
    }
    Ok(ExitCode::SUCCESS)
}

fn stat_table(rows: &[Row]) -> String {
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
        let ms = |i: usize| row.latency_ms[i].map_or_else(dash, |v| format!("{v:.0}ms"));
        lines.push([
            row.name.clone(),
            (row.pods).map_or_else(dash, |(pods, meshed)| format!("{meshed}/{pods}")),
            (row.success_rate()).map_or_else(dash, |r| format!("{:.2}%", r * 100.0)),
            row.rps.map_or_else(dash, |r| format!("{r:.1}rps")),
            ms(0),
            ms(1),
            ms(2),
            row.tcp_open.map_or_else(dash, |n| format!("{n}")),
        ]);
    }
    columns(&lines)
}

fn edges_table(edges: &[Edge]) -> String {
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
    columns(&rows)
}

fn row_json(row: &Row) -> serde_json::Value {
    json!({
        "name": row.name,
        "pods": row.pods.map(|(pods, _)| pods),
        "meshed": row.pods.map(|(_, meshed)| meshed),
        "requests": row.requests,
        "failures": row.failures,
        "success_rate": row.success_rate(),
        "rps": row.rps,
        "latency_ms_p50": row.latency_ms[0],
        "latency_ms_p95": row.latency_ms[1],
        "latency_ms_p99": row.latency_ms[2],
        "tcp_open": row.tcp_open,
    })
}

// === impl Row ===

impl Row {
    /// The share of requests not answered with a 5xx; `None` without requests.
    fn success_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| 1.0 - self.failures / self.requests)
    }
}

/// `2s`, `500ms`, `5m` or bare seconds, up to an hour.
fn parse_window(text: &str) -> Result<Duration, String> {
    let (number, unit) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(minutes) = text.strip_suffix('m') {
        (minutes, 60.0)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n * unit <= 3600.0 => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err(format!(
            "{text:?} is not a window such as 2s, 500ms or 5m (at most 60m)"
        )),
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
        assert_eq!(parse_window("5m"), Ok(Duration::from_secs(300)));
        for bad in ["0s", "-1s", "soon", "1h", "61m"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_a_source_cannot_tell_prints_as_a_dash() {
        let rows = [
            Row {
                name: "web".into(),
                pods: Some((2, 1)),
                requests: 200.0,
                failures: 10.0,
                rps: Some(3.24),
                latency_ms: [Some(1.2), Some(4.6), Some(9.5)],
                tcp_open: Some(2.0),
            },
            Row {
                name: "idle".into(),
                ..Row::default()
            },
        ];
        let table = stat_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[1],
            "web    1/2      95.00%    3.2rps   1ms           5ms           10ms          2"
        );
        assert_eq!(
            lines[2],
            "idle   -        -         -        -             -             -             -"
        );
        let json = row_json(&rows[1]);
        assert_eq!(json["pods"], serde_json::Value::Null);
        assert_eq!(json["meshed"], serde_json::Value::Null);
        assert_eq!(json["success_rate"], serde_json::Value::Null);
    }
}
