//! The two stream forms on the wire: state of the world and delta. Each turns its requests into
//! a `ClientMessage` and a `Push` into its response, so one stream loop serves both.

use std::{collections::BTreeMap, ops::Range};

use mesh_proto::discovery::v1 as pb;

use super::{ResourceType, view::Update};
use crate::node::ProxyNode;

/// A proxy's request, whichever the form: a subscription (no nonce), an ACK or a NACK.
#[derive(Debug, Default)]
pub(crate) struct ClientMessage {
    /// The node, on the first request of a stream.
    pub(crate) node: Option<ProxyNode>,
    pub(crate) type_url: String,
    /// The nonce of the response answered; empty for a subscription.
    pub(crate) nonce: String,
    /// Set for a NACK.
    pub(crate) error: Option<String>,
    /// Delta subscriptions: what the proxy already has, name to version.
    pub(crate) initial_versions: BTreeMap<String, String>,
}

/// One response to send.
pub(crate) struct Push<'a> {
    pub(crate) ty: ResourceType,
    pub(crate) version: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) update: &'a Update,
    /// Delta: which of the update's changed resources this response carries (a big change
    /// goes out in parts), and whether it carries the removals.
    pub(crate) part: Range<usize>,
    pub(crate) removals: bool,
}

/// A stream form.
pub(crate) trait Wire: Send + 'static {
    /// What the proxy sends.
    type Request: Send + 'static;
    /// What the server sends.
    type Response: Send + 'static;
    /// Whether responses carry only changes.
    const DELTA: bool;
    /// The request, in the form the stream loop handles.
    fn parse(request: Self::Request) -> ClientMessage;
    /// The response for a push.
    fn response(push: Push<'_>) -> Self::Response;
}

/// State of the world: every response carries the whole set of its type.
pub(crate) struct StateOfTheWorld;

/// Delta: responses carry changed resources and removed names.
pub(crate) struct Delta;

impl Wire for StateOfTheWorld {
    type Request = pb::DiscoveryRequest;
    type Response = pb::DiscoveryResponse;
    const DELTA: bool = false;

    fn parse(request: pb::DiscoveryRequest) -> ClientMessage {
        ClientMessage {
            node: request.node.map(ProxyNode::from),
            type_url: request.type_url,
            nonce: request.response_nonce,
            error: request.error_detail.map(|e| e.message),
            initial_versions: BTreeMap::new(),
        }
    }

    fn response(push: Push<'_>) -> pb::DiscoveryResponse {
        pb::DiscoveryResponse {
            type_url: push.ty.type_url().to_owned(),
            version_info: push.version.to_owned(),
            nonce: push.nonce.to_owned(),
            resources: push.update.all().map(|r| r.wire().clone()).collect(),
        }
    }
}

impl Wire for Delta {
    type Request = pb::DeltaDiscoveryRequest;
    type Response = pb::DeltaDiscoveryResponse;
    const DELTA: bool = true;

    fn parse(request: pb::DeltaDiscoveryRequest) -> ClientMessage {
        ClientMessage {
            node: request.node.map(ProxyNode::from),
            type_url: request.type_url,
            nonce: request.response_nonce,
            error: request.error_detail.map(|e| e.message),
            initial_versions: request.initial_resource_versions,
        }
    }

    fn response(push: Push<'_>) -> pb::DeltaDiscoveryResponse {
        pb::DeltaDiscoveryResponse {
            type_url: push.ty.type_url().to_owned(),
            system_version_info: push.version.to_owned(),
            nonce: push.nonce.to_owned(),
            resources: push.update.changed[push.part]
                .iter()
                .map(|r| r.wire().clone())
                .collect(),
            removed_resources: if push.removals {
                push.update.removed.clone()
            } else {
                Vec::new()
            },
        }
    }
}

impl From<pb::Node> for ProxyNode {
    fn from(node: pb::Node) -> Self {
        ProxyNode {
            id: node.id,
            pod: node.pod,
            namespace: node.namespace,
            labels: node.labels,
            service_account: node.service_account,
            ip: node.ip,
            proxy_version: node.proxy_version,
        }
    }
}
