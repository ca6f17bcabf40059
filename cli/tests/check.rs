//! `mesh check` against the fake API server: a healthy mesh passes every check; a missing
//! CRD, a stale caBundle, a control plane not ready, an unreachable webhook, an old Kubernetes,
//! missing permissions and an unreachable API server each fail with a hint and exit 1.

use std::{
    convert::Infallible,
    path::PathBuf,
    process::Output,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use mesh_test_support::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use tokio::{net::TcpListener, process::Command, time::Instant};

const NS: &str = "mesh-system";
const ROOT: &str = "-----BEGIN CERTIFICATE-----\nMIIBmesh-root\n-----END CERTIFICATE-----\n";
const ISTIO_CRDS: &[(&str, &str, &str)] = &[
    ("virtualservices", "networking.istio.io", "VirtualService"),
    ("destinationrules", "networking.istio.io", "DestinationRule"),
    ("gateways", "networking.istio.io", "Gateway"),
    ("serviceentries", "networking.istio.io", "ServiceEntry"),
    (
        "peerauthentications",
        "security.istio.io",
        "PeerAuthentication",
    ),
    (
        "authorizationpolicies",
        "security.istio.io",
        "AuthorizationPolicy",
    ),
];
const GATEWAY_API_CRDS: &[(&str, &str, &str)] = &[
    (
        "gatewayclasses",
        "gateway.networking.k8s.io",
        "GatewayClass",
    ),
    ("gateways", "gateway.networking.k8s.io", "Gateway"),
    ("httproutes", "gateway.networking.k8s.io", "HTTPRoute"),
    ("grpcroutes", "gateway.networking.k8s.io", "GRPCRoute"),
];

/// A fake cluster, the webhook stub behind its service proxy, and a kubeconfig for it.
struct Cluster {
    server: FakeApiServer,
    kubeconfig: PathBuf,
    /// The uids of the reviews the webhook stub answered.
    reviews: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    /// A cluster with nothing installed.
    async fn empty(test: &str) -> Cluster {
        let server = FakeApiServer::start().await;
        let kubeconfig = kubeconfig(test, &server.url());
        Cluster {
            server,
            kubeconfig,
            reviews: Arc::default(),
        }
    }

    /// A cluster with the mesh installed and healthy.
    async fn healthy(test: &str) -> Cluster {
        let cluster = Cluster::empty(test).await;
        for (plural, group, kind) in ISTIO_CRDS.iter().chain(GATEWAY_API_CRDS) {
            cluster.server.apply(crd(plural, group, kind, &["v1"]));
        }
        cluster.server.apply(control_plane(1, 1));
        cluster.server.apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-root-cert", "namespace": NS},
            "data": {"root-cert.pem": ROOT},
        }));
        cluster.server.apply(webhook_config(ROOT));
        let url = webhook_stub(cluster.reviews.clone()).await;
        cluster
            .server
            .set_service_proxy(NS, "https:mesh-injector:443", &url);
        cluster
    }

    /// Runs `mesh check` with `args` against this cluster.
    async fn check(&self, args: &[&str]) -> Checked {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_mesh"))
            .arg("check")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("mesh check ends within 60 s")
            .expect("mesh check runs");
        Checked {
            output,
            took: started.elapsed(),
        }
    }
}

/// What one `mesh check` printed and how it ended.
struct Checked {
    output: Output,
    took: Duration,
}

impl Checked {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The line that starts with `mark` (√, × or ℹ) and contains `text`, and the line after it.
    fn line(&self, mark: &str, text: &str) -> (String, String) {
        let stdout = self.stdout();
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(mark) && l.contains(text))
            .unwrap_or_else(|| panic!("no line {mark} …{text}… in:\n{stdout}"));
        let next = lines.get(at + 1).copied().unwrap_or_default();
        (lines[at].to_owned(), next.to_owned())
    }

    /// Asserts one failure containing `text`, with a hint containing `hint`, and exit 1.
    fn fails_with(&self, text: &str, hint: &str) {
        let (_, next) = self.line("×", text);
        assert!(
            next.trim_start().starts_with("hint:") && next.contains(hint),
            "the hint under ×…{text}… should mention {hint:?}:\n{}",
            self.stdout()
        );
        assert_eq!(self.code(), Some(1), "{}", self.stdout());
    }
}

fn kubeconfig(test: &str, url: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mesh-check-{test}-{}.yaml", std::process::id()));
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\n\
         users: [{{name: fake, user: {{}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
         current-context: fake\n"
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

fn crd(plural: &str, group: &str, kind: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": v, "served": true, "storage": i == 0}))
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": kind},
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}

fn control_plane(replicas: i32, ready: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "mesh-control-plane", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "mesh-control-plane"}},
            "template": {"metadata": {"labels": {"app": "mesh-control-plane"}}},
        },
        "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas},
    })
}

fn webhook_config(ca_bundle: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "mesh-sidecar-injector"},
        "webhooks": [{
            "name": "sidecar-injector.mesh.io",
            "clientConfig": {
                "service": {"name": "mesh-injector", "namespace": NS, "path": "/inject", "port": 443},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_bundle),
            },
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

/// A plain-HTTP stand-in for the injector: answers `POST /inject` with an AdmissionReview for
/// the request's uid and a one-operation JSONPatch, recording the uid.
async fn webhook_stub(reviews: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let reviews = reviews.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let reviews = reviews.clone();
                async move {
                    assert_eq!(request.uri().path(), "/inject");
                    let body = request.into_body().collect().await.expect("body");
                    let review: Value = serde_json::from_slice(&body.to_bytes()).expect("JSON");
                    let uid = review["request"]["uid"].as_str().unwrap_or_default();
                    reviews.lock().expect("reviews lock").push(uid.to_owned());
                    let patch = base64::engine::general_purpose::STANDARD
                        .encode(r#"[{"op":"add","path":"/metadata/annotations","value":{}}]"#);
                    let answer = json!({
                        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch},
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    url
}

#[tokio::test]
async fn a_healthy_mesh_passes_every_check_and_exits_0() {
    let cluster = Cluster::healthy("healthy").await;

    let checked = cluster.check(&[]).await;

    let stdout = checked.stdout();
    assert_eq!(checked.code(), Some(0), "{stdout}");
    assert!(!stdout.contains('×'), "{stdout}");
    let (api, _) = checked.line("√", "the API server at");
    assert!(
        api.contains(&format!("{} answers", cluster.server.url())),
        "{api}"
    );
    checked.line("√", "Kubernetes v1.34.0 is 1.26 or newer");
    checked.line("ℹ", "native sidecars (Kubernetes 1.29+)");
    for (plural, group, _) in ISTIO_CRDS {
        checked.line("√", &format!("CRD {plural}.{group}"));
    }
    checked.line("√", "Gateway API CRDs");
    checked.line("√", "control plane ready: 1/1 replicas");
    checked.line(
        "√",
        "MutatingWebhookConfiguration mesh-sidecar-injector exists",
    );
    checked.line("√", "caBundle current");
    checked.line("√", "the webhook is reachable");
    assert_eq!(*cluster.reviews.lock().expect("lock"), ["mesh-check"]);
    assert!(stdout.contains("Status check results are √"), "{stdout}");
}

#[tokio::test]
async fn without_the_gateway_api_an_info_line_says_it_is_optional_and_the_check_passes() {
    let cluster = Cluster::healthy("no-gateway-api").await;
    for (plural, group, _) in GATEWAY_API_CRDS {
        cluster.server.delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            &format!("{plural}.{group}"),
        );
    }

    let checked = cluster.check(&[]).await;

    assert_eq!(checked.code(), Some(0), "{}", checked.stdout());
    let (line, _) = checked.line("ℹ", "Gateway API CRDs not installed");
    assert!(
        line.contains("optional") && line.contains("httproutes"),
        "{line}"
    );
}

#[tokio::test]
async fn a_missing_istio_crd_fails_with_a_hint() {
    let cluster = Cluster::healthy("missing-crd").await;
    cluster.server.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "",
        "peerauthentications.security.istio.io",
    );
    // An Istio before 1.22 serves its CRDs without v1.
    cluster.server.apply(crd(
        "gateways",
        "networking.istio.io",
        "Gateway",
        &["v1beta1", "v1alpha3"],
    ));

    let checked = cluster.check(&[]).await;

    checked.fails_with(
        "CRD peerauthentications.security.istio.io is missing",
        "helm install mesh charts/mesh",
    );
    checked.fails_with(
        "CRD gateways.networking.istio.io does not serve v1 (serves v1beta1, v1alpha3)",
        "upgrade the CRD",
    );
    checked.line("√", "CRD virtualservices.networking.istio.io");
}

#[tokio::test]
async fn a_stale_ca_bundle_fails_with_a_hint() {
    let cluster = Cluster::healthy("stale-ca-bundle").await;
    let old_root = ROOT.replace("mesh-root", "old-root");
    cluster.server.apply(webhook_config(&old_root));

    let checked = cluster.check(&[]).await;

    checked.fails_with(
        "caBundle stale in sidecar-injector.mesh.io",
        "cannot set the injection webhook's caBundle",
    );
    checked.line("√", "the webhook is reachable");
}

#[tokio::test]
async fn a_control_plane_not_ready_fails_with_a_hint() {
    let cluster = Cluster::healthy("not-ready").await;
    cluster.server.apply(control_plane(2, 0));

    let checked = cluster.check(&[]).await;

    checked.fails_with(
        "control plane not ready: 0/2 replicas of Deployment mesh-system/mesh-control-plane ready",
        "kubectl -n mesh-system logs deploy/mesh-control-plane",
    );
}

#[tokio::test]
async fn an_unreachable_webhook_fails_promptly_with_a_hint() {
    let cluster = Cluster::empty("webhook-unreachable").await;
    for (plural, group, kind) in ISTIO_CRDS.iter().chain(GATEWAY_API_CRDS) {
        cluster.server.apply(crd(plural, group, kind, &["v1"]));
    }
    cluster.server.apply(control_plane(1, 1));
    cluster.server.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mesh-root-cert", "namespace": NS},
        "data": {"root-cert.pem": ROOT},
    }));
    cluster.server.apply(webhook_config(ROOT));
    // No target for the service proxy: the API server finds no endpoints (503).

    let checked = cluster.check(&[]).await;

    checked.fails_with(
        "the webhook cannot be reached through the API server: no endpoints available",
        "Service mesh-system/mesh-injector has no ready endpoints",
    );
    // kube-rs would retry a 503 for minutes; the check reports it at once.
    assert!(checked.took < Duration::from_secs(10), "{:?}", checked.took);
}

#[tokio::test]
async fn pre_install_checks_permissions_and_a_denied_one_fails_with_a_hint() {
    let cluster = Cluster::empty("pre-install").await;

    let allowed = cluster.check(&["--pre-install"]).await;

    assert_eq!(allowed.code(), Some(0), "{}", allowed.stdout());
    allowed.line("√", "can create customresourcedefinitions cluster-wide");
    allowed.line("√", "can create mutatingwebhookconfigurations cluster-wide");
    allowed.line("√", "can create deployments in mesh-system");
    allowed.line("√", "can create secrets in mesh-system");
    assert!(!allowed.stdout().contains("CRD "), "{}", allowed.stdout());

    cluster
        .server
        .set_access("create", "rbac.authorization.k8s.io", "clusterroles", false);
    let denied = cluster.check(&["--pre-install", "-n", "mesh"]).await;

    denied.fails_with(
        "cannot create clusterroles cluster-wide",
        "clusterroles.rbac.authorization.k8s.io",
    );
    denied.line("√", "can create configmaps in mesh");
}

#[tokio::test]
async fn kubernetes_older_than_1_26_fails_and_1_28_notes_that_sidecars_are_not_native() {
    let cluster = Cluster::empty("versions").await;

    cluster.server.set_version("v1.25.16");
    let old = cluster.check(&["--pre-install"]).await;
    old.fails_with(
        "Kubernetes v1.25.16 is older than 1.26",
        "upgrade the cluster",
    );

    cluster.server.set_version("v1.28.4-gke.100");
    let classic = cluster.check(&["--pre-install"]).await;
    assert_eq!(classic.code(), Some(0), "{}", classic.stdout());
    classic.line("√", "Kubernetes v1.28.4-gke.100 is 1.26 or newer");
    classic.line("ℹ", "native sidecars need Kubernetes 1.29");
}

#[tokio::test]
async fn an_unreachable_api_server_fails_with_a_hint() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut cluster = Cluster::empty("api-unreachable").await;
    cluster.kubeconfig = kubeconfig("api-unreachable-closed", &url);

    let checked = cluster.check(&[]).await;

    checked.fails_with(
        "cannot reach the API server",
        "kubectl config current-context",
    );
    assert!(!checked.stdout().contains("CRD"), "{}", checked.stdout());
}
