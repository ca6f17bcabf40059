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

/// The first route of the service's route config on `port`.
pub(super) fn routes_of<'a>(config: &'a ProxyConfig, service: &str, port: u32) -> &'a [Route] {
    &route_config(config, &format!("{service}.shop.svc.cluster.local:{port}")).virtual_hosts[0]
        .routes
}

const DR_V1_V2: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
"#;

#[test]
fn an_exact_virtual_service_host_beats_a_wildcard_one() {
    let yaml = format!(
        "{SHOP}{DR_V1_V2}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: all, namespace: shop, creationTimestamp: "2020-01-01T00:00:00Z" }
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http: [{ route: [{ destination: { host: web, subset: v2, port: { number: 80 } } }] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z" }
spec:
  hosts: [web]
  http: [{ route: [{ destination: { host: web, subset: v1 } }] }]
"#
    );
    let config = translate(&store(&yaml), &client("shop", &[])).config;
    let routes = routes_of(&config, "web", 80);
    assert_eq!(
        clusters_of(&routes[0]),
        [("outbound|80|v1|web.shop.svc.cluster.local".to_owned(), 100)]
    );
}

#[test]
fn source_labels_select_rules_per_proxy_and_no_rule_means_the_default_route() {
    let yaml = format!(
        "{SHOP}{DR_V1_V2}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
  - match: [{ sourceLabels: { app: tester } }]
    route: [{ destination: { host: web, subset: v2 } }]
  - match: [{ sourceNamespace: qa, port: 80 }]
    route: [{ destination: { host: web, subset: v1 } }]
"#
    );
    let store = store(&yaml);
    let translator = Translator::new(&store);
    let tester = translator
        .translate(&client("shop", &[("app", "tester")]))
        .config;
    let routes = routes_of(&tester, "web", 80);
    assert_eq!(routes.len(), 1);
    assert_eq!(
        clusters_of(&routes[0])[0].0,
        "outbound|80|v2|web.shop.svc.cluster.local"
    );
    let qa = translator.translate(&client("qa", &[])).config;
    assert_eq!(
        clusters_of(&routes_of(&qa, "web", 80)[0])[0].0,
        "outbound|80|v1|web.shop.svc.cluster.local"
    );
    let other = translator
        .translate(&client("shop", &[("app", "web")]))
        .config;
    let routes = routes_of(&other, "web", 80);
    assert_eq!(routes[0].name, "default", "no rule applies to this proxy");
    assert_eq!(
        clusters_of(&routes[0])[0].0,
        "outbound|80||web.shop.svc.cluster.local"
    );
}

#[test]
fn the_proxys_own_namespace_rule_wins_and_workload_selectors_are_honoured() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec: { host: web.shop.svc.cluster.local, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web-from-qa, namespace: qa }
spec: { host: web.shop.svc.cluster.local, trafficPolicy: { loadBalancer: { simple: RANDOM } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web-for-batch, namespace: shop }
spec:
  host: web.shop.svc.cluster.local
  workloadSelector: { matchLabels: { app: batch } }
  trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST } }
"#
    );
    let store = store(&yaml);
    let translator = Translator::new(&store);
    let policy = |namespace: &str, labels: &[(&str, &str)]| {
        translator
            .translate(&client(namespace, labels))
            .config
            .clusters[0]
            .lb_policy()
    };
    assert_eq!(policy("shop", &[]), LbPolicy::RoundRobin);
    assert_eq!(policy("qa", &[]), LbPolicy::Random);
    assert_eq!(policy("shop", &[("app", "batch")]), LbPolicy::LeastRequest);
    assert_eq!(policy("other", &[("app", "batch")]), LbPolicy::RoundRobin);
}

#[test]
fn a_view_keeps_the_namespace_and_only_the_labels_a_selector_reads() {
    let selecting = r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http: [{ match: [{ sourceLabels: { track: canary } }], route: [{ destination: { host: web } }] }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web-for-batch, namespace: shop }
spec: { host: web, workloadSelector: { matchLabels: { tier: batch } } }
"#;
    let plain = Translator::new(&store(SHOP));
    let selective = Translator::new(&store(&format!("{SHOP}{selecting}")));
    let a = client(
        "shop",
        &[("app", "a"), ("track", "canary"), ("tier", "web")],
    );
    let b = client(
        "shop",
        &[("app", "b"), ("track", "canary"), ("tier", "web")],
    );
    let c = client(
        "shop",
        &[("app", "a"), ("track", "stable"), ("tier", "web")],
    );
    assert_eq!(
        plain.view_of(&a),
        plain.view_of(&c),
        "no selector: labels do not matter"
    );
    assert_ne!(plain.view_of(&a), plain.view_of(&client("qa", &[])));
    assert_eq!(
        selective.view_of(&a),
        selective.view_of(&b),
        "nothing reads `app`"
    );
    assert_ne!(selective.view_of(&a), selective.view_of(&c));
    assert_eq!(selective.translate(&a), selective.translate(&b));
    assert_ne!(selective.translate(&a), selective.translate(&c));
}

#[test]
fn a_broken_virtual_service_is_skipped_whole_with_a_problem_that_says_what_to_do() {
    let yaml = format!(
        "{SHOP}{DR_V1_V2}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
  - match: [{ uri: { prefix: /v1 } }]
    route: [{ destination: { host: web, subset: v1 } }]
  - route: [{ destination: { host: web, subset: v1 } }]
    retries: { attempts: -1 }
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    let routes = routes_of(&translation.config, "web", 80);
    assert_eq!(
        routes.len(),
        1,
        "nothing of the broken VirtualService is applied"
    );
    assert_eq!(routes[0].name, "default");
    let error = translation.problems.iter().find(|p| p.is_error()).unwrap();
    assert_eq!(
        error.object,
        Some(crate::store::ObjectRef::new(
            crate::store::Kind::VirtualService,
            "shop",
            "web"
        ))
    );
    assert_eq!(error.field, "spec.http[1].retries.attempts");
    assert_eq!(error.message, "-1 attempts is negative");
    assert_eq!(error.hint, "use 0 to disable retries, or a positive count");
}

#[test]
fn a_header_change_http_cannot_carry_is_a_problem_not_a_push_the_proxy_refuses() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
  - route: [{ destination: { host: web } }]
    headers:
      request: { set: { "x-ok": "yes", "bad header": "x" }, remove: ["also bad"] }
      response: { add: { x-line: "one\ntwo" } }
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    let errors: Vec<(&str, &str)> = translation
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "spec.http[0].headers.request.remove",
                r#""also bad" is not a valid header name"#
            ),
            (
                "spec.http[0].headers.request.set",
                r#""bad header" is not a valid header name"#
            ),
            (
                "spec.http[0].headers.response.add",
                r#"the value of header "x-line" is not a valid header value"#
            ),
        ]
    );
    let routes = routes_of(&translation.config, "web", 80);
    assert_eq!(
        routes[0].name, "default",
        "the broken VirtualService is left out"
    );
}

#[test]
fn gateway_api_ties_go_to_the_oldest_route_then_namespace_and_name() {
    let route = |name: &str, created: Option<&str>, backend_port: u32| {
        let created = created
            .map(|c| format!(", creationTimestamp: \"{c}\""))
            .unwrap_or_default();
        format!(
            r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: {name}, namespace: shop{created} }}
spec:
  parentRefs: [{{ group: "", kind: Service, name: web }}]
  rules: [{{ matches: [{{ path: {{ value: /api }} }}], backendRefs: [{{ name: web, port: {backend_port} }}] }}]
"#
        )
    };
    let decide = |routes: &[String]| {
        let yaml = format!("{SHOP}{}", routes.concat());
        let translation = translate(&store(&yaml), &client("shop", &[]));
        let routes = routes_of(&translation.config, "web", 80);
        assert_eq!(routes.len(), 1, "the shadowed duplicate is dropped");
        let shadowed = translation
            .problems
            .iter()
            .find(|p| p.message.contains("conflicts with an identical match"))
            .unwrap();
        (
            clusters_of(&routes[0])[0].0.clone(),
            shadowed.object.clone().unwrap().name,
        )
    };
    let (winner, loser) = decide(&[
        route("b-newer", Some("2025-02-01T00:00:00Z"), 80),
        route("a-older", Some("2025-01-01T00:00:00Z"), 9000),
    ]);
    assert_eq!(winner, "outbound|9000||web.shop.svc.cluster.local");
    assert_eq!(loser, "b-newer");
    let (winner, loser) = decide(&[route("zeta", None, 80), route("alpha", None, 9000)]);
    assert_eq!(winner, "outbound|9000||web.shop.svc.cluster.local");
    assert_eq!(loser, "zeta");
}

#[test]
fn consumer_routes_replace_producer_routes_for_their_namespace_only() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: producer, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: web, port: 80 }], timeouts: { request: 5s } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: qa }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, namespace: shop, port: 80 }]
  rules: [{ backendRefs: [{ name: web, namespace: shop, port: 80 }], timeouts: { request: 1s } }]
"#
    );
    let store = store(&yaml);
    let translator = Translator::new(&store);
    let timeout = |namespace: &str| {
        let config = translator.translate(&client(namespace, &[])).config;
        match &routes_of(&config, "web", 80)[0].action {
            Some(route::Action::Route(action)) => action.timeout.unwrap().seconds,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(timeout("shop"), 5);
    assert_eq!(timeout("qa"), 1);
    assert_eq!(timeout("mail"), 5);
    // The route attaches to port 80 only: port 9000 keeps its default.
    let config = translator.translate(&client("shop", &[])).config;
    let tcp = config
        .listeners
        .iter()
        .find(|l| l.name == "10.96.0.20_9000")
        .unwrap();
    assert_eq!(
        tcp.tcp.as_ref().unwrap().destinations[0].cluster,
        "outbound|9000||web.shop.svc.cluster.local"
    );
}

#[test]
fn one_address_serves_one_service_and_a_service_entry_cannot_take_a_services_host() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: v1
kind: Service
metadata: { name: xweb, namespace: shop }
spec: { clusterIP: 10.96.0.20, ports: [{ name: http, port: 80 }] }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: web, namespace: shop }
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{ number: 80, name: http }]
  resolution: STATIC
  endpoints: [{ address: 192.0.2.1 }]
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    let on_80: Vec<_> = translation
        .config
        .listeners
        .iter()
        .filter(|l| l.address == "10.96.0.20:80")
        .map(|l| l.route_config.as_str())
        .collect();
    assert_eq!(on_80, ["web.shop.svc.cluster.local:80"]);
    let texts: Vec<_> = translation
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("Service shop/xweb")
            && t.contains("already served for Service shop/web")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("ServiceEntry shop/web")
            && t.contains("already defined by Service shop/web")),
        "{texts:#?}"
    );
    let web = translation
        .config
        .endpoints
        .iter()
        .find(|e| e.cluster == "outbound|80||web.shop.svc.cluster.local")
        .unwrap();
    assert_eq!(
        web.endpoints[0].address, "10.244.1.7:8080",
        "the Service's endpoints, not the entry's"
    );
}

#[test]
fn a_thousand_services_translate_without_quadratic_work() {
    let mut yaml = String::new();
    for i in 0..1000 {
        yaml.push_str(&format!(
            r#"
---
apiVersion: v1
kind: Service
metadata: {{ name: svc-{i}, namespace: ns-{ns} }}
spec: {{ clusterIP: 10.{a}.{b}.1, ports: [{{ name: http, port: 80 }}] }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: svc-{i}-x, namespace: ns-{ns}, labels: {{ kubernetes.io/service-name: svc-{i} }} }}
addressType: IPv4
ports: [{{ name: http, port: 8080 }}]
endpoints: [{endpoints}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: svc-{i}, namespace: ns-{ns} }}
spec: {{ host: svc-{i}, subsets: [{{ name: v1, labels: {{ version: v1 }} }}] }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: svc-{i}, namespace: ns-{ns} }}
spec:
  hosts: [svc-{i}]
  http: [{{ route: [{{ destination: {{ host: svc-{i}, subset: v1 }}, weight: 90 }}, {{ destination: {{ host: svc-{i} }}, weight: 10 }}] }}]
"#,
            ns = i % 20,
            a = 96 + i / 250,
            b = i % 250,
            endpoints = (0..10)
                .map(|e| format!("{{ addresses: [10.{}.{}.{e}] }}", 200 + i / 250, i % 250))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let store = store(&yaml);
    let translation = translate(&store, &client("ns-0", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:#?}",
        &translation.problems[..3]
    );
    let config = translation.config;
    assert_eq!(config.listeners.len(), 1000);
    assert_eq!(config.clusters.len(), 2000);
    let endpoints: usize = config.endpoints.iter().map(|e| e.endpoints.len()).sum();
    assert_eq!(
        endpoints, 10_000,
        "subset clusters are empty: no pod carries version v1"
    );
}

#[test]
fn a_translator_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Translator>();
    shareable::<Translation>();
    shareable::<Store>();
}

#[test]
fn several_mirrors_per_rule_translate_from_virtual_services_and_http_routes() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
  - route: [{ destination: { host: web } }]
    mirrors:
    - { destination: { host: web }, percentage: { value: 30 } }
    - { destination: { host: web, port: { number: 9000 } } }
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    let Some(route::Action::Route(action)) = &routes_of(&translation.config, "web", 80)[0].action
    else {
        panic!("a forwarding route")
    };
    let mirrors: Vec<_> = (action.mirrors.iter())
        .map(|m| (m.cluster.as_str(), m.percentage))
        .collect();
    assert_eq!(
        mirrors,
        [
            ("outbound|80||web.shop.svc.cluster.local", Some(30.0)),
            ("outbound|9000||web.shop.svc.cluster.local", None)
        ]
    );

    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
  - backendRefs: [{ name: web, port: 80 }]
    filters:
    - { type: RequestMirror, requestMirror: { backendRef: { name: web, port: 9000 }, percent: 10 } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: web, port: 80 }, fraction: { numerator: 1, denominator: 4 } } }
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    let Some(route::Action::Route(action)) = &routes_of(&translation.config, "web", 80)[0].action
    else {
        panic!("a forwarding route")
    };
    let shares: Vec<_> = action.mirrors.iter().map(|m| m.percentage).collect();
    assert_eq!(shares, [Some(10.0), Some(25.0)]);
}
