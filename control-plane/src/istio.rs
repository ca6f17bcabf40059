//! Istio's configuration kinds as our own serde types, in Istio's API groups and field names so
//! users' existing YAML reads unchanged: `networking.istio.io/v1` VirtualService,
//! DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar, `security.istio.io/v1` PeerAuthentication,
//! AuthorizationPolicy and `telemetry.istio.io/v1` Telemetry. Unknown fields are tolerated (and reported by `analyze`); enum values
//! this version does not know are kept as `Unknown` and reported by translation.

pub mod authorization_policy;
pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod peer_authentication;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;

pub use authorization_policy::AuthorizationPolicy;
pub use destination_rule::DestinationRule;
pub use gateway::Gateway;
pub use peer_authentication::PeerAuthentication;
pub use service_entry::{ServiceEntry, WorkloadEntry};
pub use sidecar::Sidecar;
pub use telemetry::Telemetry;
pub use virtual_service::VirtualService;

#[cfg(test)]
mod tests;
