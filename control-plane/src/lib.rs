//! The mesh control plane: watches Kubernetes (or a folder of manifests), translates Services,
//! Istio and Gateway API resources into proxy config, pushes it over the discovery API with
//! ACK/NACK, and acts as the mesh's certificate authority.
//!
//! Sources (`folder`, `kube_source`) fill the `store`; `publish` debounces its changes and
//! publishes snapshots whose per-proxy configs `translate` computes (keyed by `node`); `xds`
//! pushes them with ACK/NACK; `monitoring` serves 15014; `analyze` checks manifests; in a
//! cluster, `feedback` reports problems as Events and Gateway API status.

pub mod analyze;
pub mod ca;
pub mod feedback;
pub mod folder;
pub mod gateway_workload;
pub mod injection;
pub mod istio;
pub mod kube_source;
pub mod monitoring;
pub mod node;
pub mod publish;
pub mod store;
pub mod translate;
pub mod xds;
