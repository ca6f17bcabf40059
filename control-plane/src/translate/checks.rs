//! Checks that cost more than translation needs, for `mesh analyze`: DestinationRules whose
//! host matches no service, and subsets that select no endpoint.

use super::{destination_rule::DestinationRules, problem::Problem, registry::Registry};

/// Problems with DestinationRules against the services they name.
pub(crate) fn destination_rule_checks(
    registry: &Registry,
    rules: &DestinationRules,
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
                });
            if !selected {
                problems.push(Problem::warning(
                    &rule.origin,
                    format!("spec.subsets[{i}].labels"),
                    format!(
                        "subset {:?} selects no ready endpoint of {}; requests routed to it fail",
                        subset.name, rule.host
                    ),
                    "check the labels against the pods' labels",
                ));
            }
        }
    }
    problems
}
