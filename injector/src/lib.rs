//! Sidecar injection: the pure pod mutation (shared by the admission webhook, `mesh inject` and
//! the lab) and the mutating admission webhook that applies it to pods in namespaces labelled
//! `mesh-injection=enabled`.
//!
//! [`inject`] takes a Pod, its Namespace and the [`InjectionConfig`] and gives the injected Pod
//! with the JSON Patch that makes it; [`workload`] applies it to the pod templates of
//! Deployments, Jobs and the like; [`webhook`] serves it as `admission.k8s.io/v1` on 15017.

pub mod decision;
pub mod manifest;
pub mod mutation;
pub mod owner;
pub mod probes;
pub mod settings;
pub mod sidecar;
pub mod webhook;
pub mod workload;

pub use decision::{Skip, decide};
pub use mutation::{InjectError, Injection, inject};
pub use settings::{InjectionConfig, InjectionSettings, NativeSidecars};

/// The namespace label that turns injection on (`enabled`) or off (`disabled`).
pub const INJECTION_LABEL: &str = "mesh-injection";
/// The pod label (or annotation) that opts a pod out with `"false"`.
pub const INJECT_KEY: &str = "mesh.io/inject";
/// The annotation an injected pod carries: what was added, which makes injection idempotent.
pub const STATUS_ANNOTATION: &str = "mesh.io/status";
/// The pod label that tells peers the pod's sidecar speaks mesh mutual TLS (as Istio's).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// The sidecar container's name.
pub const PROXY_CONTAINER: &str = "mesh-proxy";
/// The init container's name.
pub const INIT_CONTAINER: &str = "mesh-init";
/// The sidecar's uid and gid.
pub const PROXY_UID: i64 = 1337;
/// The sidecar's health port (`/healthz/ready`, `/app-health/...`).
pub const HEALTH_PORT: i32 = 15021;
/// The sidecar's Prometheus port.
pub const METRICS_PORT: i32 = 15090;
/// The annotation giving the lifetime of the sidecar's certificate, e.g. `60s`.
pub const CERT_LIFETIME_ANNOTATION: &str = "mesh.io/cert-lifetime";
/// Pod annotations that set the sidecar's telemetry, each to the environment variable it
/// becomes: the access log (`"true"`), the trace collector's OTLP/gRPC URL, and the percent
/// of new traces recorded.
pub const TELEMETRY_ANNOTATIONS: [(&str, &str); 3] = [
    ("mesh.io/access-log", "MESH_ACCESS_LOG"),
    ("mesh.io/tracing-collector", "MESH_TRACING_COLLECTOR"),
    ("mesh.io/tracing-sampling", "MESH_TRACING_SAMPLING"),
];
/// The ConfigMap the control plane writes into every namespace with the mesh root certificate.
pub const ROOT_CERT_CONFIGMAP: &str = "mesh-root-cert";
/// The key of the root certificate (PEM) in [`ROOT_CERT_CONFIGMAP`].
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The audience of the sidecar's projected token for the CA.
pub const CA_TOKEN_AUDIENCE: &str = "mesh-ca";
