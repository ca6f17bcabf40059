//! One proxy's stream: reads its subscriptions, ACKs and NACKs, and pushes what changed for it
//! whenever a new snapshot is published. Each stream runs in its own task with its own response
//! queue, so a slow proxy delays no other; a proxy that falls behind skips straight to the
//! latest snapshot. A big delta change (a new proxy's whole config) goes out in parts of
//! bounded size, so neither side holds a response of the whole mesh at once.

use std::{marker::PhantomData, sync::Arc};

use prometheus::IntGauge;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::{
    ConfigSnapshot, ResourceType,
    metrics::XdsMetrics,
    resources::ProxyResources,
    status::{Registration, SyncTracker},
    view::View,
    wire::{ClientMessage, Push, Wire},
};
use crate::node::ProxyNode;

/// What every stream shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tracker: Arc<SyncTracker>,
    pub(crate) metrics: XdsMetrics,
}

/// Where a stream's responses go; closed when the proxy is gone.
pub(crate) type Responses<W> = mpsc::Sender<Result<<W as Wire>::Response, Status>>;

/// The proxy went away.
struct Closed;

/// The encoded size a delta response's resources aim to stay within.
const DELTA_PART_BYTES: usize = 128 * 1024;

/// One proxy's stream state.
struct ProxyStream<W: Wire> {
    node: ProxyNode,
    shared: Arc<Shared>,
    registration: Registration,
    _connected: ConnectedGuard,
    snapshot: Arc<ConfigSnapshot>,
    /// `snapshot` split for this proxy, computed on first need.
    resources: Option<Arc<ProxyResources>>,
    types: [TypeState; 5],
    responses: Responses<W>,
    nonces: u64,
    _wire: PhantomData<W>,
}

/// One resource type on one stream.
#[derive(Default)]
struct TypeState {
    subscribed: bool,
    /// A subscription awaits its first response, even one that changes nothing.
    must_send: bool,
    /// What the proxy has once it applies what was sent.
    view: View,
    /// What the proxy had at its last ACK (a delta NACK falls back to it).
    acked_view: View,
    outstanding: Option<Outstanding>,
}

/// The last change sent of a type, until the proxy answers every response carrying it.
struct Outstanding {
    version: String,
    /// Nonces of its responses not answered yet; emptied by a NACK.
    pending: Vec<String>,
    /// When the change was seen.
    since: Instant,
}

/// Counts the stream in `mesh_cp_connected_proxies` while it lives.
struct ConnectedGuard(IntGauge);

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves one stream until the proxy leaves or the snapshot publisher is dropped.
pub(crate) async fn serve<W, S>(
    mut requests: S,
    mut snapshots: watch::Receiver<Arc<ConfigSnapshot>>,
    shared: Arc<Shared>,
    responses: Responses<W>,
) where
    W: Wire,
    S: Stream<Item = Result<W::Request, Status>> + Unpin,
{
    let first = match requests.next().await {
        Some(Ok(request)) => W::parse(request),
        Some(Err(status)) => {
            tracing::debug!(%status, "discovery stream ended before its first request");
            return;
        }
        None => return,
    };
    let Some(node) = first.node.clone() else {
        let status = Status::invalid_argument(
            "the first request of a discovery stream must carry the node (id, pod, namespace)",
        );
        let _ = responses.send(Err(status)).await;
        return;
    };
    tracing::info!(proxy = %node.id, delta = W::DELTA, "proxy connected");
    let snapshot = snapshots.borrow_and_update().clone();
    let mut stream = ProxyStream::<W>::new(node, shared, snapshot, responses);
    if stream.handle(first).await.is_err() {
        return;
    }
    loop {
        let step = tokio::select! {
            request = requests.next() => match request {
                Some(Ok(request)) => stream.handle(W::parse(request)).await,
                Some(Err(status)) => {
                    tracing::info!(proxy = %stream.node.id, %status, "proxy stream failed");
                    Err(Closed)
                }
                None => Err(Closed),
            },
            changed = snapshots.changed() => match changed {
                Ok(()) => {
                    let snapshot = snapshots.borrow_and_update().clone();
                    stream.push_snapshot(snapshot).await
                }
                Err(_) => {
                    let status = Status::unavailable("the control plane is shutting down; reconnect");
                    let _ = stream.responses.send(Err(status)).await;
                    Err(Closed)
                }
            },
        };
        if step.is_err() {
            tracing::info!(proxy = %stream.node.id, "proxy disconnected");
            return;
        }
    }
}

// === impl ProxyStream ===

impl<W: Wire> ProxyStream<W> {
    fn new(
        node: ProxyNode,
        shared: Arc<Shared>,
        snapshot: Arc<ConfigSnapshot>,
        responses: Responses<W>,
    ) -> Self {
        let registration = shared.tracker.register(&node, W::DELTA);
        let connected = shared.metrics.connected().clone();
        connected.inc();
        ProxyStream {
            node,
            shared,
            registration,
            _connected: ConnectedGuard(connected),
            snapshot,
            resources: None,
            types: Default::default(),
            responses,
            nonces: 0,
            _wire: PhantomData,
        }
    }

    /// A subscription, ACK or NACK.
    async fn handle(&mut self, message: ClientMessage) -> Result<(), Closed> {
        let Some(ty) = ResourceType::from_type_url(&message.type_url) else {
            tracing::warn!(proxy = %self.node.id, type_url = %message.type_url,
                "proxy asked for a resource type this control plane does not serve; ignoring");
            return Ok(());
        };
        let state = &mut self.types[ty.index()];
        if message.nonce.is_empty() {
            state.subscribed = true;
            state.must_send = true;
            if W::DELTA {
                state.view = View::Reported(Arc::new(message.initial_versions));
                state.acked_view = state.view.clone();
            }
            return self.push(ty, Instant::now()).await;
        }
        let Some(outstanding) = state
            .outstanding
            .as_mut()
            .filter(|o| o.pending.contains(&message.nonce))
        else {
            tracing::trace!(proxy = %self.node.id, %ty, nonce = %message.nonce, "stale or repeated answer");
            return Ok(());
        };
        outstanding.pending.retain(|nonce| *nonce != message.nonce);
        if message.error.is_some() {
            // One rejected part rejects the change: later parts' answers no longer count.
            outstanding.pending.clear();
        } else if !outstanding.pending.is_empty() {
            return Ok(());
        }
        match message.error {
            Some(error) => {
                tracing::warn!(proxy = %self.node.id, %ty, version = %outstanding.version, %error,
                    "proxy rejected config (NACK); it keeps its last good version");
                self.registration.nacked(ty, &outstanding.version, &error);
                self.shared.metrics.nacked(ty);
                if W::DELTA {
                    state.view = state.acked_view.clone();
                }
            }
            None => {
                self.registration.acked(ty, &outstanding.version);
                self.shared
                    .metrics
                    .acked_after(outstanding.since.elapsed().as_secs_f64());
                state.acked_view = state.view.clone();
            }
        }
        Ok(())
    }

    /// A new snapshot: push every subscribed type that changed for this proxy, in push order.
    async fn push_snapshot(&mut self, snapshot: Arc<ConfigSnapshot>) -> Result<(), Closed> {
        if Arc::ptr_eq(&snapshot, &self.snapshot) {
            return Ok(());
        }
        let since = snapshot.published();
        self.snapshot = snapshot;
        self.resources = None;
        for ty in ResourceType::ALL {
            self.push(ty, since).await?;
        }
        Ok(())
    }

    /// Sends `ty` if it changed for this proxy (or awaits its first response); `since` is when
    /// the change was seen.
    async fn push(&mut self, ty: ResourceType, since: Instant) -> Result<(), Closed> {
        if self.snapshot.is_pending() || !self.types[ty.index()].subscribed {
            return Ok(());
        }
        let resources = match &self.resources {
            Some(resources) => resources.clone(),
            None => {
                let resources = self.snapshot.resources_for(&self.node);
                self.resources = Some(resources.clone());
                resources
            }
        };
        let state = &mut self.types[ty.index()];
        let update = self.snapshot.update(&state.view, resources.of(ty));
        if update.is_empty() && !state.must_send {
            return Ok(());
        }
        let parts = if W::DELTA {
            update.parts(DELTA_PART_BYTES)
        } else {
            let whole = 0..update.changed.len();
            vec![whole]
        };
        let nonces: Vec<String> = parts
            .iter()
            .map(|_| {
                self.nonces += 1;
                format!("{}-{}", self.snapshot.generation(), self.nonces)
            })
            .collect();
        let version = update.version().to_owned();
        state.must_send = false;
        state.view = update.view();
        self.registration.sent(ty, &version);
        self.registration
            .pushed_generation(self.snapshot.generation());
        state.outstanding = Some(Outstanding {
            version: version.clone(),
            pending: nonces.clone(),
            since,
        });
        self.shared.metrics.pushed(ty);
        for (i, (part, nonce)) in parts.into_iter().zip(&nonces).enumerate() {
            let response = W::response(Push {
                ty,
                version: &version,
                nonce,
                update: &update,
                part,
                removals: i == 0,
            });
            self.responses
                .send(Ok(response))
                .await
                .map_err(|_| Closed)?;
        }
        Ok(())
    }
}
