//! The lab's address plan, as a kind cluster would have it.

use std::net::Ipv4Addr;

/// The pod network: node `n` owns `10.244.n.0/24`.
pub const POD_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 16);
/// The Service network (ClusterIPs).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
/// The ClusterIP of `kube-system/kube-dns`, written into every pod's resolv.conf.
pub const CLUSTER_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The network joining the nodes: node `n` is `172.18.0.(n+1)/24`, as kind numbers them.
pub const NODE_NETWORK_PREFIX: u8 = 24;

/// This machine's address on the node network when the lab links it there (`topology::
/// link_host`), as docker's bridge is for kind's nodes.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);

/// The address of node `index` (from 1) on the node network.
pub fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, index + 1)
}

/// The pod subnet (a /24) of node `index`.
pub fn node_pod_subnet(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, index, 0)
}

/// The bridge address of node `index`: its pods' default gateway.
pub fn node_pod_gateway(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, index, 1)
}

/// Whether `ip` lies in `cidr`.
pub fn contains(cidr: (Ipv4Addr, u8), ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(cidr.1)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(cidr.0) & mask
}
