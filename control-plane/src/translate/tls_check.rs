//! `mesh tls-check`'s rows: per service port a proxy reaches, what its servers accept
//! (PeerAuthentication) against what the proxy sends (DestinationRule, else auto mTLS), and
//! whether the two can talk.

use std::collections::BTreeSet;

use mesh_proto::config::v1::{MtlsMode, upstream_tls::Mode as UpstreamMode};
use serde::{Deserialize, Serialize};

use super::Translator;
use crate::node::ProxyNode;

/// One service port as a client proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCheckRow {
    /// The service host.
    pub host: String,
    /// The service port.
    pub port: u32,
    /// `OK` or `CONFLICT`.
    pub status: String,
    /// What the endpoints accept: `STRICT`, `PERMISSIVE`, `DISABLE` (several joined by `|`),
    /// `NONE` for endpoints without a sidecar, `-` without endpoints.
    pub server: String,
    /// What the client sends: `ISTIO_MUTUAL`, `DISABLE`, `AUTO` (mutual TLS to endpoints with a
    /// sidecar), `SIMPLE` or `MUTUAL`.
    pub client: String,
    /// The PeerAuthentications deciding the servers' mode, `namespace/name`, or `-`.
    pub authn_policy: String,
    /// The DestinationRule deciding the client's mode, `namespace/name`, or `-`.
    pub destination_rule: String,
    /// Why the status is CONFLICT; empty when OK.
    pub reason: String,
    /// The port's cluster in the proxy's config (`outbound|<port>||<host>`).
    #[serde(default)]
    pub cluster: String,
    /// Its endpoints' addresses, for `--probe`.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl Translator {
    /// The rows of every service port `node` reaches, sorted by host and port.
    pub fn tls_check(&self, node: &ProxyNode) -> Vec<TlsCheckRow> {
        let node = &ProxyNode {
            namespace: node.namespace.clone(),
            labels: node.labels.clone(),
            ..ProxyNode::default()
        };
        let mut rows = Vec::new();
        for service in self
            .registry
            .iter()
            .filter(|s| s.visibility.admits(&node.namespace))
        {
            let rule = self.rules.select(&service.host, &service.namespace, node);
            for port in &service.ports {
                let tls = rule.and_then(|r| r.policy.at(port.port).tls);
                let client = match tls.map(|t| t.mode()) {
                    None => "AUTO",
                    Some(UpstreamMode::MeshMutual) => "ISTIO_MUTUAL",
                    Some(UpstreamMode::Disable) => "DISABLE",
                    Some(UpstreamMode::Simple) => "SIMPLE",
                    Some(UpstreamMode::Mutual) => "MUTUAL",
                };
                let mut modes = BTreeSet::new();
                let mut policies = BTreeSet::new();
                for endpoint in &port.endpoints {
                    let target = endpoint
                        .address
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse().ok());
                    let namespace = endpoint
                        .identity
                        .split_once("/ns/")
                        .and_then(|(_, rest)| rest.split('/').next())
                        .unwrap_or(&service.namespace);
                    let (mode, policy) =
                        self.peer_authentications
                            .decide(namespace, &endpoint.labels, target);
                    let sidecar = endpoint.mesh_tls || mode == MtlsMode::Disable;
                    modes.insert(if sidecar { mode.as_str_name() } else { "NONE" });
                    policies.extend(policy.map(|p| format!("{}/{}", p.namespace, p.name)));
                }
                let reason = conflict(client, &modes);
                rows.push(TlsCheckRow {
                    host: service.host.clone(),
                    port: port.port,
                    status: if reason.is_empty() { "OK" } else { "CONFLICT" }.to_owned(),
                    server: joined(modes.iter().map(|m| m.to_string()), "|"),
                    client: client.to_owned(),
                    authn_policy: joined(policies.into_iter(), ","),
                    destination_rule: rule
                        .map(|r| format!("{}/{}", r.origin.namespace, r.origin.name))
                        .unwrap_or_else(|| "-".to_owned()),
                    reason,
                    cluster: super::names::cluster_name(port.port, "", &service.host),
                    endpoints: port.endpoints.iter().map(|e| e.address.clone()).collect(),
                });
            }
        }
        rows.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        rows
    }
}

/// Why `client` cannot talk to servers in `modes`, or empty.
fn conflict(client: &str, modes: &BTreeSet<&str>) -> String {
    match client {
        "DISABLE" if modes.contains("STRICT") => {
            "the client sends plain text (DestinationRule DISABLE) to STRICT servers: requests fail (503)"
                .to_owned()
        }
        "ISTIO_MUTUAL" if modes.contains("DISABLE") => {
            "the client sends mutual TLS (ISTIO_MUTUAL) to servers that do not terminate it (DISABLE): requests fail"
                .to_owned()
        }
        "ISTIO_MUTUAL" if modes.contains("NONE") => {
            "the client sends mutual TLS (ISTIO_MUTUAL) to endpoints without a sidecar: requests fail"
                .to_owned()
        }
        _ => String::new(),
    }
}

fn joined(items: impl Iterator<Item = String>, separator: &str) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(separator)
    }
}
