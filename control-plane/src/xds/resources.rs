//! A proxy's config split into named, versioned resources per type, as the server sends them.
//!
//! A resource's version is a hash of its encoding, which is deterministic (the config model's
//! maps are sorted): equal content gets equal versions, across snapshots, proxies and
//! control-plane restarts.

use std::{collections::BTreeMap, sync::Arc};

use mesh_proto::{config::v1 as pb, discovery::v1 as wire};
use pbjson_types::Any;
use prost::Message;
use xxhash_rust::xxh64::{Xxh64, xxh64};

use super::ResourceType;

/// The resources of one type by name, and the version of the whole set.
#[derive(Debug, Default)]
pub(crate) struct ResourceSet {
    resources: BTreeMap<String, Arc<Resource>>,
    version: String,
}

/// One named resource with its content-hash version.
#[derive(Debug)]
pub(crate) struct Resource {
    /// The resource as it travels: name, version and encoded body.
    wire: wire::Resource,
}

/// One proxy's config as resources, per type.
#[derive(Debug)]
pub(crate) struct ProxyResources {
    sets: [Arc<ResourceSet>; 5],
}

// === impl Resource ===

impl Resource {
    fn new(name: String, ty: ResourceType, body: Vec<u8>) -> Self {
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
}

// === impl ResourceSet ===

impl ResourceSet {
    fn new(resources: BTreeMap<String, Arc<Resource>>) -> Self {
        let version = set_version(
            resources
                .iter()
                .map(|(name, r)| (name.as_str(), r.version())),
        );
        ResourceSet { resources, version }
    }

    /// A hash over the names and versions of the resources.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The resource named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.resources.get(name)
    }

    /// Every resource, by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Resource>)> {
        self.resources.iter().map(|(name, r)| (name.as_str(), r))
    }
}

// === impl ProxyResources ===

impl ProxyResources {
    /// Splits a whole config into resources: clusters, endpoints (named by cluster),
    /// listeners, route configs and telemetry by name. A name given twice keeps its first resource.
    pub(crate) fn split(config: &pb::ProxyConfig) -> Self {
        let clusters = config.clusters.iter().map(|c| {
            let body = Message::encode_to_vec(c);
            (c.name.as_str(), body)
        });
        let endpoints = config.endpoints.iter().map(|e| {
            let body = Message::encode_to_vec(e);
            (e.cluster.as_str(), body)
        });
        let listeners = config.listeners.iter().map(|l| {
            let body = Message::encode_to_vec(l);
            (l.name.as_str(), body)
        });
        let routes = config.routes.iter().map(|r| {
            let body = Message::encode_to_vec(r);
            (r.name.as_str(), body)
        });
        let telemetry = config.telemetry.iter().map(|t| {
            let body = Message::encode_to_vec(t);
            (t.name.as_str(), body)
        });
        ProxyResources {
            sets: [
                set_of(ResourceType::Cluster, clusters),
                set_of(ResourceType::Endpoints, endpoints),
                set_of(ResourceType::Listener, listeners),
                set_of(ResourceType::Route, routes),
                set_of(ResourceType::Telemetry, telemetry),
            ],
        }
    }

    /// The resources of one type.
    pub(crate) fn of(&self, ty: ResourceType) -> &Arc<ResourceSet> {
        &self.sets[ty.index()]
    }
}

/// The set of `ty` made of named bodies; a name given twice keeps its first body.
fn set_of<'a>(
    ty: ResourceType,
    bodies: impl Iterator<Item = (&'a str, Vec<u8>)>,
) -> Arc<ResourceSet> {
    let mut resources = BTreeMap::new();
    for (name, body) in bodies {
        if resources.contains_key(name) {
            tracing::warn!(%ty, name, "resource name given twice; keeping the first");
            continue;
        }
        let resource = Resource::new(name.to_owned(), ty, body);
        resources.insert(name.to_owned(), Arc::new(resource));
    }
    Arc::new(ResourceSet::new(resources))
}

/// The version of a whole set of resources: a hash over their names and versions.
fn set_version<'a>(resources: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
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
    use super::*;

    fn endpoint(address: &str, labels: &[(&str, &str)]) -> pb::Endpoint {
        pb::Endpoint {
            address: address.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
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
        let get = |r: &ProxyResources, ty| r.of(ty).get("web").expect("web").clone();
        let cluster = |r: &ProxyResources| get(r, ResourceType::Cluster);
        let endpoints = |r: &ProxyResources| get(r, ResourceType::Endpoints);
        assert_eq!(cluster(&a).version(), cluster(&b).version());
        assert_ne!(endpoints(&a).version(), endpoints(&b).version());
        assert_eq!(a.of(ResourceType::Listener).iter().count(), 0);
        assert_eq!(
            a.of(ResourceType::Cluster).version(),
            b.of(ResourceType::Cluster).version()
        );
        assert_ne!(
            a.of(ResourceType::Endpoints).version(),
            b.of(ResourceType::Endpoints).version()
        );
        let body = endpoints(&a).wire().resource.clone().expect("body");
        assert_eq!(body.type_url, ResourceType::Endpoints.type_url());
        let decoded = pb::ClusterLoadAssignment::decode(body.value).expect("decodes");
        assert_eq!(decoded.endpoints[0].address, "10.0.0.1:80");
    }

    #[test]
    fn equal_maps_get_equal_versions_whatever_their_order() {
        let labels: Vec<(String, String)> =
            (0..16).map(|i| (format!("k{i}"), "v".into())).collect();
        let forward: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let backward: Vec<(&str, &str)> = forward.iter().rev().copied().collect();
        let version = |labels: &[(&str, &str)]| {
            let split = ProxyResources::split(&config(vec![endpoint("10.0.0.1:80", labels)]));
            split.of(ResourceType::Endpoints).version().to_owned()
        };
        assert_eq!(version(&forward), version(&backward));
        assert_ne!(version(&forward), version(&forward[1..]));
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
        let first = ProxyResources::split(&self::config(vec![]));
        assert_eq!(
            resources.of(ResourceType::Cluster).version(),
            first.of(ResourceType::Cluster).version()
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
