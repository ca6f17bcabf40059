//! Privileged fixtures: a network namespace removed on drop, sockets bound inside it from a
//! thread that enters it, and the `/etc/netns/<ns>/resolv.conf` that `ip netns exec` mounts.

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    path::PathBuf,
    process::Command,
};

/// Whether a privileged test can run; in CI (`CI=true`) a missing tool or root is a failure,
/// elsewhere a skip with a message.
pub fn require_root_tools(test: &str, tools: &[&str]) -> bool {
    mesh_test_support::require_root(test, tools)
}

/// A named network namespace with loopback up, deleted on drop (also when a test panics).
pub struct Netns {
    /// `mtest-<tag>-<pid>`.
    pub name: String,
}

impl Netns {
    /// Creates `mtest-<tag>-<pid>`, replacing a leftover of the same name.
    pub fn create(tag: &str) -> Netns {
        let name = format!("mtest-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let netns = Netns { name };
        netns.exec(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    /// Runs a command inside the namespace; panics with its output when it fails.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// A UDP socket and a TCP listener bound to `address` inside the namespace, by a thread
    /// that enters it (setns is per thread); the sockets stay in the namespace afterwards.
    pub fn bind(&self, address: SocketAddr) -> (UdpSocket, TcpListener) {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let udp = UdpSocket::bind(address).expect("bind UDP in netns");
            let tcp = TcpListener::bind(address).expect("bind TCP in netns");
            udp.set_nonblocking(true).expect("nonblocking");
            tcp.set_nonblocking(true).expect("nonblocking");
            (udp, tcp)
        })
        .join()
        .expect("binding thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over `/etc/resolv.conf`;
/// the directory is removed on drop.
pub struct NetnsResolvConf {
    directory: PathBuf,
}

impl NetnsResolvConf {
    /// Writes `contents` as the namespace's resolv.conf.
    pub fn write(netns: &Netns, contents: &str) -> NetnsResolvConf {
        let directory = PathBuf::from("/etc/netns").join(&netns.name);
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

/// Runs a command; panics with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
