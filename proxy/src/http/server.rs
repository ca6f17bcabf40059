//! Serves one client connection as HTTP/1.1 or HTTP/2, ending it gracefully when the proxy drains.

use std::{convert::Infallible, sync::Arc, time::Duration};

use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::{HttpConn, UpstreamVersion, head_timeout::Activity};

/// An HTTP/1 client has this long to send a request's headers (slow-loris guard), and an idle
/// keep-alive connection is closed after it.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/1 read buffer cap, and so the largest request head (larger gets 431, as Envoy's 60 KiB).
const MAX_HTTP1_BUFFER: usize = 64 * 1024;

/// Drives a hyper connection until it ends or `$stalled` resolves (then it is dropped, which
/// closes it); on drain, asks it to finish gracefully and waits for that.
/// (A macro: hyper's connection types share `graceful_shutdown` but no trait for it.)
macro_rules! until_drained {
    ($connection:expr, $drain:expr, $stalled:expr) => {{
        let mut connection = std::pin::pin!($connection);
        tokio::select! {
            biased; // the connection first: it is what is ready almost every time
            result = connection.as_mut() => result,
            _ = $stalled => {
                tracing::debug!("no request head within {HEADER_READ_TIMEOUT:?}; closing the connection");
                Ok(())
            }
            _ = $drain.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    }};
}

/// Serves HTTP on `io` until the client closes it, or until `drain` fires: then in-flight
/// requests finish, HTTP/1.1 closes after the current response and HTTP/2 sends GOAWAY.
pub async fn serve_connection<I>(io: I, conn: Arc<HttpConn>, drain: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let result = match conn.version {
        UpstreamVersion::Http1 => {
            let activity = Arc::new(Activity::default());
            let requests = activity.clone();
            let service = service_fn(move |req| {
                let conn = conn.clone();
                let request = requests.start();
                async move { Ok::<_, Infallible>(request.track(conn.handle(req).await)) }
            });
            let connection = http1::Builder::new()
                .header_read_timeout(None) // `activity` does it, with one timer per connection
                .max_buf_size(MAX_HTTP1_BUFFER)
                .serve_connection(io, service)
                .with_upgrades();
            until_drained!(connection, drain, activity.stalled(HEADER_READ_TIMEOUT))
        }
        UpstreamVersion::Http2 => {
            let service = service_fn(move |req| {
                let conn = conn.clone();
                async move { Ok::<_, Infallible>(conn.handle(req).await) }
            });
            let connection = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_stream_window_size(super::H2_STREAM_WINDOW)
                .initial_connection_window_size(super::H2_CONNECTION_WINDOW)
                .max_send_buf_size(super::H2_STREAM_WINDOW as usize)
                .serve_connection(io, service);
            until_drained!(connection, drain, std::future::pending::<()>())
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "client connection ended with an error");
    }
}
