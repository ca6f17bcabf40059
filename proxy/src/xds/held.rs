//! What the proxy holds from the control plane: per type, the resources of the last applied
//! response; and the whole config they make.
//!
//! Like Envoy, the proxy lets references settle across types: endpoints of a cluster it does
//! not (yet, or any longer) have are kept but not applied, and a listener whose route config or
//! TCP clusters have not arrived yet waits ("warming") instead of failing the push that carried
//! it. Any other problem fails the response, which is NACKed.

use std::{collections::BTreeMap, collections::HashSet, sync::Arc};

use mesh_proto::config::v1::{self as pb, ProxyConfig};
use prost::Message;

use super::{ResourceType, session::Update};

/// Every type's resources.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    clusters: TypeCache<pb::Cluster>,
    endpoints: TypeCache<pb::ClusterLoadAssignment>,
    listeners: TypeCache<pb::Listener>,
    routes: TypeCache<pb::RouteConfig>,
}

/// The resources of one type, by name.
#[derive(Debug, Clone)]
struct TypeCache<M> {
    resources: BTreeMap<String, HeldResource<M>>,
    /// The version of the last applied response; `None` before the first.
    version: Option<String>,
}

#[derive(Debug)]
struct HeldResource<M> {
    version: String,
    message: Arc<M>,
}

/// A config assembled from what is held.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub(crate) config: ProxyConfig,
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
        match ty {
            ResourceType::Cluster => self.clusters.version.as_deref(),
            ResourceType::Endpoints => self.endpoints.version.as_deref(),
            ResourceType::Listener => self.listeners.version.as_deref(),
            ResourceType::Route => self.routes.version.as_deref(),
        }
    }

    /// Name to version of every resource of `ty` (what a delta stream reports on reconnect).
    pub(crate) fn resource_versions(&self, ty: ResourceType) -> BTreeMap<String, String> {
        match ty {
            ResourceType::Cluster => self.clusters.resource_versions(),
            ResourceType::Endpoints => self.endpoints.resource_versions(),
            ResourceType::Listener => self.listeners.resource_versions(),
            ResourceType::Route => self.routes.resource_versions(),
        }
    }

    /// What would be held after `update`, and whether its resources differ from now (a
    /// response that only repeats what is held needs no new config). Fails on a resource that
    /// does not decode as its type.
    pub(crate) fn updated(&self, update: &Update) -> Result<(Held, bool), String> {
        let mut next = self.clone();
        let changed = match update.ty {
            ResourceType::Cluster => replace(&mut next.clusters, update)?,
            ResourceType::Endpoints => replace(&mut next.endpoints, update)?,
            ResourceType::Listener => replace(&mut next.listeners, update)?,
            ResourceType::Route => replace(&mut next.routes, update)?,
        };
        Ok((next, changed))
    }

    /// The config the held resources make, with unresolved references left out.
    pub(crate) fn assemble(&self) -> Assembled {
        let clusters: Vec<pb::Cluster> = self.clusters.messages().cloned().collect();
        let known_clusters: HashSet<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        let routes: Vec<pb::RouteConfig> = self.routes.messages().cloned().collect();
        let known_routes: HashSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        let endpoints = self
            .endpoints
            .messages()
            .filter(|e| known_clusters.contains(e.cluster.as_str()))
            .cloned()
            .collect();
        let mut warming = Vec::new();
        let mut listeners = Vec::new();
        for listener in self.listeners.messages() {
            let route_known = listener.route_config.is_empty()
                || known_routes.contains(listener.route_config.as_str());
            let mut tcp_clusters = Vec::new();
            if let Some(tcp) = &listener.tcp {
                collect_tcp_clusters(tcp, &mut tcp_clusters);
            }
            if route_known && tcp_clusters.iter().all(|c| known_clusters.contains(c)) {
                listeners.push(listener.clone());
            } else {
                warming.push(listener.name.clone());
            }
        }
        Assembled {
            config: ProxyConfig {
                listeners,
                routes,
                clusters,
                endpoints,
            },
            warming,
        }
    }
}

/// Applies `update` to `cache`; returns whether its resources changed.
fn replace<M: Message + Default>(
    cache: &mut TypeCache<M>,
    update: &Update,
) -> Result<bool, String> {
    let next = cache.updated(update)?;
    let changed = cache.version.is_none() || !cache.same_resources(&next);
    *cache = next;
    Ok(changed)
}

fn collect_tcp_clusters<'a>(route: &'a pb::TcpRoute, into: &mut Vec<&'a str>) {
    into.extend(route.destinations.iter().map(|d| d.cluster.as_str()));
    for sni in &route.sni_routes {
        collect_tcp_clusters(sni, into);
    }
}

// === impl TypeCache ===

impl<M> Default for TypeCache<M> {
    fn default() -> Self {
        TypeCache {
            resources: BTreeMap::new(),
            version: None,
        }
    }
}

impl<M> Clone for HeldResource<M> {
    fn clone(&self) -> Self {
        HeldResource {
            version: self.version.clone(),
            message: self.message.clone(),
        }
    }
}

impl<M: Message + Default> TypeCache<M> {
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
            let message = M::decode(body.value.clone())
                .map_err(|e| format!("{} resource {name:?} does not decode: {e}", update.ty))?;
            resources.insert(
                name.clone(),
                HeldResource {
                    version: resource.version.clone(),
                    message: Arc::new(message),
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
}

impl<M> TypeCache<M> {
    fn messages(&self) -> impl Iterator<Item = &M> {
        self.resources.values().map(|r| r.message.as_ref())
    }

    fn resource_versions(&self) -> BTreeMap<String, String> {
        self.resources
            .iter()
            .map(|(name, r)| (name.clone(), r.version.clone()))
            .collect()
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
        ] {
            held = apply(&held, full(ty, "v1", resources));
            assert!(!held.is_complete());
        }
        held = apply(&held, full(ResourceType::Route, "v1", vec![]));
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
        assert!(assembled.config.listeners.is_empty());
        let clusters: Vec<_> = assembled
            .config
            .endpoints
            .iter()
            .map(|e| &e.cluster)
            .collect();
        assert_eq!(clusters, ["web"]);

        held = apply(&held, full(ResourceType::Route, "v1", vec![route("web")]));
        let assembled = held.assemble();
        assert!(assembled.warming.is_empty());
        assert_eq!(assembled.config.listeners[0].name, "web");
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
}
