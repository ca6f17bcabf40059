use super::*;
use crate::folder::parse_manifests;

fn store(yaml: &str) -> Store {
    let mut store = Store::new();
    for (object, _) in parse_manifests(yaml, "test.yaml").objects {
        store.apply(object);
    }
    store
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  clusterIP: 10.96.0.30
  ports: [{ name: http, port: 9080 }, { name: metrics, port: 9090 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-1, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
addressType: IPv4
ports: [{ name: http, port: 9080 }]
endpoints:
- { addresses: [10.244.1.5], targetRef: { kind: Pod, name: reviews-v1 } }
---
apiVersion: v1
kind: Pod
metadata: { name: reviews-v1, namespace: shop, labels: { app: reviews, version: v1 } }
spec: { containers: [{ name: app, image: app }] }
"#;

fn messages(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

fn has(problems: &[Problem], severity: Severity, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.severity == severity && p.to_string().contains(needle))
}

#[test]
fn doubtful_weights_empty_subsets_and_guessed_protocols_are_reported() {
    let yaml = format!(
        "{SERVICE}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: shop }
spec:
  host: reviews
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v9, labels: { version: v9 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ghost, namespace: shop }
spec: { host: ghost }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews]
  http:
  - fault: { abort: { httpStatus: 503 } }
    route:
    - { destination: { host: reviews, subset: v1, port: { number: 9080 } }, weight: 70 }
    - { destination: { host: reviews, subset: v9, port: { number: 9080 } }, weight: 20 }
"#
    );
    let problems = analyze(&store(&yaml));
    let all = messages(&problems);
    assert!(!has_errors(&problems), "{all:#?}");
    assert!(
        has(&problems, Severity::Warning, "weights add up to 90"),
        "{all:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Warning,
            "subset \"v9\" selects no ready endpoint"
        ),
        "{all:#?}"
    );
    assert!(
        !has(&problems, Severity::Warning, "subset \"v1\" selects"),
        "{all:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Warning,
            "DestinationRule shop/ghost spec.host: host ghost.shop.svc.cluster.local matches no Service"
        ),
        "{all:#?}"
    );
    assert!(
        has(&problems, Severity::Info, "fault applies to every request"),
        "{all:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Info,
            "protocol of port 9090 is detected"
        ),
        "{all:#?}"
    );
    assert!(
        !has(&problems, Severity::Info, "protocol of port 9080"),
        "{all:#?}"
    );
}

#[test]
fn a_rule_hidden_from_some_namespaces_is_found_through_their_proxies() {
    let yaml = format!(
        "{SERVICE}{}",
        r#"
---
apiVersion: v1
kind: Namespace
metadata: { name: other }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: shop }
spec:
  host: reviews
  exportTo: ["."]
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v1, port: { number: 9080 } } }] }]
"#
    );
    let problems = analyze(&store(&yaml));
    assert!(
        has(
            &problems,
            Severity::Warning,
            "for proxies in namespace other, port 9080"
        ),
        "{:#?}",
        messages(&problems)
    );
    assert!(!has(
        &problems,
        Severity::Warning,
        "for proxies in namespace shop"
    ));
}

#[test]
fn security_policies_are_checked_against_istio_and_the_workloads() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  mtls: { mode: STRIKT }
  portLevelMtls: { 8080: { mode: DISABLE } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: shop }
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web, namespace: shop }
spec:
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["spiffe://cluster.local/ns/shop/sa/web"] } }] }]
"#;
    let problems = analyze(&store(yaml));
    let all = messages(&problems);
    assert!(has_errors(&problems));
    assert!(
        has(
            &problems,
            Severity::Error,
            "unknown mutual TLS mode \"STRIKT\""
        ),
        "{all:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Warning,
            "port-level modes apply only to a policy with a workload selector"
        ),
        "{all:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Warning,
            "deny-all spec.rules: an ALLOW policy without rules allows nothing"
        ),
        "{all:#?}"
    );
    assert!(
        has(&problems, Severity::Warning, "starts with spiffe://"),
        "{all:#?}"
    );
    assert!(!all.iter().any(|m| m.contains("not enforced")), "{all:#?}");
}

#[test]
fn a_folder_analysis_names_the_file_of_each_problem_and_sorts_errors_first() {
    let dir = std::env::temp_dir().join(format!("mesh-analyze-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), SERVICE).unwrap();
    std::fs::write(
        dir.join("routes.yaml"),
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [{ name: missing-gateway }]
  rules: [{ backendRefs: [{ name: reviews, port: 9080 }] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: broken, namespace: shop }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: nope } }] }]
"#,
    )
    .unwrap();
    let problems = analyze_folder(&dir, &MeshSettings::default()).unwrap();
    assert!(has_errors(&problems));
    assert!(problems[0].is_error(), "{:#?}", messages(&problems));
    let broken = problems
        .iter()
        .find(|p| p.object.as_ref().is_some_and(|o| o.name == "broken"))
        .unwrap();
    assert!(
        broken
            .source
            .as_deref()
            .unwrap()
            .ends_with("routes.yaml (document 2)")
    );
    assert!(has(
        &problems,
        Severity::Warning,
        "Gateway shop/missing-gateway does not exist"
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn security_policies_at_odds_with_the_workloads_are_reported() {
    let yaml = format!(
        r#"{SERVICE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{ name: strict, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: reviews }} }}
  mtls: {{ mode: STRICT }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: reviews, namespace: shop }}
spec:
  host: reviews
  trafficPolicy: {{ tls: {{ mode: DISABLE }} }}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{ name: plain, namespace: legacy }}
spec:
  mtls: {{ mode: DISABLE }}
---
apiVersion: v1
kind: Pod
metadata: {{ name: old-app, namespace: legacy, labels: {{ app: old }} }}
spec: {{ containers: [{{ name: app, image: app }}] }}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: by-principal, namespace: legacy }}
spec:
  rules: [{{ from: [{{ source: {{ principals: ["cluster.local/ns/shop/sa/web"] }} }}] }}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: nobody, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: ghost }} }}
  rules: [{{}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: external, namespace: shop }}
spec:
  action: CUSTOM
  provider: {{ name: opa }}
  rules: [{{}}]
"#
    );
    let problems = analyze(&store(&yaml));
    let all = messages(&problems);
    for (severity, needle) in [
        (
            Severity::Warning,
            "DISABLE sends plain text to reviews.shop.svc.cluster.local:9080",
        ),
        (
            Severity::Warning,
            "by-principal spec.rules[0].from[0].source: principals and namespaces come from mutual TLS",
        ),
        (
            Severity::Warning,
            "nobody spec.selector.matchLabels: the selector matches no pod in namespace shop",
        ),
        (
            Severity::Error,
            "external spec.action: CUSTOM asks an external authorizer",
        ),
    ] {
        assert!(has(&problems, severity, needle), "{needle}\n{all:#?}");
    }
}

#[test]
fn subsets_are_checked_against_the_pod_templates_of_a_folders_workloads() {
    let dir = std::env::temp_dir().join(format!("mesh-analyze-templates-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Bookinfo's shape: Services and Deployments, no pods or EndpointSlices.
    let deployment = |name: &str, app: &str, version: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{ name: {name}, namespace: shop }}\n\
             spec:\n  selector: {{ matchLabels: {{ app: {app}, version: {version} }} }}\n  \
             template:\n    metadata: {{ labels: {{ app: {app}, version: {version} }} }}\n    \
             spec: {{ containers: [{{ name: app, image: app }}] }}\n"
        )
    };
    let apps = [
        deployment("reviews-v1", "reviews", "v1"),
        deployment("reviews-v2", "reviews", "v2"),
        deployment("ratings-v3", "ratings", "v3"),
    ]
    .concat();
    std::fs::write(
        dir.join("apps.yaml"),
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{ name: reviews, namespace: shop }}\n\
             spec: {{ selector: {{ app: reviews }}, ports: [{{ name: http, port: 9080 }}] }}\n{apps}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("destination-rules.yaml"),
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: shop }
spec:
  host: reviews
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
  - { name: v3, labels: { version: v3 } }
"#,
    )
    .unwrap();
    let problems = analyze_folder(&dir, &MeshSettings::default()).unwrap();
    let all = messages(&problems);
    let unselected: Vec<_> = (all.iter())
        .filter(|m| m.contains("selects no ready endpoint"))
        .collect();
    // v3's only template is a ratings pod, which the Service's selector does not take.
    assert_eq!(unselected.len(), 1, "{all:#?}");
    assert!(
        unselected[0].contains("subset \"v3\" selects no ready endpoint and no workload template"),
        "{all:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sidecars_whose_egress_reaches_nothing_and_registry_only_namespaces_are_reported() {
    let yaml = format!(
        "{SERVICE}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: shop }
spec:
  egress:
  - hosts: ["./*", "*/api.example.test"]
  - port: { number: 8080 }
    hosts: ["shop/reviews.shop.svc.cluster.local"]
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
"#
    );
    let problems = analyze(&store(&yaml));
    let text = messages(&problems);
    assert!(
        has(
            &problems,
            Severity::Warning,
            "Sidecar shop/default spec.egress[0].hosts[1]: matches no Service or ServiceEntry"
        ),
        "{text:#?}"
    );
    assert!(
        has(
            &problems,
            Severity::Warning,
            "spec.egress[1].hosts[0]: matches no Service"
        ),
        "reviews has no port 8080: {text:#?}"
    );
    assert!(
        !has(&problems, Severity::Warning, "spec.egress[0].hosts[0]"),
        "{text:#?}"
    );
    assert!(has(&problems, Severity::Info, "REGISTRY_ONLY"), "{text:#?}");
}
