//! The control-plane benchmark (`mesh-cp-bench`, run by `bench/control-plane`): a generated
//! mesh as a folder of manifests, the real `mesh-control-plane` binary serving it, simulated
//! proxies over real gRPC streams timing an endpoint change, a real mesh-proxy's memory, and
//! an in-process translation timing. See bench/README.md, section "Control plane".

pub mod manifests;
pub mod monitoring;
pub mod process;
pub mod proxy_memory;
pub mod push;
pub mod results;
pub mod translation;
