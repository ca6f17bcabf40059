//! Connections to endpoints, kept per endpoint address: a stack of idle HTTP/1.1 keep-alive
//! connections, or one shared HTTP/2 connection that multiplexes every request.
//!
//! An HTTP/1.1 connection goes back to its pool when the response body has been read to its
//! end; a body dropped half-way closes the connection instead. A request that fails on a reused
//! connection before any of it was written (the server closed the idle connection) is retried
//! once on another.

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::ServerName;
use tokio::{
    net::{TcpSocket, TcpStream},
    time::Instant,
};
use tokio_rustls::TlsConnector;

use super::{RequestBody, UpstreamError};
use crate::limits::{Limits, Permit};
use crate::{
    fast_hash::FastMap,
    tls::{ClientTls, MaybeTls},
};

/// The HTTP version spoken to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamVersion {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// How to connect to a cluster's endpoints.
#[derive(Clone, Copy, Debug)]
pub struct ConnectSettings<'a> {
    /// Limit on the TCP handshake.
    pub connect_timeout: Duration,
    /// Requests sent on one connection before it is closed; 0 for no limit.
    pub max_requests_per_connection: u32,
    /// TCP keepalive for the connections, when the cluster sets it.
    pub keepalive: Option<Keepalive>,
    /// The cluster's limits on connections and waiting requests.
    pub limits: &'a Limits,
    /// Idle HTTP/1.1 connections kept per endpoint.
    pub max_idle: usize,
    /// How long an idle connection may wait for reuse.
    pub idle_timeout: Duration,
    /// The local address to connect from (127.0.0.6 for delivery to the local app).
    pub source: Option<IpAddr>,
}

/// TCP keepalive settings: unset parts are the system's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub time: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped.
    pub probes: Option<u32>,
}

/// Every endpoint's pool, apart for plain, mesh TLS and originated TLS connections and by
/// source address.
#[derive(Default)]
pub struct Pools {
    endpoints: RwLock<FastMap<PoolKey, Arc<EndpointPool>>>,
}

/// A pool's endpoint, HTTP version, how it is secured (`ClientTls::pool_key`, 0 for plain
/// text), and the source address.
type PoolKey = (SocketAddr, UpstreamVersion, u64, Option<IpAddr>);

/// An upstream connection's I/O.
type UpstreamIo = TokioIo<MaybeTls<TcpStream>>;

struct EndpointPool {
    idle: Mutex<Vec<IdleConn>>,
    /// The shared HTTP/2 connection and how many requests it has carried.
    h2: Mutex<Option<(http2::SendRequest<RequestBody>, u32)>>,
    h2_connecting: tokio::sync::Mutex<()>,
}

/// An idle HTTP/1.1 connection: since when, and how many requests it has carried.
struct IdleConn {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
    used: u32,
}

/// A response body from an endpoint.
pub enum UpstreamBody {
    /// HTTP/1.1: the connection goes back to its pool once the body is read.
    Pooled(PooledBody),
    /// HTTP/2 (the connection is shared) or an upgrade (the connection becomes the tunnel).
    Unpooled(Incoming),
}

/// A response body that returns its connection to the pool once read to the end.
pub struct PooledBody {
    inner: Incoming,
    conn: Option<Returning>,
}

/// A connection on its way back to its pool.
struct Returning {
    conn: IdleConn,
    pool: Weak<EndpointPool>,
    max_idle: usize,
    max_uses: u32,
    /// The cluster's limits when they bound connections: a returned connection frees a
    /// waiting request.
    limits: Option<Limits>,
}

// === impl Pools ===

impl Pools {
    /// Sends `req` to the endpoint at `addr` over a pooled connection, inside mesh TLS with
    /// `tls`.
    pub async fn send(
        &self,
        addr: SocketAddr,
        version: UpstreamVersion,
        settings: ConnectSettings<'_>,
        tls: Option<ClientTls<'_>>,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let tls_key = tls.map_or(0, |t| t.pool_key);
        let pool = self.endpoint((addr, version, tls_key, settings.source));
        let target = Target {
            addr,
            timeout: settings.connect_timeout,
            tls,
            source: settings.source,
            keepalive: settings.keepalive,
        };
        match version {
            UpstreamVersion::Http1 => pool.send_h1(target, settings, req).await,
            UpstreamVersion::Http2 => pool.send_h2(target, settings, req).await,
        }
    }

    /// Sends an upgrade request (WebSocket) on a new connection of its own, which becomes a
    /// tunnel when the endpoint agrees; such a connection is never pooled.
    pub async fn send_upgrade(
        &self,
        addr: SocketAddr,
        settings: ConnectSettings<'_>,
        tls: Option<ClientTls<'_>>,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let target = Target {
            addr,
            timeout: settings.connect_timeout,
            tls,
            source: settings.source,
            keepalive: settings.keepalive,
        };
        let permit = settings
            .limits
            .connection()
            .map_err(UpstreamError::Overloaded)?;
        let io = connect(&target).await?;
        let (mut sender, conn) = http1::handshake(io)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        tokio::spawn(async move {
            let _open = permit;
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream upgrade connection ended");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })
    }

    /// Drops the pools for which `keep(endpoint, source)` is false.
    pub fn retain(&self, keep: impl Fn(SocketAddr, Option<IpAddr>) -> bool) {
        self.endpoints
            .write()
            .retain(|(addr, _, _, source), _| keep(*addr, *source));
    }

    fn endpoint(&self, key: PoolKey) -> Arc<EndpointPool> {
        if let Some(pool) = self.endpoints.read().get(&key) {
            return pool.clone();
        }
        self.endpoints
            .write()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(EndpointPool {
                    idle: Mutex::new(Vec::new()),
                    h2: Mutex::new(None),
                    h2_connecting: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }
}

// === impl EndpointPool ===

impl EndpointPool {
    async fn send_h1(
        self: Arc<Self>,
        target: Target<'_>,
        settings: ConnectSettings<'_>,
        mut req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let addr = target.addr;
        let limits = settings.limits;
        // Held while the request waits for a connection (the cluster has its most open).
        let mut waiting: Option<(Option<Permit>, Instant)> = None;
        loop {
            let idle = self.take_idle(settings.idle_timeout);
            let (mut conn, reused) = match idle {
                // A connection just given back may still be finishing its last response:
                // waited for, not thrown away (under a connection limit it may be the only one).
                Some(mut conn) => {
                    if conn.sender.ready().await.is_err() {
                        continue;
                    }
                    (conn, true)
                }
                None => match limits.connection() {
                    // Boxed: connecting is rare, and its future would grow every request's.
                    Ok(permit) => (Box::pin(connect_h1(&target, permit)).await?, false),
                    Err(full) => {
                        if waiting.is_none() {
                            let place = limits.pending().map_err(UpstreamError::Overloaded)?;
                            waiting = Some((place, Instant::now() + settings.connect_timeout));
                        }
                        let deadline = waiting.as_ref().map_or_else(Instant::now, |w| w.1);
                        // Armed, then a second look: a connection freed in between is not
                        // missed.
                        let freed = limits.freed();
                        tokio::pin!(freed);
                        freed.as_mut().enable();
                        if !self.idle.lock().is_empty() || limits.connection_available() {
                            continue;
                        }
                        if tokio::time::timeout_at(deadline, freed).await.is_err() {
                            return Err(UpstreamError::Overloaded(full));
                        }
                        continue;
                    }
                },
            };
            match conn.sender.try_send_request(req).await {
                Ok(response) => {
                    conn.used += 1;
                    let returning = Returning {
                        conn,
                        pool: Arc::downgrade(&self),
                        max_idle: settings.max_idle,
                        max_uses: settings.max_requests_per_connection,
                        limits: limits.limits_connections().then(|| limits.clone()),
                    };
                    return Ok(
                        response.map(|body| UpstreamBody::Pooled(PooledBody::new(body, returning)))
                    );
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => {
                        tracing::debug!(%addr, "reused connection was closed; retrying on another");
                        req = unsent;
                    }
                    _ => {
                        return Err(UpstreamError::Reset {
                            addr,
                            source: error.into_error(),
                        });
                    }
                },
            }
        }
    }

    fn take_idle(&self, idle_timeout: Duration) -> Option<IdleConn> {
        let mut idle = self.idle.lock();
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, mut conn: IdleConn, max_idle: usize, max_uses: u32) {
        if max_uses > 0 && conn.used >= max_uses {
            return; // dropped: the connection closes
        }
        let mut idle = self.idle.lock();
        if idle.len() < max_idle && !conn.sender.is_closed() {
            conn.since = Instant::now();
            idle.push(conn);
        }
    }

    async fn send_h2(
        self: Arc<Self>,
        target: Target<'_>,
        settings: ConnectSettings<'_>,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let addr = target.addr;
        let mut sender = self.h2_sender(target, settings).await?;
        sender
            .send_request(req)
            .await
            .map(|response| response.map(UpstreamBody::Unpooled))
            .map_err(|source| UpstreamError::Reset { addr, source })
    }

    /// The shared HTTP/2 connection, dialled once when missing or closed; one that has
    /// carried its most requests is let go after this one.
    async fn h2_sender(
        &self,
        target: Target<'_>,
        settings: ConnectSettings<'_>,
    ) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        if let Some(sender) = self.take_h2_use(settings.max_requests_per_connection) {
            return Ok(sender);
        }
        // Boxed: connecting is rare, and its future would grow every request's.
        Box::pin(self.connect_h2(target, settings)).await
    }

    /// A use of the shared HTTP/2 connection, if it is open.
    fn take_h2_use(&self, max_uses: u32) -> Option<http2::SendRequest<RequestBody>> {
        let mut slot = self.h2.lock();
        let (sender, used) = slot.as_mut().filter(|(s, _)| !s.is_closed())?;
        *used += 1;
        let sender = sender.clone();
        if max_uses > 0 && *used >= max_uses {
            *slot = None;
        }
        Some(sender)
    }

    /// Dials the shared HTTP/2 connection, unless another request just did.
    async fn connect_h2(
        &self,
        target: Target<'_>,
        settings: ConnectSettings<'_>,
    ) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        let _connecting = self.h2_connecting.lock().await;
        if let Some(sender) = self.take_h2_use(settings.max_requests_per_connection) {
            return Ok(sender);
        }
        let permit = settings
            .limits
            .connection()
            .map_err(UpstreamError::Overloaded)?;
        let addr = target.addr;
        let io = connect(&target).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .initial_stream_window_size(super::H2_STREAM_WINDOW)
            .initial_connection_window_size(super::H2_CONNECTION_WINDOW)
            .max_send_buf_size(super::H2_STREAM_WINDOW as usize)
            .handshake(io)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        tokio::spawn(async move {
            let _open = permit;
            if let Err(error) = conn.await {
                tracing::debug!(%error, %addr, "upstream HTTP/2 connection ended");
            }
        });
        let max_uses = settings.max_requests_per_connection;
        if max_uses != 1 {
            *self.h2.lock() = Some((sender.clone(), 1));
        }
        Ok(sender)
    }
}

/// A new HTTP/1.1 connection, which holds `permit` (a place under the cluster's connection
/// limit) until it closes.
async fn connect_h1(
    target: &Target<'_>,
    permit: Option<Permit>,
) -> Result<IdleConn, UpstreamError> {
    let addr = target.addr;
    let io = connect(target).await?;
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|source| UpstreamError::Reset { addr, source })?;
    tokio::spawn(async move {
        let _open = permit;
        if let Err(error) = conn.await {
            tracing::debug!(%error, %addr, "upstream HTTP/1 connection ended");
        }
    });
    Ok(IdleConn {
        sender,
        since: Instant::now(),
        used: 0,
    })
}

/// Opens a TCP connection with a deadline, from `source` when given; Nagle off, as every
/// request is written whole.
pub async fn connect_tcp(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<TcpStream, UpstreamError> {
    let connect = async {
        let Some(source) = source else {
            return TcpStream::connect(addr).await;
        };
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    };
    let stream = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
        Err(_) => return Err(UpstreamError::ConnectTimeout { addr, timeout }),
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Where and how to dial an endpoint.
struct Target<'a> {
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<ClientTls<'a>>,
    source: Option<IpAddr>,
    keepalive: Option<Keepalive>,
}

/// Dials an endpoint (from `source` when given), inside mesh TLS when asked; the deadline
/// covers the TLS handshake too.
pub async fn connect_upstream(
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<ClientTls<'_>>,
    source: Option<IpAddr>,
    keepalive: Option<Keepalive>,
) -> Result<MaybeTls<TcpStream>, UpstreamError> {
    let connect = async {
        let stream = connect_tcp(addr, timeout, source).await?;
        if let Some(keepalive) = keepalive {
            keepalive.apply(&stream);
        }
        Ok::<_, UpstreamError>(stream)
    };
    let Some(tls) = tls else {
        return connect.await.map(MaybeTls::Plain);
    };
    let handshake = async {
        let stream = connect.await?;
        // Mesh peers are verified by identity, not by name: the address stands in for one.
        let name = (tls.server_name.cloned()).unwrap_or(ServerName::IpAddress(addr.ip().into()));
        TlsConnector::from(tls.config.clone())
            .connect(name, stream)
            .await
            .map(|tls| MaybeTls::Tls(Box::new(tls)))
            .map_err(|source| UpstreamError::Tls { addr, source })
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(UpstreamError::ConnectTimeout { addr, timeout }))
}

async fn connect(target: &Target<'_>) -> Result<UpstreamIo, UpstreamError> {
    connect_upstream(
        target.addr,
        target.timeout,
        target.tls,
        target.source,
        target.keepalive,
    )
    .await
    .map(TokioIo::new)
}

// === impl Keepalive ===

impl Keepalive {
    /// Turns keepalive on for `stream` with these settings; a failure is only logged.
    fn apply(self, stream: &TcpStream) {
        let mut keepalive = socket2::TcpKeepalive::new();
        if let Some(time) = self.time {
            keepalive = keepalive.with_time(time);
        }
        if let Some(interval) = self.interval {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(probes) = self.probes {
            keepalive = keepalive.with_retries(probes);
        }
        if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%error, "cannot set TCP keepalive");
        }
    }
}

// === impl UpstreamBody ===

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamBody::Pooled(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Unpooled(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Pooled(body) => body.is_end_stream(),
            UpstreamBody::Unpooled(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Pooled(body) => body.size_hint(),
            UpstreamBody::Unpooled(body) => body.size_hint(),
        }
    }
}

// === impl PooledBody ===

impl PooledBody {
    fn new(inner: Incoming, returning: Returning) -> Self {
        let mut body = PooledBody {
            inner,
            conn: Some(returning),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        let Some(returning) = self.conn.take() else {
            return;
        };
        if let Some(pool) = returning.pool.upgrade() {
            pool.put_idle(returning.conn, returning.max_idle, returning.max_uses);
        }
        if let Some(limits) = returning.limits {
            limits.wake_waiting();
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
