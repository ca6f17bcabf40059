//! The mesh control plane: watches Kubernetes (or a folder of manifests), translates Services,
//! Istio and Gateway API resources into proxy config, pushes it over the discovery API with
//! ACK/NACK, and acts as the mesh's certificate authority.
//!
//! Being built (issue #4): `node` describes a connected proxy; translation, sources and the
//! discovery server arrive module by module.

pub mod analyze;
pub mod folder;
pub mod istio;
pub mod kube_source;
pub mod node;
pub mod store;
pub mod translate;
pub mod xds;
