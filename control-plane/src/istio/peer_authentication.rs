//! `security.istio.io/v1` PeerAuthentication: which mutual TLS a workload's inbound accepts.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{WorkloadSelector, nullable, string_enum};

/// The PeerAuthentication spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "PeerAuthentication",
    plural = "peerauthentications",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct PeerAuthenticationSpec {
    /// Workloads it applies to; unset means every workload of the namespace (mesh-wide in the
    /// root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The mutual TLS mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Modes for single ports, by port number.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

string_enum! {
    /// Mutual TLS modes.
    MutualTlsMode {
        /// Inherit from the parent scope.
        Unset = "UNSET",
        /// Plain text only.
        Disable = "DISABLE",
        /// Both plain text and mutual TLS.
        Permissive = "PERMISSIVE",
        /// Mutual TLS only.
        Strict = "STRICT",
    }
}

/// A mutual TLS setting.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MutualTls {
    /// The mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<MutualTlsMode>,
}
