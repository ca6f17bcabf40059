//! Distributed tracing: each sidecar makes one span per request it handles (a server span for
//! what it receives, a client span for what it sends), joined to the trace in the request's
//! `traceparent` or B3 headers, and passes its own span on as the next hop's parent. An app
//! that forwards the headers it receives then gets one trace per request across every hop.
//!
//! A request without a trace context starts one, recorded for `sampling` percent of them; a
//! request with one follows its sampled flag, so a trace is whole or absent. Spans go to the
//! collector over OTLP/gRPC from a task of their own ([`export`]).

pub mod context;
mod export;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::SystemTime};

use http::Request;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use parking_lot::Mutex;
use prometheus::IntCounter;
use tokio::sync::mpsc;

pub use self::export::SpanCounters;
use self::{
    context::{Context, Format},
    export::{attribute, int_attribute},
};
use crate::{access_log::Outcome, telemetry::TracingPolicy, workload::Workload};

/// The flags' tracing: where spans go and how many requests start a recorded trace, unless the
/// config's telemetry says otherwise.
#[derive(Clone, Debug)]
pub struct TracingSettings {
    /// The collector's OTLP/gRPC address, e.g. `http://otel-collector.observability:4317`;
    /// `None`: no spans unless the config names a collector.
    pub collector: Option<String>,
    /// Percent of new traces recorded (0 to 100).
    pub sampling: f64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        TracingSettings {
            collector: None,
            sampling: 1.0,
        }
    }
}

/// Starts and finishes spans; spans go to an exporter's queue, one exporter per collector.
pub struct Tracer {
    /// The flags' collector, if any.
    default: Option<SpanSink>,
    /// The flags' sampling percentage.
    sampling: f64,
    /// The collectors configs named, kept while a config uses them.
    sinks: Mutex<HashMap<String, mpsc::WeakSender<Span>>>,
    resource: Arc<Vec<(&'static str, String)>>,
    counters: SpanCounters,
}

/// The queue of one collector's exporter.
#[derive(Clone, Debug)]
pub struct SpanSink {
    spans: mpsc::Sender<Span>,
}

/// Which side of a request a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request as this sidecar received it for its app (inbound).
    Server,
    /// The request as this sidecar sent it for its app (outbound).
    Client,
}

/// A recorded span in progress.
pub struct Pending {
    spans: mpsc::Sender<Span>,
    recorded: IntCounter,
    dropped: IntCounter,
    span: Span,
    kind: Kind,
    peer: SocketAddr,
}

// === impl Tracer ===

impl Tracer {
    /// A tracer for `workload`'s pod `pod`; with a collector in `settings`, starts exporting
    /// to it (on the current runtime).
    pub fn new(
        settings: &TracingSettings,
        workload: &Workload,
        pod: &str,
        counters: SpanCounters,
    ) -> anyhow::Result<Tracer> {
        check_sampling(settings.sampling)?;
        let resource = Arc::new(vec![
            (
                "service.name",
                format!("{}.{}", workload.canonical_service, workload.namespace),
            ),
            ("service.version", workload.canonical_revision.clone()),
            ("k8s.namespace.name", workload.namespace.clone()),
            ("k8s.pod.name", pod.to_owned()),
            ("k8s.workload.name", workload.name.clone()),
        ]);
        let mut tracer = Tracer {
            default: None,
            sampling: settings.sampling,
            sinks: Mutex::default(),
            resource,
            counters,
        };
        if let Some(collector) = &settings.collector {
            tracer.default = Some(tracer.start_exporter(collector)?);
        }
        Ok(tracer)
    }

    /// The sink of `collector`'s exporter, started (on the current runtime) unless one runs.
    pub fn sink(&self, collector: &str) -> anyhow::Result<SpanSink> {
        let mut sinks = self.sinks.lock();
        if let Some(spans) = sinks.get(collector).and_then(mpsc::WeakSender::upgrade) {
            return Ok(SpanSink { spans });
        }
        sinks.retain(|_, weak| weak.strong_count() > 0);
        let sink = self.start_exporter(collector)?;
        sinks.insert(collector.to_owned(), sink.spans.downgrade());
        Ok(sink)
    }

    fn start_exporter(&self, collector: &str) -> anyhow::Result<SpanSink> {
        let endpoint = collector_endpoint(collector)?;
        let (spans, queue) = mpsc::channel(export::QUEUE);
        let resource = self.resource.as_ref().clone();
        tokio::spawn(export::run(
            endpoint,
            resource,
            queue,
            self.counters.clone(),
        ));
        Ok(SpanSink { spans })
    }

    /// Joins `req` to its trace (or starts one) and writes this proxy's span into its trace
    /// headers as the next hop's parent; the span, when the trace is recorded. `policy` is the
    /// config's tracing, if it has any; else the flags decide. Without a collector, or with
    /// this side's spans turned off, the request is left as it is.
    pub fn begin<B>(
        &self,
        req: &mut Request<B>,
        kind: Kind,
        peer: SocketAddr,
        policy: Option<&TracingPolicy>,
    ) -> Option<Box<Pending>> {
        let (sink, sampling) = match policy {
            None => (self.default.as_ref()?, self.sampling),
            Some(policy) if policy.records(kind) => (
                policy.sink().or(self.default.as_ref())?,
                policy.sampling.unwrap_or(self.sampling),
            ),
            Some(_) => return None,
        };
        let incoming = Context::extract(req.headers());
        let context = incoming.unwrap_or_else(|| Context {
            trace_id: fastrand::u128(1..).to_be_bytes(),
            span_id: [0; 8],
            sampled: fastrand::f64() * 100.0 < sampling,
            format: Format::W3c,
        });
        let span_id = fastrand::u64(1..).to_be_bytes();
        context.inject(span_id, req.headers_mut());
        if !context.sampled {
            return None;
        }
        let authority = (req.uri().authority().map(|a| a.as_str()))
            .or_else(|| req.headers().get("host").and_then(|h| h.to_str().ok()))
            .unwrap_or_default();
        let path = req.uri().path();
        let mut attributes = vec![
            attribute("http.request.method", req.method().as_str()),
            attribute("url.path", path),
            attribute("server.address", authority),
            attribute("network.protocol.version", protocol(req.version())),
        ];
        if let Some(agent) = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
        {
            attributes.push(attribute("user_agent.original", agent));
        }
        let start = unix_nanos(SystemTime::now());
        Some(Box::new(Pending {
            spans: sink.spans.clone(),
            recorded: self.counters.recorded.clone(),
            dropped: self.counters.dropped.clone(),
            span: Span {
                trace_id: context.trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: incoming.map(|c| c.span_id.to_vec()).unwrap_or_default(),
                flags: 1,
                name: format!("{} {authority}{path}", req.method()),
                kind: match kind {
                    Kind::Server => SpanKind::Server,
                    Kind::Client => SpanKind::Client,
                } as i32,
                start_time_unix_nano: start,
                attributes,
                ..Span::default()
            },
            kind,
            peer,
        }))
    }
}

/// Checks a sampling percentage.
pub fn check_sampling(sampling: f64) -> anyhow::Result<()> {
    if !(0.0..=100.0).contains(&sampling) {
        anyhow::bail!("tracing sampling {sampling} is not a percentage from 0 to 100");
    }
    Ok(())
}

/// The gRPC endpoint of a collector address.
pub fn collector_endpoint(collector: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    tonic::transport::Endpoint::from_shared(collector.to_owned())
        .map_err(|e| anyhow::anyhow!("tracing collector {collector:?}: {e}"))
}

// === impl Pending ===

impl Pending {
    /// Ends the span with what became of the request and queues it for export (or counts it
    /// dropped when the queue is full).
    pub fn end(mut self: Box<Self>, outcome: &Outcome<'_>) {
        let span = &mut self.span;
        span.end_time_unix_nano = unix_nanos(SystemTime::now());
        let [
            source_workload,
            source_principal,
            destination_workload,
            destination_principal,
            destination_service,
        ] = outcome.peers;
        span.attributes.extend([
            int_attribute("http.response.status_code", i64::from(outcome.status)),
            attribute("mesh.response_flags", outcome.flag.as_str()),
            attribute("mesh.source_workload", source_workload),
            attribute("mesh.source_principal", source_principal),
            attribute("mesh.destination_workload", destination_workload),
            attribute("mesh.destination_principal", destination_principal),
            attribute("mesh.destination_service", destination_service),
            attribute("http.request.body.size", outcome.bytes_received.to_string()),
            attribute("http.response.body.size", outcome.bytes_sent.to_string()),
        ]);
        match self.kind {
            Kind::Server => span
                .attributes
                .push(attribute("client.address", self.peer.ip().to_string())),
            Kind::Client => {
                if let Some(host) = outcome.upstream_host {
                    span.attributes
                        .push(attribute("network.peer.address", host.to_string()));
                }
            }
        }
        if let Some(cluster) = outcome.upstream_cluster {
            span.attributes
                .push(attribute("mesh.upstream_cluster", cluster));
        }
        if let Some(grpc) = outcome.grpc {
            span.attributes
                .push(int_attribute("rpc.grpc.status_code", i64::from(grpc)));
        }
        // As the HTTP conventions say: a server's span fails on 5xx, a client's on 4xx too.
        let failed = match self.kind {
            Kind::Server => outcome.status >= 500,
            Kind::Client => outcome.status >= 400,
        };
        if failed {
            span.status = Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            });
        }
        let Pending {
            spans,
            recorded,
            dropped,
            span,
            ..
        } = *self;
        match spans.try_send(span) {
            Ok(()) => recorded.inc(),
            Err(_) => dropped.inc(),
        }
    }
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
