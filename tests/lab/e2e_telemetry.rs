//! End to end on the lab: Istio's standard metrics through a chain of three meshed workloads
//! (client → web → backend). Each sidecar reports what it saw with Istio's labels: the client's
//! as `source`, the server's as `destination`, with the peer's workload learned from the
//! metadata the sidecars exchange and its identity from mesh TLS.

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
    // identity only (no metadata travels in opaque TCP).
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

const TRACED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: observability }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: collector, namespace: observability }
spec:
  selector: { matchLabels: { app: collector } }
  template:
    metadata: { labels: { app: collector } }
    spec:
      containers:
      - name: collector
        image: mesh-workload
        args: [collect-traces]
        ports: [{ name: grpc, containerPort: 4317 }, { name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: otel-collector, namespace: observability }
spec:
  selector: { app: collector }
  ports: [{ name: grpc, port: 4317, targetPort: grpc }, { name: http, port: 80, targetPort: http }]
---
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
    metadata:
      labels: { app: client }
      annotations:
        mesh.io/tracing-collector: http://otel-collector.observability:4317
        mesh.io/tracing-sampling: "100"
    spec:
      containers: [{ name: client, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sampler, namespace: shop }
spec:
  selector: { matchLabels: { app: sampler } }
  template:
    metadata:
      labels: { app: sampler }
      annotations:
        mesh.io/tracing-collector: http://otel-collector.observability:4317
        mesh.io/tracing-sampling: "10"
    spec:
      containers: [{ name: sampler, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata:
      labels: { app: web }
      annotations: { mesh.io/tracing-collector: "http://otel-collector.observability:4317" }
    spec:
      containers:
      - name: web
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080", --call, "http://backend/"]
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
    metadata:
      labels: { app: backend }
      annotations: { mesh.io/tracing-collector: "http://otel-collector.observability:4317" }
    spec:
      containers:
      - name: backend
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080"]
        ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: backend, namespace: shop }
spec:
  selector: { app: backend }
  ports: [{ name: http, port: 80, targetPort: http }]
"#;

/// The traces the lab's collector holds whose root span came from `service`.
async fn traces_from(lab: &TestLab, service: &str) -> Vec<serde_json::Value> {
    let collector = lab.pod("observability", "collector-");
    let (status, body) = lab
        .curl(&collector, "GET", "http://127.0.0.1:8080/traces")
        .await;
    assert_eq!(status, "200", "{body}");
    let traces: Vec<serde_json::Value> = serde_json::from_str(&body).expect("traces JSON");
    (traces.into_iter())
        .filter(|t| {
            (t["spans"].as_array().into_iter().flatten())
                .any(|s| s["parent_span_id"] == "" && s["service"] == service)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_adds_its_spans_to_one_trace_per_request() {
    if !require_root("every_hop_adds_its_spans_to_one_trace_per_request") {
        return;
    }
    let lab = TestLab::start("e2et2", TRACED).await;
    let client = lab.pod("shop", "client-");
    let summary = lab
        .call(&client, &["call", "http://web/", "--count", "20"])
        .await;
    assert_eq!(summary["ok"], 20, "{summary}");
    let traces = eventually("20 traces of 4 spans", Duration::from_secs(15), || async {
        let traces = traces_from(&lab, "client.shop").await;
        let whole = (traces.iter())
            .filter(|t| t["spans"].as_array().is_some_and(|s| s.len() == 4))
            .count();
        (traces.len() == 20 && whole == 20).then_some(traces)
    })
    .await;
    for trace in &traces {
        let spans = trace["spans"].as_array().expect("spans");
        let find = |service: &str, kind: &str| {
            (spans.iter())
                .find(|s| s["service"] == service && s["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} span of {service} in {trace}"))
        };
        // client sidecar → web sidecar → (web app) → web sidecar → backend sidecar.
        let root = find("client.shop", "client");
        let web_in = find("web.shop", "server");
        let web_out = find("web.shop", "client");
        let backend_in = find("backend.shop", "server");
        assert_eq!(root["parent_span_id"], "");
        assert_eq!(web_in["parent_span_id"], root["span_id"], "{trace}");
        assert_eq!(web_out["parent_span_id"], web_in["span_id"], "{trace}");
        assert_eq!(backend_in["parent_span_id"], web_out["span_id"], "{trace}");
        assert_eq!(root["attributes"]["http.response.status_code"], "200");
        assert_eq!(web_in["attributes"]["mesh.source_workload"], "client");
        assert_eq!(
            backend_in["attributes"]["mesh.source_principal"],
            "spiffe://cluster.local/ns/shop/sa/default"
        );
    }

    // `mesh lab traces` finds the collector and prints each trace as a tree: the client's
    // span at the root, each hop's span under the one that sent it.
    let printed = lab.mesh_json(&["lab", "traces", "--limit", "20"]).await;
    let printed = printed.as_array().expect("a list of traces");
    assert_eq!(printed.len(), 20, "{printed:?}");
    for trace in printed {
        assert_eq!(trace["span_count"], 4, "{trace}");
        let roots = trace["roots"].as_array().expect("roots");
        assert_eq!(roots.len(), 1, "one root, no orphans: {trace}");
        let mut span = &roots[0];
        for (service, kind) in [
            ("client.shop", "client"),
            ("web.shop", "server"),
            ("web.shop", "client"),
            ("backend.shop", "server"),
        ] {
            assert!(
                span["service"] == service && span["kind"] == kind,
                "{trace}"
            );
            assert_eq!(span["orphan"], false, "{trace}");
            let children = span["children"].as_array().expect("children");
            if service == "backend.shop" {
                assert!(children.is_empty(), "{trace}");
            } else {
                assert_eq!(children.len(), 1, "{trace}");
                span = &children[0];
            }
        }
    }
    let (ok, text, error) = lab
        .mesh(&["lab", "traces", "-n", "observability", "--limit", "1"])
        .await;
    assert!(ok, "{error}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("trace ") && lines[0].contains("4 spans"),
        "{text}"
    );
    for (line, (indent, service, kind)) in lines[1..].iter().zip([
        ("", "client.shop", "client"),
        ("  ", "web.shop", "server"),
        ("    ", "web.shop", "client"),
        ("      ", "backend.shop", "server"),
    ]) {
        let (service_at, rest) = line.split_at(indent.len());
        assert!(
            service_at == indent && rest.starts_with(&format!("{service} ")),
            "{service} at depth {}:\n{text}",
            indent.len() / 2
        );
        assert!(rest.contains(&format!(" {kind} ")), "{text}");
        assert!(rest.contains(" 200 ") && rest.contains("ms"), "{text}");
    }
    assert!(lines[2].contains("from=client mtls"), "{text}");
    assert!(lines[4].contains("from=web mtls"), "{text}");

    // 10 % sampling at the root: the trace is recorded at every hop or at none.
    let sampler = lab.pod("shop", "sampler-");
    let summary = lab
        .call(
            &sampler,
            &[
                "call",
                "http://web/",
                "--count",
                "1000",
                "--concurrency",
                "4",
            ],
        )
        .await;
    assert_eq!(summary["ok"], 1000, "{summary}");
    // Done when the sampler's sidecar has exported every span it recorded (one per trace),
    // the collector holds that many traces, and each has its four spans.
    let sampled = eventually(
        "sampled traces complete",
        Duration::from_secs(15),
        || async {
            let metrics = lab.metrics(&sampler).await;
            let spans = |outcome| metrics.sum("mesh_trace_spans_total", &[("outcome", outcome)]);
            let recorded = spans("recorded");
            let traces = traces_from(&lab, "sampler.shop").await;
            let whole =
                (traces.iter()).all(|t| t["spans"].as_array().is_some_and(|s| s.len() == 4));
            let settled = recorded > 0.0 && spans("exported") == recorded;
            (settled && whole && traces.len() as f64 == recorded).then_some(traces.len())
        },
    )
    .await;
    assert!(
        (50..=150).contains(&sampled),
        "{sampled} of 1000 requests traced at 10 %"
    );
    lab.stop().await;
}
