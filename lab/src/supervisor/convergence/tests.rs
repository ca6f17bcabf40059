use std::path::Path;

use serde_json::json;

use super::*;
use crate::manifest::Manifests;

const WEB: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop }
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
      containers: [{ name: web, command: [mesh-workload], ports: [{ name: http, containerPort: 8080 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }, { name: dns, port: 53, protocol: UDP }]
"#;

#[test]
fn a_sidecar_agrees_once_it_runs_the_ready_endpoints_of_every_cluster_it_has() {
    let mut manifests = Manifests::default();
    manifests.add_text(WEB, Path::new("web.yaml")).unwrap();
    let plan = ClusterPlan::new(&manifests, 1).unwrap();
    let web: Vec<&PodPlan> = plan
        .pods
        .iter()
        .filter(|p| p.name.starts_with("web-"))
        .collect();
    let first_ready = |pod: &PodPlan| pod.name == web[0].name;
    let expected = expected_endpoints(&plan, first_ready);
    let cluster = "outbound|80||web.shop.svc.cluster.local";
    assert_eq!(expected[cluster], [format!("{}:8080", web[0].ip)]);
    assert!(
        !expected.keys().any(|c| c.starts_with("outbound|53||web.")),
        "UDP ports have no cluster"
    );

    let dump = |addresses: Vec<String>| {
        json!({ "config": { "endpoints": [
            { "cluster": cluster, "endpoints": addresses.iter().map(|a| json!({ "address": a })).collect::<Vec<_>>() },
            { "cluster": "outbound|80|v1|web.shop.svc.cluster.local", "endpoints": [] },
        ] } })
    };
    let stale = running_endpoints(&dump(vec![
        format!("{}:8080", web[1].ip),
        format!("{}:8080", web[0].ip),
    ]));
    assert!(
        !agrees(&expected, &stale),
        "the not-ready pod is still there"
    );
    let current = running_endpoints(&dump(vec![format!("{}:8080", web[0].ip)]));
    assert!(
        agrees(&expected, &current),
        "subset clusters are not compared"
    );
    assert!(
        agrees(&expected, &Endpoints::new()),
        "a sidecar that sees no Service has nothing to lag on"
    );
}
