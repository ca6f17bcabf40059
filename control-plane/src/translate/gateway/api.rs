//! Gateway API Gateways of mesh's class: their listeners, and the HTTPRoutes and GRPCRoutes
//! attached to each (parent, section, port, allowed namespaces and kinds, hostnames), ordered
//! by the Gateway API's precedence per hostname.

use std::collections::BTreeMap;

use gateway_api::{
    gatewayclasses::GatewayClass,
    gateways::{Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From},
};
use k8s_openapi::api::core::v1::Namespace;

use super::{
    super::{
        gateway_api::{RouteModel, candidates, into_route_set},
        problem::{Problem, Report},
        rules::{RouteSet, Scope},
    },
    hostnames::{accepts, intersect, specificity},
};
use crate::store::{Kind, ObjectRef, Store};

/// The controller name of mesh's GatewayClass.
pub const CONTROLLER_NAME: &str = "mesh.io/gateway-controller";

/// A Gateway API Gateway of mesh's class.
#[derive(Debug)]
pub(crate) struct ApiGateway {
    /// The object.
    pub origin: ObjectRef,
    /// Its HTTP listeners with their routes.
    pub listeners: Vec<ApiListener>,
}

/// An HTTP listener and the routes attached to it, per hostname.
#[derive(Debug)]
pub(crate) struct ApiListener {
    /// Port.
    pub port: u32,
    /// Route sets by hostname pattern, most specific first; each holds its own rules and
    /// then those of less specific patterns that accept it.
    pub hosts: Vec<(String, RouteSet)>,
}

/// Which namespaces may attach routes to a listener.
enum Allowed {
    All,
    Same,
    Labels(BTreeMap<String, String>),
    Nothing,
}

/// Gateways of mesh's class, with their routes attached.
pub(crate) fn build(
    store: &Store,
    routes: &[RouteModel],
    problems: &mut Vec<Problem>,
) -> Vec<ApiGateway> {
    store
        .list::<Gateway>()
        .filter_map(|gateway| {
            let origin = ObjectRef::new(
                Kind::Gateway,
                gateway.metadata.namespace.clone().unwrap_or_default(),
                gateway.metadata.name.clone().unwrap_or_default(),
            );
            let class = store.get::<GatewayClass>("", &gateway.spec.gateway_class_name);
            match class {
                Some(class) if class.spec.controller_name == CONTROLLER_NAME => {}
                Some(_) => return None,
                None => {
                    problems.push(Problem::warning(
                        &origin,
                        "spec.gatewayClassName",
                        format!("GatewayClass {:?} does not exist", gateway.spec.gateway_class_name),
                        format!("create it with controllerName {CONTROLLER_NAME} for mesh to serve this Gateway"),
                    ));
                    return None;
                }
            }
            let mut report = Report::new(&origin);
            let listeners = gateway
                .spec
                .listeners
                .iter()
                .enumerate()
                .filter_map(|(i, l)| listener(store, &origin, l, &format!("spec.listeners[{i}]"), routes, &mut report))
                .collect();
            problems.extend(report.into_problems());
            Some(ApiGateway { origin, listeners })
        })
        .collect()
}

fn listener(
    store: &Store,
    gateway: &ObjectRef,
    spec: &GatewayListeners,
    at: &str,
    routes: &[RouteModel],
    report: &mut Report<'_>,
) -> Option<ApiListener> {
    if spec.protocol != "HTTP" {
        report.warning(
            format!("{at}.protocol"),
            format!(
                "{} listeners are not supported by mesh yet; listener {:?} is not served",
                spec.protocol, spec.name
            ),
            "use an HTTP listener",
        );
        return None;
    }
    let port = u32::try_from(spec.port).ok()?;
    let namespaces = spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let allowed = match namespaces
        .and_then(|n| n.from.clone())
        .unwrap_or(From::Same)
    {
        From::All => Allowed::All,
        From::Same => Allowed::Same,
        From::Selector => {
            let selector = namespaces.and_then(|n| n.selector.as_ref());
            if selector.is_some_and(|s| s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()))
            {
                report.warning(
                    format!("{at}.allowedRoutes.namespaces.selector.matchExpressions"),
                    "matchExpressions are not supported by mesh; no namespace is allowed",
                    "use matchLabels",
                );
                Allowed::Nothing
            } else {
                Allowed::Labels(
                    selector
                        .and_then(|s| s.match_labels.clone())
                        .unwrap_or_default(),
                )
            }
        }
    };
    let kinds: Option<Vec<String>> = spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
        .map(|kinds| kinds.iter().map(|k| k.kind.clone()).collect());
    let listener_host = spec.hostname.clone().unwrap_or_else(|| "*".to_owned());
    let mut by_host: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for route in routes {
        let attached = route.parents.iter().any(|p| {
            p.is_gateway()
                && p.namespace == gateway.namespace
                && p.name == gateway.name
                && p.section_name.as_ref().is_none_or(|s| *s == spec.name)
                && p.port.is_none_or(|p| p == port)
        });
        if !attached {
            continue;
        }
        let kind = route.origin.kind.kind_name();
        if kinds.as_ref().is_some_and(|k| !k.iter().any(|k| k == kind)) {
            continue;
        }
        let namespace_ok = match &allowed {
            Allowed::All => true,
            Allowed::Same => route.origin.namespace == gateway.namespace,
            Allowed::Labels(labels) => store
                .get::<Namespace>("", &route.origin.namespace)
                .and_then(|ns| ns.metadata.labels.as_ref())
                .is_some_and(|have| labels.iter().all(|(k, v)| have.get(k) == Some(v))),
            Allowed::Nothing => false,
        };
        if !namespace_ok {
            report.warning(
                format!("{at}.allowedRoutes"),
                format!(
                    "{} is in a namespace listener {:?} does not allow; it is not attached",
                    route.origin, spec.name
                ),
                "allow the namespace in allowedRoutes, or move the route",
            );
            continue;
        }
        let route_hosts = if route.hostnames.is_empty() {
            vec!["*".to_owned()]
        } else {
            route.hostnames.clone()
        };
        let hosts: Vec<String> = route_hosts
            .iter()
            .filter_map(|h| intersect(h, &listener_host))
            .collect();
        if hosts.is_empty() {
            report.warning(
                format!("{at}.hostname"),
                format!(
                    "no hostname of {} matches listener {:?}; it is not attached",
                    route.origin, spec.name
                ),
                "align the route's hostnames with the listener's",
            );
        }
        for host in hosts {
            by_host.entry(host).or_default().push(route);
        }
    }
    let mut patterns: Vec<String> = by_host.keys().cloned().collect();
    patterns.sort_by_key(|p| specificity(p));
    let mut problems = Vec::new();
    let hosts = patterns
        .iter()
        .map(|host| {
            let own = by_host.get(host).into_iter().flatten();
            let mut set = into_route_set(
                own.flat_map(|r| candidates(r, Scope::default())).collect(),
                &mut problems,
            );
            for wider in patterns.iter().filter(|p| accepts(p, host)) {
                let mut ignored = Vec::new();
                let wider_set = into_route_set(
                    by_host
                        .get(wider)
                        .into_iter()
                        .flatten()
                        .flat_map(|r| candidates(r, Scope::default()))
                        .collect(),
                    &mut ignored,
                );
                set.http.extend(wider_set.http);
                for origin in wider_set.origins {
                    if !set.origins.contains(&origin) {
                        set.origins.push(origin);
                    }
                }
            }
            (host.clone(), set)
        })
        .collect();
    for problem in problems {
        report.push(problem);
    }
    Some(ApiListener { port, hosts })
}
