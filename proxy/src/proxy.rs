//! The running proxy: shared state, accept loops for the capture and explicit listeners, what
//! happens to each accepted connection, and draining on shutdown.
//!
//! A connection's life: accepted → original destination read (captured listeners) → listener
//! config found → protocol taken from config or detected → served as HTTP (`http`) or forwarded
//! as opaque TCP (`tcp`). Unknown outbound destinations pass through to where the client meant.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    addr::{ClientAddr, OrigDstAddr},
    config::{AppProtocol, Cluster, ConfigStore, ListenerConfig, Snapshot},
    detect::{self, DetectConfig, PrefixedIo},
    http::{HttpConn, HttpTarget, Pools, UpstreamVersion, serve_connection},
    metrics::{Direction, Metrics},
    orig_dst::orig_dst,
    tcp,
};

/// Settings that come from the command line rather than the config file.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Limits on protocol detection.
    pub detect: DetectConfig,
    /// Where inbound traffic is delivered: this IP and the original destination port.
    pub inbound_app_ip: IpAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            detect: DetectConfig::default(),
            inbound_app_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// The sockets the proxy serves; tests pass listeners bound to port 0.
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
    pub config: Arc<ConfigStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Upstream connection pools.
    pub pools: Pools,
    /// Command-line settings.
    pub settings: Settings,
    /// Fires when the proxy starts draining.
    pub drain: CancellationToken,
    /// Every connection task, so draining can wait for them.
    pub tasks: TaskTracker,
    ready: AtomicBool,
}

/// A started proxy.
pub struct Proxy {
    state: Arc<ProxyState>,
    /// Explicit listeners by configured address: how to stop each, and where it is bound
    /// (they differ when config asks for port 0).
    explicit: Arc<parking_lot::Mutex<HashMap<SocketAddr, (CancellationToken, SocketAddr)>>>,
}

/// How a drain ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished.
    Complete,
    /// The deadline passed with this many connections still open.
    DeadlineReached(usize),
}

#[derive(Clone, Copy)]
enum Kind {
    Outbound,
    Inbound,
    Explicit(SocketAddr),
}

// === impl Proxy ===

impl Proxy {
    /// Starts serving `listeners` and the config's explicit listeners.
    pub async fn start(
        snapshot: Snapshot,
        listeners: ProxyListeners,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Proxy> {
        let config = ConfigStore::new(snapshot, metrics.clone());
        let state = Arc::new(ProxyState {
            config,
            metrics,
            pools: Pools::default(),
            settings,
            drain: CancellationToken::new(),
            tasks: TaskTracker::new(),
            ready: AtomicBool::new(false),
        });
        let proxy = Proxy {
            state: state.clone(),
            explicit: Default::default(),
        };
        if let Some(listener) = listeners.outbound {
            tokio::spawn(accept_loop(
                state.clone(),
                listener,
                Kind::Outbound,
                state.drain.clone(),
            ));
        }
        if let Some(listener) = listeners.inbound {
            tokio::spawn(accept_loop(
                state.clone(),
                listener,
                Kind::Inbound,
                state.drain.clone(),
            ));
        }
        let initial = state.config.load();
        let errors = proxy.reconcile_explicit(&initial).await;
        if !errors.is_empty() {
            anyhow::bail!(errors.join("; "));
        }
        tokio::spawn(proxy.clone_handle().follow_config());
        state.ready.store(true, Ordering::Release);
        Ok(proxy)
    }

    /// Where the explicit listener configured at `addr` is bound.
    pub fn explicit_bound_addr(&self, addr: SocketAddr) -> Option<SocketAddr> {
        self.explicit.lock().get(&addr).map(|(_, bound)| *bound)
    }

    /// Shared state (config store, metrics).
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
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

    fn clone_handle(&self) -> Proxy {
        Proxy {
            state: self.state.clone(),
            explicit: self.explicit.clone(),
        }
    }

    /// Binds explicit listeners new in `snapshot` and stops those it no longer has.
    async fn reconcile_explicit(&self, snapshot: &Snapshot) -> Vec<String> {
        let wanted: Vec<SocketAddr> = snapshot
            .explicit_listeners()
            .iter()
            .map(|l| l.addr)
            .collect();
        let mut errors = Vec::new();
        let running: Vec<SocketAddr> = self.explicit.lock().keys().copied().collect();
        for addr in running.iter().filter(|a| !wanted.contains(a)) {
            if let Some((stop, _)) = self.explicit.lock().remove(addr) {
                tracing::info!(%addr, "explicit listener removed from config; no longer accepting");
                stop.cancel();
            }
        }
        for addr in wanted.into_iter().filter(|a| !running.contains(a)) {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let stop = self.state.drain.child_token();
                    let bound = listener.local_addr().unwrap_or(addr);
                    tracing::info!(%addr, %bound, "explicit listener bound");
                    self.explicit.lock().insert(addr, (stop.clone(), bound));
                    tokio::spawn(accept_loop(
                        self.state.clone(),
                        listener,
                        Kind::Explicit(addr),
                        stop,
                    ));
                }
                Err(error) => errors.push(format!("cannot bind explicit listener {addr}: {error}")),
            }
        }
        errors
    }

    /// Applies each new config version to the explicit listeners and the connection pools.
    async fn follow_config(self) {
        let mut versions = self.state.config.subscribe();
        while versions.changed().await.is_ok() {
            let snapshot = self.state.config.load();
            for error in self.reconcile_explicit(&snapshot).await {
                tracing::error!("{error}");
            }
            let keep: std::collections::HashSet<SocketAddr> = snapshot.endpoint_addrs().collect();
            let app_ip = self.state.settings.inbound_app_ip;
            self.state
                .pools
                .retain(|addr| keep.contains(&addr) || addr.ip() == app_ip);
        }
    }
}

// === impl ProxyState ===

impl ProxyState {
    /// Whether the proxy is serving and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

async fn accept_loop(
    state: Arc<ProxyState>,
    listener: TcpListener,
    kind: Kind,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let state2 = state.clone();
                state
                    .tasks
                    .spawn(handle_connection(state2, stream, ClientAddr(peer), kind));
            }
            Err(error) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_connection(
    state: Arc<ProxyState>,
    stream: TcpStream,
    client: ClientAddr,
    kind: Kind,
) {
    let _ = stream.set_nodelay(true);
    let direction = match kind {
        Kind::Outbound => Direction::Outbound,
        Kind::Inbound => Direction::Inbound,
        Kind::Explicit(_) => Direction::Explicit,
    };
    let active = state.metrics.downstream_active(direction);
    active.inc();
    let snapshot = state.config.load();
    match kind {
        Kind::Outbound => outbound(&state, &snapshot, stream, client).await,
        Kind::Inbound => inbound(&state, &snapshot, stream, client).await,
        Kind::Explicit(addr) => match snapshot.explicit_listener(addr) {
            Some(listener) => serve_listener(&state, listener.clone(), stream, client, None).await,
            None => tracing::debug!(%addr, "explicit listener no longer configured"),
        },
    }
    active.dec();
}

async fn outbound(
    state: &Arc<ProxyState>,
    snapshot: &Snapshot,
    stream: TcpStream,
    client: ClientAddr,
) {
    let dst = match orig_dst(&stream) {
        Ok(dst) => dst,
        Err(error) => {
            tracing::info!(%client, %error, "outbound connection was not redirected by iptables; closing it");
            return;
        }
    };
    if stream.local_addr().is_ok_and(|local| local == dst.0) {
        tracing::warn!(%client, %dst, "connection addressed to the capture port itself; closing it to avoid a loop");
        return;
    }
    match snapshot.outbound_listener(dst) {
        Some(listener) => serve_listener(state, listener.clone(), stream, client, None).await,
        None => {
            let passthrough = Arc::new(Cluster::direct("PassthroughCluster".to_owned(), dst.0));
            tcp::forward(stream, passthrough, Direction::Outbound, &state.metrics).await;
        }
    }
}

async fn inbound(
    state: &Arc<ProxyState>,
    snapshot: &Snapshot,
    stream: TcpStream,
    client: ClientAddr,
) {
    let dst = match orig_dst(&stream) {
        Ok(dst) => dst,
        Err(error) => {
            tracing::info!(%client, %error, "inbound connection was not redirected by iptables; closing it");
            return;
        }
    };
    match snapshot.inbound_listener(dst.0.port()) {
        Some(listener) => serve_listener(state, listener.clone(), stream, client, Some(dst)).await,
        None => {
            let app = local_app(state, dst);
            let protocol = detect_protocol(state, None, stream).await;
            serve_protocol(
                state,
                protocol,
                Direction::Inbound,
                client,
                || HttpTarget::Cluster(app.clone()),
                || Some(app.clone()),
            )
            .await;
        }
    }
}

/// The cluster of the application behind an inbound port.
fn local_app(state: &ProxyState, dst: OrigDstAddr) -> Arc<Cluster> {
    let port = dst.0.port();
    Arc::new(Cluster::direct(
        format!("inbound|{port}"),
        SocketAddr::new(state.settings.inbound_app_ip, port),
    ))
}

async fn serve_listener(
    state: &Arc<ProxyState>,
    listener: Arc<ListenerConfig>,
    stream: TcpStream,
    client: ClientAddr,
    inbound_dst: Option<OrigDstAddr>,
) {
    let snapshot = state.config.load();
    let protocol = detect_protocol(state, listener.protocol, stream).await;
    let http_target = || match (&listener.route_config, inbound_dst) {
        (Some(name), _) => HttpTarget::Routes(name.clone()),
        (None, Some(dst)) => HttpTarget::Cluster(local_app(state, dst)),
        (None, None) => HttpTarget::Routes(String::new()),
    };
    let sni = match &protocol {
        Detected::Tls(_, sni) => sni.clone(),
        _ => None,
    };
    let tcp_cluster = || match (&listener.tcp, inbound_dst) {
        (Some(routing), _) => routing
            .pick(sni.as_deref(), fastrand::u32(..))
            .and_then(|name| snapshot.cluster(name).cloned()),
        (None, Some(dst)) => Some(local_app(state, dst)),
        (None, None) => None,
    };
    serve_protocol(
        state,
        protocol,
        listener.direction,
        client,
        http_target,
        tcp_cluster,
    )
    .await;
}

/// A connection whose protocol is known, with the bytes read while detecting it.
enum Detected {
    Http(UpstreamVersion, PrefixedIo<TcpStream>),
    Tls(PrefixedIo<TcpStream>, Option<String>),
    Opaque(PrefixedIo<TcpStream>),
}

async fn detect_protocol(
    state: &ProxyState,
    configured: Option<AppProtocol>,
    mut stream: TcpStream,
) -> Detected {
    let unread = |stream| PrefixedIo::new(bytes::Bytes::new(), stream);
    match configured {
        Some(AppProtocol::Http1) => return Detected::Http(UpstreamVersion::Http1, unread(stream)),
        Some(AppProtocol::Http2) => return Detected::Http(UpstreamVersion::Http2, unread(stream)),
        Some(AppProtocol::Tcp) => return Detected::Opaque(unread(stream)),
        Some(AppProtocol::Tls) | None => {}
    }
    let (protocol, prefix) = match detect::detect(&mut stream, &state.settings.detect).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, "reading the first bytes failed");
            (detect::Protocol::Opaque, bytes::Bytes::new())
        }
    };
    let io = PrefixedIo::new(prefix, stream);
    match protocol {
        detect::Protocol::Http1 if configured.is_none() => {
            Detected::Http(UpstreamVersion::Http1, io)
        }
        detect::Protocol::Http2 if configured.is_none() => {
            Detected::Http(UpstreamVersion::Http2, io)
        }
        detect::Protocol::Tls { sni } => Detected::Tls(io, sni),
        _ => Detected::Opaque(io),
    }
}

async fn serve_protocol(
    state: &Arc<ProxyState>,
    protocol: Detected,
    direction: Direction,
    client: ClientAddr,
    http_target: impl FnOnce() -> HttpTarget,
    tcp_cluster: impl FnOnce() -> Option<Arc<Cluster>>,
) {
    match protocol {
        Detected::Http(version, io) => {
            let conn = Arc::new(HttpConn {
                state: state.clone(),
                client,
                direction,
                target: http_target(),
                version,
            });
            serve_connection(io, conn, state.drain.clone()).await;
        }
        Detected::Tls(io, _) | Detected::Opaque(io) => match tcp_cluster() {
            Some(cluster) => tcp::forward(io, cluster, direction, &state.metrics).await,
            None => tracing::info!(%client, "no TCP route for this connection; closing it"),
        },
    }
}
