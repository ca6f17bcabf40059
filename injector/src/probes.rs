//! The app's kubelet probes, moved to the sidecar: each `httpGet` (scheme HTTP) or `tcpSocket`
//! probe of an app container becomes an HTTP GET of the sidecar's
//! `/app-health/<container>/<readyz|livez|startupz>` on 15021, and the original, with named
//! ports resolved, goes to the sidecar in `MESH_APP_PROBES`. Kubelet's probes then keep
//! working when the pod's PeerAuthentication is STRICT.

use k8s_openapi::{
    api::core::v1::{Container, HTTPGetAction, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde_json::{Map, Value, json};

use crate::HEALTH_PORT;

/// The probe fields of a container, their JSON names and the health path's last segment.
const PROBE_KINDS: [(ProbeKind, &str, &str); 3] = [
    (ProbeKind::Readiness, "readinessProbe", "readyz"),
    (ProbeKind::Liveness, "livenessProbe", "livez"),
    (ProbeKind::Startup, "startupProbe", "startupz"),
];

/// Which of a container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// One probe to replace: the container's index, the probe field's JSON name, the new probe.
#[derive(Debug, Clone, PartialEq)]
pub struct RewrittenProbe {
    /// The app container's index in `spec.containers`.
    pub container: usize,
    /// `readinessProbe`, `livenessProbe` or `startupProbe`.
    pub field: &'static str,
    /// The probe kubelet now runs: a GET of the sidecar's health path.
    pub probe: Probe,
}

/// The probes of a pod's app containers, moved to the sidecar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeRewrite {
    /// The replacements for kubelet.
    pub rewritten: Vec<RewrittenProbe>,
    /// The originals by health path, for the sidecar (`MESH_APP_PROBES`).
    pub originals: Map<String, Value>,
}

impl ProbeRewrite {
    /// The originals as the JSON the sidecar reads; `None` when no probe moved.
    pub fn sidecar_json(&self) -> Option<String> {
        (!self.originals.is_empty()).then(|| Value::Object(self.originals.clone()).to_string())
    }
}

/// Moves every probe of `containers` that the sidecar can run.
pub fn rewrite(containers: &[Container]) -> ProbeRewrite {
    let mut rewrite = ProbeRewrite::default();
    for (index, container) in containers.iter().enumerate() {
        for (kind, field, segment) in PROBE_KINDS {
            let probe = match kind {
                ProbeKind::Readiness => &container.readiness_probe,
                ProbeKind::Liveness => &container.liveness_probe,
                ProbeKind::Startup => &container.startup_probe,
            };
            let Some(probe) = probe else { continue };
            let Some(original) = sidecar_form(probe, container) else {
                continue;
            };
            let path = format!("/app-health/{}/{segment}", container.name);
            rewrite.originals.insert(path.clone(), original);
            rewrite.rewritten.push(RewrittenProbe {
                container: index,
                field,
                probe: Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some(path),
                        port: IntOrString::Int(HEALTH_PORT),
                        scheme: Some("HTTP".to_owned()),
                        ..HTTPGetAction::default()
                    }),
                    tcp_socket: None,
                    ..probe.clone()
                },
            });
        }
    }
    rewrite
}

/// The original probe as the sidecar runs it, or `None` when it cannot (exec, gRPC, HTTPS, or a
/// named port the container does not declare).
fn sidecar_form(probe: &Probe, container: &Container) -> Option<Value> {
    let port = |port: &IntOrString| match port {
        IntOrString::Int(n) => (*n > 0).then_some(*n),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port),
    };
    let mut form = Map::new();
    if let Some(get) = &probe.http_get {
        if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return None;
        }
        let mut action = json!({
            "path": get.path.as_deref().unwrap_or("/"),
            "port": port(&get.port)?,
        });
        if let Some(host) = &get.host {
            action["host"] = json!(host);
        }
        if let Some(headers) = &get.http_headers {
            action["httpHeaders"] = serde_json::to_value(headers).ok()?;
        }
        form.insert("httpGet".to_owned(), action);
    } else if let Some(tcp) = &probe.tcp_socket {
        form.insert("tcpSocket".to_owned(), json!({ "port": port(&tcp.port)? }));
    } else {
        return None;
    }
    if let Some(timeout) = probe.timeout_seconds {
        form.insert("timeoutSeconds".to_owned(), json!(timeout));
    }
    Some(Value::Object(form))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(yaml: &str) -> Vec<Container> {
        serde_yaml::from_str(yaml).expect("containers yaml")
    }

    #[test]
    fn http_and_tcp_probes_move_with_named_ports_resolved() {
        let rewrite = rewrite(&containers(
            r#"
- name: web
  ports: [{name: http, containerPort: 8080}]
  readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 3, timeoutSeconds: 2}
  livenessProbe: {tcpSocket: {port: 8080}}
- name: worker
  startupProbe: {exec: {command: [true]}}
"#,
        ));
        assert_eq!(rewrite.rewritten.len(), 2);
        let ready = &rewrite.rewritten[0];
        assert_eq!((ready.container, ready.field), (0, "readinessProbe"));
        let get = ready.probe.http_get.as_ref().expect("httpGet");
        assert_eq!(get.path.as_deref(), Some("/app-health/web/readyz"));
        assert_eq!(get.port, IntOrString::Int(15021));
        assert_eq!(ready.probe.period_seconds, Some(3), "timings are kept");
        assert!(rewrite.rewritten[1].probe.tcp_socket.is_none());
        assert_eq!(
            Value::Object(rewrite.originals.clone()),
            json!({
                "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080}, "timeoutSeconds": 2},
                "/app-health/web/livez": {"tcpSocket": {"port": 8080}},
            })
        );
    }

    #[test]
    fn probes_the_sidecar_cannot_run_stay() {
        let rewrite = rewrite(&containers(
            r#"
- name: a
  readinessProbe: {httpGet: {path: /, port: 443, scheme: HTTPS}}
  livenessProbe: {httpGet: {path: /, port: undeclared}}
  startupProbe: {grpc: {port: 9000}}
"#,
        ));
        assert_eq!(rewrite, ProbeRewrite::default());
        assert_eq!(rewrite.sidecar_json(), None);
    }
}
