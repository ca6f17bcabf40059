//! Translation, pure: the store's objects into one proxy's config.
//!
//! Services and ServiceEntries become clusters (one per port, and one per DestinationRule
//! subset) with their endpoints, and outbound listeners per virtual IP and port whose routes
//! come from the Gateway API routes attached to the service (GAMMA), else its VirtualService,
//! else a default route. Gateway proxies get listeners for their Gateways' ports. Every object
//! is checked once per `Translator`; an invalid or conflicting object yields a `Problem` and
//! is left out (a Gateway API rule is replaced by a 500 answer, as the Gateway API asks), so
//! the config is never half-applied and never refers to a cluster it lacks.

mod authorization;
mod checks;
mod client_credential;
mod clusters;
mod destination_rule;
pub(crate) mod duration;
mod endpoints;
mod gateway;
mod gateway_api;
mod headers;
mod mesh_settings;
pub mod names;
mod outbound;
mod peer_authentication;
mod problem;
pub mod protocol;
mod registry;
mod rules;
mod security_checks;
mod sidecar_scope;
mod telemetry;
mod tls_check;
mod traffic_policy;
mod virtual_service;
mod visibility;

use std::collections::{BTreeMap, BTreeSet};

use mesh_proto::config::v1::ProxyConfig;

pub use checks::WorkloadTemplate;
pub use gateway::{CONTROLLER_NAME, ListenerReport};
pub use mesh_settings::{MeshSettings, OutboundTrafficPolicy};
pub use problem::{Problem, Severity};
pub use telemetry::{TELEMETRY_NAME, TracingProviders};
pub use tls_check::TlsCheckRow;

use self::{
    authorization::AuthorizationPolicies, destination_rule::DestinationRules, gateway::Gateways,
    gateway_api::MeshRoutes, peer_authentication::PeerAuthentications, registry::Registry,
    rules::RouteSet, sidecar_scope::SidecarScopes, telemetry::Telemetries,
    virtual_service::VirtualServices,
};
use crate::{node::ProxyNode, store::Store};

/// A proxy's config and the problems met computing it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    /// The config to send.
    pub config: ProxyConfig,
    /// Problems with users' objects, sorted and without repeats.
    pub problems: Vec<Problem>,
}

/// Translates the store for one proxy. To translate for many proxies, build a `Translator`
/// once and call `translate` per proxy.
pub fn translate(store: &Store, node: &ProxyNode) -> Translation {
    Translator::new(store).translate(node)
}

/// What a proxy's config depends on: its namespace and those of its labels that some selector
/// of the mesh reads. Proxies with equal views get equal configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyView {
    namespace: String,
    labels: BTreeMap<String, String>,
}

/// The store's objects, checked and indexed once, ready to translate for any proxy.
pub struct Translator {
    registry: Registry,
    rules: DestinationRules,
    virtual_services: VirtualServices,
    mesh_routes: MeshRoutes,
    gateways: Gateways,
    peer_authentications: PeerAuthentications,
    authorization: AuthorizationPolicies,
    telemetries: Telemetries,
    /// Every proxy label key a selector reads: the labels a view keeps.
    selected_labels: BTreeSet<String>,
    /// What Sidecar resources let proxies reach.
    sidecars: SidecarScopes,
    /// The mesh's outbound traffic policy.
    outbound_policy: OutboundTrafficPolicy,
    problems: Vec<Problem>,
}

impl Translator {
    /// Checks and indexes every object in `store`, with the default mesh settings.
    pub fn new(store: &Store) -> Self {
        Self::with_settings(store, &MeshSettings::default())
    }

    /// Checks and indexes every object in `store` under the mesh-wide `settings`.
    pub fn with_settings(store: &Store, settings: &MeshSettings) -> Self {
        let providers = &settings.tracing_providers;
        let mut problems = Vec::new();
        let peer_authentications = PeerAuthentications::build(store, &mut problems);
        let registry = Registry::build(store, &peer_authentications, &mut problems);
        let rules = DestinationRules::build(store, &mut problems);
        let virtual_services = VirtualServices::build(store, &registry, &rules, &mut problems);
        let routes = gateway_api::compile_routes(store, &registry, &mut problems);
        let mesh_routes = MeshRoutes::build(&routes, &registry, &mut problems);
        mesh_routes.report_shadowed_virtual_services(&virtual_services, &mut problems);
        let l4_routes = gateway_api::compile_l4_routes(store, &registry, &mut problems);
        let gateways = Gateways::build(store, &routes, &l4_routes, &mut problems);
        let authorization = AuthorizationPolicies::build(store, &mut problems);
        let telemetries = Telemetries::build(store, providers, &mut problems);
        let sidecars = SidecarScopes::build(store, &mut problems);
        let selected_labels = (rules.label_keys())
            .chain(sidecars.label_keys())
            .chain(telemetries.label_keys())
            .chain(peer_authentications.label_keys())
            .chain(authorization.label_keys())
            .chain(virtual_services.label_keys())
            .chain(mesh_routes.label_keys())
            .chain(gateways.label_keys())
            .map(str::to_owned)
            .collect();
        Translator {
            registry,
            rules,
            virtual_services,
            mesh_routes,
            gateways,
            peer_authentications,
            authorization,
            telemetries,
            selected_labels,
            sidecars,
            outbound_policy: settings.outbound_traffic_policy,
            problems,
        }
    }

    /// What of `node` its config depends on.
    pub fn view_of(&self, node: &ProxyNode) -> ProxyView {
        ProxyView {
            namespace: node.namespace.clone(),
            labels: node
                .labels
                .iter()
                .filter(|(key, _)| self.selected_labels.contains(*key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Problems with the store's objects that do not depend on the proxy.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// What became of each listener of mesh's Gateway API Gateways, for their status.
    pub fn listener_reports(&self) -> &[ListenerReport] {
        self.gateways.listener_reports()
    }

    /// Further checks for `mesh analyze`: rules that apply to nothing, subsets that select
    /// nothing (no pod of `store`, nor any pod `templates` would make), and security policies
    /// at odds with the workloads of `store`.
    pub fn deep_checks(&self, store: &Store, templates: &[WorkloadTemplate]) -> Vec<Problem> {
        let mut problems =
            checks::destination_rule_checks(&self.registry, &self.rules, store, templates);
        problems.extend(security_checks::security_checks(
            store,
            &self.registry,
            &self.rules,
            &self.peer_authentications,
            &self.authorization,
        ));
        problems.extend(sidecar_scope::sidecar_checks(
            &self.sidecars,
            &self.registry,
        ));
        problems
    }

    /// The config of one proxy: a sidecar's outbound config, plus its Gateways' listeners
    /// when the proxy runs a gateway.
    pub fn translate(&self, node: &ProxyNode) -> Translation {
        // Only the view reaches translation, so equal views get equal configs by construction.
        let ProxyView { namespace, labels } = self.view_of(node);
        let node = &ProxyNode {
            namespace,
            labels,
            ..ProxyNode::default()
        };
        let mut config = ProxyConfig::default();
        let mut problems = self.problems.clone();
        let gateway = self.gateways.serves(node);
        // Sidecar resources are for sidecars, not gateways.
        let scope = (!gateway).then(|| self.sidecars.for_node(node)).flatten();
        let hashes = clusters::add_clusters(&self.registry, &self.rules, node, scope, &mut config);
        if gateway {
            gateway::add_gateway_listeners(self, node, &hashes, &mut config, &mut problems);
        } else {
            outbound::add_outbound(self, node, scope, &hashes, &mut config, &mut problems);
            let policy = scope.and_then(|s| s.outbound_policy);
            let policy = policy.unwrap_or(self.outbound_policy);
            outbound::add_hostless(
                self,
                node,
                scope,
                policy,
                &hashes,
                &mut config,
                &mut problems,
            );
            let modes = self.peer_authentications.modes_for(node);
            let policies = self.authorization.policies_for(node);
            if modes.is_some() || !policies.is_empty() {
                let modes = modes.unwrap_or_default();
                config.listeners.extend(modes.listeners(&policies));
            }
        }
        config.telemetry.extend(self.telemetries.config_for(node));
        problems.sort();
        problems.dedup();
        Translation { config, problems }
    }

    /// The routing rules of a service host for a sidecar: Gateway API routes first, else
    /// the VirtualService.
    fn service_routes(&self, host: &str, node: &ProxyNode) -> Option<&RouteSet> {
        self.mesh_routes.select(host, node).or_else(|| {
            self.virtual_services
                .select(host, node, None)
                .map(|vs| &vs.routes)
        })
    }
}

#[cfg(test)]
mod backend_weight_tests;
#[cfg(test)]
mod inbound_tests;
#[cfg(test)]
mod reference_grant_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_origination_tests;
