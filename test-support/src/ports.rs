//! Free loopback ports, for a server a test starts as a process (which binds its own port).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A loopback port nothing listens on now: the operating system's pick for port 0. Another
/// program may take it before the test does, which on loopback in a test run is rare enough.
pub fn free_port() -> u16 {
    free_addr().port()
}

/// `127.0.0.1:<a free port>`; see [`free_port`].
pub fn free_addr() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}
