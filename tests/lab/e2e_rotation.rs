//! End to end on the lab: workload certificates are renewed under load without a failed
//! request, and a control plane that stops answering for a minute stops nothing: traffic flows
//! on the certificates in force, and renewal resumes when it is back.

#[path = "e2e/support.rs"]
mod support;

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mesh_lab::{cluster::PodPlan, netns};
use mesh_test_support::http_get;
use support::{TestLab, eventually, require_root};
use tokio::time::{Instant, MissedTickBehavior};

/// A meshed client and a meshed server, whose sidecars ask for certificates of `lifetime`.
fn manifests(lifetime: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{ name: shop, labels: {{ mesh-injection: enabled }} }}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: web, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: web }} }}
  template:
    metadata:
      labels: {{ app: web }}
      annotations: {{ mesh.io/cert-lifetime: "{lifetime}" }}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: mesh-workload
        env:
        - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
        ports: [{{ name: http, containerPort: 8080 }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: web, namespace: shop }}
spec:
  selector: {{ app: web }}
  ports: [{{ name: http, port: 80, targetPort: http }}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: sleep, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: sleep }} }}
  template:
    metadata:
      labels: {{ app: sleep }}
      annotations: {{ mesh.io/cert-lifetime: "{lifetime}" }}
    spec:
      serviceAccountName: sleep
      containers: [{{ name: sleep, command: [sleep, infinity] }}]
"#
    )
}

/// The serial of the certificate a pod's sidecar holds (its admin `/certs`).
async fn serial(lab: &TestLab, pod: &PodPlan) -> Option<String> {
    let netns_name = lab.lab.names().pod(pod);
    let (_, body) = tokio::task::spawn_blocking(move || {
        netns::run_inside(&netns_name, || http_get("127.0.0.1:15000", "/certs"))
            .ok()
            .and_then(Result::ok)
    })
    .await
    .ok()??;
    let certs: serde_json::Value = serde_json::from_str(&body).ok()?;
    certs["serial"].as_str().map(str::to_owned)
}

/// Calls `http://web/` from `client` at `per_second` requests a second for `duration`,
/// counting calls and failures; returns (calls, failures).
async fn load(lab: &TestLab, client: &PodPlan, per_second: u32, duration: Duration) -> (u64, u64) {
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = Instant::now() + duration;
    let count = per_second.to_string();
    while Instant::now() < end {
        tick.tick().await;
        let summary = lab
            .call(
                client,
                &[
                    "call",
                    "http://web/",
                    "--count",
                    &count,
                    "--concurrency",
                    "4",
                ],
            )
            .await;
        calls.fetch_add(summary["total"].as_u64().unwrap_or(0), Ordering::Relaxed);
        failures.fetch_add(
            summary["total"].as_u64().unwrap_or(0) - summary["ok"].as_u64().unwrap_or(0),
            Ordering::Relaxed,
        );
    }
    (
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    if !require_root("certificates_rotate_under_load_without_a_failed_request") {
        return;
    }
    let lab = TestLab::start("e2erot1", &manifests("60s")).await;
    let sleep = lab.pod("shop", "sleep-");
    let web = lab.pod("shop", "web-");
    let serials = std::sync::Mutex::new((BTreeSet::new(), BTreeSet::new()));
    // Samples both sidecars' serials every 2 s while the load runs.
    let watch = async {
        let end = Instant::now() + Duration::from_secs(180);
        let mut sample = tokio::time::interval(Duration::from_secs(2));
        while Instant::now() < end {
            sample.tick().await;
            let (client, server) = (serial(&lab, &sleep).await, serial(&lab, &web).await);
            let mut seen = serials.lock().unwrap();
            seen.0.extend(client);
            seen.1.extend(server);
        }
    };
    let ((calls, failures), ()) =
        tokio::join!(load(&lab, &sleep, 200, Duration::from_secs(180)), watch);
    let (client, server) = serials.into_inner().unwrap();
    assert_eq!(failures, 0, "{failures} of {calls} calls failed");
    assert!(calls >= 30_000, "only {calls} calls in 3 minutes");
    assert!(
        client.len() >= 5,
        "the client renewed {} times",
        client.len() - 1
    );
    assert!(
        server.len() >= 5,
        "the server renewed {} times",
        server.len() - 1
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_while_the_control_plane_is_stopped_and_renewal_resumes() {
    if !require_root("traffic_flows_while_the_control_plane_is_stopped_and_renewal_resumes") {
        return;
    }
    // Renewal falls due 60 s after the certificates are made, while the control plane is stopped.
    let lab = TestLab::start("e2erot2", &manifests("120s")).await;
    let sleep = lab.pod("shop", "sleep-");
    let first = serial(&lab, &sleep).await.expect("a certificate");
    let control_plane = lab.pod("mesh-system", "mesh-control-plane-");
    let pid = lab.lab.state().pods[&control_plane.key()].containers["discovery"]
        .pid
        .expect("the control plane runs");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let (calls, failures) = load(&lab, &sleep, 50, Duration::from_secs(60)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(
        failures, 0,
        "{failures} of {calls} calls failed while the control plane was stopped"
    );
    let failed_renewals = lab
        .metrics(&sleep)
        .await
        .sum("mesh_workload_cert_renewals_total", &[("result", "failed")]);
    assert!(
        failed_renewals >= 1.0,
        "renewal was tried during the outage"
    );
    assert_eq!(serial(&lab, &sleep).await.as_deref(), Some(first.as_str()));
    eventually("renewal resumes", Duration::from_secs(50), || async {
        serial(&lab, &sleep).await.filter(|s| *s != first)
    })
    .await;
    let summary = lab
        .call(&sleep, &["call", "http://web/", "--count", "20"])
        .await;
    assert_eq!(summary["ok"], 20, "{summary}");
    lab.stop().await;
}
