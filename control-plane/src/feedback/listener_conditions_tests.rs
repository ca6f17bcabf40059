//! Listener status and route attachment reasons, from real translations: certificates that
//! resolve or not, protocols mesh does not serve, conflicting listeners, routes a listener
//! does not admit.

use serde_json::Value;

use super::tests::{NOW, patch_of, patches, store};
use crate::store::Kind;

/// A Gateway with one listener of each outcome, the Secrets they name, and routes.
fn manifests() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let secret = |namespace: &str, name: &str, crt: &str, key: &str| {
        let data = serde_json::json!({ "tls.crt": crt, "tls.key": key });
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: {namespace} }}\ntype: kubernetes.io/tls\nstringData: {data}\n---\n"
        )
    };
    let mut yaml = String::new();
    yaml += &secret("shop", "good", &cert.pem(), &key.serialize_pem());
    yaml += &secret("shop", "mismatched", &cert.pem(), &other_key);
    yaml += &secret("certs", "elsewhere", &cert.pem(), &key.serialize_pem());
    yaml += r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: mesh }
spec: { controllerName: mesh.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop }
spec:
  gatewayClassName: mesh
  listeners:
  - { name: http, port: 80, protocol: HTTP, hostname: a.example.com }
  - name: https
    port: 443
    protocol: HTTPS
    hostname: a.example.com
    tls: { certificateRefs: [{ name: good }] }
  - name: missing
    port: 443
    protocol: HTTPS
    hostname: b.example.com
    tls: { certificateRefs: [{ name: nosuch }] }
  - name: mismatched
    port: 443
    protocol: HTTPS
    hostname: c.example.com
    tls: { certificateRefs: [{ name: mismatched }] }
  - name: not-granted
    port: 443
    protocol: HTTPS
    hostname: d.example.com
    tls: { certificateRefs: [{ name: elsewhere, namespace: certs }] }
  - { name: udp, port: 53, protocol: UDP }
  - { name: clash, port: 443, protocol: HTTP, hostname: e.example.com }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  ports: [{ name: http, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: front, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [a.example.com]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: wrong-host, namespace: shop }
spec:
  parentRefs: [{ name: edge, sectionName: http }]
  hostnames: [z.example.com]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: from-elsewhere, namespace: other }
spec:
  parentRefs: [{ name: edge, namespace: shop }]
  rules: [{ backendRefs: [{ name: web, namespace: shop, port: 80 }] }]
"#;
    yaml
}

/// A condition's `(type, status, reason)`.
type Condition = (String, String, String);

/// `(name, attachedRoutes, conditions)` of each of a Gateway's listeners.
fn listeners(patch: &Value) -> Vec<(String, u64, Vec<Condition>)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (patch["status"]["listeners"]
        .as_array()
        .into_iter()
        .flatten())
    .map(|l| {
        let conditions = (l["conditions"].as_array().into_iter().flatten())
            .map(|c| (text(&c["type"]), text(&c["status"]), text(&c["reason"])))
            .collect();
        (
            text(&l["name"]),
            l["attachedRoutes"].as_u64().unwrap_or(99),
            conditions,
        )
    })
    .collect()
}

fn has(conditions: &[Condition], kind: &str, status: &str, reason: &str) -> bool {
    conditions.contains(&(kind.to_owned(), status.to_owned(), reason.to_owned()))
}

#[test]
fn each_listener_says_whether_it_is_served_and_why_not() {
    let store = store(&manifests());
    let patches = patches(&store, NOW);
    let edge = patch_of(&patches, Kind::Gateway, "edge").expect("edge is patched");
    let listeners = listeners(edge);
    let names: Vec<&str> = listeners.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "http",
            "https",
            "missing",
            "mismatched",
            "not-granted",
            "udp",
            "clash"
        ]
    );
    let of = |name: &str| &listeners.iter().find(|(n, _, _)| n == name).unwrap().2;
    let attached = |name: &str| listeners.iter().find(|(n, _, _)| n == name).unwrap().1;

    for name in ["http", "https"] {
        assert!(
            has(of(name), "Programmed", "True", "Programmed"),
            "{name}: {:?}",
            of(name)
        );
        assert!(
            has(of(name), "ResolvedRefs", "True", "ResolvedRefs"),
            "{name}"
        );
        assert!(
            has(of(name), "Conflicted", "False", "NoConflicts"),
            "{name}"
        );
    }
    assert_eq!(
        (attached("http"), attached("https")),
        (1, 1),
        "{listeners:?}"
    );
    assert_eq!(
        edge["status"]["listeners"][0]["supportedKinds"][0]["kind"],
        "HTTPRoute"
    );

    for name in ["missing", "mismatched"] {
        assert!(
            has(of(name), "ResolvedRefs", "False", "InvalidCertificateRef"),
            "{name}: {:?}",
            of(name)
        );
        assert!(has(of(name), "Programmed", "False", "Invalid"), "{name}");
    }
    assert!(
        has(
            of("not-granted"),
            "ResolvedRefs",
            "False",
            "RefNotPermitted"
        ),
        "{:?}",
        of("not-granted")
    );
    assert!(
        has(of("udp"), "Accepted", "False", "UnsupportedProtocol"),
        "{:?}",
        of("udp")
    );
    assert!(
        has(of("clash"), "Conflicted", "True", "ProtocolConflict"),
        "{:?}",
        of("clash")
    );
    // The Gateway itself stays accepted: its other listeners serve.
    assert_eq!(edge["status"]["conditions"][0]["status"], "True");
}

#[test]
fn a_reference_grant_lets_a_gateway_use_a_secret_in_another_namespace() {
    let granted = manifests()
        + r#"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: gateways-in-shop, namespace: certs }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: Gateway, namespace: shop }]
  to: [{ group: "", kind: Secret }]
"#;
    let store = store(&granted);
    let patches = patches(&store, NOW);
    let listeners = listeners(patch_of(&patches, Kind::Gateway, "edge").unwrap());
    let (_, _, conditions) = listeners
        .iter()
        .find(|(n, _, _)| n == "not-granted")
        .unwrap();
    assert!(
        has(conditions, "ResolvedRefs", "True", "ResolvedRefs"),
        "{conditions:?}"
    );
    assert!(
        has(conditions, "Programmed", "True", "Programmed"),
        "{conditions:?}"
    );
}

#[test]
fn routes_a_listener_does_not_admit_say_why() {
    let store = store(&manifests());
    let patches = patches(&store, NOW);
    let accepted = |name: &str| {
        let patch = patch_of(&patches, Kind::HttpRoute, name).expect("route is patched");
        let condition = &patch["status"]["parents"][0]["conditions"][0];
        assert_eq!(condition["type"], "Accepted");
        (
            condition["status"].as_str().unwrap().to_owned(),
            condition["reason"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        accepted("front"),
        ("True".to_owned(), "Accepted".to_owned())
    );
    assert_eq!(
        accepted("wrong-host"),
        ("False".to_owned(), "NoMatchingListenerHostname".to_owned())
    );
    assert_eq!(
        accepted("from-elsewhere"),
        ("False".to_owned(), "NotAllowedByListeners".to_owned())
    );
}
