//! End to end on the lab: AuthorizationPolicy enforced by the server's sidecar. A service
//! account may GET, a POST to /admin gets `403 RBAC: access denied`, a namespace is denied even
//! where an ALLOW rule names its account, and an ALLOW rule written for HTTP opens nothing on a
//! TCP port (the connection is closed).

#[path = "e2e/support.rs"]
mod support;

use support::{TestLab, require_root};

const AUTHZ: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: other, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      serviceAccountName: web
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
    metadata: { labels: { app: sleep } }
    spec:
      serviceAccountName: sleep
      containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: sleep, namespace: other }
spec:
  selector: { matchLabels: { app: sleep } }
  template:
    metadata: { labels: { app: sleep } }
    spec:
      serviceAccountName: sleep
      containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-get, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/shop/sa/sleep", "cluster.local/ns/other/sa/sleep"] } }]
    to: [{ operation: { methods: [GET], ports: ["8080"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-other, namespace: shop }
spec:
  action: DENY
  rules:
  - from: [{ source: { namespaces: [other] } }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_policies_allow_deny_and_close_tcp() {
    if !require_root("authorization_policies_allow_deny_and_close_tcp") {
        return;
    }
    let lab = TestLab::start("e2eid3", AUTHZ).await;
    let sleep = lab.pod("shop", "sleep-");
    let other = lab.pod("other", "sleep-");
    let (status, _) = lab.curl(&sleep, "GET", "http://web/").await;
    assert_eq!(status, "200", "sa sleep may GET");
    let (status, body) = lab.curl(&sleep, "POST", "http://web/admin").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("403", "RBAC: access denied")
    );
    let (status, body) = lab.curl(&other, "GET", "http://web.shop/").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("403", "RBAC: access denied"),
        "namespace other is denied although the ALLOW rule names its account"
    );
    // The TCP echo port: the ALLOW rule is about HTTP, so it opens nothing there.
    let summary = lab
        .call(
            &sleep,
            &[
                "call-tcp",
                "web:9000",
                "--allow-failures",
                "--timeout-ms",
                "3000",
            ],
        )
        .await;
    assert_eq!(summary["ok"], 0, "{summary}");
    let web = lab.pod("shop", "web-");
    let metrics = lab.metrics(&web).await;
    assert_eq!(
        metrics.sum("mesh_authorization_denied_total", &[("protocol", "http")]),
        2.0
    );
    assert!(metrics.sum("mesh_authorization_denied_total", &[("protocol", "tcp")]) >= 1.0);
    lab.stop().await;
}
