//! End to end on the lab: distributed traces through a chain of three meshed workloads
//! (client → web → backend), collected by the lab's OTLP collector: one trace per request with
//! a client and a server span per hop, sampling decided once at the root, and `mesh lab traces`
//! printing them as trees.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use support::{TestLab, eventually, require_root};

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
        let traces = lab.traces_from("client.shop").await;
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
            let traces = lab.traces_from("sampler.shop").await;
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
