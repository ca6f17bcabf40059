//! The `mesh-control-plane` binary started with the chart's arguments against the fake API
//! server (through a kubeconfig, as kube-rs finds it): it stores a new mesh root in its
//! Secret, writes ConfigMap `mesh-root-cert` to every namespace, sets the webhook
//! configuration's caBundle, and serves the injection webhook over HTTPS with a certificate
//! for `mesh-injector.mesh-system.svc` that chains to that root; a Pod CREATE review comes back
//! with the sidecar's JSON Patch.

use std::{
    process::{Command, Stdio},
    sync::Arc,
};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mesh_test_support::{KillOnDrop, fake_apiserver::FakeApiServer, free_port};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};

/// The chart's injector settings (`settings.yaml` of ConfigMap mesh-injector).
const SETTINGS: &str = r#"
image: "mesh:0.1.0"
imagePullPolicy: IfNotPresent
discoveryAddress: "https://mesh-control-plane.mesh-system.svc:15012"
nativeSidecars: auto
proxy:
  logLevel: info
  concurrency: 2
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {memory: 256Mi}
"#;

fn webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "mesh-sidecar-injector"},
        "webhooks": [{
            "name": "sidecar-injector.mesh.io",
            "clientConfig": {"service": {"name": "mesh-injector", "namespace": "mesh-system", "path": "/inject", "port": 443}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_with_the_charts_arguments_sets_up_injection() {
    let server = FakeApiServer::start().await;
    server.set_version("v1.28.5");
    for (name, enabled) in [("mesh-system", false), ("shop", true)] {
        let labels = if enabled {
            json!({"mesh-injection": "enabled"})
        } else {
            json!({})
        };
        server.apply(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}));
    }
    server.apply(webhook_configuration());

    let dir = std::env::temp_dir().join(format!("mesh-cp-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n",
            server.url()
        ),
    )
    .expect("kubeconfig");
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, SETTINGS).expect("settings");
    let (xds, monitoring, webhook) = (free_port(), free_port(), free_port());
    let before = server.request_count();
    let _cp = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_mesh-control-plane"))
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", "mesh-system")
            .arg(format!("--xds-addr=127.0.0.1:{xds}"))
            .arg(format!("--monitoring-addr=127.0.0.1:{monitoring}"))
            .arg(format!("--webhook-addr=127.0.0.1:{webhook}"))
            .arg("--webhook-config=mesh-sidecar-injector")
            .arg(format!("--injector-settings={}", settings.display()))
            .arg("--ca-secret=mesh-ca-root")
            .arg("--xds-san=mesh-control-plane.mesh-system.svc,mesh-injector.mesh-system.svc")
            .stderr(Stdio::null())
            .spawn()
            .expect("start mesh-control-plane"),
    );

    // The duties, each seen as the request that does it.
    server
        .wait_for_request(before, |r| {
            r.method == "POST" && r.path == "/api/v1/namespaces/mesh-system/secrets"
        })
        .await;
    server
        .wait_for_request(before, |r| {
            r.method == "POST" && r.path == "/api/v1/namespaces/shop/configmaps"
        })
        .await;
    server
        .wait_for_request(before, |r| {
            r.method == "PATCH"
                && r.path
                    == "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/mesh-sidecar-injector"
        })
        .await;
    let root_pem = server
        .objects("v1", "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["namespace"] == "shop")
        .and_then(|c| c["data"]["root-cert.pem"].as_str().map(str::to_owned))
        .expect("mesh-root-cert in shop");
    let secret = &server.objects("v1", "Secret")[0];
    let stored = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["ca-cert.pem"].as_str().expect("ca-cert.pem"))
        .expect("base64");
    assert_eq!(
        stored,
        root_pem.as_bytes(),
        "the published root is the stored one"
    );
    let config = &server.objects(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    )[0];
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(
            config["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .expect("caBundle"),
        )
        .expect("base64");
    assert_eq!(bundle, root_pem.as_bytes());

    // The webhook, as the API server calls it: HTTPS to the Service name, trusting caBundle.
    let response = review(webhook, &root_pem).await;
    assert_eq!(response["uid"], "from-the-api-server");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a patch"))
        .expect("base64");
    let patch: Value = serde_json::from_slice(&patch).expect("JSON");
    let text = patch.to_string();
    assert!(
        text.contains("mesh-init") && text.contains("mesh-proxy"),
        "{text}"
    );
    assert!(
        text.contains("postStart"),
        "Kubernetes 1.28 (from /version) gets the classic sidecar: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends a Pod CREATE review to the webhook on `port` over TLS, verifying its certificate
/// for `mesh-injector.mesh-system.svc` against `root_pem`; returns the `response`.
async fn review(port: u16, root_pem: &str) -> Value {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the webhook");
    let name = ServerName::try_from("mesh-injector.mesh-system.svc").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("the webhook's certificate chains to the root for its Service name");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "from-the-api-server",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "web-", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}
        }
    });
    let request = http::Request::post("/inject")
        .header("host", "mesh-injector.mesh-system.svc")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let answer = sender.send_request(request).await.expect("an answer");
    assert_eq!(answer.status(), 200);
    let bytes = answer.into_body().collect().await.expect("body").to_bytes();
    let review: Value = serde_json::from_slice(&bytes).expect("an AdmissionReview");
    review["response"].clone()
}
