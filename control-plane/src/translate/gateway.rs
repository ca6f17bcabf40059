//! Gateway proxies: a proxy that runs a Gateway API Gateway of mesh's class (its pod carries
//! `gateway.networking.k8s.io/gateway-name`) or matches an Istio Gateway's selector gets an
//! explicit listener per served port, `0.0.0.0:<port>`, with a virtual host per hostname.

mod api;
pub(crate) mod certificates;
mod hostnames;
mod istio;

use std::collections::BTreeMap;

use mesh_proto::config::v1::{
    Listener, Protocol, ProxyConfig, Route, RouteConfig, ServerCertificate, TcpRoute,
    TlsTermination, VirtualHost, listener::Mode,
};

pub use api::{CONTROLLER_NAME, ListenerReport};

use self::{
    api::{ApiGateway, GatewayRoutes},
    hostnames::{intersect, specificity},
    istio::IstioGateway,
};
use super::{
    Translator,
    clusters::ClusterHashes,
    gateway_api::RouteModel,
    problem::Problem,
    rules::{EmitContext, RouteSet},
};
use crate::{
    gateway_workload::GATEWAY_NAME_LABEL,
    node::ProxyNode,
    store::{ObjectRef, Store},
};

/// Every Gateway mesh serves.
#[derive(Debug, Default)]
pub(crate) struct Gateways {
    api: Vec<ApiGateway>,
    istio: Vec<IstioGateway>,
    listener_reports: Vec<ListenerReport>,
}

impl Gateways {
    /// The proxy label keys that decide which gateways a proxy runs.
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        let selectors = self.istio.iter().flat_map(|g| g.selector.keys());
        std::iter::once(GATEWAY_NAME_LABEL).chain(selectors.map(String::as_str))
    }

    /// Gateways of both kinds, with Gateway API routes attached.
    pub(crate) fn build(
        store: &Store,
        http_routes: &[RouteModel],
        l4_routes: &[RouteModel],
        problems: &mut Vec<Problem>,
    ) -> Self {
        let routes = GatewayRoutes {
            http: http_routes,
            l4: l4_routes,
        };
        let (api, listener_reports) = api::build(store, routes, problems);
        Gateways {
            api,
            istio: istio::build(store, problems),
            listener_reports,
        }
    }

    /// What became of each listener of mesh's Gateway API Gateways.
    pub(crate) fn listener_reports(&self) -> &[ListenerReport] {
        &self.listener_reports
    }

    /// Whether `node` runs any gateway.
    pub(crate) fn serves(&self, node: &ProxyNode) -> bool {
        self.api_for(node).next().is_some() || self.istio_for(node).next().is_some()
    }

    fn api_for<'a>(&'a self, node: &'a ProxyNode) -> impl Iterator<Item = &'a ApiGateway> {
        let name = node.labels.get(GATEWAY_NAME_LABEL);
        self.api
            .iter()
            .filter(move |g| g.origin.namespace == node.namespace && name == Some(&g.origin.name))
    }

    fn istio_for<'a>(&'a self, node: &'a ProxyNode) -> impl Iterator<Item = &'a IstioGateway> {
        self.istio.iter().filter(move |g| {
            !g.selector.is_empty()
                && g.selector
                    .iter()
                    .all(|(k, v)| node.labels.get(k) == Some(v))
        })
    }
}

/// What one port of a gateway proxy serves.
struct PortPlan {
    owner: ObjectRef,
    protocol: Protocol,
    /// Whether it terminates TLS, with these certificates.
    tls: Option<Vec<ServerCertificate>>,
    hosts: BTreeMap<String, Vec<Route>>,
    tcp: Option<TcpRoute>,
}

/// Adds the listeners and route configs of every gateway `node` runs.
pub(crate) fn add_gateway_listeners(
    translator: &Translator,
    node: &ProxyNode,
    hashes: &ClusterHashes,
    config: &mut ProxyConfig,
    problems: &mut Vec<Problem>,
) {
    let mut ports: BTreeMap<u32, PortPlan> = BTreeMap::new();
    for gateway in translator.gateways.api_for(node) {
        let key = format!("{}/{}", gateway.origin.namespace, gateway.origin.name);
        for listener in &gateway.listeners {
            let terminates = listener.tls.is_some();
            let Some(plan) = port_plan(
                &mut ports,
                (listener.port, listener.protocol, terminates),
                &gateway.origin,
                problems,
            ) else {
                continue;
            };
            if let Some(certificates) = &listener.tls {
                plan.tls
                    .get_or_insert_with(Vec::new)
                    .extend(certificates.iter().cloned());
            }
            let cx = EmitContext {
                port: listener.port,
                node,
                clusters: hashes,
                gateway: Some(&key),
            };
            match listener.protocol {
                Protocol::Http1 => {
                    for (host, set) in &listener.hosts {
                        add_http(plan, host, set, &cx, problems);
                    }
                }
                _ => add_tcp(plan, &listener.l4, &cx, problems),
            }
        }
    }
    for gateway in translator.gateways.istio_for(node) {
        for server in &gateway.servers {
            let Some(plan) = port_plan(
                &mut ports,
                (server.port, server.protocol, server.tls.is_some()),
                &gateway.origin,
                problems,
            ) else {
                continue;
            };
            if let Some(certificates) = &server.tls {
                plan.tls
                    .get_or_insert_with(Vec::new)
                    .extend(certificates.iter().cloned());
            }
            let cx = EmitContext {
                port: server.port,
                node,
                clusters: hashes,
                gateway: Some(&gateway.key),
            };
            for vs in translator.virtual_services.for_gateway(&gateway.key) {
                let hosts: Vec<String> = server
                    .hosts
                    .iter()
                    .filter(|(ns, _)| ns == "*" || *ns == vs.origin.namespace)
                    .flat_map(|(_, server_host)| {
                        vs.hosts.iter().filter_map(|h| intersect(h, server_host))
                    })
                    .collect();
                if hosts.is_empty() {
                    continue;
                }
                match server.protocol {
                    Protocol::Http1 => {
                        for host in &hosts {
                            add_http(plan, host, &vs.routes, &cx, problems);
                        }
                    }
                    _ => add_tcp(plan, &vs.routes, &cx, problems),
                }
            }
        }
    }
    for (port, plan) in ports {
        let address = format!("0.0.0.0:{port}");
        let name = format!("0.0.0.0_{port}");
        if plan.protocol == Protocol::Http1 {
            let route_name = format!("http.{port}");
            config.routes.push(RouteConfig {
                name: route_name.clone(),
                virtual_hosts: plan
                    .hosts
                    .into_iter()
                    .map(|(host, routes)| VirtualHost {
                        name: format!("{host}:{port}"),
                        domains: vec![host],
                        routes,
                    })
                    .collect(),
            });
            config.listeners.push(Listener {
                name,
                address,
                mode: Mode::Explicit.into(),
                protocol: Protocol::Detect.into(),
                route_config: route_name,
                tcp: None,
                tls: plan.tls.map(|certificates| TlsTermination { certificates }),
                ..Listener::default()
            });
        } else {
            let mut tcp = plan.tcp.unwrap_or_default();
            // The first SNI route that matches wins: exact names before wildcards.
            (tcp.sni_routes).sort_by_key(|r| r.sni.iter().map(|p| specificity(p)).min());
            config.listeners.push(Listener {
                name,
                address,
                mode: Mode::Explicit.into(),
                protocol: plan.protocol.into(),
                route_config: String::new(),
                tcp: Some(tcp),
                tls: plan.tls.map(|certificates| TlsTermination { certificates }),
                ..Listener::default()
            });
        }
    }
}

/// The plan of `port`, made for `protocol` (terminating TLS or not); `None` (reported) when
/// another gateway already serves the port otherwise.
fn port_plan<'a>(
    ports: &'a mut BTreeMap<u32, PortPlan>,
    (port, protocol, terminates): (u32, Protocol, bool),
    owner: &ObjectRef,
    problems: &mut Vec<Problem>,
) -> Option<&'a mut PortPlan> {
    let plan = ports.entry(port).or_insert_with(|| PortPlan {
        owner: owner.clone(),
        protocol,
        tls: terminates.then(Vec::new),
        hosts: BTreeMap::new(),
        tcp: None,
    });
    if plan.protocol != protocol || plan.tls.is_some() != terminates {
        problems.push(Problem::warning(
            owner,
            "",
            format!("port {port} is already served with another protocol for {}; it is not served for this Gateway", plan.owner),
            "use another port",
        ));
        return None;
    }
    Some(plan)
}

fn add_http(
    plan: &mut PortPlan,
    host: &str,
    set: &RouteSet,
    cx: &EmitContext<'_>,
    problems: &mut Vec<Problem>,
) {
    match set.http_routes(cx) {
        Ok(routes) => plan
            .hosts
            .entry(host.to_owned())
            .or_default()
            .extend(routes),
        Err(missing) => report_missing(set, &missing, cx, problems),
    }
}

fn add_tcp(plan: &mut PortPlan, set: &RouteSet, cx: &EmitContext<'_>, problems: &mut Vec<Problem>) {
    let tcp = plan.tcp.get_or_insert_with(TcpRoute::default);
    match (set.tcp_destinations(cx), set.sni_routes(cx)) {
        (Ok(dests), Ok(sni)) => {
            if tcp.destinations.is_empty() {
                tcp.destinations = dests.unwrap_or_default();
            }
            tcp.sni_routes.extend(sni);
        }
        (Err(missing), _) | (_, Err(missing)) => report_missing(set, &missing, cx, problems),
    }
}

fn report_missing(
    set: &RouteSet,
    missing: &str,
    cx: &EmitContext<'_>,
    problems: &mut Vec<Problem>,
) {
    for origin in &set.origins {
        problems.push(Problem::warning(
            origin,
            "",
            format!(
                "on gateway {} the rules route to cluster {missing}, which proxies in namespace {} do not have; they are left out there",
                cx.gateway.unwrap_or_default(),
                cx.node.namespace
            ),
            "export the destination's Service and DestinationRule to the gateway's namespace",
        ));
    }
}
