//! A listener as the proxy serves it: where its connections come from, the protocol, the
//! route table or TCP routing that takes them, and for inbound its peers and policies; checked
//! against the snapshot's route configs and clusters when compiled.

use std::{net::SocketAddr, sync::Arc};

use mesh_proto::config::v1::{self as pb, listener::Mode};

use super::snapshot::{ClusterEntry, RouteEntry, parse_addr};
use crate::{authz::Authorizer, fast_hash::FastMap, metrics::Direction, tls::Termination};

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
    /// Explicit: the TLS it terminates, if any.
    pub tls: Option<Arc<Termination>>,
    /// Outbound at 0.0.0.0: what becomes of traffic its routes do not take.
    pub unmatched: Option<pb::Unmatched>,
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

// === impl ListenerConfig ===

impl ListenerConfig {
    pub(super) fn compile(
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
        // A catch-all listener's unrouted traffic goes by `unmatched`; others must route it.
        let catch_all = direction == Direction::Outbound && addr.ip().is_unspecified();
        let must_route = direction != Direction::Inbound && !catch_all;
        let is_http = matches!(protocol, Some(AppProtocol::Http1 | AppProtocol::Http2));
        if is_http && route_config.is_none() && must_route {
            errors.push(format!("{at}: an HTTP listener needs route_config"));
        }
        if matches!(protocol, Some(AppProtocol::Tcp | AppProtocol::Tls))
            && tcp.is_none()
            && must_route
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
        let unmatched = match pb::Unmatched::try_from(config.unmatched) {
            Ok(unmatched) => catch_all.then_some(unmatched),
            Err(_) => {
                errors.push(format!("{at}: unknown unmatched {}", config.unmatched));
                None
            }
        };
        if !catch_all && config.unmatched() == pb::Unmatched::Block {
            errors.push(format!(
                "{at}: unmatched is for OUTBOUND listeners at 0.0.0.0"
            ));
        }
        let tls = config.tls.as_ref().and_then(|tls| {
            if direction != Direction::Explicit {
                errors.push(format!("{at}: tls is for EXPLICIT listeners"));
            }
            let http = route_config.is_some();
            Termination::compile(tls, http, &at, errors)
        });
        Some(ListenerConfig {
            name: config.name.clone(),
            addr,
            direction,
            protocol,
            route_config,
            tcp,
            mtls,
            authz: (!authz.is_empty()).then(|| Arc::new(authz)),
            tls,
            unmatched,
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
