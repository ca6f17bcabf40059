//! kube-proxy's rules at work in real network namespaces: one node with the pod bridge, a
//! client pod and three server pods answering with their name. Needs root, `ip` and iptables
//! (and `conntrack` for the stale UDP flow test); skipped with a message elsewhere, a failure
//! in CI.

#[path = "kubeproxy/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use mesh_lab::kubeproxy::{Endpoint, KubeProxy, Protocol, ProxierConfig, ServicePort};
use support::{
    BRIDGE_IP, NODE_IP, Node, Pod, SERVER_PORT, ask, call, call_many, require_root_tools,
    udp_socket,
};

const CONFIG: ProxierConfig = ProxierConfig {
    cluster_cidr: (Ipv4Addr::new(10, 244, 0, 0), 16),
};

/// The cluster: the pods come before the node, so they are torn down first.
struct Lab {
    client: Pod,
    servers: Vec<Pod>,
    proxy: KubeProxy,
    node: Node,
}

/// A lab with the client at 10.244.1.10 and servers s1, s2, s3 at .2, .3, .4 (not yet
/// serving); `None` (after saying why) where the test cannot run without `tools`.
fn lab_with(test: &str, tools: &[&str]) -> Option<Lab> {
    if !require_root_tools(test, tools) {
        return None;
    }
    let node = Node::create();
    let client = node.pod("c", 10);
    let servers: Vec<Pod> = (1..=3).map(|i| node.pod(&format!("s{i}"), 1 + i)).collect();
    let proxy = KubeProxy::new(node.netns.name().to_owned()).expect("an iptables backend");
    Some(Lab {
        client,
        servers,
        proxy,
        node,
    })
}

/// A lab for tests that need only `ip` and iptables.
fn lab(test: &str) -> Option<Lab> {
    lab_with(test, &["ip", "iptables"])
}

impl Lab {
    fn serve_tcp(&self) {
        self.servers.iter().for_each(Pod::serve_tcp);
    }

    fn endpoints(&self, names: &[&str]) -> Vec<Endpoint> {
        names
            .iter()
            .map(|name| {
                let pod = self
                    .servers
                    .iter()
                    .find(|p| p.name == *name)
                    .expect("a server");
                Endpoint {
                    ip: pod.ip,
                    port: SERVER_PORT,
                }
            })
            .collect()
    }

    fn sync(&mut self, services: &[ServicePort]) {
        self.proxy
            .sync(&CONFIG, services)
            .unwrap_or_else(|e| panic!("sync: {e}"));
    }

    /// The node's filter and nat tables without counters or the save's timestamp comments.
    fn saved_rules(&self) -> String {
        let saved = self.proxy.save().expect("iptables-save");
        saved
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.strip_prefix(':') {
                Some(chain) => chain.split(" [").next().unwrap_or(chain).to_string(),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn service(name: &str, cluster_ip: u8, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "shop".into(),
        service: name.into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, cluster_ip),
        port: 80,
        node_port: None,
        affinity_timeout: None,
        endpoints,
    }
}

fn cluster_ip(port: &ServicePort) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(port.cluster_ip, port.port))
}

/// How many answers came from each server, and from which peer address each server saw them.
fn tally(answers: io::Result<Vec<String>>) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut servers = BTreeMap::new();
    let mut peers = BTreeMap::new();
    for answer in answers.expect("every connection is answered") {
        let (server, peer) = answer.split_once(' ').expect("\"<server> <peer>\"");
        *servers.entry(server.to_string()).or_default() += 1;
        *peers.entry(peer.to_string()).or_default() += 1;
    }
    (servers, peers)
}

#[test]
fn cluster_ip_spreads_new_connections_evenly() {
    let Some(mut lab) = lab("cluster_ip_spreads_new_connections_evenly") else {
        return;
    };
    lab.serve_tcp();
    let web = service("web", 20, lab.endpoints(&["s1", "s2", "s3"]));
    lab.sync(std::slice::from_ref(&web));

    let total = 3000;
    let (servers, peers) = tally(call_many(&lab.client.netns, cluster_ip(&web), total));
    assert_eq!(servers.len(), 3, "{servers:?}");
    for (server, count) in &servers {
        let share = *count as f64 / total as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.05,
            "{server} got {count} of {total}: {servers:?}"
        );
    }
    // Pod-to-Service traffic stays inside the cluster CIDR: no masquerade.
    assert_eq!(peers.keys().collect::<Vec<_>>(), ["10.244.1.10"]);
}

#[test]
fn client_ip_affinity_pins_a_client_to_one_endpoint() {
    let Some(mut lab) = lab("client_ip_affinity_pins_a_client_to_one_endpoint") else {
        return;
    };
    lab.serve_tcp();
    let sticky = ServicePort {
        affinity_timeout: Some(10800),
        ..service("sticky", 40, lab.endpoints(&["s1", "s2", "s3"]))
    };
    lab.sync(std::slice::from_ref(&sticky));

    let (servers, _) = tally(call_many(&lab.client.netns, cluster_ip(&sticky), 100));
    assert_eq!(servers.len(), 1, "one endpoint for one client: {servers:?}");
}

#[test]
fn node_port_on_the_node_ip_reaches_the_service() {
    let Some(mut lab) = lab("node_port_on_the_node_ip_reaches_the_service") else {
        return;
    };
    lab.serve_tcp();
    let front = ServicePort {
        node_port: Some(30080),
        ..service("front", 30, lab.endpoints(&["s1", "s2", "s3"]))
    };
    lab.sync(std::slice::from_ref(&front));
    let node_port = SocketAddr::from((NODE_IP, 30080));

    // From a host outside the cluster, over the node's link: masqueraded, so that replies
    // go back through the node; the bridge address is the source the pods see.
    let (servers, peers) = tally(call_many(&lab.node.outside, node_port, 30));
    assert!(servers.len() > 1, "spread over endpoints: {servers:?}");
    assert_eq!(peers.keys().collect::<Vec<_>>(), [&BRIDGE_IP.to_string()]);

    // From a pod: NodePort traffic is masqueraded even from inside the cluster CIDR.
    let (_, peers) = tally(call_many(&lab.client.netns, node_port, 5));
    assert_eq!(peers.keys().collect::<Vec<_>>(), [&BRIDGE_IP.to_string()]);

    // From a process on the node itself (the nat OUTPUT hook).
    let answer = lab
        .node
        .netns
        .enter(move || call(node_port))
        .expect("NodePort from the node");
    assert!(answer.starts_with('s'), "{answer}");
}

#[test]
fn service_without_endpoints_refuses_at_once() {
    let Some(mut lab) = lab("service_without_endpoints_refuses_at_once") else {
        return;
    };
    let idle = ServicePort {
        node_port: Some(30090),
        ..service("idle", 50, Vec::new())
    };
    lab.sync(std::slice::from_ref(&idle));

    let target = cluster_ip(&idle);
    let (error, elapsed) = lab.client.netns.enter(move || {
        let started = tokio::time::Instant::now();
        let error = call(target).expect_err("nothing can answer");
        (error, started.elapsed())
    });
    // Without the REJECT the SYN goes out the node's default route and the connect times out.
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    assert!(elapsed < support::CONNECT_TIMEOUT / 4, "took {elapsed:?}");
}

#[test]
fn resync_stops_traffic_to_a_removed_endpoint_and_is_idempotent() {
    let Some(mut lab) = lab("resync_stops_traffic_to_a_removed_endpoint_and_is_idempotent") else {
        return;
    };
    lab.serve_tcp();
    let web = service("web", 20, lab.endpoints(&["s1", "s2", "s3"]));
    let old = service("old", 70, lab.endpoints(&["s3"]));
    lab.sync(&[web.clone(), old.clone()]);
    let (before, _) = tally(call_many(&lab.client.netns, cluster_ip(&web), 60));
    assert!(before.contains_key("s3"), "s3 serves at first: {before:?}");

    let web = service("web", 20, lab.endpoints(&["s1", "s2"]));
    lab.sync(std::slice::from_ref(&web));
    let (after, _) = tally(call_many(&lab.client.netns, cluster_ip(&web), 300));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["s1", "s2"],
        "no traffic to the removed endpoint: {after:?}"
    );
    let saved = lab.saved_rules();
    assert!(
        !saved.contains("shop/old:http"),
        "old's chains remain:\n{saved}"
    );
    assert!(
        !saved.contains("10.244.1.4:8080"),
        "s3's chain remains:\n{saved}"
    );

    lab.sync(std::slice::from_ref(&web));
    let again = lab.saved_rules();
    assert_eq!(saved, again, "an identical sync changed the tables");
    let hooks = again
        .lines()
        .filter(|l| l.starts_with("-A PREROUTING") && l.ends_with("-j KUBE-SERVICES"))
        .count();
    assert_eq!(hooks, 1, "hook jump added more than once:\n{again}");
}

#[test]
fn pod_reaches_itself_through_its_service() {
    let Some(mut lab) = lab("pod_reaches_itself_through_its_service") else {
        return;
    };
    lab.serve_tcp();
    let solo = service("solo", 60, lab.endpoints(&["s1"]));
    lab.sync(std::slice::from_ref(&solo));

    let answers = call_many(&lab.servers[0].netns, cluster_ip(&solo), 5);
    let (servers, peers) = tally(answers);
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["s1"]);
    // The hairpin is masqueraded, or s1 would answer itself directly and the reply would
    // not match the connection it opened to the ClusterIP.
    assert_eq!(peers.keys().collect::<Vec<_>>(), [&BRIDGE_IP.to_string()]);
}

fn dns(endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "kube-system".into(),
        service: "kube-dns".into(),
        port_name: "dns".into(),
        protocol: Protocol::Udp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
        port: 53,
        node_port: None,
        affinity_timeout: None,
        endpoints,
    }
}

#[test]
fn udp_service_answers_through_its_cluster_ip() {
    let Some(mut lab) = lab("udp_service_answers_through_its_cluster_ip") else {
        return;
    };
    lab.servers.iter().for_each(Pod::serve_udp);
    let dns = dns(lab.endpoints(&["s1", "s2"]));
    lab.sync(std::slice::from_ref(&dns));
    let target = cluster_ip(&dns);

    let mut answered_by = BTreeMap::<String, usize>::new();
    for _ in 0..30 {
        let answer = ask(&udp_socket(&lab.client.netns), target).expect("answered");
        *answered_by.entry(answer).or_default() += 1;
    }
    assert_eq!(
        answered_by.keys().collect::<Vec<_>>(),
        ["s1", "s2"],
        "new flows spread over both endpoints: {answered_by:?}"
    );
    // One socket is one conntrack flow: it stays with the endpoint it first reached.
    let socket = udp_socket(&lab.client.netns);
    let first = ask(&socket, target).expect("answered");
    for _ in 0..10 {
        assert_eq!(ask(&socket, target).expect("answered"), first);
    }
}

#[test]
fn udp_flow_moves_off_a_removed_endpoint() {
    let tools = ["ip", "iptables", "conntrack"];
    let Some(mut lab) = lab_with("udp_flow_moves_off_a_removed_endpoint", &tools) else {
        return;
    };
    lab.servers.iter().for_each(Pod::serve_udp);
    lab.sync(&[dns(lab.endpoints(&["s1", "s2"]))]);
    let target = cluster_ip(&dns(Vec::new()));
    let socket = udp_socket(&lab.client.netns);
    let first = ask(&socket, target).expect("answered");

    // The first endpoint still runs, so only the flushed conntrack entry sends the same
    // flow elsewhere.
    let other = if first == "s1" { "s2" } else { "s1" };
    lab.sync(&[dns(lab.endpoints(&[other]))]);
    assert_eq!(ask(&socket, target).expect("answered"), other);
}
