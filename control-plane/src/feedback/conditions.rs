//! The Gateway API status mesh owes its objects, computed from a translated store: per parent
//! of every HTTPRoute, GRPCRoute, TLSRoute and TCPRoute that attaches to mesh (a Service parent, or a Gateway of
//! mesh's class) the conditions `Accepted`, `ResolvedRefs` and, when some rules were dropped,
//! `PartiallyInvalid`; `Accepted` on mesh's Gateways and GatewayClasses, and on mesh's Gateways
//! `Programmed` with `status.addresses` once their Service (`<gateway>-mesh`) has an address
//! (its load balancer's, else its cluster IP), and per listener `Accepted`, `Programmed`,
//! `ResolvedRefs` and `Conflicted` with its attached routes and supported kinds. Entries of other
//! controllers are kept as they are; a condition that keeps its status keeps its
//! `lastTransitionTime`; an object whose status would not change gets no patch, so writing
//! status never feeds a loop of watch events and translations.

use gateway_api::{gatewayclasses::GatewayClass, gateways::Gateway};
use k8s_openapi::api::core::v1::Service;
use serde_json::{Map, Value, json};

use crate::{
    gateway_workload::workload_name,
    store::{Kind, Object, ObjectRef, Store},
    translate::{CONTROLLER_NAME, ListenerReport, Problem, Severity},
};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// A status write: the object and the merge patch that sets its status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    /// The object whose status changes.
    pub object: ObjectRef,
    /// `{"metadata": {"resourceVersion"}, "status": {...}}`: the status as a whole, guarded by
    /// the resourceVersion it was computed from (when the object has one).
    pub body: Value,
}

/// Every status write the store's objects need, given translation's `problems`; `now` is the
/// `lastTransitionTime` of conditions that change status.
pub fn status_patches(
    store: &Store,
    problems: &[Problem],
    listeners: &[ListenerReport],
    now: &str,
) -> Vec<StatusPatch> {
    let routes = [
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TlsRoute,
        Kind::TcpRoute,
    ]
    .into_iter()
    .flat_map(|kind| store.objects(kind))
    .filter_map(|route| {
        let parents = route_parents(store, &route, problems, now)?;
        patch(&route, json!({ "parents": parents }))
    });
    let gateways = store
        .objects(Kind::Gateway)
        .into_iter()
        .filter(|gateway| is_mesh_gateway(store, gateway))
        .filter_map(|gateway| {
            let errors = messages(problems_of(problems, &gateway), |p| {
                p.severity == Severity::Error
            });
            let accepted = match errors {
                None => condition("Accepted", true, "Accepted", "accepted by mesh"),
                Some(errors) => condition("Accepted", false, "Invalid", &errors),
            };
            let (programmed, addresses) = programmed(store, &gateway);
            let conditions = merged_conditions(&gateway, vec![accepted, programmed], now)?;
            let listeners = listener_statuses(&gateway, problems, listeners, now);
            patch(
                &gateway,
                json!({ "conditions": conditions, "addresses": addresses, "listeners": listeners }),
            )
        });
    let classes = store
        .list::<GatewayClass>()
        .filter(|class| class.spec.controller_name == CONTROLLER_NAME)
        .map(|class| Object::from(class.clone()))
        .filter_map(|class| {
            let accepted = condition("Accepted", true, "Accepted", "handled by mesh");
            let conditions = merged_conditions(&class, vec![accepted], now)?;
            patch(&class, json!({ "conditions": conditions }))
        });
    routes.chain(gateways).chain(classes).collect()
}

/// The route's new `status.parents`, or `None` when it has none of mesh's parents and no
/// stale entry of mesh's to remove.
fn route_parents(
    store: &Store,
    route: &Object,
    problems: &[Problem],
    now: &str,
) -> Option<Vec<Value>> {
    let json = serde_json::to_value(route).ok()?;
    let namespace = route.meta().namespace.clone().unwrap_or_default();
    let generation = route.meta().generation;
    let existing = json["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ours = |entry: &Value| entry["controllerName"] == CONTROLLER_NAME;
    let route_problems: Vec<&Problem> = problems_of(problems, route).collect();
    let mut parents: Vec<Value> = existing.iter().filter(|e| !ours(e)).cloned().collect();
    let parent_refs = json["spec"]["parentRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, parent_ref) in parent_refs.iter().enumerate() {
        if !attaches_to_mesh(store, parent_ref, &namespace) {
            continue;
        }
        let previous = existing
            .iter()
            .find(|e| ours(e) && e["parentRef"] == *parent_ref);
        let conditions = parent_conditions(&route_problems, i);
        let conditions = with_transition_times(
            conditions,
            previous.map(|p| &p["conditions"]),
            generation,
            now,
        );
        parents.push(json!({
            "parentRef": parent_ref,
            "controllerName": CONTROLLER_NAME,
            "conditions": conditions,
        }));
    }
    let had_ours = existing.iter().any(ours);
    let has_ours = parents.iter().any(ours);
    (had_ours || has_ours).then_some(parents)
}

/// `Accepted`, `ResolvedRefs` and maybe `PartiallyInvalid` for the route's parent `index`.
fn parent_conditions(problems: &[&Problem], index: usize) -> Vec<Value> {
    let at_parent = format!("spec.parentRefs[{index}]");
    let about_parent = |p: &Problem| p.field.starts_with("spec.parentRefs[");
    let about_backends = |p: &Problem| p.field.contains("backendRefs");
    let at_this_parent =
        |p: &Problem| p.field.starts_with(&at_parent) && (p.is_error() || p.reason.is_some());
    let refused = messages(problems.iter().copied(), at_this_parent);
    let refused_reason = (problems.iter())
        .filter(|p| at_this_parent(p))
        .find_map(|p| p.reason)
        .unwrap_or("NoMatchingParent");
    let unresolved = messages(problems.iter().copied(), |p| {
        p.severity != Severity::Info && about_backends(p)
    });
    let unresolved_reason = unresolved_reason(
        problems
            .iter()
            .copied()
            .filter(|p| p.severity != Severity::Info && about_backends(p)),
    );
    let dropped = messages(problems.iter().copied(), |p| {
        p.severity == Severity::Error && !about_parent(p) && !about_backends(p)
    });
    let mut conditions = vec![
        match refused {
            None => condition("Accepted", true, "Accepted", "attached by mesh"),
            Some(why) => condition("Accepted", false, refused_reason, &why),
        },
        match unresolved {
            None => condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "all backends resolved",
            ),
            Some(why) => condition("ResolvedRefs", false, unresolved_reason, &why),
        },
    ];
    if let Some(why) = dropped {
        conditions.push(condition(
            "PartiallyInvalid",
            true,
            "UnsupportedValue",
            &why,
        ));
    }
    conditions
}

/// The Gateway API's reason for backends that did not resolve: a reference to another
/// namespace no ReferenceGrant allows, a kind mesh cannot route to, else a missing backend.
fn unresolved_reason<'a>(mut problems: impl Iterator<Item = &'a Problem> + Clone) -> &'static str {
    if problems.clone().any(|p| p.field.ends_with(".namespace")) {
        "RefNotPermitted"
    } else if problems.any(|p| p.field.ends_with(']') && p.message.contains("is not supported")) {
        "InvalidKind"
    } else {
        "BackendNotFound"
    }
}

/// Whether a route's parent reference is mesh's: a Service (a mesh route), or a Gateway of
/// mesh's class.
fn attaches_to_mesh(store: &Store, parent_ref: &Value, route_namespace: &str) -> bool {
    let group = parent_ref["group"].as_str().unwrap_or(GATEWAY_GROUP);
    let kind = parent_ref["kind"].as_str().unwrap_or("Gateway");
    let name = parent_ref["name"].as_str().unwrap_or_default();
    let namespace = parent_ref["namespace"].as_str().unwrap_or(route_namespace);
    match (group, kind) {
        ("" | "core", "Service") => true,
        (GATEWAY_GROUP, "Gateway") => store
            .get::<Gateway>(namespace, name)
            .is_some_and(|g| is_mesh_gateway(store, &Object::from(g.clone()))),
        _ => false,
    }
}

fn is_mesh_gateway(store: &Store, gateway: &Object) -> bool {
    let Object::Gateway(gateway) = gateway else {
        return false;
    };
    store
        .get::<GatewayClass>("", &gateway.spec.gateway_class_name)
        .is_some_and(|class| class.spec.controller_name == CONTROLLER_NAME)
}

/// A mesh Gateway's `Programmed` condition and its addresses, from its Service: programmed
/// once the Service has an address.
fn programmed(store: &Store, gateway: &Object) -> (Value, Vec<Value>) {
    let namespace = gateway.meta().namespace.as_deref().unwrap_or_default();
    let name = workload_name(gateway.meta().name.as_deref().unwrap_or_default());
    let Some(service) = store.get::<Service>(namespace, &name) else {
        let why = format!("waiting for the gateway's Service {name}");
        return (condition("Programmed", false, "Pending", &why), Vec::new());
    };
    let ingress = (service.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut addresses: Vec<Value> = (ingress.into_iter().flatten())
        .filter_map(|i| match (&i.ip, &i.hostname) {
            (Some(ip), _) => Some(json!({ "type": "IPAddress", "value": ip })),
            (None, Some(host)) => Some(json!({ "type": "Hostname", "value": host })),
            (None, None) => None,
        })
        .collect();
    let spec = service.spec.as_ref();
    let load_balancer = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    if addresses.is_empty() && !load_balancer {
        let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref());
        addresses.extend(
            cluster_ip
                .filter(|ip| !ip.is_empty() && *ip != "None")
                .map(|ip| json!({ "type": "IPAddress", "value": ip })),
        );
    }
    let programmed = match addresses.is_empty() {
        true => condition(
            "Programmed",
            false,
            "AddressNotAssigned",
            &format!("the Service {name} has no address yet"),
        ),
        false => condition("Programmed", true, "Programmed", "served by mesh-proxy"),
    };
    (programmed, addresses)
}

/// `status.listeners` of a mesh Gateway: one entry per listener, its conditions from the
/// problems reported at `spec.listeners[i]` (their reasons), transition times kept from the
/// entry of the same name.
fn listener_statuses(
    gateway: &Object,
    problems: &[Problem],
    reports: &[ListenerReport],
    now: &str,
) -> Vec<Value> {
    let reference = gateway.object_ref();
    let json = serde_json::to_value(gateway).unwrap_or_default();
    let previous = json["status"]["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let gateway_problems: Vec<&Problem> = problems_of(problems, gateway).collect();
    (reports.iter())
        .filter(|r| r.gateway == reference)
        .enumerate()
        .map(|(i, report)| {
            let at = format!("spec.listeners[{i}]");
            let own: Vec<&Problem> = (gateway_problems.iter().copied())
                .filter(|p| p.field == at || p.field.starts_with(&format!("{at}.")))
                .filter(|p| p.reason.is_some())
                .collect();
            let with_reason = |reasons: &[&str]| {
                let picked: Vec<&&Problem> = own
                    .iter()
                    .filter(|p| p.reason.is_some_and(|r| reasons.contains(&r)))
                    .collect();
                let reason = picked.first().and_then(|p| p.reason)?;
                let why: Vec<String> = picked
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect();
                Some((reason, why.join("; ")))
            };
            let conditions = vec![
                match with_reason(&["UnsupportedProtocol", "UnsupportedValue"]) {
                    Some((reason, why)) => condition("Accepted", false, reason, &why),
                    None => condition("Accepted", true, "Accepted", "accepted by mesh"),
                },
                match with_reason(&["ProtocolConflict", "HostnameConflict"]) {
                    Some((reason, why)) => condition("Conflicted", true, reason, &why),
                    None => condition("Conflicted", false, "NoConflicts", "no conflicts"),
                },
                match with_reason(&["InvalidCertificateRef", "RefNotPermitted"]) {
                    Some((reason, why)) => condition("ResolvedRefs", false, reason, &why),
                    None => condition(
                        "ResolvedRefs",
                        true,
                        "ResolvedRefs",
                        "all references resolved",
                    ),
                },
                match own.first() {
                    Some(problem) => condition("Programmed", false, "Invalid", &problem.message),
                    None => condition("Programmed", true, "Programmed", "served by mesh-proxy"),
                },
            ];
            let before = previous.iter().find(|l| l["name"] == report.name.as_str());
            let conditions = with_transition_times(
                conditions,
                before.map(|l| &l["conditions"]),
                gateway.meta().generation,
                now,
            );
            let kinds: Vec<Value> = (report.supported_kinds.iter())
                .map(|kind| json!({ "group": GATEWAY_GROUP, "kind": kind }))
                .collect();
            json!({
                "name": report.name,
                "supportedKinds": kinds,
                "attachedRoutes": report.attached_routes,
                "conditions": conditions,
            })
        })
        .collect()
}

/// `conditions` (mesh's types) merged into a Gateway's or GatewayClass's, keeping the
/// conditions of other types.
fn merged_conditions(object: &Object, conditions: Vec<Value>, now: &str) -> Option<Vec<Value>> {
    let json = serde_json::to_value(object).ok()?;
    let existing = json["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ours: Vec<&str> = conditions
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    let previous = Value::Array(existing.clone());
    let updated = with_transition_times(
        conditions.clone(),
        Some(&previous),
        object.meta().generation,
        now,
    );
    let mut all: Vec<Value> = existing
        .into_iter()
        .filter(|c| !c["type"].as_str().is_some_and(|t| ours.contains(&t)))
        .collect();
    all.extend(updated);
    Some(all)
}

/// The patch that sets `status` fields, unless the object has them already.
fn patch(object: &Object, status: Value) -> Option<StatusPatch> {
    let json = serde_json::to_value(object).ok()?;
    let current = &json["status"];
    let fields = status.as_object()?;
    if fields.iter().all(|(key, value)| current[key] == *value) {
        return None;
    }
    let mut merged = current.as_object().cloned().unwrap_or_else(Map::new);
    merged.extend(fields.clone());
    let mut body = json!({ "status": merged });
    if let Some(version) = &object.meta().resource_version {
        body["metadata"] = json!({ "resourceVersion": version });
    }
    Some(StatusPatch {
        object: object.object_ref(),
        body,
    })
}

/// Completes conditions with `observedGeneration` and `lastTransitionTime`: the previous time
/// when the condition keeps its status, else `now`.
fn with_transition_times(
    conditions: Vec<Value>,
    previous: Option<&Value>,
    generation: Option<i64>,
    now: &str,
) -> Vec<Value> {
    let previous = previous.and_then(Value::as_array);
    conditions
        .into_iter()
        .map(|mut condition| {
            let before =
                previous.and_then(|all| all.iter().find(|c| c["type"] == condition["type"]));
            let since = match before {
                Some(before) if before["status"] == condition["status"] => {
                    before["lastTransitionTime"].clone()
                }
                _ => Value::String(now.to_owned()),
            };
            condition["lastTransitionTime"] = since;
            if let Some(generation) = generation {
                condition["observedGeneration"] = json!(generation);
            }
            condition
        })
        .collect()
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
    })
}

fn problems_of<'a>(
    problems: &'a [Problem],
    object: &Object,
) -> impl Iterator<Item = &'a Problem> + use<'a> {
    let reference = object.object_ref();
    problems
        .iter()
        .filter(move |p| p.object.as_ref() == Some(&reference))
}

/// The messages of the problems `wanted` picks, joined; `None` when there are none.
fn messages<'a>(
    problems: impl Iterator<Item = &'a Problem>,
    wanted: impl Fn(&Problem) -> bool,
) -> Option<String> {
    let picked: Vec<String> = problems
        .filter(|p| wanted(p))
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    (!picked.is_empty()).then(|| picked.join("; "))
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "listener_conditions_tests.rs"]
mod listener_tests;
