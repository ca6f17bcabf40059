//! Pods from bare Pod objects and Deployments: names, placement, addresses, commands, env.

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, EnvVar, Namespace, Pod, PodSpec, Probe},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use mesh_injector::{Injection, PROXY_CONTAINER, inject};

use super::{
    ContainerPlan, ContainerPortPlan, NamespacePlan, NodePlan, PodPlan, PodRole, Protocol,
    Readiness,
};
use crate::manifest::Manifests;

mod pod_spec;
mod sidecar;

use pod_spec::{ignored_fields, sysctls};

pub use sidecar::settings as sidecar_settings;

/// The lab's own cluster DNS pod.
pub const DNS_POD: &str = "coredns";
/// The images the lab can run without a `command`: its built-in workload.
const BUILTIN_IMAGES: [&str; 1] = ["mesh-workload"];

/// A pod to place: where it came from and what it asks for.
struct PodSource<'a> {
    namespace: String,
    name: String,
    deployment: Option<String>,
    meta: &'a ObjectMeta,
    spec: &'a PodSpec,
}

/// Plans every pod; problems and warnings name the object.
pub fn plan(
    manifests: &Manifests,
    namespaces: &[NamespacePlan],
    nodes: &[NodePlan],
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<PodPlan> {
    let mut sources = Vec::new();
    for pod in &manifests.pods {
        let (Some(name), Some(spec)) = (&pod.metadata.name, &pod.spec) else {
            problems.push("a Pod without metadata.name or spec".to_owned());
            continue;
        };
        sources.push(PodSource {
            namespace: namespace_of(&pod.metadata),
            name: name.clone(),
            deployment: None,
            meta: &pod.metadata,
            spec,
        });
    }
    for deployment in &manifests.deployments {
        sources.extend(deployment_pods(deployment, None, problems));
    }
    sources.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut placer = Placer::new(nodes);
    let mut pods = vec![dns_pod(&mut placer)];
    for source in sources {
        let key = format!("{}/{}", source.namespace, source.name);
        let Some(namespace) = namespaces.iter().find(|n| n.name == source.namespace) else {
            problems.push(format!(
                "Pod {key}: namespace {} is not defined; add a Namespace manifest for it",
                source.namespace
            ));
            continue;
        };
        if pods.iter().any(|p: &PodPlan| p.key() == key) {
            problems.push(format!("Pod {key} is defined twice"));
            continue;
        }
        if source.spec.host_network == Some(true) {
            problems.push(format!(
                "Pod {key}: hostNetwork is not supported in the lab"
            ));
            continue;
        }
        let Some((node, ip)) = placer.place(source.spec.node_name.as_deref()) else {
            problems.push(format!(
                "Pod {key}: no room on node {:?} (nodes: {}; at most 253 pods each)",
                source.spec.node_name,
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        pods.push(build(
            &source, namespace, node, ip, manifests, problems, warnings,
        ));
    }
    pods
}

/// The pods of a Deployment: `replicas` of them, or as many as its spec says.
fn deployment_pods<'a>(
    deployment: &'a Deployment,
    replicas: Option<u32>,
    problems: &mut Vec<String>,
) -> Vec<PodSource<'a>> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let namespace = namespace_of(&deployment.metadata);
    let Some(spec) = &deployment.spec else {
        problems.push(format!("Deployment {namespace}/{name} has no spec"));
        return Vec::new();
    };
    let Some(pod_spec) = &spec.template.spec else {
        problems.push(format!(
            "Deployment {namespace}/{name} has no spec.template.spec"
        ));
        return Vec::new();
    };
    let Some(template_meta) = &spec.template.metadata else {
        problems.push(format!(
            "Deployment {namespace}/{name} has no template labels"
        ));
        return Vec::new();
    };
    check_selector(&namespace, &name, deployment, template_meta, problems);
    let replicas = replicas.unwrap_or_else(|| spec.replicas.unwrap_or(1).max(0).unsigned_abs());
    let template_hash = short_hash(&format!("{namespace}/{name}"), 10);
    (0..replicas)
        .map(|replica| PodSource {
            namespace: namespace.clone(),
            name: format!(
                "{name}-{template_hash}-{}",
                short_hash(&format!("{namespace}/{name}/{replica}"), 5)
            ),
            deployment: Some(name.clone()),
            meta: template_meta,
            spec: pod_spec,
        })
        .collect()
}

/// The pods `namespace/deployment` has at `replicas`, those `exists` does not know yet placed
/// with `place` (given the pod's `nodeName`); problems name the Deployment.
pub fn scaled_pods<'n>(
    manifests: &Manifests,
    namespaces: &[NamespacePlan],
    namespace: &str,
    deployment: &str,
    replicas: u32,
    exists: impl Fn(&str) -> bool,
    mut place: impl FnMut(Option<&str>) -> Option<(&'n NodePlan, Ipv4Addr)>,
) -> Result<(Vec<String>, Vec<PodPlan>), Vec<String>> {
    let mut problems = Vec::new();
    let Some(found) = manifests.deployments.iter().find(|d| {
        d.metadata.name.as_deref() == Some(deployment) && namespace_of(&d.metadata) == namespace
    }) else {
        return Err(vec![format!(
            "no Deployment {namespace}/{deployment} in the lab's manifests; see `mesh lab status`"
        )]);
    };
    let Some(ns) = namespaces.iter().find(|n| n.name == namespace) else {
        return Err(vec![format!("namespace {namespace} is not in the lab")]);
    };
    let sources = deployment_pods(found, Some(replicas), &mut problems);
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let mut warnings = Vec::new();
    let mut added = Vec::new();
    for source in sources.iter().filter(|s| !exists(&s.name)) {
        let Some((node, ip)) = place(source.spec.node_name.as_deref()) else {
            problems.push(format!(
                "Pod {namespace}/{}: no room on node {:?}",
                source.name, source.spec.node_name
            ));
            break;
        };
        added.push(build(
            source,
            ns,
            node,
            ip,
            manifests,
            &mut problems,
            &mut warnings,
        ));
    }
    if problems.is_empty() {
        Ok((names, added))
    } else {
        Err(problems)
    }
}

/// One pod from its source, on `node` at `ip`, injected as the webhook would inject it.
fn build(
    source: &PodSource<'_>,
    namespace: &NamespacePlan,
    node: &NodePlan,
    ip: Ipv4Addr,
    manifests: &Manifests,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> PodPlan {
    let key = format!("{}/{}", source.namespace, source.name);
    for ignored in ignored_fields(source.spec) {
        warnings.push(format!("Pod {key}: {ignored} is ignored by the lab"));
    }
    let written = Pod {
        metadata: ObjectMeta {
            name: Some(source.name.clone()),
            namespace: Some(source.namespace.clone()),
            owner_references: super::replica_set_owner(&source.name, source.deployment.as_deref()),
            ..source.meta.clone()
        },
        spec: Some(source.spec.clone()),
        ..Pod::default()
    };
    let injected = match inject(
        &written,
        &namespace_object(namespace, manifests),
        &sidecar::settings(),
    ) {
        Ok(Injection::Injected { pod, .. }) => Some(*pod),
        Ok(Injection::Skipped(_)) => None,
        Err(e) => {
            problems.push(format!("Pod {key}: cannot inject the sidecar: {e}"));
            None
        }
    };
    let running = injected.as_ref().unwrap_or(&written);
    let spec = running.spec.as_ref().unwrap_or(source.spec);
    let mut pod = PodPlan {
        namespace: source.namespace.clone(),
        name: source.name.clone(),
        deployment: source.deployment.clone(),
        node: node.name.clone(),
        ip,
        labels: running.metadata.labels.clone().unwrap_or_default(),
        annotations: running.metadata.annotations.clone().unwrap_or_default(),
        service_account: spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        hostname: spec.hostname.clone(),
        subdomain: spec.subdomain.clone(),
        sidecar: None,
        sysctls: sysctls(spec, &key, warnings),
        role: PodRole::Containers(Vec::new()),
    };
    if injected.is_some() {
        pod.sidecar = sidecar::plan(spec, &pod, node, problems, warnings);
    } else if let Some(proxy) = spec.containers.iter().find(|c| c.name == PROXY_CONTAINER) {
        // A gateway pod: the mesh's proxy is its own container.
        pod.sidecar = sidecar::gateway_plan(spec, proxy, &pod, node, problems, warnings);
    }
    let containers = spec
        .containers
        .iter()
        .filter(|c| c.name != PROXY_CONTAINER)
        .filter_map(|c| container(c, &pod, node, problems, warnings))
        .collect();
    pod.role = PodRole::Containers(containers);
    pod
}

/// The Namespace object the injector decides with: as written, or with the injection label
/// the lab's plan gave it.
fn namespace_object(namespace: &NamespacePlan, manifests: &Manifests) -> Namespace {
    let written = manifests
        .namespaces
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(&namespace.name));
    match written {
        Some(written) => written.clone(),
        None if namespace.meshed => mesh_injector::decision::enabled_namespace(&namespace.name),
        None => Namespace::default(),
    }
}

/// The lab's cluster DNS pod on node 1.
fn dns_pod(placer: &mut Placer) -> PodPlan {
    let (node, ip) = placer
        .place(None)
        .unwrap_or_else(|| unreachable!("node1 is empty"));
    PodPlan {
        namespace: "kube-system".to_owned(),
        name: DNS_POD.to_owned(),
        deployment: None,
        node: node.name.clone(),
        ip,
        labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
        annotations: BTreeMap::new(),
        service_account: "coredns".to_owned(),
        hostname: None,
        subdomain: None,
        sidecar: None,
        sysctls: Vec::new(),
        role: PodRole::ClusterDns,
    }
}

/// Spreads pods over nodes in turn and hands out addresses from each node's subnet.
struct Placer<'a> {
    nodes: &'a [NodePlan],
    next_node: usize,
    used: Vec<u8>,
}

impl<'a> Placer<'a> {
    fn new(nodes: &'a [NodePlan]) -> Self {
        Placer {
            nodes,
            next_node: 0,
            used: vec![1; nodes.len()], // .1 is the bridge
        }
    }

    fn place(&mut self, wanted: Option<&str>) -> Option<(&'a NodePlan, Ipv4Addr)> {
        let position = match wanted {
            Some(name) => self.nodes.iter().position(|n| n.name == name)?,
            None => {
                let position = self.next_node % self.nodes.len();
                self.next_node += 1;
                position
            }
        };
        let node = &self.nodes[position];
        let host = self.used[position].checked_add(1).filter(|h| *h < 255)?;
        self.used[position] = host;
        let [a, b, c, _] = node.pod_subnet.octets();
        Some((node, Ipv4Addr::new(a, b, c, host)))
    }
}

pub(super) fn container(
    container: &Container,
    pod: &PodPlan,
    node: &NodePlan,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<ContainerPlan> {
    let where_ = format!("Pod {}, container {}", pod.key(), container.name);
    let mut argv = container.command.clone().unwrap_or_default();
    if argv.is_empty() {
        let image = container.image.as_deref().unwrap_or_default();
        let base = image.rsplit('/').next().unwrap_or(image);
        let base = base.split([':', '@']).next().unwrap_or(base);
        if BUILTIN_IMAGES.contains(&base) {
            argv.push(base.to_owned());
        } else {
            problems.push(format!(
                "{where_}: no `command`; the lab runs no images, so give the command to run \
                 (e.g. `command: [mesh-workload]`, or image `mesh-workload`)"
            ));
            return None;
        }
    }
    argv.extend(container.args.clone().unwrap_or_default());
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        match env_value(var, pod, node) {
            // A value may name the variables defined before it, as kubelet expands them.
            Ok(value) => {
                let value = expand_vars(&value, &env);
                env.push((var.name.clone(), value));
            }
            Err(why) => problems.push(format!("{where_}, env {}: {why}", var.name)),
        }
    }
    let argv = argv.iter().map(|arg| expand_vars(arg, &env)).collect();
    let ports: Vec<ContainerPortPlan> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.container_port).ok().filter(|p| *p > 0);
            if port.is_none() {
                problems.push(format!("{where_}: bad containerPort {}", p.container_port));
            }
            Some(ContainerPortPlan {
                name: p.name.clone(),
                port: port?,
                protocol: protocol(p.protocol.as_deref()),
            })
        })
        .collect();
    let readiness = match container.readiness_probe.as_ref() {
        Some(probe) => probe_readiness(probe, &ports).unwrap_or_else(|why| {
            warnings.push(format!(
                "{where_}: readinessProbe {why}; ready while running"
            ));
            Readiness::Running
        }),
        None => {
            let tcp: Vec<u16> = ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port)
                .collect();
            if tcp.is_empty() {
                Readiness::Running
            } else {
                Readiness::TcpPorts(tcp)
            }
        }
    };
    Some(ContainerPlan {
        name: container.name.clone(),
        argv,
        env,
        ports,
        readiness,
    })
}

/// Kubelet's `$(VAR)` expansion: a reference to a variable of `env` becomes its value, `$$`
/// becomes `$`, and anything else (an unknown name, an unclosed reference) stays as written.
pub(super) fn expand_vars(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let reference = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
            .and_then(|(name, tail)| {
                let value = env.iter().rev().find(|(n, _)| n == name)?;
                Some((&value.1, tail))
            });
        match reference {
            Some((value, tail)) => {
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An env var's value, with the downward API's field references resolved.
fn env_value(var: &EnvVar, pod: &PodPlan, node: &NodePlan) -> Result<String, String> {
    let Some(source) = &var.value_from else {
        return Ok(var.value.clone().unwrap_or_default());
    };
    let Some(field) = &source.field_ref else {
        return Err("only value and valueFrom.fieldRef are supported in the lab".to_owned());
    };
    let path = field.field_path.as_str();
    let from_map = |prefix: &str, map: &BTreeMap<String, String>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.get(key).cloned().unwrap_or_default())
    };
    let value = match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "spec.nodeName" => node.name.clone(),
        "spec.serviceAccountName" => pod.service_account.clone(),
        "status.podIP" | "status.podIPs" => pod.ip.to_string(),
        "status.hostIP" | "status.hostIPs" => node.ip.to_string(),
        _ => from_map("metadata.labels['", &pod.labels)
            .or_else(|| from_map("metadata.annotations['", &pod.annotations))
            .ok_or_else(|| format!("fieldRef {path} is not supported in the lab"))?,
    };
    Ok(value)
}

fn probe_readiness(probe: &Probe, ports: &[ContainerPortPlan]) -> Result<Readiness, String> {
    let resolve = |port: &IntOrString| match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("has bad port {n}")),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.port)
            .ok_or_else(|| format!("names port {name}, which the container does not declare")),
    };
    if let Some(http) = &probe.http_get {
        return Ok(Readiness::HttpGet {
            port: resolve(&http.port)?,
            path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Ok(Readiness::TcpPorts(vec![resolve(&tcp.port)?]));
    }
    Err("is neither httpGet nor tcpSocket".to_owned())
}

/// A port protocol as written (`TCP` by default).
pub fn protocol(written: Option<&str>) -> Protocol {
    match written {
        Some("UDP") => Protocol::Udp,
        _ => Protocol::Tcp,
    }
}

fn check_selector(
    namespace: &str,
    name: &str,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    template: &ObjectMeta,
    problems: &mut Vec<String>,
) {
    let Some(spec) = &deployment.spec else {
        return;
    };
    if spec
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        problems.push(format!(
            "Deployment {namespace}/{name}: selector.matchExpressions is not supported in the lab"
        ));
    }
    let labels = template.labels.clone().unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    if selector.is_empty() || selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        problems.push(format!(
            "Deployment {namespace}/{name}: selector {selector:?} does not match the template's labels {labels:?}"
        ));
    }
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

/// A stable name suffix in Kubernetes' alphabet (no vowels, no look-alike digits).
pub(super) fn short_hash(input: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // FNV-1a: stable across builds and platforms, which Rust's default hasher is not.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in input.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        out.push(char::from(
            ALPHABET[(hash % ALPHABET.len() as u64) as usize],
        ));
        hash /= ALPHABET.len() as u64;
    }
    out
}
