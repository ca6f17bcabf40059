//! Addresses for Services written without `spec.clusterIP`. In a cluster the API server gives
//! each one; in a folder nobody does, and translation makes outbound listeners and routes only
//! for services with a virtual IP. So the folder hands them out as the lab does: the first free
//! addresses from 10.96.0.20 in the lab's Service range 10.96.0.0/16, by namespace and name,
//! never one that a Service or ServiceEntry of the folder writes. Headless (`clusterIP: None`)
//! and ExternalName Services have none, as in a cluster. Each one given is noted.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;

use super::Loaded;
use crate::{
    istio::ServiceEntry,
    store::{Kind, ObjectRef},
    translate::{Problem, Severity},
};

/// The first address handed out (the lab keeps lower ones for well-known Services).
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// The last address of the range, 10.96.0.0/16.
const LAST: Ipv4Addr = Ipv4Addr::new(10, 96, 255, 255);

/// An IPv4 network as (first address, mask).
type Network = (u32, u32);

/// Gives every Service of `loaded` that needs a cluster IP and has none the next free one.
pub(super) fn assign(loaded: &mut Loaded) {
    let taken = written_networks(loaded);
    let mut free = (u32::from(FIRST)..=u32::from(LAST))
        .filter(|ip| !taken.iter().any(|(net, mask)| ip & mask == *net))
        .map(Ipv4Addr::from);
    let unassigned: Vec<Service> = (loaded.store.list::<Service>())
        .filter(|service| needs_address(service))
        .map(|service| (**service).clone())
        .collect();
    for mut service in unassigned {
        let object = ObjectRef::new(
            Kind::Service,
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let source = loaded.sources.get(&object).cloned();
        let Some(ip) = free.next() else {
            loaded.problems.push(Problem {
                source,
                ..Problem::warning(
                    &object,
                    "spec.clusterIP",
                    "the Service has no clusterIP and 10.96.0.0/16 has no free address left; its traffic is passed through unrouted",
                    "write spec.clusterIP",
                )
            });
            continue;
        };
        let spec = service.spec.get_or_insert_default();
        spec.cluster_ip = Some(ip.to_string());
        spec.cluster_ips = Some(vec![ip.to_string()]);
        loaded.problems.push(Problem {
            severity: Severity::Info,
            source,
            ..Problem::warning(
                &object,
                "spec.clusterIP",
                format!(
                    "the Service has no clusterIP; mesh gives it {ip} from 10.96.0.0/16, as the lab would, so that its traffic is routed"
                ),
                "write spec.clusterIP to choose the address",
            )
        });
        loaded.store.apply(service);
    }
}

/// Whether a Service would get a cluster IP from the API server and has none written.
fn needs_address(service: &Service) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    let written = (spec.cluster_ip.iter())
        .chain(spec.cluster_ips.iter().flatten())
        .any(|ip| !ip.is_empty());
    !written && spec.type_.as_deref() != Some("ExternalName")
}

/// Every IPv4 address or network the folder's Services and ServiceEntries write.
fn written_networks(loaded: &Loaded) -> Vec<Network> {
    let services = loaded.store.list::<Service>().flat_map(|service| {
        let spec = service.spec.iter();
        (spec.clone().flat_map(|s| &s.cluster_ip))
            .chain(spec.flat_map(|s| s.cluster_ips.iter().flatten()))
            .cloned()
            .collect::<Vec<_>>()
    });
    let entries = (loaded.store.list::<ServiceEntry>()).flat_map(|e| e.spec.addresses.clone());
    services
        .chain(entries)
        .filter_map(|text| network(&text))
        .collect()
}

/// `a.b.c.d` or `a.b.c.d/n` as a network; `None` for anything else (IPv6 cannot collide).
fn network(text: &str) -> Option<Network> {
    let (address, bits) = text.split_once('/').unwrap_or((text, "32"));
    let address = u32::from(address.parse::<Ipv4Addr>().ok()?);
    let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Some((address & mask, mask))
}

#[cfg(test)]
mod tests;
