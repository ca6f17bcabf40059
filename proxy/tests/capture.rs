//! Transparent capture with real iptables REDIRECT rules in real network namespaces: a client
//! pod's outbound call to a Service VIP is captured by its sidecar (SO_ORIGINAL_DST), sent to the
//! server pod, captured there on the way in (15006) and delivered to the app on localhost.
//! Needs root, `ip` and `iptables`: skipped on a laptop without them, a failure in CI.

mod support;

use std::{future::Future, net::SocketAddr, sync::Arc, thread::JoinHandle, time::Duration};

use mesh_proxy::{
    config::{EncodedConfig, Snapshot},
    metrics::Metrics,
    proxy::{Proxy, ProxyListeners, Settings},
};
use mesh_test_support::netns::{TestNetns, run};
use support::*;
use tokio::{net::TcpListener, sync::oneshot};

const CLIENT_CONFIG: &str = r#"
listeners:
- { name: web-vip, address: "10.96.0.20:80", mode: OUTBOUND, route_config: web }
routes:
- name: web
  virtual_hosts:
  - { name: web, domains: ["*"], routes: [ { route: { destinations: [{ cluster: web }] } } ] }
clusters: [ { name: web } ]
endpoints: [ { cluster: web, endpoints: [{ address: "10.77.0.2:8080" }] } ]
"#;

/// Starts a proxy with capture listeners inside the current namespace; returns its metrics
/// once it accepts, and runs until `stop` fires.
async fn run_sidecar(
    yaml: &'static str,
    ready: std::sync::mpsc::Sender<Arc<Metrics>>,
    stop: oneshot::Receiver<()>,
) {
    let config = mesh_proxy::config::parse(yaml, "sidecar.yaml".as_ref()).expect("parses");
    let snapshot = Snapshot::compile(EncodedConfig::encode(&config), None).expect("valid");
    let listeners = ProxyListeners {
        outbound: Some(
            TcpListener::bind("0.0.0.0:15001")
                .await
                .expect("bind 15001"),
        ),
        inbound: Some(
            TcpListener::bind("0.0.0.0:15006")
                .await
                .expect("bind 15006"),
        ),
    };
    let metrics = Metrics::new();
    let _proxy = Proxy::start(snapshot, listeners, Settings::default(), metrics.clone())
        .await
        .expect("starts");
    ready.send(metrics).expect("test alive");
    let _ = stop.await;
}

/// Runs `make()`'s future on a thread of its own inside `netns`, on a current-thread runtime
/// that lives as long as the future.
fn spawn_async<F, Fut>(netns: &TestNetns, make: F) -> JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    netns.spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(make());
    })
}

#[test]
fn captured_traffic_passes_both_sidecars_and_keeps_the_original_port() {
    if !mesh_test_support::require_root(
        "captured_traffic_passes_both_sidecars",
        &["ip", "iptables"],
    ) {
        return;
    }
    let client = TestNetns::create("cli");
    let server = TestNetns::create("srv");
    let (veth_c, veth_s) = (
        format!("mtc{}", std::process::id()),
        format!("mts{}", std::process::id()),
    );
    run(
        "ip",
        &[
            "link", "add", &veth_c, "type", "veth", "peer", "name", &veth_s,
        ],
    );
    run("ip", &["link", "set", &veth_c, "netns", client.name()]);
    run("ip", &["link", "set", &veth_s, "netns", server.name()]);
    for (ns, dev, ip) in [
        (&client, &veth_c, "10.77.0.1/24"),
        (&server, &veth_s, "10.77.0.2/24"),
    ] {
        ns.exec(&["ip", "addr", "add", ip, "dev", dev]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
    }
    // The VIP needs a route before the nat table can redirect it, as a pod's default route gives.
    client.exec(&["ip", "route", "add", "default", "dev", &veth_c]);
    client.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "10.96.0.20/32",
        "-j",
        "REDIRECT",
        "--to-ports",
        "15001",
    ]);
    server.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "REDIRECT",
        "--to-ports",
        "15006",
    ]);

    let (server_ready, server_metrics) = std::sync::mpsc::channel();
    let (server_stop, server_stopped) = oneshot::channel();
    let server_thread = spawn_async(&server, move || async move {
        // Listening on the pod IP only: the sidecar delivers there from 127.0.0.6.
        let _app = upstream_at(
            "web-0",
            "10.77.0.2:8080".parse().expect("addr"),
            Duration::ZERO,
        )
        .await;
        run_sidecar("listeners: []", server_ready, server_stopped).await;
    });
    let (client_ready, client_metrics) = std::sync::mpsc::channel();
    let (client_stop, client_stopped) = oneshot::channel();
    let client_thread = spawn_async(&client, move || {
        run_sidecar(CLIENT_CONFIG, client_ready, client_stopped)
    });
    let wait = Duration::from_secs(10);
    let server_metrics = server_metrics
        .recv_timeout(wait)
        .expect("server sidecar ready");
    let client_metrics = client_metrics
        .recv_timeout(wait)
        .expect("client sidecar ready");

    let (answer_tx, answer_rx) = std::sync::mpsc::channel();
    spawn_async(&client, move || async move {
        let vip: SocketAddr = "10.96.0.20:80".parse().expect("addr");
        let (status, _, body) = get(vip, "/hello").await;
        answer_tx.send((status, body)).expect("test alive");
    });
    let (status, body) = answer_rx
        .recv_timeout(wait)
        .expect("the app answered through both sidecars");
    assert_eq!(status, http::StatusCode::OK);
    let seen = json(&body);
    assert_eq!(seen["upstream"], "web-0");
    assert_eq!(seen["uri"], "/hello");
    assert!(
        seen["peer"]
            .as_str()
            .expect("peer")
            .starts_with("127.0.0.6:"),
        "the app is reached from 127.0.0.6 on its pod IP: {seen}"
    );
    assert_eq!(
        seen["headers"]["x-forwarded-for"], "10.77.0.1",
        "the app learns its client pod's IP: {seen}"
    );

    let client_text = client_metrics.render();
    assert!(
        client_text.contains(
            r#"mesh_requests_total{cluster="web",connection_security_policy="unknown",destination_principal="unknown",direction="outbound",response_class="2xx",source_principal="unknown"} 1"#
        ),
        "{client_text}"
    );
    let server_text = server_metrics.render();
    assert!(
        server_text.contains(r#"mesh_requests_total{cluster="inbound|8080",connection_security_policy="none",destination_principal="unknown",direction="inbound",response_class="2xx",source_principal="unknown"} 1"#),
        "the server sidecar saw the original port 8080: {server_text}"
    );

    let _ = server_stop.send(());
    let _ = client_stop.send(());
    server_thread.join().expect("server thread");
    client_thread.join().expect("client thread");
}
