//! Gateway API routes (HTTPRoute, GRPCRoute; TLSRoute and TCPRoute for Gateways only):
//! compiled once, then attached to Services (the
//! mesh form, GAMMA) or Gateways. In the mesh form, routes in the Service's namespace
//! (producer routes) apply to every client; routes in another namespace (consumer routes)
//! apply to clients in that namespace only, in place of the producer routes.

/// Converts parent references of any route kind.
macro_rules! parent_refs {
    ($refs:expr, $namespace:expr) => {
        $refs
            .iter()
            .flatten()
            .map(|p| ParentRef {
                group: p
                    .group
                    .clone()
                    .unwrap_or_else(|| "gateway.networking.k8s.io".to_owned()),
                kind: p.kind.clone().unwrap_or_else(|| "Gateway".to_owned()),
                namespace: p.namespace.clone().unwrap_or_else(|| $namespace.to_owned()),
                name: p.name.clone(),
                port: p.port.and_then(|port| u32::try_from(port).ok()),
                section_name: p.section_name.clone(),
            })
            .collect()
    };
}

mod backends;
mod convert;
mod l4;
mod model;
mod precedence;
mod retries;

use std::collections::HashMap;

use gateway_api::{
    experimental::{httproutes::HttpRoute, tcproutes::TcpRoute},
    grpcroutes::GrpcRoute,
    referencegrants::ReferenceGrant,
    tlsroutes::TlsRoute,
};

pub(crate) use backends::granted;
pub(crate) use model::{ParentRef, RouteModel};
pub(crate) use precedence::{Candidate, into_route_set};

use self::{backends::Backends, convert::route_ref};
use super::{
    names::service_host,
    problem::{Problem, Report},
    registry::{Registry, ServiceModel},
    rules::{HttpRule, RouteSet, Scope},
    virtual_service::VirtualServices,
};
use crate::{
    node::ProxyNode,
    store::{Kind, Store},
};

/// Compiles every HTTPRoute and GRPCRoute in the store.
pub(crate) fn compile_routes(
    store: &Store,
    registry: &Registry,
    problems: &mut Vec<Problem>,
) -> Vec<RouteModel> {
    let mut models = Vec::new();
    let grants: Vec<&ReferenceGrant> = store.list::<ReferenceGrant>().map(|g| &**g).collect();
    for route in store.list::<HttpRoute>() {
        let origin = route_ref(Kind::HttpRoute, &route.metadata);
        let mut report = Report::new(&origin);
        let backends = Backends {
            registry,
            grants: &grants,
            route_kind: "HTTPRoute",
            namespace: &origin.namespace,
            parents: service_parents(
                route.spec.parent_refs.iter().flatten().map(|p| {
                    (
                        p.group.as_deref(),
                        p.kind.as_deref(),
                        p.namespace.as_deref(),
                        &p.name,
                    )
                }),
                &origin.namespace,
            ),
        };
        models.push(convert::http_route(route, &backends, &mut report));
        problems.extend(report.into_problems());
    }
    for route in store.list::<GrpcRoute>() {
        let origin = route_ref(Kind::GrpcRoute, &route.metadata);
        let mut report = Report::new(&origin);
        let backends = Backends {
            registry,
            grants: &grants,
            route_kind: "GRPCRoute",
            namespace: &origin.namespace,
            parents: service_parents(
                route.spec.parent_refs.iter().flatten().map(|p| {
                    (
                        p.group.as_deref(),
                        p.kind.as_deref(),
                        p.namespace.as_deref(),
                        &p.name,
                    )
                }),
                &origin.namespace,
            ),
        };
        models.push(convert::grpc_route(route, &backends, &mut report));
        problems.extend(report.into_problems());
    }
    models
}

/// Compiles every TLSRoute and TCPRoute in the store: routes of Gateways' TLS passthrough
/// and TCP listeners.
pub(crate) fn compile_l4_routes(
    store: &Store,
    registry: &Registry,
    problems: &mut Vec<Problem>,
) -> Vec<RouteModel> {
    let grants: Vec<&ReferenceGrant> = store.list::<ReferenceGrant>().map(|g| &**g).collect();
    let mut models = Vec::new();
    for route in store.list::<TlsRoute>() {
        let origin = route_ref(Kind::TlsRoute, &route.metadata);
        let mut report = Report::new(&origin);
        let backends = Backends {
            registry,
            grants: &grants,
            route_kind: "TLSRoute",
            namespace: &origin.namespace,
            parents: Vec::new(),
        };
        models.push(l4::tls_route(route, &backends, &mut report));
        problems.extend(report.into_problems());
    }
    for route in store.list::<TcpRoute>() {
        let origin = route_ref(Kind::TcpRoute, &route.metadata);
        let mut report = Report::new(&origin);
        let backends = Backends {
            registry,
            grants: &grants,
            route_kind: "TCPRoute",
            namespace: &origin.namespace,
            parents: Vec::new(),
        };
        models.push(l4::tcp_route(route, &backends, &mut report));
        problems.extend(report.into_problems());
    }
    models
}

/// The (namespace, name) of the Services among parent references written as (group, kind,
/// namespace, name).
fn service_parents<'a>(
    refs: impl Iterator<
        Item = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a String,
        ),
    >,
    namespace: &str,
) -> Vec<(String, String)> {
    refs.filter(|(group, kind, _, _)| {
        *kind == Some("Service")
            && matches!(group.unwrap_or("gateway.networking.k8s.io"), "" | "core")
    })
    .map(|(_, _, ns, name)| (ns.unwrap_or(namespace).to_owned(), name.clone()))
    .collect()
}

/// The rules of one route, one candidate per match, within `scope`.
pub(crate) fn candidates(route: &RouteModel, scope: Scope) -> impl Iterator<Item = Candidate<'_>> {
    route
        .rules
        .iter()
        .enumerate()
        .flat_map(move |(rule_index, rule)| {
            let scope = scope.clone();
            rule.matches
                .iter()
                .enumerate()
                .map(move |(match_index, matcher)| Candidate {
                    route,
                    rule_index,
                    match_index,
                    rule: HttpRule {
                        name: rule.name.clone(),
                        scope: scope.clone(),
                        matcher: matcher.clone(),
                        action: rule.action.clone(),
                        request_headers: rule.request_headers.clone(),
                        response_headers: rule.response_headers.clone(),
                    },
                })
        })
}

/// Routes attached to one Service host.
#[derive(Debug, Default)]
struct HostRoutes {
    producer: Option<RouteSet>,
    consumers: HashMap<String, RouteSet>,
}

/// Gateway API routes in the mesh form, by Service host.
#[derive(Debug, Default)]
pub(crate) struct MeshRoutes {
    by_host: HashMap<String, HostRoutes>,
}

impl MeshRoutes {
    /// The proxy label keys any attached route selects on.
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.by_host.values().flat_map(|routes| {
            routes
                .producer
                .iter()
                .chain(routes.consumers.values())
                .flat_map(RouteSet::label_keys)
        })
    }

    /// Attaches routes whose parent is a Service; a parent that does not exist is reported.
    pub(crate) fn build(
        models: &[RouteModel],
        registry: &Registry,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut groups: HashMap<(String, Option<String>), Vec<Candidate<'_>>> = HashMap::new();
        for route in models {
            for (i, parent) in route.parents.iter().enumerate() {
                if !parent.is_service() {
                    continue;
                }
                let at = format!("spec.parentRefs[{i}]");
                let host = service_host(&parent.namespace, &parent.name);
                let Some(service) = registry.get(&host) else {
                    problems.push(Problem::error(
                        &route.origin,
                        at,
                        format!(
                            "parent Service {}/{} does not exist; the route is not attached",
                            parent.namespace, parent.name
                        ),
                        "check the name and namespace, or create the Service",
                    ));
                    continue;
                };
                let Some(port) = parent_port(parent, service) else {
                    problems.push(Problem::error(
                        &route.origin,
                        at,
                        format!(
                            "Service {}/{} has no port {}; the route is not attached",
                            parent.namespace,
                            parent.name,
                            parent
                                .section_name
                                .clone()
                                .unwrap_or_else(|| parent.port.unwrap_or(0).to_string())
                        ),
                        "use one of the Service's ports",
                    ));
                    continue;
                };
                let consumer = (route.origin.namespace != parent.namespace)
                    .then(|| route.origin.namespace.clone());
                let scope = Scope {
                    port,
                    ..Scope::default()
                };
                groups
                    .entry((host, consumer))
                    .or_default()
                    .extend(candidates(route, scope));
            }
        }
        let mut by_host: HashMap<String, HostRoutes> = HashMap::new();
        let mut keys: Vec<_> = groups.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(group) = groups.remove(&key) else {
                continue;
            };
            let set = into_route_set(group, problems);
            let (host, consumer) = key;
            let entry = by_host.entry(host).or_default();
            match consumer {
                Some(namespace) => {
                    entry.consumers.insert(namespace, set);
                }
                None => entry.producer = Some(set),
            }
        }
        MeshRoutes { by_host }
    }

    /// The routes for `node`'s traffic to `host`: its namespace's consumer routes, else the
    /// producer routes.
    pub(crate) fn select(&self, host: &str, node: &ProxyNode) -> Option<&RouteSet> {
        let routes = self.by_host.get(host)?;
        routes
            .consumers
            .get(&node.namespace)
            .or(routes.producer.as_ref())
    }

    /// Reports VirtualServices that route a host for sidecars although Gateway API routes
    /// attach to it (the Gateway API routes win).
    pub(crate) fn report_shadowed_virtual_services(
        &self,
        virtual_services: &VirtualServices,
        problems: &mut Vec<Problem>,
    ) {
        let mut hosts: Vec<_> = self.by_host.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        for (host, routes) in hosts {
            let first_consumer = routes
                .consumers
                .values()
                .filter_map(|s| s.origins.first())
                .min();
            let Some(winner) = routes
                .producer
                .as_ref()
                .and_then(|s| s.origins.first())
                .or(first_consumer)
            else {
                continue;
            };
            for vs in virtual_services.for_mesh_host(host) {
                problems.push(Problem::warning(
                    &vs.origin,
                    "spec.hosts",
                    format!("{winner} attaches to {host}; Gateway API routes take precedence, so this VirtualService is not used for it"),
                    "route the host with one API: remove the VirtualService or the route",
                ));
            }
        }
    }
}

/// The port a Service parent reference selects: `None` when it names a port the Service lacks,
/// `Some(None)` for every port.
fn parent_port(parent: &ParentRef, service: &ServiceModel) -> Option<Option<u32>> {
    if let Some(port) = parent.port {
        return service.port(port).map(|p| Some(p.port));
    }
    if let Some(section) = &parent.section_name {
        return service
            .ports
            .iter()
            .find(|p| &p.name == section)
            .map(|p| Some(p.port));
    }
    Some(None)
}
