//! A one-node lab cluster for kube-proxy tests: a node network namespace with the pod bridge
//! `cni0` (10.244.1.1/24) and a node IP (172.18.0.1/24 on `eth0`, a veth to an "outside"
//! namespace at 172.18.0.2 that is also the default route), and pods joined to the bridge;
//! each namespace is a `mesh_test_support` one named `mtest-kp-…`, deleted on drop, also when
//! a test panics. Code runs inside a namespace on its own thread (setns is per thread).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use mesh_test_support::netns::TestNetns;

/// The node's IP on its link.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
/// The bridge's IP: the pods' gateway, and the source of masqueraded traffic to pods.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
/// The port every test server listens on (TCP and UDP).
pub const SERVER_PORT: u16 = 8080;
/// How long a connect may take before a test calls it hung.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a privileged test can run; in CI (`CI=true`) a missing tool or root is a failure,
/// elsewhere a skip with a message.
pub fn require_root_tools(test: &str, tools: &[&str]) -> bool {
    mesh_test_support::require_root(test, tools)
}

/// A node namespace with its bridge and node IP.
pub struct Node {
    /// The node's namespace.
    pub netns: TestNetns,
    /// The far end of the node's link (172.18.0.2): a host outside the cluster.
    pub outside: TestNetns,
}

/// A pod: a namespace with `eth0` on the node's bridge.
pub struct Pod {
    /// The pod's name, which its servers answer with.
    pub name: String,
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The pod's namespace.
    pub netns: TestNetns,
}

/// A namespace of this lab: `mtest-kp-<tag>-…`.
fn lab_netns(tag: &str) -> TestNetns {
    TestNetns::create(&format!("kp-{tag}"))
}

// === impl Node ===

impl Node {
    /// A node with `cni0` (10.244.1.1/24), forwarding on, bridged traffic through iptables,
    /// and the node IP on `eth0`, linked to the outside host that is its default route.
    pub fn create() -> Node {
        let netns = lab_netns("node");
        netns.ip(&["link", "add", "cni0", "type", "bridge"]);
        netns.ip(&["addr", "add", "10.244.1.1/24", "dev", "cni0"]);
        netns.ip(&["link", "set", "cni0", "up"]);
        let outside = lab_netns("outside");
        let peer = ["peer", "name", "eth0", "netns", outside.name()];
        netns.ip(&[&["link", "add", "eth0", "type", "veth"][..], &peer[..]].concat());
        netns.ip(&["addr", "add", "172.18.0.1/24", "dev", "eth0"]);
        netns.ip(&["link", "set", "eth0", "up"]);
        netns.ip(&["route", "add", "default", "via", "172.18.0.2"]);
        outside.ip(&["addr", "add", "172.18.0.2/24", "dev", "eth0"]);
        outside.ip(&["link", "set", "eth0", "up"]);
        // Both are per network namespace; /proc/sys/net follows the thread's namespace.
        netns.enter(|| {
            for (key, value) in [
                ("net/ipv4/ip_forward", "1"),
                ("net/bridge/bridge-nf-call-iptables", "1"),
            ] {
                let path = format!("/proc/sys/{key}");
                std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
        });
        Node { netns, outside }
    }

    /// A pod `name` at 10.244.1.`host` on the bridge, its bridge port in hairpin mode.
    pub fn pod(&self, name: &str, host: u8) -> Pod {
        let netns = lab_netns(name);
        let ip = Ipv4Addr::new(10, 244, 1, host);
        let veth = format!("veth-{name}");
        self.netns.ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns.name(),
        ]);
        self.netns.ip(&["link", "set", &veth, "master", "cni0"]);
        self.netns.ip(&[
            "link",
            "set",
            &veth,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        self.netns.ip(&["link", "set", &veth, "up"]);
        netns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        netns.ip(&["link", "set", "eth0", "up"]);
        netns.ip(&["route", "add", "default", "via", "10.244.1.1"]);
        Pod {
            name: name.to_string(),
            ip,
            netns,
        }
    }
}

// === impl Pod ===

impl Pod {
    /// Serves TCP on :8080, answering each connection with `"<pod name> <peer ip>"`;
    /// returns once the listener is bound.
    pub fn serve_tcp(&self) {
        let name = self.name.clone();
        let (ready, bound) = mpsc::channel();
        let _ = self.netns.spawn(move || {
            let listener = TcpListener::bind(("0.0.0.0", SERVER_PORT)).expect("bind tcp");
            ready.send(()).expect("test waits");
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let peer = stream.peer_addr().map(|a| a.ip().to_string());
                let _ = write!(stream, "{name} {}", peer.unwrap_or_default());
            }
        });
        bound.recv().expect("server thread bound its port");
    }

    /// Serves UDP on :8080, answering each datagram with the pod's name; returns once bound.
    pub fn serve_udp(&self) {
        let name = self.name.clone();
        let (ready, bound) = mpsc::channel();
        let _ = self.netns.spawn(move || {
            let socket = UdpSocket::bind(("0.0.0.0", SERVER_PORT)).expect("bind udp");
            ready.send(()).expect("test waits");
            let mut buffer = [0u8; 64];
            while let Ok((_, peer)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(name.as_bytes(), peer);
            }
        });
        bound.recv().expect("server thread bound its port");
    }
}

/// Opens `count` connections from inside `netns` to `target`, one after another, and returns
/// what each server answered; stops at the first connection that fails.
pub fn call_many(netns: &TestNetns, target: SocketAddr, count: usize) -> io::Result<Vec<String>> {
    netns.enter(move || (0..count).map(|_| call(target)).collect())
}

/// A UDP socket made inside `netns` (a socket stays in the namespace it was made in, so any
/// thread may use it), answers awaited for at most [`CONNECT_TIMEOUT`].
pub fn udp_socket(netns: &TestNetns) -> UdpSocket {
    netns.enter(|| {
        let socket = UdpSocket::bind(("0.0.0.0", 0)).expect("bind udp client");
        socket
            .set_read_timeout(Some(CONNECT_TIMEOUT))
            .expect("timeout");
        socket
    })
}

/// Sends one datagram from `socket` to `target` and returns the answer.
pub fn ask(socket: &UdpSocket, target: SocketAddr) -> io::Result<String> {
    socket.send_to(b"?", target)?;
    let mut buffer = [0u8; 64];
    let (len, _) = socket.recv_from(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..len]).into_owned())
}

/// One connection: the server's whole answer.
pub fn call(target: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
