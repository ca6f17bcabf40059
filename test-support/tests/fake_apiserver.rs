//! The fake API server's answers beyond list and watch, asked with the real kube-rs client:
//! the version, SelfSubjectAccessReviews, built-in kinds served typed, and the service proxy.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        },
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, api::PostParams};
use mesh_test_support::fake_apiserver::FakeApiServer;
use serde_json::json;
use tokio::{net::TcpListener, sync::Mutex};

/// What the stub behind the service proxy saw: method, path with query, content type, body.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A plain-HTTP stub that records each request and answers 200 with JSON naming its path.
async fn stub() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let method = request.method().to_string();
                    let path = request.uri().to_string();
                    let content_type = request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default();
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    log.lock()
                        .await
                        .push((method, path.clone(), content_type, body));
                    let answer = json!({ "served": path }).to_string();
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(StatusCode::OK)
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(answer)))
                            .expect("a response"),
                    )
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, seen)
}

fn proxy_post(path: &str, body: &str) -> Request<Vec<u8>> {
    Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.as_bytes().to_vec())
        .expect("a request")
}

const INJECT: &str = "/api/v1/namespaces/mesh-system/services/https:mesh-injector:443/proxy/inject";

#[tokio::test]
async fn version_is_the_one_the_test_chose() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let default = client.apiserver_version().await.expect("version");
    assert_eq!(
        (default.major.as_str(), default.minor.as_str()),
        ("1", "34")
    );

    server.set_version("v1.25.16-eks-1234");
    let info = client.apiserver_version().await.expect("version");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "25"));
    assert_eq!(info.git_version, "v1.25.16-eks-1234");
}

#[tokio::test]
async fn access_reviews_allow_everything_but_what_was_denied() {
    let server = FakeApiServer::start().await;
    let api: Api<SelfSubjectAccessReview> = Api::all(server.client());
    let review = |verb: &str, group: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some("mesh-system".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let allowed = |answer: SelfSubjectAccessReview| answer.status.expect("a status").allowed;

    server.set_access("create", "apps", "deployments", false);

    let post = PostParams::default();
    let denied = api
        .create(&post, &review("create", "apps", "deployments"))
        .await;
    assert!(!allowed(denied.expect("answered")));
    let other_verb = api
        .create(&post, &review("get", "apps", "deployments"))
        .await;
    assert!(allowed(other_verb.expect("answered")));
    let core = api.create(&post, &review("create", "", "secrets")).await;
    assert!(allowed(core.expect("answered")));
}

#[tokio::test]
async fn crds_and_deployments_are_served_as_built_in_kinds() {
    let server = FakeApiServer::start().await;
    server.apply(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualservices.networking.istio.io"},
        "spec": {
            "group": "networking.istio.io",
            "names": {"kind": "VirtualService", "plural": "virtualservices"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true}],
        },
    }));
    server.apply(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mesh-control-plane", "namespace": "mesh-system"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mesh"}}, "template": {}},
        "status": {"replicas": 2, "readyReplicas": 1},
    }));
    let client = server.client();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get_opt("virtualservices.networking.istio.io")
        .await
        .expect("asked");
    assert_eq!(crd.expect("present").spec.group, "networking.istio.io");
    assert!(
        crds.get_opt("gateways.networking.istio.io")
            .await
            .expect("asked")
            .is_none()
    );
    assert_eq!(
        crds.list(&Default::default())
            .await
            .expect("listed")
            .items
            .len(),
        1
    );

    let deployments: Api<Deployment> = Api::namespaced(client, "mesh-system");
    let deployment = deployments
        .get("mesh-control-plane")
        .await
        .expect("present");
    assert_eq!(deployment.status.expect("a status").ready_replicas, Some(1));
}

#[tokio::test]
async fn the_service_proxy_forwards_to_the_target_the_test_set() {
    let server = FakeApiServer::start().await;
    let (url, seen) = stub().await;
    server.set_service_proxy("mesh-system", "https:mesh-injector:443", &url);

    let answer = server
        .client()
        .request_text(proxy_post(
            &format!("{INJECT}?timeout=10s"),
            r#"{"kind":"AdmissionReview"}"#,
        ))
        .await
        .expect("forwarded and answered");

    assert_eq!(answer, r#"{"served":"/inject?timeout=10s"}"#);
    let seen = seen.lock().await.clone();
    assert_eq!(
        seen,
        [(
            "POST".to_owned(),
            "/inject?timeout=10s".to_owned(),
            "application/json".to_owned(),
            r#"{"kind":"AdmissionReview"}"#.to_owned(),
        )]
    );
}

#[tokio::test]
async fn the_service_proxy_answers_503_without_a_target_or_when_it_cannot_reach_it() {
    let server = FakeApiServer::start().await;
    // kube-rs retries a 503 for minutes by default; the answer itself is what is tested.
    let mut config = server.config();
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("a client");
    let api_error = |error: kube::Error| match error {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("an API error, not {other:?}"),
    };

    let none = client.request_text(proxy_post(INJECT, "{}")).await;
    let (code, message) = api_error(none.expect_err("no target"));
    assert_eq!(code, 503);
    assert!(message.contains("no endpoints available"), "{message}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    server.set_service_proxy("mesh-system", "https:mesh-injector:443", &dead);
    let unreachable = client.request_text(proxy_post(INJECT, "{}")).await;
    let (code, message) = api_error(unreachable.expect_err("nobody listens"));
    assert_eq!(code, 503);
    assert!(
        message.contains("error trying to reach service"),
        "{message}"
    );
}
