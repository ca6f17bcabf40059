//! `mesh lab traces`: the newest traces the lab's trace collector holds (a pod running
//! `mesh-workload collect-traces`), fetched from its `GET /traces` inside the pod and printed
//! as trees of spans.

use std::{net::SocketAddr, path::Path, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use mesh_lab::{cluster::PodRole, state::LabState, workload::StoredTrace};

use crate::{
    http_get::Endpoint,
    output::{out, outln},
    runtime, trace_tree,
};

/// The `mesh-workload` subcommand that collects traces.
const COLLECTOR_COMMAND: &str = "collect-traces";

/// The collector's HTTP port unless its `--http-addr` names another.
const COLLECTOR_HTTP_PORT: u16 = 8080;

/// `mesh lab traces` options.
#[derive(Args)]
pub struct TracesArgs {
    /// The collector's namespace (default: wherever one runs).
    #[arg(short, long)]
    namespace: Option<String>,
    /// How many traces to show, the newest.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// How to print them.
    #[arg(short, long, value_enum, default_value_t = Format::Tree)]
    output: Format,
}

/// How to print the traces.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A line per span, children indented under their parent.
    Tree,
    /// A JSON array of traces, each span with its `children`.
    Json,
}

/// Runs `mesh lab traces` on the lab `lab`.
pub fn run(lab: &str, args: TracesArgs) -> ExitCode {
    runtime::block_on("lab traces", 1, traces(lab, args))
}

async fn traces(lab: &str, args: TracesArgs) -> anyhow::Result<ExitCode> {
    let state = LabState::read(lab)?;
    let (pod, endpoint) = collector(&state, args.namespace.as_deref())?;
    let answer = endpoint.get("/traces").await?;
    if !answer.status.is_success() {
        bail!(
            "collector {pod} answered {}: {}",
            answer.status,
            answer.body
        );
    }
    let traces: Vec<StoredTrace> = serde_json::from_str(&answer.body)
        .with_context(|| format!("collector {pod} answered GET /traces with no list of traces"))?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let newest = &traces[traces.len().saturating_sub(limit)..];
    match args.output {
        Format::Json => {
            let traces: Vec<_> = newest.iter().map(trace_tree::to_json).collect();
            outln!("{}", serde_json::to_string_pretty(&traces)?);
        }
        Format::Tree if newest.is_empty() => outln!(
            "collector {pod} holds no traces yet: a sidecar sends spans when a Telemetry \
             names the provider otel (the Service otel-collector.observability), or its pod's \
             annotation mesh.io/tracing-collector names a collector, and a request is sampled \
             (randomSamplingPercentage, or mesh.io/tracing-sampling; default 1 %)"
        ),
        Format::Tree => out!("{}", trace_tree::render(newest)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The lab's collector pod (`namespace/name`; a ready one first, then by name) and its HTTP
/// port inside the pod.
fn collector(state: &LabState, namespace: Option<&str>) -> anyhow::Result<(String, Endpoint)> {
    let mut found = Vec::new();
    for pod in &state.plan.pods {
        let PodRole::Containers(containers) = &pod.role else {
            continue;
        };
        let Some(port) = containers.iter().find_map(|c| collector_port(&c.argv)) else {
            continue;
        };
        let key = pod.key();
        let Some(status) = state.pods.get(&key) else {
            continue;
        };
        if namespace.is_none_or(|n| n == pod.namespace) {
            let endpoint = Endpoint::InPod {
                pod: key.clone(),
                netns: status.netns.clone(),
                port,
            };
            found.push((!status.ready, key, endpoint));
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let Some((_, key, endpoint)) = found.into_iter().next() else {
        let place = namespace.map_or_else(String::new, |n| format!(" in namespace {n}"));
        bail!(
            "lab {} runs no trace collector{place}: deploy a pod running `mesh-workload \
             collect-traces` (OTLP on 4317, GET /traces on 8080) behind a Service, as \
             lab/examples/shop/observability.yaml does (Service otel-collector in namespace \
             observability: the lab's tracing provider otel), and send spans there with a \
             Telemetry or the pod annotation mesh.io/tracing-collector",
            state.name
        );
    };
    Ok((key, endpoint))
}

/// The HTTP port of the collector a container's command line runs, if it runs one.
fn collector_port(argv: &[String]) -> Option<u16> {
    let (program, args) = argv.split_first()?;
    let workload = Path::new(program).file_name()? == "mesh-workload";
    if !workload || args.first()? != COLLECTOR_COMMAND {
        return None;
    }
    let addr = (args.windows(2))
        .find_map(|pair| (pair[0] == "--http-addr").then_some(pair[1].as_str()))
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--http-addr=")));
    let port = addr
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port());
    Some(port.unwrap_or(COLLECTOR_HTTP_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn a_collector_is_known_by_its_command_and_its_port_by_its_flag() {
        let port = |words: &[&str]| collector_port(&argv(words));
        assert_eq!(port(&["mesh-workload", "collect-traces"]), Some(8080));
        assert_eq!(
            port(&[
                "/opt/mesh-workload",
                "collect-traces",
                "--http-addr",
                "0.0.0.0:9411"
            ]),
            Some(9411)
        );
        assert_eq!(
            port(&["mesh-workload", "collect-traces", "--http-addr=[::]:9412"]),
            Some(9412)
        );
        assert_eq!(port(&["mesh-workload", "--addr", "0.0.0.0:8080"]), None);
        assert_eq!(port(&["sleep", "collect-traces"]), None);
        assert_eq!(port(&[]), None);
    }
}
