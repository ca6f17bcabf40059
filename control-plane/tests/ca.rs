//! The CA over real gRPC and TLS, asked by the proxy's own CA client: a certificate for the
//! caller's service account whatever its CSR claims, and clear refusals for a missing, forged,
//! expired, wrong-audience or borrowed token and a garbage CSR, each counted.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::api::core::v1::{Pod, PodIP, PodStatus};
use kube::api::ObjectMeta;
use mesh_control_plane::{
    ca::{
        CaService, MeshRoot, ServingCert, credential::Authenticator, lab_token::LabTokenKey,
        workload::WorkloadIssuer,
    },
    store::Store,
    xds::{self, ConfigSnapshot, DiscoveryServer},
};
use mesh_proto::ca::v1::{IssueRequest, certificates_client::CertificatesClient};
use mesh_proxy::identity::{CaClient, IdentityError};
use mesh_test_support::fake_apiserver::{FakeApiServer, FakeToken};
use prometheus::Registry;
use tokio::{net::TcpListener, sync::watch};
use tonic::{
    Code,
    transport::{Certificate, ClientTlsConfig, Endpoint},
};

/// The control plane's CA on loopback over TLS.
struct Ca {
    addr: SocketAddr,
    root: Arc<MeshRoot>,
    registry: Registry,
    _store: watch::Sender<Store>,
}

impl Ca {
    async fn start(authenticator: Authenticator, store: Store) -> Ca {
        let root = Arc::new(MeshRoot::generate().expect("root"));
        let tls = ServingCert::issue(&root, &["127.0.0.1".to_owned()])
            .expect("serving cert")
            .server_config(&[b"h2"])
            .expect("server config");
        let registry = Registry::new();
        let (store_tx, store_rx) = watch::channel(store);
        let issuer = Arc::new(WorkloadIssuer::new(root.clone(), Duration::from_secs(3600)));
        let ca = CaService::new(issuer, authenticator, store_rx, &registry).expect("CA");
        let (_publisher, snapshots) = watch::channel(Arc::new(ConfigSnapshot::pending()));
        let server = DiscoveryServer::new(snapshots).expect("discovery server");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let serving = xds::serve(
            server,
            Some(ca),
            listener,
            Some(tls),
            std::future::pending(),
        );
        tokio::spawn(async move { serving.await.expect("the server runs") });
        Ca {
            addr,
            root,
            registry,
            _store: store_tx,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("https://127.0.0.1:{}", self.addr.port()))
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.root.cert_pem())),
            )
            .expect("tls")
    }

    /// The proxy's CA client with `token`, whose CSR names `claimed`.
    async fn fetch(&self, token: &str, claimed: &str) -> Result<String, IdentityError> {
        let file = token_file(token);
        let mut client = CaClient::new(self.endpoint(), file.clone(), None, claimed.to_owned());
        let result = client.fetch().await.map(|cert| cert.identity.clone());
        std::fs::remove_file(&file).expect("cleanup");
        result
    }

    fn metric(&self, name: &str, reason: Option<&str>) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric())
            .filter(|m| reason.is_none_or(|r| m.get_label().iter().any(|l| l.value() == r)))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}

fn token_file(token: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "mesh-ca-token-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::write(&path, token).expect("token file");
    path
}

fn fastrand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_nanos()
}

/// A store with pod `shop/web-1` at 10.1.2.3.
fn store_with_web_pod() -> Store {
    let mut store = Store::new();
    store.apply(Pod {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web-1".into()),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            pod_ip: Some("10.1.2.3".into()),
            pod_ips: Some(vec![PodIP {
                ip: "10.1.2.3".into(),
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    });
    store
}

fn code(result: Result<String, IdentityError>) -> (Code, String) {
    match result {
        Err(IdentityError::Ca(status)) => (status.code(), status.message().to_owned()),
        other => panic!("expected a refusal from the CA, got {other:?}"),
    }
}

#[tokio::test]
async fn lab_tokens_get_the_callers_own_identity_and_forgeries_get_nothing() {
    let key = LabTokenKey::generate().expect("key");
    let ca = Ca::start(Authenticator::LabTokens(key.clone()), store_with_web_pod()).await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let admin = "spiffe://cluster.local/ns/kube-system/sa/admin";

    let sleep = key.mint("shop", "sleep", "sleep-1", hour, now);
    assert_eq!(
        ca.fetch(&sleep, admin).await.expect("issued"),
        "spiffe://cluster.local/ns/shop/sa/sleep",
        "the CSR asked for admin; the certificate is the caller's own"
    );

    let (status, message) = code(ca.fetch("", admin).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("no credential"), "{message}");

    let forged =
        LabTokenKey::generate()
            .expect("another key")
            .mint("kube-system", "admin", "x", hour, now);
    let (status, message) = code(ca.fetch(&forged, admin).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("signature is not the lab's"), "{message}");

    let expired = key.mint("shop", "sleep", "sleep-1", hour, now - 2 * hour);
    let (status, message) = code(ca.fetch(&expired, admin).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("expired"), "{message}");

    // web-1's token, used from 127.0.0.1 while web-1 is at 10.1.2.3.
    let borrowed = key.mint("shop", "web", "web-1", hour, now);
    let (status, message) = code(ca.fetch(&borrowed, admin).await);
    assert_eq!(status, Code::PermissionDenied);
    assert!(message.contains("belongs to pod shop/web-1"), "{message}");

    assert_eq!(ca.metric("mesh_cp_ca_certificates_issued_total", None), 1);
    for reason in [
        "no_credential",
        "invalid_token",
        "expired_token",
        "token_of_another_pod",
    ] {
        assert_eq!(
            ca.metric("mesh_cp_ca_rejections_total", Some(reason)),
            1,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_garbage_csr_is_an_invalid_argument_and_nothing_is_issued() {
    let key = LabTokenKey::generate().expect("key");
    let ca = Ca::start(Authenticator::LabTokens(key.clone()), Store::new()).await;
    let token = key.mint(
        "shop",
        "sleep",
        "sleep-1",
        Duration::from_secs(60),
        SystemTime::now(),
    );
    let mut client = CertificatesClient::new(ca.endpoint().connect_lazy());
    for csr in [
        "",
        "garbage",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        let mut request = tonic::Request::new(IssueRequest {
            csr: csr.to_owned(),
            lifetime: None,
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let status = client.issue(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{csr:?}");
        assert!(status.message().contains("CSR"), "{}", status.message());
    }
    assert_eq!(ca.metric("mesh_cp_ca_certificates_issued_total", None), 0);
    assert_eq!(ca.metric("mesh_cp_ca_rejections_total", Some("bad_csr")), 3);
}

#[tokio::test]
async fn service_account_tokens_are_checked_with_a_token_review() {
    let api = FakeApiServer::start().await;
    let token = |ns: &str, sa: &str, pod: &str, audience: &str, expired| FakeToken {
        namespace: ns.into(),
        service_account: sa.into(),
        pod: pod.into(),
        audiences: vec![audience.into()],
        expired,
    };
    api.add_token("good", token("shop", "sleep", "sleep-1", "mesh-ca", false));
    api.add_token(
        "k8s-audience",
        token("shop", "sleep", "sleep-1", "kubernetes", false),
    );
    api.add_token("old", token("shop", "sleep", "sleep-1", "mesh-ca", true));
    api.add_token("web", token("shop", "web", "web-1", "mesh-ca", false));
    let ca = Ca::start(
        Authenticator::TokenReview(api.client()),
        store_with_web_pod(),
    )
    .await;
    let admin = "spiffe://cluster.local/ns/kube-system/sa/admin";
    assert_eq!(
        ca.fetch("good", admin).await.expect("issued"),
        "spiffe://cluster.local/ns/shop/sa/sleep"
    );
    for (token, wanted) in [
        ("unknown", "invalid bearer token"),
        ("k8s-audience", "is invalid for the target audiences"),
        ("old", "has expired"),
    ] {
        let (status, message) = code(ca.fetch(token, admin).await);
        assert_eq!(status, Code::Unauthenticated, "{token}");
        assert!(message.contains(wanted), "{token}: {message}");
    }
    let (status, _) = code(ca.fetch("web", admin).await);
    assert_eq!(
        status,
        Code::PermissionDenied,
        "web-1's token from another address"
    );
    let reviews = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tokenreviews"))
        .count();
    assert_eq!(reviews, 5);
}
