//! The `/etc/resolv.conf` that kubelet writes for a pod with the default `ClusterFirst` policy.

use std::net::Ipv4Addr;

/// What kubelet writes as a pod's resolv.conf: the namespace's search list, the cluster DNS
/// Service as the only nameserver, and `ndots:5`.
pub fn resolv_conf(namespace: &str, cluster_domain: &str, nameserver: Ipv4Addr) -> String {
    let domain = cluster_domain.trim_end_matches('.');
    format!(
        "search {namespace}.svc.{domain} svc.{domain} {domain}\nnameserver {nameserver}\noptions ndots:5\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_kubelet_writes() {
        assert_eq!(
            resolv_conf("shop", "cluster.local.", Ipv4Addr::new(10, 96, 0, 10)),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
    }
}
