//! End to end on the lab: the client's sidecar retries and times out as the routes say.
//! A VirtualService retry policy hides a replica that fails every request; the default
//! policy hides a replica whose app refuses connections (its sidecar says so); a route
//! timeout answers 504 on time, and per-try timeouts add up as documented. The Gateway API
//! cases follow the conformance suite's mirror, timeout and retry tests.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use support::{TestLab, counts, require_root};

/// A Deployment `name` in shop labelled `app: {app}`, `role: {name}`, its app serving on
/// `port` (where readiness is checked: the Service still targets 8080), with the workload's
/// fault settings in `env`.
fn deployment(name: &str, app: &str, port: u16, env: &str) -> String {
    format!(
        r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: {name}, namespace: shop }}
spec:
  selector: {{ matchLabels: {{ app: {app}, role: {name} }} }}
  template:
    metadata: {{ labels: {{ app: {app}, role: {name} }} }}
    spec:
      containers:
      - name: app
        image: mesh-workload
        args: [--addr, "0.0.0.0:{port}"]
        env:
        - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
{env}        ports: [{{ name: http, containerPort: 8080 }}]
        readinessProbe: {{ tcpSocket: {{ port: {port} }} }}
"#
    )
}

/// Service `app` in shop: port 80 to 8080 of the pods labelled `app: {app}`.
fn service(app: &str) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: Service
metadata: {{ name: {app}, namespace: shop }}
spec:
  selector: {{ app: {app} }}
  ports: [{{ name: http, port: 80, targetPort: 8080 }}]
"#
    )
}

fn manifests() -> String {
    let mut text = String::from(
        r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: flaky, namespace: shop }
spec:
  hosts: [flaky]
  http:
  - route: [{ destination: { host: flaky } }]
    retries: { attempts: 3, retryOn: 5xx }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: flaky, namespace: shop }
spec:
  host: flaky
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: spotty, namespace: shop }
spec:
  host: spotty
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: slow, namespace: shop }
spec:
  hosts: [slow]
  http:
  - match: [{ uri: { prefix: /tries } }]
    route: [{ destination: { host: slow } }]
    retries: { attempts: 2, perTryTimeout: 100ms, retryOn: 5xx }
  - route: [{ destination: { host: slow } }]
    timeout: 200ms
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: narrow, namespace: shop }
spec:
  host: narrow
  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }
"#,
    );
    let fail_all = "        - { name: WORKLOAD_FAIL_PERCENT, value: \"100\" }\n";
    let delay_all = "        - { name: WORKLOAD_DELAY_PERCENT, value: \"100\" }\n        - { name: WORKLOAD_DELAY_MS, value: \"1000\" }\n";
    text += &deployment("flaky-ok", "flaky", 8080, "");
    text += &deployment("flaky-bad", "flaky", 8080, fail_all);
    text += &deployment("spotty-a", "spotty", 8080, "");
    text += &deployment("spotty-b", "spotty", 8080, "");
    // Its app listens elsewhere: its sidecar cannot connect and says so.
    text += &deployment("spotty-closed", "spotty", 8081, "");
    text += &deployment("slow", "slow", 8080, delay_all);
    let delay_some = "        - { name: WORKLOAD_DELAY_PERCENT, value: \"100\" }\n        - { name: WORKLOAD_DELAY_MS, value: \"1500\" }\n";
    text += &deployment("narrow", "narrow", 8080, delay_some);
    for app in ["flaky", "spotty", "slow", "narrow"] {
        text += &service(app);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_failing_replicas_and_timeouts_answer_504_on_time() {
    if !require_root("retries_hide_failing_replicas_and_timeouts_answer_504_on_time") {
        return;
    }
    let lab = TestLab::start("e2eres1", &manifests()).await;
    let sleep = lab.pod("shop", "sleep-");

    // 1. retries { attempts: 3, retryOn: 5xx }: half the first tries fail, none of the answers.
    let summary = lab
        .call(&sleep, &["call", "http://flaky/", "--count", "200"])
        .await;
    assert_eq!(summary["ok"], 200, "{summary}");
    let pods = counts(&summary, "pods");
    assert!(
        pods.keys().all(|p| p.starts_with("flaky-ok-")),
        "every answer came from the healthy replica: {pods:?}"
    );
    let metrics = lab.metrics(&sleep).await;
    let retried = metrics.sum("mesh_retries_total", &[("outcome", "sent")]);
    // Random picks send about half the first tries to the failing replica; the budget
    // (20 % of requests plus 10 a second) allows them all at this rate.
    assert!((60.0..=140.0).contains(&retried), "{retried} retries");
    let bad = lab.pod("shop", "flaky-bad-");
    let bad_saw = lab.metrics(&bad).await.sum(
        "mesh_requests_total",
        &[("direction", "inbound"), ("response_class", "5xx")],
    );
    assert!(
        bad_saw <= retried,
        "the failing replica saw {bad_saw}, at most one per retry ({retried})"
    );

    // 2. No policy: the default retries a replica whose sidecar cannot reach its app.
    let summary = lab
        .call(&sleep, &["call", "http://spotty/", "--count", "150"])
        .await;
    assert_eq!(summary["ok"], 150, "{summary}");
    assert!(
        !counts(&summary, "pods")
            .keys()
            .any(|p| p.starts_with("spotty-closed-")),
        "{summary}"
    );

    // 3. A 200 ms route timeout against a 1 s backend: 504 after about 200 ms.
    let (status, took) = timed_get(&lab, &sleep, "http://slow/").await;
    assert_eq!(status, "504");
    assert!(
        (Duration::from_millis(190)..Duration::from_millis(300)).contains(&took),
        "{took:?}"
    );
    // Per-try timeouts: three tries of 100 ms plus backoffs of at most 25 and 50 ms.
    let (status, took) = timed_get(&lab, &sleep, "http://slow/tries").await;
    assert_eq!(status, "504");
    assert!(
        (Duration::from_millis(290)..Duration::from_millis(480)).contains(&took),
        "{took:?}"
    );

    // 5. One connection and one waiting request: of 20 at once, 2 are served, 18 overflow at
    // once with 503 and x-mesh-overloaded; none hangs.
    let args = [
        "call",
        "http://narrow/",
        "--count",
        "20",
        "--concurrency",
        "20",
        "--timeout-ms",
        "6000",
        "--allow-failures",
    ];
    let summary = lab.call(&sleep, &args).await;
    assert_eq!(
        (summary["ok"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(18)),
        "{summary}"
    );
    assert_eq!(summary["failures"]["503"], 18, "{summary}");
    let metrics = lab.metrics(&sleep).await;
    assert_eq!(
        metrics.sum("mesh_overflow_total", &[("limit", "max_pending_requests")]),
        18.0
    );
    let (status, body) = lab.curl(&sleep, "GET", "http://narrow/").await;
    assert_eq!(
        status, "200",
        "the limits let requests through again: {body}"
    );
    lab.stop().await;
}

/// `curl`'s status and total time for one GET from the pod.
async fn timed_get(
    lab: &TestLab,
    pod: &mesh_lab::cluster::PodPlan,
    url: &str,
) -> (String, Duration) {
    let out = lab
        .exec(
            pod,
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                "-w",
                "%{http_code} %{time_total}",
                url,
            ],
        )
        .await;
    let (status, seconds) = out.trim().split_once(' ').expect("status and time");
    let seconds: f64 = seconds.parse().expect("seconds");
    (status.to_owned(), Duration::from_secs_f64(seconds))
}

fn outlier_manifests() -> String {
    let mut text = String::from(
        r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
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
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: shaky, namespace: shop }
spec:
  host: shaky
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 34 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: wobbly, namespace: shop }
spec:
  host: wobbly
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 34 }
"#,
    );
    let fail_all = "        - { name: WORKLOAD_FAIL_PERCENT, value: \"100\" }\n";
    text += &deployment("shaky-ok1", "shaky", 8080, "");
    text += &deployment("shaky-ok2", "shaky", 8080, "");
    text += &deployment("shaky-bad", "shaky", 8080, fail_all);
    text += &deployment("wobbly-ok", "wobbly", 8080, "");
    text += &deployment("wobbly-bad1", "wobbly", 8080, fail_all);
    text += &deployment("wobbly-bad2", "wobbly", 8080, fail_all);
    text += &service("shaky");
    text += &service("wobbly");
    text
}

/// The endpoints of `cluster` (by name prefix) that the pod's sidecar has ejected.
async fn ejected(lab: &TestLab, pod: &mesh_lab::cluster::PodPlan, cluster: &str) -> Vec<String> {
    let clusters = lab.sidecar_clusters(pod).await;
    clusters["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.contains(cluster)))
        .flat_map(|c| c["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| !e["ejected"].is_null())
        .filter_map(|e| e["address"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_replica_and_lets_it_back() {
    if !require_root("outlier_detection_ejects_a_failing_replica_and_lets_it_back") {
        return;
    }
    let lab = TestLab::start("e2eres2", &outlier_manifests()).await;
    let sleep = lab.pod("shop", "sleep-");
    let bad = lab.pod("shop", "shaky-bad-");
    let bad_saw = |metrics: mesh_test_support::prometheus::Metrics| {
        metrics.sum("mesh_requests_total", &[("direction", "inbound")])
    };

    // Round robin sends every third request to the failing replica until its fifth 503.
    let summary = lab
        .call(
            &sleep,
            &[
                "call",
                "http://shaky/",
                "--count",
                "150",
                "--allow-failures",
            ],
        )
        .await;
    assert_eq!(summary["failed"], 5, "{summary}");
    assert_eq!(bad_saw(lab.metrics(&bad).await), 5.0);
    let ejected_now = ejected(&lab, &sleep, "shaky").await;
    assert_eq!(ejected_now, [format!("{}:8080", bad.ip)]);
    let (code, text) = lab.pod_status(&sleep).await;
    assert!(
        text.contains("Ejected endpoints") && text.contains("consecutive_5xx"),
        "exit {code}: {text}"
    );
    let metrics = lab.metrics(&sleep).await;
    assert_eq!(
        metrics.sum(
            "mesh_outlier_ejections_total",
            &[("reason", "consecutive_5xx")]
        ),
        1.0
    );

    // After its 2 s ejection it gets requests again (and is ejected again after five).
    support::eventually("the ejection ends", Duration::from_secs(10), || async {
        ejected(&lab, &sleep, "shaky")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let summary = lab
        .call(
            &sleep,
            &["call", "http://shaky/", "--count", "60", "--allow-failures"],
        )
        .await;
    assert_eq!(summary["failed"], 5, "{summary}");
    assert_eq!(bad_saw(lab.metrics(&bad).await), 10.0);

    // Two of three failing: maxEjectionPercent 34 lets only one out at a time.
    let summary = lab
        .call(
            &sleep,
            &[
                "call",
                "http://wobbly/",
                "--count",
                "150",
                "--allow-failures",
            ],
        )
        .await;
    assert_eq!(ejected(&lab, &sleep, "wobbly").await.len(), 1, "{summary}");
    let ok = summary["ok"].as_u64().unwrap();
    assert!(
        (60..=85).contains(&ok),
        "about half of the rest fail: {summary}"
    );
    lab.stop().await;
}

fn gateway_api_manifests() -> String {
    let mut text = String::from(
        r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
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
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /mirror-all } }]
    backendRefs: [{ name: echo, port: 80 }]
    filters:
    - { type: RequestMirror, requestMirror: { backendRef: { name: mirror-a, port: 80 } } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: mirror-b, port: 80 } } }
  - matches: [{ path: { type: PathPrefix, value: /mirror-some } }]
    backendRefs: [{ name: echo, port: 80 }]
    filters:
    - { type: RequestMirror, requestMirror: { backendRef: { name: mirror-c, port: 80 }, percent: 30 } }
  - backendRefs: [{ name: echo, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: slow, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: slow, port: 80 }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /request } }]
    backendRefs: [{ name: slow, port: 80 }]
    timeouts: { request: 500ms }
  - matches: [{ path: { type: PathPrefix, value: /backend } }]
    backendRefs: [{ name: slow, port: 80 }]
    timeouts: { request: 2s, backendRequest: 300ms }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: flaky, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: flaky, port: 80 }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /retry/code-500-attempts-3 } }]
    retry: { codes: [500], attempts: 3 }
    backendRefs: [{ name: flaky, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /retry/code-all-attempts-2 } }]
    retry: { codes: [500, 502, 503, 504], attempts: 2 }
    backendRefs: [{ name: flaky, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /retry/no-status-code-attempts-3 } }]
    retry: { attempts: 3 }
    backendRefs: [{ name: flaky, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /retry/backend-request-timeout-200ms } }]
    retry: { attempts: 2 }
    timeouts: { backendRequest: 200ms }
    backendRefs: [{ name: flaky, port: 80 }]
  - matches: [{ path: { type: PathPrefix, value: /retry/request-timeout-200ms } }]
    retry: { codes: [500], attempts: 5 }
    timeouts: { backendRequest: 200ms, request: 400ms }
    backendRefs: [{ name: flaky, port: 80 }]
"#,
    );
    let delay_all = "        - { name: WORKLOAD_DELAY_PERCENT, value: \"100\" }\n        - { name: WORKLOAD_DELAY_MS, value: \"1000\" }\n";
    for app in ["echo", "mirror-a", "mirror-b", "mirror-c", "flaky"] {
        text += &deployment(app, app, 8080, "");
        text += &service(app);
    }
    text += &deployment("slow", "slow", 8080, delay_all);
    text += &service("slow");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_mirrors_timeouts_and_retries_as_the_conformance_cases_expect() {
    if !require_root("gateway_api_mirrors_timeouts_and_retries_as_the_conformance_cases_expect") {
        return;
    }
    let lab = TestLab::start("e2eres3", &gateway_api_manifests()).await;
    let sleep = lab.pod("shop", "sleep-");
    let inbound = |metrics: mesh_test_support::prometheus::Metrics| {
        metrics.sum("mesh_requests_total", &[("direction", "inbound")])
    };

    // HTTPRouteRequestMultipleMirrors: both mirrors get every request; the client gets the
    // primary's answers only.
    let summary = lab
        .call(
            &sleep,
            &["call", "http://echo/mirror-all", "--count", "100"],
        )
        .await;
    assert_eq!(summary["ok"], 100, "{summary}");
    assert!(
        counts(&summary, "pods")
            .keys()
            .all(|p| p.starts_with("echo-")),
        "{summary}"
    );
    for mirror in ["mirror-a-", "mirror-b-"] {
        let pod = lab.pod("shop", mirror);
        support::eventually("every copy arrives", Duration::from_secs(10), || async {
            (inbound(lab.metrics(&pod).await) == 100.0).then_some(())
        })
        .await;
    }

    // HTTPRouteRequestPercentageMirror: 30 % within ±5 points over 1,000.
    let summary = lab
        .call(
            &sleep,
            &["call", "http://echo/mirror-some", "--count", "1000"],
        )
        .await;
    assert_eq!(summary["ok"], 1000, "{summary}");
    let mirror_c = lab.pod("shop", "mirror-c-");
    let copies = support::eventually("the copies settle", Duration::from_secs(10), || async {
        let first = inbound(lab.metrics(&mirror_c).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = inbound(lab.metrics(&mirror_c).await);
        (first == second).then_some(second)
    })
    .await;
    assert!(
        (250.0..=350.0).contains(&copies),
        "{copies} copies of 1,000"
    );

    // HTTPRouteTimeoutRequest: 504 after the 500 ms request timeout.
    let (status, took) = timed_get(&lab, &sleep, "http://slow/request").await;
    assert_eq!(status, "504");
    assert!(
        (Duration::from_millis(490)..Duration::from_millis(700)).contains(&took),
        "{took:?}"
    );
    // HTTPRouteTimeoutBackendRequest: each try is bounded by 300 ms, and a timed-out try is
    // not retried by the default conditions.
    let (status, took) = timed_get(&lab, &sleep, "http://slow/backend").await;
    assert_eq!(status, "504");
    assert!(
        (Duration::from_millis(290)..Duration::from_millis(500)).contains(&took),
        "{took:?}"
    );

    // HTTPRouteRetry, HTTPRouteRetryConnectionError and HTTPRouteRetryWithTimeouts: the
    // workload fails the first `succeedAfter` tries of each uuid (with `responseCode`, or by
    // closing the connection), each after `delayRetry`.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "code-500-attempts-3",
            "responseCode=500&succeedAfter=2",
            &["200"],
        ),
        (
            "code-500-attempts-3",
            "responseCode=500&succeedAfter=4",
            &["500"],
        ),
        (
            "code-500-attempts-3",
            "responseCode=503&succeedAfter=2",
            &["503"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=500&succeedAfter=1",
            &["200"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=500&succeedAfter=3",
            &["500"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=502&succeedAfter=1",
            &["200"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=502&succeedAfter=3",
            &["502"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=503&succeedAfter=1",
            &["200"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=503&succeedAfter=3",
            &["503"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=504&succeedAfter=1",
            &["200"],
        ),
        (
            "code-all-attempts-2",
            "responseCode=504&succeedAfter=3",
            &["504"],
        ),
        ("no-status-code-attempts-3", "succeedAfter=2", &["200"]),
        (
            "no-status-code-attempts-3",
            "succeedAfter=4",
            &["500", "503"],
        ),
        (
            "backend-request-timeout-200ms",
            "responseCode=500&succeedAfter=2&delayRetry=300ms",
            &["200"],
        ),
        (
            "backend-request-timeout-200ms",
            "responseCode=500&succeedAfter=3&delayRetry=300ms",
            &["504"],
        ),
        (
            "request-timeout-200ms",
            "responseCode=500&succeedAfter=1",
            &["200"],
        ),
        (
            "request-timeout-200ms",
            "responseCode=500&succeedAfter=4&delayRetry=100ms",
            &["504"],
        ),
    ];
    for (i, (path, query, want)) in cases.iter().enumerate() {
        let url = format!("http://flaky/retry/{path}?{query}&uuid=case-{i}");
        let (status, _) = timed_get(&lab, &sleep, &url).await;
        assert!(
            want.contains(&status.as_str()),
            "{url}: {status}, want {want:?}"
        );
    }
    lab.stop().await;
}
