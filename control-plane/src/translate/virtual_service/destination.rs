//! VirtualService destinations: hosts resolved to known services, subsets checked against
//! DestinationRules, ports chosen, weights checked.

use mesh_proto::config::v1::HeaderChanges;

use super::super::{
    headers,
    names::resolve_host,
    problem::Report,
    rules::{Dest, PortChoice},
};
use super::CompileContext;
use crate::istio::{
    common::{HeaderOperations, Headers},
    virtual_service::Destination,
};

/// A destination with its weight and header operations, as the three route kinds write it.
pub(crate) struct WeightedDestination<'a> {
    /// Where to.
    pub destination: &'a Destination,
    /// Its share, as written.
    pub weight: Option<i32>,
    /// Header operations, for HTTP.
    pub headers: Option<&'a Headers>,
}

/// Resolves one destination; `None` (reported) when the host, subset or port is unknown.
pub(crate) fn resolve_destination(
    destination: &Destination,
    at: &str,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Option<Dest> {
    let host = resolve_host(&destination.host, cx.namespace);
    let Some(service) = cx.registry.get(&host) else {
        report.error(
            format!("{at}.host"),
            format!(
                "destination host {:?} ({host}) is not a known Service or ServiceEntry",
                destination.host
            ),
            "check the name and namespace, or create the Service",
        );
        return None;
    };
    let subset = destination.subset.clone().unwrap_or_default();
    if !subset.is_empty() && !cx.rules.defines_subset(&host, &subset) {
        report.error(
            format!("{at}.subset"),
            format!("subset {subset:?} is not defined by any DestinationRule for {host}"),
            "add the subset to the host's DestinationRule, or route to the whole service",
        );
        return None;
    }
    let port = match destination.port.as_ref().and_then(|p| p.number) {
        Some(number) if service.port(number).is_some() => PortChoice::Fixed(number),
        Some(number) => {
            report.error(
                format!("{at}.port.number"),
                format!("{host} has no port {number}"),
                format!(
                    "use one of its ports: {}",
                    port_list(service.ports.iter().map(|p| p.port))
                ),
            );
            return None;
        }
        None if service.ports.len() == 1 => PortChoice::Fixed(service.ports[0].port),
        None => {
            // Istio's rule: the port the client connected to. Every port of the routed
            // services must then exist on the destination.
            if let Some(missing) = cx
                .listener_ports
                .iter()
                .find(|p| service.port(**p).is_none())
            {
                report.error(
                    format!("{at}.port"),
                    format!(
                        "no port is given and {host} has several ports, but not port {missing} that clients of this route connect to"
                    ),
                    "set destination.port.number",
                );
                return None;
            }
            PortChoice::Listener
        }
    };
    Some(Dest {
        host,
        subset,
        port,
        weight: 1,
        request_headers: None,
        response_headers: None,
    })
}

/// Resolves weighted destinations: a single one takes all traffic; several need weights that
/// are not all zero and none negative.
pub(crate) fn resolve_weighted(
    list: &[WeightedDestination<'_>],
    at: &str,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Vec<Dest> {
    let mut dests = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let Some(mut dest) =
            resolve_destination(entry.destination, &format!("{at}.destination"), cx, report)
        else {
            continue;
        };
        dest.weight = match entry.weight {
            Some(w) if w < 0 => {
                report.error(
                    format!("{at}.weight"),
                    format!("weight {w} is negative"),
                    "use 0 to 100",
                );
                continue;
            }
            Some(w) => w.unsigned_abs(),
            None if list.len() == 1 => 100,
            None => 0,
        };
        if list.len() == 1 && dest.weight == 0 {
            dest.weight = 100;
        }
        if let Some(headers) = entry.headers {
            let at = format!("{at}.headers");
            dest.request_headers =
                header_changes(headers.request.as_ref(), &format!("{at}.request"), report);
            dest.response_headers =
                header_changes(headers.response.as_ref(), &format!("{at}.response"), report);
        }
        dests.push(dest);
    }
    if list.len() > 1 && dests.len() == list.len() && dests.iter().all(|d| d.weight == 0) {
        report.error(
            at,
            "several destinations but every weight is 0",
            "give the destinations weights that add up to 100",
        );
    }
    dests
}

/// Istio header operations as proxy header changes; `None` when there are none.
pub(crate) fn header_changes(
    ops: Option<&HeaderOperations>,
    at: &str,
    report: &mut Report<'_>,
) -> Option<HeaderChanges> {
    let ops = ops?;
    if ops.set.is_empty() && ops.add.is_empty() && ops.remove.is_empty() {
        return None;
    }
    let changes = HeaderChanges {
        set: ops.set.clone().into_iter().collect(),
        add: ops.add.clone().into_iter().collect(),
        remove: ops.remove.clone(),
    };
    Some(headers::checked(changes, at, report))
}

/// `80, 443` for messages.
pub(crate) fn port_list(ports: impl Iterator<Item = u32>) -> String {
    ports.map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}
