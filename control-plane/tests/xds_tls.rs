//! The discovery server over TLS, with the serving certificate the CA issued, against the real
//! proxy client and real handshakes: a proxy that trusts the mesh root gets its config, even
//! while another client stalls its handshake; one with the wrong root or expecting another
//! name stays not ready, logs why and retries, and disturbs no other proxy. The binary serves
//! TLS with the root it writes or the one it is given.

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use mesh_control_plane::{
    ca::{MeshRoot, ServingCert},
    xds::{self, ConfigSnapshot, DiscoveryServer, SyncStatus},
};
use mesh_proto::{
    config::v1::{Cluster, ClusterLoadAssignment, Endpoint, ProxyConfig},
    discovery::v1::Node,
};
use mesh_proxy::{
    metrics::Metrics,
    proxy::{Proxy, ProxyListeners, Settings},
    xds::{ClientSettings, DiscoveryClient, DiscoveryTls},
};
use mesh_test_support::{KillOnDrop, free_port, http_get};
use tokio::{net::TcpListener, sync::watch, time::Instant};
use tracing_subscriber::fmt::MakeWriter;

/// How long a test waits for a condition before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// Log lines written by the code under test, for asserting on what an operator would read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures this thread's logs (the test's current-thread runtime runs every task here).
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn count(&self, needle: &str) -> usize {
        let text = self.0.lock().expect("logs");
        String::from_utf8_lossy(&text).matches(needle).count()
    }

    /// Waits until `needle` was logged `more` times beyond the `before` counted earlier.
    async fn wait_for(&self, needle: &str, before: usize, more: usize) {
        let what = format!("{more} more {needle:?} in the logs");
        wait(&what, || self.count(needle) >= before + more).await;
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for Logs {
    type Writer = Logs;

    fn make_writer(&self) -> Logs {
        self.clone()
    }
}

/// Polls `done` until it holds.
async fn wait(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh folder for one test's files.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-xds-tls-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A config with one cluster `web`, enough to make a proxy's config complete; its endpoint
/// differs by generation.
fn config(generation: u64) -> ConfigSnapshot {
    ConfigSnapshot::uniform(
        generation,
        ProxyConfig {
            clusters: vec![Cluster {
                name: "web".into(),
                ..Default::default()
            }],
            endpoints: vec![ClusterLoadAssignment {
                cluster: "web".into(),
                endpoints: vec![Endpoint {
                    address: format!("127.0.0.1:{}", 8000 + generation),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        },
    )
}

/// The discovery server on loopback over TLS, with a certificate from `root` for 127.0.0.1.
struct TlsControlPlane {
    addr: SocketAddr,
    server: DiscoveryServer,
    publisher: watch::Sender<Arc<ConfigSnapshot>>,
}

impl TlsControlPlane {
    async fn start(root: &MeshRoot) -> TlsControlPlane {
        let serving = ServingCert::issue(root, &["127.0.0.1".to_owned()]).expect("serving cert");
        let tls = serving.server_config(&[b"h2"]).expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (publisher, snapshots) = watch::channel(Arc::new(config(1)));
        let server = DiscoveryServer::new(snapshots).expect("discovery server");
        let serving = xds::serve(
            server.clone(),
            None,
            listener,
            Some(tls),
            std::future::pending(),
        );
        tokio::spawn(async move { serving.await.expect("discovery server runs") });
        TlsControlPlane {
            addr,
            server,
            publisher,
        }
    }

    fn publish(&self, snapshot: ConfigSnapshot) {
        self.publisher.send_replace(Arc::new(snapshot));
    }

    async fn wait_status(&self, what: &str, done: impl Fn(&SyncStatus) -> bool) {
        wait(what, || done(&self.server.sync_status())).await;
    }
}

/// `proxy` is connected and has ACKed everything of `generation`.
fn synced(proxy: &'static str, generation: u64) -> impl Fn(&SyncStatus) -> bool {
    move |status| {
        status
            .proxy(proxy)
            .any(|p| p.generation == generation && p.is_synced())
    }
}

/// Writes `root`'s certificate where a proxy's --discovery-root-cert would point.
fn root_file(dir: &Path, root: &MeshRoot) -> PathBuf {
    let path = dir.join("root-cert.pem");
    root.write_cert(&path).expect("root file");
    path
}

/// The real discovery client as pod `<id>` in namespace `shop`, trusting `root_cert`.
fn client(address: &str, id: &str, root_cert: &Path, server_name: Option<&str>) -> DiscoveryClient {
    let tls = DiscoveryTls::load(root_cert, server_name.map(str::to_owned)).expect("root loads");
    DiscoveryClient::new(ClientSettings {
        address: address.to_owned(),
        tls: Some(tls),
        delta: false,
        node: Node {
            id: format!("{id}.shop"),
            pod: id.to_owned(),
            namespace: "shop".into(),
            ..Default::default()
        },
    })
    .expect("client")
}

#[tokio::test]
async fn a_proxy_that_trusts_the_mesh_root_gets_its_config_over_tls() {
    let dir = folder("trusted");
    let root = MeshRoot::generate().expect("root");
    let cp = TlsControlPlane::start(&root).await;
    let root_cert = root_file(&dir, &root);
    // A client that connects and never starts its handshake holds up no one else.
    let _silent = tokio::net::TcpStream::connect(cp.addr)
        .await
        .expect("connects");

    // Named by the address's IP, and by the Service name a cluster would use.
    let url = format!("https://{}", cp.addr);
    let mut by_ip = client(&url, "by-ip", &root_cert, None);
    // Well within the silent client's 10 s handshake deadline.
    let (snapshot, _) = tokio::time::timeout(Duration::from_secs(5), by_ip.first_config(None))
        .await
        .expect("not held up by the silent client");
    assert!(snapshot.cluster("web").is_some(), "the pushed cluster");
    let name = Some("mesh-control-plane.mesh-system.svc");
    let mut by_name = client(&url, "by-name", &root_cert, name);
    let (snapshot, _) = by_name.first_config(None).await;
    assert!(snapshot.cluster("web").is_some(), "the pushed cluster");
    cp.wait_status("both synced", |s| {
        synced("by-ip.shop", 1)(s) && synced("by-name.shop", 1)(s)
    })
    .await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Starts a client that must fail; checks it stays not ready and retries, logging `cause`.
async fn stays_not_ready(logs: &Logs, mut client: DiscoveryClient, cause: &str) {
    let health = TcpListener::bind("127.0.0.1:0").await.expect("health port");
    let health_port = health.local_addr().expect("address").port();
    let failed = "TLS handshake on the discovery port failed";
    let before = (logs.count(cause), logs.count(failed));
    let waiting = tokio::spawn(async move { client.first_config(Some(health)).await });
    // Retried with backoff: the same cause twice, the server's side of it logged too.
    logs.wait_for(cause, before.0, 2).await;
    logs.wait_for(failed, before.1, 2).await;
    let ready =
        tokio::task::spawn_blocking(move || http_get(("127.0.0.1", health_port), "/healthz/ready"))
            .await
            .expect("probe");
    assert_eq!(
        ready.ok().map(|r| r.0),
        Some(503),
        "not ready without a config"
    );
    assert!(!waiting.is_finished(), "got a config it should not trust");
    waiting.abort();
}

#[tokio::test]
async fn a_wrong_root_or_name_keeps_the_proxy_not_ready_logs_why_and_disturbs_no_other() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let dir = folder("untrusted");
    let root = MeshRoot::generate().expect("root");
    let cp = TlsControlPlane::start(&root).await;
    let url = format!("https://{}", cp.addr);

    // A proxy that trusts the right root is connected throughout.
    let mut good = client(&url, "good", &root_file(&dir, &root), None);
    let (snapshot, _) = good.first_config(None).await;
    cp.wait_status("the good proxy synced", synced("good.shop", 1))
        .await;

    let stranger_dir = dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir).expect("dir");
    let stranger = MeshRoot::generate().expect("another root");
    let wrong_root = client(
        &url,
        "wrong-root",
        &root_file(&stranger_dir, &stranger),
        None,
    );
    stays_not_ready(&logs, wrong_root, "invalid peer certificate: UnknownIssuer").await;
    assert!(
        logs.count("is --discovery-root-cert the mesh root") >= 2,
        "the operator's hint"
    );
    assert_eq!(
        logs.count("UnknownIssuer: invalid peer"),
        0,
        "each cause once"
    );

    let wrong_name = client(
        &url,
        "wrong-name",
        &root_file(&dir, &root),
        Some("elsewhere.example"),
    );
    stays_not_ready(
        &logs,
        wrong_name,
        "certificate not valid for name \"elsewhere.example\"",
    )
    .await;

    // The failed handshakes cost the connected proxy nothing: it still follows pushes.
    let proxy = Proxy::start(
        snapshot,
        ProxyListeners::default(),
        Settings::default(),
        Metrics::new(),
    )
    .await
    .expect("proxy starts");
    let proxy = Arc::new(proxy);
    let following = {
        let proxy = proxy.clone();
        tokio::spawn(async move { good.follow(&proxy).await })
    };
    cp.publish(config(2));
    cp.wait_status(
        "the good proxy synced on generation 2",
        synced("good.shop", 2),
    )
    .await;
    proxy.drain(Duration::from_secs(1)).await;
    following
        .await
        .expect("the client stops when the proxy drains");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
"#;

/// Runs the binary on `dir`'s manifests with `flags`; returns once it is ready, with its
/// discovery port.
async fn start_binary(dir: &Path, flags: &[&str]) -> (KillOnDrop, u16) {
    std::fs::create_dir_all(dir).expect("manifests folder");
    std::fs::write(dir.join("web.yaml"), WEB).expect("manifest");
    let (xds, monitoring) = (free_port(), free_port());
    let running = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_mesh-control-plane"))
            .arg("--manifests")
            .arg(dir)
            .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
            .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring}")])
            .args(flags)
            .stderr(Stdio::null())
            .spawn()
            .expect("the control plane starts"),
    );
    // Readiness: the monitoring port answers 200 once the first config is published.
    wait("the control plane ready", || {
        http_get(("127.0.0.1", monitoring), "/healthz/ready").is_ok_and(|(status, _)| status == 200)
    })
    .await;
    (running, xds)
}

/// The real proxy client gets the folder's Service from the binary at `xds`, over TLS.
async fn gets_the_folder_over_tls(xds: u16, root_cert: &Path) {
    let url = format!("https://127.0.0.1:{xds}");
    let mut proxy = client(&url, "sleep", root_cert, None);
    let (snapshot, _) = proxy.first_config(None).await;
    assert!(
        snapshot
            .cluster("outbound|80||web.shop.svc.cluster.local")
            .is_some(),
        "the folder's Service"
    );
}

#[tokio::test]
async fn the_binary_serves_tls_with_the_root_it_generates_and_writes() {
    let dir = folder("binary-generated");
    let root_cert = dir.join("out").join("root-cert.pem");
    std::fs::create_dir_all(dir.join("out")).expect("dir");
    let out = root_cert.to_str().expect("utf-8 path");
    let (_cp, xds) = start_binary(
        &dir.join("manifests"),
        &["--root-cert-out", out, "--xds-san", "127.0.0.1"],
    )
    .await;
    gets_the_folder_over_tls(xds, &root_cert).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn the_binary_serves_tls_with_the_root_it_is_given() {
    let dir = folder("binary-given");
    let root = MeshRoot::generate().expect("root");
    let cert = dir.join("ca-cert.pem");
    let key = dir.join("ca-key.pem");
    std::fs::write(&cert, root.cert_pem()).expect("cert");
    std::fs::write(&key, root.key_pem()).expect("key");
    let (_cp, xds) = start_binary(
        &dir.join("manifests"),
        &[
            "--ca-cert",
            cert.to_str().expect("utf-8"),
            "--ca-key",
            key.to_str().expect("utf-8"),
            "--xds-san",
            "127.0.0.1",
        ],
    )
    .await;
    gets_the_folder_over_tls(xds, &cert).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
