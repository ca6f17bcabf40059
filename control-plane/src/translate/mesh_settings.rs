//! Mesh-wide settings the control plane is started with (Istio's meshConfig): the trace
//! collectors Telemetry objects may name, and what sidecars do with traffic to destinations
//! the registry does not know.

use std::str::FromStr;

use super::TracingProviders;

/// Mesh-wide settings.
#[derive(Debug, Clone, Default)]
pub struct MeshSettings {
    /// Trace collectors Telemetry objects may name.
    pub tracing_providers: TracingProviders,
    /// What sidecars do with traffic to unknown destinations, unless a Sidecar says otherwise.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
}

/// What a sidecar does with traffic to a destination outside the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutboundTrafficPolicy {
    /// Passed through to where the app sent it.
    #[default]
    AllowAny,
    /// Refused: 502 for HTTP, a closed connection otherwise.
    RegistryOnly,
}

impl OutboundTrafficPolicy {
    /// The name Istio gives the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundTrafficPolicy::AllowAny => "ALLOW_ANY",
            OutboundTrafficPolicy::RegistryOnly => "REGISTRY_ONLY",
        }
    }
}

impl FromStr for OutboundTrafficPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ALLOW_ANY" => Ok(OutboundTrafficPolicy::AllowAny),
            "REGISTRY_ONLY" => Ok(OutboundTrafficPolicy::RegistryOnly),
            other => Err(format!(
                "unknown outbound traffic policy {other:?}: use ALLOW_ANY or REGISTRY_ONLY"
            )),
        }
    }
}
