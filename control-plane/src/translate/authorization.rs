//! AuthorizationPolicy: what clients may ask a sidecar's workload, translated for its inbound
//! listeners. Every policy that selects the workload applies: the mesh-wide ones (root namespace,
//! no selector), the namespace's (no selector) and those whose selector matches its labels.
//!
//! A policy mesh cannot enforce as written never fails open: CUSTOM (an external authorizer)
//! and `targetRef(s)` are not applied and reported; a DENY policy with a field mesh does not
//! support (JWT request principals, `request.auth` conditions, unknown keys) denies everything
//! it selects, and such an ALLOW policy allows nothing.

use std::collections::BTreeMap;

use mesh_proto::config::v1::{
    self as pb, AuthorizationCondition, AuthorizationOperation, AuthorizationRule,
    AuthorizationSource, authorization_policy::Action as PbAction,
};

use super::{
    peer_authentication::ROOT_NAMESPACE,
    problem::{Problem, Report},
    security_checks::SelectorOf,
};
use crate::{
    istio::authorization_policy::{Action, AuthorizationPolicy, Condition, Rule},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

/// Condition keys a sidecar evaluates.
const SUPPORTED_KEYS: [&str; 7] = [
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

/// Every applicable AuthorizationPolicy, translated.
#[derive(Debug, Default)]
pub(crate) struct AuthorizationPolicies {
    policies: Vec<CompiledPolicy>,
}

#[derive(Debug)]
struct CompiledPolicy {
    origin: ObjectRef,
    namespace: String,
    selector: Option<BTreeMap<String, String>>,
    policy: pb::AuthorizationPolicy,
}

// === impl AuthorizationPolicies ===

impl AuthorizationPolicies {
    /// Translates every AuthorizationPolicy in the store, reporting what it cannot enforce.
    pub(crate) fn build(store: &Store, problems: &mut Vec<Problem>) -> Self {
        let mut policies: Vec<CompiledPolicy> = store
            .list::<AuthorizationPolicy>()
            .filter_map(|ap| {
                let origin = ObjectRef::new(
                    Kind::AuthorizationPolicy,
                    ap.metadata.namespace.clone().unwrap_or_default(),
                    ap.metadata.name.clone().unwrap_or_default(),
                );
                let mut report = Report::new(&origin);
                let compiled = compile(ap, &mut report);
                problems.extend(report.into_problems());
                compiled
            })
            .collect();
        policies.sort_by(|a, b| a.policy.name.cmp(&b.policy.name));
        AuthorizationPolicies { policies }
    }

    /// The label keys selectors read (part of a proxy's view).
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.policies
            .iter()
            .flat_map(|p| p.selector.iter().flat_map(|s| s.keys().map(String::as_str)))
    }

    /// The policies with a workload selector.
    pub(crate) fn selectors(&self) -> impl Iterator<Item = SelectorOf<'_>> {
        self.policies.iter().filter_map(|p| {
            let selector = p.selector.as_ref()?;
            Some((&p.origin, p.namespace.as_str(), selector))
        })
    }

    /// Rules' sources that need a peer identity (principals or namespaces): the policy, its
    /// namespace, its selector and the field.
    pub(crate) fn peer_sources(
        &self,
    ) -> impl Iterator<Item = (&ObjectRef, &str, Option<&BTreeMap<String, String>>, String)> {
        self.policies.iter().flat_map(|p| {
            p.policy
                .rules
                .iter()
                .enumerate()
                .flat_map(move |(i, rule)| {
                    rule.from.iter().enumerate().filter_map(move |(j, source)| {
                        let needs_peer = !(source.principals.is_empty()
                            && source.not_principals.is_empty()
                            && source.namespaces.is_empty()
                            && source.not_namespaces.is_empty());
                        needs_peer.then(|| {
                            (
                                &p.origin,
                                p.namespace.as_str(),
                                p.selector.as_ref(),
                                format!("spec.rules[{i}].from[{j}].source"),
                            )
                        })
                    })
                })
        })
    }

    /// The policies that apply to `node`, by name.
    pub(crate) fn policies_for(&self, node: &ProxyNode) -> Vec<pb::AuthorizationPolicy> {
        self.policies
            .iter()
            .filter(|p| match &p.selector {
                None => p.namespace == ROOT_NAMESPACE || p.namespace == node.namespace,
                Some(selector) => {
                    p.namespace == node.namespace
                        && selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
                }
            })
            .map(|p| p.policy.clone())
            .collect()
    }
}

fn compile(ap: &AuthorizationPolicy, report: &mut Report<'_>) -> Option<CompiledPolicy> {
    let spec = &ap.spec;
    let origin = report.object().clone();
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        report.error(
            "spec.targetRefs",
            "policies attached by targetRef are not supported by mesh; the policy is not applied",
            "select the workloads with spec.selector.matchLabels instead",
        );
        return None;
    }
    let action = match spec.action.as_ref().unwrap_or(&Action::Allow) {
        Action::Allow => PbAction::Allow,
        Action::Deny => PbAction::Deny,
        Action::Audit => PbAction::Audit,
        Action::Custom => {
            report.error(
                "spec.action",
                "CUSTOM asks an external authorizer, which mesh does not support; the policy is not applied",
                "express the rules as ALLOW or DENY policies",
            );
            return None;
        }
        Action::Unknown(other) => {
            report.error(
                "spec.action",
                format!("unknown action {other:?}; the policy is not applied"),
                "use ALLOW, DENY or AUDIT",
            );
            return None;
        }
    };
    let errors_before = report.error_count();
    let rules: Vec<AuthorizationRule> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(rule, &format!("spec.rules[{i}]"), report))
        .collect();
    let unenforceable = report.error_count() > errors_before;
    let rules = match (unenforceable, action) {
        // Fail closed: a DENY rule mesh cannot read denies everything it selects...
        (true, PbAction::Deny) => vec![AuthorizationRule::default()],
        // ...and an ALLOW rule mesh cannot read allows nothing.
        (true, _) => Vec::new(),
        (false, _) => rules,
    };
    Some(CompiledPolicy {
        origin: origin.clone(),
        namespace: origin.namespace.clone(),
        selector: spec
            .selector
            .as_ref()
            .map(|s| s.match_labels.clone())
            .filter(|labels| !labels.is_empty()),
        policy: pb::AuthorizationPolicy {
            name: format!("{}/{}", origin.namespace, origin.name),
            action: action.into(),
            rules,
        },
    })
}

fn compile_rule(rule: &Rule, at: &str, report: &mut Report<'_>) -> AuthorizationRule {
    let from = rule
        .from
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let source = &from.source;
            if !source.request_principals.is_empty() || !source.not_request_principals.is_empty() {
                report.error(
                    format!("{at}.from[{i}].source.requestPrincipals"),
                    "request principals need JWT authentication, which mesh does not support",
                    "use principals (the peer's mTLS identity) instead",
                );
            }
            let accounts = |accounts: &[String]| -> Vec<String> {
                accounts
                    .iter()
                    .filter_map(|a| a.split_once('/'))
                    .map(|(ns, sa)| format!("*/ns/{ns}/sa/{sa}"))
                    .collect()
            };
            AuthorizationSource {
                principals: [
                    source.principals.clone(),
                    accounts(&source.service_accounts),
                ]
                .concat(),
                not_principals: [
                    source.not_principals.clone(),
                    accounts(&source.not_service_accounts),
                ]
                .concat(),
                namespaces: source.namespaces.clone(),
                not_namespaces: source.not_namespaces.clone(),
                ip_blocks: source.ip_blocks.clone(),
                not_ip_blocks: source.not_ip_blocks.clone(),
                remote_ip_blocks: source.remote_ip_blocks.clone(),
                not_remote_ip_blocks: source.not_remote_ip_blocks.clone(),
            }
        })
        .collect();
    let to = rule
        .to
        .iter()
        .map(|to| {
            let op = &to.operation;
            AuthorizationOperation {
                hosts: op.hosts.clone(),
                not_hosts: op.not_hosts.clone(),
                ports: op.ports.clone(),
                not_ports: op.not_ports.clone(),
                methods: op.methods.clone(),
                not_methods: op.not_methods.clone(),
                paths: op.paths.clone(),
                not_paths: op.not_paths.clone(),
            }
        })
        .collect();
    let when = rule
        .when
        .iter()
        .enumerate()
        .filter_map(|(i, condition)| {
            compile_condition(condition, &format!("{at}.when[{i}]"), report)
        })
        .collect();
    AuthorizationRule { from, to, when }
}

fn compile_condition(
    condition: &Condition,
    at: &str,
    report: &mut Report<'_>,
) -> Option<AuthorizationCondition> {
    let key = condition.key.as_str();
    let header = key
        .strip_prefix("request.headers[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|name| !name.is_empty());
    if !header && !SUPPORTED_KEYS.contains(&key) {
        report.error(
            format!("{at}.key"),
            format!("condition key {key:?} is not supported by mesh"),
            "use request.headers[...], source.ip, remote.ip, source.namespace, source.principal, \
             destination.ip, destination.port or connection.sni",
        );
        return None;
    }
    Some(AuthorizationCondition {
        key: key.to_owned(),
        values: condition.values.clone(),
        not_values: condition.not_values.clone(),
    })
}
