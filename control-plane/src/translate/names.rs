//! Names every part agrees on, following Istio: service hosts, clusters, route configs,
//! listeners and workload identities.

use std::net::IpAddr;

/// The cluster DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The SPIFFE trust domain of workload identities.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// A Service's host: `<name>.<namespace>.svc.cluster.local`.
pub fn service_host(namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// A cluster: `outbound|<port>|<subset>|<host>` (the subset is empty for the whole service).
pub fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// The route config of a service port: `<host>:<port>`.
pub fn route_config_name(host: &str, port: u32) -> String {
    format!("{host}:{port}")
}

/// An outbound listener: `<ip>_<port>`.
pub fn listener_name(ip: &IpAddr, port: u32) -> String {
    format!("{ip}_{port}")
}

/// An `ip:port` address, with brackets for IPv6.
pub fn socket_address(ip: &IpAddr, port: u32) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The pod label that says a pod's sidecar accepts mesh mutual TLS (value `istio`).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// A workload identity: `spiffe://cluster.local/ns/<namespace>/sa/<service account>`.
pub fn spiffe_identity(namespace: &str, service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}")
}

/// The host a name in an object of `namespace` refers to: short names (`reviews`) and
/// `name.namespace` forms are completed to the Service host; full names and wildcards stay.
pub fn resolve_host(name: &str, namespace: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.starts_with('*') || name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
        return name;
    }
    match name.split('.').count() {
        1 => service_host(namespace, &name),
        2 => format!("{name}.svc.{CLUSTER_DOMAIN}"),
        _ if name.ends_with(".svc") => format!("{name}.{CLUSTER_DOMAIN}"),
        _ => name,
    }
}

/// How well a host pattern (exact or `*.suffix`, `*` for any) matches `host`: `None` when it
/// does not; a higher value for a more specific pattern (exact beats every wildcard).
pub fn host_match_rank(pattern: &str, host: &str) -> Option<usize> {
    if pattern == host {
        return Some(usize::MAX);
    }
    let suffix = pattern.strip_prefix('*')?;
    (host.len() > suffix.len() && host.ends_with(suffix)).then_some(suffix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_objects_namespace() {
        assert_eq!(
            resolve_host("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.prod", "bookinfo"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.prod.svc", "bookinfo"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("Reviews.Prod.svc.cluster.local", "x"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(resolve_host("api.example.com", "x"), "api.example.com");
        assert_eq!(resolve_host("*.example.com", "x"), "*.example.com");
    }

    #[test]
    fn exact_hosts_beat_longer_wildcards_which_beat_shorter_ones() {
        let host = "reviews.prod.svc.cluster.local";
        let exact = host_match_rank(host, host).unwrap();
        let ns = host_match_rank("*.prod.svc.cluster.local", host).unwrap();
        let any = host_match_rank("*", host).unwrap();
        assert!(exact > ns && ns > any);
        assert_eq!(host_match_rank("*.other.svc.cluster.local", host), None);
        assert_eq!(
            host_match_rank("ratings.prod.svc.cluster.local", host),
            None
        );
    }

    #[test]
    fn addresses_bracket_ipv6() {
        let v6: IpAddr = "fd00::10".parse().unwrap();
        assert_eq!(socket_address(&v6, 80), "[fd00::10]:80");
        assert_eq!(listener_name(&v6, 80), "fd00::10_80");
    }
}
