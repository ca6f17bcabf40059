//! The lab's network: a namespace joining the nodes (like kind's docker network), one namespace
//! per node holding the pod bridge `cni0`, and one namespace per pod with `eth0` on that bridge.
//! Nodes route each other's pod subnets over the node network, as a host-gateway CNI does.

use std::net::Ipv4Addr;

use crate::{
    cluster::{ClusterPlan, HOST_IP, NODE_NETWORK_PREFIX, NodePlan, PodPlan, SERVICE_CIDR},
    netns::{self, CommandError, LAB_PREFIX},
};

/// The bridge joining the nodes, inside the network namespace.
const NODE_BRIDGE: &str = "lan0";
/// The pod bridge inside each node namespace.
const POD_BRIDGE: &str = "cni0";
/// This machine's end of its link to the node network.
const HOST_LINK: &str = "mlab-host";

/// The names of one lab's namespaces.
#[derive(Debug, Clone)]
pub struct LabNames {
    /// The lab's name (`mesh` by default).
    pub lab: String,
}

impl LabNames {
    /// Names for the lab called `lab`.
    pub fn new(lab: &str) -> LabNames {
        LabNames {
            lab: lab.to_owned(),
        }
    }

    /// The prefix of every namespace of this lab.
    pub fn prefix(&self) -> String {
        format!("{LAB_PREFIX}{}-", self.lab)
    }

    /// The namespace joining the nodes.
    pub fn network(&self) -> String {
        format!("{}net", self.prefix())
    }

    /// A node's namespace.
    pub fn node(&self, node: &str) -> String {
        format!("{}{node}", self.prefix())
    }

    /// A pod's namespace.
    pub fn pod(&self, pod: &PodPlan) -> String {
        format!("{}{}-{}", self.prefix(), pod.namespace, pod.name)
    }
}

/// Builds the node network and every node; pods are added one by one with [`add_pod`].
pub fn build_nodes(names: &LabNames, plan: &ClusterPlan) -> Result<(), CommandError> {
    let network = names.network();
    netns::create(&network)?;
    netns::ip_batch(
        &network,
        &[
            format!("link add {NODE_BRIDGE} type bridge"),
            format!("link set {NODE_BRIDGE} up"),
        ],
    )?;
    for node in &plan.nodes {
        build_node(names, node, &plan.nodes)?;
    }
    Ok(())
}

/// Links this machine to the node network (a veth on the node bridge, the machine at
/// [`HOST_IP`]), so the nodes' addresses, and NodePorts on them, answer from here as kind's do.
/// One lab at a time: the error says why not (the link goes with the lab's namespaces).
pub fn link_host(names: &LabNames) -> Result<(), String> {
    let subnet = format!("{HOST_IP}/{NODE_NETWORK_PREFIX}");
    let taken = netns::run("ip", &["-4", "-o", "addr", "show", "to", &subnet])
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .map_err(|e| e.to_string())?;
    if let Some(holder) = taken.split_whitespace().nth(1) {
        return Err(format!(
            "this machine already has an address in {subnet} on {holder} (another lab, or \
             kind's docker network)"
        ));
    }
    let network = names.network();
    let host_addr = format!("{HOST_IP}/{NODE_NETWORK_PREFIX}");
    let steps: [&[&str]; 3] = [
        &[
            "link", "add", HOST_LINK, "type", "veth", "peer", "name", "host", "netns", &network,
        ],
        &["addr", "add", &host_addr, "dev", HOST_LINK],
        &["link", "set", HOST_LINK, "up"],
    ];
    for step in steps {
        netns::run("ip", step).map_err(|e| e.to_string())?;
    }
    netns::ip_batch(
        &network,
        &[
            format!("link set host master {NODE_BRIDGE}"),
            "link set host up".to_owned(),
        ],
    )
    .map_err(|e| e.to_string())
}

fn build_node(names: &LabNames, node: &NodePlan, all: &[NodePlan]) -> Result<(), CommandError> {
    let netns_name = names.node(&node.name);
    netns::create(&netns_name)?;
    let uplink = format!("{}-eth0", node.name);
    netns::ip_batch(
        &names.network(),
        &[
            format!("link add {uplink} type veth peer name eth0 netns {netns_name}"),
            format!("link set {uplink} master {NODE_BRIDGE}"),
            format!("link set {uplink} up"),
        ],
    )?;
    let mut commands = vec![
        format!("addr add {}/{NODE_NETWORK_PREFIX} dev eth0", node.ip),
        "link set eth0 up".to_owned(),
        format!("link add {POD_BRIDGE} type bridge"),
        format!("addr add {}/24 dev {POD_BRIDGE}", node.gateway),
        format!("link set {POD_BRIDGE} up"),
    ];
    // Service traffic that kube-proxy does not DNAT (a Service without endpoints) must still be
    // routable, so it reaches the filter table's REJECT and the client sees "refused".
    commands.push(format!(
        "route add {}/{} dev eth0",
        SERVICE_CIDR.0, SERVICE_CIDR.1
    ));
    for other in all.iter().filter(|o| o.name != node.name) {
        commands.push(format!(
            "route add {}/24 via {}",
            other.pod_subnet, other.ip
        ));
    }
    netns::ip_batch(&netns_name, &commands)?;
    // Routing between pods, and Service traffic that the bridge carries between two pods of
    // one node, must pass iptables, as kube-proxy requires of a node.
    for sysctl in [
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
    ] {
        netns::run(
            "ip",
            &["netns", "exec", &netns_name, "sysctl", "-qw", sysctl],
        )?;
    }
    Ok(())
}

/// Creates the pod's namespace with `eth0` on its node's bridge, its address and default route,
/// and sets its sysctls.
pub fn add_pod(
    names: &LabNames,
    pod: &PodPlan,
    gateway: Ipv4Addr,
    index: usize,
) -> Result<(), CommandError> {
    let pod_netns = names.pod(pod);
    netns::create(&pod_netns)?;
    let host_side = format!("veth{index}");
    netns::ip_batch(
        &names.node(&pod.node),
        &[
            format!("link add {host_side} type veth peer name eth0 netns {pod_netns}"),
            format!("link set {host_side} master {POD_BRIDGE}"),
            // A pod reaching itself through its own Service comes back on the same port.
            format!("link set {host_side} type bridge_slave hairpin on"),
            format!("link set {host_side} up"),
        ],
    )?;
    netns::ip_batch(
        &pod_netns,
        &[
            format!("addr add {}/24 dev eth0", pod.ip),
            "link set eth0 up".to_owned(),
            format!("route add default via {gateway}"),
        ],
    )?;
    for (name, value) in &pod.sysctls {
        let setting = format!("{name}={value}");
        netns::run(
            "ip",
            &["netns", "exec", &pod_netns, "sysctl", "-qw", &setting],
        )?;
    }
    Ok(())
}

/// Removes every namespace (and so every link, address and rule) of the lab, killing the
/// processes inside them: works from nothing but the names, so also after a crash.
pub fn remove_all(names: &LabNames) -> Vec<CommandError> {
    let mut errors = Vec::new();
    let all = netns::list(&names.prefix());
    // Every process first, so none outlives the namespace it runs in.
    for netns_name in &all {
        netns::kill_all(netns_name);
    }
    for netns_name in all {
        if let Err(e) = netns::delete(&netns_name) {
            errors.push(e);
        }
    }
    errors
}
