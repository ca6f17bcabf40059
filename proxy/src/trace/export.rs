//! Sends finished spans to an OpenTelemetry collector over OTLP/gRPC, in batches, from a task
//! of its own: a request only puts its span on a bounded queue. A collector that is down or
//! slow costs at most the queue and a batch in flight; what does not fit is dropped and counted.

use std::time::Duration;

use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prometheus::IntCounter;
use tokio::sync::mpsc;

/// Spans waiting for export before new ones are dropped.
pub const QUEUE: usize = 2048;
/// Most spans in one export.
const BATCH: usize = 512;
/// Longest a span waits for its batch to fill.
const LINGER: Duration = Duration::from_secs(1);
/// Longest one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts of what became of spans.
#[derive(Clone)]
pub struct SpanCounters {
    /// Ended and handed to the exporter.
    pub recorded: IntCounter,
    /// Accepted by the collector.
    pub exported: IntCounter,
    /// Not queued: the queue was full.
    pub dropped: IntCounter,
    /// Lost with an export that failed.
    pub failed: IntCounter,
}

/// Exports what arrives on `spans` to the collector at `collector` (`http://host:4317`) as the
/// workload described by `resource`, until every sender is gone.
pub async fn run(
    collector: tonic::transport::Endpoint,
    resource: Vec<(&'static str, String)>,
    mut spans: mpsc::Receiver<Span>,
    counters: SpanCounters,
) {
    let mut client = TraceServiceClient::new(collector.connect_lazy());
    let resource = Resource {
        attributes: resource.into_iter().map(|(k, v)| attribute(k, v)).collect(),
        ..Resource::default()
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = spans.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "mesh-proxy".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    spans: std::mem::replace(&mut batch, Vec::with_capacity(BATCH)),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        match tokio::time::timeout(EXPORT_TIMEOUT, client.export(request)).await {
            Ok(Ok(_)) => counters.exported.inc_by(count),
            Ok(Err(status)) => {
                counters.failed.inc_by(count);
                tracing::debug!(%status, "span export failed");
            }
            Err(_) => {
                counters.failed.inc_by(count);
                tracing::debug!("span export timed out");
            }
        }
    }
}

/// A string attribute.
pub fn attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// An integer attribute.
pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}
