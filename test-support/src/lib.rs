//! mesh-test-support: fixtures the mesh's crates share in their tests, never in production.
//!
//! `requirements` is the gate of tests that need root or outside tools: skipped with the
//! reason on a laptop, failed in CI (`CI=true`), never a silent pass. `http` is a plain
//! HTTP/1.1 GET for a server's admin, health or metrics port, `prometheus` reads back what a
//! metrics port serves, `ports` finds a free loopback port for a server started as a
//! process, and `process` kills such a process when the test ends. Behind features, so that a crate builds only what its tests use:
//! `fake_apiserver` (feature `fake-apiserver`) is a Kubernetes API server on loopback that the
//! real kube-rs client talks to; `netns` (feature `netns`) makes network namespaces removed on
//! drop and runs code inside them.

#[cfg(feature = "fake-apiserver")]
pub mod fake_apiserver;
pub mod http;
#[cfg(feature = "netns")]
pub mod netns;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod requirements;

pub use http::http_get;
pub use ports::{free_addr, free_port};
pub use process::KillOnDrop;
pub use requirements::{require_root, run_or_skip, why_not_built, why_not_root};
