//! Backend references of Gateway API routes, resolved to destinations: Services in the route's
//! namespace, or in another one whose ReferenceGrant lets the route's kind from the route's
//! namespace refer to them, by port, with their weights.

use gateway_api::referencegrants::ReferenceGrant;

use super::super::{
    names::service_host,
    problem::Report,
    registry::Registry,
    rules::{Dest, PortChoice},
};

/// A backend reference as routes and mirror filters write it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackendRef {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind; `Service` when not written.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; the route's when not written.
    pub namespace: Option<String>,
    /// Port.
    pub port: Option<i32>,
    /// Weight; 1 when not written.
    pub weight: Option<i32>,
}

/// Whether a ReferenceGrant in the target's namespace lets Gateway API objects of kind
/// `from.0` in namespace `from.1` refer to the core object `to` (kind, namespace, name).
pub(crate) fn granted(
    grants: &[&ReferenceGrant],
    (from_kind, from_namespace): (&str, &str),
    (to_kind, to_namespace, to_name): (&str, &str, &str),
) -> bool {
    grants
        .iter()
        .filter(|g| g.metadata.namespace.as_deref() == Some(to_namespace))
        .any(|grant| {
            let from = grant.spec.from.iter().any(|f| {
                f.group == "gateway.networking.k8s.io"
                    && f.kind == from_kind
                    && f.namespace == from_namespace
            });
            let to = grant.spec.to.iter().any(|t| {
                matches!(t.group.as_str(), "" | "core")
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            });
            from && to
        })
}

/// Resolves backend references of routes in one namespace.
pub(crate) struct Backends<'a> {
    /// Known services.
    pub registry: &'a Registry,
    /// Every ReferenceGrant.
    pub grants: &'a [&'a ReferenceGrant],
    /// The route's kind, as ReferenceGrants name it (`HTTPRoute`, `GRPCRoute`).
    pub route_kind: &'static str,
    /// The route's namespace.
    pub namespace: &'a str,
    /// Services in other namespaces the route may use: its own parent Services (a consumer
    /// route sends to the producer's Service).
    pub parents: Vec<(String, String)>,
}

impl Backends<'_> {
    /// Whether a ReferenceGrant in `namespace` lets this route refer to the Service `name`.
    fn granted(&self, namespace: &str, name: &str) -> bool {
        let from = (self.route_kind, self.namespace);
        granted(self.grants, from, ("Service", namespace, name))
    }

    /// One destination per reference, `None` for those weighted 0 and (reported) for those
    /// that cannot be used.
    pub(crate) fn resolve(
        &self,
        refs: &[BackendRef],
        at: &str,
        report: &mut Report<'_>,
    ) -> Vec<Option<Dest>> {
        refs.iter()
            .enumerate()
            .map(|(i, r)| self.resolve_one(r, &format!("{at}[{i}]"), report))
            .collect()
    }

    /// The destination of one reference. A reference weighted 0 takes no traffic, so the
    /// Gateway API treats it as unused: it is left out before its Service is looked for.
    fn resolve_one(&self, r: &BackendRef, at: &str, report: &mut Report<'_>) -> Option<Dest> {
        let weight = match r.weight {
            Some(0) => return None,
            Some(w) if w < 0 => {
                report.error(
                    format!("{at}.weight"),
                    format!("weight {w} is negative"),
                    "use 0 or more",
                );
                return None;
            }
            Some(w) => w.unsigned_abs(),
            None => 1,
        };
        if r.kind != "Service" || !matches!(r.group.as_str(), "" | "core") {
            report.error(
                at,
                format!(
                    "backend kind {:?} of group {:?} is not supported by mesh",
                    r.kind, r.group
                ),
                "refer to a Service",
            );
            return None;
        }
        let namespace = r.namespace.as_deref().unwrap_or(self.namespace);
        let parent = self
            .parents
            .iter()
            .any(|(ns, name)| ns == namespace && *name == r.name);
        if namespace != self.namespace && !parent && !self.granted(namespace, &r.name) {
            report.error(
                format!("{at}.namespace"),
                format!(
                    "backend {namespace}/{} is in another namespace and no ReferenceGrant there lets {}s from {} refer to it",
                    r.name, self.route_kind, self.namespace
                ),
                format!(
                    "add a ReferenceGrant in {namespace} from {{group: gateway.networking.k8s.io, kind: {}, namespace: {}}} to {{group: \"\", kind: Service}}",
                    self.route_kind, self.namespace
                ),
            );
            return None;
        }
        let host = service_host(namespace, &r.name);
        let Some(service) = self.registry.get(&host) else {
            report.error(
                format!("{at}.name"),
                format!("Service {namespace}/{} does not exist", r.name),
                "check the name, or create the Service",
            );
            return None;
        };
        let Some(port) = r.port.and_then(|p| u32::try_from(p).ok()) else {
            report.error(
                format!("{at}.port"),
                "a Service backend needs a port",
                "set the Service port",
            );
            return None;
        };
        if service.port(port).is_none() {
            report.error(
                format!("{at}.port"),
                format!("Service {namespace}/{} has no port {port}", r.name),
                "use one of the Service's ports",
            );
            return None;
        }
        Some(Dest {
            weight,
            ..Dest::service(&host, PortChoice::Fixed(port))
        })
    }
}
