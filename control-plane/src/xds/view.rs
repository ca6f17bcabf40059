//! What one proxy has of one resource type, and what to send to bring it to a desired set.

use std::{collections::BTreeMap, sync::Arc};

use super::resources::{Resource, ResourceSet, set_version};

/// A resource the proxy has.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    /// Sent on this stream.
    Sent(Arc<Resource>),
    /// Reported by the proxy when it (re)subscribed on a delta stream: only the version is known.
    Reported(String),
}

/// Everything the proxy has of one type, by name.
pub(crate) type View = Arc<BTreeMap<String, Known>>;

/// The change that brings a view to a desired set.
#[derive(Debug)]
pub(crate) struct Update {
    /// The view after the change. Unchanged resources keep the version the proxy has.
    pub(crate) view: View,
    /// Resources to send: new or changed.
    pub(crate) changed: Vec<Arc<Resource>>,
    /// Names to drop.
    pub(crate) removed: Vec<String>,
}

impl Known {
    fn version(&self) -> &str {
        match self {
            Known::Sent(resource) => resource.version(),
            Known::Reported(version) => version,
        }
    }
}

/// Compares what the proxy has with what it should have.
pub(crate) fn update(current: &BTreeMap<String, Known>, desired: &ResourceSet) -> Update {
    let mut changed = Vec::new();
    let view = desired
        .iter()
        .map(|(name, new)| {
            let known = match current.get(name) {
                Some(Known::Sent(old)) if old.version() == new.version() => {
                    Known::Sent(old.clone())
                }
                Some(Known::Reported(version)) if version == new.version() => {
                    Known::Reported(version.clone())
                }
                _ => {
                    changed.push(new.clone());
                    Known::Sent(new.clone())
                }
            };
            (name.clone(), known)
        })
        .collect();
    let removed = current
        .keys()
        .filter(|name| !desired.contains_key(*name))
        .cloned()
        .collect();
    Update {
        view: Arc::new(view),
        changed,
        removed,
    }
}

impl Update {
    /// Whether the proxy already has the desired set.
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }

    /// The version of the whole set after the change.
    pub(crate) fn version(&self) -> String {
        set_version(
            self.view
                .iter()
                .map(|(name, known)| (name.as_str(), known.version())),
        )
    }

    /// Every resource of the view that was sent on this stream, for a state-of-the-world
    /// response (views of such streams hold nothing else).
    pub(crate) fn sent(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.view.values().filter_map(|known| match known {
            Known::Sent(resource) => Some(resource),
            Known::Reported(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1::{Cluster, ProxyConfig};

    use super::*;
    use crate::xds::{ResourceType, resources::ProxyResources};

    fn clusters(names: &[(&str, u32)]) -> ResourceSet {
        let config = ProxyConfig {
            clusters: names
                .iter()
                .map(|(name, ring_size)| Cluster {
                    name: (*name).into(),
                    ring_size: *ring_size,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        ProxyResources::split(&config)
            .of(ResourceType::Cluster)
            .clone()
    }

    fn names(resources: &[Arc<Resource>]) -> Vec<&str> {
        resources.iter().map(|r| r.wire().name.as_str()).collect()
    }

    #[test]
    fn only_added_and_changed_resources_are_sent_and_missing_ones_removed() {
        let first = update(&BTreeMap::new(), &clusters(&[("a", 1), ("b", 1)]));
        assert_eq!(names(&first.changed), ["a", "b"]);
        let second = update(&first.view, &clusters(&[("b", 2), ("c", 1)]));
        assert_eq!(names(&second.changed), ["b", "c"]);
        assert_eq!(second.removed, ["a"]);
        let third = update(&second.view, &clusters(&[("b", 2), ("c", 1)]));
        assert!(third.is_empty());
        assert_eq!(third.version(), second.version());
        assert_ne!(second.version(), first.version());
        assert_eq!(third.sent().count(), 2);
    }

    #[test]
    fn reported_versions_that_match_are_not_sent_again() {
        let desired = clusters(&[("a", 1), ("b", 1)]);
        let reported: BTreeMap<String, Known> = [
            (
                "a".to_owned(),
                Known::Reported(desired["a"].version().to_owned()),
            ),
            ("b".to_owned(), Known::Reported("old".to_owned())),
            ("gone".to_owned(), Known::Reported("old".to_owned())),
        ]
        .into();
        let update = update(&reported, &desired);
        assert_eq!(names(&update.changed), ["b"]);
        assert_eq!(update.removed, ["gone"]);
        let sent_view = self::update(&BTreeMap::new(), &desired);
        assert_eq!(update.version(), sent_view.version());
    }
}
