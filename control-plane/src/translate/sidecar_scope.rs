//! Sidecar resources: which services a workload's proxy receives (its egress hosts) and what it
//! does with traffic to destinations outside the registry. A proxy takes the Sidecar of its
//! namespace whose `workloadSelector` matches its labels, else its namespace's Sidecar without
//! a selector, else the root namespace's (mesh-wide); among several at one level the oldest
//! (then by name) wins and the others are reported. Without any, a proxy receives every service
//! exported to its namespace, under the mesh's outbound traffic policy.

use std::collections::BTreeMap;

use super::{
    OutboundTrafficPolicy,
    names::host_match_rank,
    peer_authentication::ROOT_NAMESPACE,
    problem::{Problem, Report},
    registry::{Registry, ServiceModel},
};
use crate::{
    istio::sidecar::{OutboundMode, Sidecar},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

/// Every valid Sidecar, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SidecarScopes {
    scopes: Vec<Scope>,
}

/// What one Sidecar allows the proxies it applies to.
#[derive(Debug)]
pub(crate) struct Scope {
    /// The Sidecar.
    pub origin: ObjectRef,
    selector: Option<BTreeMap<String, String>>,
    /// The egress entries; none means every service.
    egress: Vec<EgressRule>,
    /// Its outbound traffic policy, if it sets one.
    pub outbound_policy: Option<OutboundTrafficPolicy>,
}

/// Hosts a proxy may reach, on one port or all.
#[derive(Debug)]
struct EgressRule {
    port: Option<u32>,
    hosts: Vec<HostPattern>,
}

/// `namespace/host` of an egress entry.
#[derive(Debug)]
struct HostPattern {
    /// Where it is written, e.g. `spec.egress[0].hosts[1]`.
    field: String,
    /// `None` for any namespace (`*`).
    namespace: Option<String>,
    /// `*`, `*.suffix` or a host.
    host: String,
}

// === impl SidecarScopes ===

impl SidecarScopes {
    /// Checks every Sidecar in the store; invalid ones are reported and left out.
    pub(crate) fn build(store: &Store, problems: &mut Vec<Problem>) -> Self {
        let mut sidecars: Vec<&Sidecar> = store.list::<Sidecar>().map(|s| &**s).collect();
        sidecars.sort_by(|a, b| {
            let created = |s: &Sidecar| s.metadata.creation_timestamp.clone();
            let key = |s: &Sidecar| (s.metadata.namespace.clone(), s.metadata.name.clone());
            (created(a).is_none(), created(a))
                .cmp(&(created(b).is_none(), created(b)))
                .then_with(|| key(a).cmp(&key(b)))
        });
        let mut scopes: Vec<Scope> = Vec::new();
        for sidecar in sidecars {
            let origin = ObjectRef::new(
                Kind::Sidecar,
                sidecar.metadata.namespace.clone().unwrap_or_default(),
                sidecar.metadata.name.clone().unwrap_or_default(),
            );
            let mut report = Report::new(&origin);
            let scope = compile(sidecar, origin.clone(), &mut report);
            let shadowing = (scopes.iter()).find(|s| {
                s.origin.namespace == scope.origin.namespace && s.selector == scope.selector
            });
            if let Some(first) = shadowing {
                report.warning(
                    "spec.workloadSelector",
                    format!(
                        "{} already applies to the same workloads; this Sidecar is ignored",
                        first.origin
                    ),
                    "keep one Sidecar per namespace (and per selector)",
                );
            } else if !report.has_errors() {
                scopes.push(scope);
            }
            problems.extend(report.into_problems());
        }
        SidecarScopes { scopes }
    }

    /// The label keys selectors read (part of a proxy's view).
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        (self.scopes.iter())
            .flat_map(|s| s.selector.iter().flat_map(|l| l.keys().map(String::as_str)))
    }

    /// The Sidecar that applies to `node`, if any.
    pub(crate) fn for_node(&self, node: &ProxyNode) -> Option<&Scope> {
        let namespace = node.namespace.as_str();
        let selects = |s: &&Scope| {
            (s.selector.as_ref())
                .is_some_and(|labels| labels.iter().all(|(k, v)| node.labels.get(k) == Some(v)))
        };
        let local = || {
            self.scopes
                .iter()
                .filter(move |s| s.origin.namespace == namespace)
        };
        (local().find(selects))
            .or_else(|| local().find(|s| s.selector.is_none()))
            .or_else(|| {
                (self.scopes.iter())
                    .find(|s| s.origin.namespace == ROOT_NAMESPACE && s.selector.is_none())
            })
    }
}

/// For `mesh analyze`: egress hosts that match no service of `registry`, and which Sidecars
/// refuse destinations outside the registry.
pub(crate) fn sidecar_checks(scopes: &SidecarScopes, registry: &Registry) -> Vec<Problem> {
    let mut problems = Vec::new();
    for scope in &scopes.scopes {
        for rule in &scope.egress {
            for pattern in &rule.hosts {
                let reaches = registry.iter().any(|service| {
                    pattern.matches(service) && rule.port.is_none_or(|p| service.port(p).is_some())
                });
                if !reaches {
                    problems.push(Problem::warning(
                        &scope.origin,
                        &pattern.field,
                        "matches no Service or ServiceEntry (on its port); it lets the proxies reach nothing",
                        "check the namespace and host, or declare the host in a ServiceEntry",
                    ));
                }
            }
        }
        if scope.outbound_policy == Some(OutboundTrafficPolicy::RegistryOnly) {
            problems.push(Problem::info(
                &scope.origin,
                "spec.outboundTrafficPolicy.mode",
                "the proxies it applies to refuse destinations outside their registry (REGISTRY_ONLY): HTTP requests get 502, other connections are closed, each counted in mesh_outbound_blocked_total",
                "declare external destinations in ServiceEntries (and in spec.egress)",
            ));
        }
    }
    problems
}

// === impl Scope ===

impl Scope {
    /// Whether the proxies it applies to receive `port` of `service`.
    pub(crate) fn admits(&self, service: &ServiceModel, port: u32) -> bool {
        self.egress.is_empty()
            || self.egress.iter().any(|rule| {
                rule.port.is_none_or(|p| p == port)
                    && rule.hosts.iter().any(|pattern| pattern.matches(service))
            })
    }
}

/// Whether a proxy under `scope` (none: no Sidecar) receives `port` of `service`.
pub(crate) fn admits(scope: Option<&Scope>, service: &ServiceModel, port: u32) -> bool {
    scope.is_none_or(|s| s.admits(service, port))
}

impl HostPattern {
    fn matches(&self, service: &ServiceModel) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == service.namespace)
            && (self.host == "*" || host_match_rank(&self.host, &service.host).is_some())
    }
}

fn compile(sidecar: &Sidecar, origin: ObjectRef, report: &mut Report<'_>) -> Scope {
    let spec = &sidecar.spec;
    let namespace = origin.namespace.clone();
    if !spec.ingress.is_empty() {
        report.warning(
            "spec.ingress",
            "ingress listeners are not supported by mesh; inbound traffic is served as without them",
            "remove spec.ingress; use Services' ports and PeerAuthentication",
        );
    }
    let mut egress = Vec::new();
    for (i, entry) in spec.egress.iter().enumerate() {
        let at = format!("spec.egress[{i}]");
        if entry.bind.is_some() || entry.capture_mode.is_some() {
            report.warning(
                &at,
                "bind and captureMode are not supported by mesh; traffic is captured as usual",
                "remove bind and captureMode",
            );
        }
        let mut hosts = Vec::new();
        for (j, text) in entry.hosts.iter().enumerate() {
            let Some((ns, host)) = text.split_once('/') else {
                report.error(
                    format!("{at}.hosts[{j}]"),
                    format!("{text:?} is not namespace/host"),
                    "write ./host, */host, or namespace/host (host may be * or *.suffix)",
                );
                continue;
            };
            let namespace = match ns {
                "*" => None,
                "." => Some(namespace.clone()),
                // `~`: no namespace; the entry reaches nothing.
                "~" => continue,
                name => Some(name.to_owned()),
            };
            hosts.push(HostPattern {
                field: format!("{at}.hosts[{j}]"),
                namespace,
                host: host.to_owned(),
            });
        }
        if entry.hosts.is_empty() {
            report.error(
                format!("{at}.hosts"),
                "an egress entry needs hosts",
                "list namespace/host patterns, e.g. ./*",
            );
        }
        egress.push(EgressRule {
            port: entry.port.as_ref().map(|p| p.number),
            hosts,
        });
    }
    let outbound_policy = match spec.outbound_traffic_policy.as_ref() {
        None => None,
        Some(policy) => {
            if policy.egress_proxy.is_some() {
                report.warning(
                    "spec.outboundTrafficPolicy.egressProxy",
                    "egressProxy is not supported by mesh; unknown destinations follow the mode",
                    "remove egressProxy",
                );
            }
            match &policy.mode {
                None => None,
                Some(OutboundMode::AllowAny) => Some(OutboundTrafficPolicy::AllowAny),
                Some(OutboundMode::RegistryOnly) => Some(OutboundTrafficPolicy::RegistryOnly),
                Some(OutboundMode::Unknown(other)) => {
                    report.error(
                        "spec.outboundTrafficPolicy.mode",
                        format!("unknown mode {other:?}"),
                        "use ALLOW_ANY or REGISTRY_ONLY",
                    );
                    None
                }
            }
        }
    };
    let selector = spec.workload_selector.as_ref().map(|s| s.labels.clone());
    if selector.is_some() && namespace == ROOT_NAMESPACE {
        report.warning(
            "spec.workloadSelector",
            format!("a Sidecar with a workloadSelector in {ROOT_NAMESPACE} applies only to workloads there, not mesh-wide"),
            "drop the selector for a mesh-wide default",
        );
    }
    Scope {
        origin,
        selector,
        egress,
        outbound_policy,
    }
}
