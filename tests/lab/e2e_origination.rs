//! End to end on the lab: TLS origination to servers outside the mesh. The app speaks plain
//! HTTP; its sidecar, told by a DestinationRule (`SIMPLE`, `MUTUAL`), speaks TLS to a server
//! without a sidecar, sends the host as SNI, checks the server's certificate against the given
//! roots and names, and presents the client certificate when asked to.

#[path = "e2e/support.rs"]
mod support;

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::Value;
use support::{TestLab, require_root};

/// A CA with a server certificate for `secure.ext` and a client certificate, as PEM files.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn write(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mesh-e2e-certs-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "partner CA");
        std::fs::write(
            dir.join("ca.pem"),
            ca.self_signed(&ca_key).expect("ca").pem(),
        )
        .expect("ca");
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |file: &str, name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.subject_alt_names = vec![SanType::DnsName(name.try_into().expect("dns"))];
            let cert = params.signed_by(&key, &issuer).expect("leaf");
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("cert");
            std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("key");
        };
        leaf("server", "secure.ext.svc.cluster.local");
        leaf("client", "sleep.shop.example");
        Certificates { dir }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The mesh client, two servers outside the mesh (one requiring client certificates) and the
/// Services and DestinationRules that reach them; `{dir}` is the certificates' folder.
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: ext }
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
metadata: { name: secure, namespace: ext }
spec:
  selector: { matchLabels: { app: secure } }
  template:
    metadata: { labels: { app: secure } }
    spec:
      containers:
      - name: secure
        image: mesh-workload
        args: [--tls-addr, "0.0.0.0:8443", --tls-cert, "{dir}/server.pem", --tls-key, "{dir}/server.key"]
        ports: [{ name: https, containerPort: 8443 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: mtls, namespace: ext }
spec:
  selector: { matchLabels: { app: mtls } }
  template:
    metadata: { labels: { app: mtls } }
    spec:
      containers:
      - name: mtls
        image: mesh-workload
        args:
        - --tls-addr
        - "0.0.0.0:8443"
        - --tls-cert
        - "{dir}/server.pem"
        - --tls-key
        - "{dir}/server.key"
        - --tls-client-ca
        - "{dir}/ca.pem"
        ports: [{ name: https, containerPort: 8443 }]
---
apiVersion: v1
kind: Service
metadata: { name: secure, namespace: ext }
spec:
  selector: { app: secure }
  ports: [{ name: http, port: 80, targetPort: 8443 }]
---
apiVersion: v1
kind: Service
metadata: { name: alias, namespace: ext }
spec:
  selector: { app: secure }
  ports: [{ name: http, port: 80, targetPort: 8443 }]
---
apiVersion: v1
kind: Service
metadata: { name: stranger, namespace: ext }
spec:
  selector: { app: secure }
  ports: [{ name: http, port: 80, targetPort: 8443 }]
---
apiVersion: v1
kind: Service
metadata: { name: mtls, namespace: ext }
spec:
  selector: { app: mtls }
  ports: [{ name: http, port: 80, targetPort: 8443 }]
---
apiVersion: v1
kind: Service
metadata: { name: mtls-anonymous, namespace: ext }
spec:
  selector: { app: mtls }
  ports: [{ name: http, port: 80, targetPort: 8443 }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: secure, namespace: ext }
spec:
  host: secure.ext.svc.cluster.local
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: "{dir}/ca.pem" } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: alias, namespace: ext }
spec:
  host: alias.ext.svc.cluster.local
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: "{dir}/ca.pem"
      subjectAltNames: [secure.ext.svc.cluster.local]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: stranger, namespace: ext }
spec:
  host: stranger.ext.svc.cluster.local
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: "{dir}/ca.pem" } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: mtls, namespace: ext }
spec:
  host: mtls.ext.svc.cluster.local
  trafficPolicy:
    tls:
      mode: MUTUAL
      caCertificates: "{dir}/ca.pem"
      clientCertificate: "{dir}/client.pem"
      privateKey: "{dir}/client.key"
      sni: secure.ext.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: mtls-anonymous, namespace: ext }
spec:
  host: mtls-anonymous.ext.svc.cluster.local
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: "{dir}/ca.pem", sni: secure.ext.svc.cluster.local }
"#;

/// The echo's report of the TLS connection it was reached on.
fn tls_seen(body: &str) -> Value {
    let echo: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    echo["tls"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_originate_tls_to_servers_outside_the_mesh() {
    if !require_root("sidecars_originate_tls_to_servers_outside_the_mesh") {
        return;
    }
    let certificates = Certificates::write("origination");
    let manifests = MANIFESTS.replace("{dir}", &certificates.dir.to_string_lossy());
    let lab = TestLab::start("e2etls", &manifests).await;
    let sleep = lab.pod("shop", "sleep-");

    let (status, body) = lab.curl(&sleep, "GET", "http://secure.ext/hello").await;
    assert_eq!(status, "200", "{body}");
    let tls = tls_seen(&body);
    assert_eq!(tls["sni"], "secure.ext.svc.cluster.local", "{body}");
    assert_eq!(tls["alpn"], "http/1.1", "{body}");
    assert_eq!(tls["client_certificate"], false, "{body}");

    // subjectAltNames name what the certificate must carry in place of the SNI.
    let (status, body) = lab.curl(&sleep, "GET", "http://alias.ext/").await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(tls_seen(&body)["sni"], "alias.ext.svc.cluster.local");

    // The same server reached under a name its certificate does not carry: refused.
    let (status, body) = lab.curl(&sleep, "GET", "http://stranger.ext/").await;
    assert_eq!(status, "503", "{body}");

    let (status, body) = lab.curl(&sleep, "GET", "http://mtls.ext/").await;
    assert_eq!(status, "200", "{body}");
    assert_eq!(tls_seen(&body)["client_certificate"], true, "{body}");

    // The server requires a client certificate that SIMPLE does not present.
    let (status, body) = lab.curl(&sleep, "GET", "http://mtls-anonymous.ext/").await;
    assert_ne!(status, "200", "{body}");

    lab.stop().await;
}
