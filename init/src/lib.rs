//! `mesh-init`: builds the nat-table rules (`MESH_INBOUND`, `MESH_IN_REDIRECT`, `MESH_OUTPUT`,
//! `MESH_REDIRECT`) that capture a pod's traffic into its sidecar, and applies them atomically.
//!
//! Not built yet: this crate is a placeholder in the workspace until issue #3 lands.
