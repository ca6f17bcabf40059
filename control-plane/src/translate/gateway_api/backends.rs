//! Backend references of Gateway API routes, resolved to destinations: Services in the route's
//! namespace, by port, with their weights.

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

/// Resolves backend references of routes in one namespace.
pub(crate) struct Backends<'a> {
    /// Known services.
    pub registry: &'a Registry,
    /// The route's namespace.
    pub namespace: &'a str,
    /// Services in other namespaces the route may use: its own parent Services (a consumer
    /// route sends to the producer's Service).
    pub parents: Vec<(String, String)>,
}

impl Backends<'_> {
    /// One destination per reference, `None` (reported) for those that cannot be used.
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

    fn resolve_one(&self, r: &BackendRef, at: &str, report: &mut Report<'_>) -> Option<Dest> {
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
        if namespace != self.namespace && !parent {
            report.error(
                format!("{at}.namespace"),
                format!(
                    "backend {namespace}/{} is in another namespace, which needs a ReferenceGrant; mesh does not read ReferenceGrants",
                    r.name
                ),
                "route to Services in the route's own namespace, or to the parent Service",
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
        let weight = match r.weight {
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
        Some(Dest {
            weight,
            ..Dest::service(&host, PortChoice::Fixed(port))
        })
    }
}
