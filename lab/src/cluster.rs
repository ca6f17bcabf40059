//! The lab's desired state, computed from manifests: which pods run on which node with which IP
//! and command, which Services exist with which ClusterIP and NodePorts, and (given which pods
//! are ready) each Service port's endpoints. A pure function of the manifests: no side effects.

mod addresses;
mod control_plane;
mod pods;
mod scale;
mod services;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use serde::{Deserialize, Serialize};

pub use addresses::{
    CLUSTER_DNS_IP, CLUSTER_DOMAIN, HOST_IP, NODE_NETWORK_PREFIX, POD_CIDR, SERVICE_CIDR, node_ip,
    node_pod_gateway, node_pod_subnet,
};
pub use control_plane::{
    CONTROL_PLANE_NAME, CONTROL_PLANE_NAMESPACE, DISCOVERY_PORT, MONITORING_PORT, discovery_address,
};
pub use pods::sidecar_settings;
pub use scale::ScaleChange;

use crate::manifest::Manifests;

pub use mesh_injector::INJECTION_LABEL;

/// The whole lab as it should be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterPlan {
    /// The nodes, `node1`, `node2`, ...
    pub nodes: Vec<NodePlan>,
    /// Namespaces and whether their pods are meshed.
    pub namespaces: Vec<NamespacePlan>,
    /// Every pod, bare or from a Deployment, plus the lab's cluster DNS pod.
    pub pods: Vec<PodPlan>,
    /// Every Service, plus `kube-system/kube-dns`.
    pub services: Vec<ServicePlan>,
    /// Things in the manifests that the lab accepted but cannot honour fully.
    pub warnings: Vec<String>,
}

/// One node: a network namespace with a bridge for its pods.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodePlan {
    /// `node1`, `node2`, ...
    pub name: String,
    /// 1-based position; fixes the node's addresses.
    pub index: u8,
    /// The node's address on the network joining the nodes.
    pub ip: Ipv4Addr,
    /// The node's pod subnet (a /24 of the pod CIDR).
    pub pod_subnet: Ipv4Addr,
    /// The bridge's address: the default gateway of the node's pods.
    pub gateway: Ipv4Addr,
}

/// A namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamespacePlan {
    /// Its name.
    pub name: String,
    /// Whether `mesh-injection=enabled` is set.
    pub meshed: bool,
}

/// A pod as the lab will run it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodPlan {
    /// Namespace.
    pub namespace: String,
    /// Pod name (for Deployments: `<deployment>-<template hash>-<suffix>`).
    pub name: String,
    /// The Deployment it belongs to, if any.
    pub deployment: Option<String>,
    /// The node it runs on.
    pub node: String,
    /// Its IP in the node's pod subnet.
    pub ip: Ipv4Addr,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Service account (identity).
    pub service_account: String,
    /// `spec.hostname`, for headless-Service DNS names.
    pub hostname: Option<String>,
    /// `spec.subdomain`, for headless-Service DNS names.
    pub subdomain: Option<String>,
    /// The sidecar the injector gave it, if any: mesh-init's command and the mesh-proxy
    /// container, started before the pod's containers; or a gateway pod's mesh-proxy.
    pub sidecar: Option<SidecarPlan>,
    /// Namespaced sysctls set in the pod's network namespace (`securityContext.sysctls`).
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// What runs in it.
    pub role: PodRole,
}

/// What a pod runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum PodRole {
    /// The user's containers.
    Containers(Vec<ContainerPlan>),
    /// The lab's cluster DNS server, run by the lab itself inside this pod's namespace.
    ClusterDns,
}

/// One container: a command run inside the pod's network namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerPlan {
    /// Container name.
    pub name: String,
    /// The command line (`command` + `args`).
    pub argv: Vec<String>,
    /// Environment, with `valueFrom.fieldRef` resolved.
    pub env: Vec<(String, String)>,
    /// Declared container ports.
    pub ports: Vec<ContainerPortPlan>,
    /// How the lab decides the container is ready.
    pub readiness: Readiness,
}

/// The injector's additions to a pod, or a gateway pod's proxy, as the lab runs them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SidecarPlan {
    /// The init container's command line (`mesh-init` and its flags); none for a gateway's
    /// proxy, which binds its listeners itself and captures nothing.
    pub init_argv: Option<Vec<String>>,
    /// The sidecar container; paths in its env point into its volumes' mount paths.
    pub proxy: ContainerPlan,
    /// The uid and gid the sidecar runs as.
    pub run_as: (u32, u32),
    /// The volumes the sidecar mounts, which the lab writes into a folder per pod.
    pub volumes: Vec<VolumePlan>,
}

/// One volume the sidecar mounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumePlan {
    /// Where the container sees it.
    pub mount_path: String,
    /// What is in it.
    pub content: VolumeContent,
}

/// The kinds of volume the lab can fill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum VolumeContent {
    /// A projected service-account token in file `path` (the lab's CA token for the pod).
    Token {
        /// The file name.
        path: String,
    },
    /// A ConfigMap with the mesh root certificate under `key`.
    RootCert {
        /// The file name.
        key: String,
    },
    /// Downward API files: file name and field path (`metadata.labels` or
    /// `metadata.annotations`).
    PodInfo(Vec<(String, String)>),
}

/// A declared container port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerPortPlan {
    /// Port name, if any.
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: Protocol,
}

/// How readiness is checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Readiness {
    /// Ready while running (no ports, no probe).
    Running,
    /// Ready once each of these TCP ports accepts a connection.
    TcpPorts(Vec<u16>),
    /// Ready once `GET path` on this port answers 2xx or 3xx.
    HttpGet {
        /// Port.
        port: u16,
        /// Path.
        path: String,
    },
}

/// A transport protocol of a port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A Service as the lab will serve it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServicePlan {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP, NodePort or headless.
    pub kind: ServiceKind,
    /// The ClusterIP; none for a headless Service.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Ports.
    pub ports: Vec<ServicePortPlan>,
    /// Pod selector; an empty selector selects nothing (no endpoints are managed).
    pub selector: BTreeMap<String, String>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_timeout: Option<u32>,
}

/// The Service types the lab serves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP inside the cluster.
    ClusterIp,
    /// A ClusterIP plus a port on every node.
    NodePort,
    /// No virtual IP: DNS answers with the pods' IPs.
    Headless,
}

/// One Service port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServicePortPlan {
    /// Port name ("" when unnamed).
    pub name: String,
    /// Transport protocol.
    pub protocol: Protocol,
    /// The Service port.
    pub port: u16,
    /// The pods' port: a number or a container port name.
    pub target: TargetPort,
    /// The NodePort, for NodePort Services.
    pub node_port: Option<u16>,
    /// `appProtocol`, if set.
    pub app_protocol: Option<String>,
}

/// A Service port's `targetPort`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// The name of a container port.
    Name(String),
}

/// A ready endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The pod's port.
    pub port: u16,
    /// The pod's name.
    pub pod: String,
    /// The pod's node.
    pub node: String,
}

/// Why the manifests cannot run in the lab: every problem found, each naming its object.
#[derive(Debug, thiserror::Error)]
#[error("the manifests cannot run in the lab:\n  - {}", .0.join("\n  - "))]
pub struct PlanError(pub Vec<String>);

impl ClusterPlan {
    /// Plans a lab of `nodes` nodes for these manifests.
    pub fn new(manifests: &Manifests, nodes: u8) -> Result<ClusterPlan, PlanError> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        if !(1..=9).contains(&nodes) {
            problems.push(format!("the lab runs 1 to 9 nodes, not {nodes}"));
        }
        let nodes: Vec<NodePlan> = (1..=nodes.clamp(1, 9)).map(NodePlan::new).collect();
        let namespaces = namespaces(manifests);
        let pods = pods::plan(manifests, &namespaces, &nodes, &mut problems, &mut warnings);
        let services = services::plan(manifests, &namespaces, &mut problems, &mut warnings);
        if problems.is_empty() {
            Ok(ClusterPlan {
                nodes,
                namespaces,
                pods,
                services,
                warnings,
            })
        } else {
            Err(PlanError(problems))
        }
    }

    /// The pod called `name` in `namespace`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodPlan> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The ready endpoints of one Service port, in pod order.
    pub fn endpoints(
        &self,
        service: &ServicePlan,
        port: &ServicePortPlan,
        ready: impl Fn(&PodPlan) -> bool,
    ) -> Vec<EndpointPlan> {
        if service.selector.is_empty() {
            return Vec::new();
        }
        self.pods
            .iter()
            .filter(|pod| pod.namespace == service.namespace && selects(&service.selector, pod))
            .filter(|pod| ready(pod))
            .filter_map(|pod| {
                Some(EndpointPlan {
                    ip: pod.ip,
                    port: pod.target_port(&port.target, port.protocol)?,
                    pod: pod.name.clone(),
                    node: pod.node.clone(),
                })
            })
            .collect()
    }
}

impl NodePlan {
    fn new(index: u8) -> NodePlan {
        NodePlan {
            name: format!("node{index}"),
            index,
            ip: node_ip(index),
            pod_subnet: node_pod_subnet(index),
            gateway: node_pod_gateway(index),
        }
    }
}

impl PodPlan {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has the mesh sidecar.
    pub fn meshed(&self) -> bool {
        self.sidecar.is_some()
    }

    /// The containers, if the pod runs any.
    pub fn containers(&self) -> &[ContainerPlan] {
        match &self.role {
            PodRole::Containers(containers) => containers,
            PodRole::ClusterDns => &[],
        }
    }

    /// The owner Kubernetes would give the pod: a Deployment's pod belongs to its
    /// ReplicaSet, `<deployment>-<template hash>`.
    pub fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        replica_set_owner(&self.name, self.deployment.as_deref())
    }

    /// Resolves a Service's target port against this pod's container ports.
    pub fn target_port(&self, target: &TargetPort, protocol: Protocol) -> Option<u16> {
        match target {
            TargetPort::Number(port) => Some(*port),
            TargetPort::Name(name) => match &self.role {
                PodRole::ClusterDns => None,
                PodRole::Containers(containers) => containers
                    .iter()
                    .flat_map(|c| &c.ports)
                    .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
                    .map(|p| p.port),
            },
        }
    }
}

/// The ReplicaSet owning the pod `name` of `deployment` (the name without its last part).
pub(crate) fn replica_set_owner(
    name: &str,
    deployment: Option<&str>,
) -> Option<Vec<OwnerReference>> {
    deployment?;
    let (replica_set, _) = name.rsplit_once('-')?;
    Some(vec![OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "ReplicaSet".to_owned(),
        name: replica_set.to_owned(),
        uid: format!("lab-{replica_set}"),
        controller: Some(true),
        ..OwnerReference::default()
    }])
}

/// Whether every label of the selector is on the pod.
pub fn selects(selector: &BTreeMap<String, String>, pod: &PodPlan) -> bool {
    selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// The namespaces: those in the manifests plus `default` and `kube-system`.
fn namespaces(manifests: &Manifests) -> Vec<NamespacePlan> {
    let mut namespaces: BTreeMap<String, bool> = ["default", "kube-system"]
        .into_iter()
        .map(|n| (n.to_owned(), false))
        .collect();
    for namespace in &manifests.namespaces {
        let Some(name) = namespace.metadata.name.clone() else {
            continue;
        };
        let label = namespace
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(INJECTION_LABEL));
        namespaces.insert(name, label.is_some_and(|v| v == "enabled"));
    }
    namespaces
        .into_iter()
        .map(|(name, meshed)| NamespacePlan { name, meshed })
        .collect()
}
