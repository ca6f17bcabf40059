//! Reads a redirected connection's original destination (`SO_ORIGINAL_DST`, `IP6T_SO_ORIGINAL_DST`).

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
};

use nix::sys::socket::{getsockopt, sockopt};
use tokio::net::TcpStream;

use crate::addr::OrigDstAddr;

/// The destination the client dialled before the nat table's REDIRECT rewrote it.
///
/// Fails with `ENOENT` when the connection was not redirected (for instance a client that dialled
/// the capture port directly).
pub fn orig_dst(stream: &TcpStream) -> io::Result<OrigDstAddr> {
    let local = stream.local_addr()?;
    let addr = match local {
        SocketAddr::V4(_) => {
            let raw = getsockopt(stream, sockopt::OriginalDst).map_err(io::Error::from)?;
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr)),
                u16::from_be(raw.sin_port),
            ))
        }
        SocketAddr::V6(_) => {
            let raw = getsockopt(stream, sockopt::Ip6tOriginalDst).map_err(io::Error::from)?;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(raw.sin6_addr.s6_addr),
                u16::from_be(raw.sin6_port),
                raw.sin6_flowinfo,
                raw.sin6_scope_id,
            ))
        }
    };
    Ok(OrigDstAddr(addr))
}
