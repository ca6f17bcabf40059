//! A cluster as the proxy runs it: its endpoints' balancer, connection settings and how
//! connections to its endpoints are secured (mesh mutual TLS, TLS origination or plain text),
//! built from its validated config.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use mesh_proto::config::v1::{self as pb, endpoint::Health};

use super::{AppProtocol, snapshot::parse_addr};
use crate::dns::Resolved;
use crate::{
    balance::{Balancer, Endpoint, EndpointSpec, Outcome, OutlierPolicy},
    http::{Keepalive, RetryBudget, UpstreamError},
    istio_metrics::{LabelSet, Protocol, Reporter, RequestLabels, SmallCache},
    limits::Limits,
    metrics::{ClusterMetrics, Direction, Metrics, Peers},
    tls::{Carried, ClientConfigs, ClientTls, MeshTls, Origination},
    workload::{UNKNOWN, Workload},
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
    /// Keeps the cluster's retries a small share of its requests.
    pub retry_budget: Arc<RetryBudget>,
    /// Limits on connections, waiting requests, requests and retries (circuit breaking).
    pub limits: Limits,
    /// Requests sent on one connection before it is closed; 0 for no limit.
    pub max_requests_per_connection: u32,
    /// TCP keepalive on connections to the endpoints, when set.
    pub keepalive: Option<Keepalive>,
    /// Speak HTTP/2 to the endpoints for HTTP/1.1 clients.
    pub h2_upgrade: bool,
    /// How connections to the endpoints are secured.
    pub tls: UpstreamTls,
    /// It has no endpoints: each connection goes to its original destination.
    pub original_dst: bool,
    /// For `UpstreamTls::Originate`: the settings, loaded into `origination` on first use.
    origination_settings: Option<Box<pb::UpstreamTls>>,
    origination: OnceLock<Option<Origination>>,
    /// The local address connections come from (127.0.0.6 for the local app), else any.
    pub source: Option<IpAddr>,
    /// The identities the endpoints may present (their service accounts).
    peer_identities: Arc<[String]>,
    /// Client TLS configs expecting `peer_identities`, made on first use.
    client_tls: OnceLock<Option<ClientConfigs>>,
    /// Per direction: the handles for traffic with no proven peers.
    metrics: [OnceLock<Arc<ClusterMetrics>>; 3],
    /// Per direction and identity in `peer_identities`: the handles for mesh TLS to endpoints
    /// of that identity.
    peer_metrics: [OnceLock<PeerSlots>; 3],
    /// The workloads of the endpoints.
    workloads: Arc<[Arc<Workload>]>,
    /// The Service host the cluster stands for (from its `outbound|port|subset|host` name),
    /// else its name.
    service: Arc<str>,
    /// The standard metrics' label sets of requests from this proxy, by endpoint.
    label_sets: SmallCache<EndpointKey, LabelSet>,
}

/// What tells the label sets of requests to a cluster's endpoints apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EndpointKey {
    workload: Option<u16>,
    /// The endpoint's identity, when the request went in mesh TLS.
    identity: Option<u16>,
    protocol: Protocol,
}

/// One metric handle slot per identity of a cluster's endpoints, filled on first use.
type PeerSlots = Box<[OnceLock<Arc<ClusterMetrics>>]>;

/// How connections to a cluster's endpoints are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTls {
    /// Mesh mutual TLS to those with a sidecar, plain text to the rest (auto mTLS): the default.
    Auto,
    /// Mesh mutual TLS to all of them (ISTIO_MUTUAL).
    Mesh,
    /// Plain text (DISABLE).
    Disable,
    /// TLS origination (SIMPLE or MUTUAL).
    Originate,
}

// === impl Cluster ===

impl Cluster {
    /// Builds a cluster from its validated config; load, budget and limit counters carry
    /// over from `previous`.
    pub(super) fn build(
        config: &pb::Cluster,
        specs: Vec<EndpointSpec>,
        peers: EndpointPeers,
        previous: Option<&Cluster>,
    ) -> Self {
        let pool = config.connection_pool.unwrap_or_default();
        use pb::upstream_tls::Mode;
        let tls = match config.tls.as_ref().map(|t| t.mode()) {
            None => UpstreamTls::Auto,
            Some(Mode::MeshMutual) => UpstreamTls::Mesh,
            Some(Mode::Disable) => UpstreamTls::Disable,
            Some(Mode::Simple | Mode::Mutual) => UpstreamTls::Originate,
        };
        Cluster {
            tls,
            original_dst: config.discovery() == pb::Discovery::OriginalDst,
            origination_settings: (tls == UpstreamTls::Originate)
                .then(|| config.tls.clone().map(Box::new))
                .flatten(),
            origination: OnceLock::new(),
            source: None,
            peer_identities: peers.identities.into(),
            workloads: peers.workloads.into(),
            service: service_of(&config.name),
            label_sets: SmallCache::default(),
            client_tls: OnceLock::new(),
            name: config.name.clone(),
            balancer: Balancer::new(
                config.lb_policy(),
                specs,
                config.ring_size,
                previous.map(|p| &p.balancer),
            )
            .with_outlier_detection(
                (config.outlier_detection.as_ref()).map(OutlierPolicy::from_config),
            ),
            protocol: AppProtocol::from_pb(config.protocol()),
            connect_timeout: crate::route::duration(pool.connect_timeout.as_ref())
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            max_idle_per_endpoint: match pool.max_idle_per_endpoint {
                0 => DEFAULT_MAX_IDLE_PER_ENDPOINT,
                n => n as usize,
            },
            idle_timeout: crate::route::duration(pool.idle_timeout.as_ref())
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            retry_budget: previous.map(|p| p.retry_budget.clone()).unwrap_or_default(),
            limits: Limits::new(&pool, previous.map(|p| &p.limits)),
            max_requests_per_connection: pool.max_requests_per_connection,
            keepalive: pool.tcp_keepalive.as_ref().map(|k| Keepalive {
                time: crate::route::duration(k.time.as_ref()),
                interval: crate::route::duration(k.interval.as_ref()),
                probes: (k.probes > 0).then_some(k.probes),
            }),
            h2_upgrade: pool.h2_upgrade,
            metrics: Default::default(),
            peer_metrics: Default::default(),
        }
    }

    /// A one-endpoint cluster for traffic config does not describe (passthrough, local app),
    /// connected from `source` when given.
    pub fn direct(name: String, addr: SocketAddr, source: Option<IpAddr>) -> Self {
        Cluster {
            service: service_of(&name),
            name,
            balancer: Balancer::new(
                pb::cluster::LbPolicy::RoundRobin,
                vec![EndpointSpec {
                    addr,
                    weight: 1,
                    healthy: true,
                    mesh_tls: false,
                    identity: None,
                    workload: None,
                }],
                0,
                None,
            ),
            tls: UpstreamTls::Disable,
            original_dst: false,
            origination_settings: None,
            origination: OnceLock::new(),
            source,
            peer_identities: Arc::new([]),
            workloads: Arc::new([]),
            label_sets: SmallCache::default(),
            client_tls: OnceLock::new(),
            protocol: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_idle_per_endpoint: DEFAULT_MAX_IDLE_PER_ENDPOINT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            retry_budget: Arc::default(),
            limits: Limits::default(),
            max_requests_per_connection: 0,
            keepalive: None,
            h2_upgrade: false,
            metrics: Default::default(),
            peer_metrics: Default::default(),
        }
    }

    /// Counts one try's outcome for outlier detection; an ejection is logged and counted.
    pub fn report_outcome(&self, metrics: &Metrics, endpoint: &Endpoint, outcome: Outcome) {
        if let Some(reason) = self.balancer.report(endpoint, outcome) {
            tracing::warn!(cluster = %self.name, endpoint = %endpoint.addr(),
                reason = reason.as_str(), "endpoint ejected by outlier detection");
            metrics.outlier_ejected(&self.name, reason);
        }
    }

    /// How a connection to `endpoint` that carries `carried` is secured: mesh mutual TLS when
    /// the cluster's mode and the endpoint say so and the proxy has an identity, TLS origination
    /// when the cluster says so, else `None` for plain text. An error when TLS is wanted and its
    /// settings cannot be used: never plain text instead.
    pub fn client_tls(
        &self,
        endpoint: &Endpoint,
        mesh: Option<&MeshTls>,
        carried: Carried,
    ) -> Result<Option<ClientTls<'_>>, UpstreamError> {
        let unusable = || UpstreamError::TlsSettings {
            cluster: self.name.clone(),
        };
        if self.tls == UpstreamTls::Originate {
            let origination = self.origination.get_or_init(|| self.load_origination());
            return match origination {
                Some(origination) => Ok(Some(origination.client_tls(carried))),
                None => Err(unusable()),
            };
        }
        let Some(mesh) = mesh.filter(|_| self.wants_mesh_tls(endpoint)) else {
            return Ok(None);
        };
        let configs = self.client_tls.get_or_init(|| {
            mesh.client_configs(self.peer_identities.clone())
                .map_err(|error| {
                    tracing::error!(cluster = %self.name, %error, "cannot make the mesh TLS config");
                })
                .ok()
        });
        configs
            .as_ref()
            .map(|c| Some(c.get(carried)))
            .ok_or_else(unusable)
    }

    /// Whether connections to `endpoint` are to be mesh mutual TLS (when the proxy has an
    /// identity).
    pub fn wants_mesh_tls(&self, endpoint: &Endpoint) -> bool {
        match self.tls {
            UpstreamTls::Auto => endpoint.mesh_tls(),
            UpstreamTls::Mesh => true,
            UpstreamTls::Disable | UpstreamTls::Originate => false,
        }
    }

    /// Whether some endpoint may be reached in mesh mutual TLS.
    pub fn may_use_mesh_tls(&self) -> bool {
        matches!(self.tls, UpstreamTls::Auto | UpstreamTls::Mesh)
    }

    /// The standard metrics' label set of requests from `source` (proving `own` in mesh TLS)
    /// to `endpoint` (`None`: none was reached), made on first use; `None` past the cap.
    pub fn label_set(
        &self,
        metrics: &Metrics,
        source: &Arc<Workload>,
        mesh: Option<&MeshTls>,
        endpoint: Option<&Endpoint>,
        protocol: Protocol,
    ) -> Option<Arc<LabelSet>> {
        let mesh = mesh.filter(|_| endpoint.is_some_and(|e| self.wants_mesh_tls(e)));
        let key = EndpointKey {
            workload: endpoint.and_then(Endpoint::workload),
            identity: endpoint
                .and_then(Endpoint::identity)
                .filter(|_| mesh.is_some()),
            protocol,
        };
        if let Some(found) = self.label_sets.get(&key) {
            return Some(found);
        }
        let unknown = || Arc::<str>::from(UNKNOWN);
        let labels = RequestLabels {
            reporter: Reporter::Source,
            source: source.clone(),
            source_principal: (mesh.and_then(MeshTls::own_identity))
                .map_or_else(unknown, |own| own.as_str().into()),
            destination: (key.workload)
                .and_then(|i| self.workloads.get(usize::from(i)).cloned())
                .unwrap_or_default(),
            destination_principal: (key.identity)
                .and_then(|i| self.peer_identities.get(usize::from(i)))
                .map_or_else(unknown, |id| id.as_str().into()),
            destination_service: self.service.clone(),
            request_protocol: protocol,
            connection_security_policy: UNKNOWN,
        };
        let set = metrics.standard.label_set(&labels)?;
        self.label_sets.insert(key, set.clone());
        Some(set)
    }

    /// The cluster's TLS origination, its files read; `None` (and a log line) when they do not
    /// load.
    fn load_origination(&self) -> Option<Origination> {
        let settings = self.origination_settings.as_deref()?;
        Origination::load(settings)
            .map_err(|error| {
                tracing::error!(cluster = %self.name, %error, "cannot originate TLS");
            })
            .ok()
    }

    /// This cluster's metric handles for traffic of one direction with no proven peers (plain
    /// text outbound, or no endpoint reached), resolved on first use.
    pub fn metrics(&self, metrics: &Metrics, direction: Direction) -> &ClusterMetrics {
        let slot = &self.metrics[direction as usize];
        slot.get_or_init(|| metrics.cluster(direction, &self.name, Peers::UNKNOWN))
    }

    /// The handles for traffic to `endpoint` over a connection secured with `tls`: with this
    /// proxy's identity (from `mesh`) and the endpoint's when it is mesh TLS, else `metrics`'.
    pub fn endpoint_metrics(
        &self,
        metrics: &Metrics,
        direction: Direction,
        endpoint: &Endpoint,
        tls: Option<ClientTls<'_>>,
        mesh: Option<&MeshTls>,
    ) -> &ClusterMetrics {
        let (Some(mesh), Some(index), true) = (
            mesh,
            endpoint.identity().map(usize::from),
            tls.is_some_and(|t| t.is_mesh()),
        ) else {
            return self.metrics(metrics, direction);
        };
        let slots = self.peer_metrics[direction as usize].get_or_init(|| {
            self.peer_identities
                .iter()
                .map(|_| OnceLock::new())
                .collect()
        });
        match (slots.get(index), self.peer_identities.get(index)) {
            (Some(slot), Some(server)) => slot.get_or_init(|| {
                let own = mesh.own_identity();
                let own = own.as_deref().unwrap_or("unknown");
                metrics.cluster(direction, &self.name, Peers::outbound(own, server))
            }),
            _ => self.metrics(metrics, direction),
        }
    }
}

/// The Service host a cluster named `outbound|port|subset|host` stands for; else its name.
pub(super) fn service_of(name: &str) -> Arc<str> {
    match name
        .strip_prefix("outbound|")
        .and_then(|n| n.splitn(3, '|').nth(2))
    {
        Some(host) if !host.is_empty() => host.into(),
        _ => name.into(),
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
    if config.discovery() == pb::Discovery::OriginalDst
        && matches!(
            config.tls.as_ref().map(|t| t.mode()),
            Some(pb::upstream_tls::Mode::MeshMutual)
        )
    {
        errors.push(format!(
            "{at}: an ORIGINAL_DST cluster cannot speak mesh TLS (its destinations are unknown)"
        ));
    }
    if let Some(tls) = config.tls.as_ref().filter(|t| {
        matches!(
            t.mode(),
            pb::upstream_tls::Mode::Simple | pb::upstream_tls::Mode::Mutual
        )
    }) && let Err(error) = Origination::load(tls)
    {
        errors.push(format!("{at}: TLS origination: {error}"));
    }
}

/// The endpoints of a cluster's assignment, each with its indexes in `peers`; an address that
/// does not parse is a problem. In a DNS cluster (`dns` given) each "name:port" becomes one
/// endpoint per address the name has.
pub(super) fn endpoint_specs(
    assignment: Option<&pb::ClusterLoadAssignment>,
    peers: &EndpointPeers,
    dns: Option<&Resolved>,
    at: &str,
    errors: &mut Vec<String>,
) -> Vec<EndpointSpec> {
    let Some(assignment) = assignment else {
        return Vec::new();
    };
    let mut specs = Vec::with_capacity(assignment.endpoints.len());
    for e in &assignment.endpoints {
        let spec = |addr| EndpointSpec {
            addr,
            weight: e.weight.max(1),
            healthy: e.health() == Health::Healthy,
            mesh_tls: e.mesh_tls,
            identity: (peers.identities.binary_search(&e.identity).ok())
                .and_then(|i| u16::try_from(i).ok()),
            workload: (peers.workloads)
                .binary_search_by(|w| w.as_ref().cmp(&endpoint_workload(e)))
                .ok()
                .and_then(|i| u16::try_from(i).ok()),
        };
        match dns {
            None => specs.extend(parse_addr(&e.address, at, errors).map(spec)),
            Some(resolved) => match parse_dns_addr(&e.address) {
                Ok(DnsAddr::Ip(addr)) => specs.push(spec(addr)),
                Ok(DnsAddr::Name(name, port)) => specs.extend(
                    (resolved.addrs(&name.to_ascii_lowercase()).iter())
                        .map(|ip| spec(SocketAddr::new(*ip, port))),
                ),
                Err(error) => errors.push(format!("{at}: {error}")),
            },
        }
    }
    specs
}

/// The names a DNS cluster's endpoints resolve (those that are not already addresses).
pub(super) fn dns_names_of(assignment: Option<&pb::ClusterLoadAssignment>) -> Vec<String> {
    (assignment.iter().flat_map(|a| &a.endpoints))
        .filter_map(|e| match parse_dns_addr(&e.address) {
            Ok(DnsAddr::Name(name, _)) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A DNS cluster endpoint's address.
enum DnsAddr<'a> {
    /// Already an address.
    Ip(SocketAddr),
    /// A name to resolve, and the port.
    Name(&'a str, u16),
}

/// Parses "name:port" (or "ip:port") of a DNS cluster's endpoint.
fn parse_dns_addr(text: &str) -> Result<DnsAddr<'_>, String> {
    if let Ok(addr) = text.parse() {
        return Ok(DnsAddr::Ip(addr));
    }
    let invalid = || format!("endpoint address {text:?} is not name:port");
    let (name, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(invalid)?;
    let name = name.trim_end_matches('.');
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "endpoint address {text:?}: {name:?} is not a DNS name"
        ));
    }
    Ok(DnsAddr::Name(name, port))
}

/// Who a cluster's endpoints are: the identities they may present and their workloads, each
/// sorted, each once.
#[derive(Default)]
pub(super) struct EndpointPeers {
    identities: Vec<String>,
    workloads: Vec<Arc<Workload>>,
}

impl EndpointPeers {
    /// The peers of the endpoints in `assignment`.
    pub(super) fn of(assignment: Option<&pb::ClusterLoadAssignment>) -> Self {
        let endpoints = || assignment.iter().flat_map(|a| &a.endpoints);
        let mut identities: Vec<String> = endpoints()
            .filter(|e| !e.identity.is_empty())
            .map(|e| e.identity.clone())
            .collect();
        identities.sort();
        identities.dedup();
        let mut workloads: Vec<Workload> = endpoints()
            .filter(|e| !e.workload.is_empty())
            .map(endpoint_workload)
            .collect();
        workloads.sort();
        workloads.dedup();
        EndpointPeers {
            identities,
            workloads: workloads.into_iter().map(Arc::new).collect(),
        }
    }
}

/// The workload an endpoint says it belongs to.
fn endpoint_workload(endpoint: &pb::Endpoint) -> Workload {
    let labels = endpoint.labels.iter().map(|(k, v)| (k.clone(), v.clone()));
    Workload::new(&endpoint.workload, &endpoint.namespace, &labels.collect())
}
