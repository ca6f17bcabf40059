//! Benchmark tools for mesh (see bench/README.md).
