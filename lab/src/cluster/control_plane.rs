//! The control plane as a pod of the lab, as a cluster runs it: Deployment `mesh-control-plane`
//! in namespace `mesh-system`, unmeshed, behind the ClusterIP Service `mesh-control-plane`
//! (15012 discovery, 15014 monitoring); its command is the supervisor's to give.

use std::{collections::BTreeMap, net::Ipv4Addr};

use super::{
    ClusterPlan, ContainerPlan, ContainerPortPlan, NamespacePlan, PlanError, PodPlan, PodRole,
    Protocol, Readiness, ServiceKind, ServicePlan, ServicePortPlan, TargetPort,
    pods::short_hash,
    scale::{free_address, least_busy},
};

/// The control plane's namespace.
pub const CONTROL_PLANE_NAMESPACE: &str = "mesh-system";
/// The name of its Deployment and Service, and the prefix of its pod's name.
pub const CONTROL_PLANE_NAME: &str = "mesh-control-plane";
/// The discovery API's port.
pub const DISCOVERY_PORT: u16 = 15012;
/// The monitoring port (`/debug/syncz`, `/healthz/ready`).
pub const MONITORING_PORT: u16 = 15014;
/// ClusterIPs below the automatic range are kept for the lab's own Services.
const WELL_KNOWN_IPS: std::ops::RangeInclusive<u8> = 2..=19;

/// The discovery address sidecars dial (over TLS), by the Service's cluster DNS name.
pub fn discovery_address() -> String {
    format!("https://{CONTROL_PLANE_NAME}.{CONTROL_PLANE_NAMESPACE}:{DISCOVERY_PORT}")
}

impl ClusterPlan {
    /// Adds the control plane's namespace, its pod (running `argv`) and its Service.
    pub fn add_control_plane(&mut self, argv: Vec<String>) -> Result<(), PlanError> {
        let taken_name = self
            .services
            .iter()
            .any(|s| s.namespace == CONTROL_PLANE_NAMESPACE && s.name == CONTROL_PLANE_NAME);
        if taken_name || self.control_plane().is_some() {
            return Err(PlanError(vec![format!(
                "Service or Pod {CONTROL_PLANE_NAMESPACE}/{CONTROL_PLANE_NAME}: the lab runs the \
                 control plane under that name itself; remove it from the manifests"
            )]));
        }
        let cluster_ip = WELL_KNOWN_IPS
            .map(|host| Ipv4Addr::new(10, 96, 0, host))
            .find(|ip| self.services.iter().all(|s| s.cluster_ip != Some(*ip)))
            .ok_or_else(|| PlanError(vec!["no free ClusterIP for the control plane".into()]))?;
        let taken: Vec<(String, Ipv4Addr)> =
            self.pods.iter().map(|p| (p.node.clone(), p.ip)).collect();
        let (node, ip) = least_busy(&self.nodes, &taken)
            .and_then(|node| Some((node.name.clone(), free_address(node, &taken)?)))
            .ok_or_else(|| PlanError(vec!["no room for the control plane's pod".into()]))?;
        if !self
            .namespaces
            .iter()
            .any(|n| n.name == CONTROL_PLANE_NAMESPACE)
        {
            self.namespaces.push(NamespacePlan {
                name: CONTROL_PLANE_NAMESPACE.to_owned(),
                meshed: false,
            });
        }
        let labels = BTreeMap::from([("app".to_owned(), CONTROL_PLANE_NAME.to_owned())]);
        let port = |name: &str, port: u16| ContainerPortPlan {
            name: Some(name.to_owned()),
            port,
            protocol: Protocol::Tcp,
        };
        let key = format!("{CONTROL_PLANE_NAMESPACE}/{CONTROL_PLANE_NAME}");
        self.pods.push(PodPlan {
            namespace: CONTROL_PLANE_NAMESPACE.to_owned(),
            name: format!(
                "{CONTROL_PLANE_NAME}-{}-{}",
                short_hash(&key, 10),
                short_hash(&format!("{key}/0"), 5)
            ),
            deployment: Some(CONTROL_PLANE_NAME.to_owned()),
            node,
            ip,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
            service_account: CONTROL_PLANE_NAME.to_owned(),
            hostname: None,
            subdomain: None,
            sidecar: None,
            sysctls: Vec::new(),
            role: PodRole::Containers(vec![ContainerPlan {
                name: "discovery".to_owned(),
                argv,
                env: Vec::new(),
                ports: vec![
                    port("grpc-xds", DISCOVERY_PORT),
                    port("http-monitoring", MONITORING_PORT),
                ],
                readiness: Readiness::HttpGet {
                    port: MONITORING_PORT,
                    path: "/healthz/ready".to_owned(),
                },
            }]),
        });
        let service_port = |name: &str, port: u16| ServicePortPlan {
            name: name.to_owned(),
            protocol: Protocol::Tcp,
            port,
            target: TargetPort::Number(port),
            node_port: None,
            app_protocol: None,
        };
        self.services.push(ServicePlan {
            namespace: CONTROL_PLANE_NAMESPACE.to_owned(),
            name: CONTROL_PLANE_NAME.to_owned(),
            kind: ServiceKind::ClusterIp,
            cluster_ip: Some(cluster_ip),
            ports: vec![
                service_port("grpc-xds", DISCOVERY_PORT),
                service_port("http-monitoring", MONITORING_PORT),
            ],
            selector: labels,
            affinity_timeout: None,
        });
        Ok(())
    }

    /// The control plane's pod, once added.
    pub fn control_plane(&self) -> Option<&PodPlan> {
        self.pods.iter().find(|p| {
            p.namespace == CONTROL_PLANE_NAMESPACE && p.name.starts_with(CONTROL_PLANE_NAME)
        })
    }
}
