//! Scaling a Deployment of a running lab as its ReplicaSet would: the pods it should have, new
//! ones placed on the node running the fewest pods at the lowest free address of its subnet,
//! surplus ones (the highest replicas) removed.

use std::net::Ipv4Addr;

use super::{ClusterPlan, NodePlan, PlanError, PodPlan, pods::scaled_pods};
use crate::manifest::Manifests;

/// How many pods a node's /24 holds (.1 is the bridge).
const MAX_PODS_PER_NODE: usize = 253;

/// What scaling a Deployment changed in the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScaleChange {
    /// Pods to start.
    pub added: Vec<PodPlan>,
    /// Pods to stop and remove.
    pub removed: Vec<PodPlan>,
}

impl ClusterPlan {
    /// Scales Deployment `namespace/deployment` to `replicas` pods and returns the change.
    pub fn scale(
        &mut self,
        manifests: &Manifests,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> Result<ScaleChange, PlanError> {
        let capacity = self.nodes.len() * MAX_PODS_PER_NODE;
        if usize::try_from(replicas).unwrap_or(usize::MAX) > capacity {
            return Err(PlanError(vec![format!(
                "Deployment {namespace}/{deployment}: {replicas} replicas do not fit the lab's {} \
                 nodes (at most {MAX_PODS_PER_NODE} pods each)",
                self.nodes.len()
            )]));
        }
        let nodes = self.nodes.clone();
        let mut taken: Vec<(String, Ipv4Addr)> =
            self.pods.iter().map(|p| (p.node.clone(), p.ip)).collect();
        let place = |wanted: Option<&str>| {
            let node = match wanted {
                Some(name) => nodes.iter().find(|n| n.name == name)?,
                None => least_busy(&nodes, &taken)?,
            };
            let ip = free_address(node, &taken)?;
            taken.push((node.name.clone(), ip));
            Some((node, ip))
        };
        let exists = |name: &str| {
            self.pods
                .iter()
                .any(|p| p.namespace == namespace && p.name == name)
        };
        let (wanted, added) = scaled_pods(
            manifests,
            &self.namespaces,
            namespace,
            deployment,
            replicas,
            exists,
            place,
        )
        .map_err(PlanError)?;
        let surplus = |p: &PodPlan| {
            p.namespace == namespace
                && p.deployment.as_deref() == Some(deployment)
                && !wanted.contains(&p.name)
        };
        let removed: Vec<PodPlan> = self.pods.iter().filter(|p| surplus(p)).cloned().collect();
        self.pods.retain(|p| !surplus(p));
        self.pods.extend(added.iter().cloned());
        Ok(ScaleChange { added, removed })
    }
}

/// The node running the fewest pods (the first of those on a tie).
pub(super) fn least_busy<'n>(
    nodes: &'n [NodePlan],
    taken: &[(String, Ipv4Addr)],
) -> Option<&'n NodePlan> {
    nodes
        .iter()
        .min_by_key(|n| taken.iter().filter(|(t, _)| *t == n.name).count())
}

/// The lowest address of the node's pod subnet that no pod holds (.1 is the bridge).
pub(super) fn free_address(node: &NodePlan, taken: &[(String, Ipv4Addr)]) -> Option<Ipv4Addr> {
    let [a, b, c, _] = node.pod_subnet.octets();
    (2..255)
        .map(|host| Ipv4Addr::new(a, b, c, host))
        .find(|ip| !taken.iter().any(|(_, t)| t == ip))
}

#[cfg(test)]
mod tests;
