//! The benchmark's upstream: answers every request `200 OK` with a fixed 13-byte body, over
//! HTTP/1.1 keep-alive or h2c with prior knowledge on the same port (told apart by the preface).

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use std::{convert::Infallible, time::Duration};
use tokio::net::TcpListener;

/// The body of every response.
pub const BODY: &[u8] = b"hello, mesh!\n";

/// Pause after a failed accept (say, out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Serves connections from `listener` until the task is dropped or the process ends.
pub async fn serve(listener: TcpListener) -> Result<()> {
    serve_with_delay(listener, Duration::ZERO).await
}

/// [`serve`], each answer after `delay` (a slow endpoint for the load-balancing bench).
pub async fn serve_with_delay(listener: TcpListener, delay: Duration) -> Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                eprintln!("mesh-bench-upstream: accept failed: {error}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Ignored: a socket that cannot disable Nagle still works, only slower.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            // A client going away mid-request is normal at the end of a benchmark.
            let service = service_fn(move |request| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                answer(request).await
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}
