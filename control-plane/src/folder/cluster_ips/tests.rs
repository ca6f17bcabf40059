use k8s_openapi::api::core::v1::Service;

use super::*;
use crate::{folder::parse_manifests, node::ProxyNode, translate::translate};

/// The folder's objects as loaded, then addresses handed out.
fn assigned(yaml: &str) -> Loaded {
    let mut loaded = Loaded::default();
    for (object, at) in parse_manifests(yaml, "shop.yaml").objects {
        loaded.sources.insert(object.object_ref(), at);
        loaded.store.apply(object);
    }
    assign(&mut loaded);
    loaded
}

fn cluster_ip(loaded: &Loaded, name: &str) -> Option<String> {
    let service = loaded.store.get::<Service>("shop", name).unwrap();
    service.spec.as_ref().unwrap().cluster_ip.clone()
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: b-written, namespace: shop }
spec: { clusterIP: 10.96.0.20, ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: a-web, namespace: shop }
spec: { selector: { app: web }, ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: c-headless, namespace: shop }
spec: { clusterIP: None, ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: d-external, namespace: shop }
spec: { type: ExternalName, externalName: example.com }
---
apiVersion: v1
kind: Service
metadata: { name: e-api, namespace: shop }
spec: { ports: [{ name: http, port: 8080 }] }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy, namespace: shop }
spec:
  hosts: [legacy.example.com]
  addresses: [10.96.0.22/31]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 192.0.2.1 }]
"#;

#[test]
fn services_without_an_address_get_the_next_free_ones_and_a_note_naming_them() {
    let loaded = assigned(SERVICES);
    // By name, after the written 10.96.0.20 and the ServiceEntry's 10.96.0.22-23.
    assert_eq!(cluster_ip(&loaded, "a-web").as_deref(), Some("10.96.0.21"));
    assert_eq!(cluster_ip(&loaded, "e-api").as_deref(), Some("10.96.0.24"));
    assert_eq!(
        cluster_ip(&loaded, "b-written").as_deref(),
        Some("10.96.0.20")
    );
    assert_eq!(cluster_ip(&loaded, "c-headless").as_deref(), Some("None"));
    assert_eq!(cluster_ip(&loaded, "d-external"), None);
    let notes: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        loaded.problems.iter().all(|p| p.severity == Severity::Info
            && p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("shop.yaml"))),
        "{notes:#?}"
    );
    assert!(
        notes[0].contains("Service shop/a-web") && notes[0].contains("gives it 10.96.0.21"),
        "{notes:#?}"
    );
}

#[test]
fn a_service_given_an_address_gets_its_outbound_listener() {
    let loaded = assigned(SERVICES);
    let node = ProxyNode {
        namespace: "shop".to_owned(),
        ..ProxyNode::default()
    };
    let config = translate(&loaded.store, &node).config;
    let listeners: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert!(listeners.contains(&"10.96.0.21_80"), "{listeners:?}");
    assert!(listeners.contains(&"10.96.0.24_8080"), "{listeners:?}");
}
