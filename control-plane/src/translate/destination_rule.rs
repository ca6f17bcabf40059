//! DestinationRules by host, checked once, and the choice of the rule that applies to a
//! service for a given proxy (Istio's order: the proxy's namespace, then the service's, then
//! any other; the most specific host; the oldest).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    names::{host_match_rank, resolve_host},
    problem::{Problem, Report},
    traffic_policy::{PolicyLayer, PolicyParts, compile_policy},
    visibility::Visibility,
};
use crate::{
    istio::DestinationRule,
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

/// A checked DestinationRule.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// The object.
    pub origin: ObjectRef,
    /// Its host, completed (`reviews` → `reviews.ns.svc.cluster.local`).
    pub host: String,
    /// Policies for the whole host.
    pub policy: PolicyLayer,
    /// Its subsets, in order.
    pub subsets: Vec<CompiledSubset>,
    visibility: Visibility,
    selector: Option<BTreeMap<String, String>>,
    created: Option<Time>,
}

/// A checked subset.
#[derive(Debug)]
pub(crate) struct CompiledSubset {
    /// The subset's name.
    pub name: String,
    /// Labels its endpoints carry.
    pub labels: BTreeMap<String, String>,
    /// Its own policies, over the rule's.
    pub policy: PolicyLayer,
}

impl CompiledRule {
    /// The policy of the cluster for `port` and `subset` (none for the whole service).
    pub(crate) fn parts(&self, port: u32, subset: Option<&CompiledSubset>) -> PolicyParts {
        let host_parts = self.policy.at(port);
        match subset {
            Some(subset) => subset.policy.at(port).over(host_parts),
            None => host_parts,
        }
    }

    /// The subset with this name.
    pub(crate) fn subset(&self, name: &str) -> Option<&CompiledSubset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

/// Every valid DestinationRule, by host.
#[derive(Debug, Default)]
pub(crate) struct DestinationRules {
    exact: HashMap<String, Vec<Arc<CompiledRule>>>,
    wildcard: Vec<Arc<CompiledRule>>,
}

impl DestinationRules {
    /// The proxy label keys any rule's workload selector reads.
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.exact
            .values()
            .flatten()
            .chain(&self.wildcard)
            .flat_map(|rule| {
                rule.selector
                    .iter()
                    .flat_map(|s| s.keys().map(String::as_str))
            })
    }

    /// Checks every DestinationRule in the store; invalid ones are reported and left out.
    pub(crate) fn build(store: &Store, problems: &mut Vec<Problem>) -> Self {
        let mut rules = DestinationRules::default();
        let mut owners: HashMap<(String, String), ObjectRef> = HashMap::new();
        let mut all: Vec<_> = store
            .list::<DestinationRule>()
            .filter_map(|dr| {
                let origin = ObjectRef::new(
                    Kind::DestinationRule,
                    dr.metadata.namespace.clone().unwrap_or_default(),
                    dr.metadata.name.clone().unwrap_or_default(),
                );
                let mut report = Report::new(&origin);
                let compiled = compile(dr, store, &mut report);
                let valid = !report.has_errors();
                problems.extend(report.into_problems());
                valid.then_some(compiled)
            })
            .collect();
        all.sort_by(age_order);
        for rule in all {
            // Two rules for one host in one namespace (for all workloads): the older wins.
            if rule.selector.is_none() {
                let key = (rule.origin.namespace.clone(), rule.host.clone());
                if let Some(owner) = owners.get(&key) {
                    problems.push(Problem::warning(
                        &rule.origin,
                        "spec.host",
                        format!(
                            "{owner} already configures host {} in this namespace; this rule is ignored",
                            rule.host
                        ),
                        "merge the two rules into one",
                    ));
                    continue;
                }
                owners.insert(key, rule.origin.clone());
            }
            let rule = Arc::new(rule);
            if rule.host.starts_with('*') {
                rules.wildcard.push(rule);
            } else {
                rules.exact.entry(rule.host.clone()).or_default().push(rule);
            }
        }
        rules
    }

    /// The rule that applies to `host` (a service in `service_namespace`) for `node`.
    pub(crate) fn select(
        &self,
        host: &str,
        service_namespace: &str,
        node: &ProxyNode,
    ) -> Option<&Arc<CompiledRule>> {
        let candidates = self.exact.get(host).into_iter().flatten();
        candidates
            .chain(self.wildcard.iter())
            .filter_map(|rule| {
                let rank = host_match_rank(&rule.host, host)?;
                let applies = rule.visibility.admits(&node.namespace)
                    && rule.selector.as_ref().is_none_or(|labels| {
                        rule.origin.namespace == node.namespace
                            && labels.iter().all(|(k, v)| node.labels.get(k) == Some(v))
                    });
                applies.then_some((rule, rank))
            })
            .min_by(|(a, a_rank), (b, b_rank)| {
                let scope = |rule: &CompiledRule| {
                    if rule.origin.namespace == node.namespace {
                        0
                    } else if rule.origin.namespace == service_namespace {
                        1
                    } else {
                        2
                    }
                };
                (
                    scope(a),
                    std::cmp::Reverse(*a_rank),
                    u8::from(a.selector.is_none()),
                )
                    .cmp(&(
                        scope(b),
                        std::cmp::Reverse(*b_rank),
                        u8::from(b.selector.is_none()),
                    ))
                    .then_with(|| age_order(a, b))
            })
            .map(|(rule, _)| rule)
    }

    /// Every valid rule that is not overridden by an older one.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<CompiledRule>> {
        self.exact.values().flatten().chain(self.wildcard.iter())
    }

    /// Whether any rule for `host` defines `subset` (visibility aside).
    pub(crate) fn defines_subset(&self, host: &str, subset: &str) -> bool {
        let exact = self.exact.get(host).into_iter().flatten();
        exact
            .chain(
                self.wildcard
                    .iter()
                    .filter(|r| host_match_rank(&r.host, host).is_some()),
            )
            .any(|rule| rule.subset(subset).is_some())
    }
}

/// Oldest first, then by namespace and name: the Kubernetes way to break ties.
fn age_order(a: &CompiledRule, b: &CompiledRule) -> std::cmp::Ordering {
    let created = |r: &CompiledRule| (r.created.is_none(), r.created.clone());
    created(a)
        .cmp(&created(b))
        .then_with(|| a.origin.cmp(&b.origin))
}

fn compile(dr: &DestinationRule, store: &Store, report: &mut Report<'_>) -> CompiledRule {
    let spec = &dr.spec;
    let namespace = report.object().namespace.clone();
    if spec.host.trim().is_empty() {
        report.error("spec.host", "no host is given", "set the service host");
    }
    let at = "spec.trafficPolicy";
    let policy = compile_policy(spec.traffic_policy.as_ref(), at, store, report);
    let mut subsets: Vec<CompiledSubset> = Vec::new();
    for (i, subset) in spec.subsets.iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            report.error(format!("{at}.name"), "the subset has no name", "name it");
        } else if subsets.iter().any(|s| s.name == subset.name) {
            report.error(
                format!("{at}.name"),
                format!("subset {:?} is defined twice", subset.name),
                "give each subset its own name",
            );
        }
        subsets.push(CompiledSubset {
            name: subset.name.clone(),
            labels: subset.labels.clone(),
            policy: compile_policy(
                subset.traffic_policy.as_ref(),
                &format!("{at}.trafficPolicy"),
                store,
                report,
            ),
        });
    }
    CompiledRule {
        origin: report.object().clone(),
        host: resolve_host(&spec.host, &namespace),
        policy,
        subsets,
        visibility: Visibility::from_export_to(&spec.export_to, &namespace),
        selector: spec
            .workload_selector
            .as_ref()
            .map(|s| s.match_labels.clone()),
        created: dr.metadata.creation_timestamp.clone(),
    }
}
