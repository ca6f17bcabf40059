//! The control plane's cluster duties for injection, against the fake API server with the real
//! kube-rs client: the mesh root kept in a Secret (made once, read by every later start), the
//! webhook configuration's caBundle set to it, and ConfigMap `mesh-root-cert` written to every
//! namespace, following a namespace created later.

use base64::Engine;
use mesh_control_plane::{
    ca::secret::load_or_create,
    injection::{ca_bundle::patch_ca_bundle, root_configmaps::publish_root_configmaps},
    kube_source::KubeSource,
    store::Store,
};
use mesh_test_support::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use tokio::sync::watch;

const WEBHOOK: &str = "mesh-sidecar-injector";

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK},
        "webhooks": [{
            "name": "sidecar-injector.mesh.io",
            "clientConfig": {"service": {"name": "mesh-injector", "namespace": "mesh-system", "path": "/inject", "port": 443}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"mesh-injection": "enabled"}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail"
        }]
    })
}

fn root_configmap(server: &FakeApiServer, namespace: &str) -> Option<String> {
    server
        .objects("v1", "ConfigMap")
        .into_iter()
        .find(|c| {
            c["metadata"]["namespace"] == namespace && c["metadata"]["name"] == "mesh-root-cert"
        })
        .and_then(|c| c["data"]["root-cert.pem"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn the_root_lives_in_a_secret_made_once() {
    let server = FakeApiServer::start().await;
    let first = load_or_create(server.client(), "mesh-system", "mesh-ca-root")
        .await
        .expect("made and stored");
    let secrets = server.objects("v1", "Secret");
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["metadata"]["name"], "mesh-ca-root");
    let again = load_or_create(server.client(), "mesh-system", "mesh-ca-root")
        .await
        .expect("read back");
    assert_eq!(
        first.cert_pem(),
        again.cert_pem(),
        "a restart keeps the root"
    );
    assert_eq!(server.objects("v1", "Secret").len(), 1);

    // A broken Secret is an error that names it, not a new root.
    server.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "broken", "namespace": "mesh-system"},
        "data": {"ca-cert.pem": base64::engine::general_purpose::STANDARD.encode("junk")}}));
    let error = load_or_create(server.client(), "mesh-system", "broken")
        .await
        .err()
        .expect("a broken root is refused");
    let message = error.to_string();
    assert!(message.contains("Secret mesh-system/broken"), "{message}");
}

#[tokio::test]
async fn the_webhook_ca_bundle_is_set_to_the_root() {
    let server = FakeApiServer::start().await;
    server.apply(webhook_configuration());
    let root = load_or_create(server.client(), "mesh-system", "mesh-ca-root")
        .await
        .expect("root");
    assert!(
        patch_ca_bundle(server.client(), WEBHOOK, root.cert_pem())
            .await
            .expect("patched")
    );
    let config = &server.objects(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    )[0];
    let bundle = config["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .expect("caBundle set");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .expect("base64");
    assert_eq!(decoded, root.cert_pem().as_bytes());
    assert_eq!(
        config["webhooks"][0]["failurePolicy"], "Fail",
        "the rest is kept"
    );
    assert!(
        !patch_ca_bundle(server.client(), WEBHOOK, root.cert_pem())
            .await
            .expect("checked"),
        "nothing to change the second time"
    );
    let missing = patch_ca_bundle(server.client(), "no-such-webhook", root.cert_pem()).await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn every_namespace_gets_the_root_configmap_and_new_ones_follow() {
    let server = FakeApiServer::start().await;
    server.apply(namespace("shop"));
    server.apply(namespace("billing"));
    // An old root's ConfigMap from an earlier install is brought up to date.
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mesh-root-cert", "namespace": "billing"},
        "data": {"root-cert.pem": "an old root"}}));
    let root = load_or_create(server.client(), "mesh-system", "mesh-ca-root")
        .await
        .expect("root");
    let (store_tx, store_rx) = watch::channel(Store::new());
    let _source = KubeSource::spawn(
        server.client(),
        store_tx,
        kube::runtime::watcher::Config::default(),
    );
    let before = server.request_count();
    tokio::spawn(publish_root_configmaps(
        server.client(),
        root.cert_pem().to_owned(),
        store_rx,
    ));
    server
        .wait_for_request(before, |r| {
            r.method == "PATCH" && r.path == "/api/v1/namespaces/billing/configmaps/mesh-root-cert"
        })
        .await;
    server
        .wait_for_request(before, |r| {
            r.method == "POST" && r.path == "/api/v1/namespaces/shop/configmaps"
        })
        .await;
    assert_eq!(
        root_configmap(&server, "shop").as_deref(),
        Some(root.cert_pem())
    );
    assert_eq!(
        root_configmap(&server, "billing").as_deref(),
        Some(root.cert_pem())
    );

    let before = server.request_count();
    server.apply(namespace("late"));
    server
        .wait_for_request(before, |r| {
            r.method == "POST" && r.path == "/api/v1/namespaces/late/configmaps"
        })
        .await;
    assert_eq!(
        root_configmap(&server, "late").as_deref(),
        Some(root.cert_pem())
    );
}
