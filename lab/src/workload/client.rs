//! The workload's client side, run inside a pod: sends requests to a Service or a pod over
//! HTTP/1.1, HTTP/2 (h2c), gRPC or plain TCP, with concurrent workers each holding its own
//! connection, and summarises how they went and which pods and versions answered.
//!
//! HTTP and gRPC go through hyper's connection-level clients, one request at a time per
//! connection, so that the connection (and with it the pod behind a Service) is the
//! client's choice: kept per worker, or new for every request.

mod chain;
mod connection;
mod error;
mod grpc_call;
mod http_call;
mod request;
mod runner;
mod summary;
mod target;
mod tcp_call;

use http::HeaderMap;

pub use chain::call_once;
pub use error::ClientError;
pub use grpc_call::{GrpcPlan, call_grpc};
pub use http_call::{HttpPlan, call_http};
pub use runner::Load;
pub use summary::Summary;
pub use target::{HttpUrl, Target};
pub use tcp_call::{TcpPlan, call_tcp};

/// The value of the header `name` as text, when there is one.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
