//! End to end on the lab: identity and mutual TLS between sidecars. PeerAuthentication STRICT
//! resets plain text and lets mesh mTLS through, PERMISSIVE takes both, DISABLE makes sidecars
//! talk plain text; the app learns its verified peer in x-forwarded-client-cert; and on the
//! pod network a meshed call is a TLS handshake and ciphertext, never the request in clear; an
//! app on its pod IP only is reached; bad handshakes are refused while others go on.

#[path = "e2e/support.rs"]
mod support;

use std::{process::Stdio, time::Duration};

use mesh_lab::cluster::Readiness;
use support::{TestLab, eventually, require_root};
use tokio::io::{AsyncBufReadExt, BufReader};

const MESH: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: sleep, namespace: shop }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: mesh-workload
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ name: http, containerPort: 8080 }]
        readinessProbe: { httpGet: { path: /ready, port: http } }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
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
metadata: { name: pinned, namespace: shop }
spec:
  selector: { matchLabels: { app: pinned } }
  template:
    metadata: { labels: { app: pinned } }
    spec:
      containers:
      - name: pinned
        image: mesh-workload
        args: [--addr, "$(POD_IP):8080"]
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
        ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: pinned, namespace: shop }
spec:
  selector: { app: pinned }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: plain, namespace: legacy }
spec:
  selector: { matchLabels: { app: plain } }
  template:
    metadata: { labels: { app: plain } }
    spec:
      containers:
      - name: plain
        image: mesh-workload
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: plain, namespace: legacy }
spec:
  selector: { app: plain }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: legacy }
spec:
  containers: [{ name: sleep, command: [sleep, infinity] }]
"#;

fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{ name: default, namespace: shop }}\nspec:\n  mtls: {{ mode: {mode} }}\n"
    )
}

/// Runs `curl` in a pod: the echo's JSON on success, `None` when the call failed.
async fn curl(
    lab: &TestLab,
    pod: &mesh_lab::cluster::PodPlan,
    url: &str,
) -> Option<serde_json::Value> {
    let netns_name = lab.lab.names().pod(pod);
    let output = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns_name,
            "curl",
            "-sS",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .await
        .expect("ip netns exec curl");
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// The peer identity the app was told, if any.
fn verified_peer(echo: &serde_json::Value) -> Option<String> {
    let xfcc = echo["headers"]["x-forwarded-client-cert"].as_str()?;
    xfcc.split(';')
        .find_map(|part| part.strip_prefix("URI="))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_authentication_strict_permissive_and_disable_between_sidecars() {
    if !require_root("peer_authentication_strict_permissive_and_disable_between_sidecars") {
        return;
    }
    let lab = TestLab::start_files(
        "e2eid1",
        &[
            ("mesh.yaml", MESH),
            ("pa.yaml", &peer_authentication("STRICT")),
        ],
    )
    .await;
    let sleep = lab.pod("shop", "sleep-");
    let outsider = lab.pod("legacy", "outsider");
    // The injector moved web's readiness probe to its sidecar, and under STRICT the pods
    // became ready through it (the lab waits for every pod to be ready).
    assert_eq!(
        lab.pod("shop", "web-").containers()[0].readiness,
        Readiness::HttpGet {
            port: 15021,
            path: "/app-health/web/readyz".to_owned()
        }
    );

    // STRICT: the meshed client gets through over mTLS, and the app knows who it is.
    let echo = curl(&lab, &sleep, "http://web/")
        .await
        .expect("sleep reaches web");
    assert_eq!(
        verified_peer(&echo).as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/sleep"),
        "{echo}"
    );
    // A client without a sidecar is reset, and the server sidecars say why.
    assert!(curl(&lab, &outsider, "http://web.shop/").await.is_none());
    let mut refused = 0.0;
    for web in lab.pods("shop", "web-") {
        refused += lab
            .metrics(&web)
            .await
            .sum("mesh_inbound_refused_total", &[("reason", "plaintext")]);
    }
    assert!(refused >= 1.0, "the refusal is counted");

    // PERMISSIVE: both get through; only the meshed one is a verified peer.
    lab.write_manifest("pa.yaml", &peer_authentication("PERMISSIVE"));
    let plain = eventually(
        "the unmeshed client is let in",
        Duration::from_secs(10),
        || async { curl(&lab, &outsider, "http://web.shop/").await },
    )
    .await;
    assert_eq!(verified_peer(&plain), None, "{plain}");
    let echo = curl(&lab, &sleep, "http://web/")
        .await
        .expect("sleep reaches web");
    assert!(verified_peer(&echo).is_some(), "{echo}");
    // Both sidecars' request metrics say who talked, and how.
    let (sleep_id, web_id) = (
        "spiffe://cluster.local/ns/shop/sa/sleep",
        "spiffe://cluster.local/ns/shop/sa/web",
    );
    let (mut mutual, mut plain) = (0.0, 0.0);
    for web in lab.pods("shop", "web-") {
        let metrics = lab.metrics(&web).await;
        mutual += metrics.sum(
            "mesh_requests_total",
            &[
                ("direction", "inbound"),
                ("source_principal", sleep_id),
                ("destination_principal", web_id),
                ("connection_security_policy", "mutual_tls"),
            ],
        );
        plain += metrics.sum(
            "mesh_requests_total",
            &[
                ("direction", "inbound"),
                ("source_principal", "unknown"),
                ("connection_security_policy", "none"),
            ],
        );
    }
    assert!(
        mutual >= 2.0,
        "both meshed calls are mutual_tls from sleep: {mutual}"
    );
    assert!(
        plain >= 1.0,
        "the plain-text call is counted as such: {plain}"
    );
    let outbound = lab.metrics(&sleep).await.sum(
        "mesh_requests_total",
        &[
            ("direction", "outbound"),
            ("source_principal", sleep_id),
            ("destination_principal", web_id),
        ],
    );
    assert!(
        outbound >= 2.0,
        "the client side names both ends: {outbound}"
    );

    // DISABLE: sidecars talk plain text to each other.
    lab.write_manifest("pa.yaml", &peer_authentication("DISABLE"));
    eventually(
        "the client sidecar speaks plain text",
        Duration::from_secs(10),
        || async {
            let echo = curl(&lab, &sleep, "http://web/").await?;
            verified_peer(&echo).is_none().then_some(())
        },
    )
    .await;
    assert!(curl(&lab, &outsider, "http://web.shop/").await.is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_listening_on_its_pod_ip_only_is_reached_through_its_sidecar() {
    if !require_root("an_app_listening_on_its_pod_ip_only_is_reached_through_its_sidecar") {
        return;
    }
    let lab = TestLab::start("e2eid4", MESH).await;
    let sleep = lab.pod("shop", "sleep-");
    let outsider = lab.pod("legacy", "outsider");
    for client in [&sleep, &outsider] {
        let echo = curl(&lab, client, "http://pinned.shop/")
            .await
            .unwrap_or_else(|| panic!("{} reaches the pinned app", client.name));
        let peer = echo["peer"].as_str().unwrap_or_default();
        assert!(
            peer.starts_with("127.0.0.6:"),
            "the sidecar delivers from 127.0.0.6: {echo}"
        );
    }
    lab.stop().await;
}

/// tcpdump on a pod's network interface (its end of the veth to the pod bridge), its pcap
/// output collected as it comes.
struct Capture {
    child: tokio::process::Child,
    /// What tcpdump wrote so far; every chunk it writes is announced.
    seen: tokio::sync::watch::Receiver<Vec<u8>>,
}

impl Capture {
    /// Starts capturing TCP on `eth0` in the pod's namespace; returns once tcpdump listens.
    async fn start(netns: &str) -> Capture {
        let mut child = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", netns, "tcpdump", "-i", "eth0", "-U", "-n", "-s", "0",
            ])
            .args(["--immediate-mode", "-w", "-", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tcpdump (scripts/install-deps installs it)");
        let mut stdout = child.stdout.take().expect("stdout");
        let (sink, seen) = tokio::sync::watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = tokio::io::AsyncReadExt::read(&mut stdout, &mut buffer).await {
                sink.send_modify(|seen| seen.extend_from_slice(&buffer[..n]));
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let listening = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.expect("tcpdump's stderr") {
                if line.contains("listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(listening, Ok(true), "tcpdump did not start listening");
        Capture { child, seen }
    }

    /// Waits (at most 10 s) until the capture holds `needle`; whether it does.
    async fn wait_for(&self, needle: &str) -> bool {
        let mut seen = self.seen.clone();
        let found = seen.wait_for(|bytes| contains(bytes, needle));
        matches!(
            tokio::time::timeout(Duration::from_secs(10), found).await,
            Ok(Ok(_))
        )
    }

    /// Stops the capture and returns what it saw (pcap).
    async fn stop(mut self) -> Vec<u8> {
        let _ = self.child.kill().await;
        self.seen.borrow().clone()
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meshed_call_is_a_tls_handshake_and_ciphertext_on_the_pod_network() {
    if !require_root("a_meshed_call_is_a_tls_handshake_and_ciphertext_on_the_pod_network") {
        return;
    }
    let lab = TestLab::start("e2eid2", MESH).await;
    let sleep = lab.pod("shop", "sleep-");
    let capture = Capture::start(&lab.lab.names().pod(&sleep)).await;
    let call = |path: &'static str, host: &'static str, marker: &'static str| {
        let netns_name = lab.lab.names().pod(&sleep);
        async move {
            let output = tokio::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &netns_name,
                    "curl",
                    "-sS",
                    "--max-time",
                    "5",
                ])
                .args(["-H", &format!("x-wire-marker: {marker}")])
                .arg(format!("http://{host}{path}"))
                .output()
                .await
                .expect("curl");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    // To a meshed service: mTLS. To an unmeshed one: plain text (auto mTLS), which also proves
    // the capture sees this pod's traffic.
    // The capture is known to see this pod's traffic once a first plain call shows in it.
    call("/warm-up-4711", "plain.legacy", "canary-warm-up").await;
    assert!(
        capture.wait_for("/warm-up-4711").await,
        "the capture sees the pod's traffic"
    );
    call("/meshed-path-4711", "web", "canary-meshed").await;
    call("/plain-path-4711", "plain.legacy", "canary-plain").await;
    // Calls leave in order: once the last one shows, the meshed one has been read too.
    assert!(
        capture.wait_for("/plain-path-4711").await,
        "the capture saw the plain call"
    );
    assert!(
        capture.wait_for("mesh/http1.1").await,
        "a mesh TLS ClientHello is on the wire"
    );
    let wire = capture.stop().await;
    assert!(contains(&wire, "canary-plain"), "and its marker header");
    assert!(
        contains(&wire, "mesh/http1.1"),
        "a mesh TLS ClientHello (its ALPN) is on the wire"
    );
    assert!(
        !contains(&wire, "/meshed-path-4711"),
        "the meshed request's path is never in clear"
    );
    assert!(!contains(&wire, "canary-meshed"), "nor its marker header");
    lab.stop().await;
}

/// Accepts any server: the tests below look at what the server makes of the client.
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A mesh-looking client (ALPN mesh/http1.1) with a certificate for `sa/sleep` from a root
/// the mesh does not trust: another trust domain as far as the server can tell.
fn foreign_client() -> std::sync::Arc<rustls::ClientConfig> {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("foreign root");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::default();
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/shop/sa/sleep"
            .try_into()
            .expect("uri"),
    )];
    let leaf = leaf.signed_by(&key, &issuer).expect("leaf");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyServer(algorithms)))
        .with_client_auth_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("client auth");
    config.alpn_protocols = vec![b"mesh/http1.1".to_vec()];
    std::sync::Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_certificate_and_a_broken_or_stalled_handshake_are_refused_and_others_go_on() {
    if !require_root(
        "a_foreign_certificate_and_a_broken_or_stalled_handshake_are_refused_and_others_go_on",
    ) {
        return;
    }
    let lab = TestLab::start("e2eid5", MESH).await;
    let outsider = lab.pod("legacy", "outsider");
    let web_vip = lab
        .lab
        .state()
        .plan
        .services
        .iter()
        .find(|s| s.namespace == "shop" && s.name == "web")
        .and_then(|s| s.cluster_ip)
        .expect("web's ClusterIP");
    let netns_name = lab.lab.names().pod(&outsider);
    let config = foreign_client();
    let outcomes = tokio::task::spawn_blocking(move || {
        mesh_lab::netns::run_inside(&netns_name, move || {
            use std::io::{Read, Write};
            let address = std::net::SocketAddr::from((web_vip, 80));
            // 1. A full handshake with a certificate from a root the mesh does not trust.
            let name = rustls::pki_types::ServerName::try_from("web.shop").expect("name");
            let connection = rustls::ClientConnection::new(config, name).expect("client");
            let socket = std::net::TcpStream::connect(address).expect("connect");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut tls = rustls::StreamOwned::new(connection, socket);
            let foreign = tls
                .write_all(b"GET / HTTP/1.1\r\nhost: web\r\n\r\n")
                .and_then(|()| tls.read(&mut [0u8; 64]));
            // 2. A mesh ClientHello, then garbage where the handshake goes on.
            let hello = {
                let name = rustls::pki_types::ServerName::try_from("web.shop").expect("name");
                let mut connection =
                    rustls::ClientConnection::new(foreign_client(), name).expect("client");
                let mut bytes = Vec::new();
                connection.write_tls(&mut bytes).expect("hello");
                bytes
            };
            let mut socket = std::net::TcpStream::connect(address).expect("connect");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            socket.write_all(&hello).expect("write");
            socket.write_all(&[0xff; 64]).expect("write");
            let mut answer = Vec::new();
            let garbage = socket.read_to_end(&mut answer);
            // 3. A mesh ClientHello, then nothing: the sidecar gives up within its 10 s.
            let mut stalled = std::net::TcpStream::connect(address).expect("connect");
            stalled
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            stalled.write_all(&hello).expect("write");
            let started = tokio::time::Instant::now();
            let _ = stalled.read_to_end(&mut Vec::new());
            let closed_after = started.elapsed();
            (
                foreign.is_err() || foreign.is_ok_and(|n| n == 0),
                garbage.map(|_| answer),
                closed_after,
            )
        })
    })
    .await
    .expect("the probe runs")
    .expect("inside the pod");
    assert!(outcomes.0, "the foreign certificate got no answer");
    assert!(
        outcomes.2 < Duration::from_secs(15),
        "a stalled handshake is closed by the sidecar, not held ({:?})",
        outcomes.2
    );
    let garbage = outcomes
        .1
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    assert!(
        !garbage
            .as_deref()
            .is_ok_and(|answer| answer.contains("HTTP/1.1 200")),
        "the broken handshake was served: {garbage:?}"
    );
    let mut refused = 0.0;
    for web in lab.pods("shop", "web-") {
        refused += lab
            .metrics(&web)
            .await
            .sum("mesh_inbound_refused_total", &[("reason", "tls_handshake")]);
    }
    assert!(refused >= 3.0, "every refusal is counted ({refused})");
    // Everyone else is served as before.
    let sleep = lab.pod("shop", "sleep-");
    let echo = curl(&lab, &sleep, "http://web/")
        .await
        .expect("sleep reaches web");
    assert!(verified_peer(&echo).is_some(), "{echo}");
    lab.stop().await;
}
