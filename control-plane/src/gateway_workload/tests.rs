use mesh_injector::InjectionSettings;

use super::*;

fn config() -> InjectionConfig {
    InjectionConfig {
        settings: InjectionSettings::default(),
        native_sidecars: true,
    }
}

fn gateway(yaml: &str) -> Gateway {
    serde_yaml::from_str(yaml).expect("a Gateway")
}

const WEB: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: shop, uid: 1234-abcd }
spec:
  gatewayClassName: mesh
  infrastructure:
    labels: { istio: ingressgateway }
    annotations: { team: storefront }
  listeners:
  - { name: http, port: 80, protocol: HTTP }
  - { name: http-alt, port: 80, protocol: HTTP, hostname: alt.example.com }
  - { name: a-very-long-listener-name, port: 8443, protocol: HTTP }
"#;

#[test]
fn a_gateway_gets_an_owned_proxy_deployment_and_a_load_balancer() {
    let workload = render(&gateway(WEB), &config()).expect("renders");
    for meta in [
        &workload.service_account.metadata,
        &workload.deployment.metadata,
        &workload.service.metadata,
    ] {
        assert_eq!(meta.name.as_deref(), Some("web-mesh"));
        assert_eq!(meta.namespace.as_deref(), Some("shop"));
        let owner = &meta.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Gateway", "web")
        );
        assert_eq!(owner.uid, "1234-abcd");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            meta.annotations.as_ref().expect("annotations")["team"],
            "storefront"
        );
    }

    let spec = workload.deployment.spec.expect("spec");
    let selector = spec.selector.match_labels.expect("selector");
    assert_eq!(
        selector,
        BTreeMap::from([(GATEWAY_NAME_LABEL.to_owned(), "web".to_owned())])
    );
    let template = spec.template.metadata.expect("template metadata");
    let labels = template.labels.expect("labels");
    assert_eq!(labels[GATEWAY_NAME_LABEL], "web");
    assert_eq!(
        labels["istio"], "ingressgateway",
        "Istio Gateways select by these"
    );
    assert_eq!(
        template.annotations.expect("annotations")[INJECT_KEY],
        "false"
    );
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.service_account_name.as_deref(), Some("web-mesh"));
    assert!(pod.init_containers.is_none(), "no traffic capture");
    let [proxy] = pod.containers.as_slice() else {
        panic!("one container: {:?}", pod.containers);
    };
    assert!(proxy.restart_policy.is_none() && proxy.lifecycle.is_none());
    let env: BTreeMap<_, _> = (proxy.env.iter().flatten())
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(env["MESH_PROXY_OUTBOUND_ADDR"], "off");
    assert_eq!(env["MESH_PROXY_INBOUND_ADDR"], "off");
    assert_eq!(env["MESH_WORKLOAD_NAME"], "web");
    assert!(
        env.contains_key("MESH_CA_TOKEN_FILE"),
        "it has a mesh identity"
    );
    let sysctls = pod
        .security_context
        .expect("security")
        .sysctls
        .expect("sysctls");
    assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
    let container_ports: Vec<(i32, &str)> = (proxy.ports.iter().flatten())
        .map(|p| (p.container_port, p.name.as_deref().unwrap_or("")))
        .filter(|(port, _)| *port < 15000)
        .collect();
    assert_eq!(container_ports, [(80, "http"), (8443, "port-8443")]);

    let service = workload.service.spec.expect("service spec");
    assert_eq!(service.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<(i32, Option<IntOrString>)> = (service.ports.iter().flatten())
        .map(|p| (p.port, p.target_port.clone()))
        .collect();
    assert_eq!(
        ports,
        [
            (80, Some(IntOrString::Int(80))),
            (8443, Some(IntOrString::Int(8443)))
        ]
    );
    assert_eq!(
        service.selector.expect("selector")[GATEWAY_NAME_LABEL],
        "web"
    );
}

#[test]
fn the_service_type_follows_the_annotation_and_a_wrong_one_is_an_error() {
    let annotated = WEB.replace(
        "metadata: { name: web, namespace: shop, uid: 1234-abcd }",
        "metadata: { name: web, namespace: shop, annotations: { networking.istio.io/service-type: NodePort } }",
    );
    let workload = render(&gateway(&annotated), &config()).expect("renders");
    let service = workload.service.spec.expect("spec");
    assert_eq!(service.type_.as_deref(), Some("NodePort"));

    let infra = WEB.replace(
        "annotations: { team: storefront }",
        "annotations: { networking.istio.io/service-type: ClusterIP }",
    );
    let workload = render(&gateway(&infra), &config()).expect("renders");
    assert_eq!(
        workload.service.spec.expect("spec").type_.as_deref(),
        Some("ClusterIP")
    );

    let wrong = WEB.replace(
        "annotations: { team: storefront }",
        "annotations: { networking.istio.io/service-type: External }",
    );
    let error = render(&gateway(&wrong), &config()).expect_err("refused");
    assert!(
        error.contains("External") && error.contains("NodePort"),
        "{error}"
    );
}

#[test]
fn a_gateway_without_listeners_cannot_run() {
    let empty = gateway(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: { name: e, namespace: shop }\nspec: { gatewayClassName: mesh, listeners: [] }\n",
    );
    assert!(
        render(&empty, &config())
            .expect_err("refused")
            .contains("no listener")
    );
}
