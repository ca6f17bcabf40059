//! The services the mesh routes to, from Kubernetes Services (with their EndpointSlices and
//! pods) and Istio ServiceEntries, by host.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use k8s_openapi::api::core::v1::{Pod, Service};
use mesh_proto::config::v1::{Discovery, Endpoint, Locality, Protocol};

use super::{
    endpoints::{port_endpoints, slices_by_service},
    names::{
        TLS_MODE_LABEL, host_match_rank, resolve_host, service_host, socket_address,
        spiffe_identity,
    },
    peer_authentication::PeerAuthentications,
    problem::{Problem, Report},
    protocol::{istio_protocol, port_protocol},
    visibility::Visibility,
};
use crate::{
    istio::{
        ServiceEntry, WorkloadEntry,
        service_entry::{Location, Resolution, ServicePort, WorkloadEntrySpec},
    },
    store::{Kind, ObjectRef, Store},
};

/// The annotation by which a Service limits which namespaces see it.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A service the mesh routes to.
#[derive(Debug)]
pub(crate) struct ServiceModel {
    /// The Service or ServiceEntry it comes from.
    pub origin: ObjectRef,
    /// Its host, e.g. `reviews.bookinfo.svc.cluster.local`.
    pub host: String,
    /// Its namespace.
    pub namespace: String,
    /// Virtual IPs captured for it; none for headless Services or unassigned ones.
    pub vips: Vec<IpAddr>,
    /// Its TCP ports.
    pub ports: Vec<PortModel>,
    /// Which namespaces see it.
    pub visibility: Visibility,
    /// How the proxy finds its endpoints: addresses, DNS names (`name:port`) it resolves, or
    /// none (ServiceEntry resolution NONE: the original destination).
    pub discovery: Discovery,
}

/// A port of a service and its endpoints.
#[derive(Debug)]
pub(crate) struct PortModel {
    /// Port name (empty for an unnamed single port).
    pub name: String,
    /// Port number.
    pub port: u32,
    /// Application protocol.
    pub protocol: Protocol,
    /// Endpoints serving the port.
    pub endpoints: Vec<Endpoint>,
}

impl ServiceModel {
    /// The port with this number.
    pub(crate) fn port(&self, number: u32) -> Option<&PortModel> {
        self.ports.iter().find(|p| p.port == number)
    }
}

/// Every service by host.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    services: Vec<ServiceModel>,
    by_host: HashMap<String, usize>,
}

impl Registry {
    /// Services from the store's Services and ServiceEntries. A ServiceEntry host that a
    /// Service already has is reported and left out.
    pub(crate) fn build(
        store: &Store,
        inbound: &PeerAuthentications,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let slices = slices_by_service(store);
        let mut services: Vec<ServiceModel> = store
            .list::<Service>()
            .filter_map(|service| {
                let (namespace, name) = (
                    service.metadata.namespace.as_deref()?,
                    service.metadata.name.as_deref()?,
                );
                let slices = slices.get(&(namespace, name)).map(Vec::as_slice);
                from_service(store, inbound, service, slices.unwrap_or_default())
            })
            .collect();
        let mut seen: HashMap<String, ObjectRef> = services
            .iter()
            .map(|s| (s.host.clone(), s.origin.clone()))
            .collect();
        for entry in store.list::<ServiceEntry>() {
            let origin = ObjectRef::new(
                Kind::ServiceEntry,
                entry.metadata.namespace.clone().unwrap_or_default(),
                entry.metadata.name.clone().unwrap_or_default(),
            );
            let mut report = Report::new(&origin);
            for model in from_service_entry(entry, store, &mut report) {
                if let Some(owner) = seen.get(&model.host) {
                    report.warning(
                        "spec.hosts",
                        format!("host {} is already defined by {owner}", model.host),
                        "remove the host from this ServiceEntry",
                    );
                    continue;
                }
                seen.insert(model.host.clone(), origin.clone());
                services.push(model);
            }
            problems.extend(report.into_problems());
        }
        services.sort_by(|a, b| (&a.namespace, &a.host).cmp(&(&b.namespace, &b.host)));
        let by_host = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.host.clone(), i))
            .collect();
        Registry { services, by_host }
    }

    /// The service with this host.
    pub(crate) fn get(&self, host: &str) -> Option<&ServiceModel> {
        self.by_host.get(host).map(|&i| &self.services[i])
    }

    /// Services a host pattern names: one lookup for an exact host, a scan for a wildcard.
    pub(crate) fn matching<'a>(
        &'a self,
        pattern: &'a str,
    ) -> Box<dyn Iterator<Item = &'a ServiceModel> + 'a> {
        if pattern.starts_with('*') {
            Box::new(
                self.services
                    .iter()
                    .filter(move |s| host_match_rank(pattern, &s.host).is_some()),
            )
        } else {
            Box::new(self.get(pattern).into_iter())
        }
    }

    /// Every service, by namespace and host.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ServiceModel> {
        self.services.iter()
    }
}

fn from_service(
    store: &Store,
    inbound: &PeerAuthentications,
    service: &Service,
    slices: &[&k8s_openapi::api::discovery::v1::EndpointSlice],
) -> Option<ServiceModel> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let namespace = service.metadata.namespace.clone()?;
    let name = service.metadata.name.clone()?;
    let mut ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.iter());
    }
    let vips = ips.into_iter().filter_map(|ip| ip.parse().ok()).collect();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| {
            let name = p.name.clone().unwrap_or_default();
            Some(PortModel {
                protocol: port_protocol(p.app_protocol.as_deref(), &name),
                port: u32::try_from(p.port).ok()?,
                endpoints: port_endpoints(store, inbound, slices, &name),
                name,
            })
        })
        .collect();
    let export_to: Vec<&str> = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
        .map(|list| list.split(',').collect())
        .unwrap_or_default();
    Some(ServiceModel {
        origin: ObjectRef::new(Kind::Service, &namespace, &name),
        host: service_host(&namespace, &name),
        visibility: Visibility::from_export_to(&export_to, &namespace),
        namespace,
        vips,
        ports,
        discovery: Discovery::Static,
    })
}

/// One service per host of a ServiceEntry. With DNS and no endpoints, each host is its own
/// endpoint's name; with NONE there are no endpoints: traffic goes where the app sent it, with
/// the host's routes applied (and allowed under REGISTRY_ONLY).
fn from_service_entry(
    entry: &ServiceEntry,
    store: &Store,
    report: &mut Report<'_>,
) -> Vec<ServiceModel> {
    let spec = &entry.spec;
    let namespace = entry.metadata.namespace.clone().unwrap_or_default();
    let resolution = spec.resolution.clone().unwrap_or(Resolution::None);
    let discovery = match &resolution {
        Resolution::None => Discovery::OriginalDst,
        Resolution::Static => {
            if let Some(i) =
                (spec.endpoints.iter()).position(|e| e.address.parse::<IpAddr>().is_err())
            {
                report.error(
                    format!("spec.endpoints[{i}].address"),
                    format!(
                        "{:?} is not an IP address, which resolution STATIC needs",
                        spec.endpoints[i].address
                    ),
                    "use resolution DNS for host names",
                );
            }
            Discovery::Static
        }
        Resolution::Dns | Resolution::DnsRoundRobin => Discovery::Dns,
        Resolution::Unknown(other) => {
            report.error(
                "spec.resolution",
                format!("unknown resolution {other:?}"),
                "use NONE, STATIC, DNS or DNS_ROUND_ROBIN",
            );
            return Vec::new();
        }
    };
    let selected = match &spec.workload_selector {
        Some(_) if !spec.endpoints.is_empty() => {
            report.error(
                "spec.workloadSelector",
                "workloadSelector and endpoints cannot both be set",
                "keep one: the listed endpoints, or the workloads the selector picks",
            );
            return Vec::new();
        }
        Some(selector) => Some(selected_workloads(store, &namespace, &selector.labels)),
        None => None,
    };
    let mut vips = Vec::new();
    for (i, address) in spec.addresses.iter().enumerate() {
        let ip = address.strip_suffix("/32").unwrap_or(address);
        match ip.parse::<IpAddr>() {
            Ok(ip) => vips.push(ip),
            Err(_) => report.warning(
                format!("spec.addresses[{i}]"),
                format!("{address:?} is not a single IP address; it is not captured"),
                "list single virtual IPs",
            ),
        }
    }
    let mut models = Vec::new();
    for (i, host) in spec.hosts.iter().enumerate() {
        let dns = discovery == Discovery::Dns;
        // Only workloads inside the mesh are spoken to in mesh mTLS (Istio's default location
        // is MESH_EXTERNAL).
        let internal = spec.location == Some(Location::MeshInternal);
        let own_name = dns && spec.endpoints.is_empty() && selected.is_none();
        if own_name && host.starts_with('*') {
            report.error(
                format!("spec.hosts[{i}]"),
                format!("wildcard host {host:?} cannot be resolved by DNS"),
                "list endpoints, or use resolution NONE for a wildcard host",
            );
            continue;
        }
        let host = resolve_host(host, &namespace);
        let own = [WorkloadEntrySpec {
            address: host.clone(),
            ..WorkloadEntrySpec::default()
        }];
        let endpoints = match (discovery, &selected) {
            (Discovery::OriginalDst, _) => &[][..],
            (_, Some(selected)) => &selected[..],
            _ if own_name => &own[..],
            _ => &spec.endpoints[..],
        };
        models.push(ServiceModel {
            origin: report.object().clone(),
            namespace: namespace.clone(),
            vips: vips.clone(),
            ports: (spec.ports.iter())
                .map(|port| entry_port(port, endpoints, &namespace, dns, internal))
                .collect(),
            visibility: Visibility::from_export_to(&spec.export_to, &namespace),
            discovery,
            host,
        });
    }
    models
}

/// A ServiceEntry port with its endpoints: addresses, or for DNS `name:port` to resolve.
fn entry_port(
    port: &ServicePort,
    endpoints: &[WorkloadEntrySpec],
    namespace: &str,
    dns: bool,
    internal: bool,
) -> PortModel {
    let name = port.name.clone().unwrap_or_default();
    let protocol = match &port.protocol {
        Some(protocol) => istio_protocol(protocol),
        None => port_protocol(None, &name),
    };
    let mut endpoints: Vec<Endpoint> = endpoints
        .iter()
        .filter_map(|e| {
            let number = e
                .ports
                .get(&name)
                .copied()
                .or(port.target_port)
                .unwrap_or(port.number);
            let address = match e.address.parse::<IpAddr>() {
                Ok(ip) => socket_address(&ip, number),
                Err(_) if dns => format!("{}:{number}", e.address),
                Err(_) => return None,
            };
            Some(Endpoint {
                address,
                weight: e.weight.unwrap_or(0),
                mesh_tls: internal && e.labels.get(TLS_MODE_LABEL).is_some_and(|m| m == "istio"),
                labels: e.labels.clone().into_iter().collect(),
                identity: e
                    .service_account
                    .as_deref()
                    .map(|sa| spiffe_identity(namespace, sa))
                    .unwrap_or_default(),
                locality: e.locality.as_deref().map(parse_locality),
                ..Endpoint::default()
            })
        })
        .collect();
    endpoints.sort_by(|a, b| a.address.cmp(&b.address));
    PortModel {
        name,
        port: port.number,
        protocol,
        endpoints,
    }
}

/// The ready Pods and the WorkloadEntries of `namespace` that carry every one of `labels`, as
/// ServiceEntry endpoints (a pod's address is its IP, its identity its service account).
fn selected_workloads(
    store: &Store,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<WorkloadEntrySpec> {
    let carries = |own: Option<&BTreeMap<String, String>>| {
        labels
            .iter()
            .all(|(k, v)| own.and_then(|o| o.get(k)) == Some(v))
    };
    let pods = store.list::<Pod>().filter(|pod| {
        pod.metadata.namespace.as_deref() == Some(namespace)
            && carries(pod.metadata.labels.as_ref())
            && pod_ready(pod)
    });
    let mut selected: Vec<WorkloadEntrySpec> = pods
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            Some(WorkloadEntrySpec {
                address: status.pod_ip.clone()?,
                labels: pod.metadata.labels.clone().unwrap_or_default(),
                service_account: (pod.spec.as_ref())
                    .and_then(|s| s.service_account_name.clone())
                    .or_else(|| Some("default".to_owned())),
                ..WorkloadEntrySpec::default()
            })
        })
        .collect();
    selected.extend(
        (store.list::<WorkloadEntry>())
            .filter(|we| we.metadata.namespace.as_deref() == Some(namespace))
            .filter(|we| carries(Some(&we.spec.labels)))
            .map(|we| we.spec.clone()),
    );
    selected
}

/// Whether a pod is running and ready (its Ready condition is True).
fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && (status.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `region/zone/subzone`, as ServiceEntry endpoints write a locality.
fn parse_locality(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/').map(str::to_owned);
    Locality {
        region: parts.next().unwrap_or_default(),
        zone: parts.next().unwrap_or_default(),
        subzone: parts.next().unwrap_or_default(),
    }
}
