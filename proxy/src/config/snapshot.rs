//! A validated, ready-to-serve configuration: listeners indexed by destination, and route
//! tables and clusters by name. Immutable; reloads build a new one and swap it in.
//!
//! Route tables and cluster balancers are built on first use, as Linkerd's proxy resolves a
//! destination only once traffic goes there: a sidecar in a mesh of 1,000 services usually
//! talks to a handful, so the rest are kept as their encoded config (a few hundred bytes each)
//! instead of compiled tables and balancers. Every part is still validated up front, so a bad
//! config is rejected whole, never discovered at the first request. What the previous snapshot
//! had built (what carries traffic) is built at once, carrying the endpoints' load over.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use mesh_proto::config::v1::{self as pb, endpoint::Health, listener::Mode};
use prost::Message;

use super::EncodedConfig;
use crate::{
    addr::OrigDstAddr,
    authz::Authorizer,
    balance::{Balancer, Endpoint, EndpointSpec},
    fast_hash::FastMap,
    metrics::{ClusterMetrics, Direction, Metrics},
    route::{RouteTable, compile_route_table},
    tls::{Carried, ClientConfigs, MeshTls},
};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_IDLE_PER_ENDPOINT: usize = 64;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A whole configuration, ready to serve.
pub struct Snapshot {
    /// Increases by one with every applied config.
    pub version: u64,
    source: EncodedConfig,
    outbound: FastMap<SocketAddr, Arc<ListenerConfig>>,
    inbound: FastMap<u16, Arc<ListenerConfig>>,
    explicit: Vec<Arc<ListenerConfig>>,
    routes: FastMap<String, RouteEntry>,
    clusters: FastMap<String, ClusterEntry>,
}

/// A route config, compiled on first use.
struct RouteEntry {
    config: Bytes,
    table: OnceLock<Arc<RouteTable>>,
}

/// A cluster's config and endpoints, its balancer built on first use.
struct ClusterEntry {
    config: Bytes,
    endpoints: Option<Bytes>,
    cluster: OnceLock<Arc<Cluster>>,
}
/// What a listener serves.
#[derive(Debug)]
pub struct ListenerConfig {
    /// The listener's name.
    pub name: String,
    /// The virtual destination (outbound), port (inbound) or bind address (explicit).
    pub addr: SocketAddr,
    /// How connections reach it.
    pub direction: Direction,
    /// The configured protocol; `None` means detect.
    pub protocol: Option<AppProtocol>,
    /// The route table for HTTP traffic.
    pub route_config: Option<String>,
    /// Where opaque TCP and TLS traffic goes.
    pub tcp: Option<TcpRouting>,
    /// Inbound: which clients are accepted.
    pub mtls: pb::MtlsMode,
    /// Inbound: what clients may do; `None` when no policy applies.
    pub authz: Option<Arc<Authorizer>>,
}

/// A protocol named by config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProtocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge, gRPC included.
    Http2,
    /// Opaque bytes.
    Tcp,
    /// TLS, passed through by SNI.
    Tls,
}

/// Opaque TCP routing: weighted clusters, optionally chosen by TLS SNI first.
#[derive(Debug)]
pub struct TcpRouting {
    sni_routes: Vec<(Vec<String>, WeightedClusters)>,
    destinations: WeightedClusters,
}

/// Cluster names with their weights.
type WeightedClusters = Vec<(String, u32)>;

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

// === impl Snapshot ===

impl Snapshot {
    /// Validates and compiles a config. What `previous` had built is built now, its endpoint
    /// load state carried over. Returns every problem at once; nothing is partially applied.
    pub fn compile(
        source: EncodedConfig,
        previous: Option<&Snapshot>,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut routes = FastMap::default();
        for (i, encoded) in source.routes.iter().enumerate() {
            let Some(config) = decode::<pb::RouteConfig>(encoded, "route config", i, &mut errors)
            else {
                continue;
            };
            let table = compile_route_table(&config, &mut errors);
            let entry = RouteEntry {
                config: encoded.clone(),
                table: OnceLock::new(),
            };
            let hot = previous
                .and_then(|p| p.routes.get(&config.name))
                .is_some_and(|e| e.table.get().is_some());
            if hot {
                let _ = entry.table.set(Arc::new(table));
            }
            if routes.insert(config.name.clone(), entry).is_some() {
                errors.push(format!("route config {:?} is defined twice", config.name));
            }
        }
        let mut endpoints: HashMap<String, &Bytes> = HashMap::new();
        for (i, encoded) in source.endpoints.iter().enumerate() {
            let Some(assignment) =
                decode::<pb::ClusterLoadAssignment>(encoded, "endpoints", i, &mut errors)
            else {
                continue;
            };
            if endpoints
                .insert(assignment.cluster.clone(), encoded)
                .is_some()
            {
                errors.push(format!(
                    "endpoints for cluster {:?} are given twice",
                    assignment.cluster
                ));
            }
        }
        let mut clusters = FastMap::default();
        for (i, encoded) in source.clusters.iter().enumerate() {
            let Some(config) = decode::<pb::Cluster>(encoded, "cluster", i, &mut errors) else {
                continue;
            };
            let entry = ClusterEntry {
                config: encoded.clone(),
                endpoints: endpoints.remove(config.name.as_str()).cloned(),
                cluster: OnceLock::new(),
            };
            let assignment = entry.assignment();
            let at = format!("cluster {:?}", config.name);
            check_cluster(&config, &at, &mut errors);
            let specs = endpoint_specs(assignment.as_ref(), &at, &mut errors);
            let hot = previous
                .and_then(|p| p.clusters.get(&config.name))
                .and_then(|e| e.cluster.get());
            if let Some(hot) = hot {
                let identities = peer_identities(assignment.as_ref());
                let cluster = Cluster::build(&config, specs, identities, Some(&hot.balancer));
                let _ = entry.cluster.set(Arc::new(cluster));
            }
            if clusters.insert(config.name.clone(), entry).is_some() {
                errors.push(format!("cluster {:?} is defined twice", config.name));
            }
        }
        for orphan in endpoints.keys() {
            errors.push(format!(
                "endpoints are given for cluster {orphan:?}, which is not defined"
            ));
        }

        let mut outbound = FastMap::default();
        let mut inbound = FastMap::default();
        let mut explicit: Vec<Arc<ListenerConfig>> = Vec::new();
        for (i, encoded) in source.listeners.iter().enumerate() {
            let Some(config) = decode::<pb::Listener>(encoded, "listener", i, &mut errors) else {
                continue;
            };
            let Some(listener) = ListenerConfig::compile(&config, &routes, &clusters, &mut errors)
            else {
                continue;
            };
            let listener = Arc::new(listener);
            let duplicate = match listener.direction {
                Direction::Outbound => outbound.insert(listener.addr, listener.clone()).is_some(),
                Direction::Inbound => inbound
                    .insert(listener.addr.port(), listener.clone())
                    .is_some(),
                Direction::Explicit => {
                    let dup = explicit.iter().any(|l| l.addr == listener.addr);
                    explicit.push(listener.clone());
                    dup
                }
            };
            if duplicate {
                errors.push(format!(
                    "listener {:?}: another {} listener already uses {}",
                    listener.name,
                    listener.direction.as_str(),
                    listener.addr
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            version: previous.map_or(1, |p| p.version + 1),
            source,
            outbound,
            inbound,
            explicit,
            routes,
            clusters,
        })
    }

    /// The config this snapshot was compiled from, decoded (for `/config_dump`).
    pub fn config(&self) -> pb::ProxyConfig {
        // Every resource decoded when the snapshot was compiled.
        self.source.decode().unwrap_or_default()
    }

    /// The listener for captured outbound traffic to `dst`.
    pub fn outbound_listener(&self, dst: OrigDstAddr) -> Option<&Arc<ListenerConfig>> {
        self.outbound.get(&dst.0)
    }

    /// The listener for captured inbound traffic to `port`: the port's own, else the one for
    /// every port (port 0).
    pub fn inbound_listener(&self, port: u16) -> Option<&Arc<ListenerConfig>> {
        self.inbound.get(&port).or_else(|| self.inbound.get(&0))
    }

    /// Listeners the proxy binds itself.
    pub fn explicit_listeners(&self) -> &[Arc<ListenerConfig>] {
        &self.explicit
    }

    /// The explicit listener bound at `addr`.
    pub fn explicit_listener(&self, addr: SocketAddr) -> Option<&Arc<ListenerConfig>> {
        self.explicit.iter().find(|l| l.addr == addr)
    }

    /// A route table by name, compiled on first use.
    pub fn route_table(&self, name: &str) -> Option<&Arc<RouteTable>> {
        self.routes.get(name).map(RouteEntry::table)
    }

    /// A cluster by name, its balancer built on first use.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name).map(ClusterEntry::cluster)
    }

    /// Every endpoint address of the clusters built so far: connections exist only to those,
    /// so these are what pruning connection pools must keep.
    pub fn endpoint_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.clusters
            .values()
            .filter_map(|e| e.cluster.get())
            .flat_map(|c| c.balancer.endpoints().iter().map(|e| e.addr()))
    }

    /// How many clusters have their balancer built.
    pub fn built_clusters(&self) -> usize {
        self.clusters
            .values()
            .filter(|e| e.cluster.get().is_some())
            .count()
    }
}

/// Decodes the `index`th resource of a kind; a failure is one more problem.
fn decode<M: Message + Default>(
    encoded: &Bytes,
    kind: &str,
    index: usize,
    errors: &mut Vec<String>,
) -> Option<M> {
    M::decode(encoded.clone())
        .map_err(|e| errors.push(format!("{kind} #{index} does not decode: {e}")))
        .ok()
}

/// Decodes a resource validated when its snapshot was compiled.
fn decode_valid<M: Message + Default>(encoded: &Bytes) -> M {
    M::decode(encoded.clone()).unwrap_or_else(|error| {
        tracing::error!(%error, "a validated resource no longer decodes");
        M::default()
    })
}

// === impl RouteEntry ===

impl RouteEntry {
    fn table(&self) -> &Arc<RouteTable> {
        self.table.get_or_init(|| {
            let config = decode_valid(&self.config);
            Arc::new(compile_route_table(&config, &mut Vec::new()))
        })
    }
}

// === impl ClusterEntry ===

impl ClusterEntry {
    fn assignment(&self) -> Option<pb::ClusterLoadAssignment> {
        self.endpoints.as_ref().map(decode_valid)
    }

    fn cluster(&self) -> &Arc<Cluster> {
        self.cluster.get_or_init(|| {
            let config: pb::Cluster = decode_valid(&self.config);
            let at = format!("cluster {:?}", config.name);
            let assignment = self.assignment();
            let specs = endpoint_specs(assignment.as_ref(), &at, &mut Vec::new());
            let identities = peer_identities(assignment.as_ref());
            Arc::new(Cluster::build(&config, specs, identities, None))
        })
    }
}

// === impl ListenerConfig ===

impl ListenerConfig {
    fn compile(
        config: &pb::Listener,
        routes: &FastMap<String, RouteEntry>,
        clusters: &FastMap<String, ClusterEntry>,
        errors: &mut Vec<String>,
    ) -> Option<Self> {
        let at = format!("listener {:?}", config.name);
        let addr = parse_addr(&config.address, &at, errors)?;
        let direction = match Mode::try_from(config.mode) {
            Ok(Mode::Outbound) => Direction::Outbound,
            Ok(Mode::Inbound) => Direction::Inbound,
            Ok(Mode::Explicit) => Direction::Explicit,
            Err(_) => {
                errors.push(format!("{at}: unknown mode {}", config.mode));
                return None;
            }
        };
        let protocol = match pb::Protocol::try_from(config.protocol) {
            Ok(p) => AppProtocol::from_pb(p),
            Err(_) => {
                errors.push(format!("{at}: unknown protocol {}", config.protocol));
                None
            }
        };
        let route_config = (!config.route_config.is_empty()).then(|| config.route_config.clone());
        if let Some(name) = &route_config
            && !routes.contains_key(name)
        {
            errors.push(format!("{at}: route config {name:?} is not defined"));
        }
        let tcp = config
            .tcp
            .as_ref()
            .map(|t| TcpRouting::compile(t, &at, clusters, errors));
        let is_http = matches!(protocol, Some(AppProtocol::Http1 | AppProtocol::Http2));
        if is_http && route_config.is_none() && direction != Direction::Inbound {
            errors.push(format!("{at}: an HTTP listener needs route_config"));
        }
        if matches!(protocol, Some(AppProtocol::Tcp | AppProtocol::Tls))
            && tcp.is_none()
            && direction != Direction::Inbound
        {
            errors.push(format!(
                "{at}: a TCP or TLS listener needs tcp destinations"
            ));
        }
        let mtls = pb::MtlsMode::try_from(config.mtls).unwrap_or_else(|_| {
            errors.push(format!("{at}: unknown mtls mode {}", config.mtls));
            pb::MtlsMode::Permissive
        });
        if mtls != pb::MtlsMode::Permissive && direction != Direction::Inbound {
            errors.push(format!("{at}: mtls is for INBOUND listeners"));
        }
        if !config.authorization.is_empty() && direction != Direction::Inbound {
            errors.push(format!("{at}: authorization is for INBOUND listeners"));
        }
        let authz = Authorizer::compile(&config.authorization, &at, errors);
        Some(ListenerConfig {
            name: config.name.clone(),
            addr,
            direction,
            protocol,
            route_config,
            tcp,
            mtls,
            authz: (!authz.is_empty()).then(|| Arc::new(authz)),
        })
    }
}

// === impl AppProtocol ===

impl AppProtocol {
    /// The config protocol, `None` for detect.
    pub fn from_pb(protocol: pb::Protocol) -> Option<Self> {
        match protocol {
            pb::Protocol::Detect => None,
            pb::Protocol::Http1 => Some(AppProtocol::Http1),
            pb::Protocol::Http2 | pb::Protocol::Grpc => Some(AppProtocol::Http2),
            pb::Protocol::Tcp => Some(AppProtocol::Tcp),
            pb::Protocol::Tls => Some(AppProtocol::Tls),
        }
    }
}

// === impl TcpRouting ===

impl TcpRouting {
    fn compile(
        route: &pb::TcpRoute,
        at: &str,
        clusters: &FastMap<String, ClusterEntry>,
        errors: &mut Vec<String>,
    ) -> Self {
        let dests = |list: &[pb::WeightedCluster], errors: &mut Vec<String>| -> WeightedClusters {
            list.iter()
                .map(|d| {
                    if !clusters.contains_key(&d.cluster) {
                        errors.push(format!(
                            "{at}: tcp destination cluster {:?} is not defined",
                            d.cluster
                        ));
                    }
                    (d.cluster.clone(), d.weight.max(1))
                })
                .collect()
        };
        let sni_routes = route
            .sni_routes
            .iter()
            .map(|r| {
                (
                    r.sni.iter().map(|s| s.to_ascii_lowercase()).collect(),
                    dests(&r.destinations, errors),
                )
            })
            .collect();
        let destinations = dests(&route.destinations, errors);
        TcpRouting {
            sni_routes,
            destinations,
        }
    }

    /// Picks the cluster for a connection with this SNI (if any); `roll` is uniform random.
    pub fn pick(&self, sni: Option<&str>, roll: u32) -> Option<&str> {
        let sni_dests = sni.and_then(|name| {
            self.sni_routes
                .iter()
                .find(|(patterns, _)| patterns.iter().any(|p| sni_matches(p, name)))
                .map(|(_, dests)| dests)
        });
        let dests = sni_dests.unwrap_or(&self.destinations);
        let total: u32 = dests.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut point = roll % total;
        for (cluster, weight) in dests {
            if point < *weight {
                return Some(cluster);
            }
            point -= weight;
        }
        None
    }
}

fn sni_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => name.len() > suffix.len() && name.to_ascii_lowercase().ends_with(suffix),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

// === impl Cluster ===

impl Cluster {
    /// Builds a cluster from its validated config; load state carries over from `previous`.
    fn build(
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
fn check_cluster(config: &pb::Cluster, at: &str, errors: &mut Vec<String>) {
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
fn endpoint_specs(
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
fn peer_identities(assignment: Option<&pb::ClusterLoadAssignment>) -> Vec<String> {
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

fn parse_addr(addr: &str, at: &str, errors: &mut Vec<String>) -> Option<SocketAddr> {
    addr.parse()
        .map_err(|_| errors.push(format!("{at}: {addr:?} is not an ip:port address")))
        .ok()
}
