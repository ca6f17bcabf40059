//! End to end with the control plane in the lab: a VirtualService's weights give the measured
//! split, an edit under load reaches the sidecars within 2 s without a failed request, scaling
//! a Deployment reaches the meshed clients, and killing the control plane leaves traffic on the
//! last config until `mesh proxy-status` shows every proxy SYNCED with its restarted successor.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use mesh_lab::cluster::PodPlan;
use serde_json::Value;
use support::{TestLab, counts, eventually, require_root};
use tokio::time::Instant;

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
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
metadata: { name: web-v1, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web, version: v1 } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec: &web
      containers:
      - name: web
        image: mesh-workload
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        - { name: POD_VERSION, valueFrom: { fieldRef: { fieldPath: "metadata.labels['version']" } } }
        ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web-v2, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: web, version: v2 } }
  template:
    metadata: { labels: { app: web, version: v2 } }
    spec:
      containers:
      - name: web
        image: mesh-workload
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        - { name: POD_VERSION, valueFrom: { fieldRef: { fieldPath: "metadata.labels['version']" } } }
        ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sleep, namespace: shop }
spec:
  selector: { matchLabels: { app: sleep } }
  template:
    metadata: { labels: { app: sleep } }
    spec:
      containers: [{ name: sleep, command: [sleep, infinity] }]
"#;

const V1: &str = "outbound|80|v1|web.shop.svc.cluster.local";
const V2: &str = "outbound|80|v2|web.shop.svc.cluster.local";

/// The DestinationRule (subsets by version) and a VirtualService with these weights.
fn routing(v1: u32, v2: u32) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: web, namespace: shop }}
spec:
  host: web
  subsets:
  - {{ name: v1, labels: {{ version: v1 }} }}
  - {{ name: v2, labels: {{ version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: web, namespace: shop }}
spec:
  hosts: [web]
  http:
  - route:
    - {{ destination: {{ host: web, subset: v1 }}, weight: {v1} }}
    - {{ destination: {{ host: web, subset: v2 }}, weight: {v2} }}
"#
    )
}

/// Starts the shop with a 90/10 split; returns once the client's sidecar knows every web pod.
async fn start(name: &str) -> (TestLab, PodPlan) {
    let lab = TestLab::start_files(
        name,
        &[("shop.yaml", SHOP), ("routing.yaml", &routing(90, 10))],
    )
    .await;
    let sleep = lab.pod("shop", "sleep-");
    wait_for_endpoints(&lab, &sleep, V1, 2).await;
    wait_for_endpoints(&lab, &sleep, V2, 1).await;
    (lab, sleep)
}

async fn wait_for_endpoints(lab: &TestLab, pod: &PodPlan, cluster: &str, count: usize) {
    eventually(
        &format!("{} knowing {count} endpoints of {cluster}", pod.name),
        Duration::from_secs(20),
        || async { (lab.sidecar_endpoints(pod, cluster).await.len() == count).then_some(()) },
    )
    .await;
}

/// Sends `count` calls to web on two connections; returns the summary and when it ended.
async fn load(lab: &TestLab, client: &PodPlan, count: u32) -> (Value, Instant) {
    let count = count.to_string();
    let args = [
        "call",
        "http://web/",
        "--count",
        &count,
        "--concurrency",
        "2",
    ];
    let summary = lab.call(client, &args).await;
    (summary, Instant::now())
}

/// Requests the client's sidecar has forwarded so far.
async fn outbound_requests(lab: &TestLab, client: &PodPlan) -> f64 {
    lab.metrics(client)
        .await
        .sum("mesh_requests_total", &[("direction", "outbound")])
}

/// Waits until the client's sidecar forwards more than `before` requests: the load is under way.
async fn until_load_flows(lab: &TestLab, client: &PodPlan, before: f64) {
    eventually(
        "the load flowing through the client's sidecar",
        Duration::from_secs(10),
        || async { (outbound_requests(lab, client).await > before).then_some(()) },
    )
    .await;
}

/// The share of v2 answers, in percent.
fn v2_percent(summary: &Value) -> f64 {
    let versions = counts(summary, "versions");
    let total: u64 = versions.values().sum();
    100.0 * versions.get("v2").copied().unwrap_or(0) as f64 / total.max(1) as f64
}

/// The client proxy's acknowledged route version, once it runs what was last sent.
fn acked_routes(status: &Value, pod: &str) -> Option<String> {
    let proxy = status["proxies"]
        .as_array()?
        .iter()
        .find(|p| p["pod"] == pod)?;
    let routes = proxy["types"]
        .as_array()?
        .iter()
        .find(|t| t["type"] == "RDS")?;
    (routes["state"] == "SYNCED").then(|| routes["acked"].as_str().map(str::to_owned))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_traffic_and_an_edit_under_load_applies_within_two_seconds() {
    if !require_root("weights_split_traffic_and_an_edit_under_load_applies_within_two_seconds") {
        return;
    }
    let (lab, sleep) = start("e2ecp1").await;
    let split = lab
        .call(&sleep, &["call", "http://web/", "--count", "2000"])
        .await;
    assert_eq!(split["ok"], 2000, "{split}");
    let v2 = v2_percent(&split);
    assert!(
        (v2 - 10.0).abs() <= 3.0,
        "90/10 measured {v2:.1}% v2: {split}"
    );

    // Continuous load across the edit: not one request may fail.
    let before =
        acked_routes(&lab.proxy_status().await, &sleep.name).expect("the client is synced");
    let sent_before = outbound_requests(&lab, &sleep).await;
    let load = load(&lab, &sleep, 8000);
    let edit = async {
        until_load_flows(&lab, &sleep, sent_before).await;
        let edited = Instant::now();
        lab.write_manifest("routing.yaml", &routing(50, 50));
        let applied = eventually(
            "the client's sidecar acknowledging the new routes",
            Duration::from_secs(10),
            || async {
                let acked = acked_routes(&lab.proxy_status().await, &sleep.name)?;
                (acked != before).then(Instant::now)
            },
        )
        .await;
        let took = applied - edited;
        eprintln!("edit to acknowledged routes: {took:?}");
        assert!(took < Duration::from_secs(2), "the edit took {took:?}");
        let after = lab
            .call(&sleep, &["call", "http://web/", "--count", "2000"])
            .await;
        (after, applied)
    };
    let ((during, load_ended), (after, applied)) = tokio::join!(load, edit);
    assert_eq!(
        during["failed"], 0,
        "no request failed under the edit: {during}"
    );
    assert!(
        load_ended > applied,
        "the load ran on after the new routes were applied"
    );
    assert_eq!(after["ok"], 2000, "{after}");
    let v2 = v2_percent(&after);
    assert!(
        (v2 - 50.0).abs() <= 3.0,
        "50/50 measured {v2:.1}% v2: {after}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_receives_traffic_through_the_meshed_clients() {
    if !require_root("a_new_replica_receives_traffic_through_the_meshed_clients") {
        return;
    }
    let (lab, sleep) = start("e2ecp2").await;
    let change = lab.lab.scale("shop", "web-v1", 3).await.unwrap();
    assert_eq!(change.added.len(), 1, "{change:?}");
    assert!(change.removed.is_empty());
    let new = change.added[0].clone();
    assert!(new.meshed(), "the new pod gets a sidecar");
    wait_for_endpoints(&lab, &sleep, V1, 3).await;
    let summary = lab
        .call(&sleep, &["call", "http://web/", "--count", "600"])
        .await;
    assert_eq!(summary["ok"], 600, "{summary}");
    let pods = counts(&summary, "pods");
    assert!(
        pods.get(&new.name).copied().unwrap_or(0) > 0,
        "{} answered: {summary}",
        new.name
    );
    // Its own sidecar received those calls (inbound), so it is meshed end to end.
    let inbound = lab.metrics(&new).await.sum(
        "mesh_requests_total",
        &[("direction", "inbound"), ("response_class", "2xx")],
    );
    assert!(inbound > 0.0, "the new pod's sidecar saw the calls");

    // And back to 2 under load: the surplus pod leaves the endpoints before it stops, so no
    // request fails, and its namespace is gone.
    let sent_before = outbound_requests(&lab, &sleep).await;
    let ((during, load_ended), (change, scaled)) = tokio::join!(load(&lab, &sleep, 4000), async {
        until_load_flows(&lab, &sleep, sent_before).await;
        let change = lab.lab.scale("shop", "web-v1", 2).await.unwrap();
        (change, Instant::now())
    });
    assert!(
        load_ended > scaled,
        "the load ran on until the surplus pod was gone"
    );
    assert_eq!(
        during["failed"], 0,
        "scaling down failed no request: {during}"
    );
    assert_eq!(change.removed.len(), 1, "{change:?}");
    let gone = &change.removed[0];
    wait_for_endpoints(&lab, &sleep, V1, 2).await;
    assert!(!mesh_lab::netns::exists(&lab.lab.names().pod(gone)));
    let summary = lab
        .call(&sleep, &["call", "http://web/", "--count", "200"])
        .await;
    assert_eq!(summary["ok"], 200, "{summary}");
    assert!(!counts(&summary, "pods").contains_key(&gone.name));
    let error = lab.lab.scale("shop", "nope", 1).await.unwrap_err();
    assert!(
        error.to_string().contains("no Deployment shop/nope"),
        "{error}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_a_killed_control_plane_and_every_proxy_resyncs() {
    if !require_root("traffic_survives_a_killed_control_plane_and_every_proxy_resyncs") {
        return;
    }
    let (lab, sleep) = start("e2ecp3").await;
    let control_plane = lab.pod("mesh-system", "mesh-control-plane-");
    let pid = lab.lab.state().pods[&control_plane.key()].containers["discovery"]
        .pid
        .expect("the control plane runs");
    let restarted_at = std::cell::Cell::new(None);
    let sent_before = outbound_requests(&lab, &sleep).await;
    let kill_and_resync = async {
        until_load_flows(&lab, &sleep, sent_before).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // The lab restarts it as kubelet would; every sidecar reconnects and is SYNCED again.
        let meshed: Vec<String> = lab
            .lab
            .state()
            .plan
            .pods
            .iter()
            .filter(|p| p.meshed())
            .map(|p| p.name.clone())
            .collect();
        eventually(
            "every proxy SYNCED with the restarted control plane",
            Duration::from_secs(30),
            || async {
                let state = lab.lab.state();
                let restarted = &state.pods[&control_plane.key()].containers["discovery"];
                if restarted.pid.is_none_or(|p| p == pid) {
                    return None;
                }
                if restarted_at.get().is_none() {
                    restarted_at.set(Some(Instant::now()));
                }
                // The restarted control plane answers once its monitoring port is bound.
                let status = lab.try_proxy_status().await.ok()?;
                let proxies = status["proxies"].as_array()?.clone();
                let synced = |pod: &String| {
                    proxies.iter().any(|p| {
                        p["pod"] == pod.as_str()
                            && p["types"].as_array().is_some_and(|types| {
                                types.len() == 5 && types.iter().all(|t| t["state"] == "SYNCED")
                            })
                    })
                };
                meshed.iter().all(synced).then_some(())
            },
        )
        .await;
    };
    let ((during, load_ended), ()) = tokio::join!(load(&lab, &sleep, 4000), kill_and_resync);
    let restarted_at = restarted_at.get().expect("the control plane came back");
    assert!(
        load_ended > restarted_at,
        "the load ran on until a new control plane process was up"
    );
    assert_eq!(
        during["failed"], 0,
        "traffic went on without the control plane: {during}"
    );
    let v2 = v2_percent(&during);
    assert!(
        (v2 - 10.0).abs() <= 3.0,
        "on the last config, 90/10: {v2:.1}% v2"
    );
    assert!(
        lab.lab.state().pods[&control_plane.key()].containers["discovery"].restarts >= 1,
        "the control plane was restarted"
    );
    lab.stop().await;
}
