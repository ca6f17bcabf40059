//! A proxy's config split into named, versioned resources per type, as the server sends them.
//!
//! A resource's version is a hash of its encoding. Protobuf maps (endpoint labels, header
//! changes) encode in hash-map order, so equal content may hash differently; `same_content`
//! falls back to comparing the messages, and the server keeps the version a proxy already has.

use std::{collections::BTreeMap, sync::Arc};

use mesh_proto::{config::v1 as pb, discovery::v1 as wire};
use pbjson_types::Any;
use prost::Message;
use xxhash_rust::xxh64::{Xxh64, xxh64};

use super::ResourceType;

/// Resources of one type by name.
pub(crate) type ResourceSet = BTreeMap<String, Arc<Resource>>;

/// One named resource with its content-hash version.
#[derive(Debug)]
pub(crate) struct Resource {
    /// The resource as it travels: name, version and encoded body.
    wire: wire::Resource,
    content: Content,
}

/// The decoded message, for comparing content when versions differ.
#[derive(Debug, PartialEq)]
enum Content {
    Cluster(pb::Cluster),
    Endpoints(pb::ClusterLoadAssignment),
    Listener(pb::Listener),
    Route(pb::RouteConfig),
}

/// One proxy's config as resources, per type.
#[derive(Debug, Default)]
pub(crate) struct ProxyResources {
    sets: [ResourceSet; 4],
}

// === impl Resource ===

impl Resource {
    fn new(name: String, ty: ResourceType, content: Content) -> Self {
        let body = match &content {
            Content::Cluster(m) => m.encode_to_vec(),
            Content::Endpoints(m) => m.encode_to_vec(),
            Content::Listener(m) => m.encode_to_vec(),
            Content::Route(m) => m.encode_to_vec(),
        };
        let version = format!("{:016x}", xxh64(&body, 0));
        Resource {
            wire: wire::Resource {
                name,
                version,
                resource: Some(Any {
                    type_url: ty.type_url().to_owned(),
                    value: body.into(),
                }),
            },
            content,
        }
    }

    /// The content-hash version.
    pub(crate) fn version(&self) -> &str {
        &self.wire.version
    }

    /// The resource as the wire carries it.
    pub(crate) fn wire(&self) -> &wire::Resource {
        &self.wire
    }

    /// Whether both carry the same content (the same version, or equal messages).
    pub(crate) fn same_content(&self, other: &Resource) -> bool {
        self.version() == other.version() || self.content == other.content
    }
}

// === impl ProxyResources ===

impl ProxyResources {
    /// Splits a whole config into resources: clusters, endpoints (named by cluster),
    /// listeners and route configs by name. A name given twice keeps its first resource.
    pub(crate) fn split(config: &pb::ProxyConfig) -> Self {
        let mut resources = ProxyResources::default();
        for cluster in &config.clusters {
            resources.insert(
                ResourceType::Cluster,
                &cluster.name,
                Content::Cluster(cluster.clone()),
            );
        }
        for assignment in &config.endpoints {
            resources.insert(
                ResourceType::Endpoints,
                &assignment.cluster,
                Content::Endpoints(assignment.clone()),
            );
        }
        for listener in &config.listeners {
            resources.insert(
                ResourceType::Listener,
                &listener.name,
                Content::Listener(listener.clone()),
            );
        }
        for route in &config.routes {
            resources.insert(
                ResourceType::Route,
                &route.name,
                Content::Route(route.clone()),
            );
        }
        resources
    }

    fn insert(&mut self, ty: ResourceType, name: &str, content: Content) {
        let set = &mut self.sets[ty.index()];
        if set.contains_key(name) {
            tracing::warn!(%ty, name, "resource name given twice; keeping the first");
            return;
        }
        let resource = Resource::new(name.to_owned(), ty, content);
        set.insert(name.to_owned(), Arc::new(resource));
    }

    /// The resources of one type.
    pub(crate) fn of(&self, ty: ResourceType) -> &ResourceSet {
        &self.sets[ty.index()]
    }
}

/// The version of a whole set of resources: a hash over their names and versions.
pub(crate) fn set_version<'a>(resources: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Xxh64::new(0);
    for (name, version) in resources {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(version.as_bytes());
        hasher.update(&[0]);
    }
    format!("{:016x}", hasher.digest())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn endpoint(address: &str, labels: &[(&str, &str)]) -> pb::Endpoint {
        pb::Endpoint {
            address: address.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    fn config(endpoints: Vec<pb::Endpoint>) -> pb::ProxyConfig {
        pb::ProxyConfig {
            clusters: vec![pb::Cluster {
                name: "web".into(),
                ..Default::default()
            }],
            endpoints: vec![pb::ClusterLoadAssignment {
                cluster: "web".into(),
                endpoints,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn split_names_resources_and_versions_follow_content() {
        let a = ProxyResources::split(&config(vec![endpoint("10.0.0.1:80", &[])]));
        let b = ProxyResources::split(&config(vec![endpoint("10.0.0.2:80", &[])]));
        let cluster = |r: &ProxyResources| r.of(ResourceType::Cluster)["web"].clone();
        let endpoints = |r: &ProxyResources| r.of(ResourceType::Endpoints)["web"].clone();
        assert_eq!(cluster(&a).version(), cluster(&b).version());
        assert_ne!(endpoints(&a).version(), endpoints(&b).version());
        assert!(!endpoints(&a).same_content(&endpoints(&b)));
        assert!(a.of(ResourceType::Listener).is_empty());
        let body = endpoints(&a).wire().resource.clone().expect("body");
        assert_eq!(body.type_url, ResourceType::Endpoints.type_url());
        let decoded = pb::ClusterLoadAssignment::decode(body.value).expect("decodes");
        assert_eq!(decoded.endpoints[0].address, "10.0.0.1:80");
    }

    #[test]
    fn equal_maps_are_the_same_content_whatever_their_order() {
        let labels: Vec<(String, String)> =
            (0..16).map(|i| (format!("k{i}"), "v".into())).collect();
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let first = ProxyResources::split(&config(vec![endpoint("10.0.0.1:80", &labels)]));
        let mut versions_differed = false;
        for _ in 0..8 {
            let again = ProxyResources::split(&config(vec![endpoint("10.0.0.1:80", &labels)]));
            let (x, y) = (
                &first.of(ResourceType::Endpoints)["web"],
                &again.of(ResourceType::Endpoints)["web"],
            );
            versions_differed |= x.version() != y.version();
            assert!(x.same_content(y));
        }
        // The premise: hash maps with their own random keys encode in different orders.
        assert!(versions_differed);
    }

    #[test]
    fn a_duplicate_name_keeps_the_first() {
        let mut config = config(vec![]);
        config.clusters.push(pb::Cluster {
            name: "web".into(),
            ring_size: 7,
            ..Default::default()
        });
        let resources = ProxyResources::split(&config);
        assert_eq!(resources.of(ResourceType::Cluster).len(), 1);
        let first = ProxyResources::split(&self::config(vec![]));
        assert_eq!(
            resources.of(ResourceType::Cluster)["web"].version(),
            first.of(ResourceType::Cluster)["web"].version()
        );
    }

    #[test]
    fn set_version_depends_on_names_and_versions() {
        let v = set_version([("a", "1"), ("b", "2")]);
        assert_eq!(v, set_version([("a", "1"), ("b", "2")]));
        assert_ne!(v, set_version([("a", "1"), ("b", "3")]));
        assert_ne!(v, set_version([("a", "1")]));
        assert_ne!(set_version([("ab", "")]), set_version([("a", "b")]));
    }
}
