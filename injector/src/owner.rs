//! The workload a pod belongs to, named as Istio and Kiali name it: the Deployment behind its
//! ReplicaSet, its StatefulSet, DaemonSet or Job, or the pod itself when nothing owns it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The label a Deployment's ReplicaSets and pods carry: the hash the ReplicaSet's name ends with.
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The name of the workload that made the pod with `meta`; `None` when the pod has neither an
/// owner nor a name (a bare template).
pub fn workload_name(meta: &ObjectMeta) -> Option<String> {
    let owner = (meta.owner_references.iter().flatten()).find(|o| o.controller == Some(true));
    let owner = owner.or_else(|| meta.owner_references.as_ref()?.first());
    if let Some(owner) = owner {
        if owner.kind != "ReplicaSet" {
            return Some(owner.name.clone());
        }
        let hash = (meta.labels.as_ref()).and_then(|l| l.get(TEMPLATE_HASH_LABEL));
        let trimmed = match hash {
            Some(hash) => owner.name.strip_suffix(hash.as_str()),
            None => owner
                .name
                .rsplit_once('-')
                .map(|(deployment, _)| deployment),
        };
        let deployment = trimmed.map(|t| t.trim_end_matches('-'));
        return Some(
            deployment
                .filter(|d| !d.is_empty())
                .unwrap_or(&owner.name)
                .to_owned(),
        );
    }
    meta.name.clone().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn owned_by(kind: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            generate_name: Some(format!("{name}-")),
            labels: Some(
                (labels.iter())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                uid: "u".to_owned(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_deployments_pod_is_named_after_the_deployment() {
        let meta = owned_by(
            "ReplicaSet",
            "reviews-v1-5d8f7c9b4",
            &[("pod-template-hash", "5d8f7c9b4")],
        );
        assert_eq!(workload_name(&meta).as_deref(), Some("reviews-v1"));
        let without_label = owned_by("ReplicaSet", "reviews-v1-5d8f7c9b4", &[]);
        assert_eq!(workload_name(&without_label).as_deref(), Some("reviews-v1"));
    }

    #[test]
    fn other_owners_name_their_pods_and_a_bare_pod_names_itself() {
        for kind in ["StatefulSet", "DaemonSet", "Job", "Deployment"] {
            assert_eq!(
                workload_name(&owned_by(kind, "db", &[])).as_deref(),
                Some("db")
            );
        }
        let bare = ObjectMeta {
            name: Some("debug".to_owned()),
            ..ObjectMeta::default()
        };
        assert_eq!(workload_name(&bare).as_deref(), Some("debug"));
        assert_eq!(workload_name(&ObjectMeta::default()), None);
    }
}
