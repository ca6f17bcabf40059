//! What happens to each accepted connection: handed to a worker, then original destination,
//! listener, protocol, then HTTP serving or TCP forwarding. Unknown outbound destinations pass
//! through unchanged.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use super::{
    ProxyState,
    mesh_tls::{self, Peer},
};
use crate::{
    addr::{ClientAddr, OrigDstAddr},
    authz::{Decision, Facts},
    config::{AppProtocol, Cluster, ListenerConfig, Snapshot},
    detect::{self, PrefixedIo},
    http::{HttpConn, HttpTarget, Inbound, Pools, Unrouted, UpstreamVersion, serve_connection},
    metrics::Direction,
    orig_dst::orig_dst,
    tcp,
    tls::{Carried, Termination},
};
use mesh_proto::config::v1::{MtlsMode, Unmatched};

/// Where inbound IPv4 traffic is delivered from (the capture rules exempt it).
const INBOUND_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

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
            let listener = listener.clone();
            serve_listener(state, pools, listener, stream, client, Some(dst)).await
        }
        None => {
            let passthrough = passthrough(dst);
            tcp::forward(stream, passthrough, Direction::Outbound, state, None, None).await;
        }
    }
}

/// The one-endpoint cluster of traffic sent on to its original destination.
fn passthrough(dst: OrigDstAddr) -> Arc<Cluster> {
    Arc::new(Cluster::direct(
        "PassthroughCluster".to_owned(),
        dst.0,
        None,
    ))
}

/// What a catch-all outbound listener does with what its routes do not take: pass it through,
/// or refuse it (unless its destination is an endpoint the config knows).
fn unrouted(listener: &ListenerConfig) -> Option<Unrouted> {
    match listener.unmatched? {
        Unmatched::Passthrough => Some(Unrouted::Passthrough),
        Unmatched::Block => Some(Unrouted::Blocked),
    }
}

/// Captured inbound traffic: mesh TLS is terminated first (its peer verified), then the
/// connection is served by the port's listener, or delivered to the app on that port.
async fn inbound(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    snapshot: &Snapshot,
    mut stream: TcpStream,
    client: ClientAddr,
    dst: OrigDstAddr,
) {
    let listener = snapshot.inbound_listener(dst.0.port()).cloned();
    let configured = listener.as_ref().and_then(|l| l.protocol);
    let mode = listener.as_ref().map_or(MtlsMode::Permissive, |l| l.mtls);
    let mesh = match (&state.mesh_tls, mode) {
        (Some(mesh), MtlsMode::Permissive | MtlsMode::Strict) => mesh,
        (None, MtlsMode::Strict) => {
            // No certificate to terminate mesh TLS with: nothing is acceptable.
            return refuse(state, stream, client, dst, "no_identity");
        }
        (_, MtlsMode::Permissive | MtlsMode::Disable) => {
            let protocol = detect_protocol(state, configured, stream).await;
            return serve_inbound(state, pools, listener, protocol, client, dst, None).await;
        }
    };
    // With an identity, the first bytes are always read: they tell mesh TLS from plain text.
    let (sniffed, prefix) = sniff(state, &mut stream).await;
    if matches!(sniffed, detect::Protocol::Tls { .. }) && mesh_tls::is_mesh_client_hello(&prefix) {
        let io = PrefixedIo::new(prefix, stream);
        let Some((tls, carried, peer)) = mesh_tls::accept(mesh, io, client).await else {
            state.metrics.inbound_refused("tls_handshake");
            return;
        };
        let protocol = match carried {
            Carried::Http1 => Detected::Http(UpstreamVersion::Http1, tls),
            Carried::Http2 => Detected::Http(UpstreamVersion::Http2, tls),
            Carried::Tcp => Detected::Opaque(tls),
        };
        let peer = Some(Arc::new(peer));
        return serve_inbound(state, pools, listener, protocol, client, dst, peer).await;
    }
    if mode == MtlsMode::Strict {
        return refuse(state, stream, client, dst, "plaintext");
    }
    let protocol = classify(configured, sniffed, PrefixedIo::new(prefix, stream));
    serve_inbound(state, pools, listener, protocol, client, dst, None).await;
}

/// Resets a connection PeerAuthentication STRICT does not accept (the client sees a reset).
fn refuse(
    state: &ProxyState,
    stream: TcpStream,
    client: ClientAddr,
    dst: OrigDstAddr,
    reason: &'static str,
) {
    state.metrics.inbound_refused(reason);
    tracing::info!(%client, %dst, reason,
        "connection refused: the port's PeerAuthentication is STRICT and the client did not speak mesh mTLS");
    let _ = stream.set_zero_linger();
}

/// Serves an inbound connection whose protocol is known: by its port's listener, else to the
/// app on that port.
async fn serve_inbound<I>(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    listener: Option<Arc<ListenerConfig>>,
    protocol: Detected<I>,
    client: ClientAddr,
    dst: OrigDstAddr,
    peer: Option<Arc<Peer>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = local_app(dst);
    let snapshot = state.config.load();
    let sni = protocol.sni().map(str::to_owned);
    let http_target = || match listener.as_ref().and_then(|l| l.route_config.clone()) {
        Some(name) => HttpTarget::Routes {
            name: Some(name),
            unrouted: None,
        },
        None => HttpTarget::Cluster(app.clone()),
    };
    let tcp_cluster = || match listener.as_ref().and_then(|l| l.tcp.as_ref()) {
        Some(routing) => routing
            .pick(sni.as_deref(), fastrand::u32(..))
            .and_then(|name| snapshot.cluster(name).cloned()),
        None => Some(app.clone()),
    };
    let inbound = Inbound {
        peer,
        authz: listener.as_ref().and_then(|l| l.authz.clone()),
        destination: dst.0,
    };
    if !matches!(protocol, Detected::Http(..)) && !authorize_tcp(state, &inbound, client) {
        return;
    }
    let target = Target {
        direction: Direction::Inbound,
        client,
        inbound: Some(inbound),
        over_tls: false,
        original_dst: None,
    };
    serve_protocol(state, pools, protocol, target, http_target, tcp_cluster).await;
}

/// Whether the port's authorization policies let a TCP connection through (a refusal is
/// logged and counted; the connection is then closed).
fn authorize_tcp(state: &ProxyState, inbound: &Inbound, client: ClientAddr) -> bool {
    let Some(authz) = &inbound.authz else {
        return true;
    };
    let facts = Facts {
        peer: inbound.peer.as_ref().map(|p| &*p.identity),
        source: client.0.ip(),
        destination: inbound.destination,
        http: None,
    };
    match authz.check(&facts) {
        Decision::Allow => true,
        Decision::Deny(policy) => {
            state.metrics.authorization_denied("tcp");
            tracing::info!(%client, destination = %inbound.destination, policy = ?policy,
                "connection denied by authorization policy; closing it");
            false
        }
    }
}

/// The cluster of the application behind an inbound port. IPv4: the address the client
/// meant, connected from 127.0.0.6, which the capture rules let through, so an app listening
/// on its pod IP only is reached and nothing loops back into the inbound capture. IPv6: `[::1]`
/// and the port, as `::6` is not assigned to the pod's loopback.
fn local_app(dst: OrigDstAddr) -> Arc<Cluster> {
    let (addr, source) = match dst.0 {
        SocketAddr::V4(_) => (dst.0, Some(IpAddr::V4(INBOUND_SOURCE))),
        SocketAddr::V6(_) => (
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), dst.0.port()),
            None,
        ),
    };
    Arc::new(Cluster::direct(
        format!("inbound|{}", dst.0.port()),
        addr,
        source,
    ))
}

/// Serves an outbound or explicit listener's connection; `dst` is where a captured one was
/// going.
async fn serve_listener(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    listener: Arc<ListenerConfig>,
    stream: TcpStream,
    client: ClientAddr,
    dst: Option<OrigDstAddr>,
) {
    let snapshot = state.config.load();
    if let Some(tls) = listener.tls.clone() {
        return serve_terminated(state, pools, listener, &tls, stream, client).await;
    }
    let protocol = detect_protocol(state, listener.protocol, stream).await;
    let sni = protocol.sni().map(str::to_owned);
    let tcp_cluster = || match (tcp_route(&listener, &snapshot, sni.as_deref()), dst) {
        (Some(cluster), Some(dst)) if cluster.original_dst => Some(passthrough(dst)),
        (Some(cluster), None) if cluster.original_dst => {
            tracing::info!(%client, cluster = %cluster.name,
                "cluster sends to the original destination, and this connection has none; closing it");
            None
        }
        (Some(cluster), _) => Some(cluster),
        (None, Some(dst)) => match unrouted(&listener)? {
            Unrouted::Blocked if !snapshot.is_registered(dst.0) => {
                let shown = sni.clone().unwrap_or_else(|| dst.to_string());
                state.metrics.outbound_blocked("tcp", &shown);
                tracing::info!(%client, %dst, sni = ?sni,
                    "connection refused: its destination is not in the mesh's registry (REGISTRY_ONLY)");
                None
            }
            Unrouted::Blocked | Unrouted::Passthrough => Some(passthrough(dst)),
        },
        (None, None) => None,
    };
    let http_target = || HttpTarget::Routes {
        name: listener.route_config.clone(),
        unrouted: unrouted(&listener),
    };
    let target = Target {
        direction: listener.direction,
        client,
        inbound: None,
        over_tls: false,
        original_dst: dst.map(|d| d.0),
    };
    serve_protocol(state, pools, protocol, target, http_target, tcp_cluster).await;
}

/// Serves an explicit listener's connection once its TLS is terminated: HTTP by the route
/// config, at the version ALPN chose, or opaque bytes to the TCP route.
async fn serve_terminated(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    listener: Arc<ListenerConfig>,
    tls: &Termination,
    stream: TcpStream,
    client: ClientAddr,
) {
    let Some(stream) = tls.accept(stream, client).await else {
        return;
    };
    let snapshot = state.config.load();
    let sni = stream.get_ref().1.server_name().map(str::to_owned);
    let protocol = match &listener.route_config {
        Some(_) if Termination::is_h2(&stream) => Detected::Http(UpstreamVersion::Http2, stream),
        Some(_) => Detected::Http(UpstreamVersion::Http1, stream),
        None => Detected::Opaque(stream),
    };
    let http_target = || HttpTarget::Routes {
        name: listener.route_config.clone(),
        unrouted: None,
    };
    let tcp_cluster = || tcp_route(&listener, &snapshot, sni.as_deref());
    let target = Target {
        direction: listener.direction,
        client,
        inbound: None,
        over_tls: true,
        original_dst: None,
    };
    serve_protocol(state, pools, protocol, target, http_target, tcp_cluster).await;
}

/// The cluster a listener's TCP route picks for a connection with this SNI.
fn tcp_route(
    listener: &ListenerConfig,
    snapshot: &Snapshot,
    sni: Option<&str>,
) -> Option<Arc<Cluster>> {
    let name = listener.tcp.as_ref()?.pick(sni, fastrand::u32(..))?;
    snapshot.cluster(name).cloned()
}

/// A connection whose protocol is known, with the bytes read while detecting it.
enum Detected<I> {
    Http(UpstreamVersion, I),
    Tls(I, Option<String>),
    Opaque(I),
}

/// Who a connection comes from and which listener accepted it.
struct Target {
    direction: Direction,
    client: ClientAddr,
    /// For inbound connections: the verified peer and the policies to check.
    inbound: Option<Inbound>,
    /// Whether this proxy terminated the client's TLS.
    over_tls: bool,
    /// Where a captured outbound connection was going.
    original_dst: Option<SocketAddr>,
}

// === impl Detected ===

impl<I> Detected<I> {
    /// The server name of a TLS connection.
    fn sni(&self) -> Option<&str> {
        match self {
            Detected::Tls(_, sni) => sni.as_deref(),
            _ => None,
        }
    }
}

/// The protocol from config, else from the first bytes.
async fn detect_protocol(
    state: &ProxyState,
    configured: Option<AppProtocol>,
    mut stream: TcpStream,
) -> Detected<PrefixedIo<TcpStream>> {
    let unread = |stream| PrefixedIo::new(bytes::Bytes::new(), stream);
    match configured {
        Some(AppProtocol::Http1) => return Detected::Http(UpstreamVersion::Http1, unread(stream)),
        Some(AppProtocol::Http2) => return Detected::Http(UpstreamVersion::Http2, unread(stream)),
        Some(AppProtocol::Tcp) => return Detected::Opaque(unread(stream)),
        Some(AppProtocol::Tls) | None => {}
    }
    let (sniffed, prefix) = sniff(state, &mut stream).await;
    classify(configured, sniffed, PrefixedIo::new(prefix, stream))
}

/// Reads the first bytes and says what they are.
async fn sniff(state: &ProxyState, stream: &mut TcpStream) -> (detect::Protocol, bytes::Bytes) {
    match detect::detect(stream, &state.settings.detect).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, "reading the first bytes failed");
            (detect::Protocol::Opaque, bytes::Bytes::new())
        }
    }
}

/// The protocol config names, else the one the first bytes say.
fn classify<I>(configured: Option<AppProtocol>, sniffed: detect::Protocol, io: I) -> Detected<I> {
    match (configured, sniffed) {
        (Some(AppProtocol::Http1), _) => Detected::Http(UpstreamVersion::Http1, io),
        (Some(AppProtocol::Http2), _) => Detected::Http(UpstreamVersion::Http2, io),
        (Some(AppProtocol::Tcp), _) => Detected::Opaque(io),
        (None, detect::Protocol::Http1) => Detected::Http(UpstreamVersion::Http1, io),
        (None, detect::Protocol::Http2) => Detected::Http(UpstreamVersion::Http2, io),
        (_, detect::Protocol::Tls { sni }) => Detected::Tls(io, sni),
        _ => Detected::Opaque(io),
    }
}

async fn serve_protocol<I>(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    protocol: Detected<I>,
    target: Target,
    http_target: impl FnOnce() -> HttpTarget,
    tcp_cluster: impl FnOnce() -> Option<Arc<Cluster>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Detected::Http(version, io) => {
            let conn = HttpConn::new(
                state.clone(),
                pools.clone(),
                target.client,
                target.direction,
                http_target(),
                version,
                target.inbound,
            );
            let conn = conn.to_original_dst(target.original_dst);
            let conn = Arc::new(if target.over_tls {
                conn.over_tls()
            } else {
                conn
            });
            serve_connection(io, conn, state.drain.clone()).await;
        }
        Detected::Tls(io, _) | Detected::Opaque(io) => match tcp_cluster() {
            Some(cluster) => {
                let mesh = state.mesh_tls.as_deref();
                let inbound = target.inbound.as_ref();
                tcp::forward(io, cluster, target.direction, state, mesh, inbound).await
            }
            None => {
                tracing::info!(client = %target.client, "no TCP route for this connection; closing it")
            }
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
