//! New HTTP connections for the client's requests: the target resolved and connected
//! afresh, then hyper's HTTP/1.1 or HTTP/2 (h2c, prior knowledge) client handshake. A task
//! drives each connection until its sender is dropped and its last exchange is over.

use bytes::Bytes;
use hyper::{
    body::Body,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{ClientError, target::Target};

/// An HTTP/1.1 connection to `target`.
pub(crate) async fn http1<B>(target: &Target) -> Result<http1::SendRequest<B>, ClientError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(target.connect().await?);
    let (sender, connection) = http1::handshake(io).await.map_err(ClientError::Handshake)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// An HTTP/2 connection to `target`, with prior knowledge: no upgrade from HTTP/1.1.
pub(crate) async fn http2<B>(target: &Target) -> Result<http2::SendRequest<B>, ClientError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(target.connect().await?);
    let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(ClientError::Handshake)?;
    tokio::spawn(connection);
    Ok(sender)
}
