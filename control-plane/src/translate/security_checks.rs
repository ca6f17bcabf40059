//! Checks of the security policies for `mesh analyze`: a STRICT workload that a
//! DestinationRule sends plain text to, principals that a plain-text-only workload can never
//! present, and selectors that match no pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use mesh_proto::config::v1::{MtlsMode, upstream_tls::Mode as UpstreamMode};

use super::{
    authorization::AuthorizationPolicies, destination_rule::DestinationRules,
    peer_authentication::PeerAuthentications, problem::Problem, registry::Registry,
};
use crate::store::{ObjectRef, Store};

/// Every problem the security policies have against the workloads they meet.
pub(crate) fn security_checks(
    store: &Store,
    registry: &Registry,
    rules: &DestinationRules,
    peer: &PeerAuthentications,
    authorization: &AuthorizationPolicies,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    disabled_tls_to_strict(registry, rules, peer, &mut problems);
    let pods: Vec<(&str, BTreeMap<String, String>)> = store
        .list::<Pod>()
        .map(|pod| {
            (
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();
    let selected = |namespace: &str, selector: &BTreeMap<String, String>| {
        pods.iter()
            .filter(|(ns, labels)| {
                *ns == namespace && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .count()
    };
    for (origin, namespace, selector) in peer.selectors().chain(authorization.selectors()) {
        if selected(namespace, selector) == 0 {
            problems.push(Problem::warning(
                origin,
                "spec.selector.matchLabels",
                format!("the selector matches no pod in namespace {namespace}; the policy applies to nothing"),
                "check the labels against the pods' labels",
            ));
        }
    }
    for (origin, namespace, selector, field) in authorization.peer_sources() {
        let plain_only = pods.iter().any(|(ns, labels)| {
            *ns == namespace
                && selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
                && peer.mode_of(ns, labels, None) == MtlsMode::Disable
        });
        if plain_only {
            problems.push(Problem::warning(
                origin,
                field,
                "principals and namespaces come from mutual TLS, but a workload this policy \
                 selects accepts plain text only (PeerAuthentication DISABLE): this source never matches",
                "enable mutual TLS for the workload (PERMISSIVE or STRICT), or match on ipBlocks",
            ));
        }
    }
    problems
}

/// DestinationRules whose `tls.mode: DISABLE` sends plain text to a STRICT workload.
fn disabled_tls_to_strict(
    registry: &Registry,
    rules: &DestinationRules,
    peer: &PeerAuthentications,
    problems: &mut Vec<Problem>,
) {
    for rule in rules.iter() {
        for service in registry.matching(&rule.host) {
            for port in &service.ports {
                let disabled = rule
                    .policy
                    .at(port.port)
                    .tls
                    .is_some_and(|t| t.mode() == UpstreamMode::Disable);
                let strict = port.endpoints.iter().any(|e| {
                    let target = e.address.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
                    let namespace = namespace_of(&e.identity).unwrap_or(&service.namespace);
                    peer.mode_of(namespace, &e.labels, target) == MtlsMode::Strict
                });
                if disabled && strict {
                    problems.push(Problem::warning(
                        &rule.origin,
                        "spec.trafficPolicy.tls.mode",
                        format!(
                            "DISABLE sends plain text to {}:{}, whose workloads are STRICT \
                             (PeerAuthentication): every request is refused (503)",
                            service.host, port.port
                        ),
                        "remove tls.mode DISABLE (auto mTLS), or make the workloads PERMISSIVE",
                    ));
                }
            }
        }
    }
}

/// The namespace in `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`.
fn namespace_of(identity: &str) -> Option<&str> {
    identity.split_once("/ns/")?.1.split('/').next()
}

/// The object, namespace and selector of a policy with a selector.
pub(crate) type SelectorOf<'a> = (&'a ObjectRef, &'a str, &'a BTreeMap<String, String>);
