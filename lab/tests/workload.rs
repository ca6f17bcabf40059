//! The built-in workload over real sockets on loopback: the HTTP/1.1, h2c and gRPC echo,
//! the TCP echo, injected faults, the client's summaries, and the `mesh-workload` binary.

#[path = "workload/client.rs"]
mod client;
#[path = "workload/grpc.rs"]
mod grpc;
#[path = "workload/http.rs"]
mod http_echo;
#[path = "workload/process.rs"]
mod process;
#[path = "workload/support.rs"]
mod support;
#[path = "workload/tcp.rs"]
mod tcp;
