//! The mesh lab: a Kubernetes-shaped cluster on one Linux machine, with network namespaces as
//! pods, a bridge as the pod network and kube-proxy-style iptables rules for Services.
//!
//! `manifest` reads ordinary Kubernetes YAML; `gateways` adds the workloads of the mesh's
//! Gateways as the control plane would in a cluster; `cluster` turns it into the desired state (pods
//! placed on nodes with IPs, Services with ClusterIPs and NodePorts, ready endpoints, the
//! control plane's pod and Service, scaling); `topology` builds the namespaces, bridges and
//! links; `kubeproxy` computes kube-proxy's iptables rules from Services and endpoints; `dns`
//! answers cluster names as CoreDNS would; `kube_objects` writes the cluster as an API server
//! would show it, for the control plane; `pods` starts each pod's processes (mesh-init,
//! mesh-proxy as uid 1337 in discovery mode, then the app); `supervisor` keeps it all running
//! behind `mesh lab up`, and `control` carries `mesh lab scale` to it; `workload` is the
//! built-in app.

pub mod cluster;
pub mod control;
pub mod dns;
pub mod gateways;
pub mod kube_objects;
pub mod kubeproxy;
pub mod manifest;
pub mod mesh_root;
pub mod netns;
pub mod pods;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod topology;
pub mod workload;
