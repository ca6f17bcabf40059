//! Bringing what depends on endpoints in line with readiness: kube-proxy's rules on each node,
//! cluster DNS, and the cluster folder the control plane reads.

use std::{collections::BTreeMap, sync::Arc, sync::atomic::Ordering};

use super::{LabError, Shared, cluster_dir};
use crate::{
    cluster::{CLUSTER_DOMAIN, ClusterPlan, POD_CIDR, PodPlan, Protocol, ServiceKind},
    dns::{
        DnsRecords, EXTERNAL_NAMES_ANNOTATION, HeadlessEndpoint, PortProtocol, ServiceAddress,
        ServicePortName,
    },
    kube_objects,
    kubeproxy::{self, ProxierConfig},
    manifest::Manifests,
};

/// Resyncs whenever asked, until the lab stops.
pub(super) async fn resync_loop(shared: Arc<Shared>) {
    loop {
        shared.resync.notified().await;
        let work = shared.clone();
        let result = tokio::task::spawn_blocking(move || resync(&work)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("resync failed: {error}"),
            Err(error) => tracing::error!("resync panicked: {error}"),
        }
    }
}

fn resync(shared: &Shared) -> Result<(), LabError> {
    let (plan, ready, generation) = {
        let state = shared.lock_state();
        let ready: BTreeMap<String, bool> = state
            .pods
            .iter()
            .map(|(k, s)| (k.clone(), s.ready))
            .collect();
        let generation = shared.generation.load(Ordering::SeqCst);
        (state.plan.clone(), ready, generation)
    };
    let is_ready = |pod: &PodPlan| ready.get(&pod.key()).copied().unwrap_or(false);
    let ports = kube_proxy_ports(&plan, is_ready);
    let config = ProxierConfig {
        cluster_cidr: POD_CIDR,
    };
    for proxy in shared
        .kube_proxies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter_mut()
    {
        proxy
            .sync(&config, &ports)
            .map_err(|source| LabError::KubeProxy {
                node: proxy.netns().to_owned(),
                source,
            })?;
    }
    shared.dns.update(dns_records(&plan, is_ready)?);
    write_cluster_folder(&shared.names.lab, &plan, &shared.manifests, is_ready)?;
    shared.written.send_replace(generation);
    Ok(())
}

/// Writes the cluster as the control plane should see it.
pub(super) fn write_cluster_folder(
    lab: &str,
    plan: &ClusterPlan,
    manifests: &Manifests,
    ready: impl Fn(&PodPlan) -> bool,
) -> Result<(), LabError> {
    let dir = cluster_dir(lab);
    let io = |source| LabError::Io {
        what: format!("the cluster folder {}", dir.display()),
        source,
    };
    let yaml =
        kube_objects::render(plan, manifests, ready).map_err(|e| io(std::io::Error::other(e)))?;
    kube_objects::write(&dir, &yaml).map_err(io)
}

/// Service ports with ready endpoints, as kube-proxy sees them (headless ones have no rules).
fn kube_proxy_ports(
    plan: &ClusterPlan,
    ready: impl Fn(&PodPlan) -> bool,
) -> Vec<kubeproxy::ServicePort> {
    let mut ports = Vec::new();
    for service in &plan.services {
        let Some(cluster_ip) = service.cluster_ip else {
            continue;
        };
        for port in &service.ports {
            ports.push(kubeproxy::ServicePort {
                namespace: service.namespace.clone(),
                service: service.name.clone(),
                port_name: port.name.clone(),
                protocol: match port.protocol {
                    Protocol::Tcp => kubeproxy::Protocol::Tcp,
                    Protocol::Udp => kubeproxy::Protocol::Udp,
                },
                cluster_ip,
                port: port.port,
                node_port: port.node_port,
                affinity_timeout: service.affinity_timeout,
                endpoints: plan
                    .endpoints(service, port, &ready)
                    .into_iter()
                    .map(|e| kubeproxy::Endpoint {
                        ip: e.ip,
                        port: e.port,
                    })
                    .collect(),
            });
        }
    }
    ports
}

/// The cluster's DNS records given which pods are ready.
pub(super) fn dns_records(
    plan: &ClusterPlan,
    ready: impl Fn(&PodPlan) -> bool,
) -> Result<DnsRecords, LabError> {
    let mut builder = DnsRecords::builder(CLUSTER_DOMAIN);
    for service in &plan.services {
        let headless = service.kind == ServiceKind::Headless;
        let address = match service.cluster_ip {
            Some(ip) if !headless => ServiceAddress::ClusterIp(ip),
            _ => {
                let mut endpoints: Vec<HeadlessEndpoint> = Vec::new();
                for port in service.ports.iter().take(1) {
                    for endpoint in plan.endpoints(service, port, &ready) {
                        let pod = plan.pod(&service.namespace, &endpoint.pod);
                        let hostname = pod
                            .filter(|p| p.subdomain.as_deref() == Some(&service.name))
                            .and_then(|p| p.hostname.clone());
                        endpoints.push(HeadlessEndpoint {
                            ip: endpoint.ip,
                            hostname,
                        });
                    }
                }
                ServiceAddress::Headless(endpoints)
            }
        };
        let ports: Vec<ServicePortName> = service
            .ports
            .iter()
            .map(|p| ServicePortName {
                name: p.name.clone(),
                protocol: match p.protocol {
                    Protocol::Tcp => PortProtocol::Tcp,
                    Protocol::Udp => PortProtocol::Udp,
                },
                port: p.port,
            })
            .collect();
        builder.add_service(&service.namespace, &service.name, address, &ports);
    }
    for pod in plan.pods.iter().filter(|p| ready(p)) {
        builder.add_pod(
            &pod.namespace,
            pod.ip,
            pod.hostname.as_deref(),
            pod.subdomain.as_deref(),
        );
        let claimed = pod.annotations.get(EXTERNAL_NAMES_ANNOTATION);
        for name in claimed.iter().flat_map(|names| names.split(',')) {
            builder.add_external(name.trim(), pod.ip);
        }
    }
    Ok(builder.build()?)
}
