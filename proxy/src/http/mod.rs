//! HTTP proxying: serving client connections (HTTP/1.1 and HTTP/2), routing each request and
//! forwarding it over pooled upstream connections with bodies streamed both ways.

mod body;
mod error;
mod forward;
mod head_timeout;
mod headers;
mod mirror;
mod pool;
mod replay;
mod retry;
mod server;
mod tries;

pub use body::{Body, full};
pub use error::{UpstreamError, X_MESH_ERROR, X_MESH_OVERLOADED, local_response};
pub use forward::{HttpConn, HttpTarget, Inbound, Unrouted};
pub use pool::{
    ConnectSettings, Keepalive, Pools, UpstreamBody, UpstreamVersion, connect_tcp, connect_upstream,
};
pub use replay::{REPLAY_LIMIT, ReplayBody, RequestBody};
pub use retry::{DEFAULT_POLICY, RetryBudget, RetryPolicy};
pub use server::serve_connection;

/// HTTP/2 flow-control window per stream: bounds what one stream can make the proxy buffer.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// HTTP/2 flow-control window per connection.
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Any error a body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
