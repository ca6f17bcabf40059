//! Feedback through the real API: the whole path (kube source → store → publish → feedback)
//! against the fake API server, which receives the Events and the status patches as a real one
//! would and feeds the written status back through the watch.

use std::sync::Arc;

use http::Method;
use mesh_control_plane::{
    feedback,
    publish::{self, Debounce, PublishMetrics, Review},
    translate::MeshSettings,
    xds::ConfigSnapshot,
};

use super::*;

const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes";

fn gateway_class() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
           "metadata": {"name": "mesh"},
           "spec": {"controllerName": "mesh.io/gateway-controller"}})
}

fn route(name: &str, backend: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": "shop", "generation": 1},
           "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                    "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}})
}

fn broken_virtual_service() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"hosts": ["web"],
                    "http": [{"route": [{"destination": {"host": "web", "subset": "v9"}}]}]}})
}

/// The conditions mesh wrote on a route, as (type, status) pairs.
fn mesh_conditions(server: &FakeApiServer, name: &str) -> Vec<(String, String)> {
    let routes = server.objects("gateway.networking.k8s.io/v1", "HTTPRoute");
    let Some(route) = routes.iter().find(|r| r["metadata"]["name"] == name) else {
        return Vec::new();
    };
    let parents = route["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    parents
        .iter()
        .filter(|p| p["controllerName"] == "mesh.io/gateway-controller")
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let field = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
            (field("type"), field("status"))
        })
        .collect()
}

fn is_status_patch_of(name: &str) -> impl Fn(&RecordedRequest) -> bool + '_ {
    move |r| r.method == Method::PATCH && r.path == format!("{ROUTES}/{name}/status")
}

#[tokio::test]
async fn problems_become_events_and_route_status_written_once() {
    let server = FakeApiServer::start().await;
    for object in [
        namespace("shop"),
        service("shop", "web", json!(80)),
        gateway_class(),
        route("good", "web"),
        route("missing-backend", "nosuch"),
        broken_virtual_service(),
    ] {
        server.apply(object);
    }
    let harness = Harness::start(server, watcher::Config::default()).await;
    let (snapshots, _snapshots_rx) = watch::channel(Arc::new(ConfigSnapshot::pending()));
    let (reviews, reviews_rx) = watch::channel(Arc::new(Review::default()));
    let metrics = PublishMetrics::new(&prometheus::Registry::new()).expect("metrics");
    let publisher = tokio::spawn(publish::run(
        harness.store.clone(),
        snapshots,
        reviews,
        Debounce::default(),
        metrics,
        MeshSettings::default(),
    ));
    let feedback = tokio::spawn(feedback::run(harness.server.client(), reviews_rx));
    // The store is complete already: nudge the publisher to translate it.
    harness.server.apply(namespace("other"));

    let server = &harness.server;
    let good = server.wait_for_request(0, is_status_patch_of("good")).await;
    assert_eq!(good.method, Method::PATCH);
    server
        .wait_for_request(0, is_status_patch_of("missing-backend"))
        .await;
    assert_eq!(
        mesh_conditions(server, "good"),
        [
            ("Accepted".to_owned(), "True".to_owned()),
            ("ResolvedRefs".to_owned(), "True".to_owned())
        ]
    );
    assert_eq!(
        mesh_conditions(server, "missing-backend")[1],
        ("ResolvedRefs".to_owned(), "False".to_owned())
    );

    let events = server.objects("events.k8s.io/v1", "Event");
    let about = |kind: &str, name: &str| {
        events
            .iter()
            .find(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
            .cloned()
    };
    let vs_event = about("VirtualService", "web").expect("an Event on the VirtualService");
    assert_eq!(vs_event["reason"], "ConfigRejected");
    assert_eq!(vs_event["type"], "Warning");
    assert!(
        vs_event["note"].as_str().is_some_and(|n| n.contains("v9")),
        "{vs_event}"
    );
    assert!(about("HTTPRoute", "missing-backend").is_some());

    // The written status comes back through the watch and is retranslated: nothing more to
    // write. Fixing the backend then changes just that route's status, once.
    let patches_so_far = server.request_count();
    server.apply(service("shop", "nosuch", json!(80)));
    server
        .wait_for_request(patches_so_far, is_status_patch_of("missing-backend"))
        .await;
    let requests = server.requests();
    let patches_of = |name: &str| {
        requests
            .iter()
            .filter(|r| is_status_patch_of(name)(r))
            .count()
    };
    assert_eq!(
        patches_of("good"),
        1,
        "a status written is not written again"
    );
    assert_eq!(patches_of("missing-backend"), 2);
    assert_eq!(
        mesh_conditions(server, "missing-backend")[1],
        ("ResolvedRefs".to_owned(), "True".to_owned())
    );
    let events = server.objects("events.k8s.io/v1", "Event");
    let about_v9 = events
        .iter()
        .filter(|e| e["note"].as_str().is_some_and(|n| n.contains("\"v9\"")))
        .count();
    assert_eq!(
        about_v9, 1,
        "a lasting problem is reported once: {events:#?}"
    );
    publisher.abort();
    feedback.abort();
}
