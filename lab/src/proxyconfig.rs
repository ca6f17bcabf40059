//! The static mesh-proxy config of a meshed lab pod, until the control plane serves it: one
//! outbound listener per Service ClusterIP and TCP port, routed to a cluster holding the ready
//! endpoints, named as Istio names them (`outbound|80||web.shop.svc.cluster.local`). Inbound
//! needs no config: the proxy delivers captured connections to the app on the port they
//! were meant for.

use mesh_proto::config::v1::{
    Cluster, ClusterLoadAssignment, Endpoint, Listener, Locality, Protocol as AppProtocol,
    ProxyConfig, Route, RouteAction, RouteConfig, RouteMatch, TcpRoute, VirtualHost,
    WeightedCluster, listener::Mode, route, route_match,
};

use crate::cluster::{CLUSTER_DOMAIN, ClusterPlan, PodPlan, Protocol, ServicePortPlan};

/// The config every meshed pod's proxy runs, given which pods are ready.
pub fn proxy_config(plan: &ClusterPlan, ready: impl Fn(&PodPlan) -> bool) -> ProxyConfig {
    let mut config = ProxyConfig::default();
    for service in &plan.services {
        let Some(vip) = service.cluster_ip else {
            continue; // headless: clients dial pod IPs, which pass through
        };
        for port in service.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
            let host = format!(
                "{}.{}.svc.{CLUSTER_DOMAIN}",
                service.name, service.namespace
            );
            let cluster = format!("outbound|{}||{host}", port.port);
            let protocol = app_protocol(port);
            let opaque = matches!(protocol, AppProtocol::Tcp | AppProtocol::Tls);
            let http_only = matches!(
                protocol,
                AppProtocol::Http1 | AppProtocol::Http2 | AppProtocol::Grpc
            );
            let route_name = format!("{host}:{}", port.port);
            config.listeners.push(Listener {
                name: format!("{vip}_{}", port.port),
                address: format!("{vip}:{}", port.port),
                mode: Mode::Outbound.into(),
                protocol: protocol.into(),
                route_config: if opaque {
                    String::new()
                } else {
                    route_name.clone()
                },
                tcp: (!http_only).then(|| TcpRoute {
                    destinations: vec![weighted(&cluster)],
                    ..TcpRoute::default()
                }),
            });
            if !opaque {
                config.routes.push(RouteConfig {
                    name: route_name,
                    virtual_hosts: vec![VirtualHost {
                        name: host.clone(),
                        domains: vec!["*".to_owned()],
                        routes: vec![Route {
                            name: "default".to_owned(),
                            r#match: Some(RouteMatch {
                                path: Some(route_match::Path::Prefix("/".to_owned())),
                                ..RouteMatch::default()
                            }),
                            action: Some(route::Action::Route(RouteAction {
                                destinations: vec![weighted(&cluster)],
                                ..RouteAction::default()
                            })),
                            ..Route::default()
                        }],
                    }],
                });
            }
            config.clusters.push(Cluster {
                name: cluster.clone(),
                protocol: upstream_protocol(protocol).into(),
                ..Cluster::default()
            });
            let endpoints = plan
                .endpoints(service, port, &ready)
                .into_iter()
                .filter_map(|e| {
                    let pod = plan.pod(&service.namespace, &e.pod)?;
                    Some(Endpoint {
                        address: format!("{}:{}", e.ip, e.port),
                        labels: pod.labels.clone().into_iter().collect(),
                        identity: format!(
                            "spiffe://{CLUSTER_DOMAIN}/ns/{}/sa/{}",
                            pod.namespace, pod.service_account
                        ),
                        locality: Some(Locality {
                            zone: pod.node.clone(),
                            ..Locality::default()
                        }),
                        ..Endpoint::default()
                    })
                })
                .collect();
            config
                .endpoints
                .push(ClusterLoadAssignment { cluster, endpoints });
        }
    }
    config
}

fn weighted(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight: 1,
        ..WeightedCluster::default()
    }
}

/// The protocol of a Service port, as Istio decides it: `appProtocol`, else the port name's
/// prefix (`http`, `http2`, `grpc`, `tcp`, `tls`, `https`), else detected per connection.
pub fn app_protocol(port: &ServicePortPlan) -> AppProtocol {
    let by_name = |name: &str| match name {
        "http" => Some(AppProtocol::Http1),
        "http2" | "kubernetes.io/h2c" | "h2c" => Some(AppProtocol::Http2),
        "grpc" | "grpc-web" => Some(AppProtocol::Grpc),
        "tcp" | "mongo" | "mysql" | "redis" => Some(AppProtocol::Tcp),
        "tls" | "https" => Some(AppProtocol::Tls),
        _ => None,
    };
    let app = port.app_protocol.as_deref().map(str::to_ascii_lowercase);
    app.as_deref()
        .and_then(by_name)
        .or_else(|| by_name(port.name.split('-').next().unwrap_or_default()))
        .unwrap_or(AppProtocol::Detect)
}

/// What the proxy speaks to the endpoints: gRPC and h2c stay HTTP/2; the rest follows the client.
fn upstream_protocol(protocol: AppProtocol) -> AppProtocol {
    match protocol {
        AppProtocol::Grpc | AppProtocol::Http2 => AppProtocol::Http2,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{cluster::TargetPort, manifest::Manifests};

    const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      containers: [{ name: web, image: mesh-workload, ports: [{ containerPort: 8080 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }, { name: tcp-echo, port: 9000 }]
"#;

    fn plan() -> ClusterPlan {
        let mut manifests = Manifests::default();
        manifests.add_text(SHOP, Path::new("shop.yaml")).unwrap();
        ClusterPlan::new(&manifests, 2).unwrap()
    }

    #[test]
    fn each_service_port_gets_a_listener_route_cluster_and_ready_endpoints() {
        let plan = plan();
        let web = plan.services.iter().find(|s| s.name == "web").unwrap();
        let vip = web.cluster_ip.unwrap();
        let config = proxy_config(&plan, |_| true);
        let http = config
            .listeners
            .iter()
            .find(|l| l.address == format!("{vip}:80"))
            .unwrap();
        assert_eq!(http.protocol(), AppProtocol::Http1);
        assert_eq!(http.route_config, "web.shop.svc.cluster.local:80");
        assert!(http.tcp.is_none());
        let tcp = config
            .listeners
            .iter()
            .find(|l| l.address == format!("{vip}:9000"))
            .unwrap();
        assert_eq!(tcp.protocol(), AppProtocol::Tcp);
        assert!(tcp.route_config.is_empty());
        let assignment = config
            .endpoints
            .iter()
            .find(|e| e.cluster == "outbound|80||web.shop.svc.cluster.local")
            .unwrap();
        assert_eq!(assignment.endpoints.len(), 2);
        assert!(
            assignment
                .endpoints
                .iter()
                .all(|e| e.address.ends_with(":8080"))
        );
        assert_eq!(
            assignment.endpoints[0].identity,
            "spiffe://cluster.local/ns/shop/sa/default"
        );
        // kube-dns's TCP port is served too (detected), its UDP port is not.
        assert!(
            config
                .listeners
                .iter()
                .any(|l| l.address == "10.96.0.10:53")
        );

        let none_ready = proxy_config(&plan, |p| p.namespace != "shop");
        let empty = none_ready
            .endpoints
            .iter()
            .find(|e| e.cluster == assignment.cluster)
            .unwrap();
        assert!(empty.endpoints.is_empty());
    }

    #[test]
    fn mesh_proxy_accepts_the_config_as_written_to_its_file() {
        let config = proxy_config(&plan(), |_| true);
        let json = serde_json::to_string(&config).unwrap();
        let parsed = mesh_proxy::config::parse(&json, Path::new("proxy.json")).unwrap();
        assert_eq!(parsed, config);
        let snapshot = mesh_proxy::config::Snapshot::compile(parsed, None);
        assert!(snapshot.is_ok(), "{:?}", snapshot.err());
    }

    #[test]
    fn protocol_follows_app_protocol_then_port_name() {
        let port = |name: &str, app: Option<&str>| ServicePortPlan {
            name: name.to_owned(),
            protocol: Protocol::Tcp,
            port: 80,
            target: TargetPort::Number(80),
            node_port: None,
            app_protocol: app.map(str::to_owned),
        };
        assert_eq!(app_protocol(&port("http-web", None)), AppProtocol::Http1);
        assert_eq!(app_protocol(&port("grpc", None)), AppProtocol::Grpc);
        assert_eq!(
            app_protocol(&port("web", Some("kubernetes.io/h2c"))),
            AppProtocol::Http2
        );
        assert_eq!(app_protocol(&port("http", Some("tcp"))), AppProtocol::Tcp);
        assert_eq!(app_protocol(&port("web", None)), AppProtocol::Detect);
    }
}
