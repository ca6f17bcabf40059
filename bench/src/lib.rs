//! Benchmark tools for mesh (see bench/README.md): a constant-rate, coordinated-omission-safe HTTP
//! load generator, a minimal upstream server, and the report writer that `bench/run` uses to turn
//! a run's results into JSON and a markdown table.

pub mod client;
pub mod duration;
pub mod loadgen;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod timer;
pub mod upstream;
