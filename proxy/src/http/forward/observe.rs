//! What a request is recorded as: its standard metrics' label set (from the peers, resolved
//! once per connection inbound and per endpoint outbound) and the record that the metrics, the
//! access log and its span are written from when the response ends.

use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::{HttpConn, InboundLabels, RetriesExhausted, authority_of};
use crate::{
    config::Cluster,
    http::{Body, X_MESH_ERROR, body::grpc_status},
    istio_metrics::{LabelSet, Protocol, Record, Reporter, RequestLabels, ResponseFlag},
    workload::{PEER_METADATA, UNKNOWN, Workload},
};

impl HttpConn {
    /// Inbound: the standard metrics' labels of a request, from the verified peer, the
    /// metadata it sent (removed here, so the app never sees it; believed only in mesh TLS)
    /// and the host it asked for; cached for the connection's next requests.
    pub(super) fn inbound_labels(
        &self,
        req: &mut Request<Incoming>,
        grpc: bool,
    ) -> Option<Arc<LabelSet>> {
        let inbound = self.inbound.as_ref()?;
        let peer_metadata = req.headers_mut().remove(&PEER_METADATA);
        let peer_metadata = peer_metadata.filter(|_| inbound.peer.is_some());
        let host = authority_of(req).map_or("", crate::route::matching::strip_port);
        if let Some(cached) = &*self.inbound_labels.load()
            && cached.grpc == grpc
            && cached.host == host
            && cached.peer_metadata == peer_metadata
        {
            return Some(cached.set.clone());
        }
        let own = &self.state.settings.workload;
        let unknown = || Arc::<str>::from(UNKNOWN);
        let mesh = inbound.peer.as_ref();
        let labels = RequestLabels {
            reporter: Reporter::Destination,
            source: Arc::new(
                peer_metadata
                    .as_ref()
                    .map(Workload::from_header)
                    .unwrap_or_default(),
            ),
            source_principal: mesh.map_or_else(unknown, |p| p.identity.clone()),
            destination: own.clone(),
            destination_principal: (self.state.mesh_tls.as_deref())
                .and_then(|m| m.own_identity())
                .filter(|_| mesh.is_some())
                .map_or_else(unknown, |own| own.as_str().into()),
            destination_service: service_host(host, &own.namespace).into(),
            request_protocol: Protocol::request(grpc),
            connection_security_policy: if mesh.is_some() { "mutual_tls" } else { "none" },
        };
        let set = self.state.metrics.standard.label_set(&labels)?;
        self.inbound_labels.store(Some(Arc::new(InboundLabels {
            peer_metadata,
            host: host.to_owned(),
            grpc,
            set: set.clone(),
        })));
        Some(set)
    }

    /// Outbound: the standard metrics' labels of a request to `endpoint` of `cluster` (either
    /// `None` when the request got no further), cached by the cluster.
    pub(super) fn outbound_labels(
        &self,
        cluster: Option<&Cluster>,
        endpoint: Option<&crate::balance::Endpoint>,
        grpc: bool,
    ) -> Option<Arc<LabelSet>> {
        let state = &self.state;
        let source = &state.settings.workload;
        match cluster {
            Some(cluster) => {
                let mesh = state.mesh_tls.as_deref();
                let protocol = Protocol::request(grpc);
                cluster.label_set(&state.metrics, source, mesh, endpoint, protocol)
            }
            None => state.metrics.standard.label_set(&RequestLabels {
                reporter: Reporter::Source,
                source: source.clone(),
                source_principal: UNKNOWN.into(),
                destination: Arc::default(),
                destination_principal: UNKNOWN.into(),
                destination_service: UNKNOWN.into(),
                request_protocol: Protocol::request(grpc),
                connection_security_policy: UNKNOWN,
            }),
        }
    }
}

/// Starts `record`ing the request `response` answers: now for an answer the proxy made (with
/// its reason's flag), when the body ends for one from upstream.
pub(super) fn observe(response: Response<Body>, mut record: Record) -> Response<Body> {
    record.status = response.status().as_u16();
    record.grpc = grpc_status(response.headers());
    let (parts, mut body) = response.into_parts();
    let reason = parts.headers.get(&X_MESH_ERROR).map(HeaderValue::as_bytes);
    match &mut body {
        Body::Full(body) => {
            record.flag = reason.map_or(ResponseFlag::None, ResponseFlag::from_error);
            record.response_bytes = http_body::Body::size_hint(body).exact().unwrap_or(0);
            record.finish();
        }
        Body::Upstream {
            recording, body, ..
        } => {
            if parts.extensions.get::<RetriesExhausted>().is_some() {
                record.flag = ResponseFlag::UpstreamRetryLimitExceeded;
            }
            recording.start(record, http_body::Body::is_end_stream(body));
        }
    }
    Response::from_parts(parts, body)
}

/// The Service host a request for `host` means, from a pod in `namespace`: short names
/// completed as the cluster's DNS completes them.
fn service_host(host: &str, namespace: &str) -> String {
    if host.is_empty() {
        return UNKNOWN.to_owned();
    }
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.svc.cluster.local"),
        1 => format!("{host}.svc.cluster.local"),
        _ if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_owned(),
    }
}
