use std::{collections::BTreeSet, path::Path};

use super::*;
use crate::cluster::{CONTROL_PLANE_NAMESPACE, PodRole};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
      - name: web
        command: [mesh-workload]
        env: [{ name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }]
"#;

fn shop() -> (ClusterPlan, Manifests) {
    let mut manifests = Manifests::default();
    manifests.add_text(SHOP, Path::new("shop.yaml")).unwrap();
    let mut plan = ClusterPlan::new(&manifests, 2).unwrap();
    plan.add_control_plane(vec!["mesh-control-plane".to_owned()])
        .unwrap();
    (plan, manifests)
}

fn web(plan: &ClusterPlan) -> Vec<String> {
    plan.pods
        .iter()
        .filter(|p| p.deployment.as_deref() == Some("web"))
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn scaling_up_adds_placed_pods_and_scaling_down_removes_the_newest() {
    let (mut plan, manifests) = shop();
    let before = web(&plan);
    let change = plan.scale(&manifests, "shop", "web", 4).unwrap();
    assert_eq!(change.added.len(), 2);
    assert!(change.removed.is_empty());
    let ips: BTreeSet<Ipv4Addr> = plan.pods.iter().map(|p| p.ip).collect();
    assert_eq!(ips.len(), plan.pods.len(), "addresses stay unique");
    let nodes: BTreeSet<&str> = change.added.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "new pods spread over the nodes");
    for pod in &change.added {
        assert!(pod.meshed() && pod.name.starts_with("web-"));
        let PodRole::Containers(containers) = &pod.role else {
            panic!("{pod:?}")
        };
        assert_eq!(
            containers[0].env,
            [("POD_NAME".to_owned(), pod.name.clone())]
        );
    }

    let change = plan.scale(&manifests, "shop", "web", 2).unwrap();
    assert_eq!(change.removed.len(), 2);
    assert_eq!(web(&plan), before, "the first replicas stay");
    assert_eq!(
        plan.scale(&manifests, "shop", "web", 2).unwrap(),
        ScaleChange::default()
    );
}

#[test]
fn scaling_what_the_manifests_do_not_deploy_is_refused_with_a_reason() {
    let (mut plan, manifests) = shop();
    let error = plan.scale(&manifests, "shop", "nope", 3).unwrap_err();
    assert!(
        error.to_string().contains("no Deployment shop/nope"),
        "{error}"
    );
    let error = plan.scale(&manifests, "shop", "web", 100_000).unwrap_err();
    assert!(
        error.to_string().contains("do not fit the lab's 2 nodes"),
        "{error}"
    );
    assert_eq!(web(&plan).len(), 2, "a refused scale changes nothing");
    let error = plan
        .scale(&manifests, CONTROL_PLANE_NAMESPACE, "mesh-control-plane", 2)
        .unwrap_err();
    assert!(error.to_string().contains("no Deployment"), "{error}");
}

#[test]
fn the_control_plane_is_an_unmeshed_pod_behind_its_own_service() {
    let (plan, _) = shop();
    let pod = plan.control_plane().unwrap();
    assert_eq!(pod.namespace, CONTROL_PLANE_NAMESPACE);
    assert!(pod.name.starts_with("mesh-control-plane-") && !pod.meshed());
    let service = plan
        .services
        .iter()
        .find(|s| s.name == "mesh-control-plane")
        .unwrap();
    assert_eq!(service.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 2)));
    let endpoints = plan.endpoints(service, &service.ports[0], |_| true);
    assert_eq!(endpoints.len(), 1);
    assert_eq!((endpoints[0].ip, endpoints[0].port), (pod.ip, 15012));

    let mut taken = Manifests::default();
    let own = "apiVersion: v1\nkind: Namespace\nmetadata: { name: mesh-system }\n---\napiVersion: v1\nkind: Service\nmetadata: { name: mesh-control-plane, namespace: mesh-system }\nspec: { ports: [{ port: 15012 }] }\n";
    taken.add_text(own, Path::new("own.yaml")).unwrap();
    let mut plan = ClusterPlan::new(&taken, 1).unwrap();
    let error = plan.add_control_plane(Vec::new()).unwrap_err();
    assert!(
        error.to_string().contains("runs the control plane"),
        "{error}"
    );
}
