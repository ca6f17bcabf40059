//! One discovery stream, state of the world or delta: subscribes to every type, yields each
//! response as an `Update`, and sends the ACK or NACK for it.

use mesh_proto::discovery::v1::{
    self as pb, aggregated_discovery_client::AggregatedDiscoveryClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Status, Streaming, transport::Channel};

use super::{ResourceType, held::Held};

/// The largest response accepted: a whole mesh's listeners fit comfortably.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One response, whichever the stream form.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) ty: ResourceType,
    /// The version of the type after this response.
    pub(crate) version: String,
    pub(crate) nonce: String,
    /// New or changed resources (every resource, for state of the world).
    pub(crate) resources: Vec<pb::Resource>,
    /// Names to drop (delta).
    pub(crate) removed: Vec<String>,
    /// Whether `resources` is the complete set (state of the world).
    pub(crate) full: bool,
}

/// An open stream.
pub(crate) enum Session {
    /// State of the world.
    Sotw(Stream<pb::DiscoveryRequest, pb::DiscoveryResponse>),
    /// Delta.
    Delta(Stream<pb::DeltaDiscoveryRequest, pb::DeltaDiscoveryResponse>),
}

/// Requests out, responses in.
pub(crate) struct Stream<Req, Resp> {
    requests: mpsc::UnboundedSender<Req>,
    responses: Streaming<Resp>,
}

impl Session {
    /// Opens a stream on `channel` and subscribes to every type; a delta stream reports what
    /// is `held`, so that only what differs is sent again.
    pub(crate) async fn open(
        channel: Channel,
        delta: bool,
        node: &pb::Node,
        held: &Held,
    ) -> Result<Session, Status> {
        let mut client =
            AggregatedDiscoveryClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        // Subscriptions go out in push order, the node on the first.
        let node_once = |i: usize| (i == 0).then(|| node.clone());
        if delta {
            let (requests, queue) = mpsc::unbounded_channel();
            for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
                let _ = requests.send(pb::DeltaDiscoveryRequest {
                    node: node_once(i),
                    type_url: ty.type_url().to_owned(),
                    initial_resource_versions: held.resource_versions(ty),
                    ..Default::default()
                });
            }
            let queue = UnboundedReceiverStream::new(queue);
            let responses = client.delta_stream(queue).await?.into_inner();
            Ok(Session::Delta(Stream {
                requests,
                responses,
            }))
        } else {
            let (requests, queue) = mpsc::unbounded_channel();
            for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
                let _ = requests.send(pb::DiscoveryRequest {
                    node: node_once(i),
                    type_url: ty.type_url().to_owned(),
                    version_info: held.version(ty).unwrap_or_default().to_owned(),
                    ..Default::default()
                });
            }
            let queue = UnboundedReceiverStream::new(queue);
            let responses = client.stream(queue).await?.into_inner();
            Ok(Session::Sotw(Stream {
                requests,
                responses,
            }))
        }
    }

    /// The next response; `None` when the control plane ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Update>, Status> {
        loop {
            let response = match self {
                Session::Sotw(stream) => stream.responses.message().await?.map(|r| {
                    let parts = (r.version_info, r.nonce, r.resources, Vec::new(), true);
                    (r.type_url, parts)
                }),
                Session::Delta(stream) => stream.responses.message().await?.map(|r| {
                    let parts = (
                        r.system_version_info,
                        r.nonce,
                        r.resources,
                        r.removed_resources,
                        false,
                    );
                    (r.type_url, parts)
                }),
            };
            let Some((type_url, (version, nonce, resources, removed, full))) = response else {
                return Ok(None);
            };
            match ResourceType::from_type_url(&type_url) {
                Some(ty) => {
                    return Ok(Some(Update {
                        ty,
                        version,
                        nonce,
                        resources,
                        removed,
                        full,
                    }));
                }
                None => tracing::warn!(%type_url,
                    "the control plane sent a resource type this proxy does not know; ignoring"),
            }
        }
    }

    /// ACKs `update`, or NACKs it with `error` while the proxy keeps `kept_version`.
    pub(crate) fn answer(&self, update: &Update, kept_version: &str, error: Option<String>) {
        let error_detail = error.map(|message| pb::ErrorDetail {
            code: Code::InvalidArgument as i32,
            message,
        });
        // A send fails only when the stream is gone; the next read reports that.
        let _ = match self {
            Session::Sotw(stream) => stream
                .requests
                .send(pb::DiscoveryRequest {
                    type_url: update.ty.type_url().to_owned(),
                    version_info: if error_detail.is_some() {
                        kept_version.to_owned()
                    } else {
                        update.version.clone()
                    },
                    response_nonce: update.nonce.clone(),
                    error_detail,
                    ..Default::default()
                })
                .map_err(drop),
            Session::Delta(stream) => stream
                .requests
                .send(pb::DeltaDiscoveryRequest {
                    type_url: update.ty.type_url().to_owned(),
                    response_nonce: update.nonce.clone(),
                    error_detail,
                    ..Default::default()
                })
                .map_err(drop),
        };
    }
}
