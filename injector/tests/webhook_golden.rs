//! One golden test for both callers of the mutation: each pod in `tests/golden/` goes to the
//! webhook over real HTTPS as the API server sends it (an AdmissionReview) and through
//! `mesh inject`'s path (`inject_object`); the webhook's patch applied to the pod, and
//! `mesh inject`'s output, must both equal `<case>.injected.yaml`. `UPDATE_GOLDEN=1` rewrites
//! the goldens. Bad requests get clear answers and the server keeps serving.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mesh_injector::{
    InjectionConfig, InjectionSettings, NativeSidecars,
    decision::enabled_namespace,
    manifest,
    webhook::{Webhook, serve},
    workload::{ObjectInjection, inject_object},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};

/// A webhook server on a kernel-chosen port and a client config that trusts it.
struct TestWebhook {
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config(native: bool) -> InjectionConfig {
    let settings = InjectionSettings {
        native_sidecars: if native {
            NativeSidecars::Always
        } else {
            NativeSidecars::Never
        },
        ..InjectionSettings::default()
    };
    settings.for_cluster(None)
}

async fn start(config: InjectionConfig) -> TestWebhook {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["mesh-injector.mesh-system.svc".to_owned()])
        .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_cert.der().to_vec()))
        .expect("root");
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let webhook = Webhook {
        config: Arc::new(config),
        namespaces: Arc::new(|name: &str| Some(enabled_namespace(name))),
    };
    tokio::spawn(serve(listener, Arc::new(server), webhook));
    TestWebhook {
        addr,
        client: Arc::new(client),
    }
}

impl TestWebhook {
    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let name = ServerName::try_from("mesh-injector.mesh-system.svc").expect("name");
        let tls = tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the webhook");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http handshake");
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "mesh-injector.mesh-system.svc")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (status, body.to_bytes().to_vec())
    }

    /// Sends `object` as a Pod CREATE review; returns the response field.
    async fn review(&self, object: &Value, uid: &str) -> Value {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            }
        });
        let (status, body) = self
            .send(Method::POST, "/inject", review.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).expect("JSON answer");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(
            answer["response"]["uid"], uid,
            "the request's uid comes back"
        );
        answer["response"].clone()
    }
}

fn read_pod(case: &str) -> Value {
    let text = std::fs::read_to_string(golden_dir().join(format!("{case}.yaml"))).expect("case");
    let mut objects = manifest::objects(&text);
    assert_eq!(objects.len(), 1, "{case}: one object");
    objects.remove(0).expect("case reads").value
}

/// The webhook's patch applied to `pod`; `pod` itself when there is no patch.
fn apply(pod: &Value, response: &Value) -> Value {
    let mut patched = pod.clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("the patch is base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON Patch");
        json_patch::patch(&mut patched, &patch).expect("the patch applies to the pod as sent");
    }
    patched
}

fn check_golden(case: &str, injected: &Value) {
    let path = golden_dir().join(format!("{case}.injected.yaml"));
    let text = manifest::to_yaml(std::slice::from_ref(injected)).expect("yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        golden == text,
        "{case}: the injected pod differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{text}",
        path.display()
    );
}

#[tokio::test]
async fn webhook_and_mesh_inject_give_the_golden_pods() {
    let native = start(config(true)).await;
    let classic = start(config(false)).await;
    for (case, server, native_mode) in [
        ("deployment-pod", &native, true),
        ("classic-named-pod", &classic, false),
    ] {
        let pod = read_pod(case);
        let response = server.review(&pod, &format!("uid-{case}")).await;
        assert_eq!(response["allowed"], true, "{case}: {response}");
        let from_webhook = apply(&pod, &response);
        let namespace = enabled_namespace("shop");
        let from_inject = match inject_object(&pod, &namespace, &config(native_mode)) {
            Ok(ObjectInjection::Injected(value)) => value,
            other => panic!("{case}: mesh inject's path did not inject: {other:?}"),
        };
        assert_eq!(
            from_webhook, from_inject,
            "{case}: webhook and mesh inject differ"
        );
        check_golden(case, &from_webhook);

        // Injecting the injected pod again changes nothing.
        let again = server.review(&from_webhook, "uid-again").await;
        assert_eq!(again["allowed"], true);
        assert!(
            again.get("patch").is_none(),
            "{case}: injected twice: {again}"
        );
    }
}

#[tokio::test]
async fn pods_that_are_not_injected_are_allowed_unchanged() {
    let server = start(config(true)).await;
    for case in ["opted-out-pod", "host-network-pod"] {
        let pod = read_pod(case);
        let response = server.review(&pod, case).await;
        assert_eq!(response["allowed"], true, "{case}");
        assert!(response.get("patch").is_none(), "{case}: {response}");
    }
}

#[tokio::test]
async fn bad_requests_get_clear_answers_and_the_server_keeps_serving() {
    let server = start(config(true)).await;
    let (status, body) = server
        .send(Method::POST, "/inject", b"{not json".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("not an AdmissionReview"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let wrong = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"});
    let (status, _) = server
        .send(Method::POST, "/inject", wrong.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server.send(Method::GET, "/inject", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = server.send(Method::POST, "/other", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let huge = vec![b' '; mesh_injector::webhook::server::MAX_BODY + 1];
    let (status, _) = server.send(Method::POST, "/inject", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Another kind is allowed unchanged; a Pod that does not read is refused with the reason.
    let service = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "svc", "kind": {"group": "", "version": "v1", "kind": "Service"},
            "operation": "CREATE", "object": {"apiVersion": "v1", "kind": "Service"}}
    });
    let (status, body) = server
        .send(Method::POST, "/inject", service.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    let broken = server
        .review(
            &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "web"}}),
            "bad",
        )
        .await;
    assert_eq!(broken["allowed"], false);
    assert!(
        broken["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a Pod")),
        "{broken}"
    );

    // Still serving.
    let pod = read_pod("deployment-pod");
    assert!(server.review(&pod, "after").await.get("patch").is_some());
}
