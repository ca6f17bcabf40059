use crate::config::v1::{Cluster, ProxyConfig, cluster::LbPolicy, listener::Mode, route};

const EXAMPLE: &str = r#"
listeners:
- name: web
  address: 10.96.0.20:80
  mode: OUTBOUND
  protocol: HTTP1
  routeConfig: web
routes:
- name: web
  virtual_hosts:
  - name: web
    domains: ["web", "web.shop.svc.cluster.local"]
    routes:
    - match: { prefix: /api }
      route:
        destinations: [{ cluster: web-v1, weight: 90 }, { cluster: web-v2, weight: 10 }]
        timeout: 1.5s
clusters:
- name: web-v1
  lb_policy: RING_HASH
endpoints:
- cluster: web-v1
  endpoints:
  - address: 10.244.1.7:8080
    labels: { version: v1 }
"#;

#[test]
fn yaml_loads_with_names_enums_and_durations() {
    let config: ProxyConfig = serde_yaml::from_str(EXAMPLE).expect("example parses");
    let listener = &config.listeners[0];
    assert_eq!(listener.mode(), Mode::Outbound);
    assert_eq!(listener.route_config, "web");
    let route = &config.routes[0].virtual_hosts[0].routes[0];
    let Some(route::Action::Route(action)) = &route.action else {
        panic!("expected a route action, got {:?}", route.action);
    };
    assert_eq!(action.destinations[1].weight, 10);
    let timeout = action.timeout.expect("timeout set");
    assert_eq!((timeout.seconds, timeout.nanos), (1, 500_000_000));
    assert_eq!(config.clusters[0].lb_policy(), LbPolicy::RingHash);
    assert_eq!(config.endpoints[0].endpoints[0].labels["version"], "v1");
}

#[test]
fn json_round_trip_keeps_every_field() {
    let config: ProxyConfig = serde_yaml::from_str(EXAMPLE).expect("example parses");
    let json = serde_json::to_string(&config).expect("serialises");
    let back: ProxyConfig = serde_json::from_str(&json).expect("parses back");
    assert_eq!(config, back);
}

#[test]
fn unknown_enum_name_is_a_clear_error() {
    let err = serde_yaml::from_str::<Cluster>("name: c\nlb_policy: FASTEST\n").unwrap_err();
    assert!(err.to_string().contains("FASTEST"), "{err}");
}
