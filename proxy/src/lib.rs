//! The mesh-proxy sidecar.
