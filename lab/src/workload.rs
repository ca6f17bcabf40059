//! The lab's built-in workload, so pods need no container images. As a server it answers on
//! every listener with who it is (pod name, `version` label) and what it saw: an HTTP/1.1 and
//! h2c JSON echo, the gRPC service `mesh.lab.Echo` on the same port, and a TCP echo; it can
//! fail or delay a share of requests, or the first tries of a request, on purpose; the same echo over TLS (`tls_server`) stands
//! in for a server outside the mesh. As a client (`client`) it sends requests
//! from inside a pod and summarises which pods and versions answered.

pub mod client;
mod faults;
mod grpc_echo;
pub mod grpc_wire;
mod http_echo;
mod retry_simulation;
mod server;
mod streamed_body;
mod tcp_echo;
mod tls_server;
mod trace_collector;

pub use faults::Faults;
pub use retry_simulation::RetrySimulation;
pub use server::serve;
pub use tcp_echo::serve_tcp_echo;
pub use tls_server::{ServerTls, serve_tls};
pub use trace_collector::{StoredSpan, StoredTrace, serve_collector};

/// Response header naming the answering pod, on HTTP and gRPC answers.
pub const POD_HEADER: &str = "x-pod";
/// Response header naming the answering pod's `version` label.
pub const VERSION_HEADER: &str = "x-pod-version";

/// Who the workload is and how it misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// The pod's name, reported in every answer.
    pub pod: String,
    /// The pod's `version` label.
    pub version: String,
    /// The failures and delays it injects.
    pub faults: Faults,
    /// The tries of requests that ask to fail their first tries.
    pub retry_simulation: RetrySimulation,
    /// A service to call before answering an HTTP request (the middle of a chain); its
    /// failure makes the answer a 502.
    pub call: Option<client::HttpUrl>,
}
