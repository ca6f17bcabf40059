//! The inbound side of mesh TLS: tell a mesh ClientHello from anything else, terminate it, and
//! learn who the peer is.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::HeaderValue;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::{
    addr::ClientAddr,
    detect::{PrefixedIo, client_hello_alpn},
    tls::{Carried, MeshTls, identity_of, is_mesh_alpn},
};

/// How long a client has to complete its mesh TLS handshake once its ClientHello arrived.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A verified mesh peer.
#[derive(Debug)]
pub struct Peer {
    /// Its SPIFFE identity.
    pub identity: Arc<str>,
    /// What the app is told in `x-forwarded-client-cert`, Envoy's form:
    /// `By=<this proxy>;Hash=<sha256 of the peer certificate>;URI=<peer identity>`.
    pub forwarded_client_cert: HeaderValue,
}

/// Whether the bytes read from a connection start a ClientHello that offers a mesh protocol.
pub(super) fn is_mesh_client_hello(prefix: &Bytes) -> bool {
    client_hello_alpn(prefix).iter().any(|p| is_mesh_alpn(p))
}

/// Completes the TLS handshake of a mesh client; `None` (logged) when it fails.
pub(super) async fn accept(
    mesh: &MeshTls,
    io: PrefixedIo<TcpStream>,
    client: ClientAddr,
) -> Option<(TlsStream<PrefixedIo<TcpStream>>, Carried, Peer)> {
    let acceptor = TlsAcceptor::from(mesh.server_config().clone());
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%client, %error, "mesh TLS handshake failed; closing the connection");
            return None;
        }
        Err(_) => {
            tracing::info!(%client, timeout = ?HANDSHAKE_TIMEOUT,
                "mesh TLS handshake did not complete in time; closing the connection");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    let carried = Carried::from_alpn(session.alpn_protocol())?;
    let certs = session.peer_certificates();
    let identity: Arc<str> = identity_of(certs)?.into();
    let hash = certs
        .and_then(|c| c.first())
        .map(|cert| ring::digest::digest(&ring::digest::SHA256, cert))
        .map(|d| {
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        })
        .unwrap_or_default();
    let own = mesh.own_identity().unwrap_or_default();
    let forwarded_client_cert =
        HeaderValue::from_str(&format!("By={own};Hash={hash};URI={identity}")).ok()?;
    Some((
        stream,
        carried,
        Peer {
            identity,
            forwarded_client_cert,
        },
    ))
}
