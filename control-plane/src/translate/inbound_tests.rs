//! Inbound policy on small stores: PeerAuthentication merged as Istio merges it, auto mTLS
//! following it, and AuthorizationPolicy selected per workload.

use mesh_proto::config::v1::{Listener, MtlsMode, authorization_policy::Action};

use super::tests::{SHOP, client, store};
use super::*;

fn pa(name: &str, namespace: &str, body: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{ name: {name}, namespace: {namespace} }}\nspec: {body}\n"
    )
}

fn inbound(config: &ProxyConfig) -> Vec<&Listener> {
    config
        .listeners
        .iter()
        .filter(|l| l.address.starts_with("0.0.0.0:"))
        .collect()
}

fn modes(config: &ProxyConfig) -> Vec<(String, MtlsMode)> {
    inbound(config)
        .iter()
        .map(|l| (l.address.clone(), l.mtls()))
        .collect()
}

#[test]
fn peer_authentication_merges_mesh_namespace_workload_and_port() {
    let none = translate(&store(SHOP), &client("shop", &[("app", "web")]));
    assert!(
        inbound(&none.config).is_empty(),
        "no policy, no inbound listener"
    );

    let manifests = [
        SHOP.to_owned(),
        pa("mesh", "mesh-system", "{ mtls: { mode: STRICT } }"),
        pa("ns", "shop", "{ mtls: { mode: UNSET } }"),
    ]
    .concat();
    let inherited = translate(&store(&manifests), &client("shop", &[("app", "web")]));
    assert_eq!(
        modes(&inherited.config),
        [("0.0.0.0:0".into(), MtlsMode::Strict)]
    );

    let manifests = [
        manifests,
        pa(
            "web",
            "shop",
            "{ selector: { matchLabels: { app: web } }, mtls: { mode: PERMISSIVE }, \
             portLevelMtls: { 9000: { mode: DISABLE } } }",
        ),
    ]
    .concat();
    let store = store(&manifests);
    let web = translate(&store, &client("shop", &[("app", "web")]));
    assert_eq!(
        modes(&web.config),
        [
            ("0.0.0.0:0".into(), MtlsMode::Permissive),
            ("0.0.0.0:9000".into(), MtlsMode::Disable)
        ]
    );
    let other = translate(&store, &client("shop", &[("app", "other")]));
    assert_eq!(
        modes(&other.config),
        [("0.0.0.0:0".into(), MtlsMode::Strict)]
    );
    // Auto mTLS follows the server's policy: plain text to the DISABLE port only.
    let endpoints: Vec<(String, bool)> = other
        .config
        .endpoints
        .iter()
        .flat_map(|a| a.endpoints.iter())
        .map(|e| (e.address.clone(), e.mesh_tls))
        .collect();
    assert!(
        endpoints.iter().all(|(_, tls)| !tls),
        "pods without the tlsMode label: {endpoints:?}"
    );
}

#[test]
fn among_equal_policies_the_oldest_wins() {
    let older = "{ name: b-older, namespace: shop, creationTimestamp: \"2026-01-01T00:00:00Z\" }";
    let newer = "{ name: a-newer, namespace: shop, creationTimestamp: \"2026-06-01T00:00:00Z\" }";
    let manifests = format!(
        "{SHOP}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {newer}\n\
         spec: {{ mtls: {{ mode: DISABLE }} }}\n---\napiVersion: security.istio.io/v1\n\
         kind: PeerAuthentication\nmetadata: {older}\nspec: {{ mtls: {{ mode: STRICT }} }}\n"
    );
    let config = translate(&store(&manifests), &client("shop", &[])).config;
    assert_eq!(modes(&config), [("0.0.0.0:0".into(), MtlsMode::Strict)]);
}

#[test]
fn authorization_policies_apply_to_the_workloads_they_select() {
    let manifests = format!(
        r#"{SHOP}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: mesh-deny, namespace: mesh-system }}
spec: {{ action: DENY, rules: [{{ from: [{{ source: {{ namespaces: [evil] }} }}] }}] }}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: web, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: web }} }}
  rules: [{{ to: [{{ operation: {{ methods: [GET] }} }}] }}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: jwt, namespace: shop }}
spec:
  action: DENY
  rules: [{{ from: [{{ source: {{ requestPrincipals: ["*"] }} }}] }}]
"#
    );
    let store = store(&manifests);
    let web = translate(&store, &client("shop", &[("app", "web")]));
    let policies = &inbound(&web.config)[0].authorization;
    let names: Vec<(&str, Action)> = policies
        .iter()
        .map(|p| (p.name.as_str(), p.action()))
        .collect();
    assert_eq!(
        names,
        [
            ("mesh-system/mesh-deny", Action::Deny),
            ("shop/jwt", Action::Deny),
            ("shop/web", Action::Allow)
        ]
    );
    // What mesh cannot read fails closed: the JWT rule becomes "deny everything selected".
    let jwt = &policies[1];
    assert_eq!(jwt.rules.len(), 1);
    assert_eq!(jwt.rules[0], Default::default());
    assert!(
        web.problems
            .iter()
            .any(|p| p.to_string().contains("request principals need JWT"))
    );
    let other = translate(&store, &client("shop", &[("app", "other")]));
    let names: Vec<&str> = inbound(&other.config)[0]
        .authorization
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["mesh-system/mesh-deny", "shop/jwt"]);
}

#[test]
fn tls_check_names_the_policies_and_explains_a_conflict() {
    let labelled = SHOP.replace(
        "labels: { app: web, version: v1 }",
        "labels: { app: web, version: v1, security.istio.io/tlsMode: istio }",
    );
    let manifests = [
        labelled,
        pa("strict", "shop", "{ mtls: { mode: STRICT } }"),
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: { name: web, namespace: shop }\n\
         spec: { host: web, trafficPolicy: { tls: { mode: DISABLE } } }\n"
            .to_owned(),
    ]
    .concat();
    let translator = Translator::new(&store(&manifests));
    let rows = translator.tls_check(&client("shop", &[]));
    let web: Vec<_> = rows
        .iter()
        .filter(|r| r.host == "web.shop.svc.cluster.local")
        .collect();
    assert_eq!(web.len(), 2, "{rows:#?}");
    let http = web.iter().find(|r| r.port == 80).expect("port 80");
    assert_eq!(
        (
            http.status.as_str(),
            http.server.as_str(),
            http.client.as_str()
        ),
        ("CONFLICT", "NONE|STRICT", "DISABLE"),
        "web-v2 has no sidecar, web-v1 is STRICT"
    );
    assert_eq!(http.authn_policy, "shop/strict");
    assert_eq!(http.destination_rule, "shop/web");
    assert!(
        http.reason.contains("requests fail (503)"),
        "{}",
        http.reason
    );
}
