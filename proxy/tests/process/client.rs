//! Clients of the proxy's listener: one HTTP/1.1 or HTTP/2 (h2c prior knowledge) connection
//! each, with bodies streamed.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpStream, task::JoinHandle};

use super::upstreams::{Body, BoxError};

/// An HTTP/1.1 connection: its sender, and the task driving it (which ends when it closes).
pub async fn h1(addr: SocketAddr) -> (http1::SendRequest<Body>, JoinHandle<hyper::Result<()>>) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    (sender, tokio::spawn(conn))
}

/// An HTTP/2 connection with prior knowledge.
pub async fn h2(addr: SocketAddr) -> http2::SendRequest<Body> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}

/// A request to `path` with Host `web` (HTTP/1.1; HTTP/2 takes the authority from the URI).
pub fn request(method: Method, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "web")
        .body(body)
        .expect("valid request")
}

/// An HTTP/2 request to `path` at authority `web`.
pub fn request_h2(method: Method, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("http://web{path}"))
        .body(body)
        .expect("valid request")
}

/// A response's whole body as text.
pub async fn text(response: Response<Incoming>) -> Result<String, BoxError> {
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A response's whole body.
pub async fn bytes(response: Response<Incoming>) -> Result<Bytes, BoxError> {
    Ok(response.into_body().collect().await?.to_bytes())
}
