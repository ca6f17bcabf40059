//! A cluster as the proxy runs it: its endpoints' balancer, connection settings and which
//! endpoints get mesh mutual TLS, built from its validated config.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use mesh_proto::config::v1::{self as pb, endpoint::Health};

use super::snapshot::{AppProtocol, parse_addr};
use crate::{
    balance::{Balancer, Endpoint, EndpointSpec},
    metrics::{ClusterMetrics, Direction, Metrics},
    tls::{Carried, ClientConfigs, MeshTls},
};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_IDLE_PER_ENDPOINT: usize = 64;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A cluster: its endpoints' balancer and connection settings.
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// Picks endpoints.
    pub balancer: Balancer,
    /// The protocol spoken to endpoints; `None` means the same as the client's.
    pub protocol: Option<AppProtocol>,
    /// Limit on establishing a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Which endpoints get mesh mutual TLS.
    pub tls: UpstreamTls,
    /// The local address connections come from (127.0.0.6 for the local app), else any.
    pub source: Option<IpAddr>,
    /// The identities the endpoints may present (their service accounts).
    peer_identities: Arc<[String]>,
    /// Client TLS configs expecting `peer_identities`, made on first use.
    client_tls: OnceLock<Option<ClientConfigs>>,
    metrics: [OnceLock<Arc<ClusterMetrics>>; 3],
}

/// Which of a cluster's endpoints get mesh mutual TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTls {
    /// Those with a sidecar (auto mTLS): the default.
    Auto,
    /// All of them (ISTIO_MUTUAL).
    Mesh,
    /// None (DISABLE).
    Disable,
}

// === impl Cluster ===

impl Cluster {
    /// Builds a cluster from its validated config; load state carries over from `previous`.
    pub(super) fn build(
        config: &pb::Cluster,
        specs: Vec<EndpointSpec>,
        peer_identities: Vec<String>,
        previous: Option<&Balancer>,
    ) -> Self {
        let pool = config.connection_pool.unwrap_or_default();
        let tls = match config.tls.as_ref().map(|t| t.mode()) {
            None => UpstreamTls::Auto,
            Some(pb::upstream_tls::Mode::MeshMutual) => UpstreamTls::Mesh,
            Some(_) => UpstreamTls::Disable,
        };
        Cluster {
            tls,
            source: None,
            peer_identities: peer_identities.into(),
            client_tls: OnceLock::new(),
            name: config.name.clone(),
            balancer: Balancer::new(config.lb_policy(), specs, config.ring_size, previous),
            protocol: AppProtocol::from_pb(config.protocol()),
            connect_timeout: crate::route::duration(pool.connect_timeout.as_ref())
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            max_idle_per_endpoint: match pool.max_idle_per_endpoint {
                0 => DEFAULT_MAX_IDLE_PER_ENDPOINT,
                n => n as usize,
            },
            idle_timeout: crate::route::duration(pool.idle_timeout.as_ref())
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            metrics: Default::default(),
        }
    }

    /// A one-endpoint cluster for traffic config does not describe (passthrough, local app),
    /// connected from `source` when given.
    pub fn direct(name: String, addr: SocketAddr, source: Option<IpAddr>) -> Self {
        Cluster {
            name,
            balancer: Balancer::new(
                pb::cluster::LbPolicy::RoundRobin,
                vec![EndpointSpec {
                    addr,
                    weight: 1,
                    healthy: true,
                    mesh_tls: false,
                }],
                0,
                None,
            ),
            tls: UpstreamTls::Disable,
            source,
            peer_identities: Arc::new([]),
            client_tls: OnceLock::new(),
            protocol: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_idle_per_endpoint: DEFAULT_MAX_IDLE_PER_ENDPOINT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            metrics: Default::default(),
        }
    }

    /// The TLS config for a connection to `endpoint` that carries `carried`: mesh mutual TLS
    /// when the cluster's mode and the endpoint say so and the proxy has an identity, else
    /// `None` for plain text.
    pub fn client_tls(
        &self,
        endpoint: &Endpoint,
        mesh: Option<&MeshTls>,
        carried: Carried,
    ) -> Option<&Arc<rustls::ClientConfig>> {
        let wanted = match self.tls {
            UpstreamTls::Auto => endpoint.mesh_tls(),
            UpstreamTls::Mesh => true,
            UpstreamTls::Disable => false,
        };
        if !wanted {
            return None;
        }
        let mesh = mesh?;
        let configs = self.client_tls.get_or_init(|| {
            mesh.client_configs(self.peer_identities.clone())
                .map_err(|error| {
                    tracing::error!(cluster = %self.name, %error, "cannot make the mesh TLS config");
                })
                .ok()
        });
        configs.as_ref().map(|c| c.get(carried))
    }

    /// This cluster's metric handles for traffic of one direction, resolved on first use.
    pub fn metrics(&self, metrics: &Metrics, direction: Direction) -> &ClusterMetrics {
        let slot = &self.metrics[direction as usize];
        slot.get_or_init(|| metrics.cluster(direction, &self.name))
    }
}

/// Problems with a cluster's settings; fields not enforced yet are warned about.
pub(super) fn check_cluster(config: &pb::Cluster, at: &str, errors: &mut Vec<String>) {
    if matches!(
        AppProtocol::from_pb(config.protocol()),
        Some(AppProtocol::Tls)
    ) {
        errors.push(format!(
            "{at}: protocol TLS is for listeners; use tls.mode for upstream TLS"
        ));
    }
    if config.tls.as_ref().is_some_and(|t| {
        matches!(
            t.mode(),
            pb::upstream_tls::Mode::Simple | pb::upstream_tls::Mode::Mutual
        )
    }) {
        errors.push(format!(
            "{at}: TLS origination (tls.mode SIMPLE or MUTUAL) is not supported by this proxy yet; \
             use MESH_MUTUAL, DISABLE, or no tls for auto mTLS"
        ));
    }
    warn_unimplemented(config, &config.connection_pool.unwrap_or_default(), at);
}

/// The endpoints of a cluster's assignment; an address that does not parse is a problem.
pub(super) fn endpoint_specs(
    assignment: Option<&pb::ClusterLoadAssignment>,
    at: &str,
    errors: &mut Vec<String>,
) -> Vec<EndpointSpec> {
    let Some(assignment) = assignment else {
        return Vec::new();
    };
    assignment
        .endpoints
        .iter()
        .filter_map(|e| {
            Some(EndpointSpec {
                addr: parse_addr(&e.address, at, errors)?,
                weight: e.weight.max(1),
                healthy: e.health() == Health::Healthy,
                mesh_tls: e.mesh_tls,
            })
        })
        .collect()
}

/// The identities a cluster's endpoints may present, sorted, each once.
pub(super) fn peer_identities(assignment: Option<&pb::ClusterLoadAssignment>) -> Vec<String> {
    let mut identities: Vec<String> = assignment
        .iter()
        .flat_map(|a| &a.endpoints)
        .filter(|e| !e.identity.is_empty())
        .map(|e| e.identity.clone())
        .collect();
    identities.sort();
    identities.dedup();
    identities
}

/// Fields of the model that this proxy does not enforce yet: said loudly, never silently ignored.
fn warn_unimplemented(config: &pb::Cluster, pool: &pb::ConnectionPool, at: &str) {
    if config.outlier_detection.is_some() {
        tracing::warn!("{at}: outlier_detection is not enforced by this proxy yet");
    }
    if pool.max_connections > 0 || pool.max_pending_requests > 0 || pool.max_requests > 0 {
        tracing::warn!(
            "{at}: connection_pool limits (max_connections, max_pending_requests, max_requests) are not enforced by this proxy yet"
        );
    }
}
