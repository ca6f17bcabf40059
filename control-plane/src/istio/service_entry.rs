//! `networking.istio.io/v1` ServiceEntry: services the mesh should know besides Kubernetes
//! Services (external APIs, VMs).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, nullable, string_enum};

/// The ServiceEntry spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "ServiceEntry",
    plural = "serviceentries",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEntrySpec {
    /// Host names of the service.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs of the service (captured like a Service's ClusterIP).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Whether the service is inside the mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Static endpoints.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// The Pods and WorkloadEntries of its namespace with these labels are its endpoints
    /// (instead of `endpoints`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Namespaces that see this object: `.` for its own, `*` for all; empty means all.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Names the endpoints' certificates may carry.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Port number.
    pub number: u32,
    /// `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TCP`, `TLS`, `MONGO`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port on the endpoints, when different.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

string_enum! {
    /// Whether a ServiceEntry's service is part of the mesh.
    Location {
        /// Outside the mesh.
        MeshExternal = "MESH_EXTERNAL",
        /// Inside the mesh.
        MeshInternal = "MESH_INTERNAL",
    }
}

string_enum! {
    /// How a ServiceEntry's endpoints are found.
    Resolution {
        /// Connect to the original destination.
        None = "NONE",
        /// The listed endpoint addresses.
        Static = "STATIC",
        /// Resolve the hosts or endpoint names by DNS (not supported by mesh).
        Dns = "DNS",
        /// Resolve by DNS, round robin (not supported by mesh).
        DnsRoundRobin = "DNS_ROUND_ROBIN",
    }
}

/// One endpoint of a ServiceEntry, and the spec of a `networking.istio.io/v1` WorkloadEntry (a
/// VM or other workload outside Kubernetes, selected by ServiceEntries' `workloadSelector`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "WorkloadEntry",
    plural = "workloadentries",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadEntrySpec {
    /// IP address (or DNS name).
    pub address: String,
    /// Port by port name, when different from the service port.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub ports: BTreeMap<String, u32>,
    /// Labels, for subsets.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Network (accepted, unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `region/zone/subzone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Relative weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account, for the identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
