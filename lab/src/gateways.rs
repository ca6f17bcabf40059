//! The lab as the mesh's gateway controller: each Gateway API `Gateway` of a class the mesh
//! controls gets the workload the control plane makes for it in a cluster (a Deployment of
//! mesh-proxy in gateway mode, its Service and ServiceAccount), added to the manifests the lab
//! runs. The lab has GatewayClass `mesh`, as the chart installs it, unless the manifests define
//! their own.

use gateway_api::{gatewayclasses::GatewayClass, gateways::Gateway};
use mesh_control_plane::{gateway_workload, translate::CONTROLLER_NAME};
use serde_json::json;

use crate::{
    cluster::sidecar_settings,
    manifest::{Manifests, OtherObject},
};

/// The GatewayClass the lab provides.
pub const MESH_GATEWAY_CLASS: &str = "mesh";
/// The Gateway API's group.
const GROUP: &str = "gateway.networking.k8s.io";

/// Adds the workload of every mesh Gateway in `manifests`; returns warnings naming the
/// Gateways that cannot run, and why.
pub fn add_workloads(manifests: &mut Manifests) -> Vec<String> {
    let mut warnings = Vec::new();
    let classes: Vec<GatewayClass> = objects(&manifests.other, "GatewayClass", &mut warnings);
    let ours = |class: &str| match classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class))
    {
        Some(written) => written.spec.controller_name == CONTROLLER_NAME,
        None => class == MESH_GATEWAY_CLASS,
    };
    let gateways: Vec<Gateway> = objects(&manifests.other, "Gateway", &mut warnings);
    let settings = sidecar_settings();
    for mut gateway in gateways {
        if !ours(&gateway.spec.gateway_class_name) {
            continue;
        }
        gateway
            .metadata
            .namespace
            .get_or_insert_with(|| "default".to_owned());
        match gateway_workload::render(&gateway, &settings) {
            Ok(workload) => {
                manifests.service_accounts.push(workload.service_account);
                manifests.deployments.push(workload.deployment);
                manifests.services.push(workload.service);
            }
            Err(why) => warnings.push(format!(
                "Gateway {}/{}: no gateway runs it: {why}",
                gateway.metadata.namespace.as_deref().unwrap_or_default(),
                gateway.metadata.name.as_deref().unwrap_or_default()
            )),
        }
    }
    warnings
}

/// GatewayClass `mesh`, for the cluster the control plane reads; none when the manifests
/// define a class of that name.
pub fn mesh_gateway_class(manifests: &Manifests) -> Option<serde_json::Value> {
    let defined = manifests.other.iter().any(|o| {
        is_gateway_api(o, "GatewayClass")
            && o.value.pointer("/metadata/name").and_then(|n| n.as_str())
                == Some(MESH_GATEWAY_CLASS)
    });
    (!defined).then(|| {
        json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": "GatewayClass",
            "metadata": { "name": MESH_GATEWAY_CLASS },
            "spec": { "controllerName": CONTROLLER_NAME },
        })
    })
}

/// The Gateway API objects of `kind`; one that does not parse is warned about and skipped
/// (the control plane reports it in full).
fn objects<T: serde::de::DeserializeOwned>(
    other: &[OtherObject],
    kind: &str,
    warnings: &mut Vec<String>,
) -> Vec<T> {
    (other.iter())
        .filter(|o| is_gateway_api(o, kind))
        .filter_map(|o| match serde_json::from_value(o.value.clone()) {
            Ok(object) => Some(object),
            Err(e) => {
                warnings.push(format!("{kind} in {}: {e}", o.file.display()));
                None
            }
        })
        .collect()
}

fn is_gateway_api(object: &OtherObject, kind: &str) -> bool {
    object.kind == kind && object.api_version.split('/').next() == Some(GROUP)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cluster::ClusterPlan;

    const GATEWAYS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: edge }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: other }
spec: { controllerName: example.com/other }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: edge }
spec:
  gatewayClassName: mesh
  infrastructure: { labels: { istio: ingressgateway } }
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: theirs, namespace: edge }
spec:
  gatewayClassName: other
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: empty, namespace: edge }
spec: { gatewayClassName: mesh, listeners: [] }
"#;

    fn manifests(text: &str) -> Manifests {
        let mut manifests = Manifests::default();
        manifests.add_text(text, Path::new("test.yaml")).unwrap();
        manifests
    }

    #[test]
    fn a_mesh_gateway_runs_as_a_proxy_pod_without_capture() {
        let mut manifests = manifests(GATEWAYS);
        let warnings = add_workloads(&mut manifests);
        assert_eq!(
            warnings,
            ["Gateway edge/empty: no gateway runs it: the Gateway has no listener"]
        );
        let names: Vec<_> = (manifests.deployments.iter())
            .map(|d| d.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["web-mesh"], "only mesh's Gateways get a workload");

        let plan = ClusterPlan::new(&manifests, 1).unwrap();
        let pod = (plan.pods.iter())
            .find(|p| p.deployment.as_deref() == Some("web-mesh"))
            .unwrap();
        assert_eq!(pod.labels["istio"], "ingressgateway");
        assert!(
            pod.containers().is_empty(),
            "the proxy is the only container"
        );
        let proxy = pod.sidecar.as_ref().expect("the proxy runs");
        assert_eq!(proxy.init_argv, None, "no capture");
        assert!(proxy.proxy.argv[0].ends_with("mesh-proxy"));
        assert_eq!(
            pod.sysctls,
            [(
                "net.ipv4.ip_unprivileged_port_start".to_owned(),
                "0".to_owned()
            )]
        );
        assert!(
            !plan.warnings.iter().any(|w| w.contains("volumes")),
            "the proxy's volumes are the lab's: {:?}",
            plan.warnings
        );
        let service = plan.services.iter().find(|s| s.name == "web-mesh").unwrap();
        assert_eq!(service.ports[0].port, 80);
        assert!(
            service.ports[0].node_port.is_some(),
            "reachable from outside"
        );
    }

    #[test]
    fn the_lab_provides_gateway_class_mesh_unless_the_manifests_define_it() {
        let class = mesh_gateway_class(&manifests(GATEWAYS)).unwrap();
        assert_eq!(class["spec"]["controllerName"], CONTROLLER_NAME);
        let own = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
                   metadata: { name: mesh }\nspec: { controllerName: example.com/x }\n";
        let mut written = manifests(GATEWAYS);
        written.add_text(own, Path::new("own.yaml")).unwrap();
        assert_eq!(mesh_gateway_class(&written), None);
        add_workloads(&mut written);
        assert!(
            written.deployments.is_empty(),
            "class mesh of another controller is not ours"
        );
    }
}
