//! Which UDP conntrack entries a sync makes stale. UDP has no connection to end, so without
//! a flush a client keeps sending to a removed endpoint (or into a REJECT that happened before
//! the first endpoint was ready) for as long as its flow stays in the conntrack table. kube-proxy
//! deletes such entries after each sync; so does the lab, when the `conntrack` tool exists.

use std::net::Ipv4Addr;

use super::{Protocol, ServicePort};

/// A set of UDP conntrack entries to delete, as `conntrack -D` selects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaleUdpFlows {
    /// Every flow to a ClusterIP (the Service went away, or just got its first endpoint).
    ClusterIp(Ipv4Addr),
    /// Every flow to a NodePort (same reasons).
    NodePort(u16),
    /// Flows to a ClusterIP that were DNATed to a removed endpoint.
    ClusterIpVia {
        /// The ClusterIP.
        cluster_ip: Ipv4Addr,
        /// The removed endpoint's IP.
        endpoint: Ipv4Addr,
    },
    /// Flows to a NodePort that were DNATed to a removed endpoint.
    NodePortVia {
        /// The NodePort.
        node_port: u16,
        /// The removed endpoint's IP.
        endpoint: Ipv4Addr,
    },
}

// === impl StaleUdpFlows ===

impl StaleUdpFlows {
    /// The arguments of `conntrack` that delete these flows.
    pub(crate) fn conntrack_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-D", "-p", "udp"].map(String::from).into();
        match *self {
            StaleUdpFlows::ClusterIp(ip) => {
                args.extend(["--orig-dst".into(), ip.to_string()]);
            }
            StaleUdpFlows::NodePort(port) => {
                args.extend(["--orig-port-dst".into(), port.to_string()]);
            }
            StaleUdpFlows::ClusterIpVia {
                cluster_ip,
                endpoint,
            } => {
                args.extend([
                    "--orig-dst".into(),
                    cluster_ip.to_string(),
                    "--dst-nat".into(),
                    endpoint.to_string(),
                ]);
            }
            StaleUdpFlows::NodePortVia {
                node_port,
                endpoint,
            } => {
                args.extend([
                    "--orig-port-dst".into(),
                    node_port.to_string(),
                    "--dst-nat".into(),
                    endpoint.to_string(),
                ]);
            }
        }
        args
    }
}

/// The UDP flows that going from the `previous` sync's Service ports to `current` leaves
/// pointing at the wrong place, each once.
pub(crate) fn stale_udp_flows(
    previous: &[ServicePort],
    current: &[ServicePort],
) -> Vec<StaleUdpFlows> {
    let same = |a: &ServicePort, b: &ServicePort| {
        a.service_port_name() == b.service_port_name() && a.cluster_ip == b.cluster_ip
    };
    let udp = |port: &&ServicePort| port.protocol == Protocol::Udp;
    let mut stale = Vec::new();
    for old in previous.iter().filter(udp) {
        match current.iter().filter(udp).find(|new| same(old, new)) {
            None => {
                stale.push(StaleUdpFlows::ClusterIp(old.cluster_ip));
                stale.extend(old.node_port.map(StaleUdpFlows::NodePort));
            }
            Some(new) => {
                for gone in old.endpoints.iter().filter(|e| !new.endpoints.contains(e)) {
                    stale.push(StaleUdpFlows::ClusterIpVia {
                        cluster_ip: old.cluster_ip,
                        endpoint: gone.ip,
                    });
                    stale.extend(old.node_port.map(|node_port| StaleUdpFlows::NodePortVia {
                        node_port,
                        endpoint: gone.ip,
                    }));
                }
            }
        }
    }
    for new in current
        .iter()
        .filter(udp)
        .filter(|p| !p.endpoints.is_empty())
    {
        let had_endpoints = previous
            .iter()
            .filter(udp)
            .any(|old| same(old, new) && !old.endpoints.is_empty());
        if !had_endpoints {
            stale.push(StaleUdpFlows::ClusterIp(new.cluster_ip));
            stale.extend(new.node_port.map(StaleUdpFlows::NodePort));
        }
    }
    let mut unique = Vec::with_capacity(stale.len());
    for flows in stale {
        if !unique.contains(&flows) {
            unique.push(flows);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeproxy::Endpoint;

    fn dns(endpoints: &[u8], node_port: Option<u16>) -> ServicePort {
        ServicePort {
            namespace: "kube-system".into(),
            service: "kube-dns".into(),
            port_name: "dns".into(),
            protocol: Protocol::Udp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 53,
            node_port,
            affinity_timeout: None,
            endpoints: endpoints
                .iter()
                .map(|&last| Endpoint {
                    ip: Ipv4Addr::new(10, 244, 1, last),
                    port: 53,
                })
                .collect(),
        }
    }

    fn tcp(port: ServicePort) -> ServicePort {
        ServicePort {
            protocol: Protocol::Tcp,
            ..port
        }
    }

    #[test]
    fn removed_endpoint_flushes_flows_nated_to_it() {
        let flows = stale_udp_flows(&[dns(&[2, 3], Some(30053))], &[dns(&[2], Some(30053))]);
        let gone = Ipv4Addr::new(10, 244, 1, 3);
        assert_eq!(
            flows,
            [
                StaleUdpFlows::ClusterIpVia {
                    cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
                    endpoint: gone
                },
                StaleUdpFlows::NodePortVia {
                    node_port: 30053,
                    endpoint: gone
                },
            ]
        );
        assert_eq!(
            flows[0].conntrack_args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--dst-nat",
                "10.244.1.3"
            ]
        );
    }

    #[test]
    fn first_endpoint_flushes_flows_that_met_the_reject() {
        let flows = stale_udp_flows(&[dns(&[], None)], &[dns(&[2], None)]);
        assert_eq!(
            flows,
            [StaleUdpFlows::ClusterIp(Ipv4Addr::new(10, 96, 0, 10))]
        );
        // A Service seen for the first time may reuse a ClusterIP with flows left over.
        assert_eq!(stale_udp_flows(&[], &[dns(&[2], None)]), flows);
    }

    #[test]
    fn removed_service_flushes_its_cluster_ip_and_node_port() {
        let flows = stale_udp_flows(&[dns(&[2], Some(30053))], &[]);
        assert_eq!(
            flows,
            [
                StaleUdpFlows::ClusterIp(Ipv4Addr::new(10, 96, 0, 10)),
                StaleUdpFlows::NodePort(30053),
            ]
        );
        assert_eq!(
            flows[1].conntrack_args(),
            ["-D", "-p", "udp", "--orig-port-dst", "30053"]
        );
    }

    #[test]
    fn unchanged_udp_and_any_tcp_leave_flows_alone() {
        let same = [dns(&[2, 3], None)];
        assert!(stale_udp_flows(&same, &same).is_empty());
        assert!(stale_udp_flows(&[tcp(dns(&[2, 3], None))], &[tcp(dns(&[2], None))]).is_empty());
        assert!(stale_udp_flows(&[], &[tcp(dns(&[2], None))]).is_empty());
        // Gaining more endpoints breaks no flow.
        assert!(stale_udp_flows(&[dns(&[2], None)], &[dns(&[2, 3], None)]).is_empty());
    }
}
