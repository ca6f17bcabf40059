//! PeerAuthentication: which clients a sidecar's inbound side accepts, as Istio merges it. The
//! mesh-wide policy (root namespace `mesh-system`, no selector), then the namespace's (no
//! selector), then the workload's (a selector matching the proxy's labels), then the workload
//! policy's `portLevelMtls`: each level's `UNSET` keeps what the level above said, and among
//! policies of one level the oldest wins. A proxy that some policy applies to gets a virtual
//! inbound listener (port 0, every port) with the mode, and one listener per port-level mode;
//! the listeners also carry the workload's authorization policies.

use std::collections::BTreeMap;

use mesh_proto::config::v1::{AuthorizationPolicy, Listener, MtlsMode, listener::Mode};

use k8s_openapi::api::core::v1::Pod;

use super::{
    problem::{Problem, Report},
    security_checks::SelectorOf,
};
use crate::{
    istio::peer_authentication::{MutualTlsMode, PeerAuthentication},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

/// The namespace whose selector-less policies apply to the whole mesh.
pub const ROOT_NAMESPACE: &str = "mesh-system";
/// The name of the listener that holds the inbound defaults of every port.
pub const VIRTUAL_INBOUND: &str = "virtualInbound";

/// Every valid PeerAuthentication, oldest first.
#[derive(Debug, Default)]
pub(crate) struct PeerAuthentications {
    policies: Vec<CompiledPolicy>,
}

#[derive(Debug)]
struct CompiledPolicy {
    origin: ObjectRef,
    selector: Option<BTreeMap<String, String>>,
    mode: Option<MtlsMode>,
    ports: BTreeMap<u32, MtlsMode>,
    created: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// The inbound modes of one workload (PERMISSIVE everywhere by default).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct InboundModes {
    /// Every port's mode unless `ports` says otherwise.
    pub default: MtlsMode,
    /// Modes of single ports.
    pub ports: BTreeMap<u32, MtlsMode>,
}

// === impl PeerAuthentications ===

impl PeerAuthentications {
    /// Checks every PeerAuthentication in the store; invalid ones are reported and left out.
    pub(crate) fn build(store: &Store, problems: &mut Vec<Problem>) -> Self {
        let mut policies: Vec<CompiledPolicy> = store
            .list::<PeerAuthentication>()
            .filter_map(|pa| {
                let origin = ObjectRef::new(
                    Kind::PeerAuthentication,
                    pa.metadata.namespace.clone().unwrap_or_default(),
                    pa.metadata.name.clone().unwrap_or_default(),
                );
                let mut report = Report::new(&origin);
                let compiled = compile(pa, &mut report);
                let valid = !report.has_errors();
                problems.extend(report.into_problems());
                valid.then_some(compiled)
            })
            .collect();
        policies.sort_by(|a, b| {
            let created = |p: &CompiledPolicy| (p.created.is_none(), p.created.clone());
            created(a)
                .cmp(&created(b))
                .then_with(|| a.origin.cmp(&b.origin))
        });
        PeerAuthentications { policies }
    }

    /// The label keys selectors read (part of a proxy's view).
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.policies
            .iter()
            .flat_map(|p| p.selector.iter().flat_map(|s| s.keys().map(String::as_str)))
    }

    /// The modes for `node`, or `None` when no policy applies to it (PERMISSIVE everywhere).
    pub(crate) fn modes_for(&self, node: &ProxyNode) -> Option<InboundModes> {
        self.modes(&node.namespace, &node.labels)
    }

    /// The mode of `pod`'s inbound `port`.
    pub(crate) fn mode_of_pod(&self, pod: &Pod, port: u32) -> MtlsMode {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.mode_of(namespace, &labels, Some(port))
    }

    /// The mode of a workload's `port` (its default mode for `None`).
    pub(crate) fn mode_of(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        port: Option<u32>,
    ) -> MtlsMode {
        match (self.modes(namespace, labels), port) {
            (None, _) => MtlsMode::Permissive,
            (Some(modes), Some(port)) => modes.of_port(port),
            (Some(modes), None) => modes.default,
        }
    }

    /// The mode of a workload's `port` and the policy that decided it, if any.
    pub(crate) fn decide(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        port: Option<u32>,
    ) -> (MtlsMode, Option<&ObjectRef>) {
        let [mesh, in_namespace, workload] = self.levels(namespace, labels);
        if let (Some(workload), Some(port)) = (workload, port)
            && let Some(mode) = workload.ports.get(&port)
        {
            return (*mode, Some(&workload.origin));
        }
        [workload, in_namespace, mesh]
            .into_iter()
            .flatten()
            .find_map(|p| p.mode.map(|mode| (mode, Some(&p.origin))))
            .unwrap_or((MtlsMode::Permissive, None))
    }

    /// The policies with a workload selector.
    pub(crate) fn selectors(&self) -> impl Iterator<Item = SelectorOf<'_>> {
        self.policies.iter().filter_map(|p| {
            let selector = p.selector.as_ref()?;
            Some((&p.origin, p.origin.namespace.as_str(), selector))
        })
    }

    /// The modes of a workload in `namespace` with `labels`.
    fn modes(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Option<InboundModes> {
        if self.policies.is_empty() {
            return None;
        }
        let [mesh, namespace, workload] = self.levels(namespace, labels);
        if mesh.is_none() && namespace.is_none() && workload.is_none() {
            return None;
        }
        let default = [workload, namespace, mesh]
            .into_iter()
            .flatten()
            .find_map(|p| p.mode)
            .unwrap_or(MtlsMode::Permissive);
        let ports = workload.map(|p| p.ports.clone()).unwrap_or_default();
        Some(InboundModes { default, ports })
    }

    /// The policies of a workload's three levels: mesh-wide, namespace, workload selector.
    fn levels(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> [Option<&CompiledPolicy>; 3] {
        let mesh = self.oldest(|p| p.origin.namespace == ROOT_NAMESPACE && p.selector.is_none());
        let in_namespace = (namespace != ROOT_NAMESPACE)
            .then(|| self.oldest(|p| p.origin.namespace == namespace && p.selector.is_none()))
            .flatten();
        let workload = self.oldest(|p| {
            p.origin.namespace == namespace
                && p.selector
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
        });
        [mesh, in_namespace, workload]
    }

    fn oldest(&self, applies: impl Fn(&CompiledPolicy) -> bool) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| applies(p))
    }
}

// === impl InboundModes ===

impl InboundModes {
    /// The mode of one port.
    pub(crate) fn of_port(&self, port: u32) -> MtlsMode {
        self.ports.get(&port).copied().unwrap_or(self.default)
    }

    /// The inbound listeners that carry the modes and `policies`: port 0 for the default,
    /// one per port with a mode of its own.
    pub(crate) fn listeners(&self, policies: &[AuthorizationPolicy]) -> Vec<Listener> {
        let listener = |name: String, port: u32, mode: MtlsMode| Listener {
            name,
            address: format!("0.0.0.0:{port}"),
            mode: Mode::Inbound.into(),
            mtls: mode.into(),
            authorization: policies.to_vec(),
            ..Listener::default()
        };
        std::iter::once(listener(VIRTUAL_INBOUND.to_owned(), 0, self.default))
            .chain(
                self.ports
                    .iter()
                    .map(|(port, mode)| listener(format!("inbound|{port}"), *port, *mode)),
            )
            .collect()
    }
}

fn compile(pa: &PeerAuthentication, report: &mut Report<'_>) -> CompiledPolicy {
    let spec = &pa.spec;
    let mode = |mode: Option<&MutualTlsMode>, field: &str, report: &mut Report<'_>| match mode {
        None | Some(MutualTlsMode::Unset) => None,
        Some(MutualTlsMode::Strict) => Some(MtlsMode::Strict),
        Some(MutualTlsMode::Permissive) => Some(MtlsMode::Permissive),
        Some(MutualTlsMode::Disable) => Some(MtlsMode::Disable),
        Some(MutualTlsMode::Unknown(other)) => {
            report.error(
                field,
                format!("unknown mutual TLS mode {other:?}"),
                "use UNSET, DISABLE, PERMISSIVE or STRICT",
            );
            None
        }
    };
    let selector = spec
        .selector
        .as_ref()
        .map(|s| s.match_labels.clone())
        .filter(|labels| !labels.is_empty());
    let mut ports = BTreeMap::new();
    if !spec.port_level_mtls.is_empty() && selector.is_none() {
        report.warning(
            "spec.portLevelMtls",
            "port-level modes apply only to a policy with a workload selector; ignored",
            "add spec.selector.matchLabels, or move the ports to a workload policy",
        );
    } else {
        for (port, tls) in &spec.port_level_mtls {
            let field = format!("spec.portLevelMtls[{port}].mode");
            if *port == 0 || *port > 65535 {
                report.error(
                    format!("spec.portLevelMtls[{port}]"),
                    format!("{port} is not a port number"),
                    "use 1 to 65535",
                );
                continue;
            }
            if let Some(mode) = mode(tls.mode.as_ref(), &field, report) {
                ports.insert(*port, mode);
            }
        }
    }
    CompiledPolicy {
        origin: report.object().clone(),
        mode: mode(
            spec.mtls.as_ref().and_then(|m| m.mode.as_ref()),
            "spec.mtls.mode",
            report,
        ),
        selector,
        ports,
        created: pa.metadata.creation_timestamp.clone(),
    }
}
