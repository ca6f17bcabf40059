use std::path::Path;

use mesh_control_plane::{folder::parse_manifests, node::ProxyNode, store::Store, translate};

use super::*;
use crate::cluster::{CONTROL_PLANE_NAME, CONTROL_PLANE_NAMESPACE};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled, team: web } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      serviceAccountName: web
      containers:
      - { name: web, command: [mesh-workload], ports: [{ name: http, containerPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, annotations: { networking.istio.io/exportTo: "." } }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
"#;

fn shop() -> (ClusterPlan, Manifests) {
    let mut manifests = Manifests::default();
    manifests.add_text(SHOP, Path::new("shop.yaml")).unwrap();
    let mut plan = ClusterPlan::new(&manifests, 2).unwrap();
    plan.add_control_plane(vec!["mesh-control-plane".to_owned()])
        .unwrap();
    (plan, manifests)
}

/// What the real control plane reads from the rendered folder.
fn store_of(yaml: &str) -> Store {
    let parsed = parse_manifests(yaml, "cluster.yaml");
    assert!(
        parsed.problems.is_empty(),
        "the control plane reads every field: {:#?}",
        parsed.problems
    );
    let mut store = Store::new();
    for (object, _) in parsed.objects {
        store.apply(object);
    }
    store
}

#[test]
fn the_control_plane_reads_services_pods_and_ready_endpoints() {
    let (plan, manifests) = shop();
    let web: Vec<&PodPlan> = plan
        .pods
        .iter()
        .filter(|p| p.deployment.as_deref() == Some("web"))
        .collect();
    let first_ready = |pod: &PodPlan| pod.name == web[0].name;
    let store = store_of(&render(&plan, &manifests, first_ready).unwrap());

    let service = store.get::<Service>("shop", "web").unwrap();
    let assigned = plan.services.iter().find(|s| s.name == "web").unwrap();
    let spec = service.spec.as_ref().unwrap();
    assert_eq!(
        spec.cluster_ip,
        assigned.cluster_ip.map(|ip| ip.to_string())
    );
    let annotations = service.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["networking.istio.io/exportTo"], ".");
    let shop = store.get::<Namespace>("", "shop").unwrap();
    assert_eq!(shop.metadata.labels.as_ref().unwrap()["team"], "web");
    let pod = store.get::<Pod>("shop", &web[1].name).unwrap();
    assert_eq!(
        pod.spec.as_ref().unwrap().service_account_name.as_deref(),
        Some("web")
    );

    // Translated for a client: the Service's cluster holds only the ready pod, with its labels
    // and identity.
    let node = ProxyNode {
        id: "client.shop".to_owned(),
        pod: "client".to_owned(),
        namespace: "shop".to_owned(),
        ..ProxyNode::default()
    };
    let config = translate::translate(&store, &node).config;
    let assignment = config
        .endpoints
        .iter()
        .find(|e| e.cluster == "outbound|80||web.shop.svc.cluster.local")
        .unwrap_or_else(|| panic!("no endpoints for web: {:#?}", config.endpoints));
    assert_eq!(assignment.endpoints.len(), 1, "{assignment:#?}");
    let endpoint = &assignment.endpoints[0];
    assert_eq!(endpoint.address, format!("{}:8080", web[0].ip));
    assert_eq!(endpoint.labels["version"], "v1");
    assert_eq!(endpoint.identity, "spiffe://cluster.local/ns/shop/sa/web");
}

#[test]
fn the_control_planes_own_service_and_pod_are_listed() {
    let (plan, manifests) = shop();
    let store = store_of(&render(&plan, &manifests, |_| true).unwrap());
    let service = store
        .get::<Service>(CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_NAME)
        .unwrap();
    let ports: Vec<i32> = service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [15012, 15014]);
    let pod = plan.control_plane().unwrap();
    assert!(!pod.meshed());
    assert!(
        store
            .get::<Pod>(CONTROL_PLANE_NAMESPACE, &pod.name)
            .is_some()
    );
}

#[test]
fn writing_replaces_the_file_whole() {
    let dir = std::env::temp_dir().join(format!("mesh-lab-kube-objects-{}", std::process::id()));
    write(&dir, "first").unwrap();
    write(&dir, "second").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(CLUSTER_FILE)).unwrap(),
        "second"
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
