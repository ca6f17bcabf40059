//! The real proxy client (the `mesh_proxy` library, in process) fed by the discovery server
//! over gRPC on loopback: it waits for a complete config, routes traffic as pushed, NACKs a bad
//! push while it keeps serving, keeps serving with the control plane gone, and re-syncs when it
//! comes back.

mod xds {
    pub mod harness;
}

use std::{net::SocketAddr, sync::Arc};

use mesh_control_plane::xds::{ConfigSnapshot, ResourceType, SyncState, SyncStatus};
use mesh_proto::{
    config::v1::{
        self as pb, ClusterLoadAssignment, Endpoint, Listener, ProxyConfig, listener::Mode,
        route_match,
    },
    discovery::v1::Node,
};
use mesh_proxy::{
    metrics::Metrics,
    proxy::{Proxy, ProxyListeners, Settings},
    xds::{ClientSettings, DiscoveryClient},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use xds::harness::{ControlPlane, http_route};

const LISTEN: &str = "127.0.0.1:0";
const PROXY_ID: &str = "web-1.shop";

/// An HTTP/1.1 upstream answering every request with its name.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(LISTEN).await.expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer_requests(stream, name));
        }
    });
    addr
}

async fn answer_requests(mut stream: TcpStream, name: &str) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        buffer.drain(..head_end);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
            name.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Sends one request for host `web` through the proxy; returns the body of a 200.
async fn get(proxy: SocketAddr) -> String {
    let mut stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    body.to_owned()
}

/// Host `web` on an explicit listener, routed to `upstream`.
fn routing(upstream: SocketAddr) -> ProxyConfig {
    ProxyConfig {
        listeners: vec![Listener {
            name: "web".into(),
            address: LISTEN.into(),
            mode: Mode::Explicit.into(),
            protocol: pb::Protocol::Http1.into(),
            route_config: "web".into(),
            ..Default::default()
        }],
        routes: vec![http_route("web", "web", "web")],
        clusters: vec![pb::Cluster {
            name: "web".into(),
            ..Default::default()
        }],
        endpoints: vec![ClusterLoadAssignment {
            cluster: "web".into(),
            endpoints: vec![Endpoint {
                address: upstream.to_string(),
                ..Default::default()
            }],
        }],
        telemetry: vec![],
    }
}

fn client(cp: &ControlPlane, delta: bool) -> DiscoveryClient {
    DiscoveryClient::new(ClientSettings {
        address: cp.url(),
        tls: None,
        delta,
        node: Node {
            id: PROXY_ID.into(),
            pod: "web-1".into(),
            namespace: "shop".into(),
            ..Default::default()
        },
    })
    .expect("client")
}

fn proxy_synced(generation: u64) -> impl Fn(&SyncStatus) -> bool {
    move |status| {
        status
            .proxy(PROXY_ID)
            .any(|p| p.generation == generation && p.is_synced())
    }
}

async fn serves_pushed_config_through_nack_and_outage(delta: bool) {
    let (blue, green) = (upstream("blue").await, upstream("green").await);
    let cp = ControlPlane::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ConfigSnapshot::pending(),
    )
    .await;
    let addr = cp.addr;

    // Nothing to start from until the control plane has a complete config.
    let mut client = client(&cp, delta);
    let first = tokio::spawn(async move {
        let (snapshot, _) = client.first_config(None).await;
        (client, snapshot)
    });
    cp.wait_status("the proxy connected", |s| {
        s.proxy(PROXY_ID).next().is_some()
    })
    .await;
    assert!(!first.is_finished(), "started without any config");
    cp.publish(ConfigSnapshot::uniform(1, routing(blue)));
    let (client, snapshot) = first.await.expect("first config");
    let proxy = Arc::new(
        Proxy::start(
            snapshot,
            ProxyListeners::default(),
            Settings::default(),
            Metrics::new(),
        )
        .await
        .expect("proxy starts"),
    );
    let following = {
        let proxy = proxy.clone();
        tokio::spawn(async move { client.follow(&proxy).await })
    };
    let web = proxy
        .explicit_bound_addr(LISTEN.parse().expect("address"))
        .expect("the pushed listener is bound");
    assert_eq!(get(web).await, "blue");
    cp.wait_status("synced on generation 1", proxy_synced(1))
        .await;

    // An endpoint change is applied, then ACKed.
    cp.publish(ConfigSnapshot::uniform(2, routing(green)));
    cp.wait_status("synced on generation 2", proxy_synced(2))
        .await;
    assert_eq!(get(web).await, "green");
    let applied = proxy.state().config.load().version;

    // A route that does not compile is NACKed; the proxy keeps serving the last good config.
    let mut bad = routing(green);
    let route = &mut bad.routes[0].virtual_hosts[0].routes[0];
    if let Some(matching) = route.r#match.as_mut() {
        matching.path = Some(route_match::Path::Regex("([".into()));
    }
    cp.publish(ConfigSnapshot::uniform(3, bad));
    let status = cp
        .wait_status("the NACK", |s| {
            s.proxy(PROXY_ID)
                .any(|p| p.of(ResourceType::Route).is_some_and(|t| t.nack.is_some()))
        })
        .await;
    let rds = status
        .proxy(PROXY_ID)
        .find_map(|p| p.of(ResourceType::Route).cloned())
        .expect("tracked");
    assert_eq!(rds.state, SyncState::Stale);
    assert!(
        rds.nack.as_ref().is_some_and(|n| n.error.contains("regex")),
        "{rds:?}"
    );
    assert_eq!(cp.metric("mesh_cp_nacks_total", Some(("type", "rds"))), 1.0);
    assert_eq!(get(web).await, "green");
    assert_eq!(
        proxy.state().config.load().version,
        applied,
        "nothing applied"
    );

    // The control plane goes away: traffic continues on the last good config.
    cp.stop().await;
    for _ in 0..5 {
        assert_eq!(get(web).await, "green");
    }

    // It comes back with another config: the proxy reconnects and follows.
    let cp = ControlPlane::start(addr, ConfigSnapshot::uniform(1, routing(blue))).await;
    cp.wait_status("synced with the new control plane", proxy_synced(1))
        .await;
    assert_eq!(get(web).await, "blue");

    proxy.drain(std::time::Duration::from_secs(1)).await;
    following
        .await
        .expect("the client stops when the proxy drains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_on_the_state_of_the_world_stream_serves_nacks_and_survives_an_outage() {
    serves_pushed_config_through_nack_and_outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_on_the_delta_stream_serves_nacks_and_survives_an_outage() {
    serves_pushed_config_through_nack_and_outage(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_config_sent_in_parts_starts_with_every_listener_and_route() {
    // 3,000 services: every type's initial delta push goes out in several parts, routes too,
    // so the proxy holds every type after the first route part already.
    let mut config = ProxyConfig::default();
    for i in 0..3000 {
        let name = format!("svc-{i}.shop.svc.cluster.local");
        config.clusters.push(pb::Cluster {
            name: name.clone(),
            ..Default::default()
        });
        config.listeners.push(Listener {
            name: name.clone(),
            address: format!("10.96.{}.{}:80", i / 250, 1 + i % 250),
            mode: Mode::Outbound.into(),
            protocol: pb::Protocol::Http1.into(),
            route_config: name.clone(),
            ..Default::default()
        });
        config.routes.push(http_route(&name, &name, &name));
    }
    let cp = ControlPlane::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ConfigSnapshot::uniform(1, config),
    )
    .await;
    let mut client = client(&cp, true);
    let (snapshot, _) = client.first_config(None).await;
    let started = snapshot.config();
    assert_eq!(started.listeners.len(), 3000, "no listener left warming");
    assert_eq!(started.routes.len(), 3000);
    cp.wait_status("synced", proxy_synced(1)).await;
}
