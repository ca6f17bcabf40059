//! The lab as an API server would show it to the control plane: Namespaces with their labels,
//! Services with their assigned ClusterIPs, Pods with IPs, labels, service accounts and
//! readiness, EndpointSlices with ready conditions, and GatewayClass `mesh`; written as YAML into the cluster
//! folder (atomically, so a reader never sees half a file).

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::{
    api::{
        core::v1::{
            Container, ContainerPort, Namespace, ObjectReference, Pod, PodCondition, PodIP,
            PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
        },
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use serde::Serialize;

use crate::{
    cluster::{ClusterPlan, PodPlan, Protocol, ServiceKind, ServicePlan, TargetPort, selects},
    gateways,
    manifest::Manifests,
};

/// The file the lab writes in the cluster folder.
pub const CLUSTER_FILE: &str = "cluster.yaml";

/// Every object, as multi-document YAML, given which pods are ready.
pub fn render(
    plan: &ClusterPlan,
    manifests: &Manifests,
    ready: impl Fn(&PodPlan) -> bool,
) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for namespace in namespaces(plan, manifests) {
        push_yaml(&mut out, &namespace)?;
    }
    for service in &plan.services {
        push_yaml(&mut out, &service_object(service, manifests))?;
        for slice in endpoint_slices(plan, service, &ready) {
            push_yaml(&mut out, &slice)?;
        }
    }
    for pod in &plan.pods {
        push_yaml(&mut out, &pod_object(pod, ready(pod)))?;
    }
    if let Some(class) = gateways::mesh_gateway_class(manifests) {
        push_yaml(&mut out, &class)?;
    }
    Ok(out)
}

fn push_yaml(out: &mut String, object: &impl Serialize) -> Result<(), serde_yaml::Error> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(object)?);
    Ok(())
}

/// Writes `yaml` as the cluster folder's file, through a hidden temporary file and a rename.
pub fn write(dir: &Path, yaml: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{CLUSTER_FILE}.tmp"));
    std::fs::write(&tmp, yaml)?;
    std::fs::rename(tmp, dir.join(CLUSTER_FILE))
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn namespaces(plan: &ClusterPlan, manifests: &Manifests) -> Vec<Namespace> {
    plan.namespaces
        .iter()
        .map(|namespace| {
            let written = manifests
                .namespaces
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(&namespace.name));
            let mut labels = written
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            labels.insert(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.name.clone(),
            );
            Namespace {
                metadata: ObjectMeta {
                    labels: Some(labels),
                    ..meta(None, &namespace.name)
                },
                ..Namespace::default()
            }
        })
        .collect()
}

fn service_object(service: &ServicePlan, manifests: &Manifests) -> Service {
    let written = manifests.services.iter().find(|s| {
        s.metadata.name.as_deref() == Some(&service.name)
            && s.metadata.namespace.as_deref().unwrap_or("default") == service.namespace
    });
    let cluster_ip = match (service.kind, service.cluster_ip) {
        (ServiceKind::Headless, _) | (_, None) => "None".to_owned(),
        (_, Some(ip)) => ip.to_string(),
    };
    let ports = service
        .ports
        .iter()
        .map(|port| ServicePort {
            name: Some(port.name.clone()).filter(|n| !n.is_empty()),
            protocol: Some(protocol(port.protocol)),
            port: i32::from(port.port),
            target_port: Some(match &port.target {
                TargetPort::Number(n) => IntOrString::Int(i32::from(*n)),
                TargetPort::Name(name) => IntOrString::String(name.clone()),
            }),
            node_port: port.node_port.map(i32::from),
            app_protocol: port.app_protocol.clone(),
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            labels: written.and_then(|s| s.metadata.labels.clone()),
            annotations: written.and_then(|s| s.metadata.annotations.clone()),
            ..meta(Some(&service.namespace), &service.name)
        },
        spec: Some(ServiceSpec {
            type_: Some(
                match service.kind {
                    ServiceKind::NodePort => "NodePort",
                    ServiceKind::ClusterIp | ServiceKind::Headless => "ClusterIP",
                }
                .to_owned(),
            ),
            cluster_ips: Some(vec![cluster_ip.clone()]),
            cluster_ip: Some(cluster_ip),
            selector: Some(service.selector.clone()).filter(|s| !s.is_empty()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One slice per set of resolved ports (pods may name their ports differently), as the
/// EndpointSlice controller groups them.
fn endpoint_slices(
    plan: &ClusterPlan,
    service: &ServicePlan,
    ready: &impl Fn(&PodPlan) -> bool,
) -> Vec<EndpointSlice> {
    if service.selector.is_empty() {
        return Vec::new();
    }
    let mut groups: BTreeMap<Vec<(String, u16, Protocol)>, Vec<Endpoint>> = BTreeMap::new();
    let selected = plan
        .pods
        .iter()
        .filter(|p| p.namespace == service.namespace && selects(&service.selector, p));
    for pod in selected {
        let ports: Vec<(String, u16, Protocol)> = service
            .ports
            .iter()
            .filter_map(|port| {
                let number = pod.target_port(&port.target, port.protocol)?;
                Some((port.name.clone(), number, port.protocol))
            })
            .collect();
        let is_ready = ready(pod);
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![pod.ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(is_ready),
                serving: Some(is_ready),
                terminating: Some(false),
            }),
            node_name: Some(pod.node.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                ..ObjectReference::default()
            }),
            hostname: pod.hostname.clone(),
            ..Endpoint::default()
        });
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(index, (ports, endpoints))| EndpointSlice {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/service-name".to_owned(),
                    service.name.clone(),
                )])),
                ..meta(
                    Some(&service.namespace),
                    &format!("{}-{index}", service.name),
                )
            },
            address_type: "IPv4".to_owned(),
            endpoints,
            ports: Some(
                ports
                    .into_iter()
                    .map(|(name, port, proto)| EndpointPort {
                        name: Some(name),
                        port: Some(i32::from(port)),
                        protocol: Some(protocol(proto)),
                        app_protocol: None,
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn pod_object(pod: &PodPlan, ready: bool) -> Pod {
    let containers = pod
        .containers()
        .iter()
        .map(|c| Container {
            name: c.name.clone(),
            ports: Some(
                c.ports
                    .iter()
                    .map(|p| ContainerPort {
                        name: p.name.clone(),
                        container_port: i32::from(p.port),
                        protocol: Some(protocol(p.protocol)),
                        ..ContainerPort::default()
                    })
                    .collect(),
            ),
            ..Container::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            // As injected: a sidecar's pod carries the injector's tlsMode label and status.
            labels: Some(pod.labels.clone()),
            annotations: Some(pod.annotations.clone()).filter(|a| !a.is_empty()),
            owner_references: pod.owner_references(),
            ..meta(Some(&pod.namespace), &pod.name)
        },
        spec: Some(PodSpec {
            containers,
            node_name: Some(pod.node.clone()),
            service_account_name: Some(pod.service_account.clone()),
            hostname: pod.hostname.clone(),
            subdomain: pod.subdomain.clone(),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some(pod.ip.to_string()),
            pod_ips: Some(vec![PodIP {
                ip: pod.ip.to_string(),
            }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn protocol(protocol: Protocol) -> String {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
    .to_owned()
}

#[cfg(test)]
mod tests;
