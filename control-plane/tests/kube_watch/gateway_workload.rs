//! A Gateway of class mesh gets its workload through the real API: the kube source fills the
//! store from the fake API server, the controller creates the ServiceAccount, Deployment and
//! Service, and merges a changed Deployment when the Gateway changes.

use http::Method;
use mesh_control_plane::gateway_workload::controller;
use mesh_injector::InjectionSettings;

use super::*;

fn gateway_class(name: &str, controller: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
           "metadata": {"name": name},
           "spec": {"controllerName": controller}})
}

fn gateway(name: &str, class: &str, port: u16) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
           "spec": {"gatewayClassName": class,
                    "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}})
}

fn named<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["metadata"]["name"] == name)
}

#[tokio::test]
async fn a_mesh_gateway_gets_its_workload_and_follows_its_changes() {
    let server = FakeApiServer::start().await;
    for object in [
        namespace("shop"),
        gateway_class("mesh", "mesh.io/gateway-controller"),
        gateway_class("other", "example.com/other-controller"),
        gateway("web", "mesh", 80),
        gateway("elsewhere", "other", 80),
    ] {
        server.apply(object);
    }
    let harness = Harness::start(server, watcher::Config::default()).await;
    let config = InjectionSettings::default().for_cluster(None);
    let running = tokio::spawn(controller::run(
        harness.server.client(),
        config,
        harness.store.clone(),
    ));
    // The store is complete already: nudge the controller.
    harness.server.apply(namespace("other"));

    let server = &harness.server;
    let is_created = |collection: &'static str| {
        move |r: &RecordedRequest| r.method == Method::POST && r.path.ends_with(collection)
    };
    server
        .wait_for_request(0, is_created("/namespaces/shop/deployments"))
        .await;
    server
        .wait_for_request(0, is_created("/namespaces/shop/services"))
        .await;
    server
        .wait_for_request(0, is_created("/namespaces/shop/serviceaccounts"))
        .await;
    let deployments = server.objects("apps/v1", "Deployment");
    let deployment = named(&deployments, "web-mesh").expect("web's Deployment");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        "uid-web"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "web-mesh");
    assert_eq!(pod["containers"][0]["name"], "mesh-proxy");
    assert!(
        named(&deployments, "elsewhere-mesh").is_none(),
        "another controller's Gateway"
    );
    let services = server.objects("v1", "Service");
    let service = named(&services, "web-mesh").expect("web's Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert!(named(&server.objects("v1", "ServiceAccount"), "web-mesh").is_some());

    // A new listener port: the Deployment and Service are merged, nothing is created again.
    let before = server.requests().len();
    server.apply(gateway("web", "mesh", 8080));
    server
        .wait_for_request(before, |r| {
            r.method == Method::PATCH && r.path.ends_with("/namespaces/shop/services/web-mesh")
        })
        .await;
    let after = server.requests();
    assert!(
        !after[before..].iter().any(|r| r.method == Method::POST),
        "{:?}",
        &after[before..]
    );
    harness
        .until("the merged Service", |_| {
            let services = server.objects("v1", "Service");
            named(&services, "web-mesh").is_some_and(|s| s["spec"]["ports"][0]["port"] == 8080)
        })
        .await;
    running.abort();
}
