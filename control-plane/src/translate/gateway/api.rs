//! Gateway API Gateways of mesh's class: their listeners (HTTP, HTTPS with certificates, TLS
//! passthrough, TCP) and the routes attached to each (parent, section, port, allowed namespaces
//! and kinds, hostnames): HTTPRoutes and GRPCRoutes ordered by the Gateway API's precedence per
//! hostname, TLSRoutes by SNI, a TCPRoute. What became of each listener and of each route's
//! parent reference is reported, with the reason its status gives.

use std::collections::BTreeMap;

use gateway_api::{
    gatewayclasses::GatewayClass,
    gateways::{
        Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
        GatewayListenersTlsMode,
    },
};
use k8s_openapi::api::core::v1::Namespace;

use mesh_proto::config::v1::{Protocol, ServerCertificate};

use super::{
    super::{
        gateway_api::{ParentRef, RouteModel, candidates, into_route_set},
        problem::{Problem, Report},
        rules::{RouteSet, Scope, TcpRule},
    },
    certificates,
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
    /// Its listeners mesh serves, with their routes.
    pub listeners: Vec<ApiListener>,
}

/// A listener mesh serves and the routes attached to it.
#[derive(Debug)]
pub(crate) struct ApiListener {
    /// Port.
    pub port: u32,
    /// What the proxy serves on it: HTTP (HTTP and HTTPS listeners), TLS (passthrough by
    /// SNI) or TCP.
    pub protocol: Protocol,
    /// The certificates of an HTTPS listener or a TLS one in Terminate mode; `None` when TLS
    /// does not end here.
    pub tls: Option<Vec<ServerCertificate>>,
    /// Route sets by hostname pattern, most specific first; each holds its own rules and
    /// then those of less specific patterns that accept it.
    pub hosts: Vec<(String, RouteSet)>,
    /// TLS and TCP listeners: where connections go (TLS rules by SNI, or one TCP rule).
    pub l4: RouteSet,
}

/// The routes that may attach to Gateways.
#[derive(Clone, Copy)]
pub(crate) struct GatewayRoutes<'a> {
    /// HTTPRoutes and GRPCRoutes.
    pub http: &'a [RouteModel],
    /// TLSRoutes and TCPRoutes.
    pub l4: &'a [RouteModel],
}

/// What translation made of one listener of a mesh Gateway, for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    /// The Gateway.
    pub gateway: ObjectRef,
    /// The listener's name.
    pub name: String,
    /// How many routes attached to it.
    pub attached_routes: usize,
    /// The route kinds it accepts.
    pub supported_kinds: Vec<&'static str>,
}

/// Which namespaces may attach routes to a listener.
enum Allowed {
    All,
    Same,
    Labels(BTreeMap<String, String>),
    Nothing,
}

/// The route kinds mesh attaches to HTTP and HTTPS listeners.
const HTTP_KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];

/// Gateways of mesh's class, with their routes attached, and a report of each listener.
pub(crate) fn build(
    store: &Store,
    routes: GatewayRoutes<'_>,
    problems: &mut Vec<Problem>,
) -> (Vec<ApiGateway>, Vec<ListenerReport>) {
    let mut gateways = Vec::new();
    let mut reports = Vec::new();
    for gateway in store.list::<Gateway>() {
        let origin = ObjectRef::new(
            Kind::Gateway,
            gateway.metadata.namespace.clone().unwrap_or_default(),
            gateway.metadata.name.clone().unwrap_or_default(),
        );
        let class = store.get::<GatewayClass>("", &gateway.spec.gateway_class_name);
        match class {
            Some(class) if class.spec.controller_name == CONTROLLER_NAME => {}
            Some(_) => continue,
            None => {
                problems.push(Problem::warning(
                    &origin,
                    "spec.gatewayClassName",
                    format!("GatewayClass {:?} does not exist", gateway.spec.gateway_class_name),
                    format!("create it with controllerName {CONTROLLER_NAME} for mesh to serve this Gateway"),
                ));
                continue;
            }
        }
        let mut report = Report::new(&origin);
        let mut attachments = Attachments::default();
        let mut listeners = Vec::new();
        let mut claimed: Vec<(u32, &str, Option<&str>)> = Vec::new();
        for (i, spec) in gateway.spec.listeners.iter().enumerate() {
            let at = format!("spec.listeners[{i}]");
            let served = match conflict(&origin, spec, &claimed, &at) {
                Some(problem) => {
                    report.push(problem);
                    None
                }
                None => listener(
                    store,
                    &origin,
                    spec,
                    &at,
                    routes,
                    &mut attachments,
                    &mut report,
                ),
            };
            if let Ok(port) = u32::try_from(spec.port) {
                claimed.push((port, &spec.protocol, spec.hostname.as_deref()));
            }
            let (listener, attached) = served.unzip();
            reports.push(ListenerReport {
                gateway: origin.clone(),
                name: spec.name.clone(),
                attached_routes: attached.unwrap_or(0),
                supported_kinds: supported_kinds(spec),
            });
            listeners.extend(listener);
        }
        problems.extend(report.into_problems());
        problems.extend(attachments.into_problems(&origin));
        gateways.push(ApiGateway { origin, listeners });
    }
    (gateways, reports)
}

/// The kinds of route a listener accepts: those of its protocol that `allowedRoutes.kinds`
/// lets in.
fn supported_kinds(spec: &GatewayListeners) -> Vec<&'static str> {
    let of_protocol: &[&'static str] = match spec.protocol.as_str() {
        "HTTP" | "HTTPS" => &HTTP_KINDS,
        "TLS" => &["TLSRoute"],
        "TCP" => &["TCPRoute"],
        _ => &[],
    };
    let kinds = spec.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref());
    (of_protocol.iter().copied())
        .filter(|kind| kinds.is_none_or(|ks| ks.iter().any(|k| k.kind == *kind)))
        .collect()
}

/// The problem (reason `ProtocolConflict` or `HostnameConflict`) when an earlier listener
/// already claims this one's port with another protocol, or its port and hostname.
fn conflict(
    gateway: &ObjectRef,
    spec: &GatewayListeners,
    claimed: &[(u32, &str, Option<&str>)],
    at: &str,
) -> Option<Problem> {
    let port = u32::try_from(spec.port).ok()?;
    let hostname = spec.hostname.as_deref();
    let same_port = claimed.iter().filter(|(p, _, _)| *p == port);
    let mut reason = None;
    for (_, protocol, claimed_host) in same_port {
        if *protocol != spec.protocol {
            reason = Some((
                "ProtocolConflict",
                format!("port {port} is already served as {protocol}"),
            ));
            break;
        }
        if *claimed_host == hostname {
            let host = hostname.unwrap_or("any hostname");
            reason = Some((
                "HostnameConflict",
                format!("port {port} already serves {host}"),
            ));
        }
    }
    let (reason, why) = reason?;
    Some(
        Problem::warning(
            gateway,
            format!("{at}.port"),
            format!(
                "listener {:?} conflicts with an earlier listener: {why}; it is not served",
                spec.name
            ),
            "give it another port, or a hostname of its own",
        )
        .with_reason(reason),
    )
}

/// For each route parent that names a Gateway: whether some listener took it, else the best
/// reason why none did.
#[derive(Default)]
struct Attachments {
    by_parent: BTreeMap<(ObjectRef, usize), Result<(), &'static str>>,
}

impl Attachments {
    /// Records what one listener made of parent `index` of `route`.
    fn record(&mut self, route: &ObjectRef, index: usize, outcome: Result<(), &'static str>) {
        let entry = self
            .by_parent
            .entry((route.clone(), index))
            .or_insert(outcome);
        // Attached anywhere wins; among refusals, the most telling reason.
        let rank = |o: &Result<(), &str>| match o {
            Ok(()) => 3,
            Err("NotAllowedByListeners") => 2,
            Err("NoMatchingListenerHostname") => 1,
            Err(_) => 0,
        };
        if rank(&outcome) > rank(entry) {
            *entry = outcome;
        }
    }

    /// A problem on each route parent no listener took, with the reason.
    fn into_problems(self, gateway: &ObjectRef) -> impl Iterator<Item = Problem> {
        let gateway = gateway.clone();
        self.by_parent.into_iter().filter_map(move |((route, index), outcome)| {
            let reason = outcome.err()?;
            let why = match reason {
                "NotAllowedByListeners" => "no listener allows routes of its kind from its namespace",
                "NoMatchingListenerHostname" => "none of its hostnames matches a listener's",
                _ => "no listener matches its sectionName and port",
            };
            Some(
                Problem::warning(
                    &route,
                    format!("spec.parentRefs[{index}]"),
                    format!("not attached to {gateway}: {why}"),
                    "align the route with the Gateway's listeners (allowedRoutes, hostname, sectionName, port)",
                )
                .with_reason(reason),
            )
        })
    }
}

/// Which namespaces a listener's `allowedRoutes` admits.
fn allowed_namespaces(spec: &GatewayListeners, at: &str, report: &mut Report<'_>) -> Allowed {
    let namespaces = spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match namespaces
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
    }
}

/// The listener as mesh serves it and how many routes attached, or `None` (reported with
/// the reason for its status) when it cannot be served.
fn listener(
    store: &Store,
    gateway: &ObjectRef,
    spec: &GatewayListeners,
    at: &str,
    routes: GatewayRoutes<'_>,
    attachments: &mut Attachments,
    report: &mut Report<'_>,
) -> Option<(ApiListener, usize)> {
    let passthrough = spec.tls.as_ref().and_then(|t| t.mode.as_ref())
        == Some(&GatewayListenersTlsMode::Passthrough);
    let (protocol, tls) = match spec.protocol.as_str() {
        "HTTP" => (Protocol::Http1, None),
        // HTTPS, and TLS in Terminate mode: TLS ends here; HTTP is routed, TLS by TLSRoutes.
        "HTTPS" | "TLS" if !passthrough => {
            let hostname = spec.hostname.as_deref();
            let protocol = match spec.protocol.as_str() {
                "HTTPS" => Protocol::Http1,
                _ => Protocol::Tls,
            };
            match certificates::resolve(store, gateway, spec.tls.as_ref(), hostname, at) {
                Ok(certificates) => (protocol, Some(certificates)),
                Err(problems) => {
                    problems.into_iter().for_each(|p| report.push(p));
                    return None;
                }
            }
        }
        "TLS" => (Protocol::Tls, None),
        "TCP" => (Protocol::Tcp, None),
        other => {
            report.push(
                Problem::warning(
                    gateway,
                    format!("{at}.protocol"),
                    format!(
                        "{other} listeners are not supported by mesh; listener {:?} is not served",
                        spec.name
                    ),
                    "use an HTTP, HTTPS, TLS or TCP listener",
                )
                .with_reason("UnsupportedProtocol"),
            );
            return None;
        }
    };
    let admission = Admission {
        gateway,
        name: &spec.name,
        port: u32::try_from(spec.port).ok()?,
        allowed: allowed_namespaces(spec, at, report),
        kinds: supported_kinds(spec),
    };
    let listener_host = spec.hostname.clone().unwrap_or_else(|| "*".to_owned());
    let mut by_host: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut attached = 0;
    let candidates = match protocol {
        Protocol::Http1 => routes.http,
        _ => routes.l4,
    };
    for route in candidates {
        let mut hosts: Vec<String> = Vec::new();
        for (index, parent) in route.parents.iter().enumerate() {
            let names_gateway = parent.is_gateway()
                && parent.namespace == gateway.namespace
                && parent.name == gateway.name;
            if !names_gateway {
                continue;
            }
            let outcome = admission.admits(store, route, parent).and_then(|()| {
                let route_hosts = match route.hostnames.is_empty() {
                    true => vec!["*".to_owned()],
                    false => route.hostnames.clone(),
                };
                let shared: Vec<String> = (route_hosts.iter())
                    .filter_map(|h| intersect(h, &listener_host))
                    .collect();
                if shared.is_empty() {
                    return Err("NoMatchingListenerHostname");
                }
                hosts.extend(shared);
                Ok(())
            });
            attachments.record(&route.origin, index, outcome);
        }
        if hosts.is_empty() {
            continue;
        }
        attached += 1;
        hosts.sort();
        hosts.dedup();
        for host in hosts {
            by_host.entry(host).or_default().push(route);
        }
    }
    let port = admission.port;
    let (hosts, l4) = match protocol {
        Protocol::Http1 => (route_sets(&by_host, report), RouteSet::default()),
        _ => (Vec::new(), l4_route_set(protocol, &by_host)),
    };
    let listener = ApiListener {
        port,
        protocol,
        tls,
        hosts,
        l4,
    };
    Some((listener, attached))
}

/// What a listener lets attach: by sectionName, port, route kind and namespace.
struct Admission<'a> {
    gateway: &'a ObjectRef,
    name: &'a str,
    port: u32,
    allowed: Allowed,
    kinds: Vec<&'static str>,
}

impl Admission<'_> {
    /// Whether `route` may attach through `parent`, else the reason it may not.
    fn admits(
        &self,
        store: &Store,
        route: &RouteModel,
        parent: &ParentRef,
    ) -> Result<(), &'static str> {
        let section_ok = parent.section_name.as_ref().is_none_or(|s| s == self.name);
        if !section_ok || parent.port.is_some_and(|p| p != self.port) {
            return Err("NoMatchingParent");
        }
        if !self.kinds.contains(&route.origin.kind.kind_name()) {
            return Err("NotAllowedByListeners");
        }
        let namespace_ok = match &self.allowed {
            Allowed::All => true,
            Allowed::Same => route.origin.namespace == self.gateway.namespace,
            Allowed::Labels(labels) => store
                .get::<Namespace>("", &route.origin.namespace)
                .and_then(|ns| ns.metadata.labels.as_ref())
                .is_some_and(|have| labels.iter().all(|(k, v)| have.get(k) == Some(v))),
            Allowed::Nothing => false,
        };
        match namespace_ok {
            true => Ok(()),
            false => Err("NotAllowedByListeners"),
        }
    }
}

/// Where a TLS or TCP listener's connections go: per SNI pattern (most specific first) the
/// TLSRoutes' backends, or the first TCPRoute's.
fn l4_route_set(protocol: Protocol, by_host: &BTreeMap<String, Vec<&RouteModel>>) -> RouteSet {
    let mut patterns: Vec<&String> = by_host.keys().collect();
    patterns.sort_by_key(|p| specificity(p));
    let mut set = RouteSet::default();
    for pattern in patterns {
        for route in &by_host[pattern] {
            if !set.origins.contains(&route.origin) {
                set.origins.push(route.origin.clone());
            }
            let rule = TcpRule {
                scope: Scope::default(),
                sni: match protocol {
                    Protocol::Tls => vec![pattern.clone()],
                    _ => Vec::new(),
                },
                dests: route.l4.clone(),
            };
            match protocol {
                Protocol::Tls => set.tls.push(rule),
                _ if set.tcp.is_empty() => set.tcp.push(rule),
                _ => {}
            }
        }
    }
    set
}

/// The route sets of a listener's hostnames, most specific first; each also holds the rules
/// of the less specific patterns that accept it.
fn route_sets(
    by_host: &BTreeMap<String, Vec<&RouteModel>>,
    report: &mut Report<'_>,
) -> Vec<(String, RouteSet)> {
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
    hosts
}
