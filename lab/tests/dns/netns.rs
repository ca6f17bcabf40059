//! Privileged fixtures: sockets bound inside a test network namespace, and the
//! `/etc/netns/<ns>/resolv.conf` that `ip netns exec` mounts.

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    path::PathBuf,
};

use mesh_test_support::netns::TestNetns;

/// Whether a privileged test can run; in CI (`CI=true`) a missing tool or root is a failure,
/// elsewhere a skip with a message.
pub fn require_root_tools(test: &str, tools: &[&str]) -> bool {
    mesh_test_support::require_root(test, tools)
}

/// A UDP socket and a TCP listener bound to `address` inside `netns`, nonblocking; the sockets
/// stay in the namespace afterwards.
pub fn bind(netns: &TestNetns, address: SocketAddr) -> (UdpSocket, TcpListener) {
    netns.enter(|| {
        let udp = UdpSocket::bind(address).expect("bind UDP in netns");
        let tcp = TcpListener::bind(address).expect("bind TCP in netns");
        udp.set_nonblocking(true).expect("nonblocking");
        tcp.set_nonblocking(true).expect("nonblocking");
        (udp, tcp)
    })
}

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over `/etc/resolv.conf`;
/// the directory is removed on drop.
pub struct NetnsResolvConf {
    directory: PathBuf,
}

impl NetnsResolvConf {
    /// Writes `contents` as the namespace's resolv.conf.
    pub fn write(netns: &TestNetns, contents: &str) -> NetnsResolvConf {
        let directory = PathBuf::from("/etc/netns").join(netns.name());
        std::fs::create_dir_all(&directory).expect("create /etc/netns/<ns>");
        let file = NetnsResolvConf { directory };
        std::fs::write(file.directory.join("resolv.conf"), contents).expect("write resolv.conf");
        file
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
