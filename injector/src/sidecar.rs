//! What injection adds to a pod: the `mesh-init` init container, the `mesh-proxy` container and
//! the volumes the sidecar reads (its CA token, the mesh root, the pod's labels).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Capabilities, ConfigMapVolumeSource, Container, ContainerPort, DownwardAPIVolumeFile,
        DownwardAPIVolumeSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle,
        LifecycleHandler, ObjectFieldSelector, Probe, ProjectedVolumeSource, SecurityContext,
        ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use crate::{
    CA_TOKEN_AUDIENCE, CERT_LIFETIME_ANNOTATION, HEALTH_PORT, INIT_CONTAINER, METRICS_PORT,
    PROXY_CONTAINER, PROXY_UID, ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY, TELEMETRY_ANNOTATIONS,
    settings::InjectionConfig,
};

/// Pod annotations that become `mesh-init` flags.
pub const CAPTURE_ANNOTATIONS: [(&str, &str); 5] = [
    ("mesh.io/include-inbound-ports", "--inbound-ports"),
    ("mesh.io/exclude-inbound-ports", "--exclude-inbound-ports"),
    ("mesh.io/exclude-outbound-ports", "--exclude-outbound-ports"),
    (
        "mesh.io/exclude-outbound-ip-ranges",
        "--exclude-outbound-cidrs",
    ),
    (
        "mesh.io/include-outbound-ip-ranges",
        "--include-outbound-cidrs",
    ),
];

/// The volume with the sidecar's projected service-account token for the CA.
pub const TOKEN_VOLUME: &str = "mesh-ca-token";
/// Where [`TOKEN_VOLUME`] is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/mesh/tokens";
/// The volume with the mesh root certificate (ConfigMap `mesh-root-cert`).
pub const ROOT_VOLUME: &str = "mesh-root-cert";
/// Where [`ROOT_VOLUME`] is mounted.
pub const ROOT_DIR: &str = "/var/run/mesh/root";
/// The volume with the pod's labels (downward API).
pub const PODINFO_VOLUME: &str = "mesh-podinfo";
/// Where [`PODINFO_VOLUME`] is mounted.
pub const PODINFO_DIR: &str = "/etc/mesh/pod";
/// How long the projected CA token lives (kubelet renews it at 80 %).
const TOKEN_LIFETIME_SECONDS: i64 = 12 * 3600;
/// How long a starting sidecar may take to become ready before kubelet restarts it.
const STARTUP_SECONDS: i32 = 600;

/// The init container that writes the capture rules; flags from the pod's annotations.
pub fn init_container(
    config: &InjectionConfig,
    annotations: &BTreeMap<String, String>,
) -> Container {
    let args = CAPTURE_ANNOTATIONS
        .iter()
        .filter_map(|(annotation, flag)| {
            annotations.get(*annotation).map(|v| format!("{flag}={v}"))
        })
        .collect::<Vec<_>>();
    Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(config.settings.image.clone()),
        image_pull_policy: config.settings.image_pull_policy.clone(),
        command: Some(vec![INIT_CONTAINER.to_owned()]),
        args: (!args.is_empty()).then_some(args),
        resources: Some(config.settings.proxy.resources.clone()),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            // iptables-restore takes its lock file under /run.
            read_only_root_filesystem: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()]),
                drop: Some(vec!["ALL".to_owned()]),
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The sidecar. `workload` names the pod's workload (its metrics' `*_workload` label);
/// `app_probes` is the JSON of the app's probes it runs; a native sidecar has
/// `restartPolicy: Always` and a startup probe, a classic one holds the app in `postStart`.
pub fn proxy_container(
    config: &InjectionConfig,
    annotations: &BTreeMap<String, String>,
    workload: Option<&str>,
    app_probes: Option<String>,
) -> Container {
    let settings = &config.settings;
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        value_env("MESH_DISCOVERY_ADDRESS", &settings.discovery_address),
        value_env(
            "MESH_DISCOVERY_ROOT_CERT",
            &format!("{ROOT_DIR}/{ROOT_CERT_KEY}"),
        ),
        value_env("MESH_CA_TOKEN_FILE", &format!("{TOKEN_DIR}/{TOKEN_VOLUME}")),
        value_env("MESH_POD_LABELS_FILE", &format!("{PODINFO_DIR}/labels")),
        value_env("MESH_PROXY_LOG", &settings.proxy.log_level),
        value_env(
            "MESH_PROXY_CONCURRENCY",
            &settings.proxy.concurrency.to_string(),
        ),
    ];
    if let Some(workload) = workload {
        env.push(value_env("MESH_WORKLOAD_NAME", workload));
    }
    for (annotation, variable) in TELEMETRY_ANNOTATIONS {
        if let Some(value) = annotations.get(annotation) {
            env.push(value_env(variable, value));
        }
    }
    if let Some(lifetime) = annotations.get(CERT_LIFETIME_ANNOTATION) {
        env.push(value_env("MESH_CERT_LIFETIME", lifetime));
    }
    if let Some(probes) = app_probes {
        env.push(value_env("MESH_APP_PROBES", &probes));
    }
    let ready = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz/ready".to_owned()),
            port: IntOrString::Int(HEALTH_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(2),
        failure_threshold: Some(30),
        ..Probe::default()
    };
    let mut container = Container {
        name: PROXY_CONTAINER.to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(vec![PROXY_CONTAINER.to_owned()]),
        env: Some(env),
        ports: Some(vec![
            port("http-mesh-prom", METRICS_PORT),
            port("mesh-health", HEALTH_PORT),
        ]),
        readiness_probe: Some(ready.clone()),
        resources: Some(settings.proxy.resources.clone()),
        security_context: Some(SecurityContext {
            run_as_user: Some(PROXY_UID),
            run_as_group: Some(PROXY_UID),
            run_as_non_root: Some(true),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount(TOKEN_VOLUME, TOKEN_DIR),
            mount(ROOT_VOLUME, ROOT_DIR),
            mount(PODINFO_VOLUME, PODINFO_DIR),
        ]),
        ..Container::default()
    };
    if config.native_sidecars {
        container.restart_policy = Some("Always".to_owned());
        container.startup_probe = Some(Probe {
            period_seconds: Some(1),
            failure_threshold: Some(STARTUP_SECONDS),
            ..ready
        });
    } else {
        container.lifecycle = Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        PROXY_CONTAINER.to_owned(),
                        format!("--wait-ready={STARTUP_SECONDS}s"),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
    }
    container
}

/// The volumes the sidecar mounts.
pub fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: TOKEN_VOLUME.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(CA_TOKEN_AUDIENCE.to_owned()),
                        expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                        path: TOKEN_VOLUME.to_owned(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: ROOT_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: ROOT_CERT_CONFIGMAP.to_owned(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: PODINFO_VOLUME.to_owned(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![
                    podinfo_file("labels", "metadata.labels"),
                    podinfo_file("annotations", "metadata.annotations"),
                ]),
                ..DownwardAPIVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(field(path)),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn field(path: &str) -> ObjectFieldSelector {
    ObjectFieldSelector {
        field_path: path.to_owned(),
        ..ObjectFieldSelector::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn podinfo_file(path: &str, field_path: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.to_owned(),
        field_ref: Some(field(field_path)),
        ..DownwardAPIVolumeFile::default()
    }
}
