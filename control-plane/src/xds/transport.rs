//! The discovery port's transport: TLS with ALPN h2 through a rustls acceptor, or plain h2c.
//!
//! Each connection's handshake runs in its own task with a deadline, so a slow or failing
//! client delays no other; a failed handshake is logged with its cause and the connection
//! dropped.

use std::{convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use rustls::ServerConfig;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Server, server::TcpIncoming};

use super::DiscoveryServer;
use crate::ca::CaService;

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the gRPC server to take them.
const HANDSHAKEN_QUEUE: usize = 64;
/// The pause after a failed accept (such as running out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `server` (and the CA, when given) on `listener` until `shutdown` completes: over TLS
/// with `tls`, else h2c.
pub async fn serve(
    server: DiscoveryServer,
    ca: Option<CaService>,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let mut builder = Server::builder();
    let router = builder
        .add_service(server.into_service())
        .add_optional_service(ca.map(CaService::into_service));
    match tls {
        Some(config) => {
            let incoming = tls_incoming(listener, TlsAcceptor::from(config));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// The connections accepted on `listener` whose TLS handshake succeeded.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<Result<TlsStream<TcpStream>, Infallible>> {
    let (handshaken, incoming) = mpsc::channel(HANDSHAKEN_QUEUE);
    tokio::spawn(accept(listener, acceptor, handshaken));
    ReceiverStream::new(incoming)
}

/// Accepts until the server stops taking connections, a handshake task per connection.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: mpsc::Sender<Result<TlsStream<TcpStream>, Infallible>>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = handshaken.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection on the discovery port");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, handshaken) = (acceptor.clone(), handshaken.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    // Fails only when the server stopped, and the connection goes with it.
                    let _ = handshaken.send(Ok(stream)).await;
                }
                Ok(Err(error)) => log_failed_handshake(peer, &error),
                Err(_) => tracing::warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT,
                    "TLS handshake on the discovery port timed out"),
            }
        });
    }
}

/// A peer that closes before saying anything is a port probe (debug); anything else is worth
/// an operator's attention.
fn log_failed_handshake(peer: SocketAddr, error: &io::Error) {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        tracing::debug!(%peer, "connection closed before its TLS handshake");
    } else {
        tracing::warn!(%peer, "TLS handshake on the discovery port failed: {error}");
    }
}
