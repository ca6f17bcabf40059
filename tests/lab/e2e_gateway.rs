//! End to end on the lab: Gateways of class `mesh` run as gateway pods of mesh-proxy, reached
//! from this machine through their NodePorts on the node addresses, as a client outside the
//! cluster reaches a kind cluster's gateway. The cases follow the Gateway API conformance
//! suite's HTTP tests by name; each has its own manifest under `gateway/`, all applied to one
//! lab that shares the suite's base (backends in three namespaces, two Gateways).

#[path = "e2e/support.rs"]
mod support;

#[path = "e2e_gateway/client.rs"]
mod client;

use std::collections::BTreeMap;

use client::{GatewayClient, TempDir, get};
use support::{TestLab, require_root};

const BASE: &str = include_str!("gateway/base.yaml");
/// Every case's manifest: (file, text).
const CASES: [(&str, &str); 10] = [
    (
        "simple-same-namespace.yaml",
        include_str!("gateway/simple-same-namespace.yaml"),
    ),
    (
        "cross-namespace.yaml",
        include_str!("gateway/cross-namespace.yaml"),
    ),
    (
        "reference-grant.yaml",
        include_str!("gateway/reference-grant.yaml"),
    ),
    (
        "unknown-kind.yaml",
        include_str!("gateway/unknown-kind.yaml"),
    ),
    (
        "hostname-intersection.yaml",
        include_str!("gateway/hostname-intersection.yaml"),
    ),
    (
        "listener-hostname-matching.yaml",
        include_str!("gateway/listener-hostname-matching.yaml"),
    ),
    ("matching.yaml", include_str!("gateway/matching.yaml")),
    ("filters.yaml", include_str!("gateway/filters.yaml")),
    ("https.yaml", include_str!("gateway/https.yaml")),
    ("l4-routes.yaml", include_str!("gateway/l4-routes.yaml")),
];
/// The file the test writes the HTTPS cases' Secrets to.
const SECRETS: &str = "https-secrets.yaml";
/// The suite's namespace for Gateways and their first backends.
const INFRA: &str = "gateway-conformance-infra";

#[tokio::test(flavor = "multi_thread")]
async fn gateway_conformance_cases() {
    if !require_root("gateway_conformance_cases") {
        return;
    }
    let mut files = vec![("base.yaml", BASE)];
    files.extend(CASES);
    let secure = certificate("secure.example.com");
    let granted = certificate("granted.example.com");
    let secrets = tls_secrets(&secure, &granted);
    files.push((SECRETS, &secrets));
    let certificates = TempDir::new("gateway-certificates");
    let passthrough = certificate("abc.example.com");
    let backend = tls_backend(&certificates, &passthrough);
    files.push(("tls-backend.yaml", &backend));
    let lab = TestLab::start_with("gateway", &files, true).await;
    let same_namespace = GatewayClient::new(&lab, INFRA, "same-namespace", 80);
    let all_namespaces = GatewayClient::new(&lab, INFRA, "all-namespaces", 80);

    let case = "HTTPRouteSimpleSameNamespace";
    same_namespace
        .reaches(case, get("example.com", "/"), "infra-backend-v1")
        .await;

    cross_namespace(&same_namespace, &all_namespaces).await;
    hostnames(&lab).await;
    matching(&all_namespaces).await;
    filters(&all_namespaces).await;
    weight(&all_namespaces).await;
    l4_routes(&lab, &certificates, &secure).await;
    https(&lab, &secure, &granted).await;

    lab.stop().await;
}

/// Routes and backends in other namespaces than the Gateway's.
async fn cross_namespace(same_namespace: &GatewayClient, all_namespaces: &GatewayClient) {
    let case = "HTTPRouteCrossNamespace";
    let call = get("cross-namespace.example.com", "/");
    all_namespaces.reaches(case, call, "web-backend").await;
    // Not attached (the listener allows only its own namespace): the catch-all route answers.
    let call = get("not-allowed.example.com", "/");
    same_namespace.reaches(case, call, "infra-backend-v1").await;

    let case = "HTTPRouteCrossNamespace with a ReferenceGrant";
    let call = get("granted.example.com", "/");
    same_namespace.reaches(case, call, "web-backend").await;

    let case = "HTTPRouteInvalidCrossNamespaceBackendRef";
    let call = get("not-granted.example.com", "/");
    all_namespaces.expect(case, call, 500).await;

    let case = "HTTPRouteInvalidBackendRefUnknownKind";
    let call = get("unknown-kind.example.com", "/");
    same_namespace.expect(case, call, 500).await;
}

/// Listener hostnames, route hostnames and where they meet.
async fn hostnames(lab: &TestLab) {
    let case = "HTTPRouteHostnameIntersection";
    let gateway = GatewayClient::new(lab, INFRA, "hostname-intersection", 80);
    let to = |host, path, backend| (get(host, path), backend);
    for (call, backend) in [
        to("very.specific.com", "/s1", "infra-backend-v1"),
        to("foo.wildcard.io", "/s2", "infra-backend-v2"),
        to("bar.wildcard.io", "/s2", "infra-backend-v2"),
        to("foo.bar.wildcard.io", "/s2", "infra-backend-v2"),
        to("very.specific.com", "/s3", "infra-backend-v3"),
        to("foo.anotherwildcard.io", "/s4", "infra-backend-v1"),
        to("bar.foo.anotherwildcard.io", "/s4", "infra-backend-v1"),
    ] {
        gateway.reaches(case, call, backend).await;
    }
    for call in [
        get("non.matching.com", "/s1"),
        get("foo.nonmatchingwildcard.io", "/s1"),
        get("wildcard.io", "/s2"),
        get("non.matching.com", "/s3"),
        get("foo.specific.com", "/s3"),
        get("very.specific.com", "/s4"),
    ] {
        gateway.expect(case, call, 404).await;
    }

    let case = "HTTPRouteListenerHostnameMatching";
    let gateway = GatewayClient::new(lab, INFRA, "listener-hostname-matching", 80);
    for (call, backend) in [
        to("bar.com", "/", "infra-backend-v1"),
        to("foo.bar.com", "/", "infra-backend-v2"),
        to("baz.bar.com", "/", "infra-backend-v3"),
        to("boo.bar.com", "/", "infra-backend-v3"),
        to("multiple.prefixes.bar.com", "/", "infra-backend-v3"),
        to("multiple.prefixes.foo.com", "/", "infra-backend-v3"),
    ] {
        gateway.reaches(case, call, backend).await;
    }
    for call in [get("foo.com", "/"), get("no.matching.host", "/")] {
        gateway.expect(case, call, 404).await;
    }
}

/// Path, header, method and query matches, within a route and across routes.
async fn matching(gateway: &GatewayClient) {
    let case = "HTTPRouteMatching";
    let host = "matching.example.com";
    for (call, backend) in [
        (get(host, "/"), "infra-backend-v1"),
        (get(host, "/example"), "infra-backend-v1"),
        (get(host, "/v2"), "infra-backend-v2"),
        (get(host, "/v2/example"), "infra-backend-v2"),
        (
            get(host, "/").headers(&[("version", "one")]),
            "infra-backend-v1",
        ),
        (
            get(host, "/").headers(&[("version", "two")]),
            "infra-backend-v2",
        ),
    ] {
        gateway.reaches(case, call, backend).await;
    }

    let case = "HTTPRouteMatchingAcrossRoutes";
    for (call, backend) in [
        (get("across.example.com", "/"), "infra-backend-v1"),
        (get("across.example.net", "/"), "infra-backend-v1"),
        (get("across.example.com", "/v2"), "infra-backend-v2"),
        (get("across.example.net", "/v2/example"), "infra-backend-v2"),
        (
            get("across.example.com", "/v2").headers(&[("version", "three")]),
            "infra-backend-v3",
        ),
        (
            get("across.example.net", "/v2").headers(&[("version", "three")]),
            "infra-backend-v2",
        ),
    ] {
        gateway.reaches(case, call, backend).await;
    }
    gateway
        .expect(case, get("across.example.com", "/v3"), 404)
        .await;

    let case = "HTTPRouteMethodMatching";
    let call = get("method.example.com", "/");
    gateway
        .reaches(case, call.method("POST"), "infra-backend-v1")
        .await;
    gateway.reaches(case, call, "infra-backend-v2").await;
    gateway.expect(case, call.method("DELETE"), 404).await;

    let case = "HTTPRouteQueryParamMatching";
    let host = "query.example.com";
    for (path, backend) in [
        ("/?animal=whale", "infra-backend-v1"),
        ("/?animal=dolphin", "infra-backend-v2"),
        ("/?animal=dolphin&color=blue", "infra-backend-v3"),
        ("/?color=blue&animal=dolphin", "infra-backend-v3"),
    ] {
        gateway.reaches(case, get(host, path), backend).await;
    }
    for path in ["/?animal=shark", "/?color=blue", "/"] {
        gateway.expect(case, get(host, path), 404).await;
    }
}

/// Header modifiers, redirects and rewrites.
async fn filters(gateway: &GatewayClient) {
    let case = "HTTPRouteRequestHeaderModifier";
    let call = get("headers.example.com", "/").headers(&[
        ("X-Header-Set", "some-other-value"),
        ("X-Header-Add", "add-val-0"),
        ("X-Header-Remove", "val"),
    ]);
    let reply = gateway.expect(case, call, 200).await;
    assert_eq!(
        reply.seen("x-header-set"),
        "set-overwrites-values",
        "{case}: {reply:?}"
    );
    assert_eq!(
        reply.seen("x-header-add"),
        "add-val-0, add-appends-values",
        "{case}: {reply:?}"
    );
    assert_eq!(reply.seen("x-header-remove"), "", "{case}: {reply:?}");

    let case = "HTTPRouteResponseHeaderModifier";
    assert_eq!(
        reply.header("x-header-set"),
        "set-on-the-way-out",
        "{case}: {reply:?}"
    );
    assert_eq!(
        reply.header("x-header-add"),
        "add-on-the-way-out",
        "{case}: {reply:?}"
    );
    assert_eq!(reply.header("x-pod-version"), "", "{case}: {reply:?}");
    assert!(
        reply.header("x-pod").starts_with("infra-backend-v1-"),
        "{case}: {reply:?}"
    );

    let host = "redirect.example.com";
    for (case, path, status, location) in [
        (
            "HTTPRouteRedirectPath",
            "/original-prefix/lemon",
            302,
            "http://redirect.example.com/replacement-prefix/lemon",
        ),
        (
            "HTTPRouteRedirectPath",
            "/full/path/original",
            302,
            "http://redirect.example.com/full-path-replacement",
        ),
        (
            "HTTPRouteRedirectScheme",
            "/scheme",
            302,
            "https://redirect.example.com/scheme",
        ),
        (
            "HTTPRouteRedirectPort",
            "/port",
            302,
            "http://redirect.example.com:8083/port",
        ),
        (
            "HTTPRouteRedirectHostAndStatus",
            "/host-and-status",
            301,
            "http://example.org/host-and-status",
        ),
    ] {
        let reply = gateway.expect(case, get(host, path), status).await;
        assert_eq!(reply.header("location"), location, "{case}: {reply:?}");
    }

    let host = "rewrite.example.com";
    for (case, path, seen_path, seen_host) in [
        ("HTTPRouteRewritePath", "/prefix/one/two", "/one/two", host),
        ("HTTPRouteRewritePath", "/full/one/two", "/one", host),
        (
            "HTTPRouteRewriteHost",
            "/host",
            "/host",
            "rewritten.example.org",
        ),
    ] {
        let reply = gateway.expect(case, get(host, path), 200).await;
        assert_eq!(reply.echo["path"], seen_path, "{case}: {reply:?}");
        assert_eq!(reply.echo["host"], seen_host, "{case}: {reply:?}");
    }
}

/// Weighted backends: the split follows the weights, weight 0 gets nothing.
async fn weight(gateway: &GatewayClient) {
    let case = "HTTPRouteWeight";
    let call = get("weight.example.com", "/");
    gateway.expect(case, call, 200).await;
    let mut seen = BTreeMap::<String, u32>::new();
    for _ in 0..100 {
        let reply = gateway.expect(case, call, 200).await;
        let backend = reply
            .pod()
            .rsplitn(3, '-')
            .nth(2)
            .unwrap_or_default()
            .to_owned();
        *seen.entry(backend).or_default() += 1;
    }
    let share = |backend: &str| seen.get(backend).copied().unwrap_or(0);
    assert!(
        (55..=85).contains(&share("infra-backend-v1")),
        "{case}: {seen:?}"
    );
    assert!(
        (15..=45).contains(&share("infra-backend-v2")),
        "{case}: {seen:?}"
    );
    assert_eq!(share("infra-backend-v3"), 0, "{case}: {seen:?}");
}

/// A self-signed certificate for `host`: (PEM chain, PEM key).
fn certificate(host: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    (cert.pem(), key.serialize_pem())
}

/// The TLS Secrets of the HTTPS cases: one beside the Gateway, one in the namespace that
/// grants it.
fn tls_secrets(secure: &(String, String), granted: &(String, String)) -> String {
    let secret = |namespace: &str, name: &str, (crt, key): &(String, String)| {
        let data = serde_json::json!({ "tls.crt": crt, "tls.key": key });
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: {namespace} }}\ntype: kubernetes.io/tls\nstringData: {data}\n"
        )
    };
    [
        secret(INFRA, "secure-example-com", secure),
        secret(
            "gateway-conformance-web-backend",
            "granted-example-com",
            granted,
        ),
    ]
    .join("---\n")
}

/// TLS termination: certificates by SNI, one granted from another namespace, an invalid
/// listener beside working ones, and a renewed certificate served without a restart.
async fn https(lab: &TestLab, secure: &(String, String), granted: &(String, String)) {
    let gateway = GatewayClient::new(lab, INFRA, "https", 443);
    let plain = GatewayClient::new(lab, INFRA, "https", 80);
    let dir = TempDir::new("gateway-ca");
    let ca = |name: &str, pem: &str| dir.write(&format!("{name}.pem"), pem);
    let secure_ca = ca("secure", &secure.0);
    let granted_ca = ca("granted", &granted.0);

    let case = "HTTPRouteHTTPSListener";
    let call = get("secure.example.com", "/").tls(&secure_ca);
    gateway.reaches(case, call, "infra-backend-v1").await;
    // The certificate is the one for the name asked: the other CA does not verify it.
    let call = get("secure.example.com", "/").tls(&granted_ca);
    assert!(
        gateway.send(call).await.is_none(),
        "{case}: verified by the wrong CA"
    );

    let case = "GatewaySecretReferenceGrant";
    let call = get("granted.example.com", "/").tls(&granted_ca);
    gateway.reaches(case, call, "infra-backend-v1").await;

    let case = "GatewayInvalidTLSConfiguration";
    let call = get("invalid.example.com", "/").tls(&secure_ca);
    assert!(
        gateway.send(call).await.is_none(),
        "{case}: the invalid listener answered"
    );
    plain
        .reaches(case, get("invalid.example.com", "/"), "infra-backend-v1")
        .await;

    let case = "HTTPS listener certificate renewal";
    let renewed = certificate("secure.example.com");
    let renewed_ca = ca("renewed", &renewed.0);
    lab.write_manifest(SECRETS, &tls_secrets(&renewed, granted));
    let call = get("secure.example.com", "/").tls(&renewed_ca);
    gateway.reaches(case, call, "infra-backend-v1").await;
    let call = get("secure.example.com", "/").tls(&secure_ca);
    assert!(
        gateway.send(call).await.is_none(),
        "{case}: the old certificate is still served"
    );
}

/// The TLSRoute's backend: the echo over TLS with `certificate`, whose files go to `dir`.
fn tls_backend(dir: &TempDir, (chain, key): &(String, String)) -> String {
    let chain = dir.write("abc.pem", chain);
    let key = dir.write("abc.key", key);
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{ name: tls-backend, namespace: {INFRA} }}
spec:
  selector: {{ matchLabels: {{ app: tls-backend }} }}
  template:
    metadata: {{ labels: {{ app: tls-backend }} }}
    spec:
      containers:
      - name: echo
        image: mesh-workload
        args: [--tls-addr, "0.0.0.0:8443", --tls-cert, "{}", --tls-key, "{}"]
        env: [{{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}]
        ports: [{{ name: tls, containerPort: 8443 }}]
"#,
        chain.display(),
        key.display()
    )
}

/// TLS passthrough by SNI to a backend that terminates TLS itself, TLS ended at the gateway,
/// and TCP to an HTTP backend.
async fn l4_routes(lab: &TestLab, certificates: &TempDir, secure: &(String, String)) {
    let case = "TLSRouteSimpleSameNamespace";
    let tls = GatewayClient::new(lab, INFRA, "l4", 443);
    let ca = certificates.0.join("abc.pem");
    let reply = tls
        .expect(case, get("abc.example.com", "/").tls(&ca), 200)
        .await;
    assert!(reply.pod().starts_with("tls-backend-"), "{case}: {reply:?}");
    assert_eq!(
        reply.echo["tls"]["sni"], "abc.example.com",
        "{case}: {reply:?}"
    );
    // No TLSRoute names this server: the connection is closed, nothing answers.
    let call = get("other.example.com", "/").tls(&ca);
    assert!(
        tls.send(call).await.is_none(),
        "{case}: an unrouted name was answered"
    );

    let case = "TLSRoute on a TLS listener in Terminate mode";
    let terminate = GatewayClient::new(lab, INFRA, "l4", 8443);
    let ca = certificates.write("secure.pem", &secure.0);
    let call = get("secure.example.com", "/").tls(&ca);
    let reply = terminate.expect(case, call, 200).await;
    assert!(
        reply.pod().starts_with("infra-backend-v3-"),
        "{case}: {reply:?}"
    );
    assert!(
        reply.echo["tls"].is_null(),
        "{case}: the backend saw TLS: {reply:?}"
    );

    let case = "TCPRoute";
    let tcp = GatewayClient::new(lab, INFRA, "l4", 9000);
    tcp.reaches(case, get("anything.example.com", "/"), "infra-backend-v2")
        .await;
}
