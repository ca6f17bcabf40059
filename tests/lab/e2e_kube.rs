//! End to end on the lab without the mesh: Services work as with kube-proxy in iptables mode,
//! by DNS name and by NodePort, on one node and across nodes.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use support::{TestLab, counts, require_root};

const APPS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: apps }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo, namespace: apps }
spec:
  replicas: 3
  selector: { matchLabels: { app: echo } }
  template:
    metadata: { labels: { app: echo, version: v1 } }
    spec:
      containers:
      - name: echo
        image: mesh-workload
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        ports: [{ name: http, containerPort: 8080 }]
        readinessProbe: { httpGet: { path: /ready, port: http } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: apps }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-np, namespace: apps }
spec:
  type: NodePort
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-headless, namespace: apps }
spec:
  clusterIP: None
  selector: { app: echo }
  ports: [{ name: http, port: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: sticky, namespace: apps }
spec:
  selector: { app: echo }
  sessionAffinity: ClientIP
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: client-1, namespace: apps }
spec:
  nodeName: node1
  containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: v1
kind: Pod
metadata: { name: client-2, namespace: apps }
spec:
  nodeName: node2
  containers: [{ name: sleep, command: [sleep, infinity] }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_answer_by_dns_name_and_node_port_on_and_across_nodes() {
    if !require_root("services_answer_by_dns_name_and_node_port_on_and_across_nodes") {
        return;
    }
    let lab = TestLab::start("e2ek1", APPS).await;
    let echo_nodes: std::collections::BTreeSet<String> = lab
        .pods("apps", "echo-")
        .into_iter()
        .map(|p| p.node)
        .collect();
    assert_eq!(
        echo_nodes.len(),
        2,
        "endpoints on both nodes, so calls cross nodes"
    );
    let echo_ips: std::collections::BTreeSet<String> = lab
        .pods("apps", "echo-")
        .into_iter()
        .map(|p| p.ip.to_string())
        .collect();
    for client in ["client-1", "client-2"] {
        let pod = lab.pod("apps", client);
        // A headless Service resolves to its ready pods' IPs.
        let hosts = lab
            .exec(&pod, &["getent", "ahostsv4", "echo-headless"])
            .await;
        let resolved: std::collections::BTreeSet<String> = hosts
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        assert_eq!(resolved, echo_ips, "{client}: echo-headless → {hosts}");
        for url in [
            "http://echo/",
            "http://echo.apps/",
            "http://echo.apps.svc.cluster.local/",
            "http://172.18.0.2:30080/",
            "http://172.18.0.3:30080/",
        ] {
            let summary = lab
                .call(
                    &pod,
                    &["call", url, "--count", "30", "--new-connection-each"],
                )
                .await;
            assert_eq!(summary["ok"], 30, "{client} → {url}: {summary}");
            assert_eq!(
                counts(&summary, "pods").len(),
                3,
                "{client} → {url} reached every endpoint: {summary}"
            );
        }
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_spread_evenly_and_client_ip_affinity_pins() {
    if !require_root("new_connections_spread_evenly_and_client_ip_affinity_pins") {
        return;
    }
    let lab = TestLab::start("e2ek2", APPS).await;
    let client = lab.pod("apps", "client-1");
    let summary = lab
        .call(
            &client,
            &[
                "call",
                "http://echo/",
                "--count",
                "3000",
                "--concurrency",
                "4",
                "--new-connection-each",
            ],
        )
        .await;
    assert_eq!(summary["ok"], 3000, "{summary}");
    let pods = counts(&summary, "pods");
    assert_eq!(pods.len(), 3, "{summary}");
    for (pod, count) in &pods {
        let share = *count as f64 / 3000.0;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.05,
            "{pod} got {:.1}% of new connections, not a third ± 5 points: {summary}",
            share * 100.0
        );
    }
    let sticky = lab
        .call(
            &client,
            &[
                "call",
                "http://sticky/",
                "--count",
                "100",
                "--new-connection-each",
            ],
        )
        .await;
    assert_eq!(sticky["ok"], 100, "{sticky}");
    assert_eq!(
        counts(&sticky, "pods").len(),
        1,
        "ClientIP affinity pins one endpoint: {sticky}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_readiness_as_pods_stall_and_recover() {
    if !require_root("endpoints_follow_readiness_as_pods_stall_and_recover") {
        return;
    }
    let lab = TestLab::start("e2ek3", APPS).await;
    let client = lab.pod("apps", "client-1");
    let victim = lab.pod("apps", "echo-");
    let key = victim.key();
    let pid = lab.lab.state().pods[&key].containers["echo"]
        .pid
        .expect("running");
    let signal = |signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .expect("signal the app")
    };
    // A stalled app fails its HTTP readiness probe: it leaves the Service's endpoints.
    signal(nix::sys::signal::Signal::SIGSTOP);
    let gone = lab
        .lab
        .wait_until(|s| !s.pods[&key].ready, Duration::from_secs(10))
        .await;
    assert!(gone, "{key} never became unready");
    let summary = lab
        .call(
            &client,
            &[
                "call",
                "http://echo/",
                "--count",
                "300",
                "--new-connection-each",
            ],
        )
        .await;
    assert_eq!(
        summary["ok"], 300,
        "no call reaches the stalled pod: {summary}"
    );
    assert!(
        !counts(&summary, "pods").contains_key(&victim.name),
        "{summary}"
    );
    // Once it answers again it is back.
    signal(nix::sys::signal::Signal::SIGCONT);
    let back = lab
        .lab
        .wait_until(|s| s.pods[&key].ready, Duration::from_secs(10))
        .await;
    assert!(back, "{key} never became ready again");
    let summary = lab
        .call(
            &client,
            &[
                "call",
                "http://echo/",
                "--count",
                "300",
                "--new-connection-each",
            ],
        )
        .await;
    assert_eq!(counts(&summary, "pods").len(), 3, "{summary}");
    lab.stop().await;
}
