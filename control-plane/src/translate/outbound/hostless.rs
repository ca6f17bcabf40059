//! Outbound listeners for ServiceEntry hosts without addresses (an external API declared by
//! name): one per port at 0.0.0.0, taking every destination on that port that has no listener
//! of its own. HTTP is matched by Host, TLS by SNI; what matches no host passes through, or
//! under REGISTRY_ONLY is refused, as is everything on ports without such a listener.

use std::collections::BTreeMap;

use mesh_proto::config::v1::{
    Discovery, Listener, Protocol, ProxyConfig, RouteConfig, TcpRoute, Unmatched, VirtualHost,
    listener::Mode,
};

use super::{http_routes, tcp_route};
use crate::{
    node::ProxyNode,
    store::Kind,
    translate::{
        OutboundTrafficPolicy, Translator,
        clusters::ClusterHashes,
        problem::Problem,
        registry::{PortModel, ServiceModel},
        rules::EmitContext,
        sidecar_scope::{Scope, admits},
    },
};

/// Adds a catch-all listener for each port of the address-less ServiceEntry hosts `node` sees,
/// and under REGISTRY_ONLY one for every other port that refuses what it gets.
pub(crate) fn add_hostless(
    translator: &Translator,
    node: &ProxyNode,
    scope: Option<&Scope>,
    policy: OutboundTrafficPolicy,
    hashes: &ClusterHashes,
    config: &mut ProxyConfig,
    problems: &mut Vec<Problem>,
) {
    let unmatched = match policy {
        OutboundTrafficPolicy::AllowAny => Unmatched::Passthrough,
        OutboundTrafficPolicy::RegistryOnly => Unmatched::Block,
    };
    let mut by_port: BTreeMap<u32, Vec<(&ServiceModel, &PortModel)>> = BTreeMap::new();
    for service in translator.registry.iter().filter(|s| {
        s.vips.is_empty()
            && s.origin.kind == Kind::ServiceEntry
            && s.visibility.admits(&node.namespace)
    }) {
        for port in (service.ports.iter()).filter(|p| admits(scope, service, p.port)) {
            by_port.entry(port.port).or_default().push((service, port));
        }
    }
    for (number, entries) in by_port {
        let cx = EmitContext {
            port: number,
            node,
            clusters: hashes,
            gateway: None,
        };
        let mut virtual_hosts = Vec::new();
        let mut sni_routes = Vec::new();
        let mut opaque = Vec::new();
        for (service, port) in entries {
            let routes = translator.service_routes(&service.host, node);
            match port.protocol {
                Protocol::Tls => {
                    let route = tcp_route(service, port, routes, &cx, problems);
                    sni_routes.extend(route.sni_routes);
                    sni_routes.push(TcpRoute {
                        destinations: route.destinations,
                        sni: vec![service.host.clone()],
                        sni_routes: Vec::new(),
                    });
                }
                // Resolution NONE: the port is open to every destination.
                Protocol::Tcp if service.discovery == Discovery::OriginalDst => {
                    if opaque.is_empty() {
                        opaque = tcp_route(service, port, routes, &cx, problems).destinations;
                    }
                }
                Protocol::Tcp => problems.push(Problem::warning(
                    &service.origin,
                    "spec.addresses",
                    format!(
                        "port {number} of {} is TCP and the ServiceEntry has no addresses: its connections cannot be told from others to that port, so they pass through unrouted",
                        service.host
                    ),
                    "add spec.addresses, or declare the port HTTP or TLS",
                )),
                _ => virtual_hosts.push(VirtualHost {
                    name: service.host.clone(),
                    domains: vec![service.host.clone(), format!("{}:{number}", service.host)],
                    routes: http_routes(service, port, routes, &cx, problems),
                }),
            }
        }
        if virtual_hosts.is_empty() && sni_routes.is_empty() && opaque.is_empty() {
            continue;
        }
        let route_config = (!virtual_hosts.is_empty()).then(|| RouteConfig {
            name: format!("0.0.0.0:{number}"),
            virtual_hosts,
        });
        config.listeners.push(Listener {
            name: format!("0.0.0.0_{number}"),
            address: format!("0.0.0.0:{number}"),
            mode: Mode::Outbound.into(),
            protocol: Protocol::Detect.into(),
            route_config: (route_config.as_ref())
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            tcp: (!sni_routes.is_empty() || !opaque.is_empty()).then(|| TcpRoute {
                destinations: opaque,
                sni_routes,
                ..TcpRoute::default()
            }),
            unmatched: unmatched.into(),
            ..Listener::default()
        });
        config.routes.extend(route_config);
    }
    if unmatched == Unmatched::Block {
        config.listeners.push(Listener {
            name: "0.0.0.0_0".to_owned(),
            address: "0.0.0.0:0".to_owned(),
            mode: Mode::Outbound.into(),
            unmatched: unmatched.into(),
            ..Listener::default()
        });
    }
}
