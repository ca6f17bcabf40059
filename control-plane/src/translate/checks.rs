//! Checks that cost more than translation needs, for `mesh analyze`: DestinationRules whose
//! host matches no service, and subsets that select no endpoint, nor any pod a workload of the
//! Service would make.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use super::{
    destination_rule::DestinationRules,
    problem::Problem,
    registry::{Registry, ServiceModel},
};
use crate::store::{Kind, Store};

/// The pods a workload (Deployment, StatefulSet, ReplicaSet, DaemonSet) would make, as
/// selectors see them. Read from manifests, where there are workloads but no pods yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTemplate {
    /// The workload's namespace, which its pods share.
    pub namespace: String,
    /// The labels of its pod template.
    pub labels: BTreeMap<String, String>,
}

impl WorkloadTemplate {
    /// Whether the template's pods carry every label of `selector`.
    fn carries(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// Problems with DestinationRules against the services they name and, when no pod exists yet,
/// the pods `templates` would make.
pub(crate) fn destination_rule_checks(
    registry: &Registry,
    rules: &DestinationRules,
    store: &Store,
    templates: &[WorkloadTemplate],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for rule in rules.iter() {
        let services: Vec<_> = registry.matching(&rule.host).collect();
        if services.is_empty() {
            problems.push(Problem::warning(
                &rule.origin,
                "spec.host",
                format!(
                    "host {} matches no Service or ServiceEntry; the rule applies to nothing",
                    rule.host
                ),
                "check the name and namespace",
            ));
            continue;
        }
        for (i, subset) in rule.subsets.iter().enumerate() {
            let selected = services
                .iter()
                .flat_map(|s| &s.ports)
                .flat_map(|p| &p.endpoints)
                .any(|e| {
                    subset
                        .labels
                        .iter()
                        .all(|(k, v)| e.labels.get(k) == Some(v))
                })
                || services
                    .iter()
                    .any(|s| templates_of(s, store, templates).any(|t| t.carries(&subset.labels)));
            if !selected {
                problems.push(Problem::warning(
                    &rule.origin,
                    format!("spec.subsets[{i}].labels"),
                    format!(
                        "subset {:?} selects no ready endpoint and no workload template of {}; requests routed to it fail",
                        subset.name, rule.host
                    ),
                    "check the labels against those of the pods, or of the workloads' pod templates",
                ));
            }
        }
    }
    problems
}

/// The templates whose pods the Service of `service` would select; none for a ServiceEntry or
/// a Service without a selector.
fn templates_of<'a>(
    service: &ServiceModel,
    store: &'a Store,
    templates: &'a [WorkloadTemplate],
) -> impl Iterator<Item = &'a WorkloadTemplate> {
    let origin = &service.origin;
    let selector = (origin.kind == Kind::Service)
        .then(|| store.get::<Service>(&origin.namespace, &origin.name))
        .flatten()
        .and_then(|s| s.spec.as_ref()?.selector.as_ref())
        .filter(|selector| !selector.is_empty());
    let namespace = service.namespace.clone();
    templates
        .iter()
        .filter(move |t| selector.is_some_and(|s| t.namespace == namespace && t.carries(s)))
}
