use std::path::Path;

use super::{ConfigError, EncodedConfig, Snapshot, parse};
use crate::{addr::OrigDstAddr, metrics::Direction};

fn compile(yaml: &str) -> Result<Snapshot, Vec<String>> {
    Snapshot::compile(
        EncodedConfig::encode(&parse(yaml, Path::new("t.yaml")).expect("parses")),
        None,
    )
}

#[test]
fn valid_config_indexes_listeners_by_destination() {
    let snapshot = compile(
        r#"
listeners:
- { name: out, address: "10.96.0.20:80", mode: OUTBOUND, route_config: r }
- { name: in, address: "0.0.0.0:8080", mode: INBOUND, protocol: HTTP1 }
- { name: gw, address: "127.0.0.1:0", mode: EXPLICIT, protocol: TCP, tcp: { destinations: [{ cluster: c }] } }
routes: [ { name: r, virtual_hosts: [] } ]
clusters: [ { name: c } ]
endpoints: [ { cluster: c, endpoints: [{ address: "10.244.0.5:80" }, { address: "[fd00::5]:80", health: UNHEALTHY }] } ]
"#,
    )
    .expect("valid");
    let out = snapshot
        .outbound_listener(OrigDstAddr("10.96.0.20:80".parse().expect("addr")))
        .expect("outbound listener by VIP");
    assert_eq!(out.direction, Direction::Outbound);
    assert!(
        snapshot
            .outbound_listener(OrigDstAddr("10.96.0.20:81".parse().expect("addr")))
            .is_none()
    );
    assert_eq!(
        snapshot
            .inbound_listener(8080)
            .expect("inbound by port")
            .name,
        "in"
    );
    assert_eq!(snapshot.explicit_listeners().len(), 1);
    let cluster = snapshot.cluster("c").expect("cluster");
    assert_eq!(cluster.balancer.endpoints().len(), 2);
    assert_eq!(snapshot.version, 1);
}

#[test]
fn every_invalid_field_is_reported_at_once() {
    let Err(errors) = compile(
        r#"
listeners:
- { name: a, address: "nope", mode: OUTBOUND }
- { name: b, address: "10.0.0.1:80", route_config: missing }
- { name: c, address: "10.0.0.1:80", protocol: TCP }
- { name: d, address: "127.0.0.1:9", mode: EXPLICIT, tcp: { destinations: [{ cluster: ghost }] } }
clusters: [ { name: x }, { name: x } ]
endpoints:
- { cluster: x, endpoints: [{ address: "10.0.0.9" }] }
- { cluster: orphan, endpoints: [] }
"#,
    ) else {
        panic!("the config is invalid");
    };
    let expected = [
        r#"listener "a": "nope" is not an ip:port address"#,
        r#"listener "b": route config "missing" is not defined"#,
        r#"listener "c": a TCP or TLS listener needs tcp destinations"#,
        r#"listener "c": another outbound listener already uses 10.0.0.1:80"#,
        r#"listener "d": tcp destination cluster "ghost" is not defined"#,
        r#"cluster "x" is defined twice"#,
        r#"cluster "x": "10.0.0.9" is not an ip:port address"#,
        r#"endpoints are given for cluster "orphan", which is not defined"#,
    ];
    for message in expected {
        assert!(
            errors.iter().any(|e| e == message),
            "missing {message:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn yaml_errors_name_the_file_and_position() {
    let Err(error) = parse(
        "listeners: [ { name: a, address: 1 } ]\nclusters: {",
        Path::new("/etc/mesh/proxy.yaml"),
    ) else {
        panic!("the yaml is invalid");
    };
    let text = error.to_string();
    assert!(matches!(error, ConfigError::Parse { .. }));
    assert!(
        text.contains("/etc/mesh/proxy.yaml") && text.contains("line"),
        "{text}"
    );
}

#[test]
fn clusters_and_route_tables_are_built_on_first_use_and_stay_built_with_their_load() {
    let yaml = r#"
listeners: [ { name: out, address: "10.96.0.20:80", mode: OUTBOUND, route_config: r } ]
routes: [ { name: r, virtual_hosts: [ { name: web, domains: ["*"] } ] } ]
clusters: [ { name: a }, { name: b } ]
endpoints: [ { cluster: a, endpoints: [{ address: "10.244.0.5:80" }] } ]
"#;
    let first = compile(yaml).expect("valid");
    assert_eq!(first.built_clusters(), 0);
    assert!(first.route_table("r").is_some());
    let pick = first
        .cluster("a")
        .expect("cluster a")
        .balancer
        .pick(None)
        .expect("an endpoint");
    assert_eq!(first.built_clusters(), 1);

    let config = parse(yaml, Path::new("t.yaml")).expect("parses");
    let second = Snapshot::compile(EncodedConfig::encode(&config), Some(&first)).expect("valid");
    assert_eq!(
        second.built_clusters(),
        1,
        "the cluster in use is built at once"
    );
    let endpoint = &second.cluster("a").expect("cluster a").balancer.endpoints()[0];
    assert_eq!(
        endpoint.in_flight(),
        1,
        "the request in flight carried over"
    );
    drop(pick);
    assert_eq!(endpoint.in_flight(), 0);
    assert_eq!(second.built_clusters(), 1);
    assert_eq!(
        second.config(),
        config,
        "the config dump shows the whole config"
    );
}

#[test]
fn absurd_retry_and_timeout_values_are_refused_naming_the_field() {
    let Err(errors) = compile(
        r#"
listeners: [ { name: out, address: "10.96.0.20:80", mode: OUTBOUND, route_config: r } ]
routes:
- name: r
  virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
    - { match: { prefix: /a }, route: { destinations: [{ cluster: c }], retries: { attempts: 10000 } } }
    - { match: { prefix: /b }, route: { destinations: [{ cluster: c }], retries: { attempts: 2, per_try_timeout: 0s } } }
    - { match: { prefix: /c }, route: { destinations: [{ cluster: c }], retries: { attempts: 2, retry_on: [sometimes] } } }
    - { match: { prefix: /d }, route: { destinations: [{ cluster: c }], retries: { attempts: 2, retriable_status_codes: [700] } } }
    - { match: { prefix: /e }, route: { destinations: [{ cluster: c }], timeout: -1s } }
clusters: [ { name: c } ]
"#,
    ) else {
        panic!("absurd values must be refused");
    };
    let all = errors.join("\n");
    for expected in [
        "retries.attempts 10000 is more than 100",
        "retries.per_try_timeout must be positive",
        "retry condition \"sometimes\" is not one of",
        "retries.retriable_status_codes: 700 is not an HTTP status",
        "timeout is negative",
    ] {
        assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
    }
}

#[test]
fn catch_all_outbound_listeners_take_destinations_without_their_own() {
    let snapshot = compile(
        r#"
listeners:
- { name: vip, address: "10.96.0.20:80", mode: OUTBOUND, route_config: r }
- { name: port-80, address: "0.0.0.0:80", mode: OUTBOUND, route_config: r }
- { name: any, address: "0.0.0.0:0", mode: OUTBOUND, unmatched: BLOCK }
routes: [ { name: r, virtual_hosts: [] } ]
"#,
    )
    .expect("valid");
    let name = |dst: &str| {
        let dst = OrigDstAddr(dst.parse().expect("addr"));
        snapshot.outbound_listener(dst).map(|l| l.name.clone())
    };
    assert_eq!(name("10.96.0.20:80").as_deref(), Some("vip"));
    assert_eq!(name("203.0.113.7:80").as_deref(), Some("port-80"));
    assert_eq!(name("[2001:db8::7]:80").as_deref(), Some("port-80"));
    assert_eq!(name("203.0.113.7:5432").as_deref(), Some("any"));
    let any = snapshot
        .outbound_listener(OrigDstAddr("203.0.113.7:5432".parse().expect("addr")))
        .expect("listener");
    assert_eq!(
        any.unmatched,
        Some(mesh_proto::config::v1::Unmatched::Block)
    );
}

#[test]
fn only_catch_all_outbound_listeners_may_block() {
    let errors = compile(
        r#"
listeners:
- { name: vip, address: "10.96.0.20:80", mode: OUTBOUND, protocol: TCP, tcp: { destinations: [{ cluster: c }] }, unmatched: BLOCK }
clusters: [ { name: c } ]
"#,
    )
    .err()
    .expect("invalid");
    assert!(
        errors[0].contains("unmatched is for OUTBOUND listeners at 0.0.0.0"),
        "{errors:?}"
    );
}

#[test]
fn dns_cluster_endpoints_are_the_addresses_of_their_names() {
    let yaml = r#"
clusters: [ { name: api, discovery: DNS } ]
endpoints:
- cluster: api
  endpoints:
  - { address: "API.example.test:443", weight: 3, labels: { version: v1 } }
  - { address: "10.1.2.3:443" }
"#;
    let config = EncodedConfig::encode(&parse(yaml, Path::new("t.yaml")).expect("parses"));
    let unresolved = Snapshot::compile(config.clone(), None).expect("valid");
    assert_eq!(unresolved.dns_names(), ["api.example.test"]);
    let endpoints = |snapshot: &Snapshot| {
        let cluster = snapshot.cluster("api").expect("cluster");
        let mut addrs: Vec<String> = (cluster.balancer.endpoints().iter())
            .map(|e| e.addr().to_string())
            .collect();
        addrs.sort();
        addrs
    };
    assert_eq!(
        endpoints(&unresolved),
        ["10.1.2.3:443"],
        "an address needs no lookup"
    );
    let resolved: crate::dns::Resolved = [(
        "api.example.test".to_owned(),
        std::sync::Arc::from([
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        ]),
    )]
    .into_iter()
    .collect();
    let snapshot =
        Snapshot::compile_with(config.clone(), Some(&unresolved), resolved).expect("valid");
    assert_eq!(
        endpoints(&snapshot),
        ["10.1.2.3:443", "192.0.2.1:443", "192.0.2.2:443"]
    );
    assert!(snapshot.is_registered("192.0.2.2:443".parse().expect("addr")));
    assert!(!snapshot.is_registered("192.0.2.2:80".parse().expect("addr")));
    let again = Snapshot::compile(config, Some(&snapshot)).expect("valid");
    assert_eq!(endpoints(&again).len(), 3, "a new config keeps the answers");
}

#[test]
fn dns_cluster_endpoints_must_be_name_and_port() {
    let errors = compile(
        r#"
clusters: [ { name: api, discovery: DNS } ]
endpoints: [ { cluster: api, endpoints: [{ address: "api.example.test" }, { address: "bad name!:80" }] } ]
"#,
    )
    .err()
    .expect("invalid");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("is not name:port"), "{errors:?}");
    assert!(errors[1].contains("is not a DNS name"), "{errors:?}");
}
