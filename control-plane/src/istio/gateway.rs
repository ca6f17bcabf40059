//! `networking.istio.io/v1` Gateway: ports a set of gateway workloads expose, and for which hosts.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{nullable, string_enum};

/// The Gateway spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    plural = "gateways",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewaySpec {
    /// Labels of the gateway pods that serve it.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub selector: BTreeMap<String, String>,
    /// The exposed ports.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
}

/// One exposed port and the hosts served on it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Server {
    /// The port, its protocol and name.
    pub port: Port,
    /// Bind address (accepted, unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts served, optionally `namespace/host`; `*` for any.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings of the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Name of the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default endpoint (accepted, unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
}

/// A port: number, protocol and name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Port {
    /// Port number.
    pub number: u32,
    /// `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TCP`, `TLS`, `MONGO`.
    pub protocol: String,
    /// Port name.
    pub name: String,
    /// Port on the workload (accepted, unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

string_enum! {
    /// TLS modes of a gateway port.
    ServerTlsMode {
        /// Route by SNI without terminating TLS.
        Passthrough = "PASSTHROUGH",
        /// Terminate TLS.
        Simple = "SIMPLE",
        /// Terminate mutual TLS.
        Mutual = "MUTUAL",
        /// SNI passthrough without VirtualServices.
        AutoPassthrough = "AUTO_PASSTHROUGH",
        /// Terminate mesh mutual TLS.
        IstioMutual = "ISTIO_MUTUAL",
        /// Mutual TLS when the client offers a certificate.
        OptionalMutual = "OPTIONAL_MUTUAL",
    }
}

/// TLS settings of a gateway port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP to HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// The TLS mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// Server certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA certificates file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Secret holding the credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Several secrets holding credentials.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Names a client certificate must carry.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Lowest TLS version accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<String>,
    /// Highest TLS version accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<String>,
    /// Cipher suites accepted.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}
