//! What happens to each accepted connection: handed to a worker, then original destination,
//! listener, protocol, then HTTP serving or TCP forwarding. Unknown outbound destinations pass
//! through unchanged.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::ProxyState;
use crate::{
    addr::{ClientAddr, OrigDstAddr},
    config::{AppProtocol, Cluster, ListenerConfig, Snapshot},
    detect::{self, PrefixedIo},
    http::{HttpConn, HttpTarget, Pools, UpstreamVersion, serve_connection},
    metrics::Direction,
    orig_dst::orig_dst,
    tcp,
};

/// Which listener accepted a connection.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Outbound,
    Inbound,
    /// Keyed by the address in config (which may say port 0).
    Explicit(SocketAddr),
}

/// Accepts connections until `stop` fires; each is served on its own task, on the next worker.
pub(super) async fn accept_loop(
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
        // The socket leaves this runtime's reactor and joins the worker's.
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer))) {
            Ok((stream, peer)) => {
                let worker = state.workers.next();
                let pools = worker.pools().clone();
                let connection =
                    handle_connection(state.clone(), pools, stream, ClientAddr(peer), kind);
                worker.spawn(state.tasks.track_future(connection));
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
    pools: Arc<Pools>,
    stream: std::net::TcpStream,
    client: ClientAddr,
    kind: Kind,
) {
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%client, %error, "cannot serve an accepted connection");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let direction = match kind {
        Kind::Outbound => Direction::Outbound,
        Kind::Inbound => Direction::Inbound,
        Kind::Explicit(_) => Direction::Explicit,
    };
    let _active = ActiveGuard::new(state.metrics.downstream_active(direction));
    let snapshot = state.config.load();
    match kind {
        Kind::Outbound | Kind::Inbound => {
            let Some(dst) = redirected_dst(&stream, client, direction) else {
                return;
            };
            if direction == Direction::Outbound {
                outbound(&state, &pools, &snapshot, stream, client, dst).await;
            } else {
                inbound(&state, &pools, &snapshot, stream, client, dst).await;
            }
        }
        Kind::Explicit(addr) => match snapshot.explicit_listener(addr) {
            Some(listener) => {
                serve_listener(&state, &pools, listener.clone(), stream, client, None).await
            }
            None => tracing::debug!(%addr, "explicit listener no longer configured"),
        },
    }
}

/// The original destination of a captured connection, or `None` (logged) when it cannot be
/// served: not redirected by iptables, or addressed to the capture port itself (a loop).
fn redirected_dst(
    stream: &TcpStream,
    client: ClientAddr,
    direction: Direction,
) -> Option<OrigDstAddr> {
    let dst = match orig_dst(stream) {
        Ok(dst) => dst,
        Err(error) => {
            tracing::info!(%client, %error, "{} connection was not redirected by iptables; closing it", direction.as_str());
            return None;
        }
    };
    if stream.local_addr().is_ok_and(|local| local == dst.0) {
        tracing::warn!(%client, %dst, "connection addressed to the capture port itself; closing it to avoid a loop");
        return None;
    }
    Some(dst)
}

async fn outbound(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    snapshot: &Snapshot,
    stream: TcpStream,
    client: ClientAddr,
    dst: OrigDstAddr,
) {
    match snapshot.outbound_listener(dst) {
        Some(listener) => {
            serve_listener(state, pools, listener.clone(), stream, client, None).await
        }
        None => {
            let passthrough = Arc::new(Cluster::direct("PassthroughCluster".to_owned(), dst.0));
            tcp::forward(stream, passthrough, Direction::Outbound, &state.metrics).await;
        }
    }
}

async fn inbound(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    snapshot: &Snapshot,
    stream: TcpStream,
    client: ClientAddr,
    dst: OrigDstAddr,
) {
    match snapshot.inbound_listener(dst.0.port()) {
        Some(listener) => {
            serve_listener(state, pools, listener.clone(), stream, client, Some(dst)).await
        }
        None => {
            let app = local_app(state, dst);
            let protocol = detect_protocol(state, None, stream).await;
            serve_protocol(
                state,
                pools,
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
    pools: &Arc<Pools>,
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
        pools,
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
    pools: &Arc<Pools>,
    protocol: Detected,
    direction: Direction,
    client: ClientAddr,
    http_target: impl FnOnce() -> HttpTarget,
    tcp_cluster: impl FnOnce() -> Option<Arc<Cluster>>,
) {
    match protocol {
        Detected::Http(version, io) => {
            let conn = Arc::new(HttpConn::new(
                state.clone(),
                pools.clone(),
                client,
                direction,
                http_target(),
                version,
            ));
            serve_connection(io, conn, state.drain.clone()).await;
        }
        Detected::Tls(io, _) | Detected::Opaque(io) => match tcp_cluster() {
            Some(cluster) => tcp::forward(io, cluster, direction, &state.metrics).await,
            None => tracing::info!(%client, "no TCP route for this connection; closing it"),
        },
    }
}

/// Counts a connection as open for as long as it lives, even if its task panics.
struct ActiveGuard(prometheus::IntGauge);

impl ActiveGuard {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
