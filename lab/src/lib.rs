//! The mesh lab: a Kubernetes-shaped cluster on one Linux machine, with network namespaces as
//! pods, a bridge as the pod network and kube-proxy-style iptables rules for Services.
//!
//! Not built yet: this crate is a placeholder in the workspace until issue #3 lands.
