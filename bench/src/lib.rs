//! Benchmark tools for mesh (see bench/README.md): a constant-rate, coordinated-omission-safe HTTP
//! load generator, a minimal upstream server, and the report writer that `bench/run` uses to turn
//! a run's results into JSON and a markdown table; and the control-plane benchmark.

pub mod client;
pub mod control_plane;
pub mod duration;
pub mod loadgen;
pub mod report;
pub mod schedule;
#[path = "../../control-plane/tests/xds/sim.rs"]
pub mod sim_proxy;
pub mod stats;
pub mod timer;
pub mod upstream;
