//! The discovery server (`mesh.discovery.v1`): pushes each proxy its config over one
//! aggregated gRPC stream, state of the world or delta, with ACK/NACK.
//!
//! Translation publishes `ConfigSnapshot`s on a `tokio::sync::watch` channel (debounced before
//! publishing). For each stream the server splits the proxy's config into named resources with
//! content-hash versions, sends only the types (state of the world) or resources (delta) that
//! changed, in the order clusters → endpoints → listeners → routes, and records per type the
//! version sent and ACKed and the last NACK (`SyncStatus`). `serve` runs it over TLS with the
//! certificate the CA issued (`crate::ca`), or plain h2c for clients that speak only that.

mod connection;
mod metrics;
mod resource_type;
mod resources;
mod server;
mod snapshot;
mod status;
mod transport;
mod view;
mod wire;

pub use resource_type::ResourceType;
pub use server::DiscoveryServer;
pub use snapshot::{ConfigSnapshot, ConfigSource};
pub use status::{Nack, ProxySync, SyncState, SyncStatus, TypeSync};
pub use transport::serve;

/// Why the discovery server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    /// A metric could not be registered (a name clash in the server's own registry).
    #[error("cannot register the discovery server's metrics: {0}")]
    Metrics(prometheus::Error),
}
