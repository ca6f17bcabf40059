use std::{collections::BTreeSet, net::Ipv4Addr, path::Path};

use super::*;

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web-v1, namespace: shop }
spec:
  replicas: 3
  selector: { matchLabels: { app: web, version: v1 } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      containers:
      - name: web
        image: mesh-workload:latest
        args: [--addr, "0.0.0.0:8080"]
        env:
        - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
        - { name: POD_VERSION, valueFrom: { fieldRef: { fieldPath: "metadata.labels['version']" } } }
        - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
        - { name: GREETING, value: hello }
        ports: [{ containerPort: 8080, name: http }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, annotations: { mesh.io/inject: "false" } }
spec:
  nodeName: node2
  containers: [{ name: sleep, command: [sleep, infinity] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: NodePort
  selector: { app: web }
  sessionAffinity: ClientIP
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: web-headless, namespace: shop }
spec:
  clusterIP: None
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
"#;

fn plan(text: &str) -> Result<ClusterPlan, PlanError> {
    let mut manifests = Manifests::default();
    manifests.add_text(text, Path::new("test.yaml")).unwrap();
    ClusterPlan::new(&manifests, 2)
}

#[test]
fn deployments_spread_over_nodes_with_addresses_from_each_node_subnet() {
    let plan = plan(SHOP).unwrap();
    let web: Vec<&PodPlan> = plan
        .pods
        .iter()
        .filter(|p| p.deployment.as_deref() == Some("web-v1"))
        .collect();
    assert_eq!(web.len(), 3);
    let nodes: BTreeSet<&str> = web.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "replicas spread over both nodes");
    for pod in &web {
        let node = plan.nodes.iter().find(|n| n.name == pod.node).unwrap();
        assert_eq!(pod.ip.octets()[..3], node.pod_subnet.octets()[..3]);
        assert!(pod.name.starts_with("web-v1-"), "{}", pod.name);
        assert!(pod.meshed());
    }
    let ips: BTreeSet<Ipv4Addr> = plan.pods.iter().map(|p| p.ip).collect();
    assert_eq!(ips.len(), plan.pods.len(), "addresses are unique");
    let dns = plan.pod("kube-system", "coredns").unwrap();
    assert_eq!(dns.ip, Ipv4Addr::new(10, 244, 1, 2));
    assert!(!dns.meshed());
}

#[test]
fn containers_get_argv_env_and_readiness_from_the_pod_spec() {
    let plan = plan(SHOP).unwrap();
    let pod = plan
        .pods
        .iter()
        .find(|p| p.name.starts_with("web-v1-"))
        .unwrap();
    let web = &pod.containers()[0];
    assert_eq!(web.argv, ["mesh-workload", "--addr", "0.0.0.0:8080"]);
    let env: BTreeMap<&str, &str> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["POD_NAME"], pod.name);
    assert_eq!(env["POD_VERSION"], "v1");
    assert_eq!(env["POD_IP"], pod.ip.to_string());
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(web.readiness, Readiness::TcpPorts(vec![8080]));

    let client = plan.pod("shop", "client").unwrap();
    assert_eq!(client.node, "node2");
    assert!(!client.meshed(), "the annotation opts it out");
    assert_eq!(client.containers()[0].readiness, Readiness::Running);
}

#[test]
fn services_get_cluster_ips_node_ports_affinity_and_endpoints() {
    let plan = plan(SHOP).unwrap();
    let dns = &plan.services[0];
    assert_eq!(
        (dns.name.as_str(), dns.cluster_ip),
        ("kube-dns", Some(CLUSTER_DNS_IP))
    );
    let web = plan.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.kind, ServiceKind::NodePort);
    assert_eq!(web.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 20)));
    assert_eq!(web.ports[0].node_port, Some(30000));
    assert_eq!(web.affinity_timeout, Some(10800));
    let endpoints = plan.endpoints(web, &web.ports[0], |_| true);
    assert_eq!(endpoints.len(), 3);
    assert!(
        endpoints.iter().all(|e| e.port == 8080),
        "named targetPort resolved"
    );
    let first_ready = plan.endpoints(web, &web.ports[0], |p| p.name == endpoints[0].pod);
    assert_eq!(
        first_ready,
        vec![endpoints[0].clone()],
        "only ready pods are endpoints"
    );

    let headless = plan
        .services
        .iter()
        .find(|s| s.name == "web-headless")
        .unwrap();
    assert_eq!(
        (headless.kind, headless.cluster_ip),
        (ServiceKind::Headless, None)
    );
    let dns_endpoints = plan.endpoints(dns, &dns.ports[0], |_| true);
    assert_eq!(dns_endpoints[0].ip, Ipv4Addr::new(10, 244, 1, 2));
}

#[test]
fn every_problem_is_reported_naming_its_object() {
    let bad = r#"
apiVersion: v1
kind: Pod
metadata: { name: lost, namespace: nowhere }
spec: { containers: [{ name: a, command: ["true"] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: imaged }
spec: { containers: [{ name: nginx, image: nginx:1.27 }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: mismatched }
spec:
  selector: { matchLabels: { app: a } }
  template:
    metadata: { labels: { app: b } }
    spec: { containers: [{ name: a, command: ["true"] }] }
---
apiVersion: v1
kind: Service
metadata: { name: np }
spec: { type: NodePort, ports: [{ port: 80, nodePort: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: secret-env }
spec: { type: ExternalName, externalName: example.com }
"#;
    let error = plan(bad).unwrap_err().to_string();
    for expected in [
        "Pod nowhere/lost: namespace nowhere is not defined",
        "Pod default/imaged, container nginx: no `command`",
        "Deployment default/mismatched: selector",
        "Service default/np: nodePort 80 is outside 30000-32767",
        "Service default/secret-env: type ExternalName is not supported",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
}

#[test]
fn planning_is_deterministic() {
    assert_eq!(plan(SHOP).unwrap(), plan(SHOP).unwrap());
}

#[test]
fn variable_references_expand_as_kubelet_expands_them() {
    let env = vec![
        ("POD_IP".to_owned(), "10.244.1.7".to_owned()),
        ("PORT".to_owned(), "8080".to_owned()),
    ];
    let expand = |text: &str| pods::expand_vars(text, &env);
    assert_eq!(expand("$(POD_IP):$(PORT)"), "10.244.1.7:8080");
    assert_eq!(expand("$$(POD_IP)"), "$(POD_IP)");
    assert_eq!(expand("$(UNKNOWN) $(POD_IP"), "$(UNKNOWN) $(POD_IP");
    assert_eq!(expand("cost: $5"), "cost: $5");
    let pinned = r#"
apiVersion: v1
kind: Pod
metadata: { name: pinned, namespace: default }
spec:
  containers:
  - name: app
    image: mesh-workload
    args: [--addr, "$(POD_IP):8080"]
    env:
    - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
    - { name: WORKLOAD_TCP_ADDR, value: "$(POD_IP):9000" }
"#;
    let plan = plan(pinned).unwrap();
    let pod = plan.pod("default", "pinned").unwrap();
    let container = &pod.containers()[0];
    assert_eq!(container.argv[2], format!("{}:8080", pod.ip));
    assert!(
        container
            .env
            .contains(&("WORKLOAD_TCP_ADDR".to_owned(), format!("{}:9000", pod.ip)))
    );
}
