//! Per proxy and resource type: the version the control plane sent, the version the proxy
//! ACKed and its last NACK. `SyncStatus` is the snapshot that `/debug/syncz` serves and
//! `mesh proxy-status` prints (SYNCED / NOT SENT / STALE).

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::{Deserialize, Serialize};

use super::ResourceType;
use crate::node::ProxyNode;

/// Every connected proxy's sync state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// One entry per open stream, ordered by proxy id.
    pub proxies: Vec<ProxySync>,
}

/// One proxy's sync state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxySync {
    /// The proxy's id, `<pod>.<namespace>` for sidecars.
    pub id: String,
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
    /// The proxy's version string.
    pub proxy_version: String,
    /// Whether the proxy uses the delta (incremental) stream.
    pub delta: bool,
    /// The snapshot generation last pushed to it (0 before the first).
    pub generation: u64,
    /// Per resource type, in push order.
    pub types: Vec<TypeSync>,
}

/// What one proxy has of one resource type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeSync {
    /// The resource type.
    #[serde(rename = "type")]
    pub resource_type: ResourceType,
    /// SYNCED, NOT SENT or STALE.
    pub state: SyncState,
    /// The version last sent.
    pub sent: Option<String>,
    /// The version last ACKed.
    pub acked: Option<String>,
    /// The last rejection, kept until a later version is ACKed.
    pub nack: Option<Nack>,
}

/// Whether a proxy runs what the control plane last sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// The proxy ACKed the last response sent.
    #[serde(rename = "SYNCED")]
    Synced,
    /// Nothing of this type was sent yet.
    #[serde(rename = "NOT SENT")]
    NotSent,
    /// The last response sent is not (yet) ACKed: in flight, or NACKed.
    #[serde(rename = "STALE")]
    Stale,
}

/// A rejected version and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nack {
    /// The version the proxy rejected.
    pub version: String,
    /// The proxy's error detail.
    pub error: String,
}

/// Tracks every open stream; the server's source of `SyncStatus`.
#[derive(Debug, Default)]
pub(crate) struct SyncTracker {
    streams: Mutex<BTreeMap<u64, Tracked>>,
    next_id: AtomicU64,
}

/// One open stream: the proxy's node metadata and its sync state.
#[derive(Debug)]
struct Tracked {
    node: ProxyNode,
    sync: Arc<Mutex<ProxySync>>,
}

/// One stream's entry in the tracker, removed when dropped.
pub(crate) struct Registration {
    tracker: Arc<SyncTracker>,
    id: u64,
    entry: Arc<Mutex<ProxySync>>,
}

// === impl SyncStatus ===

impl SyncStatus {
    /// The entries for the proxy `id` (more than one while a reconnect replaces a stream).
    pub fn proxy(&self, id: &str) -> impl Iterator<Item = &ProxySync> {
        self.proxies.iter().filter(move |p| p.id == id)
    }
}

// === impl ProxySync ===

impl ProxySync {
    /// The sync state of one resource type.
    pub fn of(&self, ty: ResourceType) -> Option<&TypeSync> {
        self.types.iter().find(|t| t.resource_type == ty)
    }

    /// Whether every type was sent and ACKed.
    pub fn is_synced(&self) -> bool {
        self.types.iter().all(|t| t.state == SyncState::Synced)
    }
}

// === impl TypeSync ===

impl TypeSync {
    fn new(resource_type: ResourceType) -> Self {
        TypeSync {
            resource_type,
            state: SyncState::NotSent,
            sent: None,
            acked: None,
            nack: None,
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncState::Synced => "SYNCED",
            SyncState::NotSent => "NOT SENT",
            SyncState::Stale => "STALE",
        })
    }
}

// === impl SyncTracker ===

impl SyncTracker {
    /// Adds a stream for `node`.
    pub(crate) fn register(self: &Arc<Self>, node: &ProxyNode, delta: bool) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Mutex::new(ProxySync {
            id: node.id.clone(),
            pod: node.pod.clone(),
            namespace: node.namespace.clone(),
            proxy_version: node.proxy_version.clone(),
            delta,
            generation: 0,
            types: ResourceType::ALL.map(TypeSync::new).into(),
        }));
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Tracked {
                    node: node.clone(),
                    sync: entry.clone(),
                },
            );
        Registration {
            tracker: self.clone(),
            id,
            entry,
        }
    }

    /// Every open stream's state, ordered by proxy id.
    pub(crate) fn status(&self) -> SyncStatus {
        let entries: Vec<_> = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|t| t.sync.clone())
            .collect();
        let mut proxies: Vec<ProxySync> = entries
            .iter()
            .map(|e| e.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect();
        proxies.sort_by(|a, b| a.id.cmp(&b.id));
        SyncStatus { proxies }
    }

    /// The node metadata of the proxy `id` (its latest stream while a reconnect replaces one).
    pub(crate) fn node(&self, id: &str) -> Option<ProxyNode> {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .rev()
            .find(|t| t.node.id == id)
            .map(|t| t.node.clone())
    }
}

// === impl Registration ===

impl Registration {
    fn update(&self, ty: ResourceType, change: impl FnOnce(&mut TypeSync)) {
        let mut entry = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut entry.types[ty.index()]);
    }

    /// A snapshot generation was pushed.
    pub(crate) fn pushed_generation(&self, generation: u64) {
        self.entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation = generation;
    }

    /// `version` of `ty` was sent: stale until the proxy answers.
    pub(crate) fn sent(&self, ty: ResourceType, version: &str) {
        self.update(ty, |s| {
            s.sent = Some(version.to_owned());
            s.state = SyncState::Stale;
        });
    }

    /// The proxy ACKed `version` of `ty`, the last one sent.
    pub(crate) fn acked(&self, ty: ResourceType, version: &str) {
        self.update(ty, |s| {
            s.acked = Some(version.to_owned());
            s.state = SyncState::Synced;
            s.nack = None;
        });
    }

    /// The proxy rejected `version` of `ty`.
    pub(crate) fn nacked(&self, ty: ResourceType, version: &str, error: &str) {
        self.update(ty, |s| {
            s.state = SyncState::Stale;
            s.nack = Some(Nack {
                version: version.to_owned(),
                error: error.to_owned(),
            })
        });
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tracker
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_sent_acked_and_nacked_versions() {
        let tracker = Arc::new(SyncTracker::default());
        let node = ProxyNode {
            id: "web-1.shop".into(),
            ..Default::default()
        };
        let stream = tracker.register(&node, false);
        let state = |ty| {
            let status = tracker.status();
            let proxy = status
                .proxy("web-1.shop")
                .next()
                .expect("registered")
                .clone();
            proxy.of(ty).expect("every type").clone()
        };
        assert_eq!(state(ResourceType::Cluster).state, SyncState::NotSent);

        stream.sent(ResourceType::Cluster, "v1");
        assert_eq!(state(ResourceType::Cluster).state, SyncState::Stale);
        stream.acked(ResourceType::Cluster, "v1");
        assert_eq!(state(ResourceType::Cluster).state, SyncState::Synced);

        stream.sent(ResourceType::Cluster, "v2");
        stream.nacked(ResourceType::Cluster, "v2", "bad cluster");
        let cds = state(ResourceType::Cluster);
        assert_eq!(cds.state, SyncState::Stale);
        assert_eq!(cds.acked.as_deref(), Some("v1"));
        assert_eq!(cds.nack.expect("nack kept").error, "bad cluster");
        assert_eq!(state(ResourceType::Listener).state, SyncState::NotSent);

        // Sending back the ACKed version is still in flight until the proxy answers.
        stream.sent(ResourceType::Cluster, "v1");
        assert_eq!(state(ResourceType::Cluster).state, SyncState::Stale);
        stream.acked(ResourceType::Cluster, "v1");
        let cds = state(ResourceType::Cluster);
        assert_eq!((cds.state, cds.nack), (SyncState::Synced, None));

        drop(stream);
        assert!(tracker.status().proxies.is_empty());
    }

    #[test]
    fn a_proxy_node_is_found_by_id_while_its_stream_is_open() {
        let tracker = Arc::new(SyncTracker::default());
        let node = |ip: &str| ProxyNode {
            id: "web-1.shop".into(),
            ip: ip.into(),
            ..Default::default()
        };
        let old = tracker.register(&node("10.0.0.1"), false);
        let new = tracker.register(&node("10.0.0.2"), true);
        assert_eq!(
            tracker.node("web-1.shop").map(|n| n.ip),
            Some("10.0.0.2".into())
        );
        drop(new);
        assert_eq!(
            tracker.node("web-1.shop").map(|n| n.ip),
            Some("10.0.0.1".into())
        );
        drop(old);
        assert_eq!(tracker.node("web-1.shop"), None);
    }

    #[test]
    fn json_shows_the_states_as_proxy_status_prints_them() {
        let json = serde_json::to_value(TypeSync::new(ResourceType::Endpoints)).expect("json");
        assert_eq!(json["type"], "EDS");
        assert_eq!(json["state"], "NOT SENT");
    }
}
