//! The resource types the discovery API serves, their type URLs and the order of a push.

use std::fmt;

use mesh_proto::discovery::type_url;
use serde::{Deserialize, Serialize};

/// A resource type the discovery server pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    /// Clusters (CDS).
    #[serde(rename = "CDS")]
    Cluster,
    /// Endpoints of each cluster (EDS).
    #[serde(rename = "EDS")]
    Endpoints,
    /// Listeners (LDS).
    #[serde(rename = "LDS")]
    Listener,
    /// Route configs (RDS).
    #[serde(rename = "RDS")]
    Route,
    /// How the proxy reports its traffic (TDS): at most one resource, `telemetry`.
    #[serde(rename = "TDS")]
    Telemetry,
}

impl ResourceType {
    /// Every type in push order: clusters, endpoints, listeners, routes, telemetry.
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

    /// The type a type URL names, if the server serves it.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The xDS short name (CDS, EDS, LDS, RDS, TDS), as `mesh proxy-status` prints it.
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoints => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
            ResourceType::Telemetry => "TDS",
        }
    }

    /// The value of the `type` label on the control plane's metrics.
    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cds",
            ResourceType::Endpoints => "eds",
            ResourceType::Listener => "lds",
            ResourceType::Route => "rds",
            ResourceType::Telemetry => "tds",
        }
    }

    /// Position in push order, for per-type arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_round_trip_and_push_order_is_cds_eds_lds_rds_tds() {
        for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
            assert_eq!(ResourceType::from_type_url(ty.type_url()), Some(ty));
            assert_eq!(ty.index(), i);
        }
        let names: Vec<_> = ResourceType::ALL.map(ResourceType::short_name).into();
        assert_eq!(names, ["CDS", "EDS", "LDS", "RDS", "TDS"]);
        assert_eq!(
            ResourceType::from_type_url("type.googleapis.com/mesh.config.v1.Authorization"),
            None
        );
    }
}
