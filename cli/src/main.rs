//! `mesh`: the user's command line: the lab (`mesh lab ...`), `proxy-status`, `proxy-config
//! secret`, `tls-check`, `analyze`, `inject` and `check`.

mod analyze;
mod check;
mod config_diff;
mod http_get;
mod inject;
mod lab;
mod lab_traces;
mod locate;
mod output;
mod prometheus_api;
mod proxy_config;
mod proxy_status;
mod runtime;
mod stat;
mod status_table;
mod tls_check;
mod trace_tree;
mod workload_stats;

use clap::{Parser, Subcommand};

/// The mesh command line.
#[derive(Parser)]
#[command(name = "mesh", version, about = "The mesh service mesh command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A Kubernetes-shaped cluster on this machine, from network namespaces (needs root).
    Lab(lab::LabArgs),
    /// Each proxy's sync state with the control plane (SYNCED / NOT SENT / STALE), or for one
    /// pod, what the control plane would send it against what its proxy runs.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// Check a folder of manifests as the control plane reads it; exits 1 on any error.
    Analyze(analyze::AnalyzeArgs),
    /// What a pod's sidecar holds: `secret`, its workload certificate.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// For every service port a pod reaches: what its servers accept against what the pod
    /// sends, and why a pair cannot talk.
    TlsCheck(tls_check::TlsCheckArgs),
    /// Add the sidecar to the pods of a manifest, as the injection webhook would.
    Inject(inject::InjectArgs),
    /// Check the cluster before installing the mesh (--pre-install) or the installed mesh:
    /// one line per check, √ or × with a hint; exits 1 when any check failed.
    Check(check::CheckArgs),
    /// Success rate, requests per second and latency of a namespace's deployments or pods,
    /// from their sidecars' metrics in a lab or in Prometheus.
    Stat(stat::StatArgs),
    /// Who calls whom in a namespace, and whether in mesh mutual TLS.
    Edges(stat::EdgesArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(args) => lab::run(args),
        Command::ProxyStatus(args) => proxy_status::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::ProxyConfig(args) => proxy_config::run(args),
        Command::TlsCheck(args) => tls_check::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Check(args) => check::run(args),
        Command::Stat(args) => stat::run_stat(args),
        Command::Edges(args) => stat::run_edges(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
