//! Shared helpers: workloads served in-process, hyper clients, and the built binary.

use std::{
    net::SocketAddr,
    pin::Pin,
    process::Stdio,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_lab::workload::{Faults, RetrySimulation, Workload, serve, serve_tcp_echo};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{TcpListener, TcpSocket},
    process::{Child, Command},
    sync::mpsc,
};

/// A workload named `pod` with version `version` and the given faults.
pub fn workload(pod: &str, version: &str, faults: Faults) -> Workload {
    Workload {
        pod: pod.into(),
        version: version.into(),
        faults,
        retry_simulation: RetrySimulation::default(),
        call: None,
    }
}

/// Serves the HTTP/gRPC echo on a fresh loopback port.
pub async fn start(workload: Workload) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(serve(listener, workload));
    address
}

/// Serves two workloads on one port (SO_REUSEPORT): the kernel spreads new connections
/// over both, as a Service spreads them over its endpoints.
pub async fn start_pair(first: Workload, second: Workload) -> SocketAddr {
    let listener = reusable_listener("127.0.0.1:0".parse().expect("address"));
    let address = listener.local_addr().expect("address");
    tokio::spawn(serve(listener, first));
    tokio::spawn(serve(reusable_listener(address), second));
    address
}

fn reusable_listener(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseport(true).expect("reuseport");
    socket.bind(address).expect("bind");
    socket.listen(128).expect("listen")
}

/// Serves the TCP echo on a fresh loopback port.
pub async fn start_tcp_echo(workload: Workload) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(serve_tcp_echo(listener, workload));
    address
}

/// An HTTP/1.1 connection to `address`.
pub async fn http1(address: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/2 (h2c, prior knowledge) connection to `address`.
pub async fn http2<B>(address: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// A response's status, headers and body parsed as JSON.
pub async fn json(
    response: http::Response<Incoming>,
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let report = serde_json::from_slice(&body).expect("json body");
    (parts.status, parts.headers, report)
}

/// A request body the test feeds frame by frame, for streaming calls.
pub struct FedBody {
    frames: mpsc::Receiver<Bytes>,
}

impl FedBody {
    /// The body and the sender feeding it; dropping the sender ends the body.
    pub fn new() -> (mpsc::Sender<Bytes>, Self) {
        let (sender, frames) = mpsc::channel(4);
        (sender, Self { frames })
    }
}

impl Body for FedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .frames
            .poll_recv(cx)
            .map(|data| data.map(|data| Ok(Frame::data(data))))
    }
}

/// Longest wait for something that should happen at once; a guard, not a pace.
const GUARD: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test instead of hanging when it never completes.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {GUARD:?}"))
}

/// Longest wait for the binary to say it listens; a guard, not a pace.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// The built `mesh-workload` binary, with no inherited workload settings.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-workload"));
    for variable in [
        "WORKLOAD_ADDR",
        "WORKLOAD_TCP_ADDR",
        "POD_NAME",
        "POD_VERSION",
        "WORKLOAD_FAIL_PERCENT",
        "WORKLOAD_DELAY_PERCENT",
        "WORKLOAD_DELAY_MS",
    ] {
        command.env_remove(variable);
    }
    command.kill_on_drop(true);
    command
}

/// A `mesh-workload` server process, killed when dropped.
pub struct ServerProcess {
    _child: Child,
    /// Its start-up lines, one per listener, in order.
    pub lines: Vec<String>,
}

impl ServerProcess {
    /// Starts `command` and waits for `listeners` start-up lines on stderr.
    pub async fn start(mut command: Command, listeners: usize) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn mesh-workload");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut lines = Vec::new();
        while lines.len() < listeners {
            let line = tokio::time::timeout(STARTUP_LIMIT, stderr.next_line())
                .await
                .expect("start-up line in time")
                .expect("read stderr")
                .unwrap_or_else(|| panic!("mesh-workload exited; said {lines:?}"));
            lines.push(line);
        }
        Self {
            _child: child,
            lines,
        }
    }

    /// The address at the end of start-up line `index` ("... listening on ADDRESS").
    pub fn address(&self, index: usize) -> SocketAddr {
        let (_, address) = self.lines[index]
            .rsplit_once(" listening on ")
            .unwrap_or_else(|| panic!("no address in {:?}", self.lines[index]));
        address.parse().expect("address")
    }
}
