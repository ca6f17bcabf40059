//! The kinds the Kubernetes source watches: every kind the store holds, one kube-rs watch each.

use super::kind_stream::{self, Update};
use crate::istio::{
    AuthorizationPolicy, DestinationRule, Gateway as IstioGateway, PeerAuthentication,
    ServiceEntry, Sidecar, Telemetry, VirtualService, WorkloadEntry,
};
use crate::store::{Object, Stored};
use futures_util::stream::{BoxStream, StreamExt};
use gateway_api::{
    experimental::httproutes::HttpRoute, experimental::tcproutes::TcpRoute,
    gatewayclasses::GatewayClass, gateways::Gateway, grpcroutes::GrpcRoute,
    referencegrants::ReferenceGrant, tlsroutes::TlsRoute,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// The field selector of the Secrets the source watches.
pub(crate) const TLS_SECRETS: &str = "type=kubernetes.io/tls";

/// A stored kind the source can watch: its API coordinates are static and it decodes from JSON.
pub(crate) trait WatchedKind:
    Stored + Resource<DynamicType = ()> + DeserializeOwned + Debug
{
    /// Wraps a decoded object for the store.
    fn into_object(object: Arc<Self>) -> Object;
}

impl<K> WatchedKind for K
where
    K: Stored + Resource<DynamicType = ()> + DeserializeOwned + Debug,
    Object: From<Arc<K>>,
{
    fn into_object(object: Arc<Self>) -> Object {
        Object::from(object)
    }
}

/// One stream of updates per kind, each running kube-rs's watcher and reflector.
pub(super) fn kind_streams(
    client: &Client,
    config: &watcher::Config,
) -> Vec<BoxStream<'static, Update>> {
    fn watch<K: WatchedKind>(
        client: &Client,
        config: &watcher::Config,
    ) -> BoxStream<'static, Update> {
        kind_stream::updates::<K>(client.clone(), config.clone()).boxed()
    }
    vec![
        watch::<Namespace>(client, config),
        watch::<Service>(client, config),
        watch::<EndpointSlice>(client, config),
        watch::<Pod>(client, config),
        watch::<VirtualService>(client, config),
        watch::<DestinationRule>(client, config),
        watch::<IstioGateway>(client, config),
        watch::<ServiceEntry>(client, config),
        watch::<PeerAuthentication>(client, config),
        watch::<AuthorizationPolicy>(client, config),
        watch::<Telemetry>(client, config),
        watch::<Sidecar>(client, config),
        watch::<WorkloadEntry>(client, config),
        watch::<GatewayClass>(client, config),
        watch::<Gateway>(client, config),
        watch::<HttpRoute>(client, config),
        watch::<GrpcRoute>(client, config),
        watch::<TlsRoute>(client, config),
        watch::<TcpRoute>(client, config),
        watch::<ReferenceGrant>(client, config),
        // Gateways read certificates from TLS Secrets; no other Secret is fetched.
        watch::<Secret>(client, &config.clone().fields(TLS_SECRETS)),
    ]
}
