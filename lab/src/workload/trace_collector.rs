//! A small OpenTelemetry collector for the lab (`mesh-workload collect-traces`): it takes spans
//! over OTLP/gRPC, keeps the newest in memory, and serves them grouped into traces as JSON on
//! HTTP (`GET /traces`), for `mesh lab traces` and the tests.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::{span::SpanKind, status::StatusCode as SpanStatus},
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Most spans kept; the oldest go first.
const KEPT: usize = 50_000;

/// One span as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSpan {
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `server`, `client`, or another OpenTelemetry kind.
    pub kind: String,
    /// The `service.name` of the process that sent it.
    pub service: String,
    /// Start, in Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, in Unix nanoseconds.
    pub end_unix_nano: u64,
    /// The span's status: `unset`, `ok` or `error`.
    #[serde(default)]
    pub status: String,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
}

/// One trace: its spans in start order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredTrace {
    /// Hex trace id.
    pub trace_id: String,
    /// Its spans.
    pub spans: Vec<StoredSpan>,
}

/// The spans received, newest last (the lock is held only to push or copy).
#[derive(Default)]
struct Store(Mutex<VecDeque<StoredSpan>>);

/// The OTLP trace service.
#[derive(Clone, Default)]
struct Collector(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = (resource_spans.resource.iter())
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(StoredSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: match SpanKind::try_from(span.kind) {
                        Ok(SpanKind::Server) => "server",
                        Ok(SpanKind::Client) => "client",
                        Ok(SpanKind::Internal) => "internal",
                        Ok(SpanKind::Producer) => "producer",
                        Ok(SpanKind::Consumer) => "consumer",
                        _ => "unspecified",
                    }
                    .to_owned(),
                    service: service.clone(),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    status: match span.status.map(|s| SpanStatus::try_from(s.code)) {
                        Some(Ok(SpanStatus::Ok)) => "ok",
                        Some(Ok(SpanStatus::Error)) => "error",
                        _ => "unset",
                    }
                    .to_owned(),
                    attributes: span.attributes.iter().map(attribute).collect(),
                });
            }
        }
        let mut spans = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        spans.extend(received);
        while spans.len() > KEPT {
            spans.pop_front();
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `otlp` and the stored traces on `http` until either fails.
pub async fn serve_collector(otlp: TcpListener, http: TcpListener) -> anyhow::Result<()> {
    let collector = Collector::default();
    let store = collector.0.clone();
    let grpc = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(otlp));
    let web = serve_http(http, store);
    tokio::select! {
        served = grpc => served.map_err(anyhow::Error::from),
        served = web => served,
    }
}

/// Answers every HTTP request with the stored traces.
async fn serve_http(http: TcpListener, store: Arc<Store>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = http.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let body = serde_json::to_vec(&traces(&store)).unwrap_or_default();
                async move {
                    Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The stored spans grouped into traces, oldest trace first, spans in start order.
fn traces(store: &Store) -> Vec<StoredTrace> {
    let spans: VecDeque<StoredSpan> = store.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut by_trace: BTreeMap<String, Vec<StoredSpan>> = BTreeMap::new();
    for span in spans {
        by_trace
            .entry(span.trace_id.clone())
            .or_default()
            .push(span);
    }
    let mut traces: Vec<StoredTrace> = (by_trace.into_iter())
        .map(|(trace_id, mut spans)| {
            spans.sort_by_key(|s| s.start_unix_nano);
            StoredTrace { trace_id, spans }
        })
        .collect();
    traces.sort_by_key(|t| t.spans.first().map_or(0, |s| s.start_unix_nano));
    traces
}

fn attribute(kv: &KeyValue) -> (String, String) {
    (kv.key.clone(), text(kv.value.as_ref()))
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
