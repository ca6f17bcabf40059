//! The workload that runs a Gateway API `Gateway` of class `mesh`, as Istio's gateway
//! controller makes one per Gateway: a ServiceAccount, a Deployment of `mesh-proxy` in gateway
//! mode (it binds the listeners' ports itself: no traffic capture, no init container) and a
//! Service in front of it, all named `<gateway>-mesh` and owned by the Gateway, so deleting the
//! Gateway deletes them. The pods carry `gateway.networking.k8s.io/gateway-name`, which is how
//! translation knows them for the Gateway's proxies. `render` is pure; [`controller`] applies
//! what it makes in a cluster.

pub mod controller;

use std::collections::BTreeMap;

use gateway_api::gateways::Gateway;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ContainerPort, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec, Service,
            ServiceAccount, ServicePort, ServiceSpec, Sysctl,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use mesh_injector::{INJECT_KEY, InjectionConfig, sidecar};

/// The pod label naming the Gateway a gateway pod serves.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// The annotation (on the Gateway or in `spec.infrastructure.annotations`) choosing the
/// Service's type, as Istio spells it: `LoadBalancer` (the default), `NodePort` or `ClusterIP`.
pub const SERVICE_TYPE_ANNOTATION: &str = "networking.istio.io/service-type";
/// The suffix of the objects' names.
const NAME_SUFFIX: &str = "-mesh";
/// The Service types a gateway may have.
const SERVICE_TYPES: [&str; 3] = ["LoadBalancer", "NodePort", "ClusterIP"];

/// The objects that run one Gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayWorkload {
    /// The gateway pods' identity.
    pub service_account: ServiceAccount,
    /// The gateway pods.
    pub deployment: Deployment,
    /// Where clients reach them.
    pub service: Service,
}

/// The workload of `gateway` with the sidecar settings of `config`; an error says what in the
/// Gateway stops it from running.
pub fn render(gateway: &Gateway, config: &InjectionConfig) -> Result<GatewayWorkload, String> {
    let name = gateway
        .metadata
        .name
        .clone()
        .ok_or("the Gateway has no name")?;
    let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
    let infrastructure = gateway.spec.infrastructure.as_ref();
    let mut annotations = infrastructure
        .and_then(|i| i.annotations.clone())
        .unwrap_or_default();
    let mut labels = infrastructure
        .and_then(|i| i.labels.clone())
        .unwrap_or_default();
    labels.insert(GATEWAY_NAME_LABEL.to_owned(), name.clone());
    let service_type = (gateway.metadata.annotations.as_ref())
        .and_then(|a| a.get(SERVICE_TYPE_ANNOTATION))
        .or_else(|| annotations.get(SERVICE_TYPE_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| SERVICE_TYPES[0].to_owned());
    if !SERVICE_TYPES.contains(&service_type.as_str()) {
        return Err(format!(
            "annotation {SERVICE_TYPE_ANNOTATION}: {service_type:?} is not one of {}",
            SERVICE_TYPES.join(", ")
        ));
    }
    let ports = listener_ports(gateway);
    if ports.is_empty() {
        return Err("the Gateway has no listener".to_owned());
    }
    let full_name = workload_name(&name);
    let meta = ObjectMeta {
        name: Some(full_name.clone()),
        namespace: Some(namespace),
        labels: Some(labels.clone()),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        owner_references: Some(vec![owner(gateway, &name)]),
        ..ObjectMeta::default()
    };

    let mut proxy = sidecar::proxy_container(config, &annotations, Some(&name), None);
    // A gateway's proxy is the pod's only container: an ordinary one, not a sidecar.
    proxy.restart_policy = None;
    proxy.startup_probe = None;
    proxy.lifecycle = None;
    let env = proxy.env.get_or_insert_with(Vec::new);
    for variable in ["MESH_PROXY_OUTBOUND_ADDR", "MESH_PROXY_INBOUND_ADDR"] {
        env.push(EnvVar {
            name: variable.to_owned(),
            value: Some("off".to_owned()),
            ..EnvVar::default()
        });
    }
    let container_ports = proxy.ports.get_or_insert_with(Vec::new);
    for (port, port_name) in &ports {
        container_ports.push(ContainerPort {
            name: Some(port_name.clone()),
            container_port: *port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        });
    }
    annotations.insert(INJECT_KEY.to_owned(), "false".to_owned());
    let deployment = Deployment {
        metadata: meta.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    GATEWAY_NAME_LABEL.to_owned(),
                    name.clone(),
                )])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(full_name.clone()),
                    containers: vec![proxy],
                    volumes: Some(sidecar::volumes()),
                    // The proxy runs as uid 1337 and binds the listeners' ports, 80 and 443
                    // among them.
                    security_context: Some(PodSecurityContext {
                        sysctls: Some(vec![Sysctl {
                            name: "net.ipv4.ip_unprivileged_port_start".to_owned(),
                            value: "0".to_owned(),
                        }]),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            type_: Some(service_type),
            selector: Some(BTreeMap::from([(GATEWAY_NAME_LABEL.to_owned(), name)])),
            ports: Some(
                (ports.iter())
                    .map(|(port, port_name)| ServicePort {
                        name: Some(port_name.clone()),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        protocol: Some("TCP".to_owned()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Ok(GatewayWorkload {
        service_account: ServiceAccount {
            metadata: meta,
            ..ServiceAccount::default()
        },
        deployment,
        service,
    })
}

/// The name of the objects that run the Gateway `gateway`.
pub fn workload_name(gateway: &str) -> String {
    format!("{gateway}{NAME_SUFFIX}")
}

/// Each listener port once, named after its first listener (port names are DNS labels of at
/// most 15 characters; a longer or clashing name becomes `port-N`).
fn listener_ports(gateway: &Gateway) -> Vec<(i32, String)> {
    let mut ports: Vec<(i32, String)> = Vec::new();
    for listener in &gateway.spec.listeners {
        if ports.iter().any(|(port, _)| *port == listener.port) {
            continue;
        }
        let fits = listener.name.len() <= 15
            && !ports.iter().any(|(_, name)| *name == listener.name)
            && listener
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let name = match fits {
            true => listener.name.clone(),
            false => format!("port-{}", listener.port),
        };
        ports.push((listener.port, name));
    }
    ports
}

/// The Gateway as the controlling owner of what runs it.
fn owner(gateway: &Gateway, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "gateway.networking.k8s.io/v1".to_owned(),
        kind: "Gateway".to_owned(),
        name: name.to_owned(),
        uid: gateway.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests;
