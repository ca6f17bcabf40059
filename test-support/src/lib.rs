//! mesh-test-support: fixtures the mesh's crates share in their tests, never in production.
//!
//! `fake_apiserver` (feature `fake-apiserver`) is a Kubernetes API server on loopback that the real kube-rs client talks
//! to; `requirements` is the gate of tests that need root or outside tools: skipped with the
//! reason on a laptop, failed in CI (`CI=true`), never a silent pass.

#[cfg(feature = "fake-apiserver")]
pub mod fake_apiserver;
pub mod requirements;

pub use requirements::{require_root, run_or_skip, why_not_built, why_not_root};
