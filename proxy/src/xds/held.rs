//! What the proxy holds from the control plane: per type, the resources of the last applied
//! response, kept encoded (compact, and shared with the snapshot built from them); and the
//! whole config they make.
//!
//! Like Envoy, the proxy lets references settle across types: endpoints of a cluster it does
//! not (yet, or any longer) have are kept but not applied, and a listener whose route config or
//! TCP clusters have not arrived yet waits ("warming") instead of failing the push that carried
//! it. Any other problem fails the response, which is NACKed.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use mesh_proto::config::v1 as pb;
use prost::Message;

use super::{ResourceType, session::Update};
use crate::config::EncodedConfig;

/// Every type's resources; cloning shares them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    clusters: Arc<TypeCache>,
    endpoints: Arc<TypeCache>,
    listeners: Arc<TypeCache>,
    routes: Arc<TypeCache>,
    telemetry: Arc<TypeCache>,
}

/// The resources of one type, by name.
#[derive(Debug, Default)]
struct TypeCache {
    resources: BTreeMap<String, HeldResource>,
    /// The version of the last applied response; `None` before the first.
    version: Option<String>,
}

/// One resource: its version and encoded body, checked to decode as its type.
#[derive(Debug, Clone)]
struct HeldResource {
    version: String,
    body: Bytes,
}

/// A config assembled from what is held.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub(crate) config: EncodedConfig,
    /// Listeners left out until what they name arrives.
    pub(crate) warming: Vec<String>,
}

// === impl Held ===

impl Held {
    /// Whether every type has arrived at least once.
    pub(crate) fn is_complete(&self) -> bool {
        ResourceType::ALL
            .into_iter()
            .all(|ty| self.version(ty).is_some())
    }

    /// The version of `ty` last applied.
    pub(crate) fn version(&self, ty: ResourceType) -> Option<&str> {
        self.cache(ty).version.as_deref()
    }

    /// Name to version of every resource of `ty` (what a delta stream reports on reconnect).
    pub(crate) fn resource_versions(&self, ty: ResourceType) -> BTreeMap<String, String> {
        self.cache(ty)
            .resources
            .iter()
            .map(|(name, r)| (name.clone(), r.version.clone()))
            .collect()
    }

    /// What would be held after `update`, and whether its resources differ from now (a
    /// response that only repeats what is held needs no new config). Fails on a resource that
    /// does not decode as its type or names itself otherwise.
    pub(crate) fn updated(&self, update: &Update) -> Result<(Held, bool), String> {
        let mut next = self.clone();
        let slot = match update.ty {
            ResourceType::Cluster => &mut next.clusters,
            ResourceType::Endpoints => &mut next.endpoints,
            ResourceType::Listener => &mut next.listeners,
            ResourceType::Route => &mut next.routes,
            ResourceType::Telemetry => &mut next.telemetry,
        };
        let cache = slot.updated(update)?;
        let changed = slot.version.is_none() || !slot.same_resources(&cache);
        *slot = Arc::new(cache);
        Ok((next, changed))
    }

    /// The config the held resources make, with unresolved references left out.
    pub(crate) fn assemble(&self) -> Assembled {
        let known_clusters = &self.clusters.resources;
        let known_routes = &self.routes.resources;
        let mut warming = Vec::new();
        let mut listeners = Vec::new();
        for (name, held) in &self.listeners.resources {
            // Checked to decode when it arrived.
            let listener = pb::Listener::decode(held.body.clone()).unwrap_or_default();
            let route_known = listener.route_config.is_empty()
                || known_routes.contains_key(&listener.route_config);
            let mut tcp_clusters = Vec::new();
            if let Some(tcp) = &listener.tcp {
                collect_tcp_clusters(tcp, &mut tcp_clusters);
            }
            if route_known && tcp_clusters.iter().all(|c| known_clusters.contains_key(*c)) {
                listeners.push(held.body.clone());
            } else {
                warming.push(name.clone());
            }
        }
        Assembled {
            config: EncodedConfig {
                listeners,
                routes: self.routes.bodies().collect(),
                clusters: self.clusters.bodies().collect(),
                endpoints: self
                    .endpoints
                    .resources
                    .iter()
                    .filter(|(cluster, _)| known_clusters.contains_key(*cluster))
                    .map(|(_, held)| held.body.clone())
                    .collect(),
                telemetry: self.telemetry.bodies().collect(),
            },
            warming,
        }
    }

    fn cache(&self, ty: ResourceType) -> &TypeCache {
        match ty {
            ResourceType::Cluster => &self.clusters,
            ResourceType::Endpoints => &self.endpoints,
            ResourceType::Listener => &self.listeners,
            ResourceType::Route => &self.routes,
            ResourceType::Telemetry => &self.telemetry,
        }
    }
}

fn collect_tcp_clusters<'a>(route: &'a pb::TcpRoute, into: &mut Vec<&'a str>) {
    into.extend(route.destinations.iter().map(|d| d.cluster.as_str()));
    for sni in &route.sni_routes {
        collect_tcp_clusters(sni, into);
    }
}

/// Checks that `body` decodes as a `ty` named `name`.
fn check(ty: ResourceType, name: &str, body: &Bytes) -> Result<(), String> {
    let own = match ty {
        ResourceType::Cluster => pb::Cluster::decode(body.clone()).map(|c| c.name),
        ResourceType::Endpoints => {
            pb::ClusterLoadAssignment::decode(body.clone()).map(|e| e.cluster)
        }
        ResourceType::Listener => pb::Listener::decode(body.clone()).map(|l| l.name),
        ResourceType::Route => pb::RouteConfig::decode(body.clone()).map(|r| r.name),
        ResourceType::Telemetry => pb::Telemetry::decode(body.clone()).map(|t| t.name),
    }
    .map_err(|e| format!("{ty} resource {name:?} does not decode: {e}"))?;
    if own != name {
        return Err(format!(
            "{ty} resource {name:?} carries the name {own:?}; a resource must be named as its body"
        ));
    }
    Ok(())
}

// === impl TypeCache ===

impl TypeCache {
    fn updated(&self, update: &Update) -> Result<Self, String> {
        let mut resources = if update.full {
            BTreeMap::new()
        } else {
            self.resources.clone()
        };
        for name in &update.removed {
            resources.remove(name);
        }
        for resource in &update.resources {
            let name = &resource.name;
            let body = resource
                .resource
                .as_ref()
                .ok_or_else(|| format!("{} resource {name:?} has no body", update.ty))?;
            if body.type_url != update.ty.type_url() {
                return Err(format!(
                    "{} resource {name:?} is a {}, not a {}",
                    update.ty,
                    body.type_url,
                    update.ty.type_url()
                ));
            }
            // A copy of its own, so a kept resource does not pin the whole response's buffer.
            let body = Bytes::copy_from_slice(&body.value);
            check(update.ty, name, &body)?;
            resources.insert(
                name.clone(),
                HeldResource {
                    version: resource.version.clone(),
                    body,
                },
            );
        }
        Ok(TypeCache {
            resources,
            version: Some(update.version.clone()),
        })
    }

    fn same_resources(&self, other: &Self) -> bool {
        self.resources.len() == other.resources.len()
            && self
                .resources
                .iter()
                .zip(&other.resources)
                .all(|((a, x), (b, y))| a == b && x.version == y.version)
    }

    fn bodies(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.resources.values().map(|r| r.body.clone())
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::discovery::v1::Resource;
    use pbjson_types::Any;

    use super::*;

    fn resource<M: Message>(ty: ResourceType, name: &str, version: &str, message: &M) -> Resource {
        Resource {
            name: name.into(),
            version: version.into(),
            resource: Some(Any {
                type_url: ty.type_url().into(),
                value: message.encode_to_vec().into(),
            }),
        }
    }

    fn full(ty: ResourceType, version: &str, resources: Vec<Resource>) -> Update {
        Update {
            ty,
            version: version.into(),
            nonce: "1".into(),
            resources,
            removed: Vec::new(),
            full: true,
        }
    }

    fn cluster(name: &str) -> Resource {
        let message = pb::Cluster {
            name: name.into(),
            ..Default::default()
        };
        resource(ResourceType::Cluster, name, "c1", &message)
    }

    fn endpoints(cluster: &str) -> Resource {
        let message = pb::ClusterLoadAssignment {
            cluster: cluster.into(),
            ..Default::default()
        };
        resource(ResourceType::Endpoints, cluster, "e1", &message)
    }

    fn listener(name: &str, route: &str) -> Resource {
        let message = pb::Listener {
            name: name.into(),
            route_config: route.into(),
            ..Default::default()
        };
        resource(ResourceType::Listener, name, "l1", &message)
    }

    fn route(name: &str) -> Resource {
        let message = pb::RouteConfig {
            name: name.into(),
            ..Default::default()
        };
        resource(ResourceType::Route, name, "r1", &message)
    }

    fn apply(held: &Held, update: Update) -> Held {
        held.updated(&update).expect("decodes").0
    }

    #[test]
    fn complete_only_once_every_type_arrived() {
        let mut held = Held::default();
        for (ty, resources) in [
            (ResourceType::Cluster, vec![cluster("web")]),
            (ResourceType::Endpoints, vec![endpoints("web")]),
            (ResourceType::Listener, vec![]),
            (ResourceType::Route, vec![]),
        ] {
            held = apply(&held, full(ty, "v1", resources));
            assert!(!held.is_complete());
        }
        held = apply(&held, full(ResourceType::Telemetry, "v1", vec![]));
        assert!(held.is_complete());
        assert_eq!(held.version(ResourceType::Cluster), Some("v1"));
    }

    #[test]
    fn listeners_wait_for_their_routes_and_endpoints_for_their_clusters() {
        let mut held = apply(
            &Held::default(),
            full(
                ResourceType::Endpoints,
                "v1",
                vec![endpoints("web"), endpoints("gone")],
            ),
        );
        held = apply(
            &held,
            full(ResourceType::Cluster, "v1", vec![cluster("web")]),
        );
        held = apply(
            &held,
            full(ResourceType::Listener, "v1", vec![listener("web", "web")]),
        );
        let assembled = held.assemble();
        assert_eq!(assembled.warming, ["web"]);
        let config = assembled.config.decode().expect("decodes");
        assert!(config.listeners.is_empty());
        let clusters: Vec<_> = config.endpoints.iter().map(|e| &e.cluster).collect();
        assert_eq!(clusters, ["web"]);

        held = apply(&held, full(ResourceType::Route, "v1", vec![route("web")]));
        let assembled = held.assemble();
        assert!(assembled.warming.is_empty());
        let config = assembled.config.decode().expect("decodes");
        assert_eq!(config.listeners[0].name, "web");
    }

    #[test]
    fn state_of_the_world_replaces_and_delta_patches() {
        let held = apply(
            &Held::default(),
            full(
                ResourceType::Cluster,
                "v1",
                vec![cluster("a"), cluster("b")],
            ),
        );
        let (sotw, changed) = held
            .updated(&full(ResourceType::Cluster, "v2", vec![cluster("c")]))
            .expect("decodes");
        assert!(changed);
        let names = |h: &Held| {
            h.resource_versions(ResourceType::Cluster)
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&sotw), ["c"]);

        let delta = Update {
            full: false,
            removed: vec!["a".into()],
            ..full(ResourceType::Cluster, "v2", vec![cluster("c")])
        };
        let (patched, _) = held.updated(&delta).expect("decodes");
        assert_eq!(names(&patched), ["b", "c"]);
    }

    #[test]
    fn a_repeat_of_what_is_held_is_no_change() {
        let update = || full(ResourceType::Cluster, "v1", vec![cluster("a")]);
        let held = apply(&Held::default(), update());
        let (_, changed) = held.updated(&update()).expect("decodes");
        assert!(!changed);
    }

    #[test]
    fn a_body_of_the_wrong_type_or_undecodable_fails_the_update() {
        let wrong = full(ResourceType::Cluster, "v1", vec![route("r")]);
        let error = Held::default().updated(&wrong).expect_err("wrong type");
        assert!(error.contains("RouteConfig"), "{error}");

        let mut garbage = cluster("a");
        if let Some(body) = garbage.resource.as_mut() {
            body.value = vec![0xff, 0xff, 0xff].into();
        }
        let error = Held::default()
            .updated(&full(ResourceType::Cluster, "v1", vec![garbage]))
            .expect_err("undecodable");
        assert!(error.contains("\"a\" does not decode"), "{error}");
    }

    #[test]
    fn a_body_named_otherwise_than_its_resource_fails_the_update() {
        let mut renamed = cluster("a");
        renamed.name = "b".into();
        let error = Held::default()
            .updated(&full(ResourceType::Cluster, "v1", vec![renamed]))
            .expect_err("misnamed");
        assert!(error.contains("\"b\" carries the name \"a\""), "{error}");
    }
}
