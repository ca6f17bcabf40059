//! The mesh lab: a Kubernetes-shaped cluster on one Linux machine, with network namespaces as
//! pods, a bridge as the pod network and kube-proxy-style iptables rules for Services.
//!
//! `manifest` reads ordinary Kubernetes YAML; `cluster` turns it into the desired state (pods
//! placed on nodes with IPs, Services with ClusterIPs and NodePorts, ready endpoints);
//! `topology` builds the namespaces, bridges and links; `kubeproxy` computes kube-proxy's
//! iptables rules from Services and endpoints; `dns` answers cluster names as CoreDNS would;
//! `pods` starts each pod's processes (mesh-init, mesh-proxy as uid 1337, then the app);
//! `supervisor` keeps it all running behind `mesh lab up`; `workload` is the built-in app.

pub mod cluster;
pub mod dns;
pub mod kubeproxy;
pub mod manifest;
pub mod netns;
pub mod pods;
pub mod proxyconfig;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod topology;
pub mod workload;
