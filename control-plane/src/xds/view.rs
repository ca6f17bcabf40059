//! What one proxy has of one resource type, and what to send to bring it to a desired set.

use std::{collections::BTreeMap, ops::Range, sync::Arc};

use prost::Message;

use super::resources::{Resource, ResourceSet};

/// What the proxy has of one type.
#[derive(Debug, Clone)]
pub(crate) enum View {
    /// Versions by name, as a delta proxy reported them when it (re)subscribed (nothing, for a
    /// new stream).
    Reported(Arc<BTreeMap<String, String>>),
    /// Exactly a set that was sent on this stream.
    Sent(Arc<ResourceSet>),
}

/// The change that brings a view to a desired set.
#[derive(Debug)]
pub(crate) struct Update {
    /// The desired set: what the proxy has once it applies the change.
    target: Arc<ResourceSet>,
    /// Resources to send: new or changed.
    pub(crate) changed: Vec<Arc<Resource>>,
    /// Names to drop.
    pub(crate) removed: Vec<String>,
}

impl Default for View {
    fn default() -> Self {
        View::Reported(Arc::default())
    }
}

impl View {
    fn version_of(&self, name: &str) -> Option<&str> {
        match self {
            View::Reported(versions) => versions.get(name).map(String::as_str),
            View::Sent(set) => set.get(name).map(|r| r.version()),
        }
    }

    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            View::Reported(versions) => Box::new(versions.keys().map(String::as_str)),
            View::Sent(set) => Box::new(set.iter().map(|(name, _)| name)),
        }
    }
}

/// Compares what the proxy has with what it should have; a set sent before with the same
/// version costs nothing to compare.
pub(crate) fn update(current: &View, desired: &Arc<ResourceSet>) -> Update {
    let unchanged = match current {
        View::Sent(sent) => Arc::ptr_eq(sent, desired) || sent.version() == desired.version(),
        View::Reported(_) => false,
    };
    let (changed, removed) = if unchanged {
        (Vec::new(), Vec::new())
    } else {
        let changed = desired
            .iter()
            .filter(|(name, r)| current.version_of(name) != Some(r.version()))
            .map(|(_, r)| r.clone())
            .collect();
        let removed = current
            .names()
            .filter(|name| desired.get(name).is_none())
            .map(str::to_owned)
            .collect();
        (changed, removed)
    };
    Update {
        target: desired.clone(),
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
    pub(crate) fn version(&self) -> &str {
        self.target.version()
    }

    /// Every resource of the desired set, for a state-of-the-world response.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.target.iter().map(|(_, r)| r)
    }

    /// What the proxy has once it applies the change.
    pub(crate) fn view(&self) -> View {
        View::Sent(self.target.clone())
    }

    /// The changed resources in consecutive parts of about `max_bytes` encoded each (a
    /// resource bigger than that is a part of its own); one empty part for no change.
    pub(crate) fn parts(&self, max_bytes: usize) -> Vec<Range<usize>> {
        let mut parts = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, resource) in self.changed.iter().enumerate() {
            let size = resource.wire().encoded_len();
            if i > start && bytes + size > max_bytes {
                parts.push(start..i);
                (start, bytes) = (i, 0);
            }
            bytes += size;
        }
        parts.push(start..self.changed.len());
        parts
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1::{Cluster, ProxyConfig};

    use super::*;
    use crate::xds::{ResourceType, resources::ProxyResources};

    fn clusters(names: &[(&str, u32)]) -> Arc<ResourceSet> {
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
        let first = update(&View::default(), &clusters(&[("a", 1), ("b", 1)]));
        assert_eq!(names(&first.changed), ["a", "b"]);
        let second = update(&first.view(), &clusters(&[("a", 1), ("b", 2), ("c", 1)]));
        assert_eq!(names(&second.changed), ["b", "c"]);
        let third = update(&second.view(), &clusters(&[("b", 2), ("c", 1)]));
        assert!(third.changed.is_empty());
        assert_eq!(third.removed, ["a"]);
        let fourth = update(&third.view(), &clusters(&[("b", 2), ("c", 1)]));
        assert!(fourth.is_empty());
        assert_eq!(fourth.version(), third.version());
        assert_ne!(third.version(), second.version());
        assert_eq!(fourth.all().count(), 2);
    }

    #[test]
    fn a_big_change_is_cut_into_parts_of_bounded_size() {
        let names: Vec<(String, u32)> = (0..10).map(|i| (format!("c{i}"), 1)).collect();
        let names: Vec<(&str, u32)> = names.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        let all = update(&View::default(), &clusters(&names));
        let size = all.changed[0].wire().encoded_len();
        let whole = 0..10;
        assert_eq!(all.parts(usize::MAX), [whole]);
        assert_eq!(all.parts(3 * size), [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(all.parts(1), (0..10).map(|i| i..i + 1).collect::<Vec<_>>());
        let none = update(&all.view(), &clusters(&names));
        let empty = 0..0;
        assert_eq!(none.parts(1), [empty]);
    }

    #[test]
    fn reported_versions_that_match_are_not_sent_again() {
        let desired = clusters(&[("a", 1), ("b", 1)]);
        let version = |name: &str| desired.get(name).expect("present").version().to_owned();
        let reported = View::Reported(Arc::new(
            [
                ("a".to_owned(), version("a")),
                ("b".to_owned(), "old".to_owned()),
                ("gone".to_owned(), "old".to_owned()),
            ]
            .into(),
        ));
        let update = update(&reported, &desired);
        assert_eq!(names(&update.changed), ["b"]);
        assert_eq!(update.removed, ["gone"]);

        let all_known = View::Reported(Arc::new(
            [
                ("a".to_owned(), version("a")),
                ("b".to_owned(), version("b")),
            ]
            .into(),
        ));
        assert!(self::update(&all_known, &desired).is_empty());
    }
}
