//! `telemetry.istio.io/v1` Telemetry: how a workload's sidecar reports (trace sampling and
//! collector, access logging and its filter).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{WorkloadSelector, nullable, string_enum};

/// The Telemetry spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "telemetry.istio.io",
    version = "v1",
    kind = "Telemetry",
    plural = "telemetries",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct TelemetrySpec {
    /// Workloads it applies to; unset means every workload of the namespace (mesh-wide in the
    /// root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Resources it applies to (not supported by mesh).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<serde_json::Value>,
    /// Trace settings, each for the sides its `match` names.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Access log settings, each for the sides its `match` names.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
    /// Metric settings (not supported by mesh: its metrics are always Istio's standard set).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<serde_json::Value>,
}

/// Trace settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Tracing {
    /// Which sides they apply to; both when unset.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<TrafficMatch>,
    /// Collectors by the name the control plane knows them (`--tracing-provider`).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Percent of new traces recorded, 0 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Whether spans are not reported at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Extra span attributes (not supported by mesh).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub custom_tags: serde_json::Map<String, serde_json::Value>,
}

/// Access log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogging {
    /// Which sides they apply to; both when unset.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<TrafficMatch>,
    /// Where lines go: `envoy` (the sidecar's stdout, Istio's built-in name) is the only one.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Whether lines are not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests get a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// Which sides of a workload's traffic settings apply to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficMatch {
    /// The sides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

string_enum! {
    /// Sides of a workload's traffic.
    WorkloadMode {
        /// Requests the workload sends and receives.
        ClientAndServer = "CLIENT_AND_SERVER",
        /// Requests the workload sends.
        Client = "CLIENT",
        /// Requests the workload receives.
        Server = "SERVER",
    }
}

/// A provider by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderRef {
    /// The name.
    pub name: String,
}

/// An access log filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogFilter {
    /// A CEL expression over Envoy's attribute names, e.g. `response.code >= 400`.
    pub expression: String,
}
