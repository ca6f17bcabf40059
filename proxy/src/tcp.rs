//! Opaque TCP forwarding: bytes copied both ways, each direction closed on its own so
//! half-closed connections (a client that shuts down writing and waits for the answer) work.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{
    balance::Outcome,
    config::Cluster,
    http::{Inbound, connect_upstream},
    istio_metrics::{LabelSet, Protocol, Reporter, RequestLabels},
    metrics::{Direction, Handles, Peers},
    proxy::ProxyState,
    tls::{Carried, MeshTls},
    workload::{UNKNOWN, Workload},
};

/// Buffer per direction: bounds memory per connection.
const BUFFER_SIZE: usize = 16 * 1024;

/// Connects to an endpoint of `cluster` (inside mesh TLS when the cluster says so for it) and
/// copies bytes until both directions have closed. Byte counters move as data flows, so
/// long-lived connections show up before they end; an `inbound` connection is counted with
/// its peers' identities.
pub async fn forward<I>(
    client: I,
    cluster: Arc<Cluster>,
    direction: Direction,
    state: &ProxyState,
    mesh: Option<&MeshTls>,
    inbound: Option<&Inbound>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = &*state.metrics;
    let cluster_metrics = match inbound {
        Some(inbound) => {
            let own = mesh.and_then(MeshTls::own_identity);
            let peer = inbound.peer.as_deref().map(|p| &*p.identity);
            let peers = Peers::inbound(peer, own.as_deref());
            Handles::Connection(metrics.cluster(direction, &cluster.name, peers))
        }
        None => Handles::Cluster(cluster.metrics(metrics, direction)),
    };
    // Over the cluster's connection limit: closed at once, never queued.
    let permit = match cluster.limits.connection() {
        Ok(permit) => permit,
        Err(full) => {
            cluster_metrics.failure(crate::metrics::UpstreamFailure::Overflow);
            metrics.overflowed(&cluster.name, full);
            tracing::info!(cluster = %cluster.name, "connection limit reached; closing TCP connection");
            return;
        }
    };
    let Some(pick) = cluster.balancer.pick(None) else {
        cluster_metrics.failure(crate::metrics::UpstreamFailure::NoEndpoint);
        tracing::info!(cluster = %cluster.name, "no endpoint for TCP connection; closing it");
        return;
    };
    let tls = cluster.client_tls(pick.endpoint(), mesh, Carried::Tcp);
    let cluster_metrics = match (inbound, &tls) {
        (None, Ok(used)) => Handles::Cluster(cluster.endpoint_metrics(
            metrics,
            direction,
            pick.endpoint(),
            *used,
            mesh,
        )),
        _ => cluster_metrics,
    };
    let connected = async {
        let tls = tls?;
        connect_upstream(
            pick.addr(),
            cluster.connect_timeout,
            tls,
            cluster.source,
            cluster.keepalive,
        )
        .await
    };
    let upstream = match connected.await {
        Ok(stream) => {
            cluster.report_outcome(metrics, pick.endpoint(), Outcome::Connected);
            stream
        }
        Err(error) => {
            if error.is_local_failure() {
                cluster.report_outcome(metrics, pick.endpoint(), Outcome::LocalFailure);
            }
            cluster_metrics.failure(error.failure());
            tracing::info!(cluster = %cluster.name, %error, "closing TCP connection");
            return;
        }
    };
    pick.observe_response();
    cluster_metrics.tcp_opened.inc();
    let labels = match inbound {
        Some(inbound) => inbound_labels(state, mesh, inbound),
        None => {
            let source = &state.settings.workload;
            cluster.label_set(metrics, source, mesh, Some(pick.endpoint()), Protocol::Tcp)
        }
    };
    let standard = labels.and_then(|l| l.tcp());
    if let Some(standard) = &standard {
        standard.opened.inc();
    }
    let mut client = Counted {
        io: client,
        read: cluster_metrics.tcp_bytes_to_upstream.clone(),
        also: standard.as_ref().map(|s| s.received.clone()),
    };
    let mut upstream = Counted {
        io: upstream,
        read: cluster_metrics.tcp_bytes_to_downstream.clone(),
        also: standard.as_ref().map(|s| s.sent.clone()),
    };
    let result = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        BUFFER_SIZE,
        BUFFER_SIZE,
    )
    .await;
    cluster_metrics.tcp_closed.inc();
    if let Some(standard) = &standard {
        standard.closed.inc();
    }
    drop(permit);
    if let Err(error) = result {
        tracing::debug!(cluster = %cluster.name, %error, "TCP connection ended with an error");
    }
}

/// The standard metrics' labels of an inbound TCP connection: the peer known by its mesh TLS
/// identity (its namespace read from it; no metadata travels in opaque TCP), the destination
/// Service the one whose endpoints include the address the client meant.
fn inbound_labels(
    state: &ProxyState,
    mesh: Option<&MeshTls>,
    inbound: &Inbound,
) -> Option<Arc<LabelSet>> {
    let peer = inbound.peer.as_ref().map(|p| p.identity.clone());
    let source = Workload {
        namespace: (peer.as_deref())
            .and_then(|id| id.split("/ns/").nth(1))
            .and_then(|rest| rest.split('/').next())
            .unwrap_or(UNKNOWN)
            .to_owned(),
        ..Workload::default()
    };
    let unknown = || Arc::<str>::from(UNKNOWN);
    let labels = RequestLabels {
        reporter: Reporter::Destination,
        source: Arc::new(source),
        destination: state.settings.workload.clone(),
        destination_principal: (mesh.and_then(MeshTls::own_identity))
            .filter(|_| peer.is_some())
            .map_or_else(unknown, |own| own.as_str().into()),
        connection_security_policy: if peer.is_some() { "mutual_tls" } else { "none" },
        source_principal: peer.unwrap_or_else(unknown),
        destination_service: (state.config.load().local_service(inbound.destination))
            .cloned()
            .unwrap_or_else(unknown),
        request_protocol: Protocol::Tcp,
    };
    state.metrics.standard.label_set(&labels)
}

/// Counts the bytes read from an I/O (in one counter, or two); writes pass through.
struct Counted<I> {
    io: I,
    read: IntCounter,
    also: Option<IntCounter>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.read.inc_by(read);
        if let Some(also) = &self.also {
            also.inc_by(read);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
