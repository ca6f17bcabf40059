//! Discovery mode: the proxy's config comes from the control plane over one aggregated gRPC
//! stream (`mesh.discovery.v1`), state of the world by default or delta, instead of a file.
//!
//! `DiscoveryArgs` holds the flags (address, node metadata); `DiscoveryClient::first_config`
//! waits for the first complete config (every type received) before the proxy starts, so
//! `/healthz/ready` turns ready only then; `follow` applies later pushes atomically, ACKing or
//! NACKing each. The connection is plain h2c for now; TLS arrives with the CA.

mod args;
mod backoff;
mod client;
mod held;
mod resource_type;
mod session;
mod startup;

use std::path::PathBuf;

pub use args::DiscoveryArgs;
pub use client::{ClientSettings, DiscoveryClient};
pub(crate) use resource_type::ResourceType;

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
    /// The labels file cannot be read.
    #[error("cannot read the pod labels file {path}: {source}")]
    LabelsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
