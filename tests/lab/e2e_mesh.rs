//! End to end on the lab with the mesh (sidecars configured by the control plane): calls pass through the
//! client's and the server's sidecars, proven by both proxies' counters; the app sees the port
//! the client meant; excluded ports bypass the sidecar; meshed and unmeshed pods call each other.

#[path = "e2e/support.rs"]
mod support;

use support::{TestLab, counts, require_root};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      containers:
      - name: web
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080", --tcp-addr, "0.0.0.0:9000"]
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ name: http, containerPort: 8080 }, { name: echo, containerPort: 9000 }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports:
  - { name: http, port: 80, targetPort: http }
  - { name: tcp-echo, port: 9000, targetPort: echo }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sleep, namespace: shop }
spec:
  selector: { matchLabels: { app: sleep } }
  template:
    metadata:
      labels: { app: sleep }
      annotations: { mesh.io/exclude-outbound-ports: "9000" }
    spec:
      containers: [{ name: sleep, command: [sleep, infinity] }]
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

const WEB_CLUSTER: &str = "outbound|80||web.shop.svc.cluster.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshed_calls_pass_both_sidecars_and_keep_the_original_port() {
    if !require_root("meshed_calls_pass_both_sidecars_and_keep_the_original_port") {
        return;
    }
    let lab = TestLab::start("e2em1", SHOP).await;
    let sleep = lab.pod("shop", "sleep-");
    assert!(sleep.meshed() && lab.pod("shop", "web-").meshed());
    let summary = lab
        .call(&sleep, &["call", "http://web/", "--count", "40"])
        .await;
    assert_eq!(summary["ok"], 40, "{summary}");
    assert_eq!(counts(&summary, "pods").len(), 2, "{summary}");

    let client = lab.metrics(&sleep).await;
    let outbound = [
        ("direction", "outbound"),
        ("cluster", WEB_CLUSTER),
        ("response_class", "2xx"),
    ];
    assert_eq!(
        client.sum("mesh_requests_total", &outbound),
        40.0,
        "the client sidecar routed every call"
    );
    // Its own connections to the endpoints were not captured again (no loop, no double count).
    assert_eq!(
        client.sum("mesh_requests_total", &[("direction", "outbound")]),
        40.0
    );
    assert_eq!(
        client.sum(
            "mesh_tcp_connections_opened_total",
            &[("cluster", "PassthroughCluster")]
        ),
        0.0
    );
    let mut inbound = 0.0;
    for web in lab.pods("shop", "web-") {
        let server = lab.metrics(&web).await;
        // The server sidecar saw the port the client meant (8080), not its own capture port.
        inbound += server.sum(
            "mesh_requests_total",
            &[
                ("direction", "inbound"),
                ("cluster", "inbound|8080"),
                ("response_class", "2xx"),
            ],
        );
    }
    assert_eq!(inbound, 40.0, "the server sidecars received every call");

    // And the app saw a connection to its own port 8080.
    let answer = lab.exec(&sleep, &["curl", "-sf", "http://web/"]).await;
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["port"], 8080, "{answer}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_ports_bypass_the_sidecar_and_unmeshed_pods_still_talk_to_meshed_ones() {
    if !require_root(
        "excluded_ports_bypass_the_sidecar_and_unmeshed_pods_still_talk_to_meshed_ones",
    ) {
        return;
    }
    let lab = TestLab::start("e2em2", SHOP).await;
    let sleep = lab.pod("shop", "sleep-");
    // Port 9000 is excluded for the client: kube-proxy carries it, the client sidecar never sees it.
    let tcp = lab
        .call(&sleep, &["call-tcp", "web:9000", "--count", "10"])
        .await;
    assert_eq!(tcp["ok"], 10, "{tcp}");
    let client = lab.metrics(&sleep).await;
    assert_eq!(
        client.sum(
            "mesh_tcp_connections_opened_total",
            &[("direction", "outbound")]
        ),
        0.0,
        "excluded port went around the client sidecar"
    );
    let mut server_tcp = 0.0;
    for web in lab.pods("shop", "web-") {
        server_tcp += lab.metrics(&web).await.sum(
            "mesh_tcp_connections_opened_total",
            &[("direction", "inbound")],
        );
    }
    assert_eq!(
        server_tcp, 10.0,
        "inbound capture still applies on the server side"
    );

    // Unmeshed → meshed: the server sidecars take plain traffic.
    let outsider = lab.pod("legacy", "outsider");
    let summary = lab
        .call(&outsider, &["call", "http://web.shop/", "--count", "10"])
        .await;
    assert_eq!(summary["ok"], 10, "{summary}");
    // Meshed → unmeshed: the client sidecar routes to a plain pod.
    let summary = lab
        .call(&sleep, &["call", "http://plain.legacy/", "--count", "10"])
        .await;
    assert_eq!(summary["ok"], 10, "{summary}");
    let client = lab.metrics(&sleep).await;
    let plain = [
        ("direction", "outbound"),
        ("cluster", "outbound|80||plain.legacy.svc.cluster.local"),
    ];
    assert_eq!(client.sum("mesh_requests_total", &plain), 10.0);
    lab.stop().await;
}
