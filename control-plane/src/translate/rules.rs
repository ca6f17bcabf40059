//! Routing rules between the users' objects and the proxy's config: what VirtualServices and
//! Gateway API routes compile to once (checked, clusters named), and how they are emitted for
//! one proxy and one service port (filtered by port and source, hash policy attached).

use std::collections::{BTreeMap, HashMap};

use mesh_proto::config::v1::{
    DirectResponse, FaultInjection, HashPolicy, HeaderChanges, MirrorPolicy, Redirect, RetryPolicy,
    Rewrite, Route, RouteAction, RouteMatch, TcpRoute, WeightedCluster, route,
};
use pbjson_types::Duration;

use super::names::cluster_name;

/// The retry conditions of the proxy's default policy (Istio's, without its retry of every
/// 503): also what a policy that names none retries on.
pub(crate) const DEFAULT_RETRY_ON: &[&str] = &[
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
];

/// More retries than this is a mistake, not a policy (the proxy refuses it too).
pub(crate) const MAX_RETRY_ATTEMPTS: i32 = 100;

/// The proxy's default retry policy spelled out, for rules that change a part of it.
pub(crate) fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        retry_on: DEFAULT_RETRY_ON.iter().map(|c| (*c).to_owned()).collect(),
        ..RetryPolicy::default()
    }
}

/// The gateway name Istio uses for sidecars.
pub(crate) const MESH: &str = "mesh";
use crate::{node::ProxyNode, store::ObjectRef};

/// Which clients and ports a rule applies to, beyond the request itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Scope {
    /// Only traffic to this service port.
    pub port: Option<u32>,
    /// Only clients carrying these labels.
    pub source_labels: BTreeMap<String, String>,
    /// Only clients in this namespace.
    pub source_namespace: Option<String>,
    /// Only these gateways (`namespace/name`, or `mesh` for sidecars); unset means any.
    pub gateways: Option<Vec<String>>,
}

impl Scope {
    /// Whether the rule applies to `node`'s traffic to `port`, on `gateway` (`None` for a
    /// sidecar).
    pub(crate) fn admits(&self, port: u32, node: &ProxyNode, gateway: Option<&str>) -> bool {
        let gateway = gateway.unwrap_or(MESH);
        self.port.is_none_or(|p| p == port)
            && self
                .gateways
                .as_ref()
                .is_none_or(|list| list.iter().any(|g| g == gateway))
            && self
                .source_namespace
                .as_ref()
                .is_none_or(|ns| *ns == node.namespace)
            && self
                .source_labels
                .iter()
                .all(|(k, v)| node.labels.get(k) == Some(v))
    }
}

/// The port of a destination cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PortChoice {
    /// This port.
    Fixed(u32),
    /// The port the client connected to (Istio's rule when a destination names no port).
    Listener,
}

/// A destination service (or subset) with its share and header changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dest {
    /// Service host.
    pub host: String,
    /// Subset name; empty for the whole service.
    pub subset: String,
    /// Service port.
    pub port: PortChoice,
    /// Relative weight.
    pub weight: u32,
    /// Request header changes when this destination is chosen.
    pub request_headers: Option<HeaderChanges>,
    /// Response header changes when this destination is chosen.
    pub response_headers: Option<HeaderChanges>,
}

impl Dest {
    /// A whole-service destination with weight 1 and no header changes.
    pub(crate) fn service(host: &str, port: PortChoice) -> Self {
        Dest {
            host: host.to_owned(),
            subset: String::new(),
            port,
            weight: 1,
            request_headers: None,
            response_headers: None,
        }
    }

    /// The cluster name, given the port the client connected to.
    pub(crate) fn cluster(&self, listener_port: u32) -> String {
        let port = match self.port {
            PortChoice::Fixed(port) => port,
            PortChoice::Listener => listener_port,
        };
        cluster_name(port, &self.subset, &self.host)
    }
}

/// Forwarding and its policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Forward {
    /// Weighted destinations.
    pub dests: Vec<Dest>,
    /// Whole-request timeout.
    pub timeout: Option<Duration>,
    /// Retries.
    pub retries: Option<RetryPolicy>,
    /// Mirror destinations and the share of requests each gets (unset: all).
    pub mirrors: Vec<(Dest, Option<f64>)>,
    /// Injected faults.
    pub fault: Option<FaultInjection>,
    /// Rewrites.
    pub rewrite: Option<Rewrite>,
}

/// What a rule does with a matching request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Forward to destinations.
    Forward(Box<Forward>),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    Direct(DirectResponse),
}

/// One HTTP rule: scope, request match, action and header changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpRule {
    /// Route name in the proxy config.
    pub name: String,
    /// Clients and ports it applies to.
    pub scope: Scope,
    /// The request match.
    pub matcher: RouteMatch,
    /// What to do.
    pub action: Action,
    /// Request header changes.
    pub request_headers: Option<HeaderChanges>,
    /// Response header changes.
    pub response_headers: Option<HeaderChanges>,
}

/// One TCP or TLS rule: scope, server names (TLS only) and destinations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TcpRule {
    /// Clients and ports it applies to.
    pub scope: Scope,
    /// TLS server names it applies to; empty for TCP rules.
    pub sni: Vec<String>,
    /// Weighted destinations.
    pub dests: Vec<Dest>,
}

/// The routing one object (or one set of Gateway API routes) gives a service.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RouteSet {
    /// Where the rules come from.
    pub origins: Vec<ObjectRef>,
    /// HTTP rules, in order.
    pub http: Vec<HttpRule>,
    /// TCP rules, in order.
    pub tcp: Vec<TcpRule>,
    /// TLS rules, in order.
    pub tls: Vec<TcpRule>,
}

/// What emission needs to know about one proxy and one service port.
pub(crate) struct EmitContext<'a> {
    /// The port the client connected to.
    pub port: u32,
    /// The proxy.
    pub node: &'a ProxyNode,
    /// Clusters this proxy has, with the hash policy of their load balancer.
    pub clusters: &'a HashMap<String, Option<HashPolicy>>,
    /// The gateway (`namespace/name`) whose listener is being built; `None` for a sidecar.
    pub gateway: Option<&'a str>,
}

impl EmitContext<'_> {
    /// The weighted cluster for a destination, or the missing cluster's name.
    fn weighted(&self, dest: &Dest) -> Result<WeightedCluster, String> {
        let cluster = dest.cluster(self.port);
        if !self.clusters.contains_key(&cluster) {
            return Err(cluster);
        }
        Ok(WeightedCluster {
            cluster,
            weight: dest.weight,
            request_headers: dest.request_headers.clone(),
            response_headers: dest.response_headers.clone(),
        })
    }
}

impl RouteSet {
    /// The client label keys its rules select on (`sourceLabels`).
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        let http = self.http.iter().map(|r| &r.scope);
        let tcp = self.tcp.iter().chain(&self.tls).map(|r| &r.scope);
        http.chain(tcp)
            .flat_map(|scope| scope.source_labels.keys().map(String::as_str))
    }

    /// The HTTP routes for this proxy and port; `Err` names a cluster the proxy lacks.
    pub(crate) fn http_routes(&self, cx: &EmitContext<'_>) -> Result<Vec<Route>, String> {
        self.http
            .iter()
            .filter(|rule| rule.scope.admits(cx.port, cx.node, cx.gateway))
            .map(|rule| rule.emit(cx))
            .collect()
    }

    /// Destinations of the first TCP rule for this proxy and port, if any applies.
    pub(crate) fn tcp_destinations(
        &self,
        cx: &EmitContext<'_>,
    ) -> Result<Option<Vec<WeightedCluster>>, String> {
        self.tcp
            .iter()
            .find(|rule| rule.scope.admits(cx.port, cx.node, cx.gateway))
            .map(|rule| rule.dests.iter().map(|d| cx.weighted(d)).collect())
            .transpose()
    }

    /// SNI routes of the TLS rules for this proxy and port.
    pub(crate) fn sni_routes(&self, cx: &EmitContext<'_>) -> Result<Vec<TcpRoute>, String> {
        self.tls
            .iter()
            .filter(|rule| rule.scope.admits(cx.port, cx.node, cx.gateway))
            .map(|rule| {
                Ok(TcpRoute {
                    destinations: rule
                        .dests
                        .iter()
                        .map(|d| cx.weighted(d))
                        .collect::<Result<_, _>>()?,
                    sni: rule.sni.clone(),
                    sni_routes: Vec::new(),
                })
            })
            .collect()
    }
}

impl HttpRule {
    fn emit(&self, cx: &EmitContext<'_>) -> Result<Route, String> {
        let action = match &self.action {
            Action::Forward(forward) => {
                let forward = forward.as_ref();
                let destinations = forward
                    .dests
                    .iter()
                    .map(|d| cx.weighted(d))
                    .collect::<Result<Vec<_>, _>>()?;
                let hash_policy = destinations
                    .first()
                    .and_then(|d| cx.clusters.get(&d.cluster).cloned().flatten());
                let mirrors = forward
                    .mirrors
                    .iter()
                    .map(|(dest, percentage)| {
                        cx.weighted(dest).map(|w| MirrorPolicy {
                            cluster: w.cluster,
                            percentage: *percentage,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                route::Action::Route(RouteAction {
                    destinations,
                    timeout: forward.timeout,
                    retries: forward.retries.clone(),
                    mirrors,
                    fault: forward.fault,
                    rewrite: forward.rewrite.clone(),
                    hash_policy,
                })
            }
            Action::Redirect(redirect) => route::Action::Redirect(redirect.clone()),
            Action::Direct(direct) => route::Action::DirectResponse(direct.clone()),
        };
        Ok(Route {
            name: self.name.clone(),
            r#match: Some(self.matcher.clone()),
            action: Some(action),
            request_headers: self.request_headers.clone(),
            response_headers: self.response_headers.clone(),
        })
    }
}
