//! The pod mutation: from a Pod, its Namespace and the injection config to the injected Pod
//! and the JSON Patch that makes it. The patch is built first and the Pod is the patch applied,
//! so the two cannot disagree; the webhook sends the patch, `mesh inject` and the lab use the Pod.

use std::collections::BTreeMap;

use json_patch::{
    AddOperation, Patch, PatchOperation, ReplaceOperation,
    jsonptr::{PointerBuf, Token},
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    INIT_CONTAINER, METRICS_PORT, PROXY_CONTAINER, STATUS_ANNOTATION, TLS_MODE_LABEL,
    decision::{Skip, decide},
    probes,
    settings::InjectionConfig,
    sidecar,
};

/// The outcome of [`inject`].
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// The pod gets the sidecar.
    Injected {
        /// The injected pod.
        pod: Box<Pod>,
        /// The JSON Patch from the pod as given to the injected pod.
        patch: Patch,
    },
    /// The pod is left as it is, for this reason.
    Skipped(Skip),
}

/// Why a pod could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The pod has no `spec`.
    #[error("the pod has no spec")]
    NoSpec,
    /// The pod has no containers.
    #[error("the pod has no containers")]
    NoContainers,
    /// The pod has a container named like one the injector adds.
    #[error("the pod already has a container named {0}; rename it or opt the pod out")]
    NameClash(&'static str),
    /// The patch did not apply to the pod (a bug: the patch is built from the same pod).
    #[error("the patch does not apply to the pod: {0}")]
    Patch(String),
}

/// Injects `pod`, which lives in `namespace`, as `config` says.
pub fn inject(
    pod: &Pod,
    namespace: &Namespace,
    config: &InjectionConfig,
) -> Result<Injection, InjectError> {
    if let Err(skip) = decide(pod, namespace) {
        return Ok(Injection::Skipped(skip));
    }
    let spec = pod.spec.as_ref().ok_or(InjectError::NoSpec)?;
    if spec.containers.is_empty() {
        return Err(InjectError::NoContainers);
    }
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    for added in [INIT_CONTAINER, PROXY_CONTAINER] {
        if spec
            .containers
            .iter()
            .chain(init_containers)
            .any(|c| c.name == added)
        {
            return Err(InjectError::NameClash(added));
        }
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let mut ops = Ops::default();

    // Probes first: their paths index the app containers before the sidecar is placed.
    let probes = probes::rewrite(&spec.containers);
    for moved in &probes.rewritten {
        let index = moved.container.to_string();
        ops.replace(&["spec", "containers", &index, moved.field], &moved.probe);
    }

    let mut labels = BTreeMap::new();
    labels.insert(TLS_MODE_LABEL.to_owned(), "istio".to_owned());
    ops.add_entries("labels", pod.metadata.labels.is_some(), labels);

    let volumes = sidecar::volumes();
    let status = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "initContainers": if config.native_sidecars {
            json!([INIT_CONTAINER, PROXY_CONTAINER])
        } else {
            json!([INIT_CONTAINER])
        },
        "containers": if config.native_sidecars { json!([]) } else { json!([PROXY_CONTAINER]) },
        "volumes": volumes.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
    });
    let mut added = BTreeMap::new();
    added.insert(STATUS_ANNOTATION.to_owned(), status.to_string());
    let defaults = [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", METRICS_PORT.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
        (
            "kubectl.kubernetes.io/default-container",
            spec.containers[0].name.clone(),
        ),
    ];
    for (key, value) in defaults {
        if !annotations.contains_key(key) {
            added.insert(key.to_owned(), value);
        }
    }
    ops.add_entries("annotations", pod.metadata.annotations.is_some(), added);

    let init = sidecar::init_container(config, &annotations);
    let workload = crate::owner::workload_name(&pod.metadata);
    let proxy = sidecar::proxy_container(
        config,
        &annotations,
        workload.as_deref(),
        probes.sidecar_json(),
    );
    if config.native_sidecars {
        ops.insert_first(&["spec", "initContainers"], init_containers, &[init, proxy]);
    } else {
        ops.insert_first(&["spec", "initContainers"], init_containers, &[init]);
        ops.add(&["spec", "containers", "0"], &proxy);
    }
    match &spec.volumes {
        Some(_) => {
            for volume in &volumes {
                ops.add(&["spec", "volumes", "-"], volume);
            }
        }
        None => ops.add(&["spec", "volumes"], &volumes),
    }

    let patch = Patch(ops.0);
    let mut document = to_value(pod);
    json_patch::patch(&mut document, &patch).map_err(|e| InjectError::Patch(e.to_string()))?;
    let injected: Pod =
        serde_json::from_value(document).map_err(|e| InjectError::Patch(e.to_string()))?;
    Ok(Injection::Injected {
        pod: Box::new(injected),
        patch,
    })
}

/// JSON Patch operations under construction.
#[derive(Default)]
struct Ops(Vec<PatchOperation>);

impl Ops {
    fn add(&mut self, path: &[&str], value: &impl Serialize) {
        self.0.push(PatchOperation::Add(AddOperation {
            path: pointer(path),
            value: to_value(value),
        }));
    }

    fn replace(&mut self, path: &[&str], value: &impl Serialize) {
        self.0.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(path),
            value: to_value(value),
        }));
    }

    /// Adds `entries` to the metadata map `field`: key by key when the map exists, else whole.
    fn add_entries(&mut self, field: &str, exists: bool, entries: BTreeMap<String, String>) {
        if exists {
            for (key, value) in &entries {
                self.add(&["metadata", field, key], value);
            }
        } else {
            self.add(&["metadata", field], &entries);
        }
    }

    /// Puts `first` at the front of the list at `path`, which holds `existing`.
    fn insert_first<T: Serialize>(&mut self, path: &[&str], existing: &[T], first: &[T]) {
        if existing.is_empty() {
            self.add(path, &first);
            return;
        }
        for (index, item) in first.iter().enumerate() {
            let index = index.to_string();
            let mut at = path.to_vec();
            at.push(&index);
            self.add(&at, item);
        }
    }
}

fn pointer(path: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(path.iter().map(|t| Token::new(*t)))
}

fn to_value(value: &impl Serialize) -> Value {
    // Kubernetes types and string maps always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}
