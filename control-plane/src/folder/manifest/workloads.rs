//! Workloads (`apps/v1` Deployments, StatefulSets, ReplicaSets and DaemonSets) read for the
//! pods they would make: a folder of manifests has workloads but no pods, and `mesh analyze`
//! counts these pods as endpoints to come.

use serde_json::Value;

use crate::translate::WorkloadTemplate;

/// The `apps/v1` kinds whose pods carry `spec.template.metadata.labels`.
const KINDS: [&str; 4] = ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"];

/// The pod template of a workload manifest; `None` for any other kind. Labels whose value is
/// not a string (which Kubernetes refuses) are left out.
pub(super) fn workload_template(json: &Value) -> Option<WorkloadTemplate> {
    if json["apiVersion"] != "apps/v1" || !KINDS.contains(&json["kind"].as_str()?) {
        return None;
    }
    let namespace = json.pointer("/metadata/namespace").and_then(Value::as_str);
    let labels = json
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    Some(WorkloadTemplate {
        // Where `kubectl apply` would put it, as for the mesh's own kinds.
        namespace: namespace.unwrap_or("default").to_owned(),
        labels,
    })
}
