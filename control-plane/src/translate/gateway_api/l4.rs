//! TLSRoutes and TCPRoutes, the routes of Gateways' TLS passthrough and TCP listeners: each
//! sends whole connections to weighted backends (a TLSRoute those whose SNI is one of its
//! hostnames). One rule each: further rules are reported and not applied.

use gateway_api::{experimental::tcproutes::TcpRoute, tlsroutes::TlsRoute};

use super::{
    ParentRef, RouteModel,
    backends::{BackendRef, Backends},
    convert::route_ref,
};
use crate::{
    store::Kind,
    translate::{problem::Report, rules::Dest},
};

/// A route's backend references in the shape the resolver takes.
macro_rules! backend_refs {
    ($refs:expr) => {
        $refs
            .iter()
            .map(|r| BackendRef {
                group: r.group.clone().unwrap_or_default(),
                kind: r.kind.clone().unwrap_or_else(|| "Service".to_owned()),
                name: r.name.clone(),
                namespace: r.namespace.clone(),
                port: r.port,
                weight: r.weight,
            })
            .collect::<Vec<_>>()
    };
}

/// A TLSRoute or TCPRoute of `kind` as a model: its parents, `hostnames`, and the
/// destinations of its first rule.
macro_rules! l4_route {
    ($route:expr, $kind:expr, $hostnames:expr, $backends:expr, $report:expr) => {{
        let route = $route;
        let origin = route_ref($kind, &route.metadata);
        let refs: Vec<Vec<BackendRef>> = (route.spec.rules.iter())
            .map(|r| backend_refs!(r.backend_refs))
            .collect();
        RouteModel {
            parents: parent_refs!(route.spec.parent_refs, origin.namespace),
            hostnames: $hostnames,
            created: route.metadata.creation_timestamp.clone(),
            rules: Vec::new(),
            l4: first_rule(&refs, $backends, $report),
            origin,
        }
    }};
}

/// A TLSRoute, compiled.
pub(crate) fn tls_route(
    route: &TlsRoute,
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> RouteModel {
    let hostnames = route.spec.hostnames.clone();
    l4_route!(route, Kind::TlsRoute, hostnames, backends, report)
}

/// A TCPRoute, compiled.
pub(crate) fn tcp_route(
    route: &TcpRoute,
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> RouteModel {
    l4_route!(route, Kind::TcpRoute, Vec::new(), backends, report)
}

/// The destinations of the first rule's backends that resolve (the others reported); later
/// rules, which nothing could tell apart from the first, are reported.
fn first_rule(
    rules: &[Vec<BackendRef>],
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> Vec<Dest> {
    if rules.len() > 1 {
        report.warning(
            "spec.rules[1]",
            "only the first rule of a TLSRoute or TCPRoute is applied: nothing tells connections for the others apart",
            "put every backend in the first rule, with weights",
        );
    }
    let Some(refs) = rules.first() else {
        return Vec::new();
    };
    (backends
        .resolve(refs, "spec.rules[0].backendRefs", report)
        .into_iter())
    .flatten()
    .collect()
}
