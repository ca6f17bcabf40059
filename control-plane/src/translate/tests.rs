//! Unit tests of translation on small stores: the plain-Service shape the lab relies on,
//! precedence, and problems with broken objects.

use std::collections::BTreeMap;

use mesh_proto::config::v1::{
    Protocol, ProxyConfig, Route, RouteConfig, cluster::LbPolicy, listener::Mode, route,
    route_match::Path,
};

use super::*;
use crate::folder::parse_manifests;

pub(super) const SHOP: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }, { name: tcp-echo, port: 9000 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: { kubernetes.io/service-name: web }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }, { name: tcp-echo, port: 9000 }]
endpoints:
- addresses: [10.244.1.7]
  conditions: { ready: true }
  nodeName: node-1
  targetRef: { kind: Pod, name: web-v1, namespace: shop }
- addresses: [10.244.2.9]
  conditions: { ready: true }
  nodeName: node-2
  zone: zone-b
  targetRef: { kind: Pod, name: web-v2, namespace: shop }
- addresses: [10.244.2.10]
  conditions: { ready: false }
  targetRef: { kind: Pod, name: web-starting, namespace: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: web-v1, namespace: shop, labels: { app: web, version: v1 } }
spec: { serviceAccountName: web, containers: [{ name: web, image: web }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-v2, namespace: shop, labels: { app: web, version: v2 } }
spec: { containers: [{ name: web, image: web }] }
"#;

/// A store from manifests; panics on any error reading them.
pub(super) fn store(yaml: &str) -> Store {
    let parsed = parse_manifests(yaml, "test.yaml");
    let errors: Vec<_> = parsed.problems.iter().filter(|p| p.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut store = Store::new();
    for (object, _) in parsed.objects {
        store.apply(object);
    }
    store
}

pub(super) fn client(namespace: &str, labels: &[(&str, &str)]) -> ProxyNode {
    ProxyNode {
        id: format!("client.{namespace}"),
        pod: "client".to_owned(),
        namespace: namespace.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        service_account: "client".to_owned(),
        ip: "10.244.0.5".to_owned(),
        proxy_version: "test".to_owned(),
    }
}

pub(super) fn route_config<'a>(config: &'a ProxyConfig, name: &str) -> &'a RouteConfig {
    config
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route config {name}"))
}

pub(super) fn clusters_of(route: &Route) -> Vec<(String, u32)> {
    match &route.action {
        Some(route::Action::Route(action)) => action
            .destinations
            .iter()
            .map(|d| (d.cluster.clone(), d.weight))
            .collect(),
        other => panic!("not a forwarding route: {other:?}"),
    }
}

#[test]
fn a_plain_service_gets_the_lab_shape() {
    let translation = translate(&store(SHOP), &client("shop", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:#?}",
        translation.problems
    );
    let config = translation.config;
    let names: Vec<_> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["10.96.0.20_80", "10.96.0.20_9000"]);
    let http = &config.listeners[0];
    assert_eq!(http.address, "10.96.0.20:80");
    assert_eq!(http.mode(), Mode::Outbound);
    assert_eq!(http.protocol(), Protocol::Http1);
    assert_eq!(http.route_config, "web.shop.svc.cluster.local:80");
    assert!(http.tcp.is_none());
    let tcp = &config.listeners[1];
    assert_eq!(tcp.protocol(), Protocol::Tcp);
    assert!(tcp.route_config.is_empty());
    assert_eq!(
        tcp.tcp.as_ref().unwrap().destinations[0].cluster,
        "outbound|9000||web.shop.svc.cluster.local"
    );
    let routes = route_config(&config, "web.shop.svc.cluster.local:80");
    assert_eq!(routes.virtual_hosts.len(), 1);
    assert_eq!(routes.virtual_hosts[0].domains, ["*"]);
    let default = &routes.virtual_hosts[0].routes[0];
    assert_eq!(default.name, "default");
    assert_eq!(
        default.r#match.as_ref().unwrap().path,
        Some(Path::Prefix("/".into()))
    );
    assert_eq!(
        clusters_of(default),
        [("outbound|80||web.shop.svc.cluster.local".to_owned(), 1)]
    );
    let cluster_names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cluster_names,
        [
            "outbound|80||web.shop.svc.cluster.local",
            "outbound|9000||web.shop.svc.cluster.local"
        ]
    );
    assert_eq!(config.clusters[0].protocol(), Protocol::Http1);
    assert_eq!(config.clusters[0].lb_policy(), LbPolicy::PeakEwma);
    assert!(config.clusters[0].tls.is_none());
    let endpoints = &config.endpoints[0];
    assert_eq!(endpoints.cluster, config.clusters[0].name);
    let addresses: Vec<_> = endpoints
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(
        addresses,
        ["10.244.1.7:8080", "10.244.2.9:8080"],
        "the unready pod is left out"
    );
    let v1 = &endpoints.endpoints[0];
    assert_eq!(v1.identity, "spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(v1.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(v1.locality.as_ref().unwrap().zone, "node-1");
    let v2 = &endpoints.endpoints[1];
    assert_eq!(v2.identity, "spiffe://cluster.local/ns/shop/sa/default");
    assert_eq!(v2.locality.as_ref().unwrap().zone, "zone-b");
    assert_eq!(config.endpoints[1].endpoints[0].address, "10.244.1.7:9000");
}

#[test]
fn headless_and_unassigned_services_get_clusters_but_no_listener() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: None, ports: [{ name: tcp, port: 5432 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { ports: [{ name: http, port: 80 }, { name: dns, port: 53, protocol: UDP }] }
"#;
    let config = translate(&store(yaml), &client("shop", &[])).config;
    assert!(config.listeners.is_empty());
    assert!(config.routes.is_empty());
    let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "outbound|80||api.shop.svc.cluster.local",
            "outbound|5432||db.shop.svc.cluster.local"
        ]
    );
}
