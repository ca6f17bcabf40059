//! `mesh analyze`: everything wrong or doubtful with a set of objects, without a cluster.
//! Translation's own problems (for sample proxies of every namespace and pod label set), plus
//! checks translation does not need: weights that do not add up, rules that apply to nothing,
//! security policies, routes to Gateways that do not exist, ports whose protocol is guessed.

use std::{collections::BTreeSet, path::Path};

use gateway_api::{experimental::httproutes::HttpRoute, gateways::Gateway, grpcroutes::GrpcRoute};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use mesh_proto::config::v1::Protocol;

use crate::{
    folder::{FolderError, load_dir},
    istio::{AuthorizationPolicy, VirtualService, authorization_policy::Action},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
    translate::{
        MeshSettings, Problem, Severity, Translator, WorkloadTemplate, protocol::port_protocol,
    },
};

/// Every problem with the store's objects, errors first.
pub fn analyze(store: &Store) -> Vec<Problem> {
    analyze_with(store, &[], &MeshSettings::default())
}

/// Every problem with the store's objects, errors first, knowing the pods workloads would make
/// (`templates`) and the control plane's mesh settings.
pub fn analyze_with(
    store: &Store,
    templates: &[WorkloadTemplate],
    settings: &MeshSettings,
) -> Vec<Problem> {
    let translator = Translator::with_settings(store, settings);
    let mut problems = translator.problems().to_vec();
    problems.extend(translator.deep_checks(store, templates));
    for node in sample_proxies(store) {
        problems.extend(translator.translate(&node).problems);
    }
    problems.extend(weight_checks(store));
    problems.extend(security_checks(store));
    problems.extend(gateway_reference_checks(store));
    problems.extend(port_protocol_notes(store));
    problems.sort();
    problems.dedup();
    problems
}

/// Reads a folder (or a file) of manifests and analyzes it under the mesh `settings`; each
/// problem names the file and document of its object.
pub fn analyze_folder(dir: &Path, settings: &MeshSettings) -> Result<Vec<Problem>, FolderError> {
    let loaded = load_dir(dir)?;
    let mut problems = loaded.problems.clone();
    problems.extend(analyze_with(&loaded.store, &loaded.templates, settings));
    loaded.locate(&mut problems);
    problems.sort();
    problems.dedup();
    Ok(problems)
}

/// Whether any problem is an error (`mesh analyze` then exits non-zero).
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(Problem::is_error)
}

/// One proxy per namespace and per distinct (namespace, labels) of a pod: enough to meet the
/// problems that depend on who the client is (visibility, source labels).
fn sample_proxies(store: &Store) -> Vec<ProxyNode> {
    let mut seen = BTreeSet::new();
    for ns in store.list::<Namespace>() {
        seen.insert((
            ns.metadata.name.clone().unwrap_or_default(),
            Default::default(),
        ));
    }
    for service in store.list::<Service>() {
        seen.insert((
            service.metadata.namespace.clone().unwrap_or_default(),
            Default::default(),
        ));
    }
    for pod in store.list::<Pod>() {
        seen.insert((
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.labels.clone().unwrap_or_default(),
        ));
    }
    seen.into_iter()
        .map(|(namespace, labels)| ProxyNode {
            id: format!("analyze.{namespace}"),
            pod: "analyze".to_owned(),
            namespace,
            labels,
            ..ProxyNode::default()
        })
        .collect()
}

fn object_ref(
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> ObjectRef {
    ObjectRef::new(
        kind,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Weighted destinations that do not add up to 100, as Istio requires.
fn weight_checks(store: &Store) -> Vec<Problem> {
    let mut problems = Vec::new();
    for vs in store.list::<VirtualService>() {
        let origin = object_ref(Kind::VirtualService, &vs.metadata);
        let spec = &vs.spec;
        let http = spec
            .http
            .iter()
            .map(|r| r.route.iter().map(|d| d.weight).collect::<Vec<_>>());
        let tcp = spec
            .tcp
            .iter()
            .map(|r| r.route.iter().map(|d| d.weight).collect::<Vec<_>>());
        let tls = spec
            .tls
            .iter()
            .map(|r| r.route.iter().map(|d| d.weight).collect::<Vec<_>>());
        let rules = http
            .enumerate()
            .map(|(i, w)| (format!("spec.http[{i}].route"), w))
            .chain(
                tcp.enumerate()
                    .map(|(i, w)| (format!("spec.tcp[{i}].route"), w)),
            )
            .chain(
                tls.enumerate()
                    .map(|(i, w)| (format!("spec.tls[{i}].route"), w)),
            );
        for (field, weights) in rules {
            let total: i64 = weights.iter().map(|w| i64::from(w.unwrap_or(0))).sum();
            if weights.len() > 1 && total != 100 {
                problems.push(Problem::warning(
                    &origin,
                    field,
                    format!("the weights add up to {total}; Istio requires 100 (mesh splits in proportion)"),
                    "make the weights add up to 100",
                ));
            }
        }
        for (i, rule) in spec.http.iter().enumerate() {
            let fault = rule.fault.as_ref();
            let unset = fault.is_some_and(|f| {
                f.delay
                    .as_ref()
                    .is_some_and(|d| d.percentage.is_none() && d.percent.is_none())
                    || f.abort.as_ref().is_some_and(|a| a.percentage.is_none())
            });
            if unset {
                problems.push(Problem {
                    severity: Severity::Info,
                    ..Problem::warning(
                        &origin,
                        format!("spec.http[{i}].fault"),
                        "no percentage is given, so the fault applies to every request",
                        "set percentage.value to limit it",
                    )
                });
            }
        }
    }
    problems
}

/// AuthorizationPolicy mistakes that are valid but surely unmeant (translation reports what it
/// cannot enforce; `Translator::deep_checks` what contradicts the workloads).
fn security_checks(store: &Store) -> Vec<Problem> {
    let mut problems = Vec::new();
    for ap in store.list::<AuthorizationPolicy>() {
        let origin = object_ref(Kind::AuthorizationPolicy, &ap.metadata);
        let spec = &ap.spec;
        if matches!(spec.action.clone().unwrap_or(Action::Allow), Action::Allow)
            && spec.rules.is_empty()
        {
            problems.push(Problem::warning(
                &origin,
                "spec.rules",
                "an ALLOW policy without rules allows nothing: every request to the selected workloads is denied",
                "add rules, or remove the policy if that is not meant",
            ));
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            for (j, from) in rule.from.iter().enumerate() {
                for principal in from
                    .source
                    .principals
                    .iter()
                    .chain(&from.source.not_principals)
                {
                    if principal.starts_with("spiffe://") {
                        problems.push(Problem::warning(
                            &origin,
                            format!("spec.rules[{i}].from[{j}].source"),
                            format!(
                                "principal {principal:?} starts with spiffe://, so it never matches"
                            ),
                            "write cluster.local/ns/<namespace>/sa/<service account>",
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Routes whose Gateway parent does not exist.
fn gateway_reference_checks(store: &Store) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut check = |origin: &ObjectRef, i: usize, namespace: Option<&String>, name: &str| {
        let namespace = namespace.unwrap_or(&origin.namespace);
        if store.get::<Gateway>(namespace, name).is_none() {
            problems.push(Problem::warning(
                origin,
                format!("spec.parentRefs[{i}]"),
                format!(
                    "Gateway {namespace}/{name} does not exist; the route is not attached to it"
                ),
                "check the name and namespace",
            ));
        }
    };
    for route in store.list::<HttpRoute>() {
        let origin = object_ref(Kind::HttpRoute, &route.metadata);
        for (i, p) in route.spec.parent_refs.iter().flatten().enumerate() {
            if is_gateway(p.group.as_deref(), p.kind.as_deref()) {
                check(&origin, i, p.namespace.as_ref(), &p.name);
            }
        }
    }
    for route in store.list::<GrpcRoute>() {
        let origin = object_ref(Kind::GrpcRoute, &route.metadata);
        for (i, p) in route.spec.parent_refs.iter().flatten().enumerate() {
            if is_gateway(p.group.as_deref(), p.kind.as_deref()) {
                check(&origin, i, p.namespace.as_ref(), &p.name);
            }
        }
    }
    problems
}

/// Whether a parent reference's group and kind (defaults applied) name a Gateway.
fn is_gateway(group: Option<&str>, kind: Option<&str>) -> bool {
    kind.unwrap_or("Gateway") == "Gateway"
        && group.unwrap_or("gateway.networking.k8s.io") == "gateway.networking.k8s.io"
}

/// Service ports whose protocol neither `appProtocol` nor the name says.
fn port_protocol_notes(store: &Store) -> Vec<Problem> {
    let mut problems = Vec::new();
    for service in store.list::<Service>() {
        let origin = object_ref(Kind::Service, &service.metadata);
        let ports = service.spec.iter().flat_map(|s| s.ports.iter().flatten());
        for (i, port) in ports.enumerate() {
            let tcp = port.protocol.as_deref().is_none_or(|p| p == "TCP");
            let name = port.name.as_deref().unwrap_or_default();
            if tcp && port_protocol(port.app_protocol.as_deref(), name) == Protocol::Detect {
                problems.push(Problem {
                    severity: Severity::Info,
                    ..Problem::warning(
                        &origin,
                        format!("spec.ports[{i}]"),
                        format!(
                            "the protocol of port {} is detected per connection",
                            port.port
                        ),
                        "name the port http-*, http2-*, grpc-*, tcp-* or tls-*, or set appProtocol",
                    )
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
