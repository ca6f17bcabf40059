//! End-to-end suites that cross crates: lab scenarios in `lab/` (real network namespaces,
//! `mesh-init`'s rules, the sidecars from the injector, the control plane as a pod, real
//! traffic), run by `cargo nextest` with the workspace's binaries; the chart checks in `chart/`
//! are Python, run by `scripts/chart-test`. The crate itself holds no code.
