//! `networking.istio.io/v1` Sidecar: what a workload's sidecar may reach (its egress hosts) and
//! what it does with traffic to destinations outside the registry.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, nullable, string_enum};

/// The Sidecar spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Sidecar",
    plural = "sidecars",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct SidecarSpec {
    /// The workloads it applies to; unset means every workload of the namespace without a
    /// Sidecar of its own (the whole mesh, in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// What the sidecar may reach, by port.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressListener>,
    /// Inbound listeners (not supported by mesh; reported).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<serde_json::Value>,
    /// What to do with traffic to destinations outside the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicySpec>,
}

/// One egress entry: the hosts the sidecar may reach (on one port, when given).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EgressListener {
    /// `namespace/host`: namespace `.` (the Sidecar's), `*` (any) or a name; host `*`,
    /// `*.suffix` or a name.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Only this port of the hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// The address to bind (not supported by mesh; reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener (not supported by mesh; reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<String>,
}

/// A port of an egress entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SidecarPort {
    /// Port number.
    pub number: u32,
    /// Protocol (informational here: the services' own ports say it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The outbound traffic policy of a Sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct OutboundTrafficPolicySpec {
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
    /// A proxy for unknown destinations (not supported by mesh; reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<serde_json::Value>,
}

string_enum! {
    /// What a sidecar does with traffic to destinations outside the registry.
    OutboundMode {
        /// Passed through.
        AllowAny = "ALLOW_ANY",
        /// Refused.
        RegistryOnly = "REGISTRY_ONLY",
    }
}
