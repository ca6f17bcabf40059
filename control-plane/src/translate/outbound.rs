//! Outbound listeners and route configs of a sidecar: one listener per service VIP and port,
//! routed by the Gateway API routes attached to the service, else its VirtualService, else
//! the default route to the whole service.

use mesh_proto::config::v1::{
    Listener, ProxyConfig, Route, RouteAction, RouteConfig, RouteMatch, TcpRoute, VirtualHost,
    WeightedCluster, listener::Mode, route, route_match::Path,
};

use std::collections::HashMap;

use super::{
    Translator,
    clusters::ClusterHashes,
    names::{listener_name, route_config_name, socket_address},
    problem::Problem,
    protocol::{routes_http, routes_tcp},
    registry::{PortModel, ServiceModel},
    rules::{Dest, EmitContext, PortChoice, RouteSet},
    sidecar_scope::{Scope, admits},
};
use crate::{node::ProxyNode, store::ObjectRef};

mod hostless;

pub(crate) use hostless::add_hostless;

/// Adds a listener (per VIP) and route config for every port of every service `node` sees.
pub(crate) fn add_outbound(
    translator: &Translator,
    node: &ProxyNode,
    scope: Option<&Scope>,
    hashes: &ClusterHashes,
    config: &mut ProxyConfig,
    problems: &mut Vec<Problem>,
) {
    let mut claimed: HashMap<String, ObjectRef> = HashMap::new();
    for service in translator
        .registry
        .iter()
        .filter(|s| !s.vips.is_empty() && s.visibility.admits(&node.namespace))
    {
        let routes = translator.service_routes(&service.host, node);
        for port in (service.ports.iter()).filter(|p| admits(scope, service, p.port)) {
            let cx = EmitContext {
                port: port.port,
                node,
                clusters: hashes,
                gateway: None,
            };
            add_port(service, port, routes, &cx, config, problems);
            claim_addresses(service, port.port, &mut claimed, config, problems);
        }
    }
}

fn add_port(
    service: &ServiceModel,
    port: &PortModel,
    routes: Option<&RouteSet>,
    cx: &EmitContext<'_>,
    config: &mut ProxyConfig,
    problems: &mut Vec<Problem>,
) {
    let protocol = port.protocol;
    let route_config = routes_http(protocol).then(|| RouteConfig {
        name: route_config_name(&service.host, port.port),
        virtual_hosts: vec![VirtualHost {
            name: service.host.clone(),
            domains: vec!["*".to_owned()],
            routes: http_routes(service, port, routes, cx, problems),
        }],
    });
    let tcp = routes_tcp(protocol).then(|| tcp_route(service, port, routes, cx, problems));
    for vip in &service.vips {
        config.listeners.push(Listener {
            name: listener_name(vip, port.port),
            address: socket_address(vip, port.port),
            mode: Mode::Outbound.into(),
            protocol: protocol.into(),
            route_config: route_config
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            tcp: tcp.clone(),
            ..Listener::default()
        });
    }
    config.routes.extend(route_config);
}

/// The HTTP routes of a service port: its routing rules', else the default route.
fn http_routes(
    service: &ServiceModel,
    port: &PortModel,
    routes: Option<&RouteSet>,
    cx: &EmitContext<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<Route> {
    let default = Dest::service(&service.host, PortChoice::Fixed(port.port)).cluster(port.port);
    match routes.map(|r| (r, r.http_routes(cx))) {
        Some((_, Ok(list))) if !list.is_empty() => list,
        Some((set, Err(missing))) => {
            report_missing(service, port, &missing, set, cx, problems);
            vec![default_route(&default, cx)]
        }
        _ => vec![default_route(&default, cx)],
    }
}

/// The opaque TCP (and TLS by SNI) route of a service port: its routing rules', else the whole
/// service.
fn tcp_route(
    service: &ServiceModel,
    port: &PortModel,
    routes: Option<&RouteSet>,
    cx: &EmitContext<'_>,
    problems: &mut Vec<Problem>,
) -> TcpRoute {
    let default = Dest::service(&service.host, PortChoice::Fixed(port.port)).cluster(port.port);
    let default_dests = vec![weighted(&default)];
    let Some(set) = routes else {
        return TcpRoute {
            destinations: default_dests,
            ..TcpRoute::default()
        };
    };
    let destinations = match set.tcp_destinations(cx) {
        Ok(Some(dests)) => dests,
        Ok(None) => default_dests,
        Err(missing) => {
            report_missing(service, port, &missing, set, cx, problems);
            default_dests
        }
    };
    let sni_routes = set.sni_routes(cx).unwrap_or_else(|missing| {
        report_missing(service, port, &missing, set, cx, problems);
        Vec::new()
    });
    TcpRoute {
        destinations,
        sni: Vec::new(),
        sni_routes,
    }
}

/// Warns that a service port's routes name a cluster the proxies of `cx` do not have.
fn report_missing(
    service: &ServiceModel,
    port: &PortModel,
    missing: &str,
    routes: &RouteSet,
    cx: &EmitContext<'_>,
    problems: &mut Vec<Problem>,
) {
    for origin in &routes.origins {
        problems.push(Problem::warning(
            origin,
            "",
            format!(
                "for proxies in namespace {}, port {} of {} routes to cluster {missing}, which they do not have (a DestinationRule or Service not exported to them?)",
                cx.node.namespace, port.port, service.host
            ),
            "export the DestinationRule and Service to that namespace; until then those proxies use the default route",
        ));
    }
}

/// Drops the listeners just added for `service`'s `port` whose address another service
/// already has: the proxy needs one listener per address.
fn claim_addresses(
    service: &ServiceModel,
    port: u32,
    claimed: &mut HashMap<String, ObjectRef>,
    config: &mut ProxyConfig,
    problems: &mut Vec<Problem>,
) {
    let added = service.vips.len().min(config.listeners.len());
    let start = config.listeners.len() - added;
    let mut kept = Vec::with_capacity(added);
    for listener in config.listeners.drain(start..) {
        match claimed.get(&listener.address) {
            Some(owner) => problems.push(Problem::warning(
                &service.origin,
                "",
                format!(
                    "address {} (port {port}) is already served for {owner}; {} gets no listener there",
                    listener.address, service.host
                ),
                "give each service its own virtual IP",
            )),
            None => {
                claimed.insert(listener.address.clone(), service.origin.clone());
                kept.push(listener);
            }
        }
    }
    config.listeners.extend(kept);
}

/// The route of a service port without routing rules: everything to the whole service.
fn default_route(cluster: &str, cx: &EmitContext<'_>) -> Route {
    Route {
        name: "default".to_owned(),
        r#match: Some(RouteMatch {
            path: Some(Path::Prefix("/".to_owned())),
            ..RouteMatch::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            destinations: vec![weighted(cluster)],
            hash_policy: cx.clusters.get(cluster).cloned().flatten(),
            ..RouteAction::default()
        })),
        ..Route::default()
    }
}

fn weighted(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight: 1,
        ..WeightedCluster::default()
    }
}
