//! The lab's kube-proxy, iptables mode: each node's network namespace gets the rules that
//! kube-proxy would write there, in kube-proxy's own shape, so Services behave as on a real
//! cluster (ClusterIPs, NodePorts, ClientIP affinity, REJECT when nothing is ready).
//!
//! `rules` renders the `iptables-restore` input for the filter and nat tables from the ready
//! endpoints of every Service port (a pure function, golden-tested); `chain_name` names the
//! per-Service chains as kube-proxy does (SHA-256, base32); `existing` reads `iptables-save` output
//! so that a sync adds the hook jumps only once and removes the chains of a previous sync that
//! are no longer used; `conntrack` works out which UDP flows went stale; `proxier` applies it
//! all inside one node's namespace.

mod chain_name;
mod conntrack;
mod error;
mod existing;
mod netns_command;
mod proxier;
mod rules;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;

pub use error::KubeProxyError;
pub use existing::ExistingRules;
pub use proxier::KubeProxy;
pub use rules::restore_input;

/// The transport protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One port of a Service with the endpoints ready to serve it (headless Services have none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's name; empty when the port is unnamed.
    pub port_name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The Service's ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The port on the ClusterIP.
    pub port: u16,
    /// The NodePort, for `type: NodePort` Services.
    pub node_port: Option<u16>,
    /// `Some(seconds)` for `sessionAffinity: ClientIP` (Kubernetes' default is 10800).
    pub affinity_timeout: Option<u32>,
    /// The ready endpoints, in the order kube-proxy would see them.
    pub endpoints: Vec<Endpoint>,
}

/// A ready endpoint: a pod IP and its target port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The target port on the pod.
    pub port: u16,
}

/// What the proxier needs to know about the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxierConfig {
    /// The pod network (e.g. 10.244.0.0/16): traffic to a ClusterIP from outside it is
    /// masqueraded, as kube-proxy's `--cluster-cidr` does.
    pub cluster_cidr: (Ipv4Addr, u8),
}

// === impl Protocol ===

impl Protocol {
    /// "tcp" or "udp", as iptables and kube-proxy's chain hashes spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl ServicePort ===

impl ServicePort {
    /// kube-proxy's name for this port: `namespace/service` or `namespace/service:port-name`.
    pub fn service_port_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }
}

// === impl Endpoint ===

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}
