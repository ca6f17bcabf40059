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
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use mesh_proto::config::v1 as pb;
use prost::Message;

use super::{
    EncodedConfig,
    cluster::{Cluster, EndpointPeers, check_cluster, dns_names_of, endpoint_specs, service_of},
    listener::ListenerConfig,
};
use crate::{
    addr::OrigDstAddr,
    dns::Resolved,
    fast_hash::FastMap,
    metrics::Direction,
    route::{RouteTable, compile_route_table},
    telemetry::TelemetryPolicy,
    trace::Tracer,
};

/// A whole configuration, ready to serve.
pub struct Snapshot {
    /// Increases by one with every applied config.
    pub version: u64,
    source: EncodedConfig,
    outbound: FastMap<SocketAddr, Arc<ListenerConfig>>,
    /// Outbound listeners at 0.0.0.0, by port (0 for every port).
    outbound_any: FastMap<u16, Arc<ListenerConfig>>,
    inbound: FastMap<u16, Arc<ListenerConfig>>,
    explicit: Vec<Arc<ListenerConfig>>,
    routes: FastMap<String, RouteEntry>,
    clusters: FastMap<String, ClusterEntry>,
    telemetry: TelemetryPolicy,
    /// The addresses of DNS clusters' names this snapshot was built with.
    resolved: Resolved,
    /// The names DNS clusters use, sorted, each once.
    dns_names: Vec<String>,
    /// Every endpoint address in the config: where a blocking listener still lets traffic go.
    registered: OnceLock<HashSet<SocketAddr>>,
    /// The Services this proxy's own pod serves, by port: found on first need among the
    /// endpoints of every cluster (those at the pod's address).
    local_services: OnceLock<LocalServices>,
}

/// The Services whose endpoints are at one address (the pod's), by port.
struct LocalServices {
    ip: IpAddr,
    by_port: FastMap<u16, Arc<str>>,
}

/// A route config, compiled on first use.
pub(super) struct RouteEntry {
    config: Bytes,
    table: OnceLock<Arc<RouteTable>>,
}

/// A cluster's config and endpoints, its balancer built on first use.
pub(super) struct ClusterEntry {
    config: Bytes,
    endpoints: Option<Bytes>,
    /// For a DNS cluster: the addresses of its names.
    dns: Option<Resolved>,
    cluster: OnceLock<Arc<Cluster>>,
}
// === impl Snapshot ===

impl Snapshot {
    /// Validates and compiles a config. What `previous` had built is built now, its endpoint
    /// load state carried over, and its DNS clusters' names keep their addresses. Returns every
    /// problem at once; nothing is partially applied.
    pub fn compile(
        source: EncodedConfig,
        previous: Option<&Snapshot>,
    ) -> Result<Self, Vec<String>> {
        let resolved = previous.map(|p| p.resolved.clone()).unwrap_or_default();
        Self::compile_with(source, previous, resolved)
    }

    /// Compiles a config as `compile` does, with `resolved` as its DNS clusters' addresses.
    pub fn compile_with(
        source: EncodedConfig,
        previous: Option<&Snapshot>,
        resolved: Resolved,
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
        let mut dns_names = Vec::new();
        for (i, encoded) in source.clusters.iter().enumerate() {
            let Some(config) = decode::<pb::Cluster>(encoded, "cluster", i, &mut errors) else {
                continue;
            };
            let dns = (config.discovery() == pb::Discovery::Dns).then(|| resolved.clone());
            let entry = ClusterEntry {
                config: encoded.clone(),
                endpoints: endpoints.remove(config.name.as_str()).cloned(),
                dns,
                cluster: OnceLock::new(),
            };
            let assignment = entry.assignment();
            let at = format!("cluster {:?}", config.name);
            check_cluster(&config, &at, &mut errors);
            let has_endpoints = assignment.as_ref().is_some_and(|a| !a.endpoints.is_empty());
            if config.discovery() == pb::Discovery::OriginalDst && has_endpoints {
                errors.push(format!("{at}: an ORIGINAL_DST cluster takes no endpoints"));
            }
            if entry.dns.is_some() {
                dns_names.extend(dns_names_of(assignment.as_ref()));
            }
            let peers = EndpointPeers::of(assignment.as_ref());
            let specs = endpoint_specs(
                assignment.as_ref(),
                &peers,
                entry.dns.as_ref(),
                &at,
                &mut errors,
            );
            let hot = previous
                .and_then(|p| p.clusters.get(&config.name))
                .and_then(|e| e.cluster.get());
            if let Some(hot) = hot {
                let cluster = Cluster::build(&config, specs, peers, Some(hot));
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

        dns_names.sort();
        dns_names.dedup();

        let mut outbound = FastMap::default();
        let mut outbound_any = FastMap::default();
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
                Direction::Outbound if listener.addr.ip().is_unspecified() => outbound_any
                    .insert(listener.addr.port(), listener.clone())
                    .is_some(),
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
        let mut telemetry_configs = Vec::new();
        for (i, encoded) in source.telemetry.iter().enumerate() {
            if let Some(config) = decode::<pb::Telemetry>(encoded, "telemetry", i, &mut errors) {
                telemetry_configs.push(config);
            }
        }
        let telemetry = TelemetryPolicy::compile(&telemetry_configs, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            telemetry,
            resolved,
            dns_names,
            registered: OnceLock::new(),
            local_services: OnceLock::new(),
            version: previous.map_or(1, |p| p.version + 1),
            source,
            outbound,
            outbound_any,
            inbound,
            explicit,
            routes,
            clusters,
        })
    }

    /// The config's telemetry.
    pub fn telemetry(&self) -> &TelemetryPolicy {
        &self.telemetry
    }

    /// Starts (or reuses) the span exporter the config's telemetry names.
    pub fn bind_telemetry(&mut self, tracer: &Tracer) -> anyhow::Result<()> {
        self.telemetry.bind(tracer)
    }

    /// The config this snapshot was compiled from.
    pub fn source(&self) -> &EncodedConfig {
        &self.source
    }

    /// The names the config's DNS clusters resolve, sorted.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The config this snapshot was compiled from, decoded (for `/config_dump`).
    pub fn config(&self) -> pb::ProxyConfig {
        // Every resource decoded when the snapshot was compiled.
        self.source.decode().unwrap_or_default()
    }

    /// The listener for captured outbound traffic to `dst`: its own, else the one at 0.0.0.0
    /// on its port, else the one at 0.0.0.0 for every port.
    pub fn outbound_listener(&self, dst: OrigDstAddr) -> Option<&Arc<ListenerConfig>> {
        (self.outbound.get(&dst.0))
            .or_else(|| self.outbound_any.get(&dst.0.port()))
            .or_else(|| self.outbound_any.get(&0))
    }

    /// Whether `addr` is an endpoint of some cluster in the config (resolved DNS names
    /// included): a destination the registry knows even without a listener.
    pub fn is_registered(&self, addr: SocketAddr) -> bool {
        let registered = self.registered.get_or_init(|| {
            let mut all = HashSet::new();
            for entry in self.clusters.values() {
                let assignment = entry.assignment();
                let peers = EndpointPeers::default();
                let specs = endpoint_specs(
                    assignment.as_ref(),
                    &peers,
                    entry.dns.as_ref(),
                    "",
                    &mut Vec::new(),
                );
                all.extend(specs.into_iter().map(|s| s.addr));
            }
            all
        });
        registered.contains(&addr)
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

    /// The clusters built so far (those traffic has used), in no order.
    pub fn clusters_in_use(&self) -> impl Iterator<Item = &Arc<Cluster>> + '_ {
        self.clusters.values().filter_map(|e| e.cluster.get())
    }

    /// Every endpoint address of the clusters built so far: connections exist only to those,
    /// so these are what pruning connection pools must keep.
    pub fn endpoint_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.clusters_in_use()
            .flat_map(|c| c.balancer.endpoints().iter().map(|e| e.addr()))
    }

    /// The Service the endpoint at `addr` (this pod's address and a port) serves, as its
    /// host: the first by name when several do.
    pub fn local_service(&self, addr: SocketAddr) -> Option<&Arc<str>> {
        let local = self.local_services.get_or_init(|| {
            let mut by_port: FastMap<u16, Arc<str>> = FastMap::default();
            for (name, entry) in &self.clusters {
                let Some(assignment) = entry.assignment() else {
                    continue;
                };
                for endpoint in &assignment.endpoints {
                    let Ok(at) = endpoint.address.parse::<SocketAddr>() else {
                        continue;
                    };
                    if at.ip() == addr.ip() {
                        let service = service_of(name);
                        let slot = by_port.entry(at.port()).or_insert_with(|| service.clone());
                        if service < *slot {
                            *slot = service;
                        }
                    }
                }
            }
            LocalServices {
                ip: addr.ip(),
                by_port,
            }
        });
        (local.ip == addr.ip())
            .then(|| local.by_port.get(&addr.port()))
            .flatten()
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
            let peers = EndpointPeers::of(assignment.as_ref());
            let specs = endpoint_specs(
                assignment.as_ref(),
                &peers,
                self.dns.as_ref(),
                &at,
                &mut Vec::new(),
            );
            Arc::new(Cluster::build(&config, specs, peers, None))
        })
    }
}

pub(super) fn parse_addr(addr: &str, at: &str, errors: &mut Vec<String>) -> Option<SocketAddr> {
    addr.parse()
        .map_err(|_| errors.push(format!("{at}: {addr:?} is not an ip:port address")))
        .ok()
}
