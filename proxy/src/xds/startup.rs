//! Health probes while a discovery-mode proxy waits for its first complete config: live, but
//! not ready, so that Kubernetes sends it no traffic yet and does not restart it either.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Answers on the health port until `finish` hands the port over to the admin server.
pub(crate) struct StartupProbes {
    stop: oneshot::Sender<()>,
    task: JoinHandle<TcpListener>,
}

impl StartupProbes {
    /// Starts answering on `listener`.
    pub(crate) fn serve(listener: TcpListener) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return listener,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            tokio::spawn(serve_connection(stream));
                        }
                        Err(error) => tracing::warn!(%error, "health accept failed"),
                    },
                }
            }
        });
        StartupProbes { stop, task }
    }

    /// Stops answering and returns the listener.
    pub(crate) async fn finish(self) -> Option<TcpListener> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|error| tracing::error!(%error, "the startup health task failed"))
            .ok()
    }
}

async fn serve_connection(stream: tokio::net::TcpStream) {
    let service = service_fn(|req: Request<Incoming>| async move {
        let (status, body) = match req.uri().path() {
            "/healthz/live" => (StatusCode::OK, "live"),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: waiting for the first complete config from the control plane",
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "health connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GET off the runtime's thread, which serves the probes meanwhile.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || mesh_test_support::http_get(addr, &path))
            .await
            .expect("the GET's thread")
            .expect("an answer")
    }

    #[tokio::test]
    async fn live_but_not_ready_until_finished_then_the_port_is_handed_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let probes = StartupProbes::serve(listener);
        assert_eq!(get(addr, "/healthz/live").await.0, 200);
        let (status, ready) = get(addr, "/healthz/ready").await;
        assert_eq!(status, 503, "{ready}");
        assert!(ready.contains("waiting for the first complete config"));

        let listener = probes.finish().await.expect("listener back");
        assert_eq!(listener.local_addr().expect("addr"), addr);
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        connected.expect("connects");
        accepted.expect("the returned listener accepts");
    }
}
