//! The privileged test rig: fresh network namespaces (`mesh_test_support::netns`, removed on
//! drop even when a test fails) with what these tests do in them, and the built `mesh-init`.
#![allow(dead_code, missing_docs)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::fd::AsFd;
use std::process::Output;

use mesh_test_support::netns::TestNetns;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockaddrIn, SockaddrIn6, getsockopt, sockopt};

pub use mesh_test_support::netns::describe;

/// Binaries the privileged tests run.
const TOOLS: [&str; 12] = [
    "ip",
    "iptables-nft-restore",
    "iptables-nft-save",
    "ip6tables-nft-restore",
    "ip6tables-nft-save",
    "iptables-legacy-restore",
    "iptables-legacy-save",
    "ip6tables-legacy-restore",
    "ip6tables-legacy-save",
    "setpriv",
    "bash",
    "timeout",
];
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a connection may take to land before a test gives up, in ms (a bound on a
/// failure, never a synchronisation).
const LAND_TIMEOUT_MS: u16 = 10_000;

/// Whether this test can run (root and every tool of `TOOLS`). If not: skipped with a reason
/// on a laptop, failed in CI.
pub fn privileged(test: &str) -> bool {
    mesh_test_support::require_root(test, &TOOLS)
}

/// A test network namespace (`mtest-init-<name>-…`, loopback up, deleted on drop) where
/// commands run with a clean environment (`exec`, `sh`), so the host's cannot change them.
pub struct Netns(TestNetns);

impl Deref for Netns {
    type Target = TestNetns;

    fn deref(&self) -> &TestNetns {
        &self.0
    }
}

impl Netns {
    pub fn new(name: &str) -> Self {
        Self(TestNetns::create(&format!("init-{name}")))
    }

    /// `ip netns exec NS ARGS...` with a clean environment.
    pub fn exec(&self, args: &[&str]) -> Output {
        let (program, args) = args.split_first().expect("a program to run");
        self.command(program)
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {program} {args:?}: {e}", self.name()))
    }

    /// Like `exec`, but must succeed; returns stdout.
    pub fn sh(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{args:?} in {}: {}",
            self.name(),
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs the built `mesh-init` inside the namespace.
    pub fn mesh_init(&self, args: &[&str]) -> Output {
        let mut all = vec![env!("CARGO_BIN_EXE_mesh-init")];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// Runs `mesh-init`, which must succeed; returns stdout.
    pub fn mesh_init_ok(&self, args: &[&str]) -> String {
        let output = self.mesh_init(args);
        assert!(
            output.status.success(),
            "mesh-init {args:?}: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn listen(&self, addr: &str) -> TcpListener {
        self.enter(|| TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")))
    }

    pub fn connect(&self, addr: &str) -> TcpStream {
        self.enter(|| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}")))
    }

    /// Connects as the proxy (uid and gid 1337) from a child process: bash's /dev/tcp.
    pub fn connect_as_proxy(&self, host: &str, port: u16) {
        let script = format!("exec 3<>/dev/tcp/{host}/{port}");
        let args = [
            "setpriv",
            "--reuid",
            "1337",
            "--regid",
            "1337",
            "--clear-groups",
        ];
        let mut all = args.to_vec();
        all.extend(["timeout", "10", "bash", "-c", &script]);
        self.sh(&all);
    }

    /// The nat table of one family as `BACKEND-save` prints it, without comments and with
    /// counters zeroed, so two saves compare exactly.
    pub fn saved_nat(&self, backend: &str, family: &str) -> String {
        let tool = if family == "ipv6" {
            "ip6tables"
        } else {
            "iptables"
        };
        let saved = self.sh(&[&format!("{tool}-{backend}-save")]);
        normalise(&saved)
    }
}

/// A pod namespace wired to a peer namespace (the rest of the network) by a veth pair.
/// Pod: 10.0.0.2/24, fd00::1/64, default route via the peer. Peer: 10.0.0.1/24 plus
/// 10.96.0.10 (a "Service VIP"), fd00::2/64 plus fd00::99.
pub struct Pod {
    pub pod: Netns,
    pub peer: Netns,
}

impl Pod {
    pub const IP: &str = "10.0.0.2";
    pub const VIP: &str = "10.96.0.10";
    pub const VIP6: &str = "fd00::99";

    pub fn new(test: &str) -> Self {
        let pod = Netns::new(test);
        let peer = Netns::new(&format!("{test}-peer"));
        pod.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            peer.name(),
        ]);
        pod.ip(&["addr", "add", "10.0.0.2/24", "dev", "eth0"]);
        pod.ip(&["-6", "addr", "add", "fd00::1/64", "dev", "eth0", "nodad"]);
        pod.ip(&["link", "set", "eth0", "up"]);
        pod.ip(&["route", "add", "default", "via", "10.0.0.1"]);
        peer.ip(&["addr", "add", "10.0.0.1/24", "dev", "eth0"]);
        peer.ip(&["addr", "add", "10.96.0.10/32", "dev", "eth0"]);
        peer.ip(&["-6", "addr", "add", "fd00::2/64", "dev", "eth0", "nodad"]);
        peer.ip(&["-6", "addr", "add", "fd00::99/128", "dev", "eth0", "nodad"]);
        peer.ip(&["link", "set", "eth0", "up"]);
        Self { pod, peer }
    }
}

/// The next connection on `listener`, or `None` if none lands within 10 s.
pub fn accept_within(listener: &TcpListener) -> Option<TcpStream> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(LAND_TIMEOUT_MS)).expect("poll") {
        0 => None,
        _ => Some(listener.accept().expect("accept").0),
    }
}

/// A connection that must have landed on `listener`.
pub fn landed(listener: &TcpListener, what: &str) -> TcpStream {
    let addr = listener.local_addr().expect("local addr");
    accept_within(listener).unwrap_or_else(|| panic!("{what}: nothing reached {addr}"))
}

/// Asserts nothing is waiting on `listener` (checked after the connection landed elsewhere).
pub fn nothing_on(listener: &TcpListener, what: &str) {
    listener.set_nonblocking(true).expect("nonblocking");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, from)) => panic!("{what}: unexpected connection from {from} on {listener:?}"),
        Err(e) => panic!("{what}: accept: {e}"),
    }
}

/// SO_ORIGINAL_DST of an accepted IPv4 connection.
pub fn original_dst_v4(stream: &TcpStream) -> SocketAddr {
    let raw = getsockopt(stream, sockopt::OriginalDst).expect("SO_ORIGINAL_DST");
    SockaddrIn::from(raw).into()
}

/// IP6T_SO_ORIGINAL_DST of an accepted IPv6 connection.
pub fn original_dst_v6(stream: &TcpStream) -> SocketAddr {
    let raw = getsockopt(stream, sockopt::Ip6tOriginalDst).expect("IP6T_SO_ORIGINAL_DST");
    SockaddrIn6::from(raw).into()
}

/// Drops comment lines and zeroes `[packets:bytes]` counters.
pub fn normalise(saved: &str) -> String {
    saved
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => format!("{} [0:0]", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
