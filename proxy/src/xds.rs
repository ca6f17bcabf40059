//! Discovery mode: the proxy's config comes from the control plane over one aggregated gRPC
//! stream (`mesh.discovery.v1`), state of the world by default or delta, instead of a file.
//!
//! `DiscoveryArgs` holds the flags (address, node metadata); `DiscoveryClient::first_config`
//! waits for the first complete config (every type received) before the proxy starts, so
//! `/healthz/ready` turns ready only then; `follow` applies later pushes atomically, ACKing or
//! NACKing each. An `https://` address means TLS, the control plane's certificate checked
//! against the mesh root (`DiscoveryTls`); `http://` is plain h2c.

mod args;
mod backoff;
mod cause;
mod client;
mod held;
mod resource_type;
mod session;
mod startup;
mod tls;

use std::path::PathBuf;

pub use args::DiscoveryArgs;
pub(crate) use backoff::Backoff;
pub use client::{ClientSettings, DiscoveryClient};
pub(crate) use resource_type::ResourceType;
pub use tls::DiscoveryTls;

/// Why discovery mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    /// The discovery address is not a URL.
    #[error(
        "--discovery-address {address:?} is not a valid address (e.g. http://mesh-control-plane.mesh-system:15012): {source}"
    )]
    Address {
        /// The address given.
        address: String,
        /// Why it does not parse.
        source: tonic::transport::Error,
    },
    /// An https:// address without a root to check the control plane's certificate against.
    #[error(
        "--discovery-address {address:?} is https:// but no --discovery-root-cert was given; \
         give the mesh root certificate (the control plane's --root-cert-out)"
    )]
    NoRootCert {
        /// The address given.
        address: String,
    },
    /// A root certificate for a plain-text address: the operator expected TLS.
    #[error(
        "--discovery-root-cert is given but --discovery-address {address:?} is plain h2c; \
         write https:// for TLS"
    )]
    RootCertWithoutTls {
        /// The address given.
        address: String,
    },
    /// The root certificate file cannot be read.
    #[error("cannot read the discovery root certificate {path}: {error}")]
    RootCertFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The root certificate file holds no usable certificate.
    #[error("the discovery root certificate {path} is not usable: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server name is not a DNS name or IP address.
    #[error("--discovery-server-name {name:?} is neither a DNS name nor an IP address")]
    ServerName {
        /// The name given.
        name: String,
    },
    /// tonic refused the TLS settings.
    #[error("cannot set up TLS to the control plane: {error}")]
    Tls {
        /// Why.
        error: tonic::transport::Error,
    },
    /// The labels file cannot be read.
    #[error("cannot read the pod labels file {path}: {source}")]
    LabelsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
