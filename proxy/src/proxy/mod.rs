//! The running proxy: shared state, the capture and explicit listeners, config changes applied
//! all-or-nothing, and draining on shutdown.
//!
//! A connection's life (`connection`): accepted → handed to a worker thread (`workers`) →
//! original destination read (captured listeners) → listener config found → protocol taken from
//! config or detected → served as HTTP (`http`) or forwarded as opaque TCP (`tcp`).

mod connection;
mod explicit;
mod mesh_tls;
mod workers;

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::net::TcpListener;
use tokio_util::{
    sync::{CancellationToken, DropGuard},
    task::TaskTracker,
};

pub use self::mesh_tls::Peer;

use self::{
    connection::{Kind, accept_loop},
    explicit::ExplicitListeners,
    workers::Workers,
};
use crate::{
    access_log::AccessLog,
    app_probe::AppProbes,
    config::{ConfigError, ConfigStore, EncodedConfig, FileWatcher, Snapshot},
    detect::DetectConfig,
    dns::{self, DnsSettings, Resolved},
    identity::IdentityStore,
    metrics::Metrics,
    tls::MeshTls,
    trace::{Tracer, TracingSettings},
    workload::Workload,
};

/// Settings that come from the command line rather than the config file.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Limits on protocol detection.
    pub detect: DetectConfig,
    /// Threads serving connections, each with its own runtime and upstream pools; 0 serves
    /// them on the runtime that starts the proxy.
    pub workers: usize,
    /// The workload certificate, when the proxy has an identity (mutual TLS with peers).
    pub identity: Option<IdentityStore>,
    /// The app's probes, served at `/app-health/...` on the health port.
    pub app_probes: Option<Arc<AppProbes>>,
    /// The workload the proxy serves, as its metrics name it.
    pub workload: Arc<Workload>,
    /// Write an access log line per request on stdout (unless the config's telemetry says
    /// otherwise).
    pub access_log: bool,
    /// Where trace spans go and how many traces are sampled (unless the config's telemetry
    /// says otherwise).
    pub tracing: TracingSettings,
    /// The pod's name (for trace spans).
    pub pod_name: String,
    /// Where DNS clusters' names are resolved.
    pub dns: DnsSettings,
}

/// The capture sockets the proxy serves; tests pass listeners bound to port 0 or none.
#[derive(Default)]
pub struct ProxyListeners {
    /// Captured outbound traffic (15001).
    pub outbound: Option<TcpListener>,
    /// Captured inbound traffic (15006).
    pub inbound: Option<TcpListener>,
}

/// State shared by every connection.
pub struct ProxyState {
    /// The config in force.
    pub config: ConfigStore,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Command-line settings.
    pub settings: Settings,
    /// Fires when the proxy starts draining.
    pub drain: CancellationToken,
    /// Every connection task, so draining can wait for them.
    pub tasks: TaskTracker,
    /// Mesh TLS, when the proxy has an identity.
    pub mesh_tls: Option<Arc<MeshTls>>,
    /// Pools every worker shares, for clusters that limit their connections: an idle
    /// connection must be usable by a request waiting on any worker.
    pub limited_pools: Arc<crate::http::Pools>,
    /// The `x-mesh-peer-metadata` value that introduces this workload to the sidecars it
    /// calls in mesh TLS; `None` without mesh TLS.
    pub peer_metadata: Option<http::HeaderValue>,
    /// The access log's writer, started when first needed.
    access_log: OnceLock<Option<Arc<AccessLog>>>,
    /// The tracer.
    pub tracer: Tracer,
    /// Snapshots are swapped in one at a time (config changes and DNS answers).
    applying: tokio::sync::Mutex<()>,
    workers: Workers,
    ready: AtomicBool,
}

/// A started proxy.
pub struct Proxy {
    state: Arc<ProxyState>,
    explicit: ExplicitListeners,
    _workers: DropGuard,
}

/// How a drain ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished.
    Complete,
    /// The deadline passed with this many connections still open.
    DeadlineReached(usize),
}

// === impl Proxy ===

impl Proxy {
    /// Starts serving `listeners` and the config's explicit listeners; fails, naming the
    /// listener, when one cannot be bound.
    pub async fn start(
        snapshot: Snapshot,
        listeners: ProxyListeners,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Proxy> {
        let bound = ExplicitListeners::bind_new(&snapshot, &[])
            .await
            .map_err(|errors| anyhow::anyhow!(errors.join("; ")))?;
        let workers = Workers::start(settings.workers)
            .map_err(|error| anyhow::anyhow!("cannot start the worker threads: {error}"))?;
        let stop_workers = workers.stop_on_drop();
        let mesh_tls = match &settings.identity {
            Some(identity) => Some(Arc::new(
                MeshTls::new(identity.clone())
                    .map_err(|error| anyhow::anyhow!("cannot set up mesh TLS: {error}"))?,
            )),
            None => None,
        };
        let peer_metadata = mesh_tls.as_ref().and_then(|_| settings.workload.header());
        let access_log = OnceLock::new();
        if settings.access_log {
            let log = AccessLog::start(metrics.access_log_dropped.clone())
                .map_err(|error| anyhow::anyhow!("cannot start the access log: {error}"))?;
            let _ = access_log.set(Some(Arc::new(log)));
        }
        let tracer = Tracer::new(
            &settings.tracing,
            &settings.workload,
            &settings.pod_name,
            metrics.span_counters(),
        )?;
        let mut snapshot = snapshot;
        snapshot.bind_telemetry(&tracer)?;
        let state = Arc::new(ProxyState {
            tracer,
            access_log,
            peer_metadata,
            mesh_tls,
            config: ConfigStore::new(snapshot, metrics.clone()),
            metrics,
            settings,
            drain: CancellationToken::new(),
            tasks: TaskTracker::new(),
            limited_pools: Arc::default(),
            workers,
            applying: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
        });
        let proxy = Proxy {
            explicit: ExplicitListeners::default(),
            state: state.clone(),
            _workers: stop_workers,
        };
        tokio::spawn(dns::run(state.clone()));
        for (listener, kind) in [
            (listeners.outbound, Kind::Outbound),
            (listeners.inbound, Kind::Inbound),
        ] {
            if let Some(listener) = listener {
                tokio::spawn(accept_loop(
                    state.clone(),
                    listener,
                    kind,
                    state.drain.clone(),
                ));
            }
        }
        proxy.explicit.start(&state, bound);
        state.ready.store(true, Ordering::Release);
        Ok(proxy)
    }

    /// Shared state (config store, metrics).
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    /// Where the explicit listener configured at `addr` is bound (they differ for port 0).
    pub fn explicit_bound_addr(&self, addr: SocketAddr) -> Option<SocketAddr> {
        self.explicit.bound_addr(addr)
    }

    /// Validates `config`, binds any new explicit listener, and only if all of that succeeds
    /// swaps the config in; otherwise the config in force stays untouched.
    pub async fn apply(
        &self,
        config: EncodedConfig,
        origin: &str,
    ) -> Result<Arc<Snapshot>, ConfigError> {
        let _one_at_a_time = self.state.applying.lock().await;
        let invalid = |errors| {
            self.state.metrics.config_reload(false);
            ConfigError::Invalid {
                origin: origin.to_owned(),
                errors,
            }
        };
        let mut snapshot = self.state.config.compile(config).map_err(invalid)?;
        snapshot
            .bind_telemetry(&self.state.tracer)
            .map_err(|error| invalid(vec![error.to_string()]))?;
        let bound = ExplicitListeners::bind_new(&snapshot, &self.explicit.running())
            .await
            .map_err(invalid)?;
        let snapshot = self.state.config.commit(snapshot, origin);
        self.explicit.start(&self.state, bound);
        self.explicit.stop_removed(&snapshot);
        self.state.prune_pools(&snapshot);
        Ok(snapshot)
    }

    /// Applies every change `watcher` reports until the proxy drains. A bad file is reported
    /// and the last good config stays in force.
    pub async fn follow_file(&self, mut watcher: FileWatcher) {
        loop {
            let update = tokio::select! {
                _ = self.state.drain.cancelled() => return,
                update = watcher.next() => update,
            };
            let origin = watcher.path().display().to_string();
            let result = match update {
                Ok(config) => self
                    .apply(EncodedConfig::encode(&config), &origin)
                    .await
                    .map(drop),
                Err(error) => {
                    self.state.metrics.config_reload(false);
                    Err(error)
                }
            };
            if let Err(error) = result {
                tracing::error!("{error}; keeping the config in force");
            }
        }
    }

    /// Stops accepting, lets in-flight work finish up to `deadline`, and reports how it ended.
    pub async fn drain(&self, deadline: Duration) -> DrainOutcome {
        self.state.ready.store(false, Ordering::Release);
        self.state.drain.cancel();
        self.state.tasks.close();
        tracing::info!(open = self.state.tasks.len(), ?deadline, "draining");
        match tokio::time::timeout(deadline, self.state.tasks.wait()).await {
            Ok(()) => DrainOutcome::Complete,
            Err(_) => DrainOutcome::DeadlineReached(self.state.tasks.len()),
        }
    }
}

// === impl ProxyState ===

impl ProxyState {
    /// The access log's writer, started on first use; `None` if its thread cannot start.
    pub fn access_log(&self) -> Option<&Arc<AccessLog>> {
        let log = self.access_log.get_or_init(|| {
            match AccessLog::start(self.metrics.access_log_dropped.clone()) {
                Ok(log) => Some(Arc::new(log)),
                Err(error) => {
                    tracing::error!(%error, "cannot start the access log; no lines are written");
                    None
                }
            }
        });
        log.as_ref()
    }

    /// Rebuilds the snapshot in force with new addresses for its DNS clusters' names.
    pub(crate) async fn apply_resolved(&self, resolved: Resolved) {
        let _one_at_a_time = self.applying.lock().await;
        let current = self.config.load();
        let compiled = Snapshot::compile_with(current.source().clone(), Some(&current), resolved)
            .and_then(|mut snapshot| {
                (snapshot.bind_telemetry(&self.tracer)).map_err(|error| vec![error.to_string()])?;
                Ok(snapshot)
            });
        match compiled {
            Ok(snapshot) => {
                let snapshot = self.config.commit(snapshot, "DNS answers");
                self.prune_pools(&snapshot);
            }
            // The config compiled before; only its DNS clusters' endpoints differ.
            Err(errors) => {
                tracing::error!(?errors, "cannot rebuild the config with new DNS answers")
            }
        }
    }

    /// Closes pooled connections to endpoints `snapshot` no longer has.
    fn prune_pools(&self, snapshot: &Snapshot) {
        let keep: HashSet<SocketAddr> = snapshot.endpoint_addrs().collect();
        let shared = std::iter::once(&*self.limited_pools);
        for pools in self.workers.pools().chain(shared) {
            // Connections to the local app serve every config.
            pools.retain(|addr, source| {
                keep.contains(&addr) || source.is_some() || addr.ip().is_loopback()
            });
        }
    }

    /// Whether the proxy is serving and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
