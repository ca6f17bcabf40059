//! VirtualServices, checked once into route sets, and the choice of the one that routes a
//! host for a given proxy. A VirtualService with any error is left out whole, so its hosts
//! keep their default routes.

mod destination;
mod http;
mod matching;

use std::{collections::HashMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    destination_rule::DestinationRules,
    names::{host_match_rank, resolve_host},
    problem::{Problem, Report},
    registry::Registry,
    rules::{MESH, RouteSet, Scope, TcpRule},
    visibility::Visibility,
};
use crate::{
    istio::{VirtualService, virtual_service::RouteDestination},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

pub(crate) use matching::check_regex;

/// What compiling a VirtualService's parts needs to know.
pub(crate) struct CompileContext<'a> {
    /// Known services.
    pub registry: &'a Registry,
    /// Valid DestinationRules (for subsets).
    pub rules: &'a DestinationRules,
    /// The VirtualService's namespace, for short host names.
    pub namespace: &'a str,
    /// Ports clients of the routed hosts connect to.
    pub listener_ports: Vec<u32>,
}

/// A checked VirtualService.
#[derive(Debug)]
pub(crate) struct CompiledVirtualService {
    /// The object.
    pub origin: ObjectRef,
    /// Its hosts, completed.
    pub hosts: Vec<String>,
    /// Gateways it applies to (`namespace/name`, `mesh` for sidecars).
    pub gateways: Vec<String>,
    /// Its rules.
    pub routes: RouteSet,
    visibility: Visibility,
    created: Option<Time>,
}

/// Every valid VirtualService, by host.
#[derive(Debug, Default)]
pub(crate) struct VirtualServices {
    exact: HashMap<String, Vec<Arc<CompiledVirtualService>>>,
    wildcard: Vec<Arc<CompiledVirtualService>>,
}

impl VirtualServices {
    /// The proxy label keys any VirtualService's rules select on.
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.exact
            .values()
            .flatten()
            .chain(&self.wildcard)
            .flat_map(|vs| vs.routes.label_keys())
    }

    /// Checks every VirtualService in the store; invalid ones are reported and left out.
    pub(crate) fn build(
        store: &Store,
        registry: &Registry,
        rules: &DestinationRules,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut all: Vec<CompiledVirtualService> = store
            .list::<VirtualService>()
            .filter_map(|vs| {
                let origin = ObjectRef::new(
                    Kind::VirtualService,
                    vs.metadata.namespace.clone().unwrap_or_default(),
                    vs.metadata.name.clone().unwrap_or_default(),
                );
                let mut report = Report::new(&origin);
                let compiled = compile(vs, registry, rules, &mut report);
                if report.has_errors() {
                    report.warning(
                        "",
                        "the VirtualService is not applied because of the errors above",
                        "fix them; until then its hosts get their default routes",
                    );
                }
                let valid = !report.has_errors();
                problems.extend(report.into_problems());
                valid.then_some(compiled)
            })
            .collect();
        all.sort_by(age_order);
        let mut index = VirtualServices::default();
        let mut mesh_owners: HashMap<String, ObjectRef> = HashMap::new();
        for vs in all {
            if vs.gateways.iter().any(|g| g == MESH) && vs.visibility == Visibility::Public {
                for host in &vs.hosts {
                    match mesh_owners.get(host) {
                        Some(owner) => problems.push(Problem::warning(
                            &vs.origin,
                            "spec.hosts",
                            format!(
                                "{owner} already routes host {host} for sidecars; this VirtualService is not used for it"
                            ),
                            "merge the two VirtualServices into one",
                        )),
                        None => {
                            mesh_owners.insert(host.clone(), vs.origin.clone());
                        }
                    }
                }
            }
            let vs = Arc::new(vs);
            for host in &vs.hosts {
                if host.starts_with('*') {
                    index.wildcard.push(vs.clone());
                } else {
                    index
                        .exact
                        .entry(host.clone())
                        .or_default()
                        .push(vs.clone());
                }
            }
        }
        index
    }

    /// The VirtualService routing `host` for `node` on `gateway` (`None` for a sidecar):
    /// exact hosts before wildcards, then the oldest.
    pub(crate) fn select(
        &self,
        host: &str,
        node: &ProxyNode,
        gateway: Option<&str>,
    ) -> Option<&Arc<CompiledVirtualService>> {
        let gateway = gateway.unwrap_or(MESH);
        let exact = self.exact.get(host).into_iter().flatten();
        exact
            .chain(self.wildcard.iter())
            .filter(|vs| {
                vs.visibility.admits(&node.namespace) && vs.gateways.iter().any(|g| g == gateway)
            })
            .filter_map(|vs| {
                let rank = vs
                    .hosts
                    .iter()
                    .filter_map(|h| host_match_rank(h, host))
                    .max()?;
                Some((vs, rank))
            })
            .min_by(|(a, a_rank), (b, b_rank)| b_rank.cmp(a_rank).then_with(|| age_order(a, b)))
            .map(|(vs, _)| vs)
    }

    /// VirtualServices written for exactly `host` that apply to sidecars.
    pub(crate) fn for_mesh_host<'a>(
        &'a self,
        host: &str,
    ) -> impl Iterator<Item = &'a Arc<CompiledVirtualService>> {
        self.exact
            .get(host)
            .into_iter()
            .flatten()
            .filter(|vs| vs.gateways.iter().any(|g| g == MESH))
    }

    /// Every VirtualService bound to `gateway` (`namespace/name`), oldest first (Istio merges
    /// them in that order).
    pub(crate) fn for_gateway(&self, gateway: &str) -> Vec<&Arc<CompiledVirtualService>> {
        let mut bound: Vec<_> = self
            .exact
            .values()
            .flatten()
            .chain(self.wildcard.iter())
            .filter(|vs| vs.gateways.iter().any(|g| g == gateway))
            .collect();
        bound.sort_by(|a, b| age_order(a, b));
        bound.dedup_by(|a, b| Arc::ptr_eq(a, b));
        bound
    }
}

/// Oldest first, then by namespace and name.
fn age_order(a: &CompiledVirtualService, b: &CompiledVirtualService) -> std::cmp::Ordering {
    let created = |v: &CompiledVirtualService| (v.created.is_none(), v.created.clone());
    created(a)
        .cmp(&created(b))
        .then_with(|| a.origin.cmp(&b.origin))
}

fn compile(
    vs: &VirtualService,
    registry: &Registry,
    rules: &DestinationRules,
    report: &mut Report<'_>,
) -> CompiledVirtualService {
    let spec = &vs.spec;
    let origin = report.object().clone();
    let namespace = origin.namespace.as_str();
    if spec.hosts.is_empty() {
        report.error(
            "spec.hosts",
            "no hosts are given",
            "list the hosts this routes",
        );
    }
    let hosts: Vec<String> = spec
        .hosts
        .iter()
        .map(|h| resolve_host(h, namespace))
        .collect();
    let gateways: Vec<String> = if spec.gateways.is_empty() {
        vec![MESH.to_owned()]
    } else {
        spec.gateways
            .iter()
            .map(|g| gateway_ref(g, namespace))
            .collect()
    };
    let for_mesh = gateways.iter().any(|g| g == MESH);
    let mut listener_ports = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let matching: Vec<_> = registry.matching(host).collect();
        if matching.is_empty() && for_mesh && spec.gateways.is_empty() {
            report.warning(
                format!("spec.hosts[{i}]"),
                format!("host {host} matches no Service or ServiceEntry; the rules route nothing"),
                "check the name and namespace",
            );
        }
        for service in matching {
            listener_ports.extend(service.ports.iter().map(|p| p.port));
        }
    }
    listener_ports.sort_unstable();
    listener_ports.dedup();
    let cx = CompileContext {
        registry,
        rules,
        namespace,
        listener_ports,
    };
    let vs_gateways = (!spec.gateways.is_empty()).then(|| gateways.clone());
    let name = origin.name.clone();
    let mut http = Vec::new();
    for (i, rule) in spec.http.iter().enumerate() {
        http.extend(http::compile_http_rule(
            rule,
            &format!("spec.http[{i}]"),
            &format!("{name}.{i}"),
            vs_gateways.as_ref(),
            &cx,
            report,
        ));
    }
    let mut tcp = Vec::new();
    for (i, rule) in spec.tcp.iter().enumerate() {
        let at = format!("spec.tcp[{i}]");
        let dests = route_destinations(&rule.route, &format!("{at}.route"), &cx, report);
        if rule.matches.is_empty() {
            tcp.push(TcpRule {
                scope: Scope {
                    gateways: vs_gateways.clone(),
                    ..Scope::default()
                },
                sni: Vec::new(),
                dests: dests.clone(),
            });
        }
        for (j, m) in rule.matches.iter().enumerate() {
            let at = format!("{at}.match[{j}]");
            unsupported_subnets(
                !m.destination_subnets.is_empty() || m.source_subnet.is_some(),
                &at,
                report,
            );
            tcp.push(TcpRule {
                scope: l4_scope(
                    m.port,
                    &m.source_labels,
                    &m.source_namespace,
                    &resolve_gateways(&m.gateways, namespace),
                    &vs_gateways,
                ),
                sni: Vec::new(),
                dests: dests.clone(),
            });
        }
    }
    let mut tls = Vec::new();
    for (i, rule) in spec.tls.iter().enumerate() {
        let at = format!("spec.tls[{i}]");
        let dests = route_destinations(&rule.route, &format!("{at}.route"), &cx, report);
        if rule.matches.is_empty() {
            report.error(
                format!("{at}.match"),
                "a TLS rule needs a match with sniHosts",
                "add match: [{ sniHosts: [...] }]",
            );
        }
        for (j, m) in rule.matches.iter().enumerate() {
            let at = format!("{at}.match[{j}]");
            if m.sni_hosts.is_empty() {
                report.error(
                    format!("{at}.sniHosts"),
                    "no sniHosts are given",
                    "list the server names",
                );
            }
            unsupported_subnets(!m.destination_subnets.is_empty(), &at, report);
            tls.push(TcpRule {
                scope: l4_scope(
                    m.port,
                    &m.source_labels,
                    &m.source_namespace,
                    &resolve_gateways(&m.gateways, namespace),
                    &vs_gateways,
                ),
                sni: m.sni_hosts.iter().map(|s| s.to_ascii_lowercase()).collect(),
                dests: dests.clone(),
            });
        }
    }
    CompiledVirtualService {
        hosts,
        gateways,
        routes: RouteSet {
            origins: vec![origin.clone()],
            http,
            tcp,
            tls,
        },
        visibility: Visibility::from_export_to(&spec.export_to, namespace),
        created: vs.metadata.creation_timestamp.clone(),
        origin,
    }
}

/// A gateway reference as `namespace/name` (`mesh` stays `mesh`).
pub(crate) fn gateway_ref(gateway: &str, namespace: &str) -> String {
    if gateway == MESH || gateway.contains('/') {
        gateway.to_owned()
    } else {
        format!("{namespace}/{gateway}")
    }
}

/// Gateway references of a match, as `namespace/name`.
pub(crate) fn resolve_gateways(gateways: &[String], namespace: &str) -> Vec<String> {
    gateways.iter().map(|g| gateway_ref(g, namespace)).collect()
}

fn route_destinations(
    route: &[RouteDestination],
    at: &str,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Vec<super::rules::Dest> {
    if route.is_empty() {
        report.error(
            at,
            "the rule has no destinations",
            "add a route destination",
        );
    }
    let list: Vec<_> = route
        .iter()
        .map(|r| destination::WeightedDestination {
            destination: &r.destination,
            weight: r.weight,
            headers: None,
        })
        .collect();
    destination::resolve_weighted(&list, at, cx, report)
}

fn l4_scope(
    port: Option<u32>,
    source_labels: &std::collections::BTreeMap<String, String>,
    source_namespace: &Option<String>,
    gateways: &[String],
    vs_gateways: &Option<Vec<String>>,
) -> Scope {
    Scope {
        port,
        source_labels: source_labels.clone(),
        source_namespace: source_namespace.clone(),
        gateways: if gateways.is_empty() {
            vs_gateways.clone()
        } else {
            Some(gateways.to_vec())
        },
    }
}

fn unsupported_subnets(present: bool, at: &str, report: &mut Report<'_>) {
    if present {
        report.error(
            at,
            "matching on subnets is not supported by mesh",
            "match on port, sourceLabels or sourceNamespace instead",
        );
    }
}
