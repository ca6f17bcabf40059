//! What can go wrong computing or applying a node's Service rules, each with what to do.

use std::io;

use thiserror::Error;

/// Why a sync of a node's Service rules failed.
#[derive(Debug, Error)]
pub enum KubeProxyError {
    /// The same Service port was passed twice, which would declare its chains twice.
    #[error(
        "Service port {service_port} ({protocol}) is listed twice; pass each Service port once"
    )]
    DuplicateServicePort {
        /// kube-proxy's name of the port (`ns/svc:port`).
        service_port: String,
        /// Its protocol.
        protocol: String,
    },
    /// The same endpoint was passed twice for one Service port.
    #[error(
        "endpoint {endpoint} is listed twice for Service port {service_port}; pass each ready \
         endpoint once"
    )]
    DuplicateEndpoint {
        /// kube-proxy's name of the port.
        service_port: String,
        /// The endpoint, `ip:port`.
        endpoint: String,
    },
    /// Neither iptables backend is installed.
    #[error(
        "neither iptables-nft nor iptables-legacy (restore and save) is installed; install \
         the iptables package"
    )]
    NoIptables,
    /// The node's network namespace does not exist.
    #[error(
        "network namespace {netns} does not exist; create the node (ip netns add {netns}) \
         before syncing its Services"
    )]
    NoNamespace {
        /// The namespace's name.
        netns: String,
    },
    /// The kernel refused: not root.
    #[error(
        "{command} in network namespace {netns} was refused ({detail}); the lab's kube-proxy \
         needs root (CAP_SYS_ADMIN to enter the namespace, CAP_NET_ADMIN for iptables)"
    )]
    NeedsRoot {
        /// The command that was refused.
        command: String,
        /// The namespace it ran in.
        netns: String,
        /// Its first line of complaint.
        detail: String,
    },
    /// `ip` could not be started.
    #[error("could not run `ip netns exec {netns} {command}`: {source}; install iproute2")]
    Spawn {
        /// The command that was to run in the namespace.
        command: String,
        /// The namespace.
        netns: String,
        /// Why.
        source: io::Error,
    },
    /// A command failed for another reason.
    #[error("{command} failed in network namespace {netns} ({status}): {detail}")]
    Failed {
        /// The command.
        command: String,
        /// The namespace it ran in.
        netns: String,
        /// Its exit status.
        status: String,
        /// Its stderr, and its input if it had one.
        detail: String,
    },
}
