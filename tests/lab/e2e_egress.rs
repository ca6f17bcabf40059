//! End to end on the lab: calls that leave the mesh for APIs declared by DNS name. The
//! "external" APIs are pods in an unmeshed namespace that claim names under example.test in the
//! lab's DNS. A ServiceEntry with `resolution: DNS` and no addresses is enough for the app's
//! plain `http://api.example.test/` to be routed by its Host: the VirtualService's timeout
//! holds, and the DestinationRule's `SIMPLE` TLS sends it as HTTPS (SNI, verified against a test
//! CA) to the port the ServiceEntry names. A declared name that does not resolve answers 503
//! "no healthy upstream".

#[path = "e2e/support.rs"]
mod support;

use std::path::PathBuf;

use std::time::Duration;

use tokio::time::Instant;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::Value;
use support::{TestLab, require_root};

/// A test CA and a server certificate for api.example.test, as PEM files.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn write() -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-e2e-egress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "example.test CA");
        let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
        std::fs::write(dir.join("ca.pem"), ca_pem).expect("ca");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::DnsName(
            "api.example.test".try_into().expect("dns"),
        )];
        let cert = params.signed_by(&key, &issuer).expect("leaf");
        std::fs::write(dir.join("server.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("key");
        Certificates { dir }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The mesh client, two external APIs (one answering after 3 s) and the Istio objects that
/// declare them; `{dir}` is the certificates' folder.
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: internet }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sleep, namespace: shop }
spec:
  selector: { matchLabels: { app: sleep } }
  template:
    metadata: { labels: { app: sleep } }
    spec:
      serviceAccountName: sleep
      containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: internet }
spec:
  selector: { matchLabels: { app: api } }
  template:
    metadata:
      labels: { app: api }
      annotations: { lab.mesh.dev/dns-names: api.example.test }
    spec:
      containers:
      - name: api
        image: mesh-workload
        args: [--tls-addr, "0.0.0.0:8443", --tls-cert, "{dir}/server.pem", --tls-key, "{dir}/server.key"]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: slow, namespace: internet }
spec:
  selector: { matchLabels: { app: slow } }
  template:
    metadata:
      labels: { app: slow }
      annotations: { lab.mesh.dev/dns-names: slow.example.test }
    spec:
      containers:
      - name: slow
        image: mesh-workload
        args: [--delay-percent, "100", --delay-ms, "3000"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: apis, namespace: shop }
spec:
  hosts: [api.example.test]
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: 8443 }]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: shop }
spec:
  host: api.example.test
  trafficPolicy:
    portLevelSettings:
    - port: { number: 80 }
      tls: { mode: SIMPLE, caCertificates: "{dir}/ca.pem" }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: slow, namespace: shop }
spec:
  hosts: [slow.example.test, missing.example.test]
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: 8080 }]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: slow, namespace: shop }
spec:
  hosts: [slow.example.test]
  http:
  - timeout: 1s
    route: [{ destination: { host: slow.example.test } }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_apis_declared_by_dns_name_get_their_routes_timeouts_and_tls() {
    if !require_root("calls_to_apis_declared_by_dns_name_get_their_routes_timeouts_and_tls") {
        return;
    }
    let certificates = Certificates::write();
    let manifests = MANIFESTS.replace("{dir}", &certificates.dir.to_string_lossy());
    let lab = TestLab::start("e2eegr", &manifests).await;
    let sleep = lab.pod("shop", "sleep-");

    // Plain HTTP from the app; HTTPS with the host as SNI on the wire, to the targetPort.
    let (status, body) = lab
        .curl(&sleep, "GET", "http://api.example.test/hello")
        .await;
    assert_eq!(status, "200", "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    assert_eq!(echo["tls"]["sni"], "api.example.test", "{body}");
    assert_eq!(echo["path"], "/hello", "{body}");

    // The VirtualService's timeout: 504 after 1 s, though the API answers after 3 s.
    let started = Instant::now();
    let (status, body) = lab.curl(&sleep, "GET", "http://slow.example.test/").await;
    let took = started.elapsed();
    assert_eq!(status, "504", "{body}");
    assert!(
        took.as_millis() >= 900 && took.as_millis() < 2500,
        "{took:?}"
    );

    // A declared name with no address: the app reaches the sidecar (curl is told an address),
    // whose cluster has no endpoints.
    let out = lab
        .exec(
            &sleep,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--resolve",
                "missing.example.test:80:203.0.113.9",
                "-w",
                "\n%{http_code}",
                "http://missing.example.test/",
            ],
        )
        .await;
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    assert_eq!(status, "503", "{body}");
    assert!(body.contains("no healthy upstream"), "{body}");

    lab.stop().await;
}

/// A namespace under REGISTRY_ONLY whose Sidecar limits egress to itself and one external API,
/// the API it declares, an undeclared one, and a Service in another namespace.
const POLICY_MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: billing, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: internet }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sleep, namespace: shop }
spec:
  selector: { matchLabels: { app: sleep } }
  template:
    metadata: { labels: { app: sleep } }
    spec:
      serviceAccountName: sleep
      containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cart, namespace: shop }
spec:
  selector: { matchLabels: { app: cart } }
  template:
    metadata: { labels: { app: cart } }
    spec:
      containers: [{ name: cart, image: mesh-workload, ports: [{ containerPort: 8080 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec:
  selector: { app: cart }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: invoices, namespace: billing }
spec:
  selector: { matchLabels: { app: invoices } }
  template:
    metadata: { labels: { app: invoices } }
    spec:
      containers: [{ name: invoices, image: mesh-workload, ports: [{ containerPort: 8080 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: invoices, namespace: billing }
spec:
  selector: { app: invoices }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: other, namespace: internet }
spec:
  selector: { matchLabels: { app: other } }
  template:
    metadata:
      labels: { app: other }
      annotations: { lab.mesh.dev/dns-names: other.example.test }
    spec:
      containers: [{ name: other, image: mesh-workload }]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: shop }
spec:
  egress:
  - hosts: ["./*", "*/other.example.test"]
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
"#;

/// What `other.example.test` needs to be reachable: a ServiceEntry (in the shop namespace).
const OTHER_ENTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: other, namespace: shop }
spec:
  hosts: [other.example.test]
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: 8080 }]
  location: MESH_EXTERNAL
  resolution: DNS
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_only_refuses_undeclared_destinations_and_a_sidecar_scopes_the_config() {
    if !require_root(
        "registry_only_refuses_undeclared_destinations_and_a_sidecar_scopes_the_config",
    ) {
        return;
    }
    let lab = TestLab::start("e2eregonly", POLICY_MANIFESTS).await;
    let sleep = lab.pod("shop", "sleep-");

    // The Sidecar's egress: only shop's own services reach the proxy's config.
    let config = lab.sidecar_config(&sleep).await;
    let clusters: Vec<&str> = (config["clusters"].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        clusters.contains(&"outbound|80||cart.shop.svc.cluster.local"),
        "{clusters:?}"
    );
    assert!(
        clusters.iter().all(|c| !c.contains("billing")),
        "another namespace's services are left out: {clusters:?}"
    );

    // A Service of the registry works; an undeclared external name gets 502 and is counted.
    let (status, body) = lab.curl(&sleep, "GET", "http://cart.shop/").await;
    assert_eq!(status, "200", "{body}");
    let (status, body) = lab.curl(&sleep, "GET", "http://other.example.test/").await;
    assert_eq!(status, "502", "{body}");
    assert!(body.contains("REGISTRY_ONLY"), "{body}");
    // Not in the Sidecar's egress, so not in the config either: refused like the unknown.
    let (status, body) = lab.curl(&sleep, "GET", "http://invoices.billing/").await;
    assert_eq!(status, "502", "{body}");
    // TLS (not HTTP) to an undeclared name: the connection is closed, counted by its SNI.
    let tls_call = "curl -sS -k --max-time 5 https://other.example.test:8443/ 2>&1; echo exit=$?";
    let out = lab.exec(&sleep, &["sh", "-c", tls_call]).await;
    assert!(!out.contains("exit=0"), "{out}");
    let metrics = lab.metrics(&sleep).await;
    let blocked = |protocol: &str, destination: &str| {
        let labels = [("protocol", protocol), ("destination", destination)];
        metrics
            .value("mesh_outbound_blocked_total", &labels)
            .unwrap_or(0.0)
    };
    assert_eq!(blocked("http", "other.example.test"), 1.0);
    assert_eq!(blocked("http", "invoices.billing"), 1.0);
    assert_eq!(blocked("tcp", "other.example.test"), 1.0, "{out}");

    // Declaring it makes it work within a second.
    lab.write_manifest("other-entry.yaml", OTHER_ENTRY);
    let started = Instant::now();
    let body = support::eventually("the declared API answers", Duration::from_secs(5), || {
        let (lab, sleep) = (&lab, &sleep);
        async move {
            let (status, body) = lab.curl(sleep, "GET", "http://other.example.test/").await;
            (status == "200").then_some(body)
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let echo: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    assert_eq!(echo["host"], "other.example.test", "{body}");

    lab.stop().await;
}
