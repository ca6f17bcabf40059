//! `mesh-control-plane`: watches Kubernetes (or a folder of manifests), translates, and serves
//! proxies over the discovery API (15012), with monitoring on 15014.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use mesh_control_plane::{
    ca::{CaArgs, CaService, credential::Authenticator, secret, workload::WorkloadIssuer},
    feedback,
    folder::{Folder, POLL_INTERVAL},
    gateway_workload,
    injection::{self, ca_bundle, root_configmaps},
    kube_source::KubeSource,
    monitoring::{self, Monitoring},
    publish::{self, Debounce, PublishMetrics},
    store::Store,
    translate::{MeshSettings, OutboundTrafficPolicy, TracingProviders},
    xds::{self, ConfigSnapshot, DiscoveryServer},
};
use mesh_injector::InjectionSettings;
use tokio::sync::watch;

/// The mesh control plane.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Read manifests from this folder (watched for changes) instead of a Kubernetes API server;
    /// repeat to layer folders, a later folder's object replacing an earlier one's.
    #[arg(long, env = "MESH_MANIFESTS", value_delimiter = ',')]
    manifests: Vec<PathBuf>,
    /// The discovery API (gRPC) address.
    #[arg(long, env = "MESH_XDS_ADDR", default_value = "0.0.0.0:15012")]
    xds_addr: SocketAddr,
    /// The monitoring address (/metrics, /debug/syncz, /healthz/ready).
    #[arg(long, env = "MESH_MONITORING_ADDR", default_value = "0.0.0.0:15014")]
    monitoring_addr: SocketAddr,
    /// Quiet time after a change before translating, in milliseconds.
    #[arg(long, env = "MESH_DEBOUNCE_MS", default_value_t = 100)]
    debounce_ms: u64,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "MESH_LOG", default_value = "info")]
    log: String,
    /// The namespace the control plane runs in (its Secret lives there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-system")]
    namespace: String,
    /// Serve the sidecar injection webhook (HTTPS, POST /inject) on this address, e.g.
    /// 0.0.0.0:15017.
    #[arg(long, env = "MESH_WEBHOOK_ADDR")]
    webhook_addr: Option<SocketAddr>,
    /// The MutatingWebhookConfiguration whose caBundle is kept at the mesh root (needs a
    /// Kubernetes API server).
    #[arg(long, env = "MESH_WEBHOOK_CONFIG", conflicts_with = "manifests")]
    webhook_config: Option<String>,
    /// Trace collectors Telemetry objects may name as providers: NAME=HOST:PORT, e.g.
    /// otel=otel-collector.observability:4317 (comma-separated or repeated).
    #[arg(long, env = "MESH_TRACING_PROVIDERS", value_delimiter = ',')]
    tracing_provider: Vec<String>,
    /// What sidecars do with traffic to destinations outside the registry (Services and
    /// ServiceEntries), unless a Sidecar resource says otherwise: ALLOW_ANY passes it through,
    /// REGISTRY_ONLY refuses it.
    #[arg(
        long,
        env = "MESH_OUTBOUND_TRAFFIC_POLICY",
        default_value = "ALLOW_ANY"
    )]
    outbound_traffic_policy: OutboundTrafficPolicy,
    /// The injection settings (the chart's settings.yaml); built-in defaults otherwise.
    #[arg(long, env = "MESH_INJECTOR_SETTINGS")]
    injector_settings: Option<PathBuf>,
    /// The mesh root CA and the discovery port's TLS.
    #[command(flatten)]
    ca: CaArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (store, store_rx) = watch::channel(Store::new());
    let (snapshots, snapshots_rx) = watch::channel(Arc::new(ConfigSnapshot::pending()));
    let (reviews, reviews_rx) = watch::channel(Arc::new(publish::Review::default()));
    let server = DiscoveryServer::new(snapshots_rx.clone()).context("discovery server")?;
    let registry = prometheus::Registry::new();
    let ca_registry = registry.clone();
    let metrics = PublishMetrics::new(&registry).context("metrics")?;
    let debounce = Debounce {
        quiet: Duration::from_millis(args.debounce_ms),
        ..Debounce::default()
    };

    // Kubernetes mode when no folder is given.
    let client = if args.manifests.is_empty() {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (use --manifests DIR without a cluster)")?;
        Some(client)
    } else {
        None
    };
    let root = Arc::new(match (&args.ca.ca_secret, &client) {
        (Some(name), Some(client)) => {
            let root = secret::load_or_create(client.clone(), &args.namespace, name).await?;
            if let Some(path) = &args.ca.root_cert_out {
                root.write_cert(path)?;
            }
            root
        }
        (Some(_), None) => {
            anyhow::bail!("--ca-secret needs a Kubernetes API server, not --manifests")
        }
        (None, _) => args.ca.root().context("the mesh root CA")?,
    });
    // What the injector adds to pods: also how a Gateway's proxy pods are made.
    let settings = match &args.injector_settings {
        Some(path) => InjectionSettings::load(path)?,
        None => InjectionSettings::default(),
    };
    let minor = match &client {
        Some(client) => client
            .apiserver_version()
            .await
            .ok()
            .and_then(|v| mesh_injector::settings::parse_minor(&v.minor)),
        None => None,
    };
    let injection_config = settings.for_cluster(minor);
    if let Some(address) = args.webhook_addr {
        let config = injection_config.clone();
        injection::spawn_webhook(address, &root, &args.ca.xds_sans, config, store_rx.clone())
            .await?;
    }
    if let Some(client) = &client {
        let pem = root.cert_pem().to_owned();
        tokio::spawn(root_configmaps::publish_root_configmaps(
            client.clone(),
            pem.clone(),
            store_rx.clone(),
        ));
        if let Some(name) = &args.webhook_config {
            tokio::spawn(ca_bundle::keep_ca_bundle(client.clone(), name.clone(), pem));
        }
    }
    let tls = args
        .ca
        .discovery_tls(&root)
        .context("the discovery port's TLS")?;
    let xds = tokio::net::TcpListener::bind(args.xds_addr)
        .await
        .with_context(|| format!("cannot bind the discovery port {}", args.xds_addr))?;
    let monitoring_listener = monitoring::bind(args.monitoring_addr).await?;
    let (ready_tx, ready) = watch::channel(false);
    let mut published = snapshots_rx.clone();
    tokio::spawn(async move {
        if published.wait_for(|s| s.generation() > 0).await.is_ok() {
            ready_tx.send_replace(true);
        }
    });
    tokio::spawn(monitoring::serve(
        monitoring_listener,
        Monitoring {
            server: server.clone(),
            registry,
            ready,
        },
    ));

    let lab_tokens = args.ca.lab_tokens().context("--lab-token-key")?;
    let issuer = Arc::new(WorkloadIssuer::new(root, args.ca.workload_cert_ttl));
    let store_for_ca = store_rx.clone();

    // Sources feed the store; the publisher turns settled changes into snapshots.
    let (_kube, authenticator) = match args.manifests {
        dirs if !dirs.is_empty() => {
            tracing::info!(folders = ?dirs, "reading manifests from folders");
            let folder = Folder::layered(dirs);
            // Each problem is logged once while it lasts: a folder may change often (the lab
            // rewrites its cluster folder on every readiness change).
            let mut logged = Vec::new();
            tokio::spawn(folder.watch(POLL_INTERVAL, move |loaded| {
                for problem in loaded.problems.iter().filter(|p| !logged.contains(*p)) {
                    publish::log_problem(problem);
                }
                logged.clone_from(&loaded.problems);
                store.send_if_modified(|s| loaded.apply_to(s));
            }));
            (None, lab_tokens.map(Authenticator::LabTokens))
        }
        _ => {
            let client = client.context("a Kubernetes client in Kubernetes mode")?;
            tokio::spawn(feedback::run(client.clone(), reviews_rx));
            tokio::spawn(gateway_workload::controller::run(
                client.clone(),
                injection_config,
                store_rx.clone(),
            ));
            let authenticator = match lab_tokens {
                Some(key) => Authenticator::LabTokens(key),
                None => Authenticator::TokenReview(client.clone()),
            };
            let source =
                KubeSource::spawn(client, store, kube::runtime::watcher::Config::default());
            (Some(source), Some(authenticator))
        }
    };
    let ca = match authenticator {
        Some(authenticator) => Some(
            CaService::new(issuer, authenticator, store_for_ca, &ca_registry)
                .context("CA metrics")?,
        ),
        None => {
            tracing::warn!(
                "no way to check CA callers (folder mode without --lab-token-key): the CA does not issue workload certificates"
            );
            None
        }
    };
    let settings = MeshSettings {
        tracing_providers: TracingProviders::parse(&args.tracing_provider)
            .map_err(anyhow::Error::msg)?,
        outbound_traffic_policy: args.outbound_traffic_policy,
    };
    tokio::spawn(publish::run(
        store_rx, snapshots, reviews, debounce, metrics, settings,
    ));

    tracing::info!(xds = %args.xds_addr, tls = tls.is_some(), monitoring = %args.monitoring_addr,
        "serving");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    xds::serve(server, ca, xds, tls, async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping");
    })
    .await
    .context("discovery server")
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        <super::Args as clap::CommandFactory>::command().debug_assert();
    }
}
