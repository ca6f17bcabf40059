//! Clusters and their endpoints for one proxy: a cluster per service port, and one per
//! DestinationRule subset holding only the endpoints that carry the subset's labels.

use std::collections::{BTreeMap, HashMap};

use mesh_proto::config::v1::{
    Cluster, ClusterLoadAssignment, Endpoint, HashPolicy, ProxyConfig, cluster::LbPolicy,
};

use super::{
    destination_rule::{CompiledSubset, DestinationRules},
    names::cluster_name,
    protocol::upstream_protocol,
    registry::{PortModel, Registry, ServiceModel},
    sidecar_scope::{Scope, admits},
    traffic_policy::{PolicyParts, tls_for_host},
};
use crate::node::ProxyNode;

/// Cluster names a proxy has, with the hash policy routes to them carry.
pub(crate) type ClusterHashes = HashMap<String, Option<HashPolicy>>;

/// Adds the clusters and endpoints of every service `node` sees to `config`.
pub(crate) fn add_clusters(
    registry: &Registry,
    rules: &DestinationRules,
    node: &ProxyNode,
    scope: Option<&Scope>,
    config: &mut ProxyConfig,
) -> ClusterHashes {
    let mut hashes = ClusterHashes::new();
    for service in registry
        .iter()
        .filter(|s| s.visibility.admits(&node.namespace))
    {
        let rule = rules.select(&service.host, &service.namespace, node);
        for port in (service.ports.iter()).filter(|p| admits(scope, service, p.port)) {
            let parts = rule.map(|r| r.parts(port.port, None)).unwrap_or_default();
            add_cluster(service, port, None, parts, config, &mut hashes);
            for subset in rule.iter().flat_map(|r| r.subsets.iter()) {
                let parts = rule
                    .map(|r| r.parts(port.port, Some(subset)))
                    .unwrap_or_default();
                add_cluster(service, port, Some(subset), parts, config, &mut hashes);
            }
        }
    }
    hashes
}

fn add_cluster(
    service: &ServiceModel,
    port: &PortModel,
    subset: Option<&CompiledSubset>,
    parts: PolicyParts,
    config: &mut ProxyConfig,
    hashes: &mut ClusterHashes,
) {
    let name = cluster_name(
        port.port,
        subset.map_or("", |s| s.name.as_str()),
        &service.host,
    );
    let (lb_policy, ring_size, hash) = match parts.load_balancer {
        Some(lb) => (lb.policy, lb.ring_size, lb.hash),
        None => (LbPolicy::PeakEwma, 0, None),
    };
    config.clusters.push(Cluster {
        name: name.clone(),
        lb_policy: lb_policy.into(),
        protocol: upstream_protocol(port.protocol).into(),
        connection_pool: parts.connection_pool,
        outlier_detection: parts.outlier_detection,
        tls: parts.tls.map(|tls| tls_for_host(tls, &service.host)),
        ring_size,
        discovery: service.discovery.into(),
    });
    let endpoints = match subset {
        Some(subset) => port
            .endpoints
            .iter()
            .filter(|e| carries(e, &subset.labels))
            .cloned()
            .collect(),
        None => port.endpoints.clone(),
    };
    config.endpoints.push(ClusterLoadAssignment {
        cluster: name.clone(),
        endpoints,
    });
    hashes.insert(name, hash);
}

/// Whether an endpoint carries every one of `labels`.
fn carries(endpoint: &Endpoint, labels: &BTreeMap<String, String>) -> bool {
    labels
        .iter()
        .all(|(k, v)| endpoint.labels.get(k) == Some(v))
}
