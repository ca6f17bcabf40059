//! Endpoints of a Service port from its EndpointSlices, with what the pods behind them say:
//! labels (for subsets), identity (service account), workload (for metrics) and locality.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use k8s_openapi::api::{core::v1::Pod, discovery::v1::EndpointSlice};
use mesh_proto::config::v1::{Endpoint, Locality, endpoint::Health};

use super::{
    names::{TLS_MODE_LABEL, socket_address, spiffe_identity},
    peer_authentication::PeerAuthentications,
};
use crate::store::Store;
use mesh_injector::owner::workload_name;
use mesh_proto::config::v1::MtlsMode;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// EndpointSlices by the (namespace, name) of their Service.
pub(crate) type SlicesByService<'a> = HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>;

/// Groups the store's EndpointSlices by Service.
pub(crate) fn slices_by_service(store: &Store) -> SlicesByService<'_> {
    let mut by_service: SlicesByService<'_> = HashMap::new();
    for slice in store.list::<EndpointSlice>() {
        let meta = &slice.metadata;
        let service = meta
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL));
        if let (Some(namespace), Some(service)) = (meta.namespace.as_deref(), service) {
            by_service
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    by_service
}

/// The endpoints of the Service port named `port_name` (empty for an unnamed single port):
/// ready ones healthy, terminating-but-serving ones draining, the rest left out. An endpoint
/// speaks mesh mTLS when its pod has a sidecar whose PeerAuthentication for the port is not
/// DISABLE (auto mTLS respects it). Sorted by
/// address; an address listed by two slices (during a move) appears once.
pub(crate) fn port_endpoints(
    store: &Store,
    inbound: &PeerAuthentications,
    slices: &[&EndpointSlice],
    port_name: &str,
) -> Vec<Endpoint> {
    let mut by_address: BTreeMap<String, Endpoint> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(port) = slice_port(slice, port_name) else {
            continue;
        };
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        for endpoint in &slice.endpoints {
            let Some(health) = health(endpoint) else {
                continue;
            };
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| {
                    let ns = r.namespace.as_deref().unwrap_or(namespace);
                    store.get::<Pod>(ns, r.name.as_deref()?)
                });
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                let address = socket_address(&ip, port);
                by_address
                    .entry(address.clone())
                    .or_insert_with(|| Endpoint {
                        address,
                        health: health.into(),
                        labels: pod_labels(pod),
                        identity: pod.map(|p| pod_identity(p)).unwrap_or_default(),
                        mesh_tls: pod.is_some_and(|p| {
                            has_sidecar(p) && inbound.mode_of_pod(p, port) != MtlsMode::Disable
                        }),
                        locality: locality(endpoint),
                        workload: (pod.and_then(|p| workload_name(&p.metadata)))
                            .unwrap_or_default(),
                        namespace: pod
                            .and_then(|p| p.metadata.namespace.clone())
                            .unwrap_or_default(),
                        ..Endpoint::default()
                    });
            }
        }
    }
    by_address.into_values().collect()
}

/// The slice's TCP port for the Service port named `port_name`.
fn slice_port(slice: &EndpointSlice, port_name: &str) -> Option<u32> {
    slice.ports.iter().flatten().find_map(|p| {
        let name = p.name.as_deref().unwrap_or_default();
        let tcp = p.protocol.as_deref().is_none_or(|proto| proto == "TCP");
        (tcp && name == port_name)
            .then_some(p.port)
            .flatten()
            .and_then(|port| u32::try_from(port).ok())
    })
}

fn health(endpoint: &k8s_openapi::api::discovery::v1::Endpoint) -> Option<Health> {
    let conditions = endpoint.conditions.clone().unwrap_or_default();
    if conditions.ready.unwrap_or(true) {
        return Some(Health::Healthy);
    }
    let serving = conditions.serving.unwrap_or(false);
    let terminating = conditions.terminating.unwrap_or(false);
    (serving && terminating).then_some(Health::Draining)
}

fn pod_labels(pod: Option<&std::sync::Arc<Pod>>) -> BTreeMap<String, String> {
    pod.and_then(|p| p.metadata.labels.clone())
        .unwrap_or_default()
}

/// Whether a pod runs a sidecar that accepts mesh mutual TLS: the injector labels such pods
/// `security.istio.io/tlsMode: istio`, as Istio's does.
pub(crate) fn has_sidecar(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(TLS_MODE_LABEL))
        .is_some_and(|mode| mode == "istio")
}

/// The SPIFFE identity of a pod, from its namespace and service account.
pub(crate) fn pod_identity(pod: &Pod) -> String {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    spiffe_identity(namespace, account)
}

/// The endpoint's zone; a cluster without zones treats each node as its own zone, which keeps
/// locality-aware picking meaningful.
fn locality(endpoint: &k8s_openapi::api::discovery::v1::Endpoint) -> Option<Locality> {
    let zone = endpoint
        .zone
        .clone()
        .or_else(|| endpoint.node_name.clone())?;
    Some(Locality {
        zone,
        ..Locality::default()
    })
}
