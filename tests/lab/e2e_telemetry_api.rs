//! End to end on the lab: Istio's `Telemetry` resource drives the sidecars' traces and access
//! logs through the control plane, and an edit applies without restarting anything. The pods
//! carry no telemetry annotations: the collector comes from the provider `otel` that the lab's
//! control plane knows.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use mesh_lab::cluster::PodPlan;
use serde_json::Value;
use support::{TestLab, eventually, require_root};

const WORKLOADS: &str = r#"
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
  ports: [{ name: grpc, port: 4317, targetPort: grpc }]
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
    metadata: { labels: { app: web } }
    spec:
      containers:
      - name: web
        image: mesh-workload
        args: [--addr, "0.0.0.0:8080"]
        ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: nowhere, namespace: shop }
spec:
  selector: { app: nothing-has-this-label }
  ports: [{ name: http, port: 80 }]
"#;

/// Every request traced, and only failed requests logged, mesh-wide.
const TRACE_ALL_LOG_ERRORS: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: mesh-system }
spec:
  tracing:
  - providers: [{ name: otel }]
    randomSamplingPercentage: 100
  accessLogging:
  - providers: [{ name: envoy }]
    filter: { expression: "response.code >= 400" }
"#;

/// No new trace sampled mesh-wide; web logs every request it receives.
const TRACE_NONE_WEB_LOGS_ALL: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: mesh-system }
spec:
  tracing:
  - providers: [{ name: otel }]
    randomSamplingPercentage: 0
  accessLogging:
  - providers: [{ name: envoy }]
    filter: { expression: "response.code >= 400" }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  accessLogging:
  - match: { mode: SERVER }
    filter: { expression: "response.code >= 200" }
"#;

/// The access log lines in the sidecar's stdout (its own logs are not JSON).
fn access_lines(lab: &TestLab, pod: &PodPlan) -> Vec<Value> {
    let path = mesh_lab::state::log_file(&lab.lab.names().lab, &pod.key(), "mesh-proxy");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    (text.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("response_code").is_some())
        .collect()
}

/// The TDS version the pod's sidecar acknowledged, once in sync.
fn acked_telemetry(status: &Value, pod: &str) -> Option<String> {
    let proxy = (status["proxies"].as_array()?.iter()).find(|p| p["pod"] == pod)?;
    let tds = (proxy["types"].as_array()?.iter()).find(|t| t["type"] == "TDS")?;
    (tds["state"] == "SYNCED").then(|| tds["acked"].as_str().map(str::to_owned))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_objects_drive_sampling_and_access_logs_and_edits_apply_live() {
    if !require_root("telemetry_objects_drive_sampling_and_access_logs_and_edits_apply_live") {
        return;
    }
    let lab = TestLab::start_files(
        "e2etel",
        &[
            ("workloads.yaml", WORKLOADS),
            ("telemetry.yaml", TRACE_ALL_LOG_ERRORS),
        ],
    )
    .await;
    let (client, web) = (lab.pod("shop", "client-"), lab.pod("shop", "web-"));

    let ok = lab
        .call(&client, &["call", "http://web/", "--count", "10"])
        .await;
    assert_eq!(ok["ok"], 10, "{ok}");
    for _ in 0..3 {
        let (status, _) = lab.curl(&client, "GET", "http://nowhere/").await;
        assert_eq!(status, "503");
    }

    // Traced at 100 % by the control plane's provider: a client and a server span per call
    // to web, the client's span alone for the calls that found no endpoint.
    let traces = eventually("13 traces from client", Duration::from_secs(15), || async {
        let traces = lab.traces_from("client.shop").await;
        (traces.len() == 13).then_some(traces)
    })
    .await;
    let spans = |t: &Value| t["spans"].as_array().map_or(0, Vec::len);
    assert_eq!(traces.iter().filter(|t| spans(t) == 2).count(), 10);

    // Logged only when the filter holds: the three 503s, not the ten 200s.
    let failed = eventually("three logged 503s", Duration::from_secs(10), || async {
        let lines = access_lines(&lab, &client);
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    assert_eq!(failed.len(), 3, "{failed:#?}");
    for line in &failed {
        assert_eq!(line["response_code"], 503, "{line}");
        assert_eq!(line["response_flags"], "UH", "{line}");
    }
    assert!(access_lines(&lab, &web).is_empty(), "web logged its 200s");

    // The edit: no new traces sampled, and web's inbound side logs every request.
    let status = lab.proxy_status().await;
    let before = [&client, &web].map(|p| acked_telemetry(&status, &p.name));
    lab.write_manifest("telemetry.yaml", TRACE_NONE_WEB_LOGS_ALL);
    eventually(
        "both sidecars acknowledging",
        Duration::from_secs(10),
        || async {
            let status = lab.proxy_status().await;
            let now = [&client, &web].map(|p| acked_telemetry(&status, &p.name));
            (now.iter().all(Option::is_some) && now[0] != before[0] && now[1] != before[1])
                .then_some(())
        },
    )
    .await;
    let recorded = |metrics: &mesh_test_support::prometheus::Metrics| {
        metrics.sum("mesh_trace_spans_total", &[("outcome", "recorded")])
    };
    let spans_before = recorded(&lab.metrics(&client).await);
    let ok = lab
        .call(&client, &["call", "http://web/", "--count", "10"])
        .await;
    assert_eq!(ok["ok"], 10, "{ok}");
    let logged = eventually(
        "web logging its requests",
        Duration::from_secs(10),
        || async {
            let lines = access_lines(&lab, &web);
            (lines.len() >= 10).then_some(lines)
        },
    )
    .await;
    assert_eq!(logged.len(), 10);
    assert!(
        logged
            .iter()
            .all(|l| l["response_code"] == 200 && l["direction"] == "inbound")
    );
    assert_eq!(recorded(&lab.metrics(&client).await), spans_before);
    assert_eq!(
        access_lines(&lab, &client).len(),
        3,
        "the client's filter still holds"
    );
    lab.stop().await;
}
