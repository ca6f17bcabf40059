//! The mesh control plane: watches Kubernetes (or a folder of manifests), translates Services,
//! Istio and Gateway API resources into proxy config, pushes it over the discovery API with
//! ACK/NACK, and acts as the mesh's certificate authority.
//!
//! Not built yet: this crate is a placeholder in the workspace until issue #4 lands.
