//! `security.istio.io/v1` AuthorizationPolicy: which requests a workload accepts.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{WorkloadSelector, nullable, string_enum};

/// The AuthorizationPolicy spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    plural = "authorizationpolicies",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizationPolicySpec {
    /// Workloads it applies to; unset means every workload of the namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A resource it applies to (not supported by mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<serde_json::Value>,
    /// Resources it applies to (not supported by mesh).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<serde_json::Value>,
    /// What a matching request gets; ALLOW when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// External authorizer for CUSTOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Rules, OR-ed; none with ALLOW denies everything.
    #[serde(deserialize_with = "nullable")]
    pub rules: Vec<Rule>,
}

string_enum! {
    /// What a matching request gets.
    Action {
        /// Let it through.
        Allow = "ALLOW",
        /// Refuse it.
        Deny = "DENY",
        /// Log it.
        Audit = "AUDIT",
        /// Ask an external authorizer.
        Custom = "CUSTOM",
    }
}

/// An external authorizer by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Provider {
    /// The provider's name in the mesh config.
    pub name: String,
}

/// One rule: sources, operations and conditions, all of which must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// Sources, OR-ed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Operations, OR-ed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    /// Further conditions, AND-ed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// A source clause.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleFrom {
    /// The source's attributes.
    pub source: Source,
}

/// An operation clause.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleTo {
    /// The operation's attributes.
    pub operation: Operation,
}

/// Attributes of the calling workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Source {
    /// Peer identities, e.g. `cluster.local/ns/shop/sa/web`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Request (JWT) principals.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// Request principals that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Peer namespaces that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Peer IP blocks.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Peer IP blocks that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client IP blocks.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client IP blocks that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Peer service accounts, `namespace/name`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Peer service accounts that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
}

/// Attributes of the request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Operation {
    /// Hosts.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Ports.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// Methods.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Paths.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A condition on a request attribute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// Attribute name, e.g. `request.headers[version]`.
    pub key: String,
    /// Values that match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values that must not match.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}
