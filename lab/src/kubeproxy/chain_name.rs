//! kube-proxy's per-Service chain names: a prefix and the first 16 characters of the base32
//! (RFC 4648) encoding of the SHA-256 of the service port name and protocol, plus the
//! endpoint for `KUBE-SEP-` chains. Equal names to kube-proxy's let rules be compared with a
//! real cluster's `iptables-save`.

use sha2::{Digest, Sha256};

use super::{Endpoint, ServicePort};

/// The base32 alphabet of RFC 4648 (not the hex variant).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The chain that spreads a Service port's traffic over its endpoints.
pub fn service_chain(port: &ServicePort) -> String {
    format!("KUBE-SVC-{}", port_hash(port))
}

/// The chain for a Service port's traffic from outside (NodePorts).
pub fn external_chain(port: &ServicePort) -> String {
    format!("KUBE-EXT-{}", port_hash(port))
}

/// The chain that DNATs to one endpoint of a Service port.
pub fn endpoint_chain(port: &ServicePort, endpoint: &Endpoint) -> String {
    let key = format!(
        "{}{}{endpoint}",
        port.service_port_name(),
        port.protocol.as_str()
    );
    format!("KUBE-SEP-{}", hash16(&key))
}

/// Whether `chain` is one of the per-Service chains a sync owns and may delete.
pub fn is_per_service_chain(chain: &str) -> bool {
    [
        "KUBE-SVC-",
        "KUBE-SVL-",
        "KUBE-EXT-",
        "KUBE-FW-",
        "KUBE-SEP-",
    ]
    .iter()
    .any(|prefix| chain.starts_with(prefix))
}

fn port_hash(port: &ServicePort) -> String {
    hash16(&format!(
        "{}{}",
        port.service_port_name(),
        port.protocol.as_str()
    ))
}

/// The first 16 base32 characters of the SHA-256 of `key`: 80 bits, two 5-byte groups.
fn hash16(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(16);
    for group in digest[..10].chunks_exact(5) {
        let bits = group.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        for shift in (0..8).rev() {
            out.push(char::from(BASE32[((bits >> (shift * 5)) & 0x1f) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::kubeproxy::Protocol;

    fn port(namespace: &str, service: &str, name: &str, protocol: Protocol) -> ServicePort {
        ServicePort {
            namespace: namespace.into(),
            service: service.into(),
            port_name: name.into(),
            protocol,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            port: 443,
            node_port: None,
            affinity_timeout: None,
            endpoints: Vec::new(),
        }
    }

    // Names below are the ones real kube-proxy gives (its own tests and any cluster's
    // `iptables-save`), so a mismatch means our hashing differs from kube-proxy's.

    #[test]
    fn kubernetes_api_service_has_its_well_known_chain() {
        let api = port("default", "kubernetes", "https", Protocol::Tcp);
        assert_eq!(service_chain(&api), "KUBE-SVC-NPX46M4PTMTKRN6Y");
    }

    #[test]
    fn service_and_endpoint_chains_match_kube_proxy() {
        let svc1 = port("ns1", "svc1", "p80", Protocol::Tcp);
        assert_eq!(service_chain(&svc1), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(external_chain(&svc1), "KUBE-EXT-XPGD46QRK7WJZT7O");
        let endpoint = Endpoint {
            ip: Ipv4Addr::new(10, 180, 0, 1),
            port: 80,
        };
        assert_eq!(
            endpoint_chain(&svc1, &endpoint),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        let svc2 = port("ns2", "svc2", "p80", Protocol::Tcp);
        assert_eq!(service_chain(&svc2), "KUBE-SVC-GNZBNJ2PO5MGZ6GT");
    }

    #[test]
    fn cluster_dns_has_its_well_known_chains() {
        let udp = port("kube-system", "kube-dns", "dns", Protocol::Udp);
        let tcp = port("kube-system", "kube-dns", "dns-tcp", Protocol::Tcp);
        assert_eq!(service_chain(&udp), "KUBE-SVC-TCOU7JCQXEZGVUNU");
        assert_eq!(service_chain(&tcp), "KUBE-SVC-ERIFXISQEP7F7OF4");
    }

    #[test]
    fn protocol_and_port_name_change_the_hash() {
        let tcp = port("kube-system", "kube-dns", "dns", Protocol::Tcp);
        let udp = port("kube-system", "kube-dns", "dns", Protocol::Udp);
        let unnamed = port("kube-system", "kube-dns", "", Protocol::Udp);
        assert_ne!(service_chain(&tcp), service_chain(&udp));
        assert_ne!(service_chain(&udp), service_chain(&unnamed));
        assert_eq!(service_chain(&udp).len(), "KUBE-SVC-".len() + 16);
    }

    #[test]
    fn only_per_service_chains_are_ours_to_delete() {
        assert!(is_per_service_chain("KUBE-SEP-SXIVWICOYRO3J4NJ"));
        assert!(is_per_service_chain("KUBE-EXT-XPGD46QRK7WJZT7O"));
        assert!(!is_per_service_chain("KUBE-SERVICES"));
        assert!(!is_per_service_chain("KUBE-MARK-MASQ"));
        assert!(!is_per_service_chain("MESH_INBOUND"));
    }
}
