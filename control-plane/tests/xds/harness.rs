//! An in-process control plane on loopback: the real discovery server behind tonic, fed by a
//! watch channel the test publishes snapshots on; and HTTP route configs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use mesh_control_plane::xds::{ConfigSnapshot, DiscoveryServer, SyncStatus};
use mesh_proto::config::v1::{
    Route, RouteAction, RouteConfig, RouteMatch, VirtualHost, WeightedCluster, route, route_match,
};
use prometheus::proto::MetricType;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tonic::transport::{Server, server::TcpIncoming};

/// How long a test waits for a condition before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running discovery server.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub server: DiscoveryServer,
    publisher: watch::Sender<Arc<ConfigSnapshot>>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ControlPlane {
    /// Serves `first` on `addr` (port 0 for any).
    pub async fn start(addr: SocketAddr, first: ConfigSnapshot) -> ControlPlane {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the discovery port");
        let addr = listener.local_addr().expect("bound address");
        let (publisher, snapshots) = watch::channel(Arc::new(first));
        let server = DiscoveryServer::new(snapshots).expect("discovery server");
        let (shutdown, stop) = oneshot::channel::<()>();
        let service = server.clone().into_service();
        let task = tokio::spawn(async move {
            Server::builder()
                .serve_with_incoming_shutdown(service, TcpIncoming::from(listener), async {
                    let _ = stop.await;
                })
                .await
                .expect("discovery server runs");
        });
        ControlPlane {
            addr,
            server,
            publisher,
            shutdown,
            task,
        }
    }

    /// The proxies' endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes a new snapshot.
    pub fn publish(&self, snapshot: ConfigSnapshot) {
        self.publisher.send_replace(Arc::new(snapshot));
    }

    /// Stops: every stream ends (the publisher is gone), then the server itself.
    pub async fn stop(self) {
        drop(self.publisher);
        let _ = self.shutdown.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops once its streams end")
            .expect("server task");
    }

    /// Waits until the sync status satisfies `done`, returning it.
    pub async fn wait_status(&self, what: &str, done: impl Fn(&SyncStatus) -> bool) -> SyncStatus {
        self.wait_status_within(PATIENCE, what, done).await
    }

    /// Waits up to `patience` until the sync status satisfies `done`, returning it.
    pub async fn wait_status_within(
        &self,
        patience: Duration,
        what: &str,
        done: impl Fn(&SyncStatus) -> bool,
    ) -> SyncStatus {
        let deadline = Instant::now() + patience;
        loop {
            let status = self.server.sync_status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A metric's value as the registry renders it (0 when absent).
    pub fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        self.server
            .registry()
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| {
                let kind = family.get_field_type();
                family.get_metric().iter().map(move |m| (kind, m))
            })
            .filter(|(_, m)| {
                label.is_none_or(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == k && l.value() == v)
                })
            })
            .map(|(kind, m)| match kind {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => m.get_histogram().get_sample_count() as f64,
            })
            .sum()
    }
}

/// A route config `name` sending every request for `domain` to `cluster`.
pub fn http_route(name: &str, domain: &str, cluster: &str) -> RouteConfig {
    RouteConfig {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: name.to_owned(),
            domains: vec![domain.to_owned()],
            routes: vec![Route {
                name: name.to_owned(),
                r#match: Some(RouteMatch {
                    path: Some(route_match::Path::Prefix("/".to_owned())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    destinations: vec![WeightedCluster {
                        cluster: cluster.to_owned(),
                        weight: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            }],
        }],
    }
}
