//! What the discovery server pushes: the mesh's config at one moment, as a function from a
//! proxy's node metadata to that proxy's config.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use mesh_proto::config::v1::ProxyConfig;
use tokio::time::Instant;

use super::{
    resources::{ProxyResources, ResourceSet},
    view::{self, Update, View},
};
use crate::{node::ProxyNode, translate::TlsCheckRow};

/// Computes each proxy's config from the mesh's state at one moment.
pub trait ConfigSource: Send + Sync {
    /// The config `node` should run. Return the same `Arc` to proxies that share a view (and
    /// keep a reference to it): the server then splits and encodes it once per snapshot.
    fn config_for(&self, node: &ProxyNode) -> Arc<ProxyConfig>;

    /// `mesh tls-check`'s rows for `node`; empty when the source does not know them.
    fn tls_check(&self, _node: &ProxyNode) -> Vec<TlsCheckRow> {
        Vec::new()
    }
}

impl<F> ConfigSource for F
where
    F: Fn(&ProxyNode) -> Arc<ProxyConfig> + Send + Sync,
{
    fn config_for(&self, node: &ProxyNode) -> Arc<ProxyConfig> {
        self(node)
    }
}

/// The mesh's config at one moment, published to the discovery server through a
/// `tokio::sync::watch` channel. Bursts of source changes are debounced before publishing.
pub struct ConfigSnapshot {
    generation: u64,
    published: Instant,
    source: Arc<dyn ConfigSource>,
    /// Shared configs already split into resources, by address of the shared config.
    split: Mutex<HashMap<usize, Arc<SplitConfig>>>,
    /// Changes from a set sent before to a set of this snapshot, by the addresses of both:
    /// proxies with the same view share both sets, so each change is computed once.
    updates: Mutex<HashMap<(usize, usize), SharedUpdate>>,
}

/// A change shared by proxies, and the set it starts from (kept so its address, part of the
/// key, is not reused).
type SharedUpdate = (Arc<ResourceSet>, Arc<OnceLock<Arc<Update>>>);

/// A shared config and, once computed, its resources.
struct SplitConfig {
    /// Keeps the config (and so its address, the key) alive as long as the snapshot.
    _config: Arc<ProxyConfig>,
    resources: OnceLock<Arc<ProxyResources>>,
}

/// Every proxy gets the same config.
struct Uniform(Arc<ProxyConfig>);

impl ConfigSource for Uniform {
    fn config_for(&self, _: &ProxyNode) -> Arc<ProxyConfig> {
        self.0.clone()
    }
}

// === impl ConfigSnapshot ===

impl ConfigSnapshot {
    /// A snapshot numbered `generation` (1 and up, growing with every publication); `source`
    /// computes each proxy's config. Push latency is measured from this moment.
    pub fn new(generation: u64, source: Arc<dyn ConfigSource>) -> Self {
        ConfigSnapshot {
            generation,
            published: Instant::now(),
            source,
            split: Mutex::default(),
            updates: Mutex::default(),
        }
    }

    /// The same `config` for every proxy.
    pub fn uniform(generation: u64, config: ProxyConfig) -> Self {
        Self::new(generation, Arc::new(Uniform(Arc::new(config))))
    }

    /// The placeholder before the first translation (generation 0): the server pushes nothing
    /// until a real snapshot replaces it.
    pub fn pending() -> Self {
        Self::uniform(0, ProxyConfig::default())
    }

    /// The snapshot's number.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this is the placeholder before the first translation.
    pub(crate) fn is_pending(&self) -> bool {
        self.generation == 0
    }

    /// When the snapshot was made.
    pub(crate) fn published(&self) -> Instant {
        self.published
    }

    /// The config `node` should run (`/debug/config`).
    pub fn config_for(&self, node: &ProxyNode) -> Arc<ProxyConfig> {
        self.source.config_for(node)
    }

    /// What `node` sends each service port against what its servers accept (`mesh tls-check`).
    pub fn tls_check(&self, node: &ProxyNode) -> Vec<TlsCheckRow> {
        self.source.tls_check(node)
    }

    /// `node`'s config as resources; configs the source shares are split once.
    pub(crate) fn resources_for(&self, node: &ProxyNode) -> Arc<ProxyResources> {
        let config = self.source.config_for(node);
        if Arc::strong_count(&config) == 1 {
            // Made for this proxy alone: nobody else will ask for it.
            return Arc::new(ProxyResources::split(&config));
        }
        let key = Arc::as_ptr(&config) as usize;
        let cell = self
            .split
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(SplitConfig {
                    _config: config.clone(),
                    resources: OnceLock::new(),
                })
            })
            .clone();
        cell.resources
            .get_or_init(|| Arc::new(ProxyResources::split(&config)))
            .clone()
    }

    /// The change from what a proxy has (`current`) to `desired`, a set of this snapshot;
    /// computed once for every proxy that was sent the same set.
    pub(crate) fn update(&self, current: &View, desired: &Arc<ResourceSet>) -> Arc<Update> {
        let View::Sent(sent) = current else {
            return Arc::new(view::update(current, desired));
        };
        let key = (Arc::as_ptr(sent) as usize, Arc::as_ptr(desired) as usize);
        let cell = self
            .updates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| (sent.clone(), Arc::default()))
            .1
            .clone();
        cell.get_or_init(|| Arc::new(view::update(current, desired)))
            .clone()
    }
}

impl fmt::Debug for ConfigSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSnapshot")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1::Cluster;

    use super::*;
    use crate::xds::ResourceType;

    fn one_cluster(name: &str) -> ProxyConfig {
        ProxyConfig {
            clusters: vec![Cluster {
                name: name.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_shared_config_is_split_once_and_a_private_one_each_time() {
        let snapshot = ConfigSnapshot::uniform(1, one_cluster("web"));
        let a = snapshot.resources_for(&ProxyNode::default());
        let b = snapshot.resources_for(&ProxyNode::default());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.of(ResourceType::Cluster).get("web").is_some());

        let private = ConfigSnapshot::new(
            2,
            Arc::new(|node: &ProxyNode| Arc::new(one_cluster(&node.id))),
        );
        let node = ProxyNode {
            id: "a.shop".into(),
            ..Default::default()
        };
        let a = private.resources_for(&node);
        let b = private.resources_for(&node);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(a.of(ResourceType::Cluster).get("a.shop").is_some());
    }

    #[test]
    fn proxies_sent_the_same_set_share_one_update() {
        let before = ConfigSnapshot::uniform(1, one_cluster("web"));
        let after = ConfigSnapshot::uniform(2, one_cluster("api"));
        let node = ProxyNode::default();
        let sent = View::Sent(
            before
                .resources_for(&node)
                .of(ResourceType::Cluster)
                .clone(),
        );
        let desired = after.resources_for(&node).of(ResourceType::Cluster).clone();
        let a = after.update(&sent, &desired);
        let b = after.update(&sent.clone(), &desired);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.removed, ["web"]);
        let fresh = after.update(&View::default(), &desired);
        assert!(!Arc::ptr_eq(&a, &fresh));
        assert!(fresh.removed.is_empty());
    }

    #[test]
    fn only_generation_zero_is_pending() {
        assert!(ConfigSnapshot::pending().is_pending());
        assert!(!ConfigSnapshot::uniform(1, ProxyConfig::default()).is_pending());
    }
}
