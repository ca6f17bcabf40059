//! ReferenceGrant: a route may send to a Service in another namespace only when a grant there
//! names the route's kind and namespace, and the Service (or every Service).

use super::tests::{SHOP, client, store};
use super::*;

const BACKEND: &str = r#"
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: backend }
spec:
  clusterIP: 10.96.0.50
  ports: [{ name: http, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: to-api, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: api, namespace: backend, port: 8080 }] }]
"#;

fn grant(from_kind: &str, from_namespace: &str, to_name: Option<&str>) -> String {
    let name = to_name.map_or(String::new(), |n| format!(", name: {n}"));
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n\
         metadata: {{ name: g, namespace: backend }}\n\
         spec:\n  from: [{{ group: gateway.networking.k8s.io, kind: {from_kind}, namespace: {from_namespace} }}]\n  \
         to: [{{ group: \"\", kind: Service{name} }}]\n"
    )
}

/// The errors about the route's backend, and whether web's routes send to api.backend.
fn outcome(extra: &str) -> (Vec<String>, bool) {
    let translation = translate(
        &store(&format!("{SHOP}{BACKEND}{extra}")),
        &client("shop", &[]),
    );
    let errors = (translation.problems.iter())
        .filter(|p| p.is_error() && p.field.contains("backendRefs"))
        .map(ToString::to_string)
        .collect();
    // web's route config sends to api.backend.
    let routed = (translation.config.routes.iter())
        .filter(|r| r.name == "web.shop.svc.cluster.local:80")
        .any(|r| format!("{r:?}").contains("api.backend.svc.cluster.local"));
    (errors, routed)
}

#[test]
fn a_cross_namespace_backend_needs_a_grant_for_the_routes_kind_and_namespace() {
    let (errors, routed) = outcome("");
    assert!(!routed);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("no ReferenceGrant"), "{errors:#?}");

    let (errors, routed) = outcome(&grant("HTTPRoute", "shop", None));
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(routed, "the granted backend is used");

    let (errors, _) = outcome(&grant("HTTPRoute", "shop", Some("api")));
    assert!(errors.is_empty(), "a grant naming the Service: {errors:#?}");

    for (kind, namespace, name) in [
        ("GRPCRoute", "shop", None),
        ("HTTPRoute", "elsewhere", None),
        ("HTTPRoute", "shop", Some("other")),
    ] {
        let (errors, routed) = outcome(&grant(kind, namespace, name));
        assert!(
            !routed && errors.len() == 1,
            "{kind} {namespace} {name:?}: {errors:#?}"
        );
    }
}
