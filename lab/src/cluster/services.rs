//! Services: types, ClusterIPs and NodePorts handed out as the API server would.

use std::{collections::BTreeSet, net::Ipv4Addr};

use k8s_openapi::{api::core::v1::Service, apimachinery::pkg::util::intstr::IntOrString};

use super::{
    CLUSTER_DNS_IP, NamespacePlan, Protocol, SERVICE_CIDR, ServiceKind, ServicePlan,
    ServicePortPlan, TargetPort, addresses::contains,
};
use crate::manifest::Manifests;

/// The NodePort range.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Where automatic ClusterIPs start (lower ones are kept for well-known Services).
const FIRST_AUTOMATIC_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// `sessionAffinity: ClientIP`'s default timeout.
const DEFAULT_AFFINITY_SECONDS: u32 = 10800;

/// Plans every Service, plus the lab's `kube-system/kube-dns`.
pub fn plan(
    manifests: &Manifests,
    namespaces: &[NamespacePlan],
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<ServicePlan> {
    let mut services = vec![kube_dns()];
    let mut sorted: Vec<&Service> = manifests.services.iter().collect();
    sorted.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    let mut taken_ips: BTreeSet<Ipv4Addr> = [CLUSTER_DNS_IP, Ipv4Addr::new(10, 96, 0, 1)].into();
    let mut taken_node_ports = BTreeSet::new();
    // Written addresses and ports first, so automatic ones never collide with them.
    for service in &sorted {
        if let Some(ip) = written_cluster_ip(service) {
            taken_ips.insert(ip);
        }
        for port in service.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            if let Some(node_port) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
                taken_node_ports.insert(node_port);
            }
        }
    }
    for service in sorted {
        let namespace = service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = service.metadata.name.clone().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        if !namespaces.iter().any(|n| n.name == namespace) {
            problems.push(format!(
                "Service {key}: namespace {namespace} is not defined; add a Namespace manifest for it"
            ));
            continue;
        }
        if services
            .iter()
            .any(|s| s.namespace == namespace && s.name == name)
        {
            problems.push(format!("Service {key} is defined twice"));
            continue;
        }
        let Some(spec) = &service.spec else {
            problems.push(format!("Service {key} has no spec"));
            continue;
        };
        let written_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let kind = match (written_type, headless) {
            ("ClusterIP", true) => ServiceKind::Headless,
            ("ClusterIP", false) => ServiceKind::ClusterIp,
            ("NodePort", _) => ServiceKind::NodePort,
            ("LoadBalancer", _) => {
                warnings.push(format!(
                    "Service {key}: the lab has no load balancer; served as a NodePort Service"
                ));
                ServiceKind::NodePort
            }
            (other, _) => {
                problems.push(format!(
                    "Service {key}: type {other} is not supported in the lab"
                ));
                continue;
            }
        };
        let cluster_ip = match (kind, spec.cluster_ip.as_deref()) {
            (ServiceKind::Headless, _) => None,
            (_, Some(written)) if !written.is_empty() => match written_cluster_ip(service) {
                Some(ip) => Some(ip),
                None => {
                    problems.push(format!(
                        "Service {key}: clusterIP {written} is not an address in {}/{}",
                        SERVICE_CIDR.0, SERVICE_CIDR.1
                    ));
                    continue;
                }
            },
            _ => Some(next_ip(&mut taken_ips)),
        };
        let ports = ports(spec, kind, &key, &mut taken_node_ports, problems);
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        services.push(ServicePlan {
            namespace,
            name,
            kind,
            cluster_ip,
            ports,
            selector: spec.selector.clone().unwrap_or_default(),
            affinity_timeout,
        });
    }
    services
}

fn ports(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    kind: ServiceKind,
    key: &str,
    taken_node_ports: &mut BTreeSet<u16>,
    problems: &mut Vec<String>,
) -> Vec<ServicePortPlan> {
    let written = spec.ports.clone().unwrap_or_default();
    if written.is_empty() && kind != ServiceKind::Headless {
        problems.push(format!("Service {key} has no ports"));
    }
    let mut ports = Vec::new();
    for port in written {
        let name = port.name.clone().unwrap_or_default();
        let Some(number) = u16::try_from(port.port).ok().filter(|p| *p > 0) else {
            problems.push(format!("Service {key}: port {} is out of range", port.port));
            continue;
        };
        let protocol = match port.protocol.as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some(other) => {
                problems.push(format!(
                    "Service {key}: protocol {other} is not supported in the lab"
                ));
                continue;
            }
        };
        if written_names_clash(&ports, &name) {
            problems.push(format!(
                "Service {key}: ports must have distinct names when there are several"
            ));
        }
        let target = match port.target_port {
            None => TargetPort::Number(number),
            Some(IntOrString::Int(n)) => match u16::try_from(n).ok().filter(|p| *p > 0) {
                Some(n) => TargetPort::Number(n),
                None => {
                    problems.push(format!("Service {key}: targetPort {n} is out of range"));
                    continue;
                }
            },
            Some(IntOrString::String(name)) => TargetPort::Name(name),
        };
        let node_port = match (kind, port.node_port) {
            (ServiceKind::NodePort, Some(written)) => {
                match u16::try_from(written)
                    .ok()
                    .filter(|p| NODE_PORTS.contains(p))
                {
                    Some(p) => Some(p),
                    None => {
                        problems.push(format!(
                            "Service {key}: nodePort {written} is outside {}-{}",
                            NODE_PORTS.start(),
                            NODE_PORTS.end()
                        ));
                        continue;
                    }
                }
            }
            (ServiceKind::NodePort, None) => {
                let free = NODE_PORTS.clone().find(|p| !taken_node_ports.contains(p));
                let Some(free) = free else {
                    problems.push(format!("Service {key}: no NodePort left"));
                    continue;
                };
                taken_node_ports.insert(free);
                Some(free)
            }
            _ => None,
        };
        ports.push(ServicePortPlan {
            name,
            protocol,
            port: number,
            target,
            node_port,
            app_protocol: port.app_protocol.clone(),
        });
    }
    ports
}

fn written_names_clash(ports: &[ServicePortPlan], name: &str) -> bool {
    !ports.is_empty() && (name.is_empty() || ports.iter().any(|p| p.name == name))
}

fn written_cluster_ip(service: &Service) -> Option<Ipv4Addr> {
    let written = service.spec.as_ref()?.cluster_ip.as_deref()?;
    let ip: Ipv4Addr = written.parse().ok()?;
    contains(SERVICE_CIDR, ip).then_some(ip)
}

fn next_ip(taken: &mut BTreeSet<Ipv4Addr>) -> Ipv4Addr {
    let mut candidate = u32::from(FIRST_AUTOMATIC_IP);
    while taken.contains(&Ipv4Addr::from(candidate)) {
        candidate += 1;
    }
    let ip = Ipv4Addr::from(candidate);
    taken.insert(ip);
    ip
}

/// `kube-system/kube-dns`: the lab's cluster DNS at 10.96.0.10, UDP and TCP port 53.
fn kube_dns() -> ServicePlan {
    let port = |name: &str, protocol| ServicePortPlan {
        name: name.to_owned(),
        protocol,
        port: 53,
        target: TargetPort::Number(53),
        node_port: None,
        app_protocol: None,
    };
    ServicePlan {
        namespace: "kube-system".to_owned(),
        name: "kube-dns".to_owned(),
        kind: ServiceKind::ClusterIp,
        cluster_ip: Some(CLUSTER_DNS_IP),
        ports: vec![port("dns", Protocol::Udp), port("dns-tcp", Protocol::Tcp)],
        selector: [("k8s-app".to_owned(), "kube-dns".to_owned())].into(),
        affinity_timeout: None,
    }
}
