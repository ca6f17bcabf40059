//! The gRPC service: `mesh.discovery.v1.AggregatedDiscovery`, one task per proxy stream.

use std::sync::Arc;

use mesh_proto::{
    config::v1::ProxyConfig,
    discovery::v1::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
        aggregated_discovery_server::{AggregatedDiscovery, AggregatedDiscoveryServer},
    },
};
use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    ConfigSnapshot, SyncStatus, XdsError,
    connection::{self, Shared},
    metrics::XdsMetrics,
    status::SyncTracker,
    wire::{Delta, StateOfTheWorld, Wire},
};
use crate::translate::TlsCheckRow;

/// Responses queued per stream before the stream's task waits for the proxy to read.
const RESPONSE_QUEUE: usize = 8;

/// Serves proxies the config snapshots published on a watch channel, with ACK/NACK tracking.
///
/// Dropping the channel's sender ends every stream with UNAVAILABLE (proxies reconnect), which
/// lets a graceful server shutdown complete.
#[derive(Clone)]
pub struct DiscoveryServer {
    snapshots: watch::Receiver<Arc<ConfigSnapshot>>,
    shared: Arc<Shared>,
}

impl DiscoveryServer {
    /// A server for the snapshots published on `snapshots`.
    pub fn new(snapshots: watch::Receiver<Arc<ConfigSnapshot>>) -> Result<Self, XdsError> {
        Ok(DiscoveryServer {
            snapshots,
            shared: Arc::new(Shared {
                tracker: Arc::new(SyncTracker::default()),
                metrics: XdsMetrics::new().map_err(XdsError::Metrics)?,
            }),
        })
    }

    /// Per proxy and type: sent and ACKed versions, NACKs (`/debug/syncz`, `mesh proxy-status`).
    pub fn sync_status(&self) -> SyncStatus {
        self.shared.tracker.status()
    }

    /// What the server would send the connected proxy `id` now: the latest snapshot's
    /// generation and that proxy's config; `None` when no proxy of that id is connected.
    pub fn config_for(&self, id: &str) -> Option<(u64, Arc<ProxyConfig>)> {
        let node = self.shared.tracker.node(id)?;
        let snapshot = self.snapshots.borrow().clone();
        Some((snapshot.generation(), snapshot.config_for(&node)))
    }

    /// `mesh tls-check`'s rows for the connected proxy `id`; `None` when no proxy of that id
    /// is connected.
    pub fn tls_check_for(&self, id: &str) -> Option<Vec<TlsCheckRow>> {
        let node = self.shared.tracker.node(id)?;
        let snapshot = self.snapshots.borrow().clone();
        Some(snapshot.tls_check(&node))
    }

    /// The generation of the latest published snapshot (0 before the first).
    pub fn generation(&self) -> u64 {
        self.snapshots.borrow().generation()
    }

    /// The server's metrics: `mesh_cp_connected_proxies`, `mesh_cp_pushes_total`,
    /// `mesh_cp_nacks_total`, `mesh_cp_push_duration_seconds`.
    pub fn registry(&self) -> &Registry {
        self.shared.metrics.registry()
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> AggregatedDiscoveryServer<Self> {
        AggregatedDiscoveryServer::new(self)
    }

    fn open<W: Wire>(
        &self,
        requests: Streaming<W::Request>,
    ) -> ReceiverStream<Result<W::Response, Status>>
    where
        Streaming<W::Request>: Send + 'static,
    {
        let (responses, queue) = mpsc::channel(RESPONSE_QUEUE);
        tokio::spawn(connection::serve::<W, _>(
            requests,
            self.snapshots.clone(),
            self.shared.clone(),
            responses,
        ));
        ReceiverStream::new(queue)
    }
}

#[tonic::async_trait]
impl AggregatedDiscovery for DiscoveryServer {
    type StreamStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaStreamStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Ok(Response::new(
            self.open::<StateOfTheWorld>(request.into_inner()),
        ))
    }

    async fn delta_stream(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaStreamStream>, Status> {
        Ok(Response::new(self.open::<Delta>(request.into_inner())))
    }
}
