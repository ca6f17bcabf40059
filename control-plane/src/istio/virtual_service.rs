//! `networking.istio.io/v1` VirtualService: routing rules for traffic addressed to hosts.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Headers, Percent, PortSelector, StringMatch, nullable};

/// The VirtualService spec: routes for HTTP, TLS and TCP traffic to `hosts`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    plural = "virtualservices",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualServiceSpec {
    /// Destination hosts these rules apply to: short names resolve in the object's namespace.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways and sidecars (`mesh`) the rules apply to; empty means `mesh`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered HTTP routing rules.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Ordered rules for unterminated TLS traffic, by SNI.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Ordered rules for opaque TCP traffic.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces that see this object: `.` for its own, `*` for all; empty means all.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// One HTTP routing rule: conditions and what to do with matching requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRoute {
    /// Name of the rule, for logs and route names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, OR-ed; empty matches every request.
    #[serde(
        rename = "match",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer directly with a fixed response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Delegate to another VirtualService (gateways only in Istio; not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Path and authority rewrites before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Whole-request timeout, e.g. `10s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Mirror requests to this destination as well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Several mirror destinations, each with its own percentage.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Share of requests mirrored to `mirror`; unset mirrors all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer form of `mirrorPercentage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Cross-origin resource sharing policy (not supported by mesh; reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<serde_json::Value>,
    /// Header operations for the whole rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// Conditions on an HTTP request; all given ones must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMatchRequest {
    /// Name of the match, appended to the rule's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// URI scheme condition (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// HTTP method condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority (Host) condition (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header conditions by lower-case name; `{}` means present.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, StringMatch>,
    /// The destination port the request was sent to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels the calling workload must carry.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to (`mesh` for sidecars).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameter conditions.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Match the path case-insensitively.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Header conditions that must not hold.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace the calling workload must run in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Prefix for this match's statistics (accepted, unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// A destination with its share of traffic and header operations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteDestination {
    /// Where requests go.
    pub destination: Destination,
    /// Relative share; with one destination it may be omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Header operations when this destination is chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A destination service, optionally a subset and a port of it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Destination {
    /// Service host: short names resolve in the VirtualService's namespace.
    pub host: String,
    /// A subset defined by the host's DestinationRule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The service port; needed when the service has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// An HTTP redirect answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRedirect {
    /// Replacement path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replacement authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Replacement port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Derive the port from the scheme (`FROM_PROTOCOL_DEFAULT`, `FROM_REQUEST_PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<String>,
    /// Replacement scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code; 301 when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
}

/// A fixed answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpDirectResponse {
    /// Status code.
    pub status: u32,
    /// Body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A direct response body, as text or base64 bytes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpBody {
    /// Text body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Base64-encoded body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// A reference to a delegate VirtualService.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Delegate {
    /// Name of the delegate.
    pub name: String,
    /// Namespace of the delegate; the referrer's when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Path and authority rewrites.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRewrite {
    /// Replaces the matched path prefix (or the whole path for exact and regex matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the Host/authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Regex rewrite of the path (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<serde_json::Value>,
}

/// Retry policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRetry {
    /// Number of retries; 0 disables retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout per attempt, e.g. `2s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Comma-separated conditions, e.g. `5xx,connect-failure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Retry in other localities (warned about: no locality-aware balancing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Avoid hosts tried before (always done when another endpoint exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff between retries, e.g. `25ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// Delays and aborts injected into requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpFaultInjection {
    /// Delay before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answer with an error instead of forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// An injected delay.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultDelay {
    /// How long, e.g. `5s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<String>,
    /// Share of requests delayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer form of `percentage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// An injected error.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultAbort {
    /// HTTP status to answer with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name to answer with, e.g. `UNAVAILABLE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// One of several mirror destinations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMirrorPolicy {
    /// Where mirrored requests go.
    pub destination: Destination,
    /// Share of requests mirrored; unset mirrors all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// One opaque TCP routing rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpRoute {
    /// Conditions, OR-ed; empty matches every connection.
    #[serde(
        rename = "match",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// One TLS passthrough routing rule, by SNI.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsRoute {
    /// Conditions, OR-ed; each names SNI hosts.
    #[serde(
        rename = "match",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions on a TCP connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct L4MatchAttributes {
    /// Destination IP subnets (not supported by mesh).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels the calling workload must carry.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the calling workload must run in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Source IP subnet (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
}

/// Conditions on a TLS connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsMatchAttributes {
    /// Server names (SNI) to match, wildcards allowed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Destination IP subnets (not supported by mesh).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels the calling workload must carry.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this condition applies to.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the calling workload must run in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// A destination with its share of connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteDestination {
    /// Where connections go.
    pub destination: Destination,
    /// Relative share; with one destination it may be omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}
