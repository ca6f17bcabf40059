//! Sidecar injection: the pure pod mutation (shared with `mesh inject`) and the mutating
//! admission webhook that applies it to pods in namespaces labelled `mesh-injection=enabled`.
//!
//! Not built yet: this crate is a placeholder in the workspace until its issue lands.
