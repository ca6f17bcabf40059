//! The workload's client side, run inside a pod: sends requests to a Service or a pod over
//! HTTP/1.1, HTTP/2 (h2c), gRPC or plain TCP, with concurrent workers each holding its own
//! connection, and summarises how they went and which pods and versions answered.
//!
//! The HTTP/1.1 and HTTP/2 clients are small ones of our own (one request at a time per
//! connection): hyper's client is not among the lab's normal dependencies.

mod grpc_call;
mod h2;
mod http1;
mod http_call;
mod runner;
mod summary;
mod target;
mod tcp_call;

pub use grpc_call::{GrpcPlan, call_grpc};
pub use http_call::{HttpPlan, call_http};
pub use runner::Load;
pub use summary::Summary;
pub use target::{HttpUrl, Target};
pub use tcp_call::{TcpPlan, call_tcp};

/// Header fields as received, names in lower case.
type Fields = Vec<(String, String)>;

/// The first value of the field `name` (lower case).
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}
