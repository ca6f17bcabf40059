//! End to end on the lab: Istio's standard metrics through a chain of three meshed workloads
//! (client → web → backend). Each sidecar reports what it saw with Istio's labels: the client's
//! as `source`, the server's as `destination`, with the peer's workload learned from the
//! metadata the sidecars exchange and its identity from mesh TLS; gRPC calls counted by their
//! gRPC status. Traces are in `e2e_traces.rs`.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use support::{TestLab, eventually, require_root};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: shop }
spec:
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      containers: [{ name: client, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080", --call, "http://backend/"]
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ name: http, containerPort: 8080 }]
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
metadata: { name: backend, namespace: shop }
spec:
  selector: { matchLabels: { app: backend } }
  template:
    metadata: { labels: { app: backend, version: v2 } }
    spec:
      serviceAccountName: backend
      containers:
      - name: backend
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080", --tcp-addr, "0.0.0.0:9000"]
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ name: http, containerPort: 8080 }, { name: echo, containerPort: 9000 }]
---
apiVersion: v1
kind: Service
metadata: { name: backend, namespace: shop }
spec:
  selector: { app: backend }
  ports:
  - { name: http, port: 80, targetPort: http }
  - { name: tcp-echo, port: 9000, targetPort: echo }
---
apiVersion: v1
kind: Service
metadata: { name: nobody, namespace: shop }
spec:
  selector: { app: nobody }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
"#;

const CLIENT_ID: &str = "spiffe://cluster.local/ns/shop/sa/default";
const WEB_ID: &str = "spiffe://cluster.local/ns/shop/sa/web";
const BACKEND_ID: &str = "spiffe://cluster.local/ns/shop/sa/backend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hop_reports_istios_standard_metrics_with_both_peers() {
    if !require_root("each_hop_reports_istios_standard_metrics_with_both_peers") {
        return;
    }
    let lab = TestLab::start("e2et1", SHOP).await;
    let client = lab.pod("shop", "client-");
    let web = lab.pod("shop", "web-");
    let backend = lab.pod("shop", "backend-");
    let summary = lab
        .call(&client, &["call", "http://web/", "--count", "100"])
        .await;
    assert_eq!(summary["ok"], 100, "{summary}");

    // client → web, as the client's sidecar saw it.
    let to_web = [
        ("reporter", "source"),
        ("source_workload", "client"),
        ("source_workload_namespace", "shop"),
        ("source_app", "client"),
        ("source_principal", CLIENT_ID),
        ("destination_workload", "web"),
        ("destination_workload_namespace", "shop"),
        ("destination_app", "web"),
        ("destination_version", "v1"),
        ("destination_principal", WEB_ID),
        ("destination_service", "web.shop.svc.cluster.local"),
        ("destination_service_name", "web"),
        ("destination_service_namespace", "shop"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
    ];
    let metrics = lab.metrics(&client).await;
    assert_eq!(metrics.sum("istio_requests_total", &to_web), 100.0);
    assert_eq!(
        metrics.sum("istio_request_duration_milliseconds_count", &to_web),
        100.0
    );
    assert!(metrics.sum("istio_response_bytes_sum", &to_web) > 100.0 * 50.0);
    assert_eq!(
        metrics.sum("istio_requests_total", &[("reporter", "source")]),
        100.0,
        "nothing else was counted"
    );

    // client → web as web's sidecar saw it, and web → backend as it called on.
    let metrics = lab.metrics(&web).await;
    let from_client = [
        ("reporter", "destination"),
        ("source_workload", "client"),
        ("source_app", "client"),
        ("source_principal", CLIENT_ID),
        ("destination_workload", "web"),
        ("destination_principal", WEB_ID),
        ("destination_service_name", "web"),
        ("destination_service_namespace", "shop"),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
    ];
    assert_eq!(metrics.sum("istio_requests_total", &from_client), 100.0);
    let to_backend = [
        ("reporter", "source"),
        ("source_workload", "web"),
        ("source_version", "v1"),
        ("source_principal", WEB_ID),
        ("destination_workload", "backend"),
        ("destination_version", "v2"),
        ("destination_principal", BACKEND_ID),
        ("destination_service_name", "backend"),
        ("response_code", "200"),
    ];
    assert_eq!(metrics.sum("istio_requests_total", &to_backend), 100.0);

    // web → backend as backend's sidecar saw it.
    let metrics = lab.metrics(&backend).await;
    let from_web = [
        ("reporter", "destination"),
        ("source_workload", "web"),
        ("source_canonical_service", "web"),
        ("source_canonical_revision", "v1"),
        ("source_principal", WEB_ID),
        ("destination_workload", "backend"),
        ("destination_canonical_service", "backend"),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
    ];
    assert_eq!(metrics.sum("istio_requests_total", &from_web), 100.0);

    // `mesh stat` and `mesh edges` read the same metrics back.
    let stat = lab
        .mesh_json(&["stat", "-n", "shop", "--window", "200ms"])
        .await;
    let row = |name: &str| {
        (stat.as_array().expect("rows").iter())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name} in {stat}"))
            .clone()
    };
    for (name, requests) in [("web", 100.0), ("backend", 100.0), ("client", 0.0)] {
        let row = row(name);
        assert_eq!(row["requests"], requests, "{row}");
        assert_eq!(row["meshed"], 1, "{row}");
    }
    assert_eq!(row("web")["success_rate"], 1.0);
    assert!(
        row("web")["latency_ms_p99"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0)
    );
    let edges = lab.mesh_json(&["edges", "-n", "shop"]).await;
    for (src, dst) in [("client", "web"), ("web", "backend")] {
        assert!(
            (edges.as_array().expect("edges").iter())
                .any(|e| e["src"] == src && e["dst"] == dst && e["secured"] == true),
            "no secured {src} → {dst} in {edges}"
        );
    }

    // The metadata the sidecars exchange never reaches the app.
    let (status, body) = lab.curl(&client, "GET", "http://backend/").await;
    assert_eq!(status, "200", "{body}");
    assert!(!body.contains("x-mesh-peer-metadata"), "{body}");

    // The client's sidecar answers a call to a Service without endpoints itself: 503, flag UH.
    let (status, _) = lab.curl(&client, "GET", "http://nobody/").await;
    assert_eq!(status, "503");
    let metrics = lab.metrics(&client).await;
    let no_endpoint = [
        ("reporter", "source"),
        ("destination_service_name", "nobody"),
        ("destination_workload", "unknown"),
        ("response_code", "503"),
        ("response_flags", "UH"),
    ];
    assert_eq!(metrics.sum("istio_requests_total", &no_endpoint), 1.0);

    // Opaque TCP: counted per connection by both sidecars; the server knows the client by its
    // identity only (no metadata travels in opaque TCP), and its Service by the endpoint the
    // client meant.
    let summary = lab
        .call(&client, &["call-tcp", "backend:9000", "--count", "5"])
        .await;
    assert_eq!(summary["ok"], 5, "{summary}");
    let to_backend = [
        ("reporter", "source"),
        ("source_workload", "client"),
        ("destination_workload", "backend"),
        ("destination_principal", BACKEND_ID),
        ("destination_service_name", "backend"),
        ("request_protocol", "tcp"),
    ];
    let metrics = lab.metrics(&client).await;
    assert_eq!(
        metrics.sum("istio_tcp_connections_opened_total", &to_backend),
        5.0
    );
    assert!(metrics.sum("istio_tcp_sent_bytes_total", &to_backend) > 0.0);
    let from_client = [
        ("reporter", "destination"),
        ("source_principal", CLIENT_ID),
        ("source_workload_namespace", "shop"),
        ("destination_workload", "backend"),
        ("destination_service", "backend.shop.svc.cluster.local"),
        ("destination_service_name", "backend"),
        ("connection_security_policy", "mutual_tls"),
        ("request_protocol", "tcp"),
    ];
    let closed = eventually(
        "backend's sidecar counts 5 closed",
        Duration::from_secs(10),
        || async {
            let metrics = lab.metrics(&backend).await;
            let closed = metrics.sum("istio_tcp_connections_closed_total", &from_client);
            (closed == 5.0).then_some(metrics)
        },
    )
    .await;
    assert_eq!(
        closed.sum("istio_tcp_connections_opened_total", &from_client),
        5.0
    );
    assert!(closed.sum("istio_tcp_received_bytes_total", &from_client) > 0.0);

    // No collector runs here: `mesh lab traces` says how to deploy one.
    let (ok, _, error) = lab.mesh(&["lab", "traces"]).await;
    assert!(!ok, "{error}");
    assert!(
        error.contains("runs no trace collector") && error.contains("mesh.io/tracing-collector"),
        "{error}"
    );
    lab.stop().await;
}

const GRPC: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: shop }
spec:
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      containers: [{ name: client, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo, namespace: shop }
spec:
  selector: { matchLabels: { app: echo } }
  template:
    metadata: { labels: { app: echo } }
    spec:
      containers:
      - name: echo
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080", --fail-percent, "50"]
        ports: [{ name: grpc, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: shop }
spec:
  selector: { app: echo }
  ports: [{ name: grpc, port: 9000, targetPort: grpc }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_counted_by_their_grpc_status() {
    if !require_root("grpc_calls_are_counted_by_their_grpc_status") {
        return;
    }
    let lab = TestLab::start("e2et3", GRPC).await;
    let client = lab.pod("shop", "client-");
    let echo = lab.pod("shop", "echo-");
    let summary = lab
        .call(
            &client,
            &[
                "call-grpc",
                "echo:9000",
                "--count",
                "40",
                "--allow-failures",
            ],
        )
        .await;
    let ok = summary["ok"].as_f64().expect("ok count");
    let failed = 40.0 - ok;
    assert!(ok > 0.0 && failed > 0.0, "half should fail: {summary}");
    // gRPC answers are HTTP 200 whatever their status; the status is its own label (the
    // echo's failures are UNAVAILABLE, 14, in a trailers-only answer).
    let calls = |reporter, status| {
        [
            ("reporter", reporter),
            ("request_protocol", "grpc"),
            ("response_code", "200"),
            ("grpc_response_status", status),
            ("destination_workload", "echo"),
            ("destination_service", "echo.shop.svc.cluster.local"),
        ]
    };
    let metrics = lab.metrics(&client).await;
    assert_eq!(
        metrics.sum("istio_requests_total", &calls("source", "0")),
        ok
    );
    assert_eq!(
        metrics.sum("istio_requests_total", &calls("source", "14")),
        failed
    );
    // The server's sidecar counts attempts: the client's sidecar retries UNAVAILABLE, so every
    // call that failed was tried more than once, and some that succeeded failed first.
    let served = eventually(
        "echo's sidecar counts every success",
        Duration::from_secs(10),
        || async {
            let metrics = lab.metrics(&echo).await;
            let succeeded = metrics.sum("istio_requests_total", &calls("destination", "0"));
            (succeeded == ok).then_some(metrics)
        },
    )
    .await;
    let unavailable = served.sum("istio_requests_total", &calls("destination", "14"));
    assert!(
        unavailable > failed,
        "{unavailable} failed attempts for {failed} failed calls"
    );
    lab.stop().await;
}
