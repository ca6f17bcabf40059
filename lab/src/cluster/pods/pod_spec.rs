//! What the lab makes of a pod's spec beyond its containers: the sysctls it sets, and the
//! fields it accepts without acting on them.

use k8s_openapi::api::core::v1::PodSpec;

use mesh_injector::PROXY_CONTAINER;

/// The pod's sysctls the lab sets: the ones kubelet allows by default, all scoped to the pod's
/// network namespace; others are warned about and left out.
pub(super) fn sysctls(
    spec: &PodSpec,
    key: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    const SAFE: [&str; 9] = [
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
    ];
    let written = spec
        .security_context
        .as_ref()
        .and_then(|c| c.sysctls.as_ref());
    let mut set = Vec::new();
    for sysctl in written.into_iter().flatten() {
        if SAFE.contains(&sysctl.name.as_str()) {
            set.push((sysctl.name.clone(), sysctl.value.clone()));
        } else {
            warnings.push(format!(
                "Pod {key}: sysctl {} is not one the lab sets (it sets {})",
                sysctl.name,
                SAFE.join(", ")
            ));
        }
    }
    set
}

/// Pod fields the lab accepts but does not act on.
pub(super) fn ignored_fields(spec: &PodSpec) -> Vec<&'static str> {
    let mut ignored = Vec::new();
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        ignored.push("initContainers");
    }
    // A gateway's proxy mounts the mesh's volumes, which the lab fills.
    let proxy_mounts: Vec<&str> = (spec.containers.iter())
        .filter(|c| c.name == PROXY_CONTAINER)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| m.name.as_str())
        .collect();
    if (spec.volumes.iter().flatten()).any(|v| !proxy_mounts.contains(&v.name.as_str())) {
        ignored.push("volumes");
    }
    ignored
}
