//! The resource types the proxy subscribes to, in the order the control plane pushes them.

use std::fmt;

use mesh_proto::discovery::type_url;

/// A resource type of the discovery API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// Clusters (CDS).
    Cluster,
    /// Endpoints of each cluster (EDS).
    Endpoints,
    /// Listeners (LDS).
    Listener,
    /// Route configs (RDS).
    Route,
    /// Telemetry settings (TDS).
    Telemetry,
}

impl ResourceType {
    /// Every type, in the order subscriptions are sent (and pushes arrive).
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoints,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Telemetry,
    ];

    /// The type URL on the wire.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => type_url::CLUSTER,
            ResourceType::Endpoints => type_url::CLUSTER_LOAD_ASSIGNMENT,
            ResourceType::Listener => type_url::LISTENER,
            ResourceType::Route => type_url::ROUTE_CONFIG,
            ResourceType::Telemetry => type_url::TELEMETRY,
        }
    }

    /// The type a type URL names, if the proxy knows it.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoints => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
            ResourceType::Telemetry => "TDS",
        })
    }
}
