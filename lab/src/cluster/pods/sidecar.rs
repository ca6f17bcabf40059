//! The injector's sidecar as the lab runs it: the settings the lab injects with, and the plan
//! read back from the injected pod: mesh-init's command, the mesh-proxy container (command,
//! env, ports, probes, user) and the volumes it mounts. A gateway pod's only container is the
//! same mesh-proxy without mesh-init: it is planned the same way.

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use mesh_injector::{
    INIT_CONTAINER, InjectionConfig, InjectionSettings, NativeSidecars, PROXY_CONTAINER,
    ROOT_CERT_CONFIGMAP,
};

use super::{super::discovery_address, container};
use crate::cluster::{NodePlan, PodPlan, SidecarPlan, VolumeContent, VolumePlan};

/// The settings the lab injects with: its control plane's address, native sidecars.
pub fn settings() -> InjectionConfig {
    InjectionSettings {
        discovery_address: discovery_address(),
        native_sidecars: NativeSidecars::Always,
        ..InjectionSettings::default()
    }
    .for_cluster(None)
}

/// The sidecar of an injected pod's `spec`; problems name what the lab cannot run.
pub fn plan(
    spec: &PodSpec,
    pod: &PodPlan,
    node: &NodePlan,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SidecarPlan> {
    let key = pod.key();
    let added = spec.init_containers.as_deref().unwrap_or_default();
    let Some(init) = added.iter().find(|c| c.name == INIT_CONTAINER) else {
        problems.push(format!(
            "Pod {key}: the injected pod has no {INIT_CONTAINER}"
        ));
        return None;
    };
    let Some(proxy) = added.iter().find(|c| c.name == PROXY_CONTAINER) else {
        problems.push(format!(
            "Pod {key}: the injected pod has no {PROXY_CONTAINER}"
        ));
        return None;
    };
    let init_argv = [
        init.command.clone().unwrap_or_default(),
        init.args.clone().unwrap_or_default(),
    ]
    .concat();
    proxy_plan(spec, proxy, Some(init_argv), pod, node, problems, warnings)
}

/// The proxy of a gateway pod: its container `proxy`, run without mesh-init.
pub fn gateway_plan(
    spec: &PodSpec,
    proxy: &Container,
    pod: &PodPlan,
    node: &NodePlan,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SidecarPlan> {
    proxy_plan(spec, proxy, None, pod, node, problems, warnings)
}

fn proxy_plan(
    spec: &PodSpec,
    proxy: &Container,
    init_argv: Option<Vec<String>>,
    pod: &PodPlan,
    node: &NodePlan,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SidecarPlan> {
    let key = pod.key();
    let context = proxy.security_context.as_ref();
    let id = |value: Option<i64>| value.and_then(|v| u32::try_from(v).ok());
    let (Some(uid), Some(gid)) = (
        id(context.and_then(|c| c.run_as_user)),
        id(context.and_then(|c| c.run_as_group)),
    ) else {
        problems.push(format!(
            "Pod {key}: the sidecar has no runAsUser and runAsGroup"
        ));
        return None;
    };
    let mut volumes = Vec::new();
    for mount in proxy.volume_mounts.iter().flatten() {
        let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
        match volume.map(content) {
            Some(Ok(content)) => volumes.push(VolumePlan {
                mount_path: mount.mount_path.clone(),
                content,
            }),
            Some(Err(why)) => problems.push(format!("Pod {key}, volume {}: {why}", mount.name)),
            None => problems.push(format!(
                "Pod {key}: the sidecar mounts volume {}, which the pod does not have",
                mount.name
            )),
        }
    }
    let proxy = container(proxy, pod, node, problems, warnings)?;
    Some(SidecarPlan {
        init_argv,
        proxy,
        run_as: (uid, gid),
        volumes,
    })
}

/// What the lab writes for one of the sidecar's volumes.
fn content(volume: &Volume) -> Result<VolumeContent, String> {
    if let Some(projected) = &volume.projected {
        let token = projected
            .sources
            .iter()
            .flatten()
            .find_map(|s| s.service_account_token.as_ref());
        return token
            .map(|t| VolumeContent::Token {
                path: t.path.clone(),
            })
            .ok_or_else(|| "only service-account token projections are supported".to_owned());
    }
    if let Some(config_map) = &volume.config_map {
        if config_map.name != ROOT_CERT_CONFIGMAP {
            return Err(format!(
                "ConfigMap {} is not one the lab has",
                config_map.name
            ));
        }
        return Ok(VolumeContent::RootCert {
            key: mesh_injector::ROOT_CERT_KEY.to_owned(),
        });
    }
    if let Some(downward) = &volume.downward_api {
        let files = downward
            .items
            .iter()
            .flatten()
            .filter_map(|item| {
                let field = item.field_ref.as_ref()?;
                Some((item.path.clone(), field.field_path.clone()))
            })
            .collect();
        return Ok(VolumeContent::PodInfo(files));
    }
    Err("the lab fills token, mesh-root-cert and downward API volumes only".to_owned())
}
