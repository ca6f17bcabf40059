//! Whether a pod gets the sidecar: its namespace's label, its own opt-out, host networking and
//! an earlier injection decide.

use k8s_openapi::api::core::v1::{Namespace, Pod};

use crate::{INJECT_KEY, INJECTION_LABEL, STATUS_ANNOTATION};

/// Why a pod is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// The namespace is not labelled `mesh-injection=enabled`.
    #[error("its namespace is not labelled {INJECTION_LABEL}=enabled")]
    NamespaceNotEnabled,
    /// The pod says `mesh.io/inject: "false"` (label or annotation).
    #[error("it is labelled {INJECT_KEY}=false")]
    OptedOut,
    /// The pod shares the node's network, which the capture rules would rewrite.
    #[error("it uses hostNetwork")]
    HostNetwork,
    /// The pod already carries the sidecar (`mesh.io/status`).
    #[error("it is already injected ({STATUS_ANNOTATION} is set)")]
    AlreadyInjected,
}

/// Decides whether `pod`, in `namespace`, gets the sidecar.
pub fn decide(pod: &Pod, namespace: &Namespace) -> Result<(), Skip> {
    let namespace_label = namespace
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(INJECTION_LABEL));
    if namespace_label.map(String::as_str) != Some("enabled") {
        return Err(Skip::NamespaceNotEnabled);
    }
    let meta = &pod.metadata;
    let says_false = |map: &Option<std::collections::BTreeMap<String, String>>| {
        map.as_ref()
            .and_then(|m| m.get(INJECT_KEY))
            .is_some_and(|v| v == "false")
    };
    if says_false(&meta.labels) || says_false(&meta.annotations) {
        return Err(Skip::OptedOut);
    }
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return Err(Skip::HostNetwork);
    }
    let injected = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(STATUS_ANNOTATION));
    if injected {
        return Err(Skip::AlreadyInjected);
    }
    Ok(())
}

/// A Namespace object with the injection label set to `enabled`: what `mesh inject` assumes
/// for namespaces its input does not define.
pub fn enabled_namespace(name: &str) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    namespace.metadata.labels = Some([(INJECTION_LABEL.to_owned(), "enabled".to_owned())].into());
    namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod yaml")
    }

    #[test]
    fn each_rule_decides() {
        let enabled = enabled_namespace("shop");
        let plain = pod("metadata: {name: a}\nspec: {containers: [{name: app}]}");
        assert_eq!(decide(&plain, &enabled), Ok(()));
        let mut disabled = enabled.clone();
        disabled.metadata.labels =
            Some([(INJECTION_LABEL.to_owned(), "disabled".to_owned())].into());
        assert_eq!(decide(&plain, &disabled), Err(Skip::NamespaceNotEnabled));
        assert_eq!(
            decide(&plain, &Namespace::default()),
            Err(Skip::NamespaceNotEnabled)
        );
        let label = pod("metadata: {labels: {mesh.io/inject: \"false\"}}\nspec: {containers: []}");
        assert_eq!(decide(&label, &enabled), Err(Skip::OptedOut));
        let annotation =
            pod("metadata: {annotations: {mesh.io/inject: \"false\"}}\nspec: {containers: []}");
        assert_eq!(decide(&annotation, &enabled), Err(Skip::OptedOut));
        let host = pod("spec: {hostNetwork: true, containers: []}");
        assert_eq!(decide(&host, &enabled), Err(Skip::HostNetwork));
        let done = pod("metadata: {annotations: {mesh.io/status: \"{}\"}}\nspec: {containers: []}");
        assert_eq!(decide(&done, &enabled), Err(Skip::AlreadyInjected));
    }
}
