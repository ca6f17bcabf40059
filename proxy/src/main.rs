//! `mesh-proxy`: the sidecar. Reads its config from a YAML file (`--config`) or the control
//! plane (`--discovery-address`, ready only after the first complete config), serves the
//! capture listeners (15001 outbound, 15006 inbound) and the config's explicit listeners, and
//! the admin (15000), health (15021) and metrics (15090) ports. SIGHUP or a change of the file
//! reloads the config; SIGTERM drains and exits. With `--wait-ready` it only waits until
//! another mesh-proxy's health port reports ready (the sidecar's `postStart` hook).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use mesh_proxy::{
    admin::{self, AdminPort, SetLogLevel},
    app_probe::AppProbes,
    config::{self, FileWatcher, Snapshot},
    detect::DetectConfig,
    dns::DnsSettings,
    identity::{CaClient, IdentityArgs, IdentityStore, run_renewal},
    metrics::Metrics,
    proxy::{DrainOutcome, Proxy, ProxyListeners, Settings},
    trace::TracingSettings,
    wait_ready,
    xds::DiscoveryArgs,
};
use tokio::net::TcpListener;
use tracing_subscriber::{EnvFilter, prelude::*, reload};

/// Every option also reads from the environment variable named in its help.
#[derive(Parser, Debug)]
#[command(name = "mesh-proxy", version, about = "The mesh sidecar proxy")]
struct Args {
    /// The static config file (YAML or JSON); reloaded on SIGHUP and when its content changes.
    #[arg(long, env = "MESH_PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Worker threads, each with its own event loop and upstream connections (connections are
    /// spread over them round robin). Sidecars are small: 2 by default.
    #[arg(long, env = "MESH_PROXY_CONCURRENCY", default_value_t = 2)]
    concurrency: usize,
    /// Captured outbound traffic, or "off".
    #[arg(
        long,
        env = "MESH_PROXY_OUTBOUND_ADDR",
        default_value = "0.0.0.0:15001"
    )]
    outbound_addr: String,
    /// Captured inbound traffic, or "off".
    #[arg(long, env = "MESH_PROXY_INBOUND_ADDR", default_value = "0.0.0.0:15006")]
    inbound_addr: String,
    /// Admin endpoints (config dump, log level); keep it on localhost. "off" disables.
    #[arg(long, env = "MESH_PROXY_ADMIN_ADDR", default_value = "127.0.0.1:15000")]
    admin_addr: String,
    /// Health endpoints for kubelet probes, or "off".
    #[arg(long, env = "MESH_PROXY_HEALTH_ADDR", default_value = "0.0.0.0:15021")]
    health_addr: String,
    /// Prometheus metrics, or "off".
    #[arg(long, env = "MESH_PROXY_METRICS_ADDR", default_value = "0.0.0.0:15090")]
    metrics_addr: String,
    /// How long in-flight work may take to finish after SIGTERM, e.g. "5s".
    #[arg(long, env = "MESH_PROXY_DRAIN_TIMEOUT", default_value = "5s", value_parser = mesh_proxy::duration::parse)]
    drain_timeout: Duration,
    /// How long to wait for a client's first bytes when detecting its protocol, e.g. "1s".
    #[arg(long, env = "MESH_PROXY_DETECT_TIMEOUT", default_value = "1s", value_parser = mesh_proxy::duration::parse)]
    detect_timeout: Duration,
    /// Write an access log line (JSON) per request on stdout.
    #[arg(long, env = "MESH_ACCESS_LOG")]
    access_log: bool,
    /// Send trace spans to this OpenTelemetry collector (OTLP/gRPC), e.g.
    /// http://otel-collector.observability:4317.
    #[arg(long, env = "MESH_TRACING_COLLECTOR")]
    tracing_collector: Option<String>,
    /// Percent of new traces to record (requests that arrive with a trace follow its decision).
    #[arg(long, env = "MESH_TRACING_SAMPLING", default_value_t = 1.0)]
    tracing_sampling: f64,
    /// The app's kubelet probes, run by the sidecar at /app-health/<container>/<readyz|livez> on
    /// the health port: JSON from health path to the original probe (set by the injector).
    #[arg(long, env = "MESH_APP_PROBES")]
    app_probes: Option<String>,
    /// Only wait until the proxy on --health-addr reports ready, at most this long (e.g. "600s"),
    /// then exit 0 (1 on timeout): the sidecar's postStart hook, which holds the app's
    /// containers until the sidecar is ready. Deliberately without an environment variable:
    /// the sidecar's own environment must never turn the sidecar into a waiter.
    #[arg(long, value_name = "DURATION", value_parser = mesh_proxy::duration::parse)]
    wait_ready: Option<Duration>,
    /// DNS servers ("ip:port", comma-separated) for the names of DNS clusters (ServiceEntries
    /// with resolution DNS); by default those of /etc/resolv.conf.
    #[arg(long, env = "MESH_DNS_SERVERS", value_delimiter = ',')]
    dns_servers: Vec<SocketAddr>,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "mesh_proxy=debug".
    #[arg(long, env = "MESH_PROXY_LOG", default_value = "info")]
    log: String,
    /// Discovery mode: the control plane's address and this proxy's node metadata.
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// The workload identity: the CA token, for a certificate and mutual TLS.
    #[command(flatten)]
    identity: IdentityArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let set_log_level = init_logging(&args.log);
    // This thread accepts connections, hands them to the workers, and serves the admin ports,
    // signals and reloads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match (runtime, args.wait_ready) {
        (Ok(runtime), Some(limit)) => runtime.block_on(wait(&args.health_addr, limit)),
        (Ok(runtime), None) => runtime.block_on(run(args, set_log_level)),
        (Err(error), _) => Err(anyhow::anyhow!("cannot start the runtime: {error}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("mesh-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, set_log_level: SetLogLevel) -> anyhow::Result<()> {
    let source = match &args.config {
        Some(path) => config::read_file(path)?,
        None => Default::default(),
    };
    let origin = args
        .config
        .as_ref()
        .map_or("(none)".to_owned(), |p| p.display().to_string());
    let snapshot = Snapshot::compile(config::EncodedConfig::encode(&source), None)
        .map_err(|errors| config::ConfigError::Invalid { origin, errors })?;

    let listeners = ProxyListeners {
        outbound: bind("outbound", &args.outbound_addr).await?,
        inbound: bind("inbound", &args.inbound_addr).await?,
    };
    let admin = bind("admin", &args.admin_addr).await?;
    let health = bind("health", &args.health_addr).await?;
    let metrics_listener = bind("metrics", &args.metrics_addr).await?;

    let metrics = Metrics::new();
    let mut discovery = args.discovery.client()?;
    let identity = match (&args.identity.ca_token_file, &discovery) {
        (Some(token_file), Some(client)) => {
            let node = args.discovery.node()?;
            let expected = format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                node.namespace, node.service_account
            );
            let ca = CaClient::new(
                client.endpoint().clone(),
                token_file.clone(),
                args.identity.cert_lifetime,
                expected,
            );
            let store = IdentityStore::new();
            tokio::spawn(run_renewal(ca, store.clone(), metrics.clone()));
            Some(store)
        }
        _ => None,
    };
    let settings = Settings {
        detect: DetectConfig {
            timeout: args.detect_timeout,
            ..DetectConfig::default()
        },
        workers: args.concurrency.max(1),
        identity: identity.clone(),
        app_probes: match &args.app_probes {
            Some(json) => {
                let pod_ip = args.discovery.pod_ip.parse().ok();
                Some(Arc::new(
                    AppProbes::parse(json, pod_ip).map_err(anyhow::Error::msg)?,
                ))
            }
            None => None,
        },
        workload: Arc::new(args.discovery.workload()?),
        access_log: args.access_log,
        tracing: TracingSettings {
            collector: args.tracing_collector.clone(),
            sampling: args.tracing_sampling,
        },
        pod_name: args.discovery.node()?.pod,
        dns: DnsSettings {
            servers: args.dns_servers.clone(),
        },
    };
    // Signal handlers exist before the proxy reports ready, so an early SIGTERM drains and an
    // early SIGHUP reloads instead of ending the process.
    let mut termination = Termination::install()?;
    let watcher = args.config.clone().map(FileWatcher::new);
    // Ready once the first complete config and, with an identity, the first certificate are in.
    let certificate = async {
        if let Some(identity) = &identity {
            identity.ready().await;
        }
    };
    let (snapshot, health) = match discovery.as_mut() {
        Some(client) => tokio::select! {
            (first, ()) = async { tokio::join!(client.first_config(health), certificate) } => first,
            () = termination.wait() => return Ok(()),
        },
        None => (snapshot, health),
    };
    let proxy = Arc::new(Proxy::start(snapshot, listeners, settings, metrics).await?);
    let state = proxy.state().clone();
    for (listener, port) in [
        (admin, AdminPort::Admin(Some(set_log_level))),
        (health, AdminPort::Health),
        (metrics_listener, AdminPort::Metrics),
    ] {
        if let Some(listener) = listener {
            tokio::spawn(admin::serve(listener, port, state.clone()));
        }
    }
    if let Some(watcher) = watcher {
        let proxy = proxy.clone();
        tokio::spawn(async move { proxy.follow_file(watcher).await });
    }
    if let Some(client) = discovery {
        let proxy = proxy.clone();
        tokio::spawn(async move { client.follow(&proxy).await });
    }
    tracing::info!("mesh-proxy ready");

    termination.wait().await;
    match proxy.drain(args.drain_timeout).await {
        DrainOutcome::Complete => tracing::info!("drained; exiting"),
        DrainOutcome::DeadlineReached(open) => {
            tracing::warn!(
                open,
                "drain deadline reached; closing remaining connections"
            )
        }
    }
    Ok(())
}

/// `--wait-ready`: nothing but the wait for the sidecar's health port.
async fn wait(health_addr: &str, limit: Duration) -> anyhow::Result<()> {
    let addr = wait_ready::dial_addr(health_addr)?;
    wait_ready::wait_ready(addr, limit).await?;
    tracing::info!(%addr, "mesh-proxy is ready");
    Ok(())
}

async fn bind(what: &str, addr: &str) -> anyhow::Result<Option<TcpListener>> {
    if addr == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = addr.parse().map_err(|_| {
        anyhow::anyhow!("--{what}-addr {addr:?} is not an ip:port address or \"off\"")
    })?;
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot bind the {what} listener on {addr}: {error} (is another proxy running?)"
        )
    })?;
    tracing::info!(%addr, "{what} listener bound");
    Ok(Some(listener))
}

/// SIGTERM and SIGINT, listened for from the moment it is installed.
struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Termination {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Termination {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

fn init_logging(filter: &str) -> SetLogLevel {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|error| {
        eprintln!("mesh-proxy: invalid log filter {filter:?} ({error}); using \"info\"");
        EnvFilter::new("info")
    });
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    Arc::new(move |new: &str| {
        let parsed =
            EnvFilter::try_new(new).map_err(|e| format!("invalid log filter {new:?}: {e}"))?;
        handle.reload(parsed).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        <Args as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn wait_ready_alone_parses_without_discovery_or_config() {
        let args = Args::try_parse_from(["mesh-proxy", "--wait-ready=600s"]).expect("parses");
        assert_eq!(args.wait_ready, Some(Duration::from_secs(600)));
        assert_eq!(args.health_addr, "0.0.0.0:15021");
        assert!(args.config.is_none());
        assert!(args.discovery.discovery_address.is_none());
    }
}
