//! The mesh lab: a Kubernetes-shaped cluster on one Linux machine, with network namespaces as
//! pods, a bridge as the pod network and kube-proxy-style iptables rules for Services.
//!
//! Built so far: the lab's built-in workload (`workload`), an echo server that needs no image.
//! The cluster itself (namespaces, bridge, kube-proxy rules, DNS, `mesh lab up`) is issue #3.

pub mod workload;
