//! Injection into the objects of a manifest: a Pod, or the pod template of a Deployment,
//! StatefulSet, DaemonSet, ReplicaSet, Job or CronJob. The patch is applied to the object as
//! written, so fields the injector does not know are kept.

use k8s_openapi::{
    api::core::v1::{Namespace, Pod},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use serde_json::Value;

use crate::{
    decision::Skip,
    mutation::{InjectError, Injection, inject},
    settings::InjectionConfig,
};

/// What injection did to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectInjection {
    /// The object with its pod (template) injected.
    Injected(Value),
    /// The object's pods would not be injected, for this reason.
    Skipped(Skip),
    /// Not a kind that makes pods: passed through.
    NotAWorkload,
}

/// Why an object could not be injected.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {message}")]
pub struct WorkloadError {
    /// The object's kind.
    pub kind: String,
    /// The object's `namespace/name`.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// Where the pod template is in an object of `kind` (`apiVersion`, `kind`); `Some(&[])` for a Pod.
fn template_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (api_version, kind) {
        ("v1", "Pod") => Some(&[]),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch/v1", "Job") => Some(&["spec", "template"]),
        ("batch/v1", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// The namespace an object is in (`default` when it does not say).
pub fn object_namespace(object: &Value) -> &str {
    object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
}

/// Injects the pods `object` makes, which live in `namespace`.
pub fn inject_object(
    object: &Value,
    namespace: &Namespace,
    config: &InjectionConfig,
) -> Result<ObjectInjection, WorkloadError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let Some(path) = template_path(api_version, kind) else {
        return Ok(ObjectInjection::NotAWorkload);
    };
    let error = |message: String| WorkloadError {
        kind: kind.to_owned(),
        name: format!(
            "{}/{}",
            object_namespace(object),
            object["metadata"]["name"].as_str().unwrap_or("(unnamed)")
        ),
        message,
    };
    let mut injected = object.clone();
    let mut template = &mut injected;
    for field in path {
        template = template
            .get_mut(*field)
            .ok_or_else(|| error(format!("has no {}", path.join("."))))?;
    }
    // The patch adds to the metadata maps, so the template needs its (possibly empty) metadata.
    if let Some(map) = template.as_object_mut() {
        map.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let mut pod: Pod = serde_json::from_value(template.clone())
        .map_err(|e| error(format!("the pod template does not read: {e}")))?;
    if kind != "Pod" {
        // The template's pods will be owned by the object: that names their workload.
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
    }
    let patch = match inject(&pod, namespace, config) {
        Ok(Injection::Injected { patch, .. }) => patch,
        Ok(Injection::Skipped(skip)) => return Ok(ObjectInjection::Skipped(skip)),
        Err(e) => return Err(error(e.to_string())),
    };
    json_patch::patch(template, &patch)
        .map_err(|e| error(InjectError::Patch(e.to_string()).to_string()))?;
    Ok(ObjectInjection::Injected(injected))
}
