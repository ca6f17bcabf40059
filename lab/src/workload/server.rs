//! Accepts connections and serves each with HTTP/1.1 or h2c (told apart by the preface),
//! answering gRPC calls with the gRPC echo and every other request with the JSON echo.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};

use super::{Workload, grpc_echo, http_echo, streamed_body::StreamedBody};

/// Pause after a failed accept (say, out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Every answer's body: a whole JSON document or trailers-only status, or streamed replies.
pub(crate) type ReplyBody = Either<Full<Bytes>, StreamedBody>;

/// The two ends of an accepted connection, as the echo reports them.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The address the client reached, whose port says which listener answered.
    pub(crate) local: SocketAddr,
    /// What the TLS handshake said, on a TLS listener.
    pub(crate) tls: Option<Arc<TlsSeen>>,
}

/// A TLS client's handshake, as the echo reports it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct TlsSeen {
    /// The server name the client sent.
    pub(crate) sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub(crate) alpn: Option<String>,
    /// Whether the client presented a certificate.
    pub(crate) client_certificate: bool,
}

/// Serves HTTP/1.1, h2c and gRPC on `listener` until the process ends.
pub async fn serve(listener: TcpListener, workload: Workload) {
    let workload = Arc::new(workload);
    loop {
        let (stream, peer) = next_connection(&listener).await;
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let connection = Connection {
            peer,
            local,
            tls: None,
        };
        tokio::spawn(serve_connection(stream, connection, workload.clone()));
    }
}

/// The next accepted connection, riding out accept errors.
pub(crate) async fn next_connection(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(error) => {
                eprintln!("mesh-workload: accept failed: {error}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one connection's requests until the client closes it.
pub(crate) async fn serve_connection<I>(stream: I, connection: Connection, workload: Arc<Workload>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let workload = workload.clone();
        let connection = connection.clone();
        async move {
            answer(workload, connection, req)
                .await
                .ok_or(ConnectionDropped)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Routes a request to the gRPC echo or the JSON echo; `None` closes the connection unanswered.
async fn answer(
    workload: Arc<Workload>,
    connection: Connection,
    req: Request<Incoming>,
) -> Option<Response<ReplyBody>> {
    if grpc_echo::is_grpc(&req) {
        Some(grpc_echo::answer(workload, req).await)
    } else {
        http_echo::answer(&workload, connection, req)
            .await
            .map(|response| response.map(Either::Left))
    }
}

/// The service's error when a request asks for its connection to be closed unanswered.
#[derive(Debug, thiserror::Error)]
#[error("the request asked for its connection to be closed")]
struct ConnectionDropped;
